//! Launcher of `optim.wgsl`: fused optimizer updates (SGD, Adam/AdamW).

use bytemuck::{Pod, Zeroable};

use super::{by_four, u32_of};
use crate::device::GpuDevice;
use crate::error::DeviceResult;
use crate::pool::GpuBuffer;
use crate::recorder::grid_threads;
use crate::wgsl::Family;

/// The fused optimizer updates of `optim.wgsl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptimKernel {
    /// SGD with optional momentum, dampening, Nesterov and weight decay.
    Sgd,
    /// Adam, or AdamW with the `DECOUPLED` flag; optional amsgrad.
    Adam,
}

/// Flags of [`OptimParams::flags`].
pub mod optim_flags {
    /// Nesterov momentum (SGD).
    pub const NESTEROV: u32 = 1;
    /// The first step: the momentum buffer starts as the gradient (SGD).
    pub const FIRST_STEP: u32 = 2;
    /// Keep the maximum of exp_avg_sq (Adam).
    pub const AMSGRAD: u32 = 4;
    /// Decoupled weight decay (AdamW).
    pub const DECOUPLED: u32 = 8;
    /// Momentum is on (SGD).
    pub const MOMENTUM: u32 = 16;
    /// Maximise instead of minimise.
    pub const MAXIMIZE: u32 = 32;
}

/// The scalars of one optimizer update, mirroring `Params` in `optim.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct OptimParams {
    /// Element count (set by the launcher).
    pub n: u32,
    /// [`optim_flags`].
    pub flags: u32,
    /// Padding.
    pub pad0: [u32; 2],
    /// Learning rate.
    pub lr: f32,
    /// Weight decay.
    pub wd: f32,
    /// SGD momentum.
    pub momentum: f32,
    /// SGD dampening.
    pub dampening: f32,
    /// 1 - beta1 (computed in f64 on the host).
    pub one_minus_beta1: f32,
    /// beta2.
    pub beta2: f32,
    /// 1 - beta2.
    pub one_minus_beta2: f32,
    /// Adam's eps.
    pub eps: f32,
    /// lr / (1 - beta1^t).
    pub step_size: f32,
    /// sqrt(1 - beta2^t).
    pub bc2_sqrt: f32,
    /// 1 - lr * wd (AdamW).
    pub decay: f32,
    /// Padding.
    pub pad1: f32,
}

/// One fused optimizer update of `n` elements: returns the new parameter buffer; the state
/// buffers `s` (momentum; or exp_avg, exp_avg_sq, max_exp_avg_sq) are updated in place, and a
/// `None` state is not touched.
pub fn optim_step(
    dev: &GpuDevice,
    kernel: OptimKernel,
    p: &GpuBuffer,
    g: &GpuBuffer,
    s: [Option<&GpuBuffer>; 3],
    mut params: OptimParams,
    n: usize,
) -> DeviceResult<GpuBuffer> {
    let out = dev.alloc(n as u64 * 4, "optimizer step")?;
    params.n = u32_of("optimizer step", n)?;
    let (entry, threads) = match kernel {
        OptimKernel::Sgd => by_four(n, "sgd", "sgd4"),
        OptimKernel::Adam => by_four(n, "adam", "adam4"),
    };
    let pipe = dev.cx().pipeline(Family::Optim, entry, &[])?;
    let st: Vec<&wgpu::Buffer> =
        s.iter().enumerate().map(|(i, b)| b.map(|b| b.raw()).unwrap_or(dev.cx().dummy(i))).collect();
    dev.record(
        &pipe,
        &[p.raw(), g.raw(), out.raw(), st[0], st[1], st[2]],
        bytemuck::bytes_of(&params),
        grid_threads(dev.cx(), threads)?,
    )?;
    Ok(out)
}
