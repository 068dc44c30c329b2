//! Launcher of `index.wgsl`: indices to 0/1 masks.

use super::{DimParams, u32_of};
use crate::device::GpuDevice;
use crate::error::DeviceResult;
use crate::pool::GpuBuffer;
use crate::recorder::grid_threads;
use crate::wgsl::Family;

/// out[o, d, i] = (idx[o * inner + i] == d) as f32, for out of shape [outer, dim, inner].
pub fn index_mask(dev: &GpuDevice, idx: &GpuBuffer, outer: usize, dim: usize, inner: usize) -> DeviceResult<GpuBuffer> {
    let n = outer * dim * inner;
    let out = dev.alloc(n as u64 * 4, "index_mask")?;
    let params = DimParams {
        outer: u32_of("index_mask", n)?,
        dim: u32_of("index_mask", dim)?,
        inner: u32_of("index_mask", inner.max(1))?,
        n: 0,
    };
    let pipe = dev.cx().pipeline(Family::Index, "index_mask", &[])?;
    dev.record(&pipe, &[idx.raw(), out.raw()], bytemuck::bytes_of(&params), grid_threads(dev.cx(), n)?)?;
    Ok(out)
}
