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

    /// The raw 32-bit words of `n` elements, copied to the host (a read-back on the GPU).
    pub(crate) fn to_words(&self, dev: &Device, n: usize) -> Result<Vec<u32>> {
        match (self, dev) {
            (Storage::Cpu(CpuData::F32(v)), _) => Ok(v.iter().map(|x| x.to_bits()).collect()),
            (Storage::Cpu(CpuData::U32(v)), _) => Ok(v.as_ref().clone()),
            (Storage::Gpu(b), Device::Gpu(g)) => {
                let bytes = g.read(b, (n * 4) as u64)?;
                Ok(bytemuck::pod_collect_to_vec(&bytes))
            }
            (Storage::Gpu(_), Device::Cpu) => unreachable!("GPU storage on the CPU device"),
        }
    }

    /// Copies `n` elements of `dtype` to `dev`.
    pub(crate) fn to_device(&self, from: &Device, to: &Device, n: usize, dtype: DType) -> Result<Storage> {
        if from == to {
            return Ok(self.clone());
        }
        let words = self.to_words(from, n)?;
        Ok(match (to, dtype) {
            (Device::Cpu, DType::F32) => Storage::f32_cpu(words.into_iter().map(f32::from_bits).collect()),
            (Device::Cpu, DType::U32) => Storage::Cpu(CpuData::U32(Arc::new(words))),
            (Device::Gpu(g), _) => Storage::gpu(g.upload(bytemuck::cast_slice(&words), "to")?),
        })
    }
}
