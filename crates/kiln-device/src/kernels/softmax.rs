//! Launcher of `softmax.wgsl`: softmax and log_softmax along a dim.

use super::{DimParams, u32_of};
use crate::device::GpuDevice;
use crate::error::DeviceResult;
use crate::pool::GpuBuffer;
use crate::recorder::grid_threads;
use crate::wgsl::Family;

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
    let pipe = dev.cx().pipeline(Family::Softmax, "softmax", &[("LOG", log as u32)])?;
    dev.record(&pipe, &[x.raw(), out.raw()], bytemuck::bytes_of(&params), grid_threads(dev.cx(), rows)?)?;
    Ok(out)
}
