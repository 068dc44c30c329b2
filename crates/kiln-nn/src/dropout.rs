//! `Dropout`: zeroes elements with probability p in training mode and scales the rest by
//! 1/(1-p); the identity in evaluation mode.

use kiln_core::{Error, Result, Tensor, TrainMode};

use crate::Forward;

/// Dropout with probability `p` (PyTorch's `nn.Dropout`), driven by `kiln::manual_seed`.
#[derive(Debug, Clone, kiln_derive::Module)]
#[module(crate = "kiln_core")]
pub struct Dropout {
    #[module(skip)]
    p: f32,
    mode: TrainMode,
}

impl Dropout {
    /// A dropout layer; `p` must be in [0, 1].
    pub fn new(p: f32) -> Result<Dropout> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::invalid("Dropout::new", format!("p must be in [0, 1], got {p}")));
        }
        Ok(Dropout { p, mode: TrainMode::new() })
    }

    /// The drop probability.
    pub fn p(&self) -> f32 {
        self.p
    }
}

impl Forward for Dropout {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        dropout(x, self.p, self.mode.get())
    }
}

/// Dropout of `x` with probability `p` (in [0, 1]) when `training`, else `x` itself: what
/// [`Dropout`] and the recurrent layers' dropout between layers apply.
pub(crate) fn dropout(x: &Tensor, p: f32, training: bool) -> Result<Tensor> {
    if !training || p == 0.0 {
        return Ok(x.clone());
    }
    if p == 1.0 {
        return x.mul_scalar(0.0);
    }
    let keep = Tensor::rand(x.shape(), &x.device())?.ge_scalar(p)?;
    x.mul(&keep)?.div_scalar(1.0 - p)
}
