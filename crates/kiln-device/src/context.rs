//! Adapter choice and the [`GpuDevice`]: one wgpu device and queue with its buffer pool,
//! pipeline cache and pending command batch.
//!
//! There is one `GpuDevice` per adapter per process: asking twice for the same adapter returns
//! the same device (a process-wide registry keyed by the adapter's identity). An application that
//! already has a wgpu device hands it over with [`GpuDevice::from_wgpu`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::batch::Pending;
use crate::error::{DeviceError, DeviceResult};
use crate::options::{DeviceOptions, Fusion};
use crate::pool::{PoolInner, PoolStats};
use crate::wgsl::Family;
use crate::wgsl::matmul::{MatmulKernel, ScalarKernel};

/// Which adapter [`GpuDevice::open`] should pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterChoice {
    /// The best adapter: discrete, then integrated, then virtual, then software; Vulkan, Metal
    /// and DX12 before GL. `WGPU_ADAPTER_NAME` (a case-insensitive substring) narrows the choice.
    Best,
    /// A software (CPU) adapter such as Mesa's lavapipe.
    Software,
}

/// What kiln knows about an adapter, for listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterSummary {
    /// Adapter name, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub name: String,
    /// Backend: Vulkan, Metal, Dx12, Gl.
    pub backend: String,
    /// Device type: DiscreteGpu, IntegratedGpu, VirtualGpu, Cpu, Other.
    pub device_type: String,
    /// Driver name and info.
    pub driver: String,
}

impl AdapterSummary {
    fn of(info: &wgpu::AdapterInfo) -> Self {
        AdapterSummary {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: format!("{} {}", info.driver, info.driver_info).trim().to_string(),
        }
    }
}

pub(crate) struct PipelineEntry {
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
}

/// A pipeline's identity: family, entry point and up to two override constants (every kernel
/// uses at most one), fixed-size so that the per-dispatch lookup allocates nothing.
type PipelineKey = (Family, &'static str, [Option<(&'static str, u32)>; 2]);

pub(crate) struct Inner {
    pub(crate) id: u64,
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) summary: AdapterSummary,
    pub(crate) limits: wgpu::Limits,
    /// Whether the subgroup matmul kernels (`matmul_rows.wgsl`) apply: a software adapter with
    /// subgroups of at least 8 lanes, opened with the SUBGROUP feature.
    pub(crate) row_matmul: bool,
    pub(crate) pool: Arc<PoolInner>,
    pipelines: Mutex<HashMap<PipelineKey, Arc<PipelineEntry>>>,
    modules: Mutex<HashMap<Family, wgpu::ShaderModule>>,
    /// Pipelines of generated kernels (fused elementwise chains), keyed by their structure.
    generated: Mutex<HashMap<Vec<u32>, Arc<PipelineEntry>>>,
    pub(crate) pending: Mutex<Pending>,
    /// Uniform arena: each batch's kernel parameters, written once at submit.
    pub(crate) arena: wgpu::Buffer,
    pub(crate) uniform_align: u64,
    /// Small buffers bound where a kernel does not use some of its family's bindings (distinct,
    /// so that no two writable bindings of one dispatch alias).
    pub(crate) dummies: [wgpu::Buffer; 3],
    /// The first wgpu error reported since the last check.
    pub(crate) error: Arc<Mutex<Option<String>>>,
    /// Dispatches recorded since the device was opened.
    pub(crate) dispatched: AtomicU64,
    /// Whether the adapter can access vec4 storage arrays as `vec2<u64>` (`wgsl::widen`): a
    /// software adapter with SHADER_INT64 (used when the options ask for it).
    pub(crate) wide_capable: bool,
    /// The device's options, and whether vec4 arrays are widened under them.
    options: std::sync::RwLock<(DeviceOptions, bool)>,
}

/// One wgpu device and queue, with kiln's buffer pool, pipeline cache and command batching.
/// Cheap to clone (a shared handle); two handles are equal when they are the same device.
#[derive(Clone)]
pub struct GpuDevice {
    pub(crate) inner: Arc<Inner>,
}

impl PartialEq for GpuDevice {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl std::fmt::Debug for GpuDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuDevice({})", self.name())
    }
}

/// Size of the per-batch uniform arena. With 256-byte slots this is 512 dispatches per batch.
pub(crate) const ARENA_BYTES: u64 = 128 * 1024;

/// The optional features kiln asks for where the adapter has them: subgroups (the subgroup matmul
/// kernels) and 64-bit integers (`vec2<u64>` storage access, `shaders::widen`).
pub(crate) const OPTIONAL_FEATURES: wgpu::Features = wgpu::Features::SUBGROUP.union(wgpu::Features::SHADER_INT64);

fn make_instance(backends: Option<wgpu::Backends>) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle().with_env();
    if let Some(b) = backends {
        desc.backends = b;
    }
    wgpu::Instance::new(desc)
}

/// Adapters kiln can choose from: with `WGPU_BACKEND` set, exactly the backends it names;
/// otherwise the primary backends (Vulkan, Metal, DX12), and GL only when they find nothing
/// (GL through EGL is slower and prints noise on headless machines).
fn adapters() -> Vec<wgpu::Adapter> {
    static PRIMARY: OnceLock<wgpu::Instance> = OnceLock::new();
    static GL: OnceLock<wgpu::Instance> = OnceLock::new();
    let enumerate = |i: &wgpu::Instance| pollster::block_on(i.enumerate_adapters(wgpu::Backends::all()));
    if std::env::var_os("WGPU_BACKEND").is_some() {
        return enumerate(PRIMARY.get_or_init(|| make_instance(None)));
    }
    let found = enumerate(PRIMARY.get_or_init(|| make_instance(Some(wgpu::Backends::PRIMARY))));
    if !found.is_empty() {
        return found;
    }
    enumerate(GL.get_or_init(|| make_instance(Some(wgpu::Backends::GL))))
}

fn registry() -> &'static Mutex<Vec<(String, GpuDevice)>> {
    static REG: OnceLock<Mutex<Vec<(String, GpuDevice)>>> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(Vec::new()))
}

fn adapter_key(info: &wgpu::AdapterInfo) -> String {
    format!("{:?}|{}|{}|{}", info.backend, info.name, info.vendor, info.device)
}

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
    let mut all = adapters();
    if let Ok(want) = std::env::var("WGPU_ADAPTER_NAME") {
        let want = want.to_lowercase();
        all.retain(|a| a.get_info().name.to_lowercase().contains(&want));
    }
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

impl GpuDevice {
    /// Opens (or returns the already open) device for the chosen adapter, with the options of
    /// [`DeviceOptions::from_env`]: one device per adapter per process.
    pub fn open(choice: AdapterChoice) -> DeviceResult<GpuDevice> {
        Self::open_adapter(choice, None)
    }

    /// Opens a new device for the chosen adapter with `options`: a device of its own, apart
    /// from the one [`GpuDevice::open`] shares (its buffers, caches and batches are separate).
    pub fn open_with(choice: AdapterChoice, options: DeviceOptions) -> DeviceResult<GpuDevice> {
        Self::open_adapter(choice, Some(options))
    }

    fn open_adapter(choice: AdapterChoice, options: Option<DeviceOptions>) -> DeviceResult<GpuDevice> {
        let mut adapters = adapters();
        if let Ok(want) = std::env::var("WGPU_ADAPTER_NAME") {
            let want = want.to_lowercase();
            adapters.retain(|a| a.get_info().name.to_lowercase().contains(&want));
        }
        if choice == AdapterChoice::Software {
            adapters.retain(|a| a.get_info().device_type == wgpu::DeviceType::Cpu);
        }
        adapters.sort_by_key(|a| rank(&a.get_info()));
        let Some(adapter) = adapters.into_iter().next() else {
            let what = match choice {
                AdapterChoice::Best => crate::INSTALL_HINT.to_string(),
                AdapterChoice::Software => {
                    format!("no software adapter found; {}", crate::INSTALL_HINT)
                }
            };
            return Err(DeviceError::NoAdapter(what));
        };
        let info = adapter.get_info();
        let key = adapter_key(&info);
        let mut reg = registry().lock().unwrap();
        if options.is_none()
            && let Some((_, dev)) = reg.iter().find(|(k, _)| *k == key)
        {
            return Ok(dev.clone());
        }
        let limits = adapter.limits();
        let desc = wgpu::DeviceDescriptor {
            label: Some("kiln"),
            // Subgroups and 64-bit integers, where the adapter has them, for the software
            // adapter's kernels.
            required_features: adapter.features() & OPTIONAL_FEATURES,
            required_limits: limits.clone(),
            memory_hints: wgpu::MemoryHints::Performance,
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc))
            .map_err(|e| DeviceError::RequestDevice { adapter: info.name.clone(), reason: e.to_string() })?;
        let shared = options.is_none();
        let dev =
            GpuDevice::build(device, queue, AdapterSummary::of(&info), options.unwrap_or_else(DeviceOptions::from_env));
        if shared {
            reg.push((key, dev.clone()));
        }
        Ok(dev)
    }

    /// Wraps a wgpu device and queue that the application already owns, so that kiln trains
    /// on the application's GPU. kiln records into its own encoders and submits to this queue.
    /// Options: [`DeviceOptions::from_env`] (change them with [`GpuDevice::set_options`]).
    pub fn from_wgpu(device: wgpu::Device, queue: wgpu::Queue) -> GpuDevice {
        let summary = AdapterSummary {
            name: "application wgpu device".into(),
            backend: "external".into(),
            device_type: "external".into(),
            driver: String::new(),
        };
        GpuDevice::build(device, queue, summary, DeviceOptions::from_env())
    }

    fn build(device: wgpu::Device, queue: wgpu::Queue, summary: AdapterSummary, options: DeviceOptions) -> GpuDevice {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let error: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let slot = error.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut s = slot.lock().unwrap();
            if s.is_none() {
                *s = Some(e.to_string());
            }
        }));
        let limits = device.limits();
        let info = device.adapter_info();
        let wide_capable =
            device.features().contains(wgpu::Features::SHADER_INT64) && info.device_type == wgpu::DeviceType::Cpu;
        let row_matmul = device.features().contains(wgpu::Features::SUBGROUP)
            && info.subgroup_min_size >= 8
            && info.device_type == wgpu::DeviceType::Cpu;
        let uniform_align = (limits.min_uniform_buffer_offset_alignment as u64).max(256);
        let arena = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kiln uniform arena"),
            size: ARENA_BYTES,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let dummies = [0, 1, 2].map(|_| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("kiln dummy"),
                size: 16,
                usage: crate::pool::STORAGE_USAGE,
                mapped_at_creation: false,
            })
        });
        GpuDevice {
            inner: Arc::new(Inner {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                device,
                queue,
                summary,
                limits,
                row_matmul,
                pool: Arc::new(PoolInner::default()),
                pipelines: Mutex::new(HashMap::new()),
                modules: Mutex::new(HashMap::new()),
                generated: Mutex::new(HashMap::new()),
                pending: Mutex::new(Pending::default()),
                arena,
                uniform_align,
                dummies,
                error,
                dispatched: AtomicU64::new(0),
                wide_capable,
                options: std::sync::RwLock::new((options.clone(), options.wide && wide_capable)),
            }),
        }
    }

    /// A process-unique number for this device.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// "name [Backend, type]", e.g. "llvmpipe (LLVM 15.0.6, 256 bits) [Vulkan, Cpu]".
    pub fn name(&self) -> String {
        let s = &self.inner.summary;
        format!("{} [{}, {}]", s.name, s.backend, s.device_type)
    }

    /// The adapter's description.
    pub fn summary(&self) -> &AdapterSummary {
        &self.inner.summary
    }

    /// The limits the device was opened with (the adapter's real limits).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }

    /// Whether matmuls use the subgroup kernels written for software adapters (llvmpipe): true on
    /// a CPU adapter with subgroups of at least 8 lanes.
    pub fn row_matmul(&self) -> bool {
        self.inner.row_matmul
    }

    /// The wgpu device, for applications that share it.
    pub fn wgpu_device(&self) -> &wgpu::Device {
        &self.inner.device
    }

    /// The wgpu queue.
    pub fn wgpu_queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }

    /// The device's options.
    pub fn options(&self) -> DeviceOptions {
        self.inner.options.read().unwrap().0.clone()
    }

    /// Changes the device's options. Work already recorded is not affected; kernels compiled
    /// under other options are dropped from the caches.
    pub fn set_options(&self, options: DeviceOptions) -> DeviceResult<()> {
        let mut p = self.inner.pending.lock().unwrap();
        self.close_chain(&mut p)?;
        let wide = options.wide && self.inner.wide_capable;
        *self.inner.options.write().unwrap() = (options, wide);
        self.inner.pipelines.lock().unwrap().clear();
        self.inner.modules.lock().unwrap().clear();
        self.inner.generated.lock().unwrap().clear();
        Ok(())
    }

    /// Whether elementwise ops are fused (see [`crate::Fusion`]).
    pub(crate) fn fusion(&self) -> Fusion {
        self.inner.options.read().unwrap().0.fusion
    }

    /// Whether vec4 storage arrays are read and written as `vec2<u64>` (`wgsl::widen`).
    pub(crate) fn wide(&self) -> bool {
        self.inner.options.read().unwrap().1
    }

    /// Whether the elementwise ops that follow a matmul run inside the matmul's kernel (a bias
    /// add, a ReLU, a gradient's ReLU mask: one dispatch and one pass over the product less):
    /// [`Fusion::WithEpilogues`], which this sets (on) or resets to `Elementwise` (off). Applies
    /// to the subgroup kernels of software adapters ([`GpuDevice::row_matmul`]); off by default
    /// because there it saves no measurable time while each chain shape compiles a copy of its
    /// matmul kernel (PERFORMANCE.md).
    pub fn set_matmul_epilogues(&self, on: bool) {
        let fusion = if on { Fusion::WithEpilogues } else { Fusion::Elementwise };
        self.inner.options.write().unwrap().0.fusion = fusion;
    }

    /// Whether matmul epilogues are on (see [`GpuDevice::set_matmul_epilogues`]).
    pub fn matmul_epilogues(&self) -> bool {
        self.fusion() == Fusion::WithEpilogues
    }

    /// Buffer pool counters.
    pub fn pool_stats(&self) -> PoolStats {
        self.inner.pool.stats()
    }

    /// Compute dispatches recorded since the device was opened (a fused chain of elementwise ops
    /// counts once; ops whose results were all dropped before recording count zero).
    pub fn dispatches(&self) -> u64 {
        self.inner.dispatched.load(Ordering::Relaxed)
    }

    /// Frees every cached (unused) pooled buffer.
    pub fn trim_pool(&self) {
        self.inner.pool.trim();
    }

    /// Returns (and clears) the first wgpu error reported since the last check.
    pub(crate) fn take_error(&self) -> DeviceResult<()> {
        match self.inner.error.lock().unwrap().take() {
            Some(msg) => Err(DeviceError::Wgpu(msg)),
            None => Ok(()),
        }
    }

    /// The cached pipeline for a family's entry point with its override constants.
    pub(crate) fn pipeline(
        &self,
        family: Family,
        entry: &'static str,
        constants: &[(&'static str, u32)],
    ) -> DeviceResult<Arc<PipelineEntry>> {
        if constants.len() > 2 {
            return Err(DeviceError::Launch {
                op: "pipeline",
                msg: format!("{} override constants (at most 2)", constants.len()),
            });
        }
        let key: PipelineKey = (family, entry, [constants.first().copied(), constants.get(1).copied()]);
        if let Some(p) = self.inner.pipelines.lock().unwrap().get(&key) {
            return Ok(p.clone());
        }
        let module = {
            let mut modules = self.inner.modules.lock().unwrap();
            modules
                .entry(family)
                .or_insert_with(|| {
                    let source = match family {
                        // The vec4 arrays of the elementwise, reduction and optimizer kernels,
                        // read and written as vec2<u64> on a software adapter.
                        Family::Unary | Family::Binary | Family::Reduce | Family::Optim if self.wide() => {
                            crate::wgsl::widen(&family.source()).into()
                        }
                        _ => family.source(),
                    };
                    self.inner.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(family.file()),
                        source: wgpu::ShaderSource::Wgsl(source),
                    })
                })
                .clone()
        };
        let (ro, rw) = family.bindings();
        let entry_arc = Arc::new(self.build_pipeline(family.file(), &module, (ro, rw), entry, constants)?);
        self.inner.pipelines.lock().unwrap().insert(key, entry_arc.clone());
        Ok(entry_arc)
    }

    /// The cached pipeline of a matmul kernel: a generated module for the subgroup kernels
    /// (widened on a software adapter) and the vec4 tiles, `matmul.wgsl` for the scalar blocks.
    pub(crate) fn matmul_pipeline(&self, kernel: MatmulKernel) -> DeviceResult<Arc<PipelineEntry>> {
        match kernel {
            MatmulKernel::Scalar(ScalarKernel::Block4) => self.pipeline(Family::Matmul, "matmul", &[]),
            MatmulKernel::Scalar(ScalarKernel::Block8) => self.pipeline(Family::Matmul, "matmul8", &[]),
            MatmulKernel::Rows(k) => {
                let key = [u32::MAX - 10, k.form as u32, k.rows as u32, k.tiles as u32];
                let source = || Ok(if self.wide() { crate::wgsl::widen(&k.source()) } else { k.source() });
                self.generated_pipeline(&key, source, &k.name(), (2, 1))
            }
            MatmulKernel::Tiles(k) => {
                let key = [u32::MAX - 11, k.form as u32, k.rows as u32];
                self.generated_pipeline(&key, || Ok(k.source()), &k.name(), (2, 1))
            }
        }
    }

    /// The cached pipeline of a generated kernel whose structure is `key`: on a miss,
    /// `source()`'s entry point `entry`, with `ro` read-only and `rw` read-write storage
    /// bindings, then the uniform. With [`DeviceOptions::dump_wgsl`] the source is also
    /// written there as `<entry>-<hash of key>.wgsl`.
    pub(crate) fn generated_pipeline(
        &self,
        key: &[u32],
        source: impl FnOnce() -> DeviceResult<String>,
        entry: &str,
        (ro, rw): (u32, u32),
    ) -> DeviceResult<Arc<PipelineEntry>> {
        if let Some(p) = self.inner.generated.lock().unwrap().get(key) {
            return Ok(p.clone());
        }
        let source = source()?;
        if let Some(dir) = self.inner.options.read().unwrap().0.dump_wgsl.as_ref() {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            key.hash(&mut h);
            let path = dir.join(format!("{entry}-{:016x}.wgsl", h.finish()));
            std::fs::create_dir_all(dir)
                .and_then(|_| std::fs::write(&path, &source))
                .map_err(|e| DeviceError::Wgpu(format!("dump_wgsl: {}: {e}", path.display())))?;
        }
        let dev = &self.inner.device;
        let scope = dev.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = dev.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(entry),
            source: wgpu::ShaderSource::Wgsl(source.as_str().into()),
        });
        let built = self.build_pipeline("generated kernel", &module, (ro, rw), entry, &[]);
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(DeviceError::Wgpu(format!("generated kernel {entry}: {e}")));
        }
        let p = Arc::new(built?);
        self.inner.generated.lock().unwrap().insert(key.to_vec(), p.clone());
        Ok(p)
    }

    /// Creates a compute pipeline for `entry` of `module` whose layout is `ro` read-only and
    /// `rw` read-write storage buffers, then one uniform.
    fn build_pipeline(
        &self,
        label: &str,
        module: &wgpu::ShaderModule,
        (ro, rw): (u32, u32),
        entry: &str,
        constants: &[(&'static str, u32)],
    ) -> DeviceResult<PipelineEntry> {
        let dev = &self.inner.device;
        let scope = dev.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut entries = Vec::new();
        for i in 0..ro + rw {
            entries.push(wgpu::BindGroupLayoutEntry {
                binding: i,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only: i < ro },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            });
        }
        entries.push(wgpu::BindGroupLayoutEntry {
            binding: ro + rw,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        });
        let layout =
            dev.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(label), entries: &entries });
        let playout = dev.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(label),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let consts: Vec<(&str, f64)> = constants.iter().map(|(k, v)| (*k, *v as f64)).collect();
        let pipeline = dev.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: Some(&playout),
            module,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &consts,
                // Kernels never rely on zeroed workgroup memory.
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(DeviceError::Wgpu(format!("{label}::{entry}: {e}")));
        }
        Ok(PipelineEntry { pipeline, layout })
    }
}
