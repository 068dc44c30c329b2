// Elementwise op definitions, shared by unary.wgsl, binary.wgsl and the fused elementwise
// kernels that fuse.rs generates from fused.wgsl. This file is not a kernel family: it is
// prepended to each of those sources. The op numbers are the discriminants of
// kiln_device::kernels::UnaryOp and BinaryOp, whose `wgsl_fn` names the function of each op.

// x ^ a with PyTorch's meaning for negative bases and integer exponents.
fn powf(v: f32, a: f32) -> f32 {
    if (a == 0.0) { return 1.0; }
    if (a == 1.0) { return v; }
    if (a == 2.0) { return v * v; }
    if (a == 0.5) { return sqrt(v); }
    if (a == -1.0) { return 1.0 / v; }
    if (v >= 0.0) { return pow(v, a); }
    // Negative base: defined only for integer exponents.
    if (floor(a) != a) { return bitcast<f32>(0x7fc00000u); }
    let m = pow(-v, a);
    let odd = abs(a - 2.0 * floor(a * 0.5)) == 1.0;
    return select(m, -m, odd);
}

// NOTE: tanh written through exp(-2|v|) so that large |v| gives +-1, never inf/inf = NaN.
fn tanh_(v: f32) -> f32 {
    let t = exp(-2.0 * abs(v));
    let r = (1.0 - t) / (1.0 + t);
    return select(r, -r, v < 0.0);
}

// Unary ops, one function each: u_<name>(v, a), where a is the scalar of the scalar forms.
fn u_neg(v: f32, a: f32) -> f32 { return -v; }
fn u_exp(v: f32, a: f32) -> f32 { return exp(v); }
fn u_log(v: f32, a: f32) -> f32 { return log(v); }
fn u_sqrt(v: f32, a: f32) -> f32 { return sqrt(v); }
fn u_tanh(v: f32, a: f32) -> f32 { return tanh_(v); }
fn u_sigmoid(v: f32, a: f32) -> f32 { return 1.0 / (1.0 + exp(-v)); }
// NOTE: relu as select, so relu(0) = 0 and its gradient at 0 is 0, as in PyTorch.
fn u_relu(v: f32, a: f32) -> f32 { return select(0.0, v, v > 0.0); }
fn u_add_scalar(v: f32, a: f32) -> f32 { return v + a; }
fn u_mul_scalar(v: f32, a: f32) -> f32 { return v * a; }
fn u_div_scalar(v: f32, a: f32) -> f32 { return v / a; }
fn u_pow_scalar(v: f32, a: f32) -> f32 { return powf(v, a); }
fn u_gt_scalar(v: f32, a: f32) -> f32 { return select(0.0, 1.0, v > a); }
fn u_lt_scalar(v: f32, a: f32) -> f32 { return select(0.0, 1.0, v < a); }
fn u_ge_scalar(v: f32, a: f32) -> f32 { return select(0.0, 1.0, v >= a); }
fn u_le_scalar(v: f32, a: f32) -> f32 { return select(0.0, 1.0, v <= a); }
fn u_eq_scalar(v: f32, a: f32) -> f32 { return select(0.0, 1.0, v == a); }
fn u_abs(v: f32, a: f32) -> f32 { return abs(v); }
fn u_rsub_scalar(v: f32, a: f32) -> f32 { return a - v; }
// fill: v is ignored.
fn u_fill(v: f32, a: f32) -> f32 { return a; }
// softplus, stable for any v: max(v, 0) + log(1 + exp(-|v|)).
fn u_softplus(v: f32, a: f32) -> f32 { return max(v, 0.0) + log(1.0 + exp(-abs(v))); }

// Binary ops, one function each: b_<name>(u, v). Comparisons give 1.0 or 0.0.
fn b_add(u: f32, v: f32) -> f32 { return u + v; }
fn b_sub(u: f32, v: f32) -> f32 { return u - v; }
fn b_mul(u: f32, v: f32) -> f32 { return u * v; }
fn b_div(u: f32, v: f32) -> f32 { return u / v; }
fn b_maximum(u: f32, v: f32) -> f32 { return max(u, v); }
fn b_minimum(u: f32, v: f32) -> f32 { return min(u, v); }
fn b_gt(u: f32, v: f32) -> f32 { return select(0.0, 1.0, u > v); }
fn b_lt(u: f32, v: f32) -> f32 { return select(0.0, 1.0, u < v); }
fn b_ge(u: f32, v: f32) -> f32 { return select(0.0, 1.0, u >= v); }
fn b_le(u: f32, v: f32) -> f32 { return select(0.0, 1.0, u <= v); }
fn b_eq(u: f32, v: f32) -> f32 { return select(0.0, 1.0, u == v); }
fn b_ne(u: f32, v: f32) -> f32 { return select(0.0, 1.0, u != v); }
// ReLU backward: u is the incoming gradient, v the ReLU input (gradient 0 at v == 0).
fn b_relu_backward(u: f32, v: f32) -> f32 { return select(0.0, u, v > 0.0); }

// Unary op number `op` (UnaryOp's discriminant), for kernels that take the op as an override
// constant. The fused kernels call the functions above directly: a switch inlined per call
// makes a long chain slow to compile.
fn unary_f(op: u32, v: f32, a: f32) -> f32 {
    switch op {
        case 0u: { return u_neg(v, a); }
        case 1u: { return u_exp(v, a); }
        case 2u: { return u_log(v, a); }
        case 3u: { return u_sqrt(v, a); }
        case 4u: { return u_tanh(v, a); }
        case 5u: { return u_sigmoid(v, a); }
        case 6u: { return u_relu(v, a); }
        case 7u: { return u_add_scalar(v, a); }
        case 8u: { return u_mul_scalar(v, a); }
        case 9u: { return u_div_scalar(v, a); }
        case 10u: { return u_pow_scalar(v, a); }
        case 11u: { return u_gt_scalar(v, a); }
        case 12u: { return u_lt_scalar(v, a); }
        case 13u: { return u_ge_scalar(v, a); }
        case 14u: { return u_le_scalar(v, a); }
        case 15u: { return u_eq_scalar(v, a); }
        case 16u: { return u_abs(v, a); }
        case 17u: { return u_rsub_scalar(v, a); }
        case 18u: { return u_fill(v, a); }
        case 19u: { return u_softplus(v, a); }
        default: { return v; }
    }
}

// Binary op number `op` (BinaryOp's discriminant).
fn binary_f(op: u32, u: f32, v: f32) -> f32 {
    switch op {
        case 0u: { return b_add(u, v); }
        case 1u: { return b_sub(u, v); }
        case 2u: { return b_mul(u, v); }
        case 3u: { return b_div(u, v); }
        case 4u: { return b_maximum(u, v); }
        case 5u: { return b_minimum(u, v); }
        case 6u: { return b_gt(u, v); }
        case 7u: { return b_lt(u, v); }
        case 8u: { return b_ge(u, v); }
        case 9u: { return b_le(u, v); }
        case 10u: { return b_eq(u, v); }
        case 11u: { return b_ne(u, v); }
        case 12u: { return b_relu_backward(u, v); }
        default: { return u; }
    }
}

// The same ops on four elements at once.
fn unary4_f(op: u32, v: vec4<f32>, a: f32) -> vec4<f32> {
    return vec4<f32>(unary_f(op, v.x, a), unary_f(op, v.y, a), unary_f(op, v.z, a), unary_f(op, v.w, a));
}

fn binary4_f(op: u32, u: vec4<f32>, v: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(binary_f(op, u.x, v.x), binary_f(op, u.y, v.y), binary_f(op, u.z, v.z), binary_f(op, u.w, v.w));
}
