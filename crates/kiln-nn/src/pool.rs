//! Pooling and flattening layers (PyTorch's `nn.MaxPool2d`, `nn.AvgPool2d`,
//! `nn.AdaptiveAvgPool2d`, `nn.Flatten`): no parameters, built infallibly; bad sizes are
//! reported at forward, naming the layer.

use kiln_core::functional::{adaptive_avg_pool2d, avg_pool2d, max_pool2d};
use kiln_core::{Result, Tensor};

use crate::Forward;
use crate::conv::named;

/// A window-pooling layer: `$name::new(kernel, stride)`, `.with_padding(padding)`, applying
/// `$f` (whose errors are renamed after the layer).
macro_rules! window_pool {
    ($(#[$doc:meta])* $name:ident, $f:ident, $pad:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, kiln_derive::Module)]
        #[module(crate = "kiln_core")]
        pub struct $name {
            /// Window (height, width).
            #[module(skip)]
            pub kernel: (usize, usize),
            /// Step between windows.
            #[module(skip)]
            pub stride: (usize, usize),
            #[doc = concat!($pad, " added on each side (at most half the kernel).")]
            #[module(skip)]
            pub padding: (usize, usize),
        }

        impl $name {
            /// Windows of `kernel` every `stride` (PyTorch's default stride is the kernel: pass it).
            pub fn new(kernel: (usize, usize), stride: (usize, usize)) -> Self {
                $name { kernel, stride, padding: (0, 0) }
            }

            /// With padding.
            pub fn with_padding(self, padding: (usize, usize)) -> Self {
                $name { padding, ..self }
            }
        }

        impl Forward for $name {
            fn forward(&self, x: &Tensor) -> Result<Tensor> {
                $f(x, self.kernel, self.stride, self.padding).map_err(|e| {
                    named(e, || {
                        format!(
                            "{}(kernel_size={:?}, stride={:?}, padding={:?})",
                            stringify!($name),
                            self.kernel,
                            self.stride,
                            self.padding
                        )
                    })
                })
            }
        }
    };
}

window_pool!(
    /// 2-D max pooling over [N, C, H, W] (dilation 1; padding never wins).
    MaxPool2d,
    max_pool2d,
    "-inf"
);
window_pool!(
    /// 2-D average pooling over [N, C, H, W] (padding counted, as PyTorch's default).
    AvgPool2d,
    avg_pool2d,
    "Zeros"
);

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
