//! `Conv1d` and `Conv2d`: PyTorch's layouts (`weight` [out, in / groups, k..], `bias` [out]) and
//! default initialisation, on `nn::functional::conv1d` / `conv2d`.

use kiln_core::functional::{Conv1dOptions, Conv2dOptions, conv1d, conv2d};
use kiln_core::{Device, Error, Parameter, Result, Tensor, TrainMode};

use crate::Forward;
use crate::init;

/// A weight of `shape` and an optional bias of `out`, initialised as PyTorch's `_ConvNd`:
/// kaiming_uniform(a = sqrt 5) for the weight, i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
/// fan_in = in / groups * kernel size, and the bias from the same bound.
fn conv_params(op: &'static str, shape: &[usize], bias: bool, dev: &Device) -> Result<(Parameter, Option<Parameter>)> {
    if shape.contains(&0) {
        return Err(Error::invalid(
            op,
            format!("channels and kernel must be positive, got a weight of shape {shape:?}"),
        ));
    }
    let weight = Parameter::new(Tensor::zeros(shape, dev)?);
    init::kaiming_uniform_(&weight, 5f32.sqrt(), init::FanMode::FanIn, init::Nonlinearity::LeakyRelu)?;
    let bias = if bias {
        let (fan_in, _) = init::fans(op, shape)?;
        let bound = 1.0 / (fan_in as f32).sqrt();
        let b = Parameter::new(Tensor::zeros(&[shape[0]], dev)?);
        init::uniform_(&b, -bound, bound)?;
        Some(b)
    } else {
        None
    };
    Ok((weight, bias))
}

fn check_groups(op: &'static str, in_ch: usize, out_ch: usize, groups: usize) -> Result<()> {
    if groups == 0 || in_ch % groups != 0 || out_ch % groups != 0 {
        return Err(Error::invalid(
            op,
            format!("in_channels {in_ch} and out_channels {out_ch} must be divisible by groups {groups}"),
        ));
    }
    Ok(())
}

/// 2-D convolution over [N, C, H, W] inputs (PyTorch's `nn.Conv2d`).
#[derive(Debug, Clone, kiln_derive::Module)]
#[module(crate = "kiln_core")]
pub struct Conv2d {
    /// [out_channels, in_channels / groups, kh, kw]
    pub weight: Parameter,
    /// [out_channels], if the layer has a bias.
    pub bias: Option<Parameter>,
    /// Stride, padding, dilation, groups.
    #[module(skip)]
    pub options: Conv2dOptions,
    mode: TrainMode,
}

impl Conv2d {
    /// A layer with a bias and PyTorch's default options (stride 1, no padding).
    pub fn new(in_channels: usize, out_channels: usize, kernel: (usize, usize), dev: &Device) -> Result<Conv2d> {
        Conv2d::with_options(in_channels, out_channels, kernel, Conv2dOptions::default(), true, dev)
    }

    /// A layer with explicit options, with or without a bias.
    pub fn with_options(
        in_channels: usize,
        out_channels: usize,
        kernel: (usize, usize),
        options: Conv2dOptions,
        bias: bool,
        dev: &Device,
    ) -> Result<Conv2d> {
        check_groups("Conv2d", in_channels, out_channels, options.groups)?;
        let shape = [out_channels, in_channels / options.groups, kernel.0, kernel.1];
        let (weight, bias) = conv_params("Conv2d", &shape, bias, dev)?;
        Ok(Conv2d { weight, bias, options, mode: TrainMode::new() })
    }

    /// As PyTorch prints it: `Conv2d(3, 16, kernel_size=(3, 3), stride=(1, 1), ...)`.
    fn describe(&self) -> String {
        let w = self.weight.shape();
        let o = &self.options;
        format!(
            "Conv2d({}, {}, kernel_size=({}, {}), stride={:?}, padding={:?}, dilation={:?}, groups={})",
            w[1] * o.groups,
            w[0],
            w[2],
            w[3],
            o.stride,
            o.padding,
            o.dilation,
            o.groups
        )
    }
}

impl Forward for Conv2d {
    /// [N, C, H, W] -> [N, out_channels, OH, OW].
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let b = self.bias.as_ref().map(|b| b.tensor());
        conv2d(x, &self.weight.tensor(), b.as_ref(), &self.options).map_err(|e| named(e, || self.describe()))
    }
}

/// 1-D convolution over [N, C, L] inputs (PyTorch's `nn.Conv1d`).
#[derive(Debug, Clone, kiln_derive::Module)]
#[module(crate = "kiln_core")]
pub struct Conv1d {
    /// [out_channels, in_channels / groups, k]
    pub weight: Parameter,
    /// [out_channels], if the layer has a bias.
    pub bias: Option<Parameter>,
    /// Stride, padding, dilation, groups.
    #[module(skip)]
    pub options: Conv1dOptions,
    mode: TrainMode,
}

impl Conv1d {
    /// A layer with a bias and PyTorch's default options.
    pub fn new(in_channels: usize, out_channels: usize, kernel: usize, dev: &Device) -> Result<Conv1d> {
        Conv1d::with_options(in_channels, out_channels, kernel, Conv1dOptions::default(), true, dev)
    }

    /// A layer with explicit options, with or without a bias.
    pub fn with_options(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        options: Conv1dOptions,
        bias: bool,
        dev: &Device,
    ) -> Result<Conv1d> {
        check_groups("Conv1d", in_channels, out_channels, options.groups)?;
        let shape = [out_channels, in_channels / options.groups, kernel];
        let (weight, bias) = conv_params("Conv1d", &shape, bias, dev)?;
        Ok(Conv1d { weight, bias, options, mode: TrainMode::new() })
    }

    fn describe(&self) -> String {
        let w = self.weight.shape();
        let o = &self.options;
        format!(
            "Conv1d({}, {}, kernel_size=({},), stride=({},), padding=({},), dilation=({},), groups={})",
            w[1] * o.groups,
            w[0],
            w[2],
            o.stride,
            o.padding,
            o.dilation,
            o.groups
        )
    }
}

impl Forward for Conv1d {
    /// [N, C, L] -> [N, out_channels, L_out].
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let b = self.bias.as_ref().map(|b| b.tensor());
        conv1d(x, &self.weight.tensor(), b.as_ref(), &self.options).map_err(|e| named(e, || self.describe()))
    }
}

/// A functional op's refusal as the layer's: `Conv2d(..): <what the op said>`.
pub(crate) fn named(e: Error, layer: impl Fn() -> String) -> Error {
    match e {
        Error::Invalid { msg, .. } => Error::layer(layer(), msg),
        Error::ShapeMismatch { op, lhs, rhs } => Error::layer(layer(), format!("{op}: shapes {lhs:?} and {rhs:?}")),
        e => e,
    }
}
