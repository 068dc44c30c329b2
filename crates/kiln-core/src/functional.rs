//! Stateless functions (`kiln::nn::functional` re-exports them): convolution and pooling
//! (`ops/conv.rs`), layer and RMS normalisation (`ops/norm.rs`), and the losses, reduced like PyTorch's defaults.
//! Cross-entropy is one fused primitive (per-row loss and its softmax gradient); the others are
//! composed from primitives.

pub use crate::ops::attention::scaled_dot_product_attention;
pub use crate::ops::conv::{Conv1dOptions, Conv2dOptions, adaptive_avg_pool2d, avg_pool2d, conv1d, conv2d, max_pool2d};
pub use crate::ops::norm::{layer_norm, rms_norm};

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ops::layout::check_labels;
use crate::tensor::Tensor;

/// How per-element (or per-row) losses are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reduction {
    /// The (weighted) mean: PyTorch's default.
    #[default]
    Mean,
    /// The sum.
    Sum,
    /// No reduction: one loss per row.
    None,
}

/// Options of the classification losses (PyTorch's `weight`, `ignore_index`, `reduction`).
#[derive(Debug, Clone, Default)]
pub struct LossOptions {
    /// A weight per class, shape [C].
    pub weight: Option<Tensor>,
    /// Rows with this label contribute nothing (and do not count in the mean).
    pub ignore_index: Option<u32>,
    /// How rows are combined.
    pub reduction: Reduction,
}

fn reduce(t: Tensor, r: Reduction) -> Result<Tensor> {
    match r {
        Reduction::Mean => t.mean_all(),
        Reduction::Sum => t.sum_all(),
        Reduction::None => Ok(t),
    }
}

/// Combines per-row losses with class weights and the ignore index: PyTorch's weighted mean is
/// sum(w[y_i] * l_i) / sum(w[y_i]) over rows that are not ignored.
fn weighted(op: &'static str, rows: Tensor, labels: &Tensor, classes: usize, o: &LossOptions) -> Result<Tensor> {
    if o.weight.is_none() && o.ignore_index.is_none() {
        return reduce(rows, o.reduction);
    }
    let dev = rows.device();
    let w = match &o.weight {
        Some(w) => {
            if w.shape() != [classes] {
                return Err(Error::ShapeMismatch { op, lhs: vec![classes], rhs: w.shape().to_vec() });
            }
            w.detach()
        }
        None => Tensor::ones(&[classes], &dev)?,
    };
    let w = match o.ignore_index {
        Some(i) if (i as usize) < classes => {
            let mut keep = vec![1.0; classes];
            keep[i as usize] = 0.0;
            w.mul(&Tensor::from_vec(keep, &[classes], &dev)?)?
        }
        _ => w,
    };
    // The weight of each row's class (0 for labels outside 0..C, i.e. an ignore index >= C).
    let n = labels.numel();
    let w_rows = Tensor::index_mask(labels, n, classes, 1)?
        .reshape(&[n, classes])?
        .matmul(&w.reshape(&[classes, 1])?)?
        .reshape(&[n])?;
    let l = rows.mul(&w_rows)?;
    match o.reduction {
        Reduction::Mean => l.sum_all()?.div(&w_rows.sum_all()?),
        Reduction::Sum => l.sum_all(),
        Reduction::None => Ok(l),
    }
}

/// The class count of `x` [N, C] and the labels [N] as `U32` (`I64` labels converted).
fn check_class_inputs(op: &'static str, x: &Tensor, labels: &Tensor) -> Result<(usize, Tensor)> {
    let labels = labels.labels_u32(op)?;
    x.expect_dtype(op, DType::F32)?;
    if x.rank() != 2 || labels.rank() != 1 || labels.shape()[0] != x.shape()[0] {
        return Err(Error::ShapeMismatch { op, lhs: x.shape().to_vec(), rhs: labels.shape().to_vec() });
    }
    x.same_device(op, &labels)?;
    Ok((x.shape()[1], labels))
}

/// Cross-entropy of logits [N, C] against class labels [N] (`U32`, or PyTorch's int64 as `I64`),
/// averaged over N. One fused kernel computes the per-row losses, one the gradient.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    cross_entropy_with(logits, labels, &LossOptions::default())
}

/// Cross-entropy with class weights, an ignore index and a reduction, as PyTorch's.
pub fn cross_entropy_with(logits: &Tensor, labels: &Tensor, o: &LossOptions) -> Result<Tensor> {
    let (classes, labels) = check_class_inputs("cross_entropy", logits, labels)?;
    let rows = logits.cross_entropy_rows(&labels, o.ignore_index)?;
    weighted("cross_entropy", rows, &labels, classes, o)
}

/// Negative log-likelihood of log-probabilities [N, C] (e.g. from `log_softmax`) against class
/// labels [N] (`U32` or `I64`), averaged over N.
pub fn nll_loss(log_probs: &Tensor, labels: &Tensor) -> Result<Tensor> {
    nll_loss_with(log_probs, labels, &LossOptions::default())
}

/// `nll_loss` with class weights, an ignore index and a reduction.
pub fn nll_loss_with(log_probs: &Tensor, labels: &Tensor, o: &LossOptions) -> Result<Tensor> {
    let (classes, labels) = check_class_inputs("nll_loss", log_probs, labels)?;
    check_labels("nll_loss", &labels, classes, o.ignore_index)?;
    let n = labels.numel();
    let onehot = Tensor::index_mask(&labels, n, classes, 1)?.reshape(&[n, classes])?;
    let rows = log_probs.mul(&onehot)?.sum(1usize, false)?.neg()?;
    weighted("nll_loss", rows, &labels, classes, o)
}

fn same_shape(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(Error::ShapeMismatch { op, lhs: a.shape().to_vec(), rhs: b.shape().to_vec() });
    }
    Ok(())
}

/// Mean squared error: mean((pred - target)^2). Shapes must match.
pub fn mse_loss(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    same_shape("mse_loss", pred, target)?;
    let d = pred.sub(target)?;
    d.mul(&d)?.mean_all()
}

/// Mean absolute error: mean(|pred - target|). Shapes must match.
pub fn l1_loss(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    same_shape("l1_loss", pred, target)?;
    pred.sub(target)?.abs()?.mean_all()
}

/// Binary cross-entropy on logits, stable for any logit: mean(softplus(x) - x * t). Its
/// gradient is sigmoid(x) - t (softplus is one primitive, so there is no kink at 0).
pub fn binary_cross_entropy_with_logits(logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    same_shape("binary_cross_entropy_with_logits", logits, target)?;
    logits.softplus()?.sub(&logits.mul(target)?)?.mean_all()
}
