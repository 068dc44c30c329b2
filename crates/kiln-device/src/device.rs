//! The [`GpuDevice`]: one wgpu device and queue (the [`Context`]) with its buffer pool and its
//! pending [`Batch`]; uploads, copies, read-backs and submits, and the entry points the kernel
//! launchers record through.
//!
//! There is one `GpuDevice` per adapter per process: asking twice for the same adapter returns
//! the same device (a process-wide registry keyed by the adapter's identity).
//! [`GpuDevice::open_with`] opens a device of its own with other [`DeviceOptions`], and an
//! application that already has a wgpu device hands it over with [`GpuDevice::from_wgpu`].

use std::sync::{Arc, Mutex, OnceLock};

use crate::adapter::{self, AdapterChoice, AdapterSummary};
use crate::context::{Context, PipelineEntry};
use crate::error::{DeviceError, DeviceResult};
use crate::fuse::{Batch, Fusable, Head, LaunchFn};
use crate::options::{DeviceOptions, Fusion};
use crate::pool::{GpuBuffer, PoolInner, PoolStats, STORAGE_USAGE};

pub(crate) struct Inner {
    pub(crate) cx: Context,
    pool: Arc<PoolInner>,
    batch: Mutex<Batch>,
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

fn registry() -> &'static Mutex<Vec<(String, GpuDevice)>> {
    static REG: OnceLock<Mutex<Vec<(String, GpuDevice)>>> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(Vec::new()))
}

impl GpuDevice {
    /// Opens (or returns the already open) device for the chosen adapter, with the options of
    /// [`DeviceOptions::from_env`]: one device per adapter per process.
    pub fn open(choice: AdapterChoice) -> DeviceResult<GpuDevice> {
        let adapter = adapter::pick(choice)?;
        let info = adapter.get_info();
        let key = adapter::adapter_key(&info);
        let mut reg = registry().lock().unwrap();
        if let Some((_, dev)) = reg.iter().find(|(k, _)| *k == key) {
            return Ok(dev.clone());
        }
        let (device, queue) = adapter::request_device(&adapter)?;
        let dev = GpuDevice::build(device, queue, AdapterSummary::of(&info), DeviceOptions::from_env());
        reg.push((key, dev.clone()));
        Ok(dev)
    }

    /// Opens a new device for the chosen adapter with `options`: a device of its own, apart
    /// from the one [`GpuDevice::open`] shares (its buffers, caches and batches are separate).
    pub fn open_with(choice: AdapterChoice, options: DeviceOptions) -> DeviceResult<GpuDevice> {
        let adapter = adapter::pick(choice)?;
        let (device, queue) = adapter::request_device(&adapter)?;
        Ok(GpuDevice::build(device, queue, AdapterSummary::of(&adapter.get_info()), options))
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
        let cx = Context::new(device, queue, summary, options);
        GpuDevice {
            inner: Arc::new(Inner { cx, pool: Arc::new(PoolInner::default()), batch: Mutex::new(Batch::default()) }),
        }
    }

    /// A process-unique number for this device.
    pub fn id(&self) -> u64 {
        self.inner.cx.id
    }

    /// "name [Backend, type]", e.g. "llvmpipe (LLVM 15.0.6, 256 bits) [Vulkan, software]".
    pub fn name(&self) -> String {
        let s = &self.inner.cx.summary;
        format!("{} [{}, {}]", s.name, s.backend, s.device_type)
    }

    /// The adapter's description.
    pub fn summary(&self) -> &AdapterSummary {
        &self.inner.cx.summary
    }

    /// The limits the device was opened with (the adapter's real limits).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.cx.limits
    }

    /// Whether matmuls use the subgroup kernels written for software adapters (llvmpipe): true on
    /// a CPU adapter with subgroups of at least 8 lanes.
    pub fn row_matmul(&self) -> bool {
        self.inner.cx.row_matmul
    }

    /// Whether vec4 storage arrays are read and written as `vec2<u64>` (a software adapter
    /// opened with SHADER_INT64, when [`DeviceOptions::wide`] asks for it).
    pub fn wide_arrays(&self) -> bool {
        self.inner.cx.wide()
    }

    /// Whether the adapter is a software one (a CPU adapter such as lavapipe).
    pub fn is_software(&self) -> bool {
        self.inner.cx.summary.device_type == "software"
    }

    /// The wgpu device, for applications that share it.
    pub fn wgpu_device(&self) -> &wgpu::Device {
        &self.inner.cx.device
    }

    /// The wgpu queue.
    pub fn wgpu_queue(&self) -> &wgpu::Queue {
        &self.inner.cx.queue
    }

    /// The device's options.
    pub fn options(&self) -> DeviceOptions {
        self.inner.cx.options()
    }

    /// Changes the device's options. Work already recorded is not affected; kernels compiled
    /// under other options are dropped from the caches.
    pub fn set_options(&self, options: DeviceOptions) -> DeviceResult<()> {
        let cx = &self.inner.cx;
        self.inner.batch.lock().unwrap().recorder(cx)?;
        cx.set_options(options);
        Ok(())
    }

    /// Whether the elementwise ops that follow a matmul run inside the matmul's kernel (a bias
    /// add, a ReLU, a gradient's ReLU mask: one dispatch and one pass over the product less):
    /// [`Fusion::WithEpilogues`], which this sets (on) or resets to `Elementwise` (off). Applies
    /// to the subgroup kernels of software adapters ([`GpuDevice::row_matmul`]); off by default
    /// because there it saves no measurable time while each chain shape compiles a copy of its
    /// matmul kernel (PERFORMANCE.md).
    pub fn set_matmul_epilogues(&self, on: bool) {
        self.inner.cx.set_fusion(if on { Fusion::WithEpilogues } else { Fusion::Elementwise });
    }

    /// Whether matmul epilogues are on (see [`GpuDevice::set_matmul_epilogues`]).
    pub fn matmul_epilogues(&self) -> bool {
        self.inner.cx.fusion() == Fusion::WithEpilogues
    }

    /// Buffer pool counters.
    pub fn pool_stats(&self) -> PoolStats {
        self.inner.pool.stats()
    }

    /// Compute dispatches recorded since the device was opened (a fused chain of elementwise ops
    /// counts once; ops whose results were all dropped before recording count zero).
    pub fn dispatches(&self) -> u64 {
        self.inner.cx.dispatched.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Frees every cached (unused) pooled buffer.
    pub fn trim_pool(&self) {
        self.inner.pool.trim();
    }

    /// The device's wgpu context (pipelines, limits, options), for the launchers.
    pub(crate) fn cx(&self) -> &Context {
        &self.inner.cx
    }

    /// A pooled storage buffer of at least `bytes` bytes, contents undefined.
    pub fn alloc(&self, bytes: u64, op: &str) -> DeviceResult<GpuBuffer> {
        let cx = &self.inner.cx;
        self.inner.pool.alloc(&cx.device, &cx.limits, bytes, op)
    }

    /// A storage buffer holding `data`. A free pooled buffer is filled through a staging copy
    /// recorded in the pending encoder (so it is ordered after every command that may still use
    /// the buffer); otherwise a new buffer is written at creation (mapped), which has no ordering
    /// hazard either. Either way the upload joins the pool when it is dropped, and a steady
    /// training loop stops creating buffers.
    pub fn upload(&self, data: &[u8], op: &str) -> DeviceResult<GpuBuffer> {
        let bucket = PoolInner::bucket(&self.inner.cx.limits, data.len() as u64, op)?;
        let len = data.len().next_multiple_of(4) as u64;
        let write = |buf: &wgpu::Buffer| -> DeviceResult<()> {
            if !data.is_empty() {
                let mut view = buf.get_mapped_range_mut(..len).map_err(|e| DeviceError::Wgpu(format!("{op}: {e}")))?;
                view.slice(..data.len()).copy_from_slice(data);
            }
            buf.unmap();
            Ok(())
        };
        if let Some(dst) = self.inner.pool.take(bucket) {
            if data.is_empty() {
                return Ok(dst);
            }
            let staging = self.inner.cx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("kiln upload"),
                size: len,
                usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::MAP_WRITE,
                mapped_at_creation: true,
            });
            write(&staging)?;
            let cx = &self.inner.cx;
            self.inner.batch.lock().unwrap().recorder(cx)?.copy_encoder(cx).copy_buffer_to_buffer(
                &staging,
                0,
                dst.raw(),
                0,
                len,
            );
            return Ok(dst);
        }
        let buf = self.inner.cx.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bucket,
            usage: STORAGE_USAGE,
            mapped_at_creation: true,
        });
        write(&buf)?;
        Ok(self.inner.pool.adopt(buf, bucket))
    }

    /// Records one dispatch (after the open chain). `bufs` are the kernel's storage bindings in
    /// order (read-only ones first); `params` the uniform struct's bytes.
    pub(crate) fn record(
        &self,
        pipe: &PipelineEntry,
        bufs: &[&wgpu::Buffer],
        params: &[u8],
        groups: [u32; 3],
    ) -> DeviceResult<()> {
        let cx = &self.inner.cx;
        self.inner.batch.lock().unwrap().recorder(cx)?.record(cx, pipe, bufs, params, groups)
    }

    /// Records an elementwise op's `launch`, or adds it to the open fused chain when it is
    /// `fusable` (see `fuse/`).
    pub(crate) fn elementwise(
        &self,
        launch: LaunchFn,
        fusable: Option<Fusable>,
        out: &mut GpuBuffer,
    ) -> DeviceResult<()> {
        let cx = &self.inner.cx;
        self.inner.batch.lock().unwrap().elementwise(cx, &self.inner.pool, launch, fusable, out)
    }

    /// Records a matmul's `launch`, or opens a chain for its epilogue (see `fuse/epilogue.rs`).
    pub(crate) fn matmul_launch(
        &self,
        launch: LaunchFn,
        head: Option<Head>,
        n: usize,
        out: &mut GpuBuffer,
    ) -> DeviceResult<()> {
        let cx = &self.inner.cx;
        self.inner.batch.lock().unwrap().matmul(cx, launch, head, n, out)
    }

    /// Submits everything recorded so far without waiting for it.
    pub fn flush(&self) -> DeviceResult<()> {
        let cx = &self.inner.cx;
        self.inner.batch.lock().unwrap().recorder(cx)?.flush(cx)
    }

    /// Submits everything recorded so far and waits until the GPU has finished it.
    pub fn synchronize(&self) -> DeviceResult<()> {
        self.flush()?;
        self.inner.cx.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| DeviceError::Wgpu(e.to_string()))?;
        self.inner.cx.take_error()
    }

    /// Copies `bytes` bytes from `src` to `dst` (both pooled buffers) in recording order.
    pub fn copy(&self, src: &GpuBuffer, dst: &GpuBuffer, bytes: u64) -> DeviceResult<()> {
        self.copy_region(src, 0, dst, 0, bytes)
    }

    /// Copies `bytes` bytes from `src` at `src_offset` to `dst` at `dst_offset` (offsets and
    /// size multiples of 4) in recording order.
    pub fn copy_region(
        &self,
        src: &GpuBuffer,
        src_offset: u64,
        dst: &GpuBuffer,
        dst_offset: u64,
        bytes: u64,
    ) -> DeviceResult<()> {
        if src_offset + bytes > src.bucket_bytes() || dst_offset + bytes > dst.bucket_bytes() {
            return Err(DeviceError::Launch {
                op: "copy",
                msg: format!("{bytes} bytes at {src_offset}/{dst_offset} exceed the buffers"),
            });
        }
        if bytes == 0 {
            return Ok(());
        }
        let cx = &self.inner.cx;
        self.inner.batch.lock().unwrap().recorder(cx)?.copy_encoder(cx).copy_buffer_to_buffer(
            src.raw(),
            src_offset,
            dst.raw(),
            dst_offset,
            bytes.next_multiple_of(4),
        );
        Ok(())
    }

    /// Reads the first `bytes` bytes of `src` back to the host, submitting pending work first.
    pub fn read(&self, src: &GpuBuffer, bytes: u64) -> DeviceResult<Vec<u8>> {
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let padded = bytes.next_multiple_of(4);
        let staging = self.inner.cx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kiln read-back"),
            size: padded,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        {
            let cx = &self.inner.cx;
            let mut batch = self.inner.batch.lock().unwrap();
            let rec = batch.recorder(cx)?;
            rec.copy_encoder(cx).copy_buffer_to_buffer(src.raw(), 0, &staging, 0, padded);
            rec.flush(cx)?;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.inner
            .cx
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| DeviceError::ReadBack(e.to_string()))?;
        rx.recv()
            .map_err(|e| DeviceError::ReadBack(e.to_string()))?
            .map_err(|e| DeviceError::ReadBack(e.to_string()))?;
        let out = {
            let view = staging.get_mapped_range(..).map_err(|e| DeviceError::ReadBack(e.to_string()))?;
            view[..bytes as usize].to_vec()
        };
        staging.unmap();
        self.inner.cx.take_error()?;
        Ok(out)
    }
}
