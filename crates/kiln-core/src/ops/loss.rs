//! The fused softmax cross-entropy primitive: per-row losses in one kernel, its gradient in
//! another (softmax - one-hot), so neither softmax nor log-probabilities are materialised.

use kiln_device::kernels;

use super::gpu;
use super::layout::check_labels;
use crate::autograd::Op;
use crate::cpu;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::storage::{CpuData, Storage};
use crate::tensor::Tensor;

impl Tensor {
    /// Per-row cross-entropy of logits `self` [N, C] against U32 `labels` [N]:
    /// logsumexp(x[r]) - x[r, labels[r]], 0 for rows labelled `ignore`. Differentiable in the
    /// logits. Labels known to be out of range are an error; on the GPU, labels of unknown
    /// range that fall outside give NaN.
    pub fn cross_entropy_rows(&self, labels: &Tensor, ignore: Option<u32>) -> Result<Tensor> {
        let op = "cross_entropy";
        self.expect_dtype(op, DType::F32)?;
        labels.expect_dtype(op, DType::U32)?;
        if self.rank() != 2 || labels.rank() != 1 || labels.shape()[0] != self.shape()[0] {
            return Err(Error::ShapeMismatch { op, lhs: self.shape().to_vec(), rhs: labels.shape().to_vec() });
        }
        self.same_device(op, labels)?;
        let (rows, classes) = (self.shape()[0], self.shape()[1]);
        if classes == 0 {
            return Err(Error::invalid(op, "logits have no classes"));
        }
        check_labels(op, labels, classes, ignore)?;
        let (loss, lse) = match (self.storage(), labels.storage()) {
            (Storage::Gpu(x), Storage::Gpu(l)) if classes > kernels::CE_MAX_CLASSES => {
                // Rows longer than one launch of the fused kernel walks: the log-normalisers
                // by reductions (which go in blocks), then each row's loss from its own.
                let xd = self.detach();
                let m = xd.max(1usize, true)?;
                let lse = xd.sub(&m)?.exp()?.sum(1usize, true)?.log()?.add(&m)?;
                let Storage::Gpu(lb) = lse.storage() else { unreachable!("computed on x's device") };
                let (a, b) = kernels::cross_entropy_pick(gpu(self.dev()), x, l, lb, rows, classes, ignore)?;
                (Storage::gpu(a), Storage::gpu(b))
            }
            (Storage::Gpu(x), Storage::Gpu(l)) => {
                let (a, b) = kernels::cross_entropy_rows(gpu(self.dev()), x, l, rows, classes, ignore)?;
                (Storage::gpu(a), Storage::gpu(b))
            }
            (_, Storage::Cpu(CpuData::U32(l))) => {
                let (a, b) = cpu::ce_rows(self.cpu_f32(), l, classes, ignore);
                (Storage::f32_cpu(a), Storage::f32_cpu(b))
            }
            _ => unreachable!("checked dtypes and devices"),
        };
        let lse = Tensor::from_parts(lse, vec![rows], DType::F32, self.device());
        let rec = Op::CrossEntropyRows { x: self.clone(), labels: labels.clone(), lse, ignore };
        Ok(Tensor::from_op(loss, vec![rows], DType::F32, self.device(), rec))
    }

    /// The gradient of [`Tensor::cross_entropy_rows`] with respect to the logits.
    pub(crate) fn cross_entropy_backward(
        x: &Tensor,
        labels: &Tensor,
        lse: &Tensor,
        g: &Tensor,
        ignore: Option<u32>,
    ) -> Result<Tensor> {
        let (rows, classes) = (x.shape()[0], x.shape()[1]);
        let storage = match (x.storage(), labels.storage(), lse.storage(), g.storage()) {
            (Storage::Gpu(xb), Storage::Gpu(lb), Storage::Gpu(sb), Storage::Gpu(gb)) => {
                Storage::gpu(kernels::cross_entropy_backward(gpu(x.dev()), xb, lb, sb, gb, rows, classes, ignore)?)
            }
            (_, Storage::Cpu(CpuData::U32(l)), _, _) => {
                Storage::f32_cpu(cpu::ce_backward(x.cpu_f32(), l, lse.cpu_f32(), g.cpu_f32(), classes, ignore))
            }
            _ => unreachable!("one device"),
        };
        Ok(Tensor::from_parts(storage, x.shape().to_vec(), DType::F32, x.device()))
    }
}
