// Binary elementwise family with NumPy broadcasting: out[i] = f(a[ia], b[ib]).
// The output is contiguous with `rank` dims (at most 8, after the host has merged dims that need
// no index arithmetic); a and b are read through per-dim strides in elements, 0 on a broadcast dim.
// The op is the overridable constant OP (binary_f, generated from the op table and prepended to
// this file with the functions of ops.wgsl).
// Comparison ops write 1.0 or 0.0. One and two dims (the common cases after merging) take paths
// without per-element division.

struct Params {
    n: u32,
    rank: u32,
    pad0: u32,
    pad1: u32,
    shape: array<vec4<u32>, 2>,
    sa: array<vec4<u32>, 2>,
    sb: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

override OP: u32 = 0u;

fn f(u: f32, v: f32) -> f32 {
    return binary_f(OP, u, v);
}

@compute @workgroup_size(256)
fn binary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) {
        return;
    }
    if (p.rank == 1u) {
        // Contiguous operands (merged to one dim): no index arithmetic at all.
        out[i] = f(a[i * p.sa[0][0]], b[i * p.sb[0][0]]);
        return;
    }
    var rem = i;
    var ia = 0u;
    var ib = 0u;
    for (var d = i32(p.rank) - 1; d >= 0; d = d - 1) {
        let q = u32(d) / 4u;
        let r = u32(d) % 4u;
        let s = p.shape[q][r];
        let c = rem % s;
        rem = rem / s;
        ia = ia + c * p.sa[q][r];
        ib = ib + c * p.sb[q][r];
    }
    out[i] = f(a[ia], b[ib]);
}

// Two merged dims (a row or column broadcast): a 2-D launch, x over the columns and the
// workgroup's y (and z, past 65,535 rows) over the rows, so no invocation divides.
@compute @workgroup_size(256)
fn binary2d(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let cols = p.shape[0][1];
    let col = gid.x;
    let row = wid.y + wid.z * nwg.y;
    if (col >= cols || row >= p.shape[0][0]) {
        return;
    }
    let ia = row * p.sa[0][0] + col * p.sa[0][1];
    let ib = row * p.sb[0][0] + col * p.sb[0][1];
    out[row * cols + col] = f(a[ia], b[ib]);
}

// Vec4 views of the same bindings, for binary2d4.
@group(0) @binding(0) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out4: array<vec4<f32>>;

// Element e of a (as four equal lanes) when a is broadcast along the columns, else the vec4
// starting at element e (4-aligned: the host checks the strides).
fn load_a(e: u32, col_stride: u32) -> vec4<f32> {
    if (col_stride == 0u) {
        return vec4<f32>(a4[e / 4u][e % 4u]);
    }
    return a4[e / 4u];
}

fn load_b(e: u32, col_stride: u32) -> vec4<f32> {
    if (col_stride == 0u) {
        return vec4<f32>(b4[e / 4u][e % 4u]);
    }
    return b4[e / 4u];
}

// binary2d, four columns per invocation: for cols % 4 == 0 with column strides 0 or 1 (and row
// strides that keep a contiguous operand's rows 4-aligned). One dim is the case rows = 1.
@compute @workgroup_size(256)
fn binary2d4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    let cols = p.shape[0][1];
    let col = gid.x * 4u;
    let row = wid.y + wid.z * nwg.y;
    if (col >= cols || row >= p.shape[0][0]) {
        return;
    }
    let u = load_a(row * p.sa[0][0] + col * p.sa[0][1], p.sa[0][1]);
    let v = load_b(row * p.sb[0][0] + col * p.sb[0][1], p.sb[0][1]);
    out4[(row * cols + col) / 4u] = binary4_f(OP, u, v);
}
