//! Losses built from primitives, mean-reduced like PyTorch's defaults. (`kiln::nn::functional`
//! re-exports them.)

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Mean squared error: mean((pred - target)^2). Shapes must match.
pub fn mse_loss(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    if pred.shape() != target.shape() {
        return Err(Error::ShapeMismatch { op: "mse_loss", lhs: pred.shape().to_vec(), rhs: target.shape().to_vec() });
    }
    let d = pred.sub(target)?;
    d.mul(&d)?.mean_all()
}

/// Cross-entropy of logits [N, C] against U32 class labels [N], averaged over N:
/// mean(-log_softmax(logits)[i, labels[i]]).
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    labels.expect_dtype("cross_entropy", DType::U32)?;
    if logits.rank() != 2 || labels.rank() != 1 || labels.shape()[0] != logits.shape()[0] {
        return Err(Error::ShapeMismatch {
            op: "cross_entropy",
            lhs: logits.shape().to_vec(),
            rhs: labels.shape().to_vec(),
        });
    }
    logits.same_device("cross_entropy", labels)?;
    let (n, c) = (logits.shape()[0], logits.shape()[1]);
    let onehot = Tensor::one_hot(labels, c)?;
    let logp = logits.log_softmax(1usize)?;
    logp.mul(&onehot)?.sum_all()?.div_scalar(-(n as f32))
}
