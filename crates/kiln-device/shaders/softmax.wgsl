// Softmax family: softmax or log_softmax of x viewed as [outer, dim, inner] along `dim`, one
// invocation per (outer, inner) row, numerically stable: the row max is subtracted before exp.
// LOG = 1 selects log_softmax: x - max - log(sum(exp(x - max))).

struct Params {
    outer: u32,
    dim: u32,
    inner: u32,
    n_rows: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

override LOG: u32 = 0u;

@compute @workgroup_size(256)
fn softmax(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.x + gid.y * nwg.x * 256u;
    if (r >= p.n_rows) {
        return;
    }
    let base = (r / p.inner) * p.dim * p.inner + (r % p.inner);
    var m = x[base];
    for (var d = 1u; d < p.dim; d = d + 1u) {
        m = max(m, x[base + d * p.inner]);
    }
    var s = 0.0;
    for (var d = 0u; d < p.dim; d = d + 1u) {
        s = s + exp(x[base + d * p.inner] - m);
    }
    if (LOG == 1u) {
        let ls = m + log(s);
        for (var d = 0u; d < p.dim; d = d + 1u) {
            let i = base + d * p.inner;
            y[i] = x[i] - ls;
        }
    } else {
        for (var d = 0u; d < p.dim; d = d + 1u) {
            let i = base + d * p.inner;
            y[i] = exp(x[i] - m) / s;
        }
    }
}

// softmax_wg: the same for long rows, one workgroup of WG invocations per row, each walking a
// strided slice (dim / WG values) and combining the maximum and the sum in a tree: a row's
// loops stay short however long it is (llvmpipe ends a shader's loops, silently, after 65535
// iterations in all) and its values are read in parallel.
const WG: u32 = 256u;
var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(256)
fn softmax_wg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) t: u32) {
    let r = wid.x + wid.y * nwg.x;
    if (r >= p.n_rows) {
        return; // the whole workgroup: r is uniform
    }
    let base = (r / p.inner) * p.dim * p.inner + (r % p.inner);
    var m = bitcast<f32>(0xff800000u);
    for (var d = t; d < p.dim; d = d + WG) {
        m = max(m, x[base + d * p.inner]);
    }
    red[t] = m;
    workgroupBarrier();
    for (var w = WG / 2u; w > 0u; w = w / 2u) {
        if (t < w) {
            red[t] = max(red[t], red[t + w]);
        }
        workgroupBarrier();
    }
    m = red[0];
    workgroupBarrier();
    var s = 0.0;
    for (var d = t; d < p.dim; d = d + WG) {
        s = s + exp(x[base + d * p.inner] - m);
    }
    red[t] = s;
    workgroupBarrier();
    for (var w = WG / 2u; w > 0u; w = w / 2u) {
        if (t < w) {
            red[t] = red[t] + red[t + w];
        }
        workgroupBarrier();
    }
    s = red[0];
    let ls = m + log(s);
    for (var d = t; d < p.dim; d = d + WG) {
        let i = base + d * p.inner;
        if (LOG == 1u) {
            y[i] = x[i] - ls;
        } else {
            y[i] = exp(x[i] - m) / s;
        }
    }
}
