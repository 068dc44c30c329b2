//! The recorder: every launch is recorded into one pending encoder, inside one open compute
//! pass, with its parameters appended to a host-side copy of the uniform arena. Knows nothing of
//! fusion (`fuse/` owns the recorder and closes its open chain before handing it out).
//!
//! A batch is submitted when a result is read back, on `synchronize`, or when the arena is full:
//! at submit the arena is written with `queue.write_buffer`, which wgpu executes before the
//! batch's command buffer, exactly when the batch needs it. The arena is never written while a
//! batch that reads it is still unsubmitted.

use std::num::NonZeroU64;
use std::sync::Arc;

use crate::context::{ARENA_BYTES, Context, PipelineEntry};
use crate::error::{DeviceError, DeviceResult};

/// Dispatches recorded before a batch is submitted anyway.
const MAX_DISPATCHES: u32 = 512;

/// A launch as a kernel family's launcher describes it: the pipeline, the storage buffers in
/// binding order (read-only ones first), the uniform's bytes and the workgroup grid.
pub(crate) struct Launch {
    pub(crate) pipe: Arc<PipelineEntry>,
    pub(crate) bufs: Vec<wgpu::Buffer>,
    pub(crate) params: Vec<u8>,
    pub(crate) groups: [u32; 3],
}

/// The pending batch of a device: see the module docs.
#[derive(Default)]
pub(crate) struct Recorder {
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    uniforms: Vec<u8>,
    dispatches: u32,
}

impl Recorder {
    /// Records one dispatch. `bufs` are the kernel's storage bindings in order; `params` the
    /// uniform struct's bytes (bound after them). A grid with a zero dimension records nothing.
    pub(crate) fn record(
        &mut self,
        cx: &Context,
        pipe: &PipelineEntry,
        bufs: &[&wgpu::Buffer],
        params: &[u8],
        groups: [u32; 3],
    ) -> DeviceResult<()> {
        if groups.contains(&0) {
            return Ok(());
        }
        let align = cx.uniform_align;
        let slot = (params.len() as u64).next_multiple_of(16);
        if self.uniforms.len() as u64 + slot.max(align) > ARENA_BYTES || self.dispatches >= MAX_DISPATCHES {
            self.flush(cx)?;
        }
        let offset = self.uniforms.len() as u64;
        self.uniforms.extend_from_slice(params);
        self.uniforms.resize((offset + slot.max(align).next_multiple_of(align)) as usize, 0);
        let mut entries: Vec<wgpu::BindGroupEntry> = bufs
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() })
            .collect();
        entries.push(wgpu::BindGroupEntry {
            binding: bufs.len() as u32,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &cx.arena,
                offset,
                size: NonZeroU64::new(slot),
            }),
        });
        let bg = cx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipe.layout,
            entries: &entries,
        });
        let encoder = self.encoder.get_or_insert_with(|| cx.device.create_command_encoder(&Default::default()));
        let pass = self.pass.get_or_insert_with(|| encoder.begin_compute_pass(&Default::default()).forget_lifetime());
        pass.set_pipeline(&pipe.pipeline);
        pass.set_bind_group(0, &bg, &[]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        self.dispatches += 1;
        cx.dispatched.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Records a launcher's [`Launch`].
    pub(crate) fn launch(&mut self, cx: &Context, l: Launch) -> DeviceResult<()> {
        let bufs: Vec<&wgpu::Buffer> = l.bufs.iter().collect();
        self.record(cx, &l.pipe, &bufs, &l.params, l.groups)
    }

    /// The pending encoder, for a copy recorded in order (the open compute pass ended).
    pub(crate) fn copy_encoder(&mut self, cx: &Context) -> &mut wgpu::CommandEncoder {
        self.pass = None;
        self.encoder.get_or_insert_with(|| cx.device.create_command_encoder(&Default::default()))
    }

    /// Submits everything recorded (the arena written first), then reports any wgpu error.
    pub(crate) fn flush(&mut self, cx: &Context) -> DeviceResult<()> {
        self.pass = None; // ends the open pass
        if let Some(enc) = self.encoder.take() {
            if !self.uniforms.is_empty() {
                cx.queue.write_buffer(&cx.arena, 0, &self.uniforms);
            }
            cx.queue.submit([enc.finish()]);
        }
        self.uniforms.clear();
        self.dispatches = 0;
        cx.take_error()
    }
}

/// A 1-D launch of `groups` workgroups, split over a 2-D grid past the per-dimension limit.
pub(crate) fn grid(cx: &Context, groups: usize) -> DeviceResult<[u32; 3]> {
    let max = cx.limits.max_compute_workgroups_per_dimension.max(1) as usize;
    if groups <= max {
        return Ok([groups as u32, 1, 1]);
    }
    let y = groups.div_ceil(max);
    if y > max {
        return Err(DeviceError::Launch { op: "grid", msg: format!("{groups} workgroups exceed {max}^2") });
    }
    Ok([max as u32, y as u32, 1])
}

/// A 1-D launch of `n` invocations in workgroups of 256.
pub(crate) fn grid_threads(cx: &Context, n: usize) -> DeviceResult<[u32; 3]> {
    grid(cx, n.div_ceil(256))
}

/// A 2-D launch for [rows, cols]: x over the columns (256 per workgroup), y (and z past the
/// per-dimension limit) over the rows. `None` when it does not fit.
pub(crate) fn grid_rows(cx: &Context, rows: usize, cols: usize) -> Option<[u32; 3]> {
    let max = cx.limits.max_compute_workgroups_per_dimension.max(1) as usize;
    let gx = cols.div_ceil(256);
    let (gy, gz) = if rows <= max { (rows, 1) } else { (max, rows.div_ceil(max)) };
    (gx <= max && gz <= max && rows > 0 && cols > 0).then_some([gx as u32, gy as u32, gz as u32])
}
