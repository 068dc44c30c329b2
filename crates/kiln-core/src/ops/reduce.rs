//! Reductions along a dim (sum, mean, max, argmax), over everything (sum_all, mean_all), and
//! softmax / log_softmax along a dim.

use std::sync::Arc;

use kiln_device::kernels::{self, ReduceOp};

use super::gpu;
use crate::autograd::Op;
use crate::cpu;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::shape::{Dim, split_at_dim};
use crate::storage::{CpuData, Storage};
use crate::tensor::Tensor;

fn reduced_shape(shape: &[usize], dim: usize, keepdim: bool) -> Vec<usize> {
    let mut s = shape.to_vec();
    if s.is_empty() {
        return s;
    }
    if keepdim {
        s[dim] = 1;
    } else {
        s.remove(dim);
    }
    s
}

impl Tensor {
    /// Sum over `dim` (negative counts from the end); `keepdim` keeps it as size 1.
    pub fn sum(&self, dim: impl Dim, keepdim: bool) -> Result<Tensor> {
        self.expect_dtype("sum", DType::F32)?;
        let d = dim.resolve("sum", self.shape())?;
        let (outer, len, inner) = split_at_dim(self.shape(), d);
        let shape = reduced_shape(self.shape(), d, keepdim);
        let storage = if len == 0 {
            Storage::from_f32(vec![0.0; outer * inner], self.dev(), "sum")?
        } else {
            match self.storage() {
                Storage::Gpu(b) => {
                    Storage::gpu(kernels::reduce(gpu(self.dev()), ReduceOp::Sum, b, outer, len, inner)?.0)
                }
                Storage::Cpu(_) => Storage::f32_cpu(cpu::sum_dim(self.cpu_f32(), outer, len, inner)),
            }
        };
        let op = Op::Sum { x: self.clone(), dim: d, keepdim };
        Ok(Tensor::from_op(storage, shape, DType::F32, self.device(), op))
    }

    /// Sum of all elements, as a 0-d tensor.
    pub fn sum_all(&self) -> Result<Tensor> {
        self.flatten()?.sum(0usize, false)
    }

    /// Mean over `dim`.
    pub fn mean(&self, dim: impl Dim, keepdim: bool) -> Result<Tensor> {
        let d = dim.resolve("mean", self.shape())?;
        let n = if self.rank() == 0 { 1 } else { self.shape()[d] };
        self.sum(d, keepdim)?.div_scalar(n as f32)
    }

    /// Mean of all elements, as a 0-d tensor.
    pub fn mean_all(&self) -> Result<Tensor> {
        let n = self.numel();
        self.sum_all()?.div_scalar(n as f32)
    }

    fn max_with_index(&self, op: &'static str, d: usize, keepdim: bool) -> Result<(Storage, Tensor, Vec<usize>)> {
        self.expect_dtype(op, DType::F32)?;
        let (outer, len, inner) = split_at_dim(self.shape(), d);
        if len == 0 || self.numel() == 0 {
            return Err(Error::invalid(op, format!("cannot reduce an empty dim of shape {:?}", self.shape())));
        }
        let shape = reduced_shape(self.shape(), d, keepdim);
        let (vals, idx) = match self.storage() {
            Storage::Gpu(b) => {
                let (v, i) = kernels::reduce(gpu(self.dev()), ReduceOp::Max, b, outer, len, inner)?;
                (Storage::gpu(v), Storage::gpu(i.expect("max returns indices")))
            }
            Storage::Cpu(_) => {
                let (v, i) = cpu::max_dim(self.cpu_f32(), outer, len, inner);
                (Storage::f32_cpu(v), Storage::Cpu(CpuData::U32(Arc::new(i))))
            }
        };
        let idx = Tensor::from_parts(idx, shape.clone(), DType::U32, self.device());
        Ok((vals, idx, shape))
    }

    /// Maximum over `dim` (the gradient goes to the first maximal element, as in PyTorch). A NaN
    /// is the maximum where there is one (the first NaN), as in PyTorch.
    pub fn max(&self, dim: impl Dim, keepdim: bool) -> Result<Tensor> {
        let d = dim.resolve("max", self.shape())?;
        let (vals, idx, shape) = self.max_with_index("max", d, keepdim)?;
        let op = Op::Max { x: self.clone(), dim: d, keepdim, idx };
        Ok(Tensor::from_op(vals, shape, DType::F32, self.device(), op))
    }

    /// Index (U32) of the maximum over `dim`, the dim removed; first occurrence on ties; the
    /// first NaN where there is one.
    pub fn argmax(&self, dim: impl Dim) -> Result<Tensor> {
        let d = dim.resolve("argmax", self.shape())?;
        Ok(self.max_with_index("argmax", d, false)?.1)
    }

    /// Minimum over `dim` (the gradient goes to the first minimal element); NaN where there is
    /// one.
    pub fn min(&self, dim: impl Dim, keepdim: bool) -> Result<Tensor> {
        let d = dim.resolve("min", self.shape())?;
        self.neg()?.max(d, keepdim)?.neg()
    }

    /// Index (U32) of the minimum over `dim`, the dim removed; first occurrence on ties; the
    /// first NaN where there is one.
    pub fn argmin(&self, dim: impl Dim) -> Result<Tensor> {
        let d = dim.resolve("argmin", self.shape())?;
        self.neg()?.argmax(d)
    }

    /// Variance over `dim`: the mean squared deviation, divided by n - 1 instead of n when
    /// `unbiased` (PyTorch's default; NaN for one element, as PyTorch). Differentiable.
    pub fn var(&self, dim: impl Dim, keepdim: bool, unbiased: bool) -> Result<Tensor> {
        let d = dim.resolve("var", self.shape())?;
        let n = if self.rank() == 0 { 1 } else { self.shape()[d] };
        let dev = self.sub(&self.mean(d, true)?)?;
        let ss = dev.mul(&dev)?.sum(d, keepdim)?;
        let denom = if unbiased { n as f32 - 1.0 } else { n as f32 };
        if denom <= 0.0 { ss.mul_scalar(f32::NAN) } else { ss.div_scalar(denom) }
    }

    fn softmax_op(&self, op: &'static str, dim: impl Dim, log: bool) -> Result<Tensor> {
        self.expect_dtype(op, DType::F32)?;
        let d = dim.resolve(op, self.shape())?;
        let (outer, len, inner) = split_at_dim(self.shape(), d);
        let storage = if self.numel() == 0 {
            self.storage().clone()
        } else {
            match self.storage() {
                Storage::Gpu(_) if len > kernels::SOFTMAX_MAX_DIM => {
                    // Longer than one launch of the softmax kernels walks: a composition of
                    // reductions (which go in blocks), the same node and backward.
                    let x = self.detach();
                    let z = x.sub(&x.max(d, true)?)?;
                    let y = if log {
                        z.sub(&z.exp()?.sum(d, true)?.log()?)?
                    } else {
                        let e = z.exp()?;
                        e.div(&e.sum(d, true)?)?
                    };
                    y.storage().clone()
                }
                Storage::Gpu(b) => Storage::gpu(kernels::softmax(gpu(self.dev()), b, outer, len, inner, log)?),
                Storage::Cpu(_) => Storage::f32_cpu(cpu::softmax(self.cpu_f32(), outer, len, inner, log)),
            }
        };
        let x = self.clone();
        let rec = if log { Op::LogSoftmax { x, dim: d } } else { Op::Softmax { x, dim: d } };
        Ok(Tensor::from_op(storage, self.shape().to_vec(), DType::F32, self.device(), rec))
    }

    /// Softmax along `dim` (numerically stable).
    pub fn softmax(&self, dim: impl Dim) -> Result<Tensor> {
        self.softmax_op("softmax", dim, false)
    }

    /// log(softmax(x)) along `dim`, computed stably in one kernel.
    pub fn log_softmax(&self, dim: impl Dim) -> Result<Tensor> {
        self.softmax_op("log_softmax", dim, true)
    }
}
