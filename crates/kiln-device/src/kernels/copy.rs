//! Launcher of `copy.wgsl`: a strided view gathered into a contiguous buffer.

use super::{MAX_DIMS, StridedParams, pack_dims, u32_of};
use crate::device::GpuDevice;
use crate::error::DeviceResult;
use crate::pool::GpuBuffer;
use crate::recorder::{grid_rows, grid_threads};
use crate::wgsl::Family;

/// Gathers the strided view (`shape`, element `strides`, element `offset`) of `src` into a new
/// contiguous buffer. Works on any 32-bit element type.
pub fn gather(
    dev: &GpuDevice,
    src: &GpuBuffer,
    shape: &[usize],
    strides: &[usize],
    offset: usize,
) -> DeviceResult<GpuBuffer> {
    let n: usize = shape.iter().product();
    let out = dev.alloc(n as u64 * 4, "gather")?;
    let two = if shape.len() == 2 { grid_rows(dev.cx(), shape[0], shape[1]) } else { None };
    let pipe = dev.cx().pipeline(Family::Copy, if two.is_some() { "gather2d" } else { "gather" }, &[])?;
    let params = StridedParams {
        n: u32_of("gather", n)?,
        rank: shape.len() as u32,
        offset: u32_of("gather", offset)?,
        pad0: 0,
        shape: pack_dims("gather", shape)?,
        s1: pack_dims("gather", strides)?,
        s2: [0; MAX_DIMS],
    };
    // The copy family's Params has no third array; the extra bytes are ignored by the shader.
    let groups = match two {
        Some(g) => g,
        None => grid_threads(dev.cx(), n)?,
    };
    dev.record(&pipe, &[src.raw(), out.raw()], bytemuck::bytes_of(&params), groups)?;
    Ok(out)
}
