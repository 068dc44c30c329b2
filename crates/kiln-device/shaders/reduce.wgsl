// Reduce family: for x viewed as [outer, dim, inner], reduces over `dim` into out[outer * inner]
// (sum, or max together with the index of its first occurrence in idx).
// A max takes NaN as larger than every number (the first NaN wins, as in PyTorch): `beats`.
// Two shapes of launch: `*_rows` gives each output one invocation (many short reductions);
// `*_wg` gives each output a workgroup of 256 invocations that each sum a strided slice and then
// combine in a tree, which keeps long reductions (10^6 elements) both parallel and accurate.
// A `*_wg` launch may split each output's dim into `chunks` blocks of `chunk` values, a
// workgroup each, writing out[o * chunks + block] (a second launch reduces the blocks): an
// invocation's loop then stays within llvmpipe's 65535 iterations per shader however long the
// dim. Without a split, chunks = 1 and chunk = dim. A split max writes each block's value and
// index as a pair of u32 (`max_wg_part`, the value's bits) and `max_merge` picks the first
// largest block per output.

struct Params {
    outer: u32,
    dim: u32,
    inner: u32,
    n_out: u32,
    chunk: u32,
    chunks: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> idx: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;

const WG: u32 = 256u;
var<workgroup> sv: array<f32, WG>;
var<workgroup> si: array<u32, WG>;

// NaN by its bits: WGSL lets a compiler assume floats are never NaN, so `a != a` may fold.
fn is_nan(a: f32) -> bool {
    return (bitcast<u32>(a) & 0x7fffffffu) > 0x7f800000u;
}

// Whether value a (at a later index) replaces the best so far b in a max: larger, or the
// first NaN.
fn beats(a: f32, b: f32) -> bool {
    return !is_nan(b) && (a > b || is_nan(a));
}

fn base_of(o: u32) -> u32 {
    return (o / p.inner) * p.dim * p.inner + (o % p.inner);
}

@compute @workgroup_size(256)
fn sum_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = gid.x + gid.y * nwg.x * 256u;
    if (o >= p.n_out) {
        return;
    }
    let base = base_of(o);
    var s = 0.0;
    for (var d = 0u; d < p.dim; d = d + 1u) {
        s = s + x[base + d * p.inner];
    }
    out[o] = s;
}

// sum_rows for inner % 4 == 0: four neighbouring outputs per invocation (same outer, inner
// 4-aligned) through vec4 views of the same bindings; the same order of additions per output.
@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> out4: array<vec4<f32>>;

// 64 invocations per workgroup: a bias gradient (512 outputs, 128 invocations) still spreads
// over more than one workgroup, so over more than one CPU thread on a software adapter.
@compute @workgroup_size(64)
fn sum_rows4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o4 = gid.x + gid.y * nwg.x * 64u;
    if (o4 >= p.n_out / 4u) {
        return;
    }
    let base = base_of(o4 * 4u) / 4u;
    let step = p.inner / 4u;
    var s = vec4<f32>(0.0);
    for (var d = 0u; d < p.dim; d = d + 1u) {
        s = s + x4[base + d * step];
    }
    out4[o4] = s;
}

@compute @workgroup_size(256)
fn max_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = gid.x + gid.y * nwg.x * 256u;
    if (o >= p.n_out) {
        return;
    }
    let base = base_of(o);
    var best = x[base];
    var bi = 0u;
    for (var d = 1u; d < p.dim; d = d + 1u) {
        let v = x[base + d * p.inner];
        if (beats(v, best)) {
            best = v;
            bi = d;
        }
    }
    out[o] = best;
    idx[o] = bi;
}

@compute @workgroup_size(256)
fn sum_wg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) t: u32) {
    let w = wid.x + wid.y * nwg.x;
    let o = w / p.chunks;
    // Every invocation of the workgroup reaches the barriers, in or out of range.
    let live = o < p.n_out;
    var s = 0.0;
    if (live) {
        let base = base_of(o);
        let d0 = (w - o * p.chunks) * p.chunk;
        let d1 = min(d0 + p.chunk, p.dim);
        for (var d = d0 + t; d < d1; d = d + WG) {
            s = s + x[base + d * p.inner];
        }
    }
    sv[t] = s;
    workgroupBarrier();
    for (var w = WG / 2u; w > 0u; w = w / 2u) {
        if (t < w) {
            sv[t] = sv[t] + sv[t + w];
        }
        workgroupBarrier();
    }
    if (live && t == 0u) {
        out[w] = sv[0];
    }
}

// The largest value of workgroup `g`'s block (block g % chunks of output g / chunks) and the
// index in the dim of its first occurrence (value bits, index), in every invocation.
fn max_block(g: u32, t: u32) -> vec2<u32> {
    let o = g / p.chunks;
    let live = o < p.n_out;
    var best = 0.0;
    var bi = 0xffffffffu;
    if (live) {
        let base = base_of(o);
        let d0 = (g - o * p.chunks) * p.chunk;
        let d1 = min(d0 + p.chunk, p.dim);
        for (var d = d0 + t; d < d1; d = d + WG) {
            let v = x[base + d * p.inner];
            if (bi == 0xffffffffu || beats(v, best)) {
                best = v;
                bi = d;
            }
        }
    }
    sv[t] = best;
    si[t] = bi;
    workgroupBarrier();
    for (var w = WG / 2u; w > 0u; w = w / 2u) {
        if (t < w) {
            let ov = sv[t + w];
            let oi = si[t + w];
            // Take the other candidate if it exists and beats this one, or ties it (equal, or
            // both NaN) with a lower index.
            let cv = sv[t];
            let tie = (ov == cv && !is_nan(cv)) || (is_nan(ov) && is_nan(cv));
            if (oi != 0xffffffffu && (si[t] == 0xffffffffu || beats(ov, cv) || (tie && oi < si[t]))) {
                sv[t] = ov;
                si[t] = oi;
            }
        }
        workgroupBarrier();
    }
    return vec2<u32>(bitcast<u32>(sv[0]), si[0]);
}

@compute @workgroup_size(256)
fn max_wg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) t: u32) {
    let o = wid.x + wid.y * nwg.x; // chunks = 1
    let r = max_block(o, t);
    if (o < p.n_out && t == 0u) {
        out[o] = bitcast<f32>(r.x);
        idx[o] = r.y;
    }
}

// The blocks' (value bits, index) pairs, at outu[2w] and outu[2w + 1].
@group(0) @binding(1) var<storage, read_write> outu: array<u32>;

@compute @workgroup_size(256)
fn max_wg_part(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) t: u32) {
    let w = wid.x + wid.y * nwg.x;
    let r = max_block(w, t);
    if (w / p.chunks < p.n_out && t == 0u) {
        outu[2u * w] = r.x;
        outu[2u * w + 1u] = r.y;
    }
}

// max_wg_part's pairs read back as u32 (no float load of the value bits).
@group(0) @binding(0) var<storage, read> xu: array<u32>;

// For each output, the first block holding the largest value: blocks are in index order, so
// its index is the first occurrence in the whole dim.
@compute @workgroup_size(256)
fn max_merge(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = gid.x + gid.y * nwg.x * 256u;
    if (o >= p.n_out) {
        return;
    }
    let b0 = 2u * o * p.chunks;
    var best = bitcast<f32>(xu[b0]);
    var bi = xu[b0 + 1u];
    for (var c = 1u; c < p.chunks; c = c + 1u) {
        let v = bitcast<f32>(xu[b0 + 2u * c]);
        if (beats(v, best)) {
            best = v;
            bi = xu[b0 + 2u * c + 1u];
        }
    }
    out[o] = best;
    idx[o] = bi;
}
