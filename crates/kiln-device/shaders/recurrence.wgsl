// Recurrence family: one time step of an RNN (tanh or relu), LSTM or GRU layer in one direction,
// forward and backward, after the hidden projection hp = h_prev W_hh^T (a matmul launched
// between the steps). ops.wgsl (tanh_) is prepended. One invocation per (batch row bi, hidden
// unit j); 2-D grid: i = gid.x + gid.y * (groups_x * 64).
//
// Layouts (H hidden units, G gates: 1 RNN, 4 LSTM (i, f, g, o), 3 GRU (r, z, n); S state
// width: 2 for an LSTM (h then c), else 1; A = 4 saved values per unit for LSTM and GRU):
//   xp     [B, T, G*H]      the input projections x W_ih^T + b_ih of every step (batch-first)
//   hp     [B, G*H]         h_prev W_hh^T of this step (no bias)
//   b_hh   [G*H]            the hidden bias (flags bit 0)
//   states [T+1, B, S*H]    processing order: slot 0 the initial state, slot s+1 after step s
//   aux    [T, B, 4*H]      per step: LSTM (i, f, g, o) activated; GRU (r, z, n, hp_n + b_hn)
//   out    [B, T, S*H]      the layer's output at time index `time` (and c for an LSTM)
// `step` is the processing index s, `time` the time index it reads and writes (T-1-s for the
// reverse direction).

struct Params {
    b: u32,
    t: u32,
    h: u32,
    kind: u32, // 0 RNN tanh, 1 RNN relu, 2 LSTM, 3 GRU
    step: u32,
    time: u32,
    flags: u32, // bit 0: b_hh given; bit 1 (backward): the last step processed first (no dhr, no carry)
    pad: u32,
}

// Bindings, by entry point:
//   rnn_init:     r0 h0 [B, H], r1 c0 [B, H]                 -> w0 states (slot 0)
//   rnn_forward:  r0 xp, r1 hp, r2 b_hh                      -> w0 states, w1 aux, w2 out
//   rnn_backward: r0 d_out [B, T, S*H], r1 dhr [B, H] (the next step's dG W_hh), r2 aux,
//                 r3 states -> w0 carry [B, H] (LSTM: dc; GRU: the direct part of dh; read then
//                 written), w1 dxp [B, T, G*H], w2 dg [T, B, G*H] (the hidden side's gate gradients)
@group(0) @binding(0) var<storage, read> r0: array<f32>;
@group(0) @binding(1) var<storage, read> r1: array<f32>;
@group(0) @binding(2) var<storage, read> r2: array<f32>;
@group(0) @binding(3) var<storage, read> r3: array<f32>;
@group(0) @binding(4) var<storage, read_write> w0: array<f32>;
@group(0) @binding(5) var<storage, read_write> w1: array<f32>;
@group(0) @binding(6) var<storage, read_write> w2: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

const LSTM: u32 = 2u;
const GRU: u32 = 3u;

fn gates() -> u32 {
    return select(select(1u, 4u, p.kind == LSTM), 3u, p.kind == GRU);
}

fn width() -> u32 {
    return select(1u, 2u, p.kind == LSTM);
}

fn sig(v: f32) -> f32 {
    return 1.0 / (1.0 + exp(-v));
}

fn bias(k: u32) -> f32 {
    return select(0.0, r2[k], (p.flags & 1u) != 0u);
}

fn unit(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

// Where invocation i (batch row bi, hidden unit j) reads and writes at this step: its row of
// the projections [B, T, G*H] and of the outputs [B, T, S*H] at time index p.time, its rows of
// the states [T+1, B, S*H] before and after the step, and of the saved gates [T, B, 4H].
struct At {
    bi: u32,
    j: u32,
    xrow: u32,
    orow: u32,
    prev: u32,
    next: u32,
    arow: u32,
}

fn at(i: u32) -> At {
    let hh = p.h;
    let s = width();
    let bi = i / hh;
    return At(
        bi,
        i % hh,
        (bi * p.t + p.time) * gates() * hh,
        (bi * p.t + p.time) * s * hh,
        (p.step * p.b + bi) * s * hh,
        ((p.step + 1u) * p.b + bi) * s * hh,
        (p.step * p.b + bi) * 4u * hh,
    );
}

@compute @workgroup_size(64)
fn rnn_init(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = unit(gid, nwg);
    if (i >= p.b * p.h) {
        return;
    }
    let s = width();
    let bi = i / p.h;
    let j = i % p.h;
    w0[bi * s * p.h + j] = r0[i];
    if (p.kind == LSTM) {
        w0[bi * s * p.h + p.h + j] = r1[i];
    }
}

@compute @workgroup_size(64)
fn rnn_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = unit(gid, nwg);
    if (i >= p.b * p.h) {
        return;
    }
    let hh = p.h;
    let loc = at(i);
    let j = loc.j;
    let xrow = loc.xrow;
    let hrow = loc.bi * gates() * hh;
    let prev = loc.prev;
    let next = loc.next;
    let orow = loc.orow;
    let arow = loc.arow;
    var hn: f32;
    if (p.kind == LSTM) {
        let gi = sig(r0[xrow + j] + r1[hrow + j] + bias(j));
        let gf = sig(r0[xrow + hh + j] + r1[hrow + hh + j] + bias(hh + j));
        let gg = tanh_(r0[xrow + 2u * hh + j] + r1[hrow + 2u * hh + j] + bias(2u * hh + j));
        let go = sig(r0[xrow + 3u * hh + j] + r1[hrow + 3u * hh + j] + bias(3u * hh + j));
        let c = gf * w0[prev + hh + j] + gi * gg;
        hn = go * tanh_(c);
        w1[arow + j] = gi;
        w1[arow + hh + j] = gf;
        w1[arow + 2u * hh + j] = gg;
        w1[arow + 3u * hh + j] = go;
        w0[next + hh + j] = c;
        w2[orow + hh + j] = c;
    } else if (p.kind == GRU) {
        let r = sig(r0[xrow + j] + r1[hrow + j] + bias(j));
        let z = sig(r0[xrow + hh + j] + r1[hrow + hh + j] + bias(hh + j));
        let hpn = r1[hrow + 2u * hh + j] + bias(2u * hh + j);
        let n = tanh_(r0[xrow + 2u * hh + j] + r * hpn);
        hn = (1.0 - z) * n + z * w0[prev + j];
        w1[arow + j] = r;
        w1[arow + hh + j] = z;
        w1[arow + 2u * hh + j] = n;
        w1[arow + 3u * hh + j] = hpn;
    } else {
        let a = r0[xrow + j] + r1[hrow + j] + bias(j);
        hn = select(tanh_(a), select(0.0, a, a > 0.0), p.kind == 1u);
    }
    w0[next + j] = hn;
    w2[orow + j] = hn;
}

@compute @workgroup_size(64)
fn rnn_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = unit(gid, nwg);
    if (i >= p.b * p.h) {
        return;
    }
    let hh = p.h;
    let loc = at(i);
    let j = loc.j;
    let first = (p.flags & 2u) != 0u;
    let orow = loc.orow;
    let prev = loc.prev;
    let next = loc.next;
    let arow = loc.arow;
    let xrow = loc.xrow;
    let grow = (p.step * p.b + loc.bi) * gates() * hh;
    // The gradient reaching h after this step: from the output, from the next step's hidden
    // projection, and (GRU) from the next step's direct path.
    var dh = r0[orow + j];
    var carry = 0.0;
    if (!first) {
        dh += r1[i];
        carry = w0[i];
    }
    if (p.kind == LSTM) {
        let gi = r2[arow + j];
        let gf = r2[arow + hh + j];
        let gg = r2[arow + 2u * hh + j];
        let go = r2[arow + 3u * hh + j];
        let c = r3[next + hh + j];
        let tc = tanh_(c);
        let dc = r0[orow + hh + j] + carry + dh * go * (1.0 - tc * tc);
        let di = dc * gg * gi * (1.0 - gi);
        let df = dc * r3[prev + hh + j] * gf * (1.0 - gf);
        let dgg = dc * gi * (1.0 - gg * gg);
        let dgo = dh * tc * go * (1.0 - go);
        w0[i] = dc * gf;
        w1[xrow + j] = di;
        w1[xrow + hh + j] = df;
        w1[xrow + 2u * hh + j] = dgg;
        w1[xrow + 3u * hh + j] = dgo;
        w2[grow + j] = di;
        w2[grow + hh + j] = df;
        w2[grow + 2u * hh + j] = dgg;
        w2[grow + 3u * hh + j] = dgo;
    } else if (p.kind == GRU) {
        dh += carry;
        let r = r2[arow + j];
        let z = r2[arow + hh + j];
        let n = r2[arow + 2u * hh + j];
        let hpn = r2[arow + 3u * hh + j];
        let dn = dh * (1.0 - z) * (1.0 - n * n);
        let dr = dn * hpn * r * (1.0 - r);
        let dz = dh * (r3[prev + j] - n) * z * (1.0 - z);
        w0[i] = dh * z;
        w1[xrow + j] = dr;
        w1[xrow + hh + j] = dz;
        w1[xrow + 2u * hh + j] = dn;
        w2[grow + j] = dr;
        w2[grow + hh + j] = dz;
        w2[grow + 2u * hh + j] = dn * r;
    } else {
        let y = r3[next + j];
        let da = select(dh * (1.0 - y * y), select(0.0, dh, y > 0.0), p.kind == 1u);
        w1[xrow + j] = da;
        w2[grow + j] = da;
    }
}
