//! Adapter discovery: which adapters wgpu sees, how kiln ranks them, and opening a wgpu device
//! on the chosen one with the features and limits kiln asks for.
//!
//! The instance is created without a display. On Linux kiln's Vulkan instance leaves out the
//! Wayland surface extension: kiln never presents, and with that extension enabled Mesa's
//! device-select layer connects to a Wayland display while listing devices, which on a headless
//! machine prints `error: XDG_RUNTIME_DIR is invalid or not set in the environment.` twice.

use std::sync::OnceLock;

use crate::error::{DeviceError, DeviceResult};

/// Which adapter [`GpuDevice::open`](crate::GpuDevice::open) should pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterChoice {
    /// The best adapter: discrete, then integrated, then virtual, then software; Vulkan, Metal
    /// and DX12 before GL. `WGPU_ADAPTER_NAME` (a case-insensitive substring) narrows the choice.
    Best,
    /// A software (CPU) adapter such as Mesa's lavapipe.
    Software,
    /// The best hardware adapter (discrete, integrated or virtual GPU); never a software one.
    Hardware,
}

/// What kiln knows about an adapter, for listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterSummary {
    /// Adapter name, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub name: String,
    /// Backend: Vulkan, Metal, Dx12, Gl.
    pub backend: String,
    /// Device type: discrete, integrated, virtual, software (a CPU adapter such as lavapipe),
    /// other.
    pub device_type: String,
    /// Driver name and info.
    pub driver: String,
}

impl AdapterSummary {
    pub(crate) fn of(info: &wgpu::AdapterInfo) -> Self {
        AdapterSummary {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: match info.device_type {
                wgpu::DeviceType::DiscreteGpu => "discrete",
                wgpu::DeviceType::IntegratedGpu => "integrated",
                wgpu::DeviceType::VirtualGpu => "virtual",
                wgpu::DeviceType::Cpu => "software",
                wgpu::DeviceType::Other => "other",
            }
            .to_string(),
            driver: format!("{} {}", info.driver, info.driver_info).trim().to_string(),
        }
    }
}

/// The optional features kiln asks for where the adapter has them: subgroups (the subgroup matmul
/// kernels) and 64-bit integers (`vec2<u64>` storage access, `shaders::widen`).
pub(crate) const OPTIONAL_FEATURES: wgpu::Features = wgpu::Features::SUBGROUP.union(wgpu::Features::SHADER_INT64);

fn make_instance(backends: Option<wgpu::Backends>) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle().with_env();
    if let Some(b) = backends {
        desc.backends = b;
    }
    #[cfg(target_os = "linux")]
    if desc.backends == wgpu::Backends::VULKAN
        && let Some(instance) = headless_vulkan(&desc)
    {
        return instance;
    }
    wgpu::Instance::new(desc)
}

/// wgpu's Vulkan instance without `VK_KHR_wayland_surface` (see the module docs); `None` where
/// Vulkan cannot be loaded (the caller falls back to wgpu's own instance, which reports it).
#[cfg(target_os = "linux")]
fn headless_vulkan(desc: &wgpu::InstanceDescriptor) -> Option<wgpu::Instance> {
    use wgpu::hal;
    let hal_desc = hal::InstanceDescriptor {
        name: "kiln",
        flags: desc.flags,
        memory_budget_thresholds: desc.memory_budget_thresholds,
        backend_options: desc.backend_options.clone(),
        telemetry: None,
        display: None,
    };
    let no_wayland: Box<hal::vulkan::CreateInstanceCallback> = Box::new(|args| {
        // Safe to leave out: the extension is only used to create Wayland surfaces, which this
        // instance never does.
        args.extensions.retain(|e| e.to_bytes() != b"VK_KHR_wayland_surface");
    });
    // SAFETY: the callback only removes a presentation extension this instance never uses.
    let instance = unsafe { hal::vulkan::Instance::init_with_callback(&hal_desc, Some(no_wayland)) }.ok()?;
    // SAFETY: a valid, freshly created Vulkan instance that wgpu takes ownership of.
    Some(unsafe { wgpu::Instance::from_hal::<hal::api::Vulkan>(instance) })
}

/// Adapters kiln can choose from: with `WGPU_BACKEND` set, exactly the backends it names;
/// otherwise the primary backends (Vulkan, Metal, DX12), and GL only when they find nothing
/// (GL through EGL is slower and prints noise on headless machines). `WGPU_ADAPTER_NAME` (a
/// case-insensitive substring) narrows the list.
///
/// The adapters are enumerated once per process: on wgpu's GL backend, enumerating makes the
/// instance's EGL context current without the lock its devices take, so a second enumeration
/// while another thread uses a device panics inside wgpu-hal (`EGL_BAD_ACCESS`).
fn adapters() -> Vec<wgpu::Adapter> {
    static ANY: OnceLock<Vec<wgpu::Adapter>> = OnceLock::new();
    static PRIMARY: OnceLock<Vec<wgpu::Adapter>> = OnceLock::new();
    static GL: OnceLock<Vec<wgpu::Adapter>> = OnceLock::new();
    let enumerate = |i: &wgpu::Instance| pollster::block_on(i.enumerate_adapters(wgpu::Backends::all()));
    let mut found = if std::env::var_os("WGPU_BACKEND").is_some() {
        ANY.get_or_init(|| enumerate(&make_instance(None))).clone()
    } else {
        // Vulkan on an instance of its own (see `headless_vulkan`), then Metal and DX12.
        let found = PRIMARY.get_or_init(|| {
            let rest = wgpu::Backends::PRIMARY - wgpu::Backends::VULKAN;
            [make_instance(Some(wgpu::Backends::VULKAN)), make_instance(Some(rest))]
                .iter()
                .flat_map(enumerate)
                .collect()
        });
        if found.is_empty() {
            GL.get_or_init(|| enumerate(&make_instance(Some(wgpu::Backends::GL)))).clone()
        } else {
            found.clone()
        }
    };
    if let Ok(want) = std::env::var("WGPU_ADAPTER_NAME") {
        let want = want.to_lowercase();
        found.retain(|a| a.get_info().name.to_lowercase().contains(&want));
    }
    found
}

/// A process-wide identity of an adapter (backend, name, vendor, device id).
pub(crate) fn adapter_key(info: &wgpu::AdapterInfo) -> String {
    format!("{:?}|{}|{}|{}", info.backend, info.name, info.vendor, info.device)
}

/// discrete > integrated > virtual > software; Vulkan, Metal and DX12 before GL.
fn rank(info: &wgpu::AdapterInfo) -> (u32, u32) {
    let ty = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    let be = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    };
    (ty, be)
}

/// The adapter `choice` picks, or an error with the install hint.
pub(crate) fn pick(choice: AdapterChoice) -> DeviceResult<wgpu::Adapter> {
    let mut adapters = adapters();
    let software = |a: &wgpu::Adapter| a.get_info().device_type == wgpu::DeviceType::Cpu;
    match choice {
        AdapterChoice::Best => {}
        AdapterChoice::Software => adapters.retain(software),
        AdapterChoice::Hardware => adapters.retain(|a| !software(a)),
    }
    adapters.sort_by_key(|a| rank(&a.get_info()));
    adapters.into_iter().next().ok_or_else(|| {
        DeviceError::NoAdapter(match choice {
            AdapterChoice::Best => crate::INSTALL_HINT.to_string(),
            AdapterChoice::Software => format!("no software adapter found; {}", crate::INSTALL_HINT),
            AdapterChoice::Hardware => {
                let found: Vec<String> = adapters_listed();
                if found.is_empty() {
                    format!("no hardware GPU adapter found; {}", crate::INSTALL_HINT)
                } else {
                    format!("no hardware GPU adapter found (only {})", found.join(", "))
                }
            }
        })
    })
}

/// The names of the adapters kiln can see, for messages.
fn adapters_listed() -> Vec<String> {
    adapters().iter().map(|a| a.get_info().name).collect()
}

/// A wgpu device and queue on `adapter`, with its real limits and the optional features it has.
pub(crate) fn request_device(adapter: &wgpu::Adapter) -> DeviceResult<(wgpu::Device, wgpu::Queue)> {
    let desc = wgpu::DeviceDescriptor {
        label: Some("kiln"),
        // Subgroups and 64-bit integers, where the adapter has them, for the software adapter's
        // kernels.
        required_features: adapter.features() & OPTIONAL_FEATURES,
        required_limits: adapter.limits(),
        memory_hints: wgpu::MemoryHints::Performance,
        ..Default::default()
    };
    pollster::block_on(adapter.request_device(&desc))
        .map_err(|e| DeviceError::RequestDevice { adapter: adapter.get_info().name, reason: e.to_string() })
}

/// An adapter with the limits and features that matter to kiln, for `kiln devices`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterReport {
    /// Name, backend, type, driver.
    pub summary: AdapterSummary,
    /// Largest storage binding, bytes.
    pub max_storage_binding: u64,
    /// Largest buffer, bytes.
    pub max_buffer: u64,
    /// Workgroup memory, bytes.
    pub workgroup_storage: u32,
    /// Invocations per workgroup.
    pub invocations_per_workgroup: u32,
    /// Storage buffers per shader stage.
    pub storage_buffers_per_stage: u32,
    /// SHADER_F16.
    pub f16: bool,
    /// SUBGROUP.
    pub subgroups: bool,
    /// Whether `Device::gpu()` would pick it.
    pub chosen: bool,
}

/// Every adapter kiln can see, with the one `GpuDevice::open(AdapterChoice::Best)` would pick
/// marked.
pub fn adapter_reports() -> Vec<AdapterReport> {
    let all = adapters();
    let best = all.iter().map(|a| rank(&a.get_info())).min();
    let mut chosen_done = false;
    all.iter()
        .map(|a| {
            let info = a.get_info();
            let l = a.limits();
            let f = a.features();
            let chosen = !chosen_done && Some(rank(&info)) == best;
            chosen_done |= chosen;
            AdapterReport {
                summary: AdapterSummary::of(&info),
                max_storage_binding: l.max_storage_buffer_binding_size,
                max_buffer: l.max_buffer_size,
                workgroup_storage: l.max_compute_workgroup_storage_size,
                invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
                storage_buffers_per_stage: l.max_storage_buffers_per_shader_stage,
                f16: f.contains(wgpu::Features::SHADER_F16),
                subgroups: f.contains(wgpu::Features::SUBGROUP),
                chosen,
            }
        })
        .collect()
}

/// Every adapter kiln can choose from (honouring `WGPU_BACKEND`).
pub fn list_adapters() -> Vec<AdapterSummary> {
    adapters().iter().map(|a| AdapterSummary::of(&a.get_info())).collect()
}
