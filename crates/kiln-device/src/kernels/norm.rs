//! Launchers of `norm.wgsl`: the per-channel sums of batch normalisation (one workgroup per
//! channel, one read of the data) and layer normalisation by rows, forward and backward (one
//! workgroup per row, or one invocation per row up to 256 elements).

use bytemuck::{Pod, Zeroable};

use super::{LOOP_BUDGET, u32_of};
use crate::device::GpuDevice;
use crate::error::{DeviceError, DeviceResult};
use crate::pool::GpuBuffer;
use crate::recorder::grid;
use crate::wgsl::Family;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct NormParams {
    n: u32,
    c: u32,
    l: u32,
    mode: u32,
    block: u32,
    blocks: u32,
    pad: [u32; 2],
}

/// Values of a channel one workgroup of a blocked `channel_sums` launch takes (its invocations
/// walk `CHANNEL_BLOCK / 256` each, within [`LOOP_BUDGET`]).
const CHANNEL_BLOCK: usize = LOOP_BUDGET / 2 * 256;

fn channel_sums(
    dev: &GpuDevice,
    op: &'static str,
    u: &GpuBuffer,
    v: Option<(&GpuBuffer, &GpuBuffer)>,
    [n, c, l]: [usize; 3],
) -> DeviceResult<GpuBuffer> {
    if n * l == 0 || c == 0 {
        return Err(DeviceError::Launch { op, msg: format!("empty channels: [{n}, {c}, {l}]") });
    }
    u32_of(op, n * c * l)?;
    // An invocation walks n / (256 / l) rows of l / 256 values (lanes along l, groups of lanes
    // along n for short channels); past the loop budget the channel goes in blocks.
    let iters = if l < 256 { n.div_ceil(256 / l) * 2 } else { n * (1 + l.div_ceil(256)) };
    // (At least two blocks: a blocked launch is one of more than one block.)
    let blocks = if iters + 16 > LOOP_BUDGET { (n * l).div_ceil(CHANNEL_BLOCK).max(2) } else { 1 };
    let params = NormParams {
        n: u32_of(op, n)?,
        c: u32_of(op, c)?,
        l: u32_of(op, l)?,
        mode: v.is_some() as u32,
        block: u32_of(op, (n * l).div_ceil(blocks))?,
        blocks: blocks as u32,
        pad: [0; 2],
    };
    let out = dev.alloc(2 * c as u64 * 4, op)?;
    let cx = dev.cx();
    let (vb, shift) = match v {
        Some((v, s)) => (v.raw(), s.raw()),
        None => (u.raw(), cx.dummy(0)),
    };
    let pipe = cx.pipeline(Family::Norm, "channel_sums", &[])?;
    if blocks == 1 {
        let bufs = [u.raw(), vb, shift, out.raw(), cx.dummy(1)];
        dev.record(&pipe, &bufs, bytemuck::bytes_of(&params), grid(cx, c)?)?;
        return Ok(out);
    }
    // The blocks' raw sums, then their totals per channel (in `blocks` steps each).
    let part = dev.alloc((2 * c * blocks) as u64 * 4, op)?;
    let bufs = [u.raw(), vb, shift, part.raw(), cx.dummy(1)];
    dev.record(&pipe, &bufs, bytemuck::bytes_of(&params), grid(cx, c * blocks)?)?;
    let pipe = cx.pipeline(Family::Norm, "channel_finish", &[])?;
    let bufs = [u.raw(), part.raw(), cx.dummy(0), out.raw(), cx.dummy(1)];
    dev.record(&pipe, &bufs, bytemuck::bytes_of(&params), grid(cx, c.div_ceil(64))?)?;
    Ok(out)
}

/// The mean and biased variance of each channel of x viewed as [n, c, l]: [2 * c] values, the
/// c means then the c variances.
pub fn channel_moments(dev: &GpuDevice, x: &GpuBuffer, dims: [usize; 3]) -> DeviceResult<GpuBuffer> {
    channel_sums(dev, "batch_norm", x, None, dims)
}

/// For g and x viewed as [n, c, l] and `mean` [c]: [2 * c] values, sum(g) over each channel,
/// then sum(g * (x - mean)) over each channel (batch normalisation's backward sums).
pub fn channel_grad_sums(
    dev: &GpuDevice,
    g: &GpuBuffer,
    x: &GpuBuffer,
    mean: &GpuBuffer,
    dims: [usize; 3],
) -> DeviceResult<GpuBuffer> {
    channel_sums(dev, "batch_norm_backward", g, Some((x, mean)), dims)
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct RowParams {
    rows: u32,
    n: u32,
    flags: u32,
    eps: f32,
}

/// The longest row the layer-norm kernels take: a long row's invocations walk it three times
/// in strides of 256, within [`LOOP_BUDGET`]. Longer rows are for a composition of reductions.
pub const LAYER_NORM_MAX_ROW: usize = (LOOP_BUDGET - 16) / 3 * 256;

/// Rows up to this long take the one-invocation-per-row kernels, longer ones a workgroup each.
const SHORT_ROW: usize = 256;

/// The entry point and grid for `rows` rows of `n`: a workgroup per row, or one invocation per
/// short row.
fn row_launch(
    dev: &GpuDevice,
    wide: &'static str,
    short: &'static str,
    rows: usize,
    n: usize,
) -> DeviceResult<(&'static str, [u32; 3])> {
    Ok(if n <= SHORT_ROW { (short, grid(dev.cx(), rows.div_ceil(64))?) } else { (wide, grid(dev.cx(), rows)?) })
}

fn row_params(op: &'static str, rows: usize, n: usize, flags: u32, eps: f32) -> DeviceResult<RowParams> {
    if rows == 0 || n == 0 {
        return Err(DeviceError::Launch { op, msg: format!("empty rows: [{rows}, {n}]") });
    }
    u32_of(op, rows * n)?;
    if n > LAYER_NORM_MAX_ROW {
        let msg = format!("rows of {n} are longer than one launch walks ({LOOP_BUDGET} steps)");
        return Err(DeviceError::Launch { op, msg });
    }
    Ok(RowParams { rows: u32_of(op, rows)?, n: u32_of(op, n)?, flags, eps })
}

/// Layer normalisation of x viewed as [rows, n], times `weight` [n] and plus `bias` [n] where
/// given: the output [rows * n] and the rows' statistics [2 * rows] (the means, then 1 / std).
pub fn layer_norm_rows(
    dev: &GpuDevice,
    x: &GpuBuffer,
    weight: Option<&GpuBuffer>,
    bias: Option<&GpuBuffer>,
    [rows, n]: [usize; 2],
    eps: f32,
) -> DeviceResult<(GpuBuffer, GpuBuffer)> {
    let op = "layer_norm";
    let flags = weight.is_some() as u32 | (bias.is_some() as u32) << 1;
    let params = row_params(op, rows, n, flags, eps)?;
    let y = dev.alloc((rows * n) as u64 * 4, op)?;
    let stats = dev.alloc(2 * rows as u64 * 4, op)?;
    let cx = dev.cx();
    let (w, b) = (weight.map(|w| w.raw()).unwrap_or(cx.dummy(0)), bias.map(|b| b.raw()).unwrap_or(cx.dummy(0)));
    let (entry, groups) = row_launch(dev, "layer_norm", "layer_norm_short", rows, n)?;
    let pipe = cx.pipeline(Family::Norm, entry, &[])?;
    dev.record(&pipe, &[x.raw(), w, b, y.raw(), stats.raw()], bytemuck::bytes_of(&params), groups)?;
    Ok((y, stats))
}

/// The input gradient of [`layer_norm_rows`] for the output gradient `g`, given the forward's
/// input `x`, `weight` and statistics.
pub fn layer_norm_rows_backward(
    dev: &GpuDevice,
    g: &GpuBuffer,
    x: &GpuBuffer,
    weight: Option<&GpuBuffer>,
    stats: &GpuBuffer,
    [rows, n]: [usize; 2],
) -> DeviceResult<GpuBuffer> {
    let op = "layer_norm_backward";
    let params = row_params(op, rows, n, weight.is_some() as u32, 0.0)?;
    let dx = dev.alloc((rows * n) as u64 * 4, op)?;
    let cx = dev.cx();
    let w = weight.map(|w| w.raw()).unwrap_or(cx.dummy(0));
    let (entry, groups) = row_launch(dev, "layer_norm_backward", "layer_norm_backward_short", rows, n)?;
    let pipe = cx.pipeline(Family::Norm, entry, &[])?;
    dev.record(&pipe, &[g.raw(), x.raw(), w, dx.raw(), stats.raw()], bytemuck::bytes_of(&params), groups)?;
    Ok(dx)
}
