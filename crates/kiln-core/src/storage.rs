//! Tensor storage: an immutable, shared block of elements on the host or in a pooled GPU buffer.
//! Storage is never written after creation; ops always produce new storage, which is what lets
//! tensors be cheap `Arc` handles and lets reshape share storage.

use std::sync::Arc;

use kiln_device::GpuBuffer;

use crate::device::Device;
use crate::dtype::DType;
use crate::error::Result;

/// Host elements.
#[derive(Clone, Debug)]
pub(crate) enum CpuData {
    F32(Arc<Vec<f32>>),
    U32(Arc<Vec<u32>>),
    I64(Arc<Vec<i64>>),
}

/// Where the elements are.
#[derive(Clone, Debug)]
pub(crate) enum Storage {
    Cpu(CpuData),
    Gpu(Arc<GpuBuffer>),
}

impl Storage {
    pub(crate) fn f32_cpu(v: Vec<f32>) -> Storage {
        Storage::Cpu(CpuData::F32(Arc::new(v)))
    }

    pub(crate) fn gpu(b: GpuBuffer) -> Storage {
        Storage::Gpu(Arc::new(b))
    }

    /// Creates f32 storage on `dev` from host values.
    pub(crate) fn from_f32(v: Vec<f32>, dev: &Device, op: &'static str) -> Result<Storage> {
        Ok(match dev {
            Device::Cpu => Storage::f32_cpu(v),
            Device::Gpu(g) => Storage::gpu(g.upload(bytemuck::cast_slice(&v), op)?),
        })
    }

    /// Creates u32 storage on `dev` from host values.
    pub(crate) fn from_u32(v: Vec<u32>, dev: &Device, op: &'static str) -> Result<Storage> {
        Ok(match dev {
            Device::Cpu => Storage::Cpu(CpuData::U32(Arc::new(v))),
            Device::Gpu(g) => Storage::gpu(g.upload(bytemuck::cast_slice(&v), op)?),
        })
    }

    /// Creates storage of `dtype` on `dev` from little-endian bytes (`bytes.len()` is a multiple
    /// of the element size; callers check).
    pub(crate) fn from_bytes(bytes: &[u8], dtype: DType, dev: &Device, op: &'static str) -> Result<Storage> {
        Ok(match dev {
            Device::Gpu(g) => Storage::gpu(g.upload(bytes, op)?),
            Device::Cpu => Storage::Cpu(match dtype {
                DType::F32 => CpuData::F32(Arc::new(bytemuck::pod_collect_to_vec(bytes))),
                DType::U32 => CpuData::U32(Arc::new(bytemuck::pod_collect_to_vec(bytes))),
                DType::I64 => CpuData::I64(Arc::new(bytemuck::pod_collect_to_vec(bytes))),
            }),
        })
    }

    /// The bytes of `n` elements of `dtype`, copied to the host (a read-back on the GPU).
    pub(crate) fn to_bytes(&self, dev: &Device, n: usize, dtype: DType) -> Result<Vec<u8>> {
        match (self, dev) {
            (Storage::Cpu(CpuData::F32(v)), _) => Ok(bytemuck::cast_slice(v.as_slice()).to_vec()),
            (Storage::Cpu(CpuData::U32(v)), _) => Ok(bytemuck::cast_slice(v.as_slice()).to_vec()),
            (Storage::Cpu(CpuData::I64(v)), _) => Ok(bytemuck::cast_slice(v.as_slice()).to_vec()),
            (Storage::Gpu(b), Device::Gpu(g)) => Ok(g.read(b, (n * dtype.size_in_bytes()) as u64)?),
            (Storage::Gpu(_), Device::Cpu) => unreachable!("GPU storage on the CPU device"),
        }
    }

    /// The raw 32-bit words of `n` 32-bit elements.
    pub(crate) fn to_words(&self, dev: &Device, n: usize) -> Result<Vec<u32>> {
        Ok(bytemuck::pod_collect_to_vec(&self.to_bytes(dev, n, DType::U32)?))
    }

    /// Copies `n` elements of `dtype` to `dev`.
    pub(crate) fn to_device(&self, from: &Device, to: &Device, n: usize, dtype: DType) -> Result<Storage> {
        if from == to {
            return Ok(self.clone());
        }
        let bytes = self.to_bytes(from, n, dtype)?;
        Storage::from_bytes(&bytes, dtype, to, "to")
    }
}
