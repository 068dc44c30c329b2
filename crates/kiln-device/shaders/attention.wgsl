// Attention family: scaled dot-product attention that never writes the [L, S] score matrix.
// q [BH, L, D], k and v [BH, S, D], o [BH, L, D]; score(i, j) = scale * q_i . k_j + mask(i, j),
// with the additive mask read through strides (b, h, i, j) where bh = b * heads + h (stride 0
// broadcasts), and causal masking (j > i blocked) without a mask tensor. A blocked score is
// -inf: it takes no part.
//   attn_fwd:    one invocation per query row: the scores one key at a time with an online
//                softmax (running maximum m and sum l, the output accumulated and rescaled), so
//                memory is O(D) per row. Writes o and lse = m + log(l) per row (the softmax's
//                log-normaliser, which the backward recomputes probabilities from). A row with
//                every score blocked gets NaN (as PyTorch's math attention) and lse = +inf, so
//                that it sends no gradient anywhere.
//   attn_bwd_q:  one invocation per query row: dq_i = scale * sum_j ds_ij k_j, with
//                p_ij = exp(score - lse_i), dp_ij = do_i . v_j, ds_ij = p_ij (dp_ij - delta_i),
//                delta_i = do_i . o_i (stats[rows + r]).
//   attn_bwd_kv: one invocation per key row: dv_j = sum_i p_ij do_i, dk_j = scale * sum_i ds_ij q_i.
// Both backward kernels recompute the scores; neither writes more than its own rows (no atomics).
// Head dims up to MAXD.
//
// Each dispatch walks one block [p.j0, p.j1) of the loop dimension (keys for attn_fwd and
// attn_bwd_q, query rows for attn_bwd_kv) and carries the row's running state in the outputs
// from one block to the next (p.first: start from zero; p.last: finish), so that the loop
// iterations of one invocation stay bounded: llvmpipe stops every loop of a shader after 65535
// iterations in all (LP_MAX_TGSI_LOOP_ITERATIONS, shared by the shader's loops), silently, and
// a real GPU's watchdog cuts long dispatches. The launcher sizes the blocks.

struct Params {
    rows: u32,    // BH * L for attn_fwd / attn_bwd_q, BH * S for attn_bwd_kv
    heads: u32,
    l: u32,
    s: u32,
    d: u32,
    has_mask: u32,
    causal: u32,
    scale: f32,
    m_b: u32,     // mask strides for b, h, i, j
    m_h: u32,
    m_i: u32,
    m_j: u32,
    j0: u32,      // this dispatch's block of the loop dimension
    j1: u32,
    first: u32,   // 1: the first block (no state yet)
    last: u32,    // 1: the last block (finish the rows)
}

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> mask: array<f32>;
@group(0) @binding(4) var<storage, read> dout: array<f32>;
@group(0) @binding(5) var<storage, read> stats: array<f32>;   // lse [BH * L], then delta [BH * L]
@group(0) @binding(6) var<storage, read_write> out0: array<f32>; // o, dq or dk
@group(0) @binding(7) var<storage, read_write> out1: array<f32>; // lse (then l) or dv
@group(0) @binding(8) var<uniform> p: Params;

const MAXD: u32 = 128u;

fn is_neg_inf(x: f32) -> bool {
    return bitcast<u32>(x) == 0xff800000u;
}

// The score of query row i and key row j of head bh from their scaled dot product; -inf if
// blocked.
fn masked(bh: u32, i: u32, j: u32, dot: f32) -> f32 {
    if (p.causal != 0u && j > i) {
        return bitcast<f32>(0xff800000u);
    }
    var sc = dot;
    if (p.has_mask != 0u) {
        let b = bh / p.heads;
        let h = bh - b * p.heads;
        sc = sc + mask[b * p.m_b + h * p.m_h + i * p.m_i + j * p.m_j];
    }
    return sc;
}

fn row_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

// Between blocks a row's state is its running maximum m (out1[r]), sum l (out1[rows + r]) and
// unnormalised output (out0); the last block writes o = acc / l and lse = m + log(l).
@compute @workgroup_size(64)
fn attn_fwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = row_id(gid, nwg);
    if (r >= p.rows) {
        return;
    }
    let bh = r / p.l;
    let i = r - bh * p.l;
    var qs: array<f32, MAXD>;
    var acc: array<f32, MAXD>;
    var m = bitcast<f32>(0xff800000u);
    var l = 0.0;
    if (p.first == 0u) {
        m = out1[r];
        l = out1[p.rows + r];
    }
    for (var c = 0u; c < p.d; c = c + 1u) {
        qs[c] = q[r * p.d + c] * p.scale;
        acc[c] = select(out0[r * p.d + c], 0.0, p.first != 0u);
    }
    var jend = p.j1;
    if (p.causal != 0u) {
        jend = min(jend, i + 1u);
    }
    for (var j = p.j0; j < jend; j = j + 1u) {
        let kr = (bh * p.s + j) * p.d;
        var dot = 0.0;
        for (var c = 0u; c < p.d; c = c + 1u) {
            dot = dot + qs[c] * k[kr + c];
        }
        let sc = masked(bh, i, j, dot);
        if (is_neg_inf(sc)) {
            continue;
        }
        let mn = max(m, sc);
        let corr = exp(m - mn);
        let e = exp(sc - mn);
        l = l * corr + e;
        for (var c = 0u; c < p.d; c = c + 1u) {
            acc[c] = acc[c] * corr + e * v[kr + c];
        }
        m = mn;
    }
    if (p.last == 0u) {
        for (var c = 0u; c < p.d; c = c + 1u) {
            out0[r * p.d + c] = acc[c];
        }
        out1[r] = m;
        out1[p.rows + r] = l;
        return;
    }
    if (l == 0.0) {
        for (var c = 0u; c < p.d; c = c + 1u) {
            out0[r * p.d + c] = bitcast<f32>(0x7fc00000u);
        }
        out1[r] = bitcast<f32>(0x7f800000u);
        return;
    }
    for (var c = 0u; c < p.d; c = c + 1u) {
        out0[r * p.d + c] = acc[c] / l;
    }
    out1[r] = m + log(l);
}

@compute @workgroup_size(64)
fn attn_bwd_q(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = row_id(gid, nwg);
    if (r >= p.rows) {
        return;
    }
    let bh = r / p.l;
    let i = r - bh * p.l;
    var qs: array<f32, MAXD>;
    var g: array<f32, MAXD>;
    var acc: array<f32, MAXD>;
    for (var c = 0u; c < p.d; c = c + 1u) {
        qs[c] = q[r * p.d + c] * p.scale;
        g[c] = dout[r * p.d + c];
        acc[c] = 0.0;
    }
    let lse = stats[r];
    let delta = stats[p.rows + r];
    var jend = p.j1;
    if (p.causal != 0u) {
        jend = min(jend, i + 1u);
    }
    for (var j = p.j0; j < jend; j = j + 1u) {
        let kr = (bh * p.s + j) * p.d;
        var dot = 0.0;
        for (var c = 0u; c < p.d; c = c + 1u) {
            dot = dot + qs[c] * k[kr + c];
        }
        let sc = masked(bh, i, j, dot);
        if (is_neg_inf(sc)) {
            continue;
        }
        let pr = exp(sc - lse);
        if (pr == 0.0) {
            continue;
        }
        var dp = 0.0;
        for (var c = 0u; c < p.d; c = c + 1u) {
            dp = dp + g[c] * v[kr + c];
        }
        let ds = pr * (dp - delta);
        for (var c = 0u; c < p.d; c = c + 1u) {
            acc[c] = acc[c] + ds * k[kr + c];
        }
    }
    for (var c = 0u; c < p.d; c = c + 1u) {
        out0[r * p.d + c] = select(out0[r * p.d + c], 0.0, p.first != 0u) + acc[c] * p.scale;
    }
}

@compute @workgroup_size(64)
fn attn_bwd_kv(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = row_id(gid, nwg); // a key row: bh * S + j
    if (r >= p.rows) {
        return;
    }
    let bh = r / p.s;
    let j = r - bh * p.s;
    var kk: array<f32, MAXD>;
    var vv: array<f32, MAXD>;
    var dk: array<f32, MAXD>;
    var dv: array<f32, MAXD>;
    for (var c = 0u; c < p.d; c = c + 1u) {
        kk[c] = k[r * p.d + c];
        vv[c] = v[r * p.d + c];
        dk[c] = 0.0;
        dv[c] = 0.0;
    }
    var i0 = p.j0;
    if (p.causal != 0u) {
        i0 = max(i0, j); // rows i >= j see key j
    }
    let qrows = (p.rows / p.s) * p.l; // BH * L
    for (var i = i0; i < p.j1; i = i + 1u) {
        let qr = bh * p.l + i;
        let qo = qr * p.d;
        var dot = 0.0;
        for (var c = 0u; c < p.d; c = c + 1u) {
            dot = dot + q[qo + c] * kk[c];
        }
        let sc = masked(bh, i, j, dot * p.scale);
        if (is_neg_inf(sc)) {
            continue;
        }
        let pr = exp(sc - stats[qr]);
        if (pr == 0.0) {
            continue;
        }
        var dp = 0.0;
        for (var c = 0u; c < p.d; c = c + 1u) {
            let gc = dout[qo + c];
            dv[c] = dv[c] + pr * gc;
            dp = dp + gc * vv[c];
        }
        let ds = pr * (dp - stats[qrows + qr]);
        for (var c = 0u; c < p.d; c = c + 1u) {
            dk[c] = dk[c] + ds * q[qo + c];
        }
    }
    for (var c = 0u; c < p.d; c = c + 1u) {
        out0[r * p.d + c] = select(out0[r * p.d + c], 0.0, p.first != 0u) + dk[c] * p.scale;
        out1[r * p.d + c] = select(out1[r * p.d + c], 0.0, p.first != 0u) + dv[c];
    }
}
