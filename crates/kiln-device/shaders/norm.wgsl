// Norm family: the per-channel sums that batch normalisation needs, in one read of the data,
// and layer normalisation by rows, forward and backward (below).
// x viewed as [n, c, l]; one workgroup per channel. Each invocation sums a slice of the channel's
// n * l values (lanes along l, groups of lanes along n when l is short), then the workgroup adds
// the partial sums in a tree.
//   mode 0 (forward statistics of u): writes out[ch] = the mean and out[c + ch] = the biased
//          variance of u's channel ch, from sums of u - k where k is the channel's first value
//          (the shift keeps the variance accurate when the mean is large against the spread).
//   mode 1 (backward sums): writes out[ch] = sum(u) and out[c + ch] = sum(u * (v - shift[ch])),
//          i.e. for u the output gradient, v the input and shift its mean: the bias gradient
//          and the weight gradient divided by rstd.
// A channel longer than one invocation's loop budget is summed in `blocks` blocks of `block`
// values (of its n * l, in order), a workgroup each (channel w % c, block w / c), each writing
// its two raw sums at out[blk * 2c + ch] and out[blk * 2c + c + ch]; `channel_finish` then adds
// the blocks and writes what the unblocked launch writes. Every block shifts by the same k.

struct Params {
    n: u32,
    c: u32,
    l: u32,
    mode: u32,
    block: u32,
    blocks: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<storage, read> u: array<f32>;
@group(0) @binding(1) var<storage, read> v: array<f32>;
@group(0) @binding(2) var<storage, read> shift: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

const WG: u32 = 256u;
var<workgroup> s1: array<f32, WG>;
var<workgroup> s2: array<f32, WG>;

@compute @workgroup_size(256)
fn channel_sums(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) t: u32) {
    let w = wid.x + wid.y * nwg.x;
    if (w >= p.c * p.blocks) {
        return; // the whole workgroup: w is uniform
    }
    let ch = w % p.c;
    let blk = w / p.c;
    // Lanes along l; when l is shorter than the workgroup, WG / l groups of lanes along n.
    var per = 1u;
    var g = 0u;
    var l0 = t;
    if (p.l < WG) {
        per = WG / p.l;
        g = t / p.l;
        l0 = t % p.l;
    }
    var ku = 0.0;
    var kv = 0.0;
    if (p.mode == 0u) {
        ku = u[ch * p.l];
        kv = ku;
    } else {
        kv = shift[ch];
    }
    var a = 0.0;
    var b = 0.0;
    if (p.blocks > 1u) {
        // Values k of the channel (row k / l, column k % l), this block's range in strides.
        let k1 = min((blk + 1u) * p.block, p.n * p.l);
        for (var k = blk * p.block + t; k < k1; k = k + WG) {
            let i = k / p.l;
            let at = (i * p.c + ch) * p.l + (k - i * p.l);
            let du = u[at] - ku;
            var dv = du;
            if (p.mode != 0u) {
                dv = v[at] - kv;
            }
            a = a + du;
            b = b + du * dv;
        }
    } else if (g < per) {
        for (var i = g; i < p.n; i = i + per) {
            let row = (i * p.c + ch) * p.l;
            for (var j = l0; j < p.l; j = j + WG) {
                let du = u[row + j] - ku;
                var dv = du;
                if (p.mode != 0u) {
                    dv = v[row + j] - kv;
                }
                a = a + du;
                b = b + du * dv;
            }
        }
    }
    s1[t] = a;
    s2[t] = b;
    workgroupBarrier();
    for (var w = WG / 2u; w > 0u; w = w / 2u) {
        if (t < w) {
            s1[t] = s1[t] + s1[t + w];
            s2[t] = s2[t] + s2[t + w];
        }
        workgroupBarrier();
    }
    if (t == 0u) {
        if (p.blocks > 1u) {
            out[blk * 2u * p.c + ch] = s1[0];
            out[blk * 2u * p.c + p.c + ch] = s2[0];
        } else {
            channel_out(ch, ku, s1[0], s2[0]);
        }
    }
}

// What channel ch's launch writes from its two sums (shifted by ku in mode 0).
fn channel_out(ch: u32, ku: f32, a: f32, b: f32) {
    if (p.mode == 0u) {
        let m = f32(p.n * p.l);
        let d = a / m;
        out[ch] = ku + d;
        out[p.c + ch] = max(b / m - d * d, 0.0);
    } else {
        out[ch] = a;
        out[p.c + ch] = b;
    }
}

// The blocks' sums (v, [blocks, 2, c]) added per channel, in block order: one invocation each.
@compute @workgroup_size(64)
fn channel_finish(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let ch = gid.x + gid.y * nwg.x * 64u;
    if (ch >= p.c) {
        return;
    }
    var a = 0.0;
    var b = 0.0;
    for (var blk = 0u; blk < p.blocks; blk = blk + 1u) {
        a = a + v[blk * 2u * p.c + ch];
        b = b + v[blk * 2u * p.c + p.c + ch];
    }
    var ku = 0.0;
    if (p.mode == 0u) {
        ku = u[ch * p.l];
    }
    channel_out(ch, ku, a, b);
}

// Layer normalisation over rows of n (x viewed as [rows, n]), one workgroup per row, two passes
// over the row for the mean and the variance (exact, not shifted sums), then the output.
//   layer_norm:          u = x, v = weight, shift = bias (flags bit 0 / bit 1 say which are
//                        there): out = y, out1 = the rows' statistics (mean at r, rstd at rows + r).
//   layer_norm_backward: u = g, v = x, shift = weight (flags bit 0), out1 = those statistics
//                        (read): out = dx = rstd (gw - mean(gw) - xhat mean(gw xhat)), gw = g w.

struct RowParams {
    rows: u32,
    n: u32,
    flags: u32,
    eps: f32,
}

@group(0) @binding(4) var<storage, read_write> out1: array<f32>;
@group(0) @binding(5) var<uniform> rp: RowParams;

// Output element j of the row at `base`: (x - mean) * rstd, times the weight and plus the bias
// where the flags say so.
fn ln_y(base: u32, j: u32, mean: f32, rstd: f32) -> f32 {
    var y = (u[base + j] - mean) * rstd;
    if ((rp.flags & 1u) != 0u) {
        y = y * v[j];
    }
    if ((rp.flags & 2u) != 0u) {
        y = y + shift[j];
    }
    return y;
}

// The backward's g * w at element j of the row at `base` (g alone without a weight).
fn ln_gw(base: u32, j: u32) -> f32 {
    if ((rp.flags & 1u) != 0u) {
        return u[base + j] * shift[j];
    }
    return u[base + j];
}

// The sum of `a` over the workgroup (every invocation gets it); uses s1.
fn wg_sum(t: u32, a: f32) -> f32 {
    s1[t] = a;
    workgroupBarrier();
    for (var w = WG / 2u; w > 0u; w = w / 2u) {
        if (t < w) {
            s1[t] = s1[t] + s1[t + w];
        }
        workgroupBarrier();
    }
    let total = s1[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(256)
fn layer_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) t: u32) {
    let r = wid.x + wid.y * nwg.x;
    if (r >= rp.rows) {
        return; // the whole workgroup: r is uniform
    }
    let base = r * rp.n;
    var a = 0.0;
    for (var j = t; j < rp.n; j = j + WG) {
        a = a + u[base + j];
    }
    let mean = wg_sum(t, a) / f32(rp.n);
    var b = 0.0;
    for (var j = t; j < rp.n; j = j + WG) {
        let d = u[base + j] - mean;
        b = b + d * d;
    }
    let rstd = 1.0 / sqrt(wg_sum(t, b) / f32(rp.n) + rp.eps);
    for (var j = t; j < rp.n; j = j + WG) {
        out[base + j] = ln_y(base, j, mean, rstd);
    }
    if (t == 0u) {
        out1[r] = mean;
        out1[rp.rows + r] = rstd;
    }
}

@compute @workgroup_size(256)
fn layer_norm_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) t: u32) {
    let r = wid.x + wid.y * nwg.x;
    if (r >= rp.rows) {
        return;
    }
    let base = r * rp.n;
    let mean = out1[r];
    let rstd = out1[rp.rows + r];
    var a = 0.0;
    var b = 0.0;
    for (var j = t; j < rp.n; j = j + WG) {
        let gw = ln_gw(base, j);
        a = a + gw;
        b = b + gw * (v[base + j] - mean) * rstd;
    }
    let ma = wg_sum(t, a) / f32(rp.n);
    let mb = wg_sum(t, b) / f32(rp.n);
    for (var j = t; j < rp.n; j = j + WG) {
        let gw = ln_gw(base, j);
        let xhat = (v[base + j] - mean) * rstd;
        out[base + j] = rstd * (gw - ma - xhat * mb);
    }
}

// The same for short rows: one invocation per row, no barriers (a software adapter pays for
// each workgroup barrier; a short row leaves most of a workgroup idle anyway).
@compute @workgroup_size(64)
fn layer_norm_short(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.x + gid.y * nwg.x * 64u;
    if (r >= rp.rows) {
        return;
    }
    let base = r * rp.n;
    var a = 0.0;
    for (var j = 0u; j < rp.n; j = j + 1u) {
        a = a + u[base + j];
    }
    let mean = a / f32(rp.n);
    var b = 0.0;
    for (var j = 0u; j < rp.n; j = j + 1u) {
        let d = u[base + j] - mean;
        b = b + d * d;
    }
    let rstd = 1.0 / sqrt(b / f32(rp.n) + rp.eps);
    for (var j = 0u; j < rp.n; j = j + 1u) {
        out[base + j] = ln_y(base, j, mean, rstd);
    }
    out1[r] = mean;
    out1[rp.rows + r] = rstd;
}

@compute @workgroup_size(64)
fn layer_norm_backward_short(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.x + gid.y * nwg.x * 64u;
    if (r >= rp.rows) {
        return;
    }
    let base = r * rp.n;
    let mean = out1[r];
    let rstd = out1[rp.rows + r];
    var a = 0.0;
    var b = 0.0;
    for (var j = 0u; j < rp.n; j = j + 1u) {
        let gw = ln_gw(base, j);
        a = a + gw;
        b = b + gw * (v[base + j] - mean) * rstd;
    }
    let ma = a / f32(rp.n);
    let mb = b / f32(rp.n);
    for (var j = 0u; j < rp.n; j = j + 1u) {
        let gw = ln_gw(base, j);
        out[base + j] = rstd * (gw - ma - (v[base + j] - mean) * rstd * mb);
    }
}
