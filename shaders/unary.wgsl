// Unary elementwise family: y[i] = f(x[i]) over contiguous f32 arrays, including the scalar
// forms (x + alpha, x * alpha, x / alpha, x ^ alpha, comparison masks against alpha).
// OP 18 fills y with alpha without reading x. The op is chosen by the pipeline-overridable constant OP, so each op compiles to its own
// branch-free pipeline. Large arrays use a 2-D grid: i = gid.x + gid.y * (groups_x * 256).

struct Params {
    n: u32,
    pad0: u32,
    alpha: f32,
    pad1: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

override OP: u32 = 0u;

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

fn f(v: f32) -> f32 {
    switch OP {
        case 0u: { return -v; }
        case 1u: { return exp(v); }
        case 2u: { return log(v); }
        case 3u: { return sqrt(v); }
        case 4u: { return tanh_(v); }
        case 5u: { return 1.0 / (1.0 + exp(-v)); }
        // NOTE: relu as select, so relu(0) = 0 and its gradient at 0 is 0, as in PyTorch.
        case 6u: { return select(0.0, v, v > 0.0); }
        case 7u: { return v + p.alpha; }
        case 8u: { return v * p.alpha; }
        case 9u: { return v / p.alpha; }
        case 10u: { return powf(v, p.alpha); }
        case 11u: { return select(0.0, 1.0, v > p.alpha); }
        case 12u: { return select(0.0, 1.0, v < p.alpha); }
        case 13u: { return select(0.0, 1.0, v >= p.alpha); }
        case 14u: { return select(0.0, 1.0, v <= p.alpha); }
        case 15u: { return select(0.0, 1.0, v == p.alpha); }
        case 16u: { return abs(v); }
        case 17u: { return p.alpha - v; }
        // softplus, stable for any v: max(v, 0) + log(1 + exp(-|v|)).
        case 19u: { return max(v, 0.0) + log(1.0 + exp(-abs(v))); }
        default: { return v; }
    }
}

@compute @workgroup_size(256)
fn unary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) {
        return;
    }
    if (OP == 18u) {
        y[i] = p.alpha; // fill: x is not read
        return;
    }
    y[i] = f(x[i]);
}

// Four elements per invocation through vec4 views of the same bindings, for n % 4 == 0: on a
// software adapter each load or store costs about the same for a vec4 as for one f32.
@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> y4: array<vec4<f32>>;

@compute @workgroup_size(256)
fn unary4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n / 4u) {
        return;
    }
    if (OP == 18u) {
        y4[i] = vec4<f32>(p.alpha); // fill: x is not read
        return;
    }
    let v = x4[i];
    y4[i] = vec4<f32>(f(v.x), f(v.y), f(v.z), f(v.w));
}
