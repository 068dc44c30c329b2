//! Joining and slicing along a dim: `cat`, `stack`, `narrow`, `chunk`, `split`, and `permute`.
//! Every one views a tensor around its dim d as [outer, size, inner] (the dims before d, d,
//! the dims after): a slice is a strided gather (`copy.wgsl`'s `gather3d`) and a cat writes each
//! input into its slice of the output (`place3d`), one dispatch per input. `narrow`'s backward
//! places the gradient into zeros; `cat`'s narrows the gradient back into its parts.

use kiln_device::kernels;

use super::gpu;
use crate::autograd::Op;
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::shape::{Dim, contiguous_strides, split_at_dim};
use crate::storage::{CpuData, Storage};
use crate::tensor::Tensor;

/// Elements `start..start + len` along the middle dim of `t` viewed as [outer, size, inner],
/// as new contiguous storage (F32 or U32).
fn slice_storage(t: &Tensor, outer: usize, size: usize, inner: usize, start: usize, len: usize) -> Result<Storage> {
    let (cols, stride, offset) = (len * inner, size * inner, start * inner);
    Ok(match t.storage() {
        Storage::Gpu(b) => {
            if outer * cols == 0 {
                Storage::gpu(gpu(t.dev()).alloc(4, "narrow")?)
            } else {
                Storage::gpu(kernels::gather(gpu(t.dev()), b, &[outer, cols], &[stride, 1], offset)?)
            }
        }
        Storage::Cpu(CpuData::F32(v)) => Storage::f32_cpu(slice_rows(v, outer, cols, stride, offset)),
        Storage::Cpu(CpuData::U32(v)) => {
            Storage::Cpu(CpuData::U32(std::sync::Arc::new(slice_rows(v, outer, cols, stride, offset))))
        }
        Storage::Cpu(CpuData::I64(_)) => unreachable!("dtype checked by the caller"),
    })
}

fn slice_rows<T: Copy>(v: &[T], rows: usize, cols: usize, stride: usize, offset: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        out.extend_from_slice(&v[offset + r * stride..offset + r * stride + cols]);
    }
    out
}

/// `parts` (each [outer, len_k, inner], contiguous, same dtype and device) written one after the
/// other along the middle dim of a new [outer, sum len_k, inner] storage; with `place_at` =
/// (start, size), the single part goes at `start` of a zero tensor whose middle dim is `size`.
fn join_storage(
    parts: &[&Tensor],
    lens: &[usize],
    outer: usize,
    inner: usize,
    place_at: Option<(usize, usize)>,
) -> Result<Storage> {
    let first = parts[0];
    let (size, starts): (usize, Vec<usize>) = match place_at {
        Some((start, size)) => (size, vec![start]),
        None => {
            let starts = lens.iter().scan(0, |acc, &l| {
                let s = *acc;
                *acc += l;
                Some(s)
            });
            (lens.iter().sum(), starts.collect())
        }
    };
    let total = outer * size * inner;
    Ok(match first.dev() {
        Device::Gpu(g) => {
            let out = if place_at.is_some() {
                kernels::fill(g, 0.0, total.max(1))?
            } else {
                g.alloc((total.max(1) * 4) as u64, "cat")?
            };
            for ((p, &len), &start) in parts.iter().zip(lens).zip(&starts) {
                if let Storage::Gpu(b) = p.storage() {
                    kernels::place(g, b, &out, &[outer, len * inner], &[size * inner, 1], start * inner)?;
                }
            }
            Storage::gpu(out)
        }
        Device::Cpu => {
            fn join<T: Copy + Default>(
                parts: &[&[T]],
                lens: &[usize],
                starts: &[usize],
                [outer, size, inner]: [usize; 3],
            ) -> Vec<T> {
                let mut out = vec![T::default(); outer * size * inner];
                for ((p, &len), &start) in parts.iter().zip(lens).zip(starts) {
                    for o in 0..outer {
                        let dst = (o * size + start) * inner;
                        out[dst..dst + len * inner].copy_from_slice(&p[o * len * inner..(o + 1) * len * inner]);
                    }
                }
                out
            }
            let dims = [outer, size, inner];
            match first.dtype() {
                DType::U32 => {
                    let words: Vec<Vec<u32>> = parts.iter().map(|p| p.to_vec_u32()).collect::<Result<_>>()?;
                    let refs: Vec<&[u32]> = words.iter().map(|w| w.as_slice()).collect();
                    Storage::Cpu(CpuData::U32(std::sync::Arc::new(join(&refs, lens, &starts, dims))))
                }
                _ => {
                    let refs: Vec<&[f32]> = parts.iter().map(|p| p.cpu_f32()).collect();
                    Storage::f32_cpu(join(&refs, lens, &starts, dims))
                }
            }
        }
    })
}

fn check_joinable(op: &'static str, t: &Tensor) -> Result<()> {
    if t.dtype() == DType::I64 {
        return Err(Error::invalid(
            op,
            format!("I64 tensors can be stored and moved, not joined (shape {:?})", t.shape()),
        ));
    }
    Ok(())
}

impl Tensor {
    /// Joins tensors along an existing dim (PyTorch's `torch.cat`): all have the same rank,
    /// dtype (F32 or U32) and device, and the same size in every other dim. Differentiable.
    pub fn cat(tensors: &[&Tensor], dim: impl Dim) -> Result<Tensor> {
        let op = "cat";
        let Some(first) = tensors.first() else {
            return Err(Error::invalid(op, "needs at least one tensor"));
        };
        let d = dim.resolve(op, first.shape())?;
        for t in tensors {
            check_joinable(op, t)?;
            first.same_device(op, t)?;
            if t.dtype() != first.dtype() {
                return Err(Error::DType { op, expected: first.dtype(), got: t.dtype(), shape: t.shape().to_vec() });
            }
            let same_rest = t.rank() == first.rank()
                && t.shape().iter().zip(first.shape()).enumerate().all(|(i, (a, b))| i == d || a == b);
            if !same_rest {
                return Err(Error::invalid(
                    op,
                    format!(
                        "along dim {d}, every tensor needs the shape of the first in the other dims: {:?}",
                        tensors.iter().map(|t| t.shape().to_vec()).collect::<Vec<_>>()
                    ),
                ));
            }
        }
        if first.rank() == 0 {
            return Err(Error::invalid(op, "zero-dim tensors cannot be joined (use stack)"));
        }
        let (outer, _, inner) = split_at_dim(first.shape(), d);
        let lens: Vec<usize> = tensors.iter().map(|t| t.shape()[d]).collect();
        let storage = join_storage(tensors, &lens, outer, inner, None)?;
        let mut shape = first.shape().to_vec();
        shape[d] = lens.iter().sum();
        let xs: Vec<Tensor> = tensors.iter().map(|t| (*t).clone()).collect();
        if first.dtype() != DType::F32 {
            return Ok(Tensor::from_parts(storage, shape, first.dtype(), first.device()));
        }
        Ok(Tensor::from_op(storage, shape, DType::F32, first.device(), Op::Cat { xs, dim: d, lens }))
    }

    /// Joins tensors of one shape along a new dim (PyTorch's `torch.stack`). Differentiable.
    pub fn stack(tensors: &[&Tensor], dim: impl Dim) -> Result<Tensor> {
        let Some(first) = tensors.first() else {
            return Err(Error::invalid("stack", "needs at least one tensor"));
        };
        let mut ext = first.shape().to_vec();
        ext.push(1);
        let d = dim.resolve("stack", &ext)?;
        if let Some(t) = tensors.iter().find(|t| t.shape() != first.shape()) {
            return Err(Error::ShapeMismatch { op: "stack", lhs: first.shape().to_vec(), rhs: t.shape().to_vec() });
        }
        let parts: Vec<Tensor> = tensors.iter().map(|t| t.unsqueeze(d)).collect::<Result<_>>()?;
        Tensor::cat(&parts.iter().collect::<Vec<_>>(), d)
    }

    /// Elements `start..start + len` along `dim` (PyTorch's `narrow`; a copy: kiln's tensors are
    /// contiguous). Differentiable; the gradient goes back into that slice.
    pub fn narrow(&self, dim: impl Dim, start: usize, len: usize) -> Result<Tensor> {
        let op = "narrow";
        check_joinable(op, self)?;
        let d = dim.resolve(op, self.shape())?;
        if self.rank() == 0 {
            return Err(Error::invalid(op, "a zero-dim tensor has no dim to narrow"));
        }
        let size = self.shape()[d];
        if start.checked_add(len).is_none_or(|e| e > size) {
            return Err(Error::invalid(
                op,
                format!(
                    "start {start} + length {len} is past the end of dim {d} (size {size}) of shape {:?}",
                    self.shape()
                ),
            ));
        }
        let (outer, _, inner) = split_at_dim(self.shape(), d);
        let storage = slice_storage(self, outer, size, inner, start, len)?;
        let mut shape = self.shape().to_vec();
        shape[d] = len;
        if self.dtype() != DType::F32 {
            return Ok(Tensor::from_parts(storage, shape, self.dtype(), self.device()));
        }
        Ok(Tensor::from_op(storage, shape, DType::F32, self.device(), Op::Narrow { x: self.clone(), dim: d, start }))
    }

    /// `n` pieces along `dim`, each of ceil(size / n) elements but the last (PyTorch's `chunk`;
    /// fewer than `n` when the size is small).
    pub fn chunk(&self, n: usize, dim: impl Dim) -> Result<Vec<Tensor>> {
        if n == 0 {
            return Err(Error::invalid("chunk", format!("needs at least one chunk (shape {:?})", self.shape())));
        }
        let d = dim.resolve("chunk", self.shape())?;
        let size = self.shape().get(d).copied().unwrap_or(1);
        self.split(size.div_ceil(n).max(1), d)
    }

    /// Pieces of `size` elements along `dim`, the last one shorter if needed (PyTorch's `split`
    /// with an int).
    pub fn split(&self, size: usize, dim: impl Dim) -> Result<Vec<Tensor>> {
        let d = dim.resolve("split", self.shape())?;
        if size == 0 {
            return Err(Error::invalid("split", format!("piece size must be positive (shape {:?})", self.shape())));
        }
        let total = self.shape().get(d).copied().unwrap_or(0);
        (0..total.max(1)).step_by(size).map(|s| self.narrow(d, s, size.min(total - s.min(total)))).collect()
    }

    /// The dims reordered: result dim i is dim `perm[i]` of this tensor (PyTorch's `permute`;
    /// a copy). Differentiable.
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        let op = "permute";
        let mut seen = vec![false; self.rank()];
        let valid =
            perm.len() == self.rank() && perm.iter().all(|&p| p < seen.len() && !std::mem::replace(&mut seen[p], true));
        if !valid {
            return Err(Error::invalid(
                op,
                format!("{perm:?} is not a permutation of the dims of shape {:?}", self.shape()),
            ));
        }
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return Ok(self.clone());
        }
        let strides = contiguous_strides(self.shape());
        let shape: Vec<usize> = perm.iter().map(|&p| self.shape()[p]).collect();
        let st: Vec<usize> = perm.iter().map(|&p| strides[p]).collect();
        let storage = self.gather_view(&shape, &st)?;
        Ok(Tensor::from_op(
            storage,
            shape,
            self.dtype(),
            self.device(),
            Op::Permute { x: self.clone(), perm: perm.to_vec() },
        ))
    }

    /// The gradient of a narrow: `self` (the slice's gradient) placed at `start` along `dim` of
    /// zeros shaped like `shape`. Not recorded.
    pub(crate) fn unnarrow(&self, shape: &[usize], dim: usize, start: usize) -> Result<Tensor> {
        let (outer, size, inner) = split_at_dim(shape, dim);
        let storage = join_storage(&[self], &[self.shape()[dim]], outer, inner, Some((start, size)))?;
        Ok(Tensor::from_parts(storage, shape.to_vec(), DType::F32, self.device()))
    }
}
