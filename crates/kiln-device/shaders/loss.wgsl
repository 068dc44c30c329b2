// Loss family: softmax cross-entropy fused, forward and backward, for logits x [rows, classes]
// and U32 labels [rows].
//   ce_rows:     per row (one invocation each): lse = max + log(sum(exp(x - max))) and
//                loss = lse - x[label]; 0 for an ignored row; NaN for a label out of range.
//   ce_backward: per element: dx = (exp(x - lse) - [c == label]) * g_row; 0 for ignored rows.
// Bindings: x, labels, lse, g (read) and out, out2 (written); ce_rows reads x and labels and
// writes loss (out) and lse (out2); ce_backward reads all four and writes dx (out).

struct Params {
    rows: u32,
    classes: u32,
    ignore: u32,
    has_ignore: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<u32>;
@group(0) @binding(2) var<storage, read> lse_in: array<f32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> out2: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

fn ignored(l: u32) -> bool {
    return p.has_ignore == 1u && l == p.ignore;
}

@compute @workgroup_size(256)
fn ce_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.x + gid.y * nwg.x * 256u;
    if (r >= p.rows) {
        return;
    }
    let base = r * p.classes;
    var m = x[base];
    for (var c = 1u; c < p.classes; c = c + 1u) {
        m = max(m, x[base + c]);
    }
    var s = 0.0;
    for (var c = 0u; c < p.classes; c = c + 1u) {
        s = s + exp(x[base + c] - m);
    }
    let lse = m + log(s);
    out2[r] = lse;
    let l = labels[r];
    if (ignored(l)) {
        out[r] = 0.0;
    } else if (l >= p.classes) {
        out[r] = bitcast<f32>(0x7fc00000u);
    } else {
        out[r] = lse - x[base + l];
    }
}

@compute @workgroup_size(256)
fn ce_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.rows * p.classes) {
        return;
    }
    let r = i / p.classes;
    let c = i % p.classes;
    let l = labels[r];
    if (ignored(l)) {
        out[i] = 0.0;
        return;
    }
    let sm = exp(x[i] - lse_in[r]);
    out[i] = (sm - select(0.0, 1.0, c == l)) * g[r];
}
