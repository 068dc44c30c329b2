//! Launcher of `norm.wgsl`: the per-channel sums of batch normalisation, one workgroup per
//! channel, one read of the data.

use bytemuck::{Pod, Zeroable};

use super::u32_of;
use crate::device::GpuDevice;
use crate::error::{DeviceError, DeviceResult};
use crate::pool::GpuBuffer;
use crate::recorder::grid;
use crate::wgsl::Family;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct NormParams {
    n: u32,
    c: u32,
    l: u32,
    mode: u32,
}

fn channel_sums(
    dev: &GpuDevice,
    op: &'static str,
    u: &GpuBuffer,
    v: Option<(&GpuBuffer, &GpuBuffer)>,
    [n, c, l]: [usize; 3],
) -> DeviceResult<GpuBuffer> {
    if n * l == 0 || c == 0 {
        return Err(DeviceError::Launch { op, msg: format!("empty channels: [{n}, {c}, {l}]") });
    }
    let out = dev.alloc(2 * c as u64 * 4, op)?;
    let params = NormParams { n: u32_of(op, n)?, c: u32_of(op, c)?, l: u32_of(op, l)?, mode: v.is_some() as u32 };
    u32_of(op, n * c * l)?;
    let pipe = dev.cx().pipeline(Family::Norm, "channel_sums", &[])?;
    let (vb, shift) = match v {
        Some((v, s)) => (v.raw(), s.raw()),
        None => (u.raw(), dev.cx().dummy(0)),
    };
    dev.record(&pipe, &[u.raw(), vb, shift, out.raw()], bytemuck::bytes_of(&params), grid(dev.cx(), c)?)?;
    Ok(out)
}

/// The mean and biased variance of each channel of x viewed as [n, c, l]: [2 * c] values, the
/// c means then the c variances.
pub fn channel_moments(dev: &GpuDevice, x: &GpuBuffer, dims: [usize; 3]) -> DeviceResult<GpuBuffer> {
    channel_sums(dev, "batch_norm", x, None, dims)
}

/// For g and x viewed as [n, c, l] and `mean` [c]: [2 * c] values, sum(g) over each channel,
/// then sum(g * (x - mean)) over each channel (batch normalisation's backward sums).
pub fn channel_grad_sums(
    dev: &GpuDevice,
    g: &GpuBuffer,
    x: &GpuBuffer,
    mean: &GpuBuffer,
    dims: [usize; 3],
) -> DeviceResult<GpuBuffer> {
    channel_sums(dev, "batch_norm_backward", g, Some((x, mean)), dims)
}
