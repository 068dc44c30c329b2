//! Matrix products: 2-D, batched 3-D (with a broadcast batch), and the transposed-operand
//! variants that backward uses so that it never materialises a transpose.

use kiln_device::kernels::{self, MatmulDesc};

use super::gpu;
use crate::autograd::Op;
use crate::cpu;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::tensor::Tensor;

impl Tensor {
    /// Matrix product with PyTorch's rules for 2-D and 3-D operands: [M,K]@[K,N], batched
    /// [B,M,K]@[B,K,N] (a batch of 1 broadcasts), [B,M,K]@[K,N] and [M,K]@[B,K,N].
    pub fn matmul(&self, other: &Tensor) -> Result<Tensor> {
        for t in [self, other] {
            t.expect_dtype("matmul", DType::F32)?;
            if t.rank() < 2 {
                return Err(Error::invalid(
                    "matmul",
                    format!("needs operands of 2 or more dims, got shapes {:?} and {:?}", self.shape(), other.shape()),
                ));
            }
        }
        self.same_device("matmul", other)?;
        if self.rank() > 3 || other.rank() > 3 || (self.rank() == 2 && other.rank() == 3) {
            return self.matmul_batched(other);
        }
        if self.rank() == 3 && other.rank() == 2 {
            // [B,M,K]@[K,N] is one [B*M,K]@[K,N] product.
            let (b, m, k) = (self.shape()[0], self.shape()[1], self.shape()[2]);
            let out = self.reshape(&[b * m, k])?.matmul(other)?;
            let n = out.shape()[1];
            return out.reshape(&[b, m, n]);
        }
        self.matmul_op(other, false, false)
    }

    /// [..batch, M, K] @ [..batch, K, N] with the batch dims broadcast (PyTorch's rule): both
    /// sides flattened to one batch dim (a side whose batch is all ones is read with batch
    /// stride 0; other broadcasts are expanded first).
    fn matmul_batched(&self, other: &Tensor) -> Result<Tensor> {
        let (ra, rb) = (self.rank(), other.rank());
        let (ba, bb) = (&self.shape()[..ra - 2], &other.shape()[..rb - 2]);
        let batch = crate::shape::broadcast_shapes("matmul", ba, bb)?;
        let (m, k, n) = (self.shape()[ra - 2], self.shape()[ra - 1], other.shape()[rb - 1]);
        if other.shape()[rb - 2] != k {
            return Err(Error::ShapeMismatch { op: "matmul", lhs: self.shape().to_vec(), rhs: other.shape().to_vec() });
        }
        let nb: usize = batch.iter().product();
        let flat = |t: &Tensor, own: &[usize], rows: usize, cols: usize| -> Result<Tensor> {
            if own.iter().product::<usize>() == 1 {
                return t.reshape(&[1, rows, cols]);
            }
            let t = if own == batch.as_slice() {
                t.clone()
            } else {
                let mut full = batch.clone();
                full.extend([rows, cols]);
                t.broadcast_to(&full)?
            };
            t.reshape(&[nb, rows, cols])
        };
        let y = flat(self, ba, m, k)?.matmul_op(&flat(other, bb, k, n)?, false, false)?;
        let mut shape = batch;
        shape.extend([m, n]);
        y.reshape(&shape)
    }

    fn matmul_op(&self, other: &Tensor, ta: bool, tb: bool) -> Result<Tensor> {
        let raw = Tensor::matmul_t(self, ta, other, tb)?;
        let op = Op::Matmul { a: self.clone(), b: other.clone(), ta, tb };
        Ok(Tensor::from_op(raw.storage().clone(), raw.shape().to_vec(), DType::F32, self.device(), op))
    }

    /// `x @ weight^T + bias`, PyTorch's `F.linear`: x is [N, in] or [B, N, in], weight
    /// [out, in] (read transposed in place), bias [out].
    pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        for t in [x, weight] {
            t.expect_dtype("linear", DType::F32)?;
        }
        x.same_device("linear", weight)?;
        if weight.rank() != 2 || !(2..=3).contains(&x.rank()) || x.shape()[x.rank() - 1] != weight.shape()[1] {
            return Err(Error::ShapeMismatch { op: "linear", lhs: x.shape().to_vec(), rhs: weight.shape().to_vec() });
        }
        if x.rank() == 3 {
            let (b, n, k) = (x.shape()[0], x.shape()[1], x.shape()[2]);
            let y = Tensor::linear(&x.reshape(&[b * n, k])?, weight, bias)?;
            return y.reshape(&[b, n, weight.shape()[0]]);
        }
        let y = x.matmul_op(weight, false, true)?;
        match bias {
            Some(b) => {
                if b.shape() != [weight.shape()[0]] {
                    return Err(Error::ShapeMismatch {
                        op: "linear",
                        lhs: weight.shape().to_vec(),
                        rhs: b.shape().to_vec(),
                    });
                }
                y.add(b)
            }
            None => Ok(y),
        }
    }

    /// op(a) @ op(b) where op transposes the last two dims when asked, without copying.
    /// Not recorded for autograd (backward rules call it with grad mode off).
    pub(crate) fn matmul_t(a: &Tensor, ta: bool, b: &Tensor, tb: bool) -> Result<Tensor> {
        let dims = |t: &Tensor, tr: bool| {
            let s = t.shape();
            let (r, c) = (s[s.len() - 2], s[s.len() - 1]);
            let batch = if s.len() == 3 { s[0] } else { 1 };
            // (rows, cols of op(X)), (row stride, col stride), batch, batch stride
            let (rows, cols, rs, cs) = if tr { (c, r, 1, c) } else { (r, c, c, 1) };
            (rows, cols, rs, cs, batch, r * c)
        };
        let (m, ka, a_rs, a_cs, ba, a_size) = dims(a, ta);
        let (kb, n, b_rs, b_cs, bb, b_size) = dims(b, tb);
        if ka != kb || (ba != bb && ba != 1 && bb != 1) {
            return Err(Error::ShapeMismatch { op: "matmul", lhs: a.shape().to_vec(), rhs: b.shape().to_vec() });
        }
        // Broadcast batches: equal, or one of them 1 (so an empty batch stays empty).
        let batch = if ba == 1 { bb } else { ba };
        let desc = MatmulDesc {
            m,
            n,
            k: ka,
            batch,
            a_rs,
            a_cs,
            a_bs: if ba == 1 { 0 } else { a_size },
            b_rs,
            b_cs,
            b_bs: if bb == 1 { 0 } else { b_size },
        };
        let shape = if a.rank() == 2 && b.rank() == 2 { vec![m, n] } else { vec![batch, m, n] };
        let storage = match (a.storage(), b.storage()) {
            (Storage::Gpu(x), Storage::Gpu(y)) => Storage::gpu(kernels::matmul(gpu(a.dev()), x, y, &desc)?),
            _ => Storage::f32_cpu(cpu::matmul(a.cpu_f32(), b.cpu_f32(), &desc)),
        };
        Ok(Tensor::from_parts(storage, shape, DType::F32, a.device()))
    }
}
