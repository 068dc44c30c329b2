//! Launchers of `recurrence.wgsl`: a whole RNN, LSTM or GRU layer in one direction over a
//! sequence, forward and backward, as two dispatches per time step: the hidden projection (a
//! matmul reading the previous state in place) and one kernel for the cell's arithmetic, which
//! writes the new state, the values its backward needs and the layer's output where they
//! belong (no per-step slicing, stacking or gradient scattering).
//!
//! The backward walks the steps in reverse: the cell kernel turns the output's gradient and the
//! recurrent gradient into the gates' gradients, written both for the input projection
//! (`dxp`, batch-first, the gradient of `xp`) and per step for the hidden side (`dg`,
//! processing order), from which a matmul gives the next recurrent gradient. The weight and bias
//! gradients of the hidden side are then one product and one sum over all steps (the caller's).

use bytemuck::{Pod, Zeroable};

use super::matmul::{MatmulDesc, matmul_at};
use super::u32_of;
use crate::device::GpuDevice;
use crate::error::{DeviceError, DeviceResult};
use crate::pool::GpuBuffer;
use crate::recorder::grid;
use crate::wgsl::Family;

/// The cell of a recurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellKind {
    /// h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh).
    RnnTanh,
    /// h' = relu(...).
    RnnRelu,
    /// PyTorch's LSTM: gates i, f, g, o; state (h, c).
    Lstm,
    /// PyTorch's GRU: gates r, z, n, with b_hn inside the reset product.
    Gru,
}

impl CellKind {
    /// Gate blocks of H in the projections: 1, 4 or 3.
    pub fn gates(self) -> usize {
        match self {
            CellKind::RnnTanh | CellKind::RnnRelu => 1,
            CellKind::Lstm => 4,
            CellKind::Gru => 3,
        }
    }

    /// State blocks of H per row: 2 for an LSTM (h, c), else 1.
    pub fn width(self) -> usize {
        if self == CellKind::Lstm { 2 } else { 1 }
    }

    /// Values saved per unit and step for the backward: 4 for LSTM and GRU, none for an RNN.
    pub fn saved(self) -> usize {
        match self {
            CellKind::RnnTanh | CellKind::RnnRelu => 0,
            CellKind::Lstm | CellKind::Gru => 4,
        }
    }

    fn code(self) -> u32 {
        match self {
            CellKind::RnnTanh => 0,
            CellKind::RnnRelu => 1,
            CellKind::Lstm => 2,
            CellKind::Gru => 3,
        }
    }
}

/// One layer and direction over a sequence: batch B, steps T, hidden H.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecurrenceDesc {
    /// The cell.
    pub kind: CellKind,
    /// Batch rows B.
    pub batch: usize,
    /// Time steps T.
    pub steps: usize,
    /// Hidden units H.
    pub hidden: usize,
    /// Walk the sequence from its end (a bidirectional layer's second direction).
    pub reverse: bool,
}

impl RecurrenceDesc {
    /// The time index of processing step `s`.
    pub fn time(&self, s: usize) -> usize {
        if self.reverse { self.steps - 1 - s } else { s }
    }

    /// The product h_prev W_hh^T of step `s`: states [T+1, B, S*H] read at slot s, W_hh [G*H, H].
    pub fn hidden_projection(&self) -> MatmulDesc {
        let (g, h) = (self.kind.gates() * self.hidden, self.hidden);
        let row = self.kind.width() * h;
        MatmulDesc { m: self.batch, n: g, k: h, batch: 1, a_rs: row, a_cs: 1, a_bs: 0, b_rs: 1, b_cs: h, b_bs: 0 }
    }

    /// The product dg_s W_hh of the backward: dg [T, B, G*H] read at slot s, W_hh [G*H, H].
    pub fn recurrent_gradient(&self) -> MatmulDesc {
        let (g, h) = (self.kind.gates() * self.hidden, self.hidden);
        MatmulDesc { m: self.batch, n: h, k: g, batch: 1, a_rs: g, a_cs: 1, a_bs: 0, b_rs: h, b_cs: 1, b_bs: 0 }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct RecurrenceParams {
    b: u32,
    t: u32,
    h: u32,
    kind: u32,
    step: u32,
    time: u32,
    flags: u32,
    pad: u32,
}

impl RecurrenceParams {
    fn new(d: &RecurrenceDesc, step: usize, flags: u32) -> DeviceResult<RecurrenceParams> {
        let op = "recurrence";
        Ok(RecurrenceParams {
            b: u32_of(op, d.batch)?,
            t: u32_of(op, d.steps)?,
            h: u32_of(op, d.hidden)?,
            kind: d.kind.code(),
            step: u32_of(op, step)?,
            time: u32_of(op, d.time(step))?,
            flags,
            pad: 0,
        })
    }
}

fn check(d: &RecurrenceDesc) -> DeviceResult<()> {
    if d.batch == 0 || d.steps == 0 || d.hidden == 0 {
        return Err(DeviceError::Launch { op: "recurrence", msg: format!("empty sequence: {d:?}") });
    }
    // The largest buffer's elements must index in u32.
    u32_of("recurrence", (d.steps + 1) * d.batch * d.hidden * d.kind.gates().max(d.kind.saved()))?;
    Ok(())
}

fn alloc(dev: &GpuDevice, floats: usize, op: &str) -> DeviceResult<GpuBuffer> {
    dev.alloc(floats.max(1) as u64 * 4, op)
}

/// The forward pass from the input projections `xp` [B, T, G*H] (x W_ih^T + b_ih), the initial
/// state `h0` (and `c0` for an LSTM) [B, H], `w_hh` [G*H, H] and `b_hh` [G*H]: returns the
/// output [B, T, S*H] (h, and c for an LSTM, at each time index), the states [T+1, B, S*H] in
/// processing order and the saved gate values [T, B, 4*H] (LSTM, GRU).
pub fn recurrence_forward(
    dev: &GpuDevice,
    xp: &GpuBuffer,
    h0: &GpuBuffer,
    c0: Option<&GpuBuffer>,
    w_hh: &GpuBuffer,
    b_hh: Option<&GpuBuffer>,
    d: &RecurrenceDesc,
) -> DeviceResult<(GpuBuffer, GpuBuffer, GpuBuffer)> {
    check(d)?;
    let op = "recurrence";
    let (b, t, h, s) = (d.batch, d.steps, d.hidden, d.kind.width());
    let states = alloc(dev, (t + 1) * b * s * h, op)?;
    let aux = alloc(dev, t * b * d.kind.saved() * h, op)?;
    let out = alloc(dev, b * t * s * h, op)?;
    let cx = dev.cx();
    let groups = grid(cx, (b * h).div_ceil(64))?;
    let init = cx.pipeline(Family::Recurrence, "rnn_init", &[])?;
    let params = RecurrenceParams::new(d, 0, 0)?;
    // Unused bindings: the dummies, read-only ones only (a buffer never bound twice as writable).
    let c0 = c0.map(|c| c.raw()).unwrap_or(cx.dummy(0));
    let bufs = [h0.raw(), c0, cx.dummy(1), cx.dummy(2), states.raw(), aux.raw(), out.raw()];
    dev.record(&init, &bufs, bytemuck::bytes_of(&params), groups)?;
    let pipe = cx.pipeline(Family::Recurrence, "rnn_forward", &[])?;
    let proj = d.hidden_projection();
    let bias = b_hh.map(|x| x.raw()).unwrap_or(cx.dummy(1));
    for step in 0..t {
        let hp = matmul_at(dev, &states, step * b * s * h, w_hh, &proj)?;
        let params = RecurrenceParams::new(d, step, b_hh.is_some() as u32)?;
        let bufs = [xp.raw(), hp.raw(), bias, cx.dummy(0), states.raw(), aux.raw(), out.raw()];
        dev.record(&pipe, &bufs, bytemuck::bytes_of(&params), groups)?;
    }
    Ok((out, states, aux))
}

/// The backward pass for the output's gradient `d_out` [B, T, S*H], from the forward's
/// `states` and `aux`: returns the gradient of `xp` [B, T, G*H], the hidden side's gate
/// gradients [T, B, G*H] in processing order (dW_hh = dg^T states[..T], db_hh = their column
/// sums), the recurrent part of the initial state's gradient dg_0 W_hh [B, H], and the carry
/// [B, H]: for an LSTM the gradient of c0, for a GRU the direct part of h0's (add it), unused
/// for an RNN.
pub fn recurrence_backward(
    dev: &GpuDevice,
    d_out: &GpuBuffer,
    states: &GpuBuffer,
    aux: &GpuBuffer,
    w_hh: &GpuBuffer,
    d: &RecurrenceDesc,
) -> DeviceResult<(GpuBuffer, GpuBuffer, GpuBuffer, GpuBuffer)> {
    check(d)?;
    let op = "recurrence_backward";
    let (b, t, h, g) = (d.batch, d.steps, d.hidden, d.kind.gates());
    let carry = alloc(dev, b * h, op)?;
    let dxp = alloc(dev, b * t * g * h, op)?;
    let dg = alloc(dev, t * b * g * h, op)?;
    let cx = dev.cx();
    let groups = grid(cx, (b * h).div_ceil(64))?;
    let pipe = cx.pipeline(Family::Recurrence, "rnn_backward", &[])?;
    let back = d.recurrent_gradient();
    let mut dhr: Option<GpuBuffer> = None;
    for step in (0..t).rev() {
        let params = RecurrenceParams::new(d, step, if dhr.is_none() { 2 } else { 0 })?;
        let r1 = dhr.as_ref().map(|x| x.raw()).unwrap_or(cx.dummy(0));
        let bufs = [d_out.raw(), r1, aux.raw(), states.raw(), carry.raw(), dxp.raw(), dg.raw()];
        dev.record(&pipe, &bufs, bytemuck::bytes_of(&params), groups)?;
        dhr = Some(matmul_at(dev, &dg, step * b * g * h, w_hh, &back)?);
    }
    Ok((dxp, dg, dhr.expect("steps > 0"), carry))
}
