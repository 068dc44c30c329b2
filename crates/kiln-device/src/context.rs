//! The wgpu context of a device: the wgpu device and queue, the adapter's limits and what kiln
//! may use of it (capabilities and [`DeviceOptions`]), the uniform arena and placeholder buffers
//! every batch binds, wgpu's error slot, and the pipeline caches (family pipelines by entry point
//! and constants, generated ones by their description). Knows nothing of batching or fusion.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::adapter::AdapterSummary;
use crate::error::{DeviceError, DeviceResult};
use crate::options::{DeviceOptions, Fusion, MatmulPolicy};
use crate::wgsl::Family;
use crate::wgsl::matmul::{MatmulKernel, ScalarKernel};

/// A compute pipeline and its bind group layout.
pub(crate) struct PipelineEntry {
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
}

/// A pipeline's identity: family, entry point and up to two override constants (every kernel
/// uses at most one), fixed-size so that the per-dispatch lookup allocates nothing.
type PipelineKey = (Family, &'static str, [Option<(&'static str, u32)>; 2]);

/// Size of the per-batch uniform arena. With 256-byte slots this is 512 dispatches per batch.
pub(crate) const ARENA_BYTES: u64 = 128 * 1024;

/// See the module docs.
pub(crate) struct Context {
    /// A process-unique number.
    pub(crate) id: u64,
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) summary: AdapterSummary,
    pub(crate) limits: wgpu::Limits,
    /// Whether the subgroup matmul kernels apply: a software adapter with subgroups of at least
    /// 8 lanes, opened with the SUBGROUP feature.
    pub(crate) row_matmul: bool,
    /// Whether the adapter can access vec4 storage arrays as `vec2<u64>` (`wgsl::widen`): a
    /// software adapter with SHADER_INT64 (used when the options ask for it).
    wide_capable: bool,
    /// The options, and whether vec4 arrays are widened under them.
    options: RwLock<(DeviceOptions, bool)>,
    pipelines: Mutex<HashMap<PipelineKey, Arc<PipelineEntry>>>,
    modules: Mutex<HashMap<Family, wgpu::ShaderModule>>,
    /// Pipelines of generated kernels, keyed by their description.
    generated: Mutex<HashMap<Vec<u32>, Arc<PipelineEntry>>>,
    /// Uniform arena: each batch's kernel parameters, written once at submit.
    pub(crate) arena: wgpu::Buffer,
    pub(crate) uniform_align: u64,
    /// Small buffers bound where a kernel does not use some of its family's bindings (distinct,
    /// so that no two writable bindings of one dispatch alias).
    dummies: [wgpu::Buffer; 3],
    /// The first wgpu error reported since the last check.
    error: Arc<Mutex<Option<String>>>,
    /// Dispatches recorded since the device was opened.
    pub(crate) dispatched: AtomicU64,
}

/// Which of the adapter-specific kernels a device may run, from what the opened device has
/// (never from the backend's name): (the subgroup matmul kernels, vec4 arrays widened to
/// `vec2<u64>`). Both are for software adapters (`DeviceType::Cpu`), the first with the SUBGROUP
/// feature and subgroups of at least 8 lanes, the second with SHADER_INT64. wgpu's GL backend
/// offers neither feature, so a GL device gets the plain kernels (`wgsl/translate_tests.rs`
/// translates those for GLSL).
pub(crate) fn kernel_support(
    features: wgpu::Features,
    device_type: wgpu::DeviceType,
    subgroup_min_size: u32,
) -> (bool, bool) {
    let software = device_type == wgpu::DeviceType::Cpu;
    let rows = software && features.contains(wgpu::Features::SUBGROUP) && subgroup_min_size >= 8;
    (rows, software && features.contains(wgpu::Features::SHADER_INT64))
}

impl Context {
    pub(crate) fn new(
        device: wgpu::Device,
        queue: wgpu::Queue,
        summary: AdapterSummary,
        options: DeviceOptions,
    ) -> Self {
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
        let (row_matmul, wide_capable) = kernel_support(device.features(), info.device_type, info.subgroup_min_size);
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
        let wide = options.wide && wide_capable;
        Context {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            device,
            queue,
            summary,
            limits,
            row_matmul,
            wide_capable,
            options: RwLock::new((options, wide)),
            pipelines: Mutex::new(HashMap::new()),
            modules: Mutex::new(HashMap::new()),
            generated: Mutex::new(HashMap::new()),
            arena,
            uniform_align,
            dummies,
            error,
            dispatched: AtomicU64::new(0),
        }
    }

    /// The options.
    pub(crate) fn options(&self) -> DeviceOptions {
        self.options.read().unwrap().0.clone()
    }

    /// Replaces the options; kernels compiled under other options are dropped from the caches.
    pub(crate) fn set_options(&self, options: DeviceOptions) {
        let wide = options.wide && self.wide_capable;
        *self.options.write().unwrap() = (options, wide);
        self.pipelines.lock().unwrap().clear();
        self.modules.lock().unwrap().clear();
        self.generated.lock().unwrap().clear();
    }

    /// Sets the fusion mode alone (no kernel depends on it: the caches stay).
    pub(crate) fn set_fusion(&self, fusion: Fusion) {
        self.options.write().unwrap().0.fusion = fusion;
    }

    /// The matmul kernel policy (read on every matmul: no clone of the options).
    pub(crate) fn matmul_policy(&self) -> MatmulPolicy {
        self.options.read().unwrap().0.matmul
    }

    /// Whether elementwise ops are fused.
    pub(crate) fn fusion(&self) -> Fusion {
        self.options.read().unwrap().0.fusion
    }

    /// Whether vec4 storage arrays are read and written as `vec2<u64>` (`wgsl::widen`).
    pub(crate) fn wide(&self) -> bool {
        self.options.read().unwrap().1
    }

    /// Returns (and clears) the first wgpu error reported since the last check.
    pub(crate) fn take_error(&self) -> DeviceResult<()> {
        match self.error.lock().unwrap().take() {
            Some(msg) => Err(DeviceError::Wgpu(msg)),
            None => Ok(()),
        }
    }

    /// The i-th (0..3) distinct placeholder buffer, bound where a kernel ignores one of its
    /// family's bindings.
    pub(crate) fn dummy(&self, i: usize) -> &wgpu::Buffer {
        &self.dummies[i]
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
        if let Some(p) = self.pipelines.lock().unwrap().get(&key) {
            return Ok(p.clone());
        }
        let module = {
            let mut modules = self.modules.lock().unwrap();
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
                    self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(family.file()),
                        source: wgpu::ShaderSource::Wgsl(source),
                    })
                })
                .clone()
        };
        let (ro, rw) = family.bindings();
        let entry_arc = Arc::new(self.build_pipeline(family.file(), &module, (ro, rw), entry, constants)?);
        self.pipelines.lock().unwrap().insert(key, entry_arc.clone());
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
        if let Some(p) = self.generated.lock().unwrap().get(key) {
            return Ok(p.clone());
        }
        let source = source()?;
        if let Some(dir) = self.options().dump_wgsl {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            key.hash(&mut h);
            let path = dir.join(format!("{entry}-{:016x}.wgsl", h.finish()));
            std::fs::create_dir_all(&dir)
                .and_then(|_| std::fs::write(&path, &source))
                .map_err(|e| DeviceError::Wgpu(format!("dump_wgsl: {}: {e}", path.display())))?;
        }
        let dev = &self.device;
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
        self.generated.lock().unwrap().insert(key.to_vec(), p.clone());
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
        let dev = &self.device;
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

#[cfg(test)]
mod tests {
    use super::kernel_support;
    use wgpu::{DeviceType, Features};

    #[test]
    fn adapter_kernels_follow_the_device_features() {
        let both = Features::SUBGROUP | Features::SHADER_INT64;
        // lavapipe on Vulkan: both.
        assert_eq!(kernel_support(both, DeviceType::Cpu, 8), (true, true));
        // llvmpipe on GL: wgpu's GL backend offers neither feature.
        assert_eq!(kernel_support(Features::empty(), DeviceType::Cpu, 8), (false, false));
        // A software adapter with narrow subgroups (WARP reports 4): no subgroup kernels.
        assert_eq!(kernel_support(both, DeviceType::Cpu, 4), (false, true));
        // Features withheld from a software adapter, one at a time.
        assert_eq!(kernel_support(Features::SHADER_INT64, DeviceType::Cpu, 8), (false, true));
        assert_eq!(kernel_support(Features::SUBGROUP, DeviceType::Cpu, 8), (true, false));
        // Real GPUs take the vec4 tiles, whatever they offer.
        for t in [DeviceType::DiscreteGpu, DeviceType::IntegratedGpu, DeviceType::VirtualGpu, DeviceType::Other] {
            assert_eq!(kernel_support(both, t, 32), (false, false));
        }
    }
}
