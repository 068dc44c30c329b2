//! Pooling and flattening layers (PyTorch's `nn.MaxPool2d`, `nn.AvgPool2d`,
//! `nn.AdaptiveAvgPool2d`, `nn.Flatten`): no parameters, built infallibly; bad sizes are
//! reported at forward, naming the layer.

use kiln_core::functional::{adaptive_avg_pool2d, avg_pool2d, max_pool2d};
use kiln_core::{Result, Tensor};

use crate::Forward;
use crate::conv::named;

/// 2-D max pooling over [N, C, H, W] (dilation 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, kiln_derive::Module)]
#[module(crate = "kiln_core")]
pub struct MaxPool2d {
    /// Window (height, width).
    #[module(skip)]
    pub kernel: (usize, usize),
    /// Step between windows.
    #[module(skip)]
    pub stride: (usize, usize),
    /// -inf added on each side (at most half the kernel).
    #[module(skip)]
    pub padding: (usize, usize),
}

impl MaxPool2d {
    /// Windows of `kernel` every `stride` (PyTorch's default stride is the kernel: pass it).
    pub fn new(kernel: (usize, usize), stride: (usize, usize)) -> Self {
        MaxPool2d { kernel, stride, padding: (0, 0) }
    }

    /// With padding.
    pub fn with_padding(self, padding: (usize, usize)) -> Self {
        MaxPool2d { padding, ..self }
    }
}

impl Forward for MaxPool2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        max_pool2d(x, self.kernel, self.stride, self.padding).map_err(|e| {
            named(e, || {
                format!(
                    "MaxPool2d(kernel_size={:?}, stride={:?}, padding={:?})",
                    self.kernel, self.stride, self.padding
                )
            })
        })
    }
}

/// 2-D average pooling over [N, C, H, W] (padding counted, as PyTorch's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, kiln_derive::Module)]
#[module(crate = "kiln_core")]
pub struct AvgPool2d {
    /// Window (height, width).
    #[module(skip)]
    pub kernel: (usize, usize),
    /// Step between windows.
    #[module(skip)]
    pub stride: (usize, usize),
    /// Zeros added on each side (at most half the kernel).
    #[module(skip)]
    pub padding: (usize, usize),
}

impl AvgPool2d {
    /// Windows of `kernel` every `stride`.
    pub fn new(kernel: (usize, usize), stride: (usize, usize)) -> Self {
        AvgPool2d { kernel, stride, padding: (0, 0) }
    }

    /// With padding.
    pub fn with_padding(self, padding: (usize, usize)) -> Self {
        AvgPool2d { padding, ..self }
    }
}

impl Forward for AvgPool2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        avg_pool2d(x, self.kernel, self.stride, self.padding).map_err(|e| {
            named(e, || {
                format!(
                    "AvgPool2d(kernel_size={:?}, stride={:?}, padding={:?})",
                    self.kernel, self.stride, self.padding
                )
            })
        })
    }
}

/// Adaptive 2-D average pooling to a fixed output size (`(1, 1)`: global average pooling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, kiln_derive::Module)]
#[module(crate = "kiln_core")]
pub struct AdaptiveAvgPool2d {
    /// Output (height, width).
    #[module(skip)]
    pub output_size: (usize, usize),
}

impl AdaptiveAvgPool2d {
    /// Pools any [N, C, H, W] to [N, C, output_size.0, output_size.1].
    pub fn new(output_size: (usize, usize)) -> Self {
        AdaptiveAvgPool2d { output_size }
    }
}

impl Forward for AdaptiveAvgPool2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        adaptive_avg_pool2d(x, self.output_size)
            .map_err(|e| named(e, || format!("AdaptiveAvgPool2d(output_size={:?})", self.output_size)))
    }
}

/// Merges every dim from 1 on into one (PyTorch's `nn.Flatten()`: [N, C, H, W] -> [N, C*H*W]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, kiln_derive::Module)]
#[module(crate = "kiln_core")]
pub struct Flatten;

impl Flatten {
    /// Dims 1..=-1, as PyTorch's default.
    pub fn new() -> Self {
        Flatten
    }
}

impl Forward for Flatten {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.flatten_dims(1usize, -1i64).map_err(|e| named(e, || "Flatten(start_dim=1, end_dim=-1)".to_string()))
    }
}
