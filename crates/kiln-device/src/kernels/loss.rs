//! Launchers of `loss.wgsl`: fused softmax cross-entropy, forward and backward.

use bytemuck::{Pod, Zeroable};

use super::u32_of;
use crate::device::GpuDevice;
use crate::error::{DeviceError, DeviceResult};
use crate::pool::GpuBuffer;
use crate::recorder::{grid, grid_threads};
use crate::wgsl::Family;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct LossParams {
    rows: u32,
    classes: u32,
    ignore: u32,
    has_ignore: u32,
}

fn loss_params(rows: usize, classes: usize, ignore: Option<u32>) -> DeviceResult<LossParams> {
    Ok(LossParams {
        rows: u32_of("cross_entropy", rows)?,
        classes: u32_of("cross_entropy", classes)?,
        ignore: ignore.unwrap_or(0),
        has_ignore: ignore.is_some() as u32,
    })
}

/// The most classes [`cross_entropy_rows`] takes: a row's invocations walk 2 x classes / 256
/// values within [`super::LOOP_BUDGET`] iterations.
pub const CE_MAX_CLASSES: usize = super::LOOP_BUDGET / 2 * 256;

/// Fused softmax cross-entropy per row: returns (loss `[rows]`, logsumexp `[rows]`) for logits
/// `x` `[rows, classes]` and U32 `labels` `[rows]`; ignored rows give 0, out-of-range labels NaN.
pub fn cross_entropy_rows(
    dev: &GpuDevice,
    x: &GpuBuffer,
    labels: &GpuBuffer,
    rows: usize,
    classes: usize,
    ignore: Option<u32>,
) -> DeviceResult<(GpuBuffer, GpuBuffer)> {
    let loss = dev.alloc(rows as u64 * 4, "cross_entropy")?;
    let lse = dev.alloc(rows as u64 * 4, "cross_entropy")?;
    let params = loss_params(rows, classes, ignore)?;
    // Many classes: a workgroup per row, within the loop budget up to CE_MAX_CLASSES.
    if classes > CE_MAX_CLASSES {
        let msg =
            format!("{classes} classes are more than the {CE_MAX_CLASSES} one launch takes (see cross_entropy_pick)");
        return Err(DeviceError::Launch { op: "cross_entropy", msg });
    }
    let (entry, groups) = if classes >= super::softmax::SOFTMAX_WG_DIM {
        ("ce_rows_wg", grid(dev.cx(), rows)?)
    } else {
        ("ce_rows", grid_threads(dev.cx(), rows)?)
    };
    let pipe = dev.cx().pipeline(Family::Loss, entry, &[])?;
    let bufs = [x.raw(), labels.raw(), dev.cx().dummy(0), dev.cx().dummy(1), loss.raw(), lse.raw()];
    dev.record(&pipe, &bufs, bytemuck::bytes_of(&params), groups)?;
    Ok((loss, lse))
}

/// The per-row losses of [`cross_entropy_rows`] from log-normalisers `lse` `[rows]` computed
/// elsewhere (for rows of more than [`CE_MAX_CLASSES`]): returns (loss, a copy of lse).
pub fn cross_entropy_pick(
    dev: &GpuDevice,
    x: &GpuBuffer,
    labels: &GpuBuffer,
    lse: &GpuBuffer,
    rows: usize,
    classes: usize,
    ignore: Option<u32>,
) -> DeviceResult<(GpuBuffer, GpuBuffer)> {
    let loss = dev.alloc(rows as u64 * 4, "cross_entropy")?;
    let lse_out = dev.alloc(rows as u64 * 4, "cross_entropy")?;
    let params = loss_params(rows, classes, ignore)?;
    let pipe = dev.cx().pipeline(Family::Loss, "ce_pick", &[])?;
    let bufs = [x.raw(), labels.raw(), lse.raw(), dev.cx().dummy(1), loss.raw(), lse_out.raw()];
    dev.record(&pipe, &bufs, bytemuck::bytes_of(&params), grid_threads(dev.cx(), rows)?)?;
    Ok((loss, lse_out))
}

/// Backward of [`cross_entropy_rows`]: dx `[rows, classes]` = (softmax(x) - onehot) * `g[row]`.
#[allow(clippy::too_many_arguments)]
pub fn cross_entropy_backward(
    dev: &GpuDevice,
    x: &GpuBuffer,
    labels: &GpuBuffer,
    lse: &GpuBuffer,
    g: &GpuBuffer,
    rows: usize,
    classes: usize,
    ignore: Option<u32>,
) -> DeviceResult<GpuBuffer> {
    let n = rows * classes;
    let dx = dev.alloc(n as u64 * 4, "cross_entropy backward")?;
    let params = loss_params(rows, classes, ignore)?;
    let pipe = dev.cx().pipeline(Family::Loss, "ce_backward", &[])?;
    let bufs = [x.raw(), labels.raw(), lse.raw(), g.raw(), dx.raw(), dev.cx().dummy(0)];
    dev.record(&pipe, &bufs, bytemuck::bytes_of(&params), grid_threads(dev.cx(), n)?)?;
    Ok(dx)
}
