//! Launcher of `softmax.wgsl`: softmax and log_softmax along a dim, an invocation per row for
//! short rows and a workgroup per row for long ones.

use super::{DimParams, u32_of};
use crate::device::GpuDevice;
use crate::error::{DeviceError, DeviceResult};
use crate::pool::GpuBuffer;
use crate::recorder::{grid, grid_threads};
use crate::wgsl::Family;

/// Rows at least this long take a workgroup each (`softmax_wg`): one invocation walks at most
/// 3 x 2048 values, far inside llvmpipe's 65535 loop iterations per shader.
pub const SOFTMAX_WG_DIM: usize = 2048;

/// The longest row `softmax_wg` takes: its invocations walk 3 x dim / 256 values within
/// [`super::LOOP_BUDGET`] iterations.
pub const SOFTMAX_MAX_DIM: usize = super::LOOP_BUDGET / 3 * 256;

/// softmax (or log_softmax when `log`) of x viewed as [outer, dim, inner] along `dim`.
pub fn softmax(
    dev: &GpuDevice,
    x: &GpuBuffer,
    outer: usize,
    dim: usize,
    inner: usize,
    log: bool,
) -> DeviceResult<GpuBuffer> {
    let out = dev.alloc((outer * dim * inner) as u64 * 4, "softmax")?;
    let rows = outer * inner;
    let params = DimParams {
        outer: u32_of("softmax", outer)?,
        dim: u32_of("softmax", dim)?,
        inner: u32_of("softmax", inner)?,
        n: u32_of("softmax", rows)?,
    };
    if dim > SOFTMAX_MAX_DIM {
        let msg = format!("a dim of {dim} is longer than the {SOFTMAX_MAX_DIM} one launch takes");
        return Err(DeviceError::Launch { op: "softmax", msg });
    }
    let (entry, groups) = if dim >= SOFTMAX_WG_DIM {
        ("softmax_wg", grid(dev.cx(), rows)?)
    } else {
        ("softmax", grid_threads(dev.cx(), rows)?)
    };
    let pipe = dev.cx().pipeline(Family::Softmax, entry, &[("LOG", log as u32)])?;
    dev.record(&pipe, &[x.raw(), out.raw()], bytemuck::bytes_of(&params), groups)?;
    Ok(out)
}
