// Optimizer family: one fused update per parameter, PyTorch's single-tensor formulas, op for op.
// p (read) and g (read) give the new value p_out (written); the optimizer's state buffers s1, s2,
// s3 are owned by the optimizer alone and updated in place. Scalars that PyTorch computes in
// double on the host (bias corrections, step size, 1 - lr * wd) arrive precomputed.
//   sgd:  s1 = momentum buffer
//   adam: s1 = exp_avg, s2 = exp_avg_sq, s3 = max_exp_avg_sq (amsgrad)

struct Params {
    n: u32,
    flags: u32,
    pad0: u32,
    pad1: u32,
    lr: f32,
    wd: f32,
    momentum: f32,
    dampening: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    eps: f32,
    step_size: f32,
    bc2_sqrt: f32,
    decay: f32,
    pad2: f32,
}

const NESTEROV: u32 = 1u;
const FIRST_STEP: u32 = 2u;
const AMSGRAD: u32 = 4u;
const DECOUPLED: u32 = 8u;
const MOMENTUM: u32 = 16u;
const MAXIMIZE: u32 = 32u;

@group(0) @binding(0) var<storage, read> p: array<f32>;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> p_out: array<f32>;
@group(0) @binding(3) var<storage, read_write> s1: array<f32>;
@group(0) @binding(4) var<storage, read_write> s2: array<f32>;
@group(0) @binding(5) var<storage, read_write> s3: array<f32>;
@group(0) @binding(6) var<uniform> u: Params;

fn has(f: u32) -> bool {
    return (u.flags & f) != 0u;
}

@compute @workgroup_size(256)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= u.n) {
        return;
    }
    let pv = p[i];
    var d = select(g[i], -g[i], has(MAXIMIZE));
    if (u.wd != 0.0) {
        d = d + u.wd * pv;
    }
    if (has(MOMENTUM)) {
        var buf = d;
        if (!has(FIRST_STEP)) {
            buf = s1[i] * u.momentum + (1.0 - u.dampening) * d;
        }
        s1[i] = buf;
        d = select(buf, d + u.momentum * buf, has(NESTEROV));
    }
    p_out[i] = pv + (-u.lr) * d;
}

@compute @workgroup_size(256)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= u.n) {
        return;
    }
    var pv = p[i];
    var gr = select(g[i], -g[i], has(MAXIMIZE));
    if (has(DECOUPLED)) {
        pv = pv * u.decay;
    } else if (u.wd != 0.0) {
        gr = gr + u.wd * pv;
    }
    // exp_avg.lerp_(grad, 1 - beta1), with torch's two-sided lerp formula.
    let m0 = s1[i];
    let w = u.one_minus_beta1;
    let m = select(gr - (gr - m0) * (1.0 - w), m0 + w * (gr - m0), w < 0.5);
    let v = s2[i] * u.beta2 + u.one_minus_beta2 * gr * gr;
    s1[i] = m;
    s2[i] = v;
    var vv = v;
    if (has(AMSGRAD)) {
        vv = max(s3[i], v);
        s3[i] = vv;
    }
    let denom = sqrt(vv) / u.bc2_sqrt + u.eps;
    p_out[i] = pv + (-u.step_size) * (m / denom);
}

// The same updates, four elements per invocation through vec4 views of the same bindings (for
// n % 4 == 0): one vec4 load costs a software adapter about what one f32 load does.
@group(0) @binding(0) var<storage, read> p4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> g4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> p_out4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> s14: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> s24: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> s34: array<vec4<f32>>;

@compute @workgroup_size(256)
fn adam4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= u.n / 4u) {
        return;
    }
    var pv = p4[i];
    var gr = select(g4[i], -g4[i], has(MAXIMIZE));
    if (has(DECOUPLED)) {
        pv = pv * u.decay;
    } else if (u.wd != 0.0) {
        gr = gr + u.wd * pv;
    }
    let m0 = s14[i];
    let w = u.one_minus_beta1;
    let m = select(gr - (gr - m0) * (1.0 - w), m0 + w * (gr - m0), w < 0.5);
    let v = s24[i] * u.beta2 + u.one_minus_beta2 * gr * gr;
    s14[i] = m;
    s24[i] = v;
    var vv = v;
    if (has(AMSGRAD)) {
        vv = max(s34[i], v);
        s34[i] = vv;
    }
    let denom = sqrt(vv) / u.bc2_sqrt + u.eps;
    p_out4[i] = pv + (-u.step_size) * (m / denom);
}

@compute @workgroup_size(256)
fn sgd4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= u.n / 4u) {
        return;
    }
    let pv = p4[i];
    var d = select(g4[i], -g4[i], has(MAXIMIZE));
    if (u.wd != 0.0) {
        d = d + u.wd * pv;
    }
    if (has(MOMENTUM)) {
        var buf = d;
        if (!has(FIRST_STEP)) {
            buf = s14[i] * u.momentum + (1.0 - u.dampening) * d;
        }
        s14[i] = buf;
        d = select(buf, d + u.momentum * buf, has(NESTEROV));
    }
    p_out4[i] = pv + (-u.lr) * d;
}
