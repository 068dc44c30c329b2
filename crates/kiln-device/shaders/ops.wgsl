// Elementwise op definitions, shared by unary.wgsl, binary.wgsl and the fused elementwise
// kernels that fuse/ generates from fused.wgsl. This file is not a kernel family: it is
// prepended to each of those sources. Each op of the op table (crates/kiln-device/src/op.rs)
// names its function here; the `switch` that the unary and binary families call with their op
// number (unary_f, binary_f and four-lane forms) is generated from the table (wgsl::op_switches).

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
fn u_sin(v: f32, a: f32) -> f32 { return sin(v); }
fn u_cos(v: f32, a: f32) -> f32 { return cos(v); }
fn u_rsub_scalar(v: f32, a: f32) -> f32 { return a - v; }
// fill: v is ignored.
fn u_fill(v: f32, a: f32) -> f32 { return a; }
// softplus, stable for any v: max(v, 0) + log(1 + exp(-|v|)).
fn u_softplus(v: f32, a: f32) -> f32 { return max(v, 0.0) + log(1.0 + exp(-abs(v))); }
// erf: the Taylor series below |v| = 0.5 (relative error under 1e-6 there, where the rational
// form below loses it), else Abramowitz and Stegun 7.1.26 (absolute error under 1.5e-7).
fn u_erf(v: f32, a: f32) -> f32 {
    return erf_e(v, exp(-v * v));
}

// erf(v) given e = e^(-v^2) (read only where |v| >= 0.5).
fn erf_e(v: f32, e: f32) -> f32 {
    let x = abs(v);
    if (x < 0.5) {
        let x2 = v * v;
        return 1.1283791671 * v * (1.0 - x2 * (0.33333333 - x2 * (0.1 - x2 * (0.023809524 - x2 * 0.0046296296))));
    }
    let t = 1.0 / (1.0 + 0.3275911 * x);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    return sign(v) * (1.0 - poly * e);
}

// GELU, exact: x / 2 * (1 + erf(x / sqrt 2)).
fn u_gelu(v: f32, a: f32) -> f32 {
    return 0.5 * v * (1.0 + u_erf(v * 0.70710678, 0.0));
}

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
// GELU backward: u the incoming gradient, v the GELU input; u * (Phi(v) + v * phi(v)).
// One exp, e^(-v^2 / 2), for phi and the erf.
fn b_gelu_backward(u: f32, v: f32) -> f32 {
    let e = exp(-0.5 * v * v);
    return u * (0.5 * (1.0 + erf_e(v * 0.70710678, e)) + v * e * 0.39894228);
}
// u where v is nonzero, else 0 (a select: u's infinities and NaNs do not leak where v is 0).
fn b_keep(u: f32, v: f32) -> f32 { return select(0.0, u, v != 0.0); }
