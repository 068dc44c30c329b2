// Loss family: softmax cross-entropy fused, forward and backward, for logits x [rows, classes]
// and U32 labels [rows].
//   ce_rows:     per row (one invocation each): lse = max + log(sum(exp(x - max))) and
//                loss = lse - x[label]; 0 for an ignored row; NaN for a label out of range.
//   ce_rows_wg:  the same with a workgroup per row, for many classes (each invocation walks
//                classes / WG of them, and the maximum and sum combine in a tree).
//   ce_pick:     per row, the loss from a log-normaliser computed elsewhere (lse_in): rows
//                longer than one launch walks.
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
    ce_write(r, m + log(s));
}

@compute @workgroup_size(256)
fn ce_pick(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.x + gid.y * nwg.x * 256u;
    if (r < p.rows) {
        ce_write(r, lse_in[r]);
    }
}

// The row's loss from its log-normaliser.
fn ce_write(r: u32, lse: f32) {
    out2[r] = lse;
    let l = labels[r];
    if (ignored(l)) {
        out[r] = 0.0;
    } else if (l >= p.classes) {
        out[r] = bitcast<f32>(0x7fc00000u);
    } else {
        out[r] = lse - x[r * p.classes + l];
    }
}

const WG: u32 = 256u;
var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(256)
fn ce_rows_wg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) t: u32) {
    let r = wid.x + wid.y * nwg.x;
    if (r >= p.rows) {
        return; // the whole workgroup: r is uniform
    }
    let base = r * p.classes;
    var m = bitcast<f32>(0xff800000u);
    for (var c = t; c < p.classes; c = c + WG) {
        m = max(m, x[base + c]);
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
    for (var c = t; c < p.classes; c = c + WG) {
        s = s + exp(x[base + c] - m);
    }
    red[t] = s;
    workgroupBarrier();
    for (var w = WG / 2u; w > 0u; w = w / 2u) {
        if (t < w) {
            red[t] = red[t] + red[t + w];
        }
        workgroupBarrier();
    }
    if (t == 0u) {
        ce_write(r, m + log(red[0]));
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
