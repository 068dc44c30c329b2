//! Pooled storage buffers.
//!
//! Buffers are bucketed by size (powers of two, then eighths of a power of two above 64 KiB) and
//! returned to their bucket when the last [`GpuBuffer`] handle drops. Reusing a returned buffer
//! as the *output* of a later dispatch in the same pending batch is safe, because commands run in
//! recording order. What is never done is `queue.write_buffer` into a pooled buffer (that write
//! would run before the pending commands at the next submit): an upload into a pooled buffer is
//! a staging copy recorded in the batch, and a fresh buffer is written mapped at creation
//! (`GpuDevice::upload`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::error::{DeviceError, DeviceResult};

/// The usages every pooled storage buffer has.
pub(crate) const STORAGE_USAGE: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC).union(wgpu::BufferUsages::COPY_DST);

/// Cached (free) bytes above which returned buffers are destroyed instead of kept.
const MAX_CACHED_BYTES: u64 = 1 << 30;

/// Counters the pool keeps; see [`crate::GpuDevice::pool_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Bytes held by live buffers (handed out and not yet dropped).
    pub live_bytes: u64,
    /// Bytes held by free buffers waiting in the pool.
    pub cached_bytes: u64,
    /// The largest `live_bytes + cached_bytes` seen.
    pub peak_bytes: u64,
    /// Buffers created through wgpu since the device was opened.
    pub created: u64,
}

#[derive(Default)]
pub(crate) struct PoolInner {
    free: Mutex<HashMap<u64, Vec<wgpu::Buffer>>>,
    live: AtomicU64,
    cached: AtomicU64,
    peak: AtomicU64,
    created: AtomicU64,
}

impl PoolInner {
    fn note_total(&self) {
        let total = self.live.load(Ordering::Relaxed) + self.cached.load(Ordering::Relaxed);
        self.peak.fetch_max(total, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> PoolStats {
        PoolStats {
            live_bytes: self.live.load(Ordering::Relaxed),
            cached_bytes: self.cached.load(Ordering::Relaxed),
            peak_bytes: self.peak.load(Ordering::Relaxed),
            created: self.created.load(Ordering::Relaxed),
        }
    }

    /// The bucket a request of `bytes` bytes gets on a device with `limits`, or an error naming
    /// `op` when the request exceeds what one storage binding can hold.
    pub(crate) fn bucket(limits: &wgpu::Limits, bytes: u64, op: &str) -> DeviceResult<u64> {
        let limit = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
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
    pub(crate) fn alloc(
        self: &Arc<Self>,
        device: &wgpu::Device,
        limits: &wgpu::Limits,
        bytes: u64,
        op: &str,
    ) -> DeviceResult<GpuBuffer> {
        let bucket = Self::bucket(limits, bytes, op)?;
        if let Some(b) = self.take(bucket) {
            return Ok(b);
        }
        let buf = device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bucket,
            usage: STORAGE_USAGE,
            mapped_at_creation: false,
        });
        Ok(self.adopt(buf, bucket))
    }

    /// Takes a free buffer of exactly `bucket` bytes, if one is cached.
    pub(crate) fn take(self: &Arc<Self>, bucket: u64) -> Option<GpuBuffer> {
        let buf = self.free.lock().unwrap().get_mut(&bucket).and_then(|v| v.pop())?;
        self.cached.fetch_sub(bucket, Ordering::Relaxed);
        self.live.fetch_add(bucket, Ordering::Relaxed);
        Some(GpuBuffer { buf: Some(buf), bucket, pool: Arc::downgrade(self), token: None })
    }

    /// Wraps a freshly created buffer of `bucket` bytes.
    pub(crate) fn adopt(self: &Arc<Self>, buf: wgpu::Buffer, bucket: u64) -> GpuBuffer {
        self.created.fetch_add(1, Ordering::Relaxed);
        self.live.fetch_add(bucket, Ordering::Relaxed);
        self.note_total();
        GpuBuffer { buf: Some(buf), bucket, pool: Arc::downgrade(self), token: None }
    }

    fn give_back(&self, buf: wgpu::Buffer, bucket: u64) {
        self.live.fetch_sub(bucket, Ordering::Relaxed);
        if self.cached.load(Ordering::Relaxed) + bucket > MAX_CACHED_BYTES {
            return; // dropped: wgpu frees it once no submitted work uses it
        }
        self.cached.fetch_add(bucket, Ordering::Relaxed);
        self.free.lock().unwrap().entry(bucket).or_default().push(buf);
    }

    /// Drops every cached buffer.
    pub(crate) fn trim(&self) {
        let mut free = self.free.lock().unwrap();
        free.clear();
        self.cached.store(0, Ordering::Relaxed);
    }
}

/// The pool bucket (allocation size in bytes) for a request of `bytes` bytes.
pub(crate) fn bucket_for(bytes: u64) -> u64 {
    let b = bytes.max(16);
    let p = b.next_power_of_two();
    if p <= 1 << 16 {
        p
    } else {
        let step = p / 8;
        b.div_ceil(step) * step
    }
}

/// A storage buffer from the pool. Dropping the handle returns the buffer to the pool.
pub struct GpuBuffer {
    buf: Option<wgpu::Buffer>,
    bucket: u64,
    pool: Weak<PoolInner>,
    /// Set when the buffer is the output of an op in an open fused chain: the chain holds a
    /// `Weak` to it, to tell whether the result is still referenced when the chain closes.
    token: Option<Arc<()>>,
}

impl GpuBuffer {
    /// The underlying wgpu buffer (its size is the pool bucket, at least the requested size).
    pub fn raw(&self) -> &wgpu::Buffer {
        self.buf.as_ref().expect("GpuBuffer used after drop")
    }

    /// The allocated size in bytes.
    pub fn bucket_bytes(&self) -> u64 {
        self.bucket
    }

    /// Gives the buffer a liveness token and returns a weak handle to it (see `fuse/`).
    pub(crate) fn mark(&mut self) -> Weak<()> {
        Arc::downgrade(self.token.get_or_insert_with(|| Arc::new(())))
    }

    /// The liveness token, if the buffer has one.
    pub(crate) fn token(&self) -> Option<&Arc<()>> {
        self.token.as_ref()
    }
}

impl std::fmt::Debug for GpuBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuBuffer({} bytes)", self.bucket)
    }
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        if let (Some(buf), Some(pool)) = (self.buf.take(), self.pool.upgrade()) {
            pool.give_back(buf, self.bucket);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bucket_for;

    #[test]
    fn buckets_cover_the_request_and_stay_close() {
        for bytes in [0u64, 1, 4, 17, 1000, 65536, 65537, 1 << 20, 3_000_001] {
            let b = bucket_for(bytes);
            assert!(b >= bytes.max(16), "{bytes} -> {b}");
            assert_eq!(b % 4, 0);
            if bytes > 1 << 16 {
                assert!((b as f64) < bytes as f64 * 1.26, "{bytes} -> {b}");
            }
        }
    }
}
