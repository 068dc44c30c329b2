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
