//! Devices: the host CPU, or a wgpu adapter.

use crate::error::{Error, Result};
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

    /// The device to train on by default: `KILN_DEVICE=cpu|gpu|software` if set; else a hardware
    /// GPU adapter if wgpu finds one; else the CPU device. A software adapter (such as Mesa's
    /// lavapipe) is slower than kiln's CPU kernels, so it is used only when asked
    /// (`KILN_DEVICE=software`, [`Device::software`], or [`Device::gpu`] where it is all there is).
    /// Says which device it chose, and why, once per process on stderr.
    pub fn best() -> Device {
        let (dev, why) = Device::choose(std::env::var("KILN_DEVICE").ok().as_deref());
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| eprintln!("kiln: Device::best() chose {}: {why}", dev.name()));
        dev
    }

    /// `best()`'s choice for a `KILN_DEVICE` value, and the reason it gives.
    fn choose(var: Option<&str>) -> (Device, String) {
        let fallback =
            |asked: &str, e: Error| (Device::Cpu, format!("{asked}, but {e}; falling back to the CPU device"));
        match var.map(str::trim).filter(|v| !v.is_empty()) {
            Some("cpu") => (Device::Cpu, "KILN_DEVICE=cpu".into()),
            Some("gpu") => match Device::gpu() {
                Ok(d) => (d, "KILN_DEVICE=gpu".into()),
                Err(e) => fallback("KILN_DEVICE=gpu", e),
            },
            Some("software") => match Device::software() {
                Ok(d) => (d, "KILN_DEVICE=software".into()),
                Err(e) => fallback("KILN_DEVICE=software", e),
            },
            other => {
                let unknown =
                    other.map(|v| format!("KILN_DEVICE={v:?} is not cpu, gpu or software; ")).unwrap_or_default();
                match GpuDevice::open(AdapterChoice::Hardware) {
                    Ok(g) => (
                        Device::Gpu(g),
                        format!("{unknown}a hardware GPU adapter (KILN_DEVICE=cpu for the CPU device)"),
                    ),
                    Err(e) => (
                        Device::Cpu,
                        format!(
                            "{unknown}{e}; falling back to the CPU device, which is faster than a software adapter \
                             (KILN_DEVICE=software or Device::software() to use one anyway)"
                        ),
                    ),
                }
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

    /// A readable name, e.g. "cpu" or "llvmpipe (LLVM 15.0.6, 256 bits) [Vulkan, software]".
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
