//! Launcher of `reduce.wgsl`: sum and max (with index) along a dim.

use super::{DimParams, u32_of};
use crate::device::GpuDevice;
use crate::error::{DeviceError, DeviceResult};
use crate::pool::GpuBuffer;
use crate::recorder::{grid, grid_threads};
use crate::wgsl::Family;

/// Which reduction [`reduce`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    /// Sum over the dim.
    Sum,
    /// Maximum over the dim, with the index of its first occurrence.
    Max,
}

/// Reduces x viewed as [outer, dim, inner] over `dim`. Returns the values (outer*inner f32) and,
/// for [`ReduceOp::Max`], the indices (outer*inner u32).
pub fn reduce(
    dev: &GpuDevice,
    op: ReduceOp,
    x: &GpuBuffer,
    outer: usize,
    dim: usize,
    inner: usize,
) -> DeviceResult<(GpuBuffer, Option<GpuBuffer>)> {
    let n_out = outer * inner;
    let out = dev.alloc(n_out as u64 * 4, "reduce")?;
    let idx = match op {
        ReduceOp::Max => Some(dev.alloc(n_out as u64 * 4, "reduce")?),
        ReduceOp::Sum => None,
    };
    if dim == 0 {
        return Err(DeviceError::Launch { op: "reduce", msg: "empty reduction dim".into() });
    }
    let params = DimParams {
        outer: u32_of("reduce", outer)?,
        dim: u32_of("reduce", dim)?,
        inner: u32_of("reduce", inner)?,
        n: u32_of("reduce", n_out)?,
    };
    // Long reductions get a workgroup each (parallel and accurate); many short ones a thread each.
    let wide = dim >= 2048 || (n_out < 256 && dim >= 64);
    let (entry, groups) = match (op, wide) {
        (ReduceOp::Sum, false) if inner % 4 == 0 => ("sum_rows4", grid(dev.cx(), (n_out / 4).div_ceil(64))?),
        (ReduceOp::Sum, false) => ("sum_rows", grid_threads(dev.cx(), n_out)?),
        (ReduceOp::Max, false) => ("max_rows", grid_threads(dev.cx(), n_out)?),
        (ReduceOp::Sum, true) => ("sum_wg", grid(dev.cx(), n_out)?),
        (ReduceOp::Max, true) => ("max_wg", grid(dev.cx(), n_out)?),
    };
    let pipe = dev.cx().pipeline(Family::Reduce, entry, &[])?;
    let idx_raw = idx.as_ref().map(|b| b.raw()).unwrap_or(dev.cx().dummy(0));
    dev.record(&pipe, &[x.raw(), out.raw(), idx_raw], bytemuck::bytes_of(&params), groups)?;
    Ok((out, idx))
}
