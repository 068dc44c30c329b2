//! Launcher of `binary.wgsl`: broadcasting binary ops and comparisons.

use super::{StridedParams, pack_dims, u32_of};
use crate::context::Context;
use crate::device::GpuDevice;
use crate::error::DeviceResult;
use crate::fuse::Fusable;
use crate::op::BinaryOp;
use crate::pool::GpuBuffer;
use crate::recorder::{Launch, grid_rows, grid_threads};
use crate::wgsl::Family;
use crate::wgsl::fused::{Index, NodeOp};

/// out = op(a, b) with broadcasting: `shape` is the (contiguous) output shape, `sa` and `sb`
/// the element strides of a and b per output dim (0 on broadcast dims).
pub fn binary(
    dev: &GpuDevice,
    op: BinaryOp,
    a: &GpuBuffer,
    b: &GpuBuffer,
    shape: &[usize],
    sa: &[usize],
    sb: &[usize],
) -> DeviceResult<GpuBuffer> {
    let n: usize = shape.iter().product();
    // How each operand lines up with the output, for fusion (before the views below rename them).
    let index = (Index::of(shape, sa), Index::of(shape, sb));
    let mut out = dev.alloc(n as u64 * 4, "binary")?;
    // Four columns per invocation where every operand's columns are contiguous (stride 1, rows
    // 4-aligned) or broadcast (stride 0); one dim counts as a single row.
    let vec_ok = |s: &[usize; 2]| s[1] == 0 || (s[1] == 1 && s[0] % 4 == 0);
    let view4 = match shape.len() {
        1 => Some(([1, shape[0]], [0, sa[0]], [0, sb[0]])),
        2 => Some(([shape[0], shape[1]], [sa[0], sa[1]], [sb[0], sb[1]])),
        _ => None,
    }
    .filter(|(sh, a4, b4)| sh[1] % 4 == 0 && vec_ok(a4) && vec_ok(b4));
    // The 2-D launches give every row its own workgroup(s); for narrow rows that is many nearly
    // empty workgroups, each with its own start-up cost on a software adapter, so rows narrower
    // than a quarter of a workgroup take the 1-D kernel (PERFORMANCE.md, "narrow rows").
    let wide = |cols: usize, rows: usize| rows == 1 || cols >= 64;
    let g4 = view4
        .as_ref()
        .filter(|(sh, ..)| wide(sh[1] / 4, sh[0]))
        .and_then(|(sh, ..)| grid_rows(dev.cx(), sh[0], sh[1] / 4));
    let two = if g4.is_none() && shape.len() == 2 && wide(shape[1], shape[0]) {
        grid_rows(dev.cx(), shape[0], shape[1])
    } else {
        None
    };
    let (entry, dims, sa, sb): (_, &[usize], &[usize], &[usize]) = match (&g4, &view4, &two) {
        (Some(_), Some((sh, a4, b4)), _) => ("binary2d4", sh, a4, b4),
        (_, _, Some(_)) => ("binary2d", shape, sa, sb),
        _ => ("binary", shape, sa, sb),
    };
    let params = StridedParams {
        n: u32_of("binary", n)?,
        rank: dims.len() as u32,
        offset: 0,
        pad0: 0,
        shape: pack_dims("binary", dims)?,
        s1: pack_dims("binary", sa)?,
        s2: pack_dims("binary", sb)?,
    };
    let groups = match g4.or(two) {
        Some(g) => g,
        None => grid_threads(dev.cx(), n)?,
    };
    let (ra, rb) = (a.raw().clone(), b.raw().clone());
    let launch = Box::new(move |cx: &Context, out: wgpu::Buffer| {
        let pipe = cx.pipeline(Family::Binary, entry, &[("OP", op as u32)])?;
        Ok(Launch { pipe, bufs: vec![ra, rb, out], params: bytemuck::bytes_of(&params).to_vec(), groups })
    });
    let fusable = match index {
        (Some(ia), Some(ib)) => Some(Fusable { op: NodeOp::Binary(op), args: &[(a, ia), (b, ib)], n }),
        _ => None,
    };
    dev.elementwise(launch, fusable, &mut out)?;
    Ok(out)
}
