//! Command batching, uploads and read-backs.
//!
//! Every launch is recorded into one pending encoder, inside one open compute pass, with its
//! parameters appended to a host-side copy of the uniform arena. The batch is submitted when a
//! result is read back, on [`GpuDevice::synchronize`], or when the arena is full: at submit the
//! arena is written with `queue.write_buffer`, which wgpu executes before the batch's command
//! buffer, exactly when the batch needs it. The arena is never written while a batch that reads
//! it is still unsubmitted. Elementwise ops may wait in an open chain (see `fuse/`); every
//! path below closes that chain first, so it is recorded in its place.

use std::num::NonZeroU64;

use crate::context::{ARENA_BYTES, GpuDevice, PipelineEntry};
use crate::error::{DeviceError, DeviceResult};
use crate::fuse::Chain;
use crate::pool::{GpuBuffer, STORAGE_USAGE, bucket_for};

/// Dispatches recorded before a batch is submitted anyway.
const MAX_DISPATCHES: u32 = 512;

#[derive(Default)]
pub(crate) struct Pending {
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    uniforms: Vec<u8>,
    dispatches: u32,
    /// The open chain of fused elementwise ops: recorded (closed) before anything else is.
    pub(crate) chain: Option<Chain>,
}

impl GpuDevice {
    fn check_size(&self, bytes: u64, op: &str) -> DeviceResult<u64> {
        let limit = self.inner.limits.max_storage_buffer_binding_size.min(self.inner.limits.max_buffer_size);
        if bytes > limit {
            return Err(DeviceError::TooLarge {
                op: op.to_string(),
                bytes,
                limit,
                what: "max_storage_buffer_binding_size",
            });
        }
        Ok(bucket_for(bytes).min(limit & !3).max(16))
    }

    /// A pooled storage buffer of at least `bytes` bytes, contents undefined.
    pub fn alloc(&self, bytes: u64, op: &str) -> DeviceResult<GpuBuffer> {
        let bucket = self.check_size(bytes, op)?;
        if let Some(b) = self.inner.pool.take(bucket) {
            return Ok(b);
        }
        let buf = self.inner.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bucket,
            usage: STORAGE_USAGE,
            mapped_at_creation: false,
        });
        Ok(self.inner.pool.adopt(buf, bucket))
    }

    /// A storage buffer holding `data`. A free pooled buffer is filled through a staging copy
    /// recorded in the pending encoder (so it is ordered after every command that may still use
    /// the buffer); otherwise a new buffer is written at creation (mapped), which has no ordering
    /// hazard either. Either way the upload joins the pool when it is dropped, and a steady
    /// training loop stops creating buffers.
    pub fn upload(&self, data: &[u8], op: &str) -> DeviceResult<GpuBuffer> {
        let bucket = self.check_size(data.len() as u64, op)?;
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
            let staging = self.inner.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("kiln upload"),
                size: len,
                usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::MAP_WRITE,
                mapped_at_creation: true,
            });
            write(&staging)?;
            let mut p = self.inner.pending.lock().unwrap();
            self.copy_encoder(&mut p)?.copy_buffer_to_buffer(&staging, 0, dst.raw(), 0, len);
            return Ok(dst);
        }
        let buf = self.inner.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bucket,
            usage: STORAGE_USAGE,
            mapped_at_creation: true,
        });
        write(&buf)?;
        Ok(self.inner.pool.adopt(buf, bucket))
    }

    /// Records one dispatch. `bufs` are the family's storage bindings in order (read-only ones
    /// first); `params` the uniform struct's bytes.
    pub(crate) fn record(
        &self,
        pipe: &PipelineEntry,
        bufs: &[&wgpu::Buffer],
        params: &[u8],
        groups: [u32; 3],
    ) -> DeviceResult<()> {
        let mut p = self.inner.pending.lock().unwrap();
        self.close_chain(&mut p)?;
        self.record_locked(&mut p, pipe, bufs, params, groups)
    }

    /// [`GpuDevice::record`] with the batch already locked (and any open chain closed).
    pub(crate) fn record_locked(
        &self,
        p: &mut Pending,
        pipe: &PipelineEntry,
        bufs: &[&wgpu::Buffer],
        params: &[u8],
        groups: [u32; 3],
    ) -> DeviceResult<()> {
        if groups.contains(&0) {
            return Ok(());
        }
        let inner = &self.inner;
        let align = inner.uniform_align;
        let slot = (params.len() as u64).next_multiple_of(16);
        if p.uniforms.len() as u64 + slot.max(align) > ARENA_BYTES || p.dispatches >= MAX_DISPATCHES {
            self.flush_locked(p)?;
        }
        let offset = p.uniforms.len() as u64;
        p.uniforms.extend_from_slice(params);
        p.uniforms.resize((offset + slot.max(align).next_multiple_of(align)) as usize, 0);
        let mut entries: Vec<wgpu::BindGroupEntry> = bufs
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() })
            .collect();
        entries.push(wgpu::BindGroupEntry {
            binding: bufs.len() as u32,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &inner.arena,
                offset,
                size: NonZeroU64::new(slot),
            }),
        });
        let bg = inner.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipe.layout,
            entries: &entries,
        });
        if p.encoder.is_none() {
            p.encoder = Some(inner.device.create_command_encoder(&Default::default()));
        }
        if p.pass.is_none() {
            let pass = p.encoder.as_mut().unwrap().begin_compute_pass(&Default::default());
            p.pass = Some(pass.forget_lifetime());
        }
        let pass = p.pass.as_mut().unwrap();
        pass.set_pipeline(&pipe.pipeline);
        pass.set_bind_group(0, &bg, &[]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        p.dispatches += 1;
        inner.dispatched.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// A buffer to bind where a kernel ignores one of its family's bindings.
    pub(crate) fn dummy(&self) -> &wgpu::Buffer {
        &self.inner.dummies[0]
    }

    /// The i-th (0..3) distinct placeholder buffer.
    pub(crate) fn dummy_n(&self, i: usize) -> &wgpu::Buffer {
        &self.inner.dummies[i]
    }

    /// The pending encoder, for a copy recorded in order: the open chain is recorded first and
    /// the open compute pass ended.
    fn copy_encoder<'p>(&self, p: &'p mut Pending) -> DeviceResult<&'p mut wgpu::CommandEncoder> {
        self.close_chain(p)?;
        p.pass = None;
        Ok(p.encoder.get_or_insert_with(|| self.inner.device.create_command_encoder(&Default::default())))
    }

    fn flush_locked(&self, p: &mut Pending) -> DeviceResult<()> {
        self.close_chain(p)?;
        p.pass = None; // ends the open pass
        if let Some(enc) = p.encoder.take() {
            if !p.uniforms.is_empty() {
                self.inner.queue.write_buffer(&self.inner.arena, 0, &p.uniforms);
            }
            self.inner.queue.submit([enc.finish()]);
        }
        p.uniforms.clear();
        p.dispatches = 0;
        self.take_error()
    }

    /// Submits everything recorded so far without waiting for it.
    pub fn flush(&self) -> DeviceResult<()> {
        let mut p = self.inner.pending.lock().unwrap();
        self.flush_locked(&mut p)
    }

    /// Submits everything recorded so far and waits until the GPU has finished it.
    pub fn synchronize(&self) -> DeviceResult<()> {
        self.flush()?;
        self.inner.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| DeviceError::Wgpu(e.to_string()))?;
        self.take_error()
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
        let mut p = self.inner.pending.lock().unwrap();
        self.copy_encoder(&mut p)?.copy_buffer_to_buffer(
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
        let staging = self.inner.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kiln read-back"),
            size: padded,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        {
            let mut p = self.inner.pending.lock().unwrap();
            self.copy_encoder(&mut p)?.copy_buffer_to_buffer(src.raw(), 0, &staging, 0, padded);
            self.flush_locked(&mut p)?;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.inner
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
        self.take_error()?;
        Ok(out)
    }
}
