//! A recurrent layer's time loop (RNN, LSTM or GRU, one direction) as one autograd node:
//! `Tensor::recurrence` runs every step from the input projections of all steps, and its
//! backward walks the steps in reverse. Per step, on either device: the hidden projection
//! h_prev W_hh^T (a matmul reading the previous state in place), then the cell's arithmetic in
//! one pass that writes the new state, the gate values the backward needs and the output
//! (`recurrence.wgsl` on the GPU, the loops below on the CPU). The backward produces the
//! gradient of the projections (its own matmul to W_ih, b_ih and x is the projection's), the
//! gates' gradients of the hidden side, from which W_hh's and b_hh's gradients are one product
//! and one sum over all steps, and the initial states' gradients.
//!
//! Layouts are those of `kiln_device::kernels::recurrence` (H hidden, G gates, S = 2 state
//! blocks for an LSTM, else 1): xp [B, T, G*H], out [B, T, S*H] (h, then c for an LSTM, at each
//! time index), states [T+1, B, S*H] and saved gates [T, B, 4*H] in processing order.

use kiln_device::kernels::{self, CellKind, RecurrenceDesc};
use kiln_device::op::tanh;

use super::gpu;
use crate::autograd::{Op, no_grad};
use crate::cpu;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::tensor::Tensor;

fn sig(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

/// The CPU forward: (out, states, aux) as the GPU launcher returns them.
fn host_forward(
    xp: &[f32],
    h0: &[f32],
    c0: Option<&[f32]>,
    w_hh: &[f32],
    b_hh: Option<&[f32]>,
    d: &RecurrenceDesc,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (b, t, h, g, s, a) = (d.batch, d.steps, d.hidden, d.kind.gates(), d.kind.width(), d.kind.saved());
    let mut states = vec![0f32; (t + 1) * b * s * h];
    let mut aux = vec![0f32; t * b * a * h];
    let mut out = vec![0f32; b * t * s * h];
    for bi in 0..b {
        states[bi * s * h..bi * s * h + h].copy_from_slice(&h0[bi * h..(bi + 1) * h]);
        if let Some(c0) = c0 {
            states[bi * s * h + h..(bi + 1) * s * h].copy_from_slice(&c0[bi * h..(bi + 1) * h]);
        }
    }
    let proj = d.hidden_projection();
    let bias = |k: usize| b_hh.map_or(0.0, |bb| bb[k]);
    for step in 0..t {
        let time = d.time(step);
        let hp = cpu::matmul(&states[step * b * s * h..], w_hh, &proj);
        let (done, rest) = states.split_at_mut((step + 1) * b * s * h);
        let prev = &done[step * b * s * h..];
        for bi in 0..b {
            let x = &xp[(bi * t + time) * g * h..][..g * h];
            let hr = &hp[bi * g * h..][..g * h];
            let pv = &prev[bi * s * h..][..s * h];
            let nx = &mut rest[bi * s * h..][..s * h];
            let o = &mut out[(bi * t + time) * s * h..][..s * h];
            let ax = &mut aux[(step * b + bi) * a * h..][..a * h];
            for j in 0..h {
                let pre = |k: usize| x[k * h + j] + hr[k * h + j] + bias(k * h + j);
                let hn = match d.kind {
                    CellKind::Lstm => {
                        let (gi, gf, gg, go) = (sig(pre(0)), sig(pre(1)), tanh(pre(2)), sig(pre(3)));
                        let c = gf * pv[h + j] + gi * gg;
                        (ax[j], ax[h + j], ax[2 * h + j], ax[3 * h + j]) = (gi, gf, gg, go);
                        nx[h + j] = c;
                        o[h + j] = c;
                        go * tanh(c)
                    }
                    CellKind::Gru => {
                        let (r, z) = (sig(pre(0)), sig(pre(1)));
                        let hpn = hr[2 * h + j] + bias(2 * h + j);
                        let n = tanh(x[2 * h + j] + r * hpn);
                        (ax[j], ax[h + j], ax[2 * h + j], ax[3 * h + j]) = (r, z, n, hpn);
                        (1.0 - z) * n + z * pv[j]
                    }
                    CellKind::RnnTanh => tanh(pre(0)),
                    CellKind::RnnRelu => pre(0).max(0.0),
                };
                nx[j] = hn;
                o[j] = hn;
            }
        }
    }
    (out, states, aux)
}

/// The CPU backward: (dxp, dg, dhr, carry) as the GPU launcher returns them.
fn host_backward(
    d_out: &[f32],
    states: &[f32],
    aux: &[f32],
    w_hh: &[f32],
    d: &RecurrenceDesc,
) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let (b, t, h, g, s, a) = (d.batch, d.steps, d.hidden, d.kind.gates(), d.kind.width(), d.kind.saved());
    let mut carry = vec![0f32; b * h];
    let mut dxp = vec![0f32; b * t * g * h];
    let mut dg = vec![0f32; t * b * g * h];
    let mut dhr = vec![0f32; b * h];
    let back = d.recurrent_gradient();
    for step in (0..t).rev() {
        let time = d.time(step);
        for bi in 0..b {
            let o = &d_out[(bi * t + time) * s * h..][..s * h];
            let pv = &states[(step * b + bi) * s * h..][..s * h];
            let nx = &states[((step + 1) * b + bi) * s * h..][..s * h];
            let ax = &aux[(step * b + bi) * a * h..][..a * h];
            let dx = &mut dxp[(bi * t + time) * g * h..][..g * h];
            let dgr = &mut dg[(step * b + bi) * g * h..][..g * h];
            for j in 0..h {
                let i = bi * h + j;
                // dhr and carry start at zero: the last step processed first has neither.
                let dh = o[j] + dhr[i];
                match d.kind {
                    CellKind::Lstm => {
                        let (gi, gf, gg, go) = (ax[j], ax[h + j], ax[2 * h + j], ax[3 * h + j]);
                        let tc = tanh(nx[h + j]);
                        let dc = o[h + j] + carry[i] + dh * go * (1.0 - tc * tc);
                        let grads = [
                            dc * gg * gi * (1.0 - gi),
                            dc * pv[h + j] * gf * (1.0 - gf),
                            dc * gi * (1.0 - gg * gg),
                            dh * tc * go * (1.0 - go),
                        ];
                        carry[i] = dc * gf;
                        for (k, v) in grads.into_iter().enumerate() {
                            dx[k * h + j] = v;
                            dgr[k * h + j] = v;
                        }
                    }
                    CellKind::Gru => {
                        let dh = dh + carry[i];
                        let (r, z, n, hpn) = (ax[j], ax[h + j], ax[2 * h + j], ax[3 * h + j]);
                        let dn = dh * (1.0 - z) * (1.0 - n * n);
                        let dr = dn * hpn * r * (1.0 - r);
                        let dz = dh * (pv[j] - n) * z * (1.0 - z);
                        carry[i] = dh * z;
                        (dx[j], dx[h + j], dx[2 * h + j]) = (dr, dz, dn);
                        (dgr[j], dgr[h + j], dgr[2 * h + j]) = (dr, dz, dn * r);
                    }
                    CellKind::RnnTanh | CellKind::RnnRelu => {
                        let y = nx[j];
                        let da = if d.kind == CellKind::RnnTanh {
                            dh * (1.0 - y * y)
                        } else if y > 0.0 {
                            dh
                        } else {
                            0.0
                        };
                        dx[j] = da;
                        dgr[j] = da;
                    }
                }
            }
        }
        dhr = cpu::matmul(&dg[step * b * g * h..], w_hh, &back);
    }
    (dxp, dg, dhr, carry)
}

impl Tensor {
    /// A recurrent layer's time loop in one direction (see the module docs): from the input
    /// projections `xp` [B, T, G*H] (x W_ih^T + b_ih), the initial state `h0` [B, H] (and `c0`
    /// for an LSTM), `w_hh` [G*H, H] and `b_hh` [G*H], the output [B, T, S*H]: h at each time
    /// index, followed by c for an LSTM. Differentiable in every input, as one node. The
    /// building block of `nn::RNN`, `nn::LSTM`, `nn::GRU` and their cells, which check their
    /// inputs first; inconsistent shapes here are an error naming them.
    pub fn recurrence(
        xp: &Tensor,
        h0: &Tensor,
        c0: Option<&Tensor>,
        w_hh: &Tensor,
        b_hh: Option<&Tensor>,
        kind: CellKind,
        reverse: bool,
    ) -> Result<Tensor> {
        let op = "recurrence";
        let (b, h) = (h0.shape()[0], w_hh.shape()[1]);
        let xs = xp.shape();
        let d = RecurrenceDesc { kind, batch: b, steps: xs[1], hidden: h, reverse };
        let g = kind.gates() * h;
        let ok = xs.len() == 3
            && xs[0] == b
            && xs[2] == g
            && h0.shape() == [b, h]
            && w_hh.shape() == [g, h]
            && c0.is_none_or(|c| c.shape() == [b, h])
            && c0.is_some() == (kind == CellKind::Lstm)
            && b_hh.is_none_or(|x| x.shape() == [g]);
        if !ok || b == 0 || h == 0 || xs[1] == 0 {
            return Err(Error::invalid(
                op,
                format!("inconsistent shapes: xp {xs:?}, h0 {:?}, w_hh {:?} for {kind:?}", h0.shape(), w_hh.shape()),
            ));
        }
        let all: Vec<&Tensor> = [Some(xp), Some(h0), c0, Some(w_hh), b_hh].into_iter().flatten().collect();
        for t in &all {
            t.expect_dtype(op, DType::F32)?;
            xp.same_device(op, t)?;
        }
        let (out, states, aux) = match xp.storage() {
            Storage::Gpu(xb) => {
                let buf = |t: &Tensor| super::gpu_buf(op, t);
                let (h0b, wb) = (buf(h0)?, buf(w_hh)?);
                let c0b = c0.map(buf).transpose()?;
                let bb = b_hh.map(buf).transpose()?;
                let (o, st, ax) =
                    kernels::recurrence_forward(gpu(xp.dev()), xb, &h0b, c0b.as_deref(), &wb, bb.as_deref(), &d)?;
                (Storage::gpu(o), Storage::gpu(st), Storage::gpu(ax))
            }
            _ => {
                let (o, st, ax) = host_forward(
                    xp.cpu_f32(),
                    h0.cpu_f32(),
                    c0.map(|c| c.cpu_f32()),
                    w_hh.cpu_f32(),
                    b_hh.map(|x| x.cpu_f32()),
                    &d,
                );
                (Storage::f32_cpu(o), Storage::f32_cpu(st), Storage::f32_cpu(ax))
            }
        };
        let (t, s) = (d.steps, kind.width());
        let dev = xp.device();
        let states = Tensor::from_parts(states, vec![t + 1, b, s * h], DType::F32, dev.clone());
        let aux = Tensor::from_parts(aux, vec![t * b * kind.saved() * h], DType::F32, dev.clone());
        let node = Op::Recurrence {
            xp: xp.clone(),
            h0: h0.clone(),
            c0: c0.cloned(),
            w_hh: w_hh.clone(),
            b_hh: b_hh.cloned(),
            desc: d,
            states,
            aux,
        };
        Ok(Tensor::from_op(out, vec![b, t, s * h], DType::F32, dev, node))
    }

    /// The gradients of [`Tensor::recurrence`]'s inputs (xp, h0, c0, w_hh, b_hh; the absent
    /// ones skipped) for the output gradient `g`. Runs with grad mode off.
    pub(crate) fn recurrence_backward(
        g: &Tensor,
        w_hh: &Tensor,
        states: &Tensor,
        aux: &Tensor,
        d: &RecurrenceDesc,
        bias: bool,
    ) -> Result<Vec<Option<Tensor>>> {
        let op = "recurrence_backward";
        let (b, t, h, gh) = (d.batch, d.steps, d.hidden, d.kind.gates() * d.hidden);
        let dev = g.device();
        let (dxp, dg, dhr, carry) = match g.storage() {
            Storage::Gpu(gb) => {
                let buf = |t: &Tensor| super::gpu_buf(op, t);
                let (st, ax, w) = (buf(states)?, buf(aux)?, buf(w_hh)?);
                let (dx, dgg, dh, c) = kernels::recurrence_backward(gpu(g.dev()), gb, &st, &ax, &w, d)?;
                (Storage::gpu(dx), Storage::gpu(dgg), Storage::gpu(dh), Storage::gpu(c))
            }
            _ => {
                let (dx, dgg, dh, c) = host_backward(g.cpu_f32(), states.cpu_f32(), aux.cpu_f32(), w_hh.cpu_f32(), d);
                (Storage::f32_cpu(dx), Storage::f32_cpu(dgg), Storage::f32_cpu(dh), Storage::f32_cpu(c))
            }
        };
        let part = |s: Storage, shape: Vec<usize>| Tensor::from_parts(s, shape, DType::F32, dev.clone());
        let (dxp, dg) = (part(dxp, vec![b, t, gh]), part(dg, vec![t * b, gh]));
        let (dhr, carry) = (part(dhr, vec![b, h]), part(carry, vec![b, h]));
        no_grad(|| -> Result<Vec<Option<Tensor>>> {
            let mut grads = vec![Some(dxp)];
            match d.kind {
                CellKind::Lstm => grads.extend([Some(dhr), Some(carry)]),
                CellKind::Gru => grads.push(Some(dhr.add(&carry)?)),
                CellKind::RnnTanh | CellKind::RnnRelu => grads.push(Some(dhr)),
            }
            // dW_hh = sum over steps of dg_s^T h_prev(s): the h half of states' first T slots.
            let mut hs = states.narrow(0usize, 0, t)?;
            if d.kind.width() == 2 {
                hs = hs.narrow(2usize, 0, h)?;
            }
            grads.push(Some(Tensor::matmul_t(&dg, true, &hs.reshape(&[t * b, h])?, false)?));
            if bias {
                grads.push(Some(dg.sum(0usize, false)?));
            }
            Ok(grads)
        })
    }
}
