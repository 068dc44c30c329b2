// Statistics family: what inspection and monitoring read about a tensor, on the device.
//   stats:     one workgroup per tensor; each invocation runs Welford's algorithm over a strided
//              slice of the finite elements, then the workgroup merges (Chan et al.) in a tree.
//              Writes 12 words at out[slot * 12]: n_finite, mean, M2, min, max, sum of squares
//              (floats, bitcast), then zeros, NaNs, Infs (counts). Many tensors write into one
//              buffer, so a whole model costs one read-back. A long tensor is walked in blocks
//              [off, n), one dispatch each (a block after the first merges into the slot), so
//              that an invocation's loop stays within llvmpipe's 65535 iterations per shader.
//   histogram: counts finite elements into `bins` equal bins over [lo, hi] (values outside are
//              not counted; hi falls in the last bin).

struct Params {
    n: u32,
    slot: u32,
    bins: u32,
    off: u32,    // stats: the block's first element (n is its end)
    lo: f32,
    hi: f32,
    pad1: f32,
    pad2: f32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<atomic<u32>>;
@group(0) @binding(2) var<uniform> p: Params;

const WG: u32 = 256u;
var<workgroup> w_n: array<f32, WG>;
var<workgroup> w_mean: array<f32, WG>;
var<workgroup> w_m2: array<f32, WG>;
var<workgroup> w_min: array<f32, WG>;
var<workgroup> w_max: array<f32, WG>;
var<workgroup> w_sq: array<f32, WG>;
var<workgroup> w_zero: array<u32, WG>;
var<workgroup> w_nan: array<u32, WG>;
var<workgroup> w_inf: array<u32, WG>;

fn is_nan(v: f32) -> bool {
    let b = bitcast<u32>(v);
    return (b & 0x7f800000u) == 0x7f800000u && (b & 0x007fffffu) != 0u;
}

fn is_inf(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) == 0x7f800000u;
}

@compute @workgroup_size(256)
fn stats(@builtin(local_invocation_index) t: u32) {
    var n = 0.0;
    var mean = 0.0;
    var m2 = 0.0;
    var mn = 3.4028235e38;
    var mx = -3.4028235e38;
    var sq = 0.0;
    var zeros = 0u;
    var nans = 0u;
    var infs = 0u;
    for (var i = p.off + t; i < p.n; i = i + WG) {
        let v = x[i];
        if (is_nan(v)) {
            nans = nans + 1u;
            continue;
        }
        if (is_inf(v)) {
            infs = infs + 1u;
            continue;
        }
        if (v == 0.0) {
            zeros = zeros + 1u;
        }
        n = n + 1.0;
        let d = v - mean;
        mean = mean + d / n;
        m2 = m2 + d * (v - mean);
        mn = min(mn, v);
        mx = max(mx, v);
        sq = sq + v * v;
    }
    w_n[t] = n;
    w_mean[t] = mean;
    w_m2[t] = m2;
    w_min[t] = mn;
    w_max[t] = mx;
    w_sq[t] = sq;
    w_zero[t] = zeros;
    w_nan[t] = nans;
    w_inf[t] = infs;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (t < s) {
            let na = w_n[t];
            let nb = w_n[t + s];
            let nn = na + nb;
            if (nb > 0.0) {
                let d = w_mean[t + s] - w_mean[t];
                w_mean[t] = w_mean[t] + d * (nb / nn);
                w_m2[t] = w_m2[t] + w_m2[t + s] + d * d * (na * nb / nn);
                w_n[t] = nn;
            }
            w_min[t] = min(w_min[t], w_min[t + s]);
            w_max[t] = max(w_max[t], w_max[t + s]);
            w_sq[t] = w_sq[t] + w_sq[t + s];
            w_zero[t] = w_zero[t] + w_zero[t + s];
            w_nan[t] = w_nan[t] + w_nan[t + s];
            w_inf[t] = w_inf[t] + w_inf[t + s];
        }
        workgroupBarrier();
    }
    if (t == 0u) {
        let o = p.slot * 12u;
        if (p.off != 0u) {
            // Merge with the blocks before (Chan et al.), as the tree did.
            let na = bitcast<f32>(atomicLoad(&out[o]));
            let nb = w_n[0];
            let nn = na + nb;
            if (na > 0.0) {
                let ma = bitcast<f32>(atomicLoad(&out[o + 1u]));
                let d = w_mean[0] - ma;
                w_mean[0] = ma + d * (nb / nn);
                w_m2[0] = bitcast<f32>(atomicLoad(&out[o + 2u])) + w_m2[0] + d * d * (na * nb / nn);
                w_n[0] = nn;
            }
            w_min[0] = min(w_min[0], bitcast<f32>(atomicLoad(&out[o + 3u])));
            w_max[0] = max(w_max[0], bitcast<f32>(atomicLoad(&out[o + 4u])));
            w_sq[0] = w_sq[0] + bitcast<f32>(atomicLoad(&out[o + 5u]));
            w_zero[0] = w_zero[0] + atomicLoad(&out[o + 6u]);
            w_nan[0] = w_nan[0] + atomicLoad(&out[o + 7u]);
            w_inf[0] = w_inf[0] + atomicLoad(&out[o + 8u]);
        }
        atomicStore(&out[o], bitcast<u32>(w_n[0]));
        atomicStore(&out[o + 1u], bitcast<u32>(w_mean[0]));
        atomicStore(&out[o + 2u], bitcast<u32>(w_m2[0]));
        atomicStore(&out[o + 3u], bitcast<u32>(w_min[0]));
        atomicStore(&out[o + 4u], bitcast<u32>(w_max[0]));
        atomicStore(&out[o + 5u], bitcast<u32>(w_sq[0]));
        atomicStore(&out[o + 6u], w_zero[0]);
        atomicStore(&out[o + 7u], w_nan[0]);
        atomicStore(&out[o + 8u], w_inf[0]);
    }
}

@compute @workgroup_size(256)
fn histogram(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) {
        return;
    }
    let v = x[i];
    if (is_nan(v) || is_inf(v) || v < p.lo || v > p.hi) {
        return;
    }
    var b = p.bins - 1u;
    if (p.hi > p.lo) {
        b = min(u32(floor((v - p.lo) / (p.hi - p.lo) * f32(p.bins))), p.bins - 1u);
    }
    atomicAdd(&out[b], 1u);
}
