//! Indexing by integer tensors and by position: `index_select`, `gather`, `tril`, `triu`,
//! `arange`. The two index ops are composites of the one-hot mask (`index.wgsl`), so their
//! gradients come from the parts with no scatter kernel: `gather` keeps x where the mask is 1
//! and sums over the indexed dim (exact); `index_select` is the mask times x as a matmul, so a
//! NaN or infinity elsewhere along the indexed dim of x spreads into the selection (0 * inf). An index past the
//! end is refused when it is known on the host (CPU tensors, or GPU tensors made from host data,
//! which carry their bound); otherwise its mask row is empty and the result there is NaN, so a
//! bad index never passes silently as 0.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ops::layout::check_labels;
use crate::shape::{Dim, split_at_dim};
use crate::tensor::Tensor;

/// NaN where `mask` [.., size, ..] (summed over `dim`) selects nothing, else 0: added to a
/// selection, it marks the rows whose index was out of range.
fn nan_where_empty(mask: &Tensor, dim: usize) -> Result<Tensor> {
    let empty = mask.sum(dim, false)?.eq_scalar(0.0)?;
    Tensor::full(&[], f32::NAN, mask.dev())?.keep_where(&empty)
}

impl Tensor {
    /// The entries of `idx` (1-D, U32 or I64) along `dim`, in its order (PyTorch's
    /// `index_select`). Differentiable in `self` (repeated indices add their gradients).
    pub fn index_select(&self, dim: impl Dim, idx: &Tensor) -> Result<Tensor> {
        let op = "index_select";
        self.expect_dtype(op, DType::F32)?;
        self.same_device(op, idx)?;
        let idx = idx.labels_u32(op)?;
        if idx.rank() != 1 || self.rank() == 0 {
            return Err(Error::invalid(
                op,
                format!("expects 1-D indices into a tensor of rank >= 1, got {:?} and {:?}", idx.shape(), self.shape()),
            ));
        }
        let d = dim.resolve(op, self.shape())?;
        let (outer, size, inner) = split_at_dim(self.shape(), d);
        check_labels(op, &idx, size, None).map_err(|_| out_of_range(op, &idx, self.shape(), d))?;
        let n = idx.numel();
        // [n, size] one-hot rows @ x as [outer, size, inner] = [outer, n, inner].
        let mask = Tensor::index_mask(&idx, n, size, 1)?.reshape(&[n, size])?;
        let y = mask.matmul(&self.reshape(&[outer, size, inner])?)?;
        let y = y.add(&nan_where_empty(&mask, 1)?.reshape(&[1, n, 1])?)?;
        let mut shape = self.shape().to_vec();
        shape[d] = n;
        y.reshape(&shape)
    }

    /// `torch.gather`: y[.., j, ..] = x[.., idx[.., j, ..], ..] along `dim`, where `idx` (U32 or
    /// I64) has x's rank and x's sizes in every other dim. Differentiable in `self`.
    pub fn gather(&self, dim: impl Dim, idx: &Tensor) -> Result<Tensor> {
        let op = "gather";
        self.expect_dtype(op, DType::F32)?;
        self.same_device(op, idx)?;
        let idx = idx.labels_u32(op)?;
        let d = dim.resolve(op, self.shape())?;
        let fits = idx.rank() == self.rank()
            && self.rank() > 0
            && idx.shape().iter().zip(self.shape()).enumerate().all(|(i, (a, b))| i == d || a == b);
        if !fits {
            return Err(Error::invalid(
                op,
                format!(
                    "indices {:?} must have the rank of the input {:?} and its sizes in every dim but {d}",
                    idx.shape(),
                    self.shape()
                ),
            ));
        }
        let (outer, size, inner) = split_at_dim(self.shape(), d);
        check_labels(op, &idx, size, None).map_err(|_| out_of_range(op, &idx, self.shape(), d))?;
        let m = idx.shape()[d];
        // x [outer, 1, size, inner] kept where mask [outer, m, size, inner] is 1 (idx[o, j, i]
        // == s), summed over size: a select, so other values (infinities included) do not leak.
        let mask = Tensor::index_mask(&idx, outer * m, size, inner)?.reshape(&[outer, m, size, inner])?;
        let y = self.reshape(&[outer, 1, size, inner])?.keep_where(&mask)?.sum(2usize, false)?;
        y.add(&nan_where_empty(&mask, 2)?)?.reshape(idx.shape())
    }

    /// The lower triangle of the last two dims (PyTorch's `tril`): elements with
    /// column - row <= `diagonal` kept, the others 0 (exactly, whatever they held). Differentiable.
    pub fn tril(&self, diagonal: i64) -> Result<Tensor> {
        self.triangle("tril", |r, c| c - r <= diagonal)
    }

    /// The upper triangle of the last two dims (PyTorch's `triu`): elements with
    /// column - row >= `diagonal` kept, the others 0. Differentiable.
    pub fn triu(&self, diagonal: i64) -> Result<Tensor> {
        self.triangle("triu", |r, c| c - r >= diagonal)
    }

    fn triangle(&self, op: &'static str, keep: impl Fn(i64, i64) -> bool) -> Result<Tensor> {
        self.expect_dtype(op, DType::F32)?;
        if self.rank() < 2 {
            return Err(Error::invalid(op, format!("expects at least 2 dims, got shape {:?}", self.shape())));
        }
        let (rows, cols) = (self.shape()[self.rank() - 2], self.shape()[self.rank() - 1]);
        let mask: Vec<f32> =
            (0..rows * cols).map(|i| f32::from(keep((i / cols.max(1)) as i64, (i % cols.max(1)) as i64))).collect();
        self.keep_where(&Tensor::from_vec(mask, &[rows, cols], self.dev())?)
    }

    /// 0, 1, ..., n - 1 as F32 (PyTorch's `torch.arange(n)`, in float).
    pub fn arange(n: usize, dev: &crate::device::Device) -> Result<Tensor> {
        Tensor::from_vec((0..n).map(|i| i as f32).collect(), &[n], dev)
    }
}

fn out_of_range(op: &'static str, idx: &Tensor, shape: &[usize], d: usize) -> Error {
    Error::invalid(op, format!("an index in {:?} is out of range for dim {d} of shape {shape:?}", idx.shape()))
}
