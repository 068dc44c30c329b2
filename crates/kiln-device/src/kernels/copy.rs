//! Launchers of `copy.wgsl`: a strided view gathered into a contiguous buffer, and a contiguous
//! buffer placed into a strided view of another.

use super::{MAX_DIMS, StridedParams, pack_dims, u32_of};
use crate::device::GpuDevice;
use crate::error::{DeviceError, DeviceResult};
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
    // Two or three dims go to `gather3d` as [outer, mid, cols] (two with an outer of 1).
    let (shape, strides) = match shape.len() {
        2 => (vec![1, shape[0], shape[1]], vec![0, strides[0], strides[1]]),
        _ => (shape.to_vec(), strides.to_vec()),
    };
    let three = if shape.len() == 3 { grid_rows(dev.cx(), shape[0] * shape[1], shape[2]) } else { None };
    let pipe = dev.cx().pipeline(Family::Copy, if three.is_some() { "gather3d" } else { "gather" }, &[])?;
    let params = StridedParams {
        n: u32_of("gather", n)?,
        rank: shape.len() as u32,
        offset: u32_of("gather", offset)?,
        pad0: 0,
        shape: pack_dims("gather", &shape)?,
        s1: pack_dims("gather", &strides)?,
        s2: [0; MAX_DIMS],
    };
    // The copy family's Params has no third array; the extra bytes are ignored by the shader.
    let groups = match three {
        Some(g) => g,
        None => grid_threads(dev.cx(), n)?,
    };
    dev.record(&pipe, &[src.raw(), out.raw()], bytemuck::bytes_of(&params), groups)?;
    Ok(out)
}

/// Writes the contiguous `src` (`shape`, at most 3 dims) into `dst` at element `offset` with
/// element `strides` (the view must lie inside `dst` and its elements must not overlap); the
/// rest of `dst` keeps its contents. Works on any 32-bit element type.
pub fn place(
    dev: &GpuDevice,
    src: &GpuBuffer,
    dst: &GpuBuffer,
    shape: &[usize],
    strides: &[usize],
    offset: usize,
) -> DeviceResult<()> {
    let n: usize = shape.iter().product();
    if n == 0 {
        return Ok(());
    }
    let pad = 3usize
        .checked_sub(shape.len())
        .ok_or_else(|| DeviceError::Launch { op: "place", msg: format!("at most 3 dims, got {shape:?}") })?;
    let shape: Vec<usize> = std::iter::repeat_n(1, pad).chain(shape.iter().copied()).collect();
    let strides: Vec<usize> = std::iter::repeat_n(0, pad).chain(strides.iter().copied()).collect();
    let last = offset + shape.iter().zip(&strides).map(|(d, s)| (d - 1) * s).sum::<usize>();
    if (last as u64 + 1) * 4 > dst.raw().size() {
        return Err(DeviceError::Launch { op: "place", msg: format!("view {shape:?} at {offset} exceeds the buffer") });
    }
    let groups = grid_rows(dev.cx(), shape[0] * shape[1], shape[2])
        .ok_or_else(|| DeviceError::Launch { op: "place", msg: format!("grid for {shape:?}") })?;
    let params = StridedParams {
        n: u32_of("place", n)?,
        rank: 3,
        offset: u32_of("place", offset)?,
        pad0: 0,
        shape: pack_dims("place", &shape)?,
        s1: pack_dims("place", &strides)?,
        s2: [0; MAX_DIMS],
    };
    let pipe = dev.cx().pipeline(Family::Copy, "place3d", &[])?;
    dev.record(&pipe, &[src.raw(), dst.raw()], bytemuck::bytes_of(&params), groups)
}
