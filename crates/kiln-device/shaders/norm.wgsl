// Norm family: the per-channel sums that batch normalisation needs, in one read of the data.
// x viewed as [n, c, l]; one workgroup per channel. Each invocation sums a slice of the channel's
// n * l values (lanes along l, groups of lanes along n when l is short), then the workgroup adds
// the partial sums in a tree.
//   mode 0 (forward statistics of u): writes out[ch] = the mean and out[c + ch] = the biased
//          variance of u's channel ch, from sums of u - k where k is the channel's first value
//          (the shift keeps the variance accurate when the mean is large against the spread).
//   mode 1 (backward sums): writes out[ch] = sum(u) and out[c + ch] = sum(u * (v - shift[ch])),
//          i.e. for u the output gradient, v the input and shift its mean: the bias gradient
//          and the weight gradient divided by rstd.

struct Params {
    n: u32,
    c: u32,
    l: u32,
    mode: u32,
}

@group(0) @binding(0) var<storage, read> u: array<f32>;
@group(0) @binding(1) var<storage, read> v: array<f32>;
@group(0) @binding(2) var<storage, read> shift: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const WG: u32 = 256u;
var<workgroup> s1: array<f32, WG>;
var<workgroup> s2: array<f32, WG>;

@compute @workgroup_size(256)
fn channel_sums(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) t: u32) {
    let ch = wid.x + wid.y * nwg.x;
    if (ch >= p.c) {
        return; // the whole workgroup: ch is uniform
    }
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
    if (g < per) {
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
        if (p.mode == 0u) {
            let m = f32(p.n * p.l);
            let d = s1[0] / m;
            out[ch] = ku + d;
            out[p.c + ch] = max(s2[0] / m - d * d, 0.0);
        } else {
            out[ch] = s1[0];
            out[p.c + ch] = s2[0];
        }
    }
}
