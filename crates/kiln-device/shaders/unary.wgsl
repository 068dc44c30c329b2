// Unary elementwise family: y[i] = f(x[i]) over contiguous f32 arrays, including the scalar
// forms (x + alpha, x * alpha, x / alpha, x ^ alpha, comparison masks against alpha). The ops
// themselves are the functions of ops.wgsl, called through the generated unary_f switch; both
// are prepended to this file. OP_FILL (generated too) fills y with alpha without reading x.
// The op is chosen by the pipeline-overridable
// constant OP, so each op compiles to its own branch-free pipeline. Large arrays use a 2-D grid: i = gid.x + gid.y * (groups_x * 256).

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

@compute @workgroup_size(256)
fn unary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) {
        return;
    }
    if (OP == OP_FILL) {
        y[i] = p.alpha; // fill: x is not read
        return;
    }
    y[i] = unary_f(OP, x[i], p.alpha);
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
    if (OP == OP_FILL) {
        y4[i] = vec4<f32>(p.alpha); // fill: x is not read
        return;
    }
    let v = x4[i];
    y4[i] = unary4_f(OP, v, p.alpha);
}
