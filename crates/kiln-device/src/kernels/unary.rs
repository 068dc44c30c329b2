//! Launchers of `unary.wgsl`: unary ops and their scalar forms, and fill.

use bytemuck::{Pod, Zeroable};

use super::{by_four, u32_of};
use crate::context::Context;
use crate::device::GpuDevice;
use crate::error::DeviceResult;
use crate::fuse::Fusable;
use crate::op::UnaryOp;
use crate::pool::GpuBuffer;
use crate::recorder::{Launch, grid_threads};
use crate::wgsl::Family;
use crate::wgsl::fused::{Index, NodeOp};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct UnaryParams {
    n: u32,
    pad0: u32,
    alpha: f32,
    pad1: u32,
}

/// y = op(x) over `n` f32 elements.
///
/// Like every elementwise launcher, this may join the open fused chain (see `fuse/`) instead
/// of recording its own dispatch.
pub fn unary(dev: &GpuDevice, op: UnaryOp, alpha: f32, x: &GpuBuffer, n: usize) -> DeviceResult<GpuBuffer> {
    unary_or_fill(dev, op, alpha, Some(x), n)
}

/// A new buffer of `n` f32 elements, all `value` (one dispatch, no upload).
pub fn fill(dev: &GpuDevice, value: f32, n: usize) -> DeviceResult<GpuBuffer> {
    unary_or_fill(dev, UnaryOp::Fill, value, None, n)
}

/// `unary`, or with no input, `fill` (whose kernel does not read its input binding).
fn unary_or_fill(dev: &GpuDevice, op: UnaryOp, alpha: f32, x: Option<&GpuBuffer>, n: usize) -> DeviceResult<GpuBuffer> {
    let name = if x.is_none() { "fill" } else { "unary" };
    let op = if x.is_none() { UnaryOp::Fill } else { op };
    let mut out = dev.alloc(n as u64 * 4, name)?;
    let (entry, threads) = by_four(n, "unary", "unary4");
    let params = UnaryParams { n: u32_of(name, n)?, pad0: 0, alpha, pad1: 0 };
    let groups = grid_threads(dev.cx(), threads)?;
    let xb = x.map_or(dev.cx().dummy(0), GpuBuffer::raw).clone();
    let launch = Box::new(move |cx: &Context, out: wgpu::Buffer| {
        let pipe = cx.pipeline(Family::Unary, entry, &[("OP", op as u32)])?;
        Ok(Launch { pipe, bufs: vec![xb, out], params: bytemuck::bytes_of(&params).to_vec(), groups })
    });
    let args: Vec<(&GpuBuffer, Index)> = x.map(|x| (x, Index::Full)).into_iter().collect();
    dev.elementwise(launch, Some(Fusable { op: NodeOp::Unary(op, alpha), args: &args, n }), &mut out)?;
    Ok(out)
}
