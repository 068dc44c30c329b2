//! Devices: the host CPU, or a wgpu adapter.

use crate::error::Result;
use kiln_device::{AdapterChoice, DeviceOptions, GpuDevice};

/// Where a tensor lives and where its ops run.
#[derive(Clone, PartialEq, Debug)]
pub enum Device {
    /// Host memory, reference kernels in Rust.
    Cpu,
    /// A wgpu device (Vulkan, Metal, DX12, GL; hardware or software).
    Gpu(GpuDevice),
}

impl Device {
    /// The host CPU.
    pub fn cpu() -> Device {
        Device::Cpu
    }

    /// The best wgpu adapter (a software one if that is all there is). Two calls return the
    /// same device. Errors, with the install hint, when wgpu finds no adapter.
    pub fn gpu() -> Result<Device> {
        Ok(Device::Gpu(GpuDevice::open(AdapterChoice::Best)?))
    }

    /// A new device on the best wgpu adapter with its own [`DeviceOptions`] (fusion, matmul
    /// kernel policy, wide memory access): a device apart from the one [`Device::gpu`] shares,
    /// with its own buffers and kernel caches. For comparing kernels, or an application that
    /// wants other settings than the defaults (which the `KILN_*` variables fill in).
    pub fn gpu_with(options: DeviceOptions) -> Result<Device> {
        Ok(Device::Gpu(GpuDevice::open_with(AdapterChoice::Best, options)?))
    }

    /// The software (fallback) adapter, e.g. Mesa's lavapipe.
    pub fn software() -> Result<Device> {
        Ok(Device::Gpu(GpuDevice::open(AdapterChoice::Software)?))
    }

    /// `KILN_DEVICE=cpu|gpu|software` if set; else the GPU if any adapter exists; else the CPU
    /// (saying so once on stderr).
    pub fn best() -> Device {
        let choice = std::env::var("KILN_DEVICE").unwrap_or_default();
        let found = match choice.as_str() {
            "cpu" => return Device::Cpu,
            "software" => Device::software(),
            _ => Device::gpu(),
        };
        match found {
            Ok(d) => d,
            Err(e) => {
                static ONCE: std::sync::Once = std::sync::Once::new();
                ONCE.call_once(|| eprintln!("kiln: falling back to the CPU device: {e}"));
                Device::Cpu
            }
        }
    }

    /// Wraps an application's own wgpu device and queue, so kiln trains on it.
    pub fn from_wgpu(device: kiln_device::wgpu::Device, queue: kiln_device::wgpu::Queue) -> Device {
        Device::Gpu(GpuDevice::from_wgpu(device, queue))
    }

    /// True for a wgpu device.
    pub fn is_gpu(&self) -> bool {
        matches!(self, Device::Gpu(_))
    }

    /// A readable name, e.g. "cpu" or "llvmpipe (LLVM 15.0.6, 256 bits) [Vulkan, Cpu]".
    pub fn name(&self) -> String {
        match self {
            Device::Cpu => "cpu".to_string(),
            Device::Gpu(g) => g.name(),
        }
    }

    /// Waits until all queued GPU work is done (a no-op on the CPU).
    pub fn synchronize(&self) -> Result<()> {
        match self {
            Device::Cpu => Ok(()),
            Device::Gpu(g) => Ok(g.synchronize()?),
        }
    }

    /// The GPU device, if this is one.
    pub fn as_gpu(&self) -> Option<&GpuDevice> {
        match self {
            Device::Cpu => None,
            Device::Gpu(g) => Some(g),
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}
