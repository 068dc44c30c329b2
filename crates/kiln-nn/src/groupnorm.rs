//! `GroupNorm`: normalisation over groups of channels, per sample (PyTorch's `nn.GroupNorm`): no
//! running statistics, the same in training and evaluation.

use kiln_core::{Device, Error, Parameter, Result, Tensor, TrainMode};

use crate::Forward;

/// Splits the C channels of [N, C, ...] into `groups` groups and normalises each group of each
/// sample to mean 0 and variance 1 (biased, + eps), then scales and shifts per channel:
/// `weight` [C] (ones) and `bias` [C] (zeros), eps 1e-5.
#[derive(Debug, Clone, kiln_derive::Module)]
#[module(crate = "kiln_core")]
pub struct GroupNorm {
    /// Scale, [C].
    pub weight: Parameter,
    /// Shift, [C].
    pub bias: Parameter,
    #[module(skip)]
    groups: usize,
    #[module(skip)]
    eps: f32,
    mode: TrainMode,
}

impl GroupNorm {
    /// `groups` groups over `channels` channels (divisible by it), eps 1e-5.
    pub fn new(groups: usize, channels: usize, dev: &Device) -> Result<GroupNorm> {
        if groups == 0 || channels % groups != 0 {
            return Err(Error::invalid(
                "GroupNorm",
                format!("{channels} channels are not divisible into {groups} groups"),
            ));
        }
        Ok(GroupNorm {
            weight: Parameter::new(Tensor::ones(&[channels], dev)?),
            bias: Parameter::new(Tensor::zeros(&[channels], dev)?),
            groups,
            eps: 1e-5,
            mode: TrainMode::new(),
        })
    }
}

impl Forward for GroupNorm {
    /// [N, C, ...] -> the same shape.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c = self.weight.shape()[0];
        let g = self.groups;
        if x.rank() < 2 || x.shape()[1] != c {
            return Err(Error::layer(
                format!("GroupNorm({g}, {c})"),
                format!("the input has shape {:?}, expected [N, {c}, ...]", x.shape()),
            ));
        }
        let s = x.shape().to_vec();
        let rest: usize = s[2..].iter().product();
        let xg = x.reshape(&[s[0], g, c / g * rest])?;
        let mean = xg.mean(2usize, true)?;
        let d = xg.sub(&mean)?;
        let var = d.mul(&d)?.mean(2usize, true)?;
        let y = d.div(&var.add_scalar(self.eps)?.sqrt()?)?.reshape(&[s[0], c, rest])?;
        let y = y.mul(&self.weight.tensor().reshape(&[1, c, 1])?)?.add(&self.bias.tensor().reshape(&[1, c, 1])?)?;
        y.reshape(&s)
    }
}
