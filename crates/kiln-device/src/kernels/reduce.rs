//! Launcher of `reduce.wgsl`: sum and max (with index) along a dim.

use bytemuck::{Pod, Zeroable};

use super::{LOOP_BUDGET, u32_of};
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

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ReduceParams {
    outer: u32,
    dim: u32,
    inner: u32,
    n_out: u32,
    chunk: u32,
    chunks: u32,
    pad: [u32; 2],
}

/// The most values one workgroup of a `*_wg` launch reduces: its 256 invocations walk
/// `REDUCE_CHUNK / 256` each, within [`LOOP_BUDGET`]. A longer sum is reduced in blocks of
/// this many and then over the blocks; a longer max takes each block's largest value and its
/// index, then the first largest block.
pub const REDUCE_CHUNK: usize = 1 << 23;
const _: () = assert!(REDUCE_CHUNK / 256 + 64 <= LOOP_BUDGET);

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
    if dim == 0 {
        return Err(DeviceError::Launch { op: "reduce", msg: "empty reduction dim".into() });
    }
    let chunks = dim.div_ceil(REDUCE_CHUNK);
    let params = ReduceParams {
        outer: u32_of("reduce", outer)?,
        dim: u32_of("reduce", dim)?,
        inner: u32_of("reduce", inner)?,
        n_out: u32_of("reduce", n_out)?,
        chunk: u32_of("reduce", dim.min(REDUCE_CHUNK))?,
        chunks: chunks as u32,
        pad: [0; 2],
    };
    if chunks > 1 && op == ReduceOp::Max {
        // Each output's blocks, a workgroup each, as (value bits, index) pairs; then the first
        // largest block of each output (one invocation each, `chunks` steps: far within budget).
        let part = dev.alloc((n_out * chunks) as u64 * 8, "reduce")?;
        let pipe = dev.cx().pipeline(Family::Reduce, "max_wg_part", &[])?;
        let groups = grid(dev.cx(), n_out * chunks)?;
        dev.record(&pipe, &[x.raw(), part.raw(), dev.cx().dummy(0)], bytemuck::bytes_of(&params), groups)?;
        let out = dev.alloc(n_out as u64 * 4, "reduce")?;
        let idx = dev.alloc(n_out as u64 * 4, "reduce")?;
        let pipe = dev.cx().pipeline(Family::Reduce, "max_merge", &[])?;
        let groups = grid_threads(dev.cx(), n_out)?;
        dev.record(&pipe, &[part.raw(), out.raw(), idx.raw()], bytemuck::bytes_of(&params), groups)?;
        return Ok((out, Some(idx)));
    }
    if chunks > 1 {
        // Each output's blocks, a workgroup each, then a sum over the blocks.
        let part = dev.alloc((n_out * chunks) as u64 * 4, "reduce")?;
        let pipe = dev.cx().pipeline(Family::Reduce, "sum_wg", &[])?;
        let groups = grid(dev.cx(), n_out * chunks)?;
        dev.record(&pipe, &[x.raw(), part.raw(), dev.cx().dummy(0)], bytemuck::bytes_of(&params), groups)?;
        return reduce(dev, op, &part, n_out, chunks, 1);
    }
    let out = dev.alloc(n_out as u64 * 4, "reduce")?;
    let idx = match op {
        ReduceOp::Max => Some(dev.alloc(n_out as u64 * 4, "reduce")?),
        ReduceOp::Sum => None,
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
