//! `Linear`: y = x W^T + b with PyTorch's layout and default initialisation.

use kiln_core::{Device, Error, Parameter, Result, Tensor, TrainMode};

use crate::Forward;
use crate::init;

/// A fully connected layer: `weight` [out, in], `bias` [out], as `torch.nn.Linear`.
/// Default init as PyTorch: weight ~ kaiming_uniform(a = sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in)),
/// and bias ~ U(-1/sqrt(in), 1/sqrt(in)).
#[derive(Debug, Clone, kiln_derive::Module)]
#[module(crate = "kiln_core")]
pub struct Linear {
    /// [out_features, in_features]
    pub weight: Parameter,
    /// [out_features], if the layer has a bias.
    pub bias: Option<Parameter>,
    mode: TrainMode,
}

impl Linear {
    /// A layer with a bias.
    pub fn new(in_features: usize, out_features: usize, dev: &Device) -> Result<Linear> {
        Linear::build(in_features, out_features, true, dev)
    }

    /// A layer without a bias.
    pub fn no_bias(in_features: usize, out_features: usize, dev: &Device) -> Result<Linear> {
        Linear::build(in_features, out_features, false, dev)
    }

    fn build(i: usize, o: usize, bias: bool, dev: &Device) -> Result<Linear> {
        let weight = Parameter::new(Tensor::zeros(&[o, i], dev)?);
        init::kaiming_uniform_(&weight, 5f32.sqrt(), init::FanMode::FanIn, init::Nonlinearity::LeakyRelu)?;
        let bias = if bias {
            let b = Parameter::new(Tensor::zeros(&[o], dev)?);
            let bound = if i > 0 { 1.0 / (i as f32).sqrt() } else { 0.0 };
            init::uniform_(&b, -bound, bound)?;
            Some(b)
        } else {
            None
        };
        Ok(Linear { weight, bias, mode: TrainMode::new() })
    }

    /// in_features.
    pub fn in_features(&self) -> usize {
        self.weight.shape()[1]
    }

    /// out_features.
    pub fn out_features(&self) -> usize {
        self.weight.shape()[0]
    }
}

impl Linear {
    /// "Linear(in_features=.., out_features=..)", as PyTorch prints the layer.
    fn describe(&self) -> String {
        format!("Linear(in_features={}, out_features={})", self.in_features(), self.out_features())
    }
}

impl Forward for Linear {
    /// x [.., in_features] -> [.., out_features]; an input of another size is an error naming the
    /// layer and both sizes.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let features = x.shape().last().copied();
        if features != Some(self.in_features()) {
            let got = match features {
                Some(f) => format!("{f} features in its last dim"),
                None => "no dims".to_string(),
            };
            return Err(Error::layer(
                self.describe(),
                format!("the input (shape {:?}) has {got}, expected {}", x.shape(), self.in_features()),
            ));
        }
        let b = self.bias.as_ref().map(|b| b.tensor());
        Tensor::linear(x, &self.weight.tensor(), b.as_ref())
    }
}
