//! `LayerNorm` and `RMSNorm` (PyTorch's `nn.LayerNorm`, `nn.RMSNorm`): normalisation over the
//! trailing dims of each sample, the same in training and evaluation; the work is
//! `kiln::nn::functional::layer_norm` / `rms_norm`.

use kiln_core::functional::{layer_norm, rms_norm};
use kiln_core::{Device, Error, Parameter, Result, Tensor, TrainMode};

use crate::Forward;

fn check_shape(layer: &'static str, normalized_shape: &[usize]) -> Result<()> {
    if normalized_shape.is_empty() || normalized_shape.contains(&0) {
        return Err(Error::invalid(
            layer,
            format!("normalized_shape {normalized_shape:?} must be non-empty, without zeros"),
        ));
    }
    Ok(())
}

/// Normalises the trailing dims `normalized_shape` of its input to mean 0 and variance 1
/// (biased, + eps 1e-5), then scales by `weight` (ones) and shifts by `bias` (zeros), both
/// shaped `normalized_shape`; `no_bias` leaves the shift out (nanoGPT's `bias=False`).
#[derive(Debug, Clone, kiln_derive::Module)]
#[module(crate = "kiln_core")]
pub struct LayerNorm {
    /// Scale, `normalized_shape`.
    pub weight: Parameter,
    /// Shift, `normalized_shape` (None without a bias).
    pub bias: Option<Parameter>,
    #[module(skip)]
    normalized_shape: Vec<usize>,
    /// Added to the variance.
    #[module(skip)]
    pub eps: f32,
    mode: TrainMode,
}

impl LayerNorm {
    /// With weight and bias, eps 1e-5.
    pub fn new(normalized_shape: &[usize], dev: &Device) -> Result<LayerNorm> {
        let mut ln = LayerNorm::no_bias(normalized_shape, dev)?;
        ln.bias = Some(Parameter::new(Tensor::zeros(normalized_shape, dev)?));
        Ok(ln)
    }

    /// With a weight only (PyTorch's `bias=False`).
    pub fn no_bias(normalized_shape: &[usize], dev: &Device) -> Result<LayerNorm> {
        check_shape("LayerNorm", normalized_shape)?;
        Ok(LayerNorm {
            weight: Parameter::new(Tensor::ones(normalized_shape, dev)?),
            bias: None,
            normalized_shape: normalized_shape.to_vec(),
            eps: 1e-5,
            mode: TrainMode::new(),
        })
    }
}

impl Forward for LayerNorm {
    /// [..., *normalized_shape] -> the same shape.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (w, b) = (self.weight.tensor(), self.bias.as_ref().map(|b| b.tensor()));
        layer_norm(x, &self.normalized_shape, Some(&w), b.as_ref(), self.eps)
            .map_err(|e| Error::layer(format!("LayerNorm({:?})", self.normalized_shape), e.to_string()))
    }
}

/// Divides the trailing dims `normalized_shape` of its input by their root mean square
/// (+ eps: f32's machine epsilon unless set, as PyTorch), then scales by `weight` (ones).
#[derive(Debug, Clone, kiln_derive::Module)]
#[module(crate = "kiln_core")]
pub struct RMSNorm {
    /// Scale, `normalized_shape`.
    pub weight: Parameter,
    #[module(skip)]
    normalized_shape: Vec<usize>,
    /// Added to the mean square (None: f32::EPSILON).
    #[module(skip)]
    pub eps: Option<f32>,
    mode: TrainMode,
}

impl RMSNorm {
    /// With a weight of ones, eps None.
    pub fn new(normalized_shape: &[usize], dev: &Device) -> Result<RMSNorm> {
        check_shape("RMSNorm", normalized_shape)?;
        Ok(RMSNorm {
            weight: Parameter::new(Tensor::ones(normalized_shape, dev)?),
            normalized_shape: normalized_shape.to_vec(),
            eps: None,
            mode: TrainMode::new(),
        })
    }
}

impl Forward for RMSNorm {
    /// [..., *normalized_shape] -> the same shape.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        rms_norm(x, &self.normalized_shape, Some(&self.weight.tensor()), self.eps)
            .map_err(|e| Error::layer(format!("RMSNorm({:?})", self.normalized_shape), e.to_string()))
    }
}
