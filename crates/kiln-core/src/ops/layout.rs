//! Layout ops: reshape (shares storage), transpose and broadcast_to (one strided-gather kernel),
//! squeeze/unsqueeze/flatten, and the reduction of a broadcast gradient back to its input shape.

use kiln_device::kernels;

use super::gpu;
use crate::autograd::Op;
use crate::cpu;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::shape::{Dim, broadcast_shapes, broadcast_strides, checked_numel, contiguous_strides, merge_dims};
use crate::storage::{CpuData, Storage};
use crate::tensor::Tensor;

impl Tensor {
    /// Gathers a strided view of this tensor's storage into new contiguous storage.
    pub(crate) fn gather_view(&self, shape: &[usize], strides: &[usize]) -> Result<Storage> {
        if self.dtype() == DType::I64 {
            return Err(Error::invalid(
                "transpose/broadcast_to",
                "I64 tensors can be stored and moved, not rearranged",
            ));
        }
        let (ms, st) = merge_dims(shape, &[strides.to_vec()]);
        Ok(match self.storage() {
            Storage::Gpu(b) => Storage::gpu(kernels::gather(gpu(self.dev()), b, &ms, &st[0], 0)?),
            Storage::Cpu(CpuData::F32(v)) => Storage::f32_cpu(cpu::gather(v, &ms, &st[0], 0)),
            Storage::Cpu(CpuData::U32(v)) => {
                Storage::Cpu(CpuData::U32(std::sync::Arc::new(cpu::gather(v, &ms, &st[0], 0))))
            }
            Storage::Cpu(CpuData::I64(_)) => unreachable!("checked dtype"),
        })
    }

    /// The same elements in another shape (same count). Shares storage: no copy.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let n = checked_numel("reshape", shape)?;
        if n != self.numel() {
            return Err(Error::ShapeMismatch { op: "reshape", lhs: self.shape().to_vec(), rhs: shape.to_vec() });
        }
        let op = Op::Reshape { x: self.clone() };
        let t = Tensor::from_op(self.storage().clone(), shape.to_vec(), self.dtype(), self.device(), op);
        Ok(t.with_index_bound(self.index_bound()))
    }

    /// Swaps two dims (a copy: kiln's tensors are always contiguous).
    pub fn transpose(&self, d0: impl Dim, d1: impl Dim) -> Result<Tensor> {
        let a = d0.resolve("transpose", self.shape())?;
        let b = d1.resolve("transpose", self.shape())?;
        if self.rank() < 2 || a == b {
            return Ok(self.clone());
        }
        let mut shape = self.shape().to_vec();
        let mut strides = contiguous_strides(self.shape());
        shape.swap(a, b);
        strides.swap(a, b);
        let storage = self.gather_view(&shape, &strides)?;
        Ok(Tensor::from_op(
            storage,
            shape,
            self.dtype(),
            self.device(),
            Op::Transpose { x: self.clone(), d0: a, d1: b },
        ))
    }

    /// The transpose of a 2-D tensor (0-D and 1-D tensors are returned as they are).
    pub fn t(&self) -> Result<Tensor> {
        if self.rank() > 2 {
            return Err(Error::invalid("t", format!("expects a tensor with <= 2 dims, got shape {:?}", self.shape())));
        }
        self.transpose(0usize, 1usize)
    }

    /// Expands size-1 (or missing leading) dims to `shape`, as NumPy broadcasting does.
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let b = broadcast_shapes("broadcast_to", self.shape(), shape)?;
        if b != shape {
            return Err(Error::ShapeMismatch { op: "broadcast_to", lhs: self.shape().to_vec(), rhs: shape.to_vec() });
        }
        let strides = broadcast_strides(self.shape(), shape);
        let storage = self.gather_view(shape, &strides)?;
        Ok(Tensor::from_op(storage, shape.to_vec(), self.dtype(), self.device(), Op::BroadcastTo { x: self.clone() }))
    }

    /// Inserts a size-1 dim at `dim` (0..=rank; negative counts from the end).
    pub fn unsqueeze(&self, dim: impl Dim) -> Result<Tensor> {
        let mut ext = self.shape().to_vec();
        ext.push(1);
        let d = dim.resolve("unsqueeze", &ext)?;
        let mut shape = self.shape().to_vec();
        shape.insert(d, 1);
        self.reshape(&shape)
    }

    /// Removes the size-1 dim `dim` (an error if it is not of size 1).
    pub fn squeeze(&self, dim: impl Dim) -> Result<Tensor> {
        let d = dim.resolve("squeeze", self.shape())?;
        if self.rank() == 0 {
            return Ok(self.clone());
        }
        if self.shape()[d] != 1 {
            return Err(Error::invalid("squeeze", format!("dim {d} of shape {:?} is not 1", self.shape())));
        }
        let mut shape = self.shape().to_vec();
        shape.remove(d);
        self.reshape(&shape)
    }

    /// All dims merged into one.
    pub fn flatten(&self) -> Result<Tensor> {
        self.reshape(&[self.numel()])
    }

    /// Dims `start..=end` merged into one (PyTorch's `torch.flatten(t, start_dim, end_dim)`;
    /// negative dims count from the end). Shares storage.
    pub fn flatten_dims(&self, start: impl Dim, end: impl Dim) -> Result<Tensor> {
        let (s, e) = (start.resolve("flatten_dims", self.shape())?, end.resolve("flatten_dims", self.shape())?);
        if self.rank() == 0 {
            return self.reshape(&[1]);
        }
        if s > e {
            return Err(Error::invalid(
                "flatten_dims",
                format!("start dim {s} is after end dim {e} (shape {:?})", self.shape()),
            ));
        }
        let sh = self.shape();
        let mut shape = sh[..s].to_vec();
        shape.push(sh[s..=e].iter().product());
        shape.extend_from_slice(&sh[e + 1..]);
        self.reshape(&shape)
    }

    /// The elements of every tensor, one after the other, as one flat F32 tensor on their
    /// (common) device; on the GPU, buffer-to-buffer copies with no read-back. Not recorded for
    /// autograd (for collectives and checkpoints).
    pub fn concat_flat(tensors: &[Tensor], dev: &crate::device::Device) -> Result<Tensor> {
        let n: usize = tensors.iter().map(|t| t.numel()).sum();
        for t in tensors {
            t.expect_dtype("concat_flat", DType::F32)?;
            if t.dev() != dev {
                return Err(Error::DeviceMismatch { op: "concat_flat", lhs: dev.name(), rhs: t.dev().name() });
            }
        }
        match dev {
            crate::device::Device::Cpu => {
                let mut v = Vec::with_capacity(n);
                for t in tensors {
                    v.extend_from_slice(t.cpu_f32());
                }
                Tensor::from_vec(v, &[n], dev)
            }
            crate::device::Device::Gpu(g) => {
                let out = g.alloc((n * 4) as u64, "concat_flat")?;
                let mut off = 0u64;
                for t in tensors {
                    if let Storage::Gpu(b) = t.storage() {
                        g.copy_region(b, 0, &out, off, (t.numel() * 4) as u64)?;
                    }
                    off += (t.numel() * 4) as u64;
                }
                Ok(Tensor::from_parts(Storage::gpu(out), vec![n], DType::F32, dev.clone()))
            }
        }
    }

    /// `shape`'s worth of elements of this flat F32 tensor from element `offset`, as a new
    /// tensor (one gather on the GPU). Not recorded for autograd.
    pub fn slice_flat(&self, offset: usize, shape: &[usize]) -> Result<Tensor> {
        self.expect_dtype("slice_flat", DType::F32)?;
        let n = checked_numel("slice_flat", shape)?;
        if offset.checked_add(n).is_none_or(|e| e > self.numel()) {
            return Err(Error::invalid(
                "slice_flat",
                format!("{n} elements at {offset} exceed {} elements", self.numel()),
            ));
        }
        let storage = match self.storage() {
            Storage::Gpu(b) => Storage::gpu(kernels::gather(gpu(self.dev()), b, &[n.max(1)], &[1], offset)?),
            _ => Storage::f32_cpu(self.cpu_f32()[offset..offset + n].to_vec()),
        };
        Ok(Tensor::from_parts(storage, shape.to_vec(), DType::F32, self.device()))
    }

    /// Sums a (broadcast) gradient down to `shape`: leading extra dims and dims that are 1 in
    /// `shape` are summed away. The gradient rule of every broadcasting op.
    pub(crate) fn sum_to_shape(&self, shape: &[usize]) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let extra = self.rank() - shape.len();
        let mut g = self.clone();
        for _ in 0..extra {
            g = g.sum(0usize, false)?;
        }
        for (d, &s) in shape.iter().enumerate() {
            if s == 1 && g.shape()[d] != 1 {
                g = g.sum(d, true)?;
            }
        }
        g.reshape(shape)
    }

    /// A `U32` tensor of indices to a 0/1 mask of shape [outer, dim, inner] (flat).
    pub(crate) fn index_mask(idx: &Tensor, outer: usize, dim: usize, inner: usize) -> Result<Tensor> {
        idx.expect_dtype("index_mask", DType::U32)?;
        let storage = match idx.storage() {
            Storage::Gpu(b) => Storage::gpu(kernels::index_mask(gpu(idx.dev()), b, outer, dim, inner)?),
            Storage::Cpu(CpuData::U32(v)) => Storage::f32_cpu(cpu::index_mask(v, outer, dim, inner)),
            Storage::Cpu(_) => unreachable!("checked dtype"),
        };
        Ok(Tensor::from_parts(storage, vec![outer * dim * inner], DType::F32, idx.device()))
    }

    /// One-hot encoding of labels of shape [N] (`U32`, or `I64` as PyTorch's int64) into an F32
    /// tensor [N, classes].
    pub fn one_hot(labels: &Tensor, classes: usize) -> Result<Tensor> {
        let labels = &labels.labels_u32("one_hot")?;
        if labels.rank() != 1 {
            return Err(Error::invalid("one_hot", format!("labels must be 1-D, got shape {:?}", labels.shape())));
        }
        check_labels("one_hot", labels, classes, None)?;
        Tensor::index_mask(labels, labels.numel(), classes, 1)?.reshape(&[labels.numel(), classes])
    }
}

/// Checks that class labels are below `classes` (except `ignore`), when that can be known
/// without a read-back: on the CPU always, on the GPU from the tensor's index bound (labels
/// made from host data carry their maximum). Other GPU labels are not checked here; the fused
/// cross-entropy kernel turns an out-of-range label into a NaN loss.
pub(crate) fn check_labels(op: &'static str, labels: &Tensor, classes: usize, ignore: Option<u32>) -> Result<()> {
    let bad = match labels.storage() {
        Storage::Cpu(CpuData::U32(v)) => v.iter().copied().find(|&l| l as usize >= classes && Some(l) != ignore),
        // The bound is the largest label + 1: that label is out of range unless it is the
        // ignore index (then smaller ones could still be, but only a read-back could tell).
        _ => {
            labels.index_bound().and_then(|b| b.checked_sub(1)).filter(|&m| m as usize >= classes && Some(m) != ignore)
        }
    };
    match bad {
        Some(l) => Err(Error::invalid(op, format!("label {l} is out of range for {classes} classes"))),
        None => Ok(()),
    }
}
