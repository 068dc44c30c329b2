//! Activation modules (PyTorch's `nn.ReLU`, `nn.Tanh`, ...): no parameters, built infallibly;
//! a bad dim is reported at forward.

use kiln_core::{Result, Tensor};

use crate::Forward;

/// Unit-struct activations: `$name` applies `Tensor::$method`.
macro_rules! activation {
    ($(#[$doc:meta])* $name:ident, $method:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, kiln_derive::Module)]
        #[module(crate = "kiln_core")]
        pub struct $name;

        impl Forward for $name {
            fn forward(&self, x: &Tensor) -> Result<Tensor> {
                x.$method()
            }
        }
    };
}

activation!(
    /// max(x, 0), elementwise (PyTorch's `nn.ReLU`).
    ReLU,
    relu
);
activation!(
    /// tanh(x), elementwise (PyTorch's `nn.Tanh`).
    Tanh,
    tanh
);
activation!(
    /// 1 / (1 + e^-x), elementwise (PyTorch's `nn.Sigmoid`).
    Sigmoid,
    sigmoid
);
activation!(
    /// GELU, exact (x * Phi(x); PyTorch's `nn.GELU()` with `approximate='none'`).
    GELU,
    gelu
);

activation!(
    /// x * sigmoid(x), elementwise (PyTorch's `nn.SiLU`, also called swish).
    SiLU,
    silu
);

/// Returns its input (PyTorch's `nn.Identity`): a placeholder, e.g. for a removed head.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, kiln_derive::Module)]
#[module(crate = "kiln_core")]
pub struct Identity;

impl Forward for Identity {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.clone())
    }
}

/// Softmax along `dim` (PyTorch's `nn.Softmax(dim)`; negative dims count from the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, kiln_derive::Module)]
#[module(crate = "kiln_core")]
pub struct Softmax {
    /// The dim the probabilities sum to 1 along.
    #[module(skip)]
    pub dim: i64,
}

impl Softmax {
    /// Softmax along `dim`.
    pub fn new(dim: i64) -> Self {
        Softmax { dim }
    }
}

impl Forward for Softmax {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.softmax(self.dim)
    }
}

/// log(softmax(x)) along `dim`, computed stably (PyTorch's `nn.LogSoftmax(dim)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, kiln_derive::Module)]
#[module(crate = "kiln_core")]
pub struct LogSoftmax {
    /// The dim the probabilities sum to 1 along.
    #[module(skip)]
    pub dim: i64,
}

impl LogSoftmax {
    /// log_softmax along `dim`.
    pub fn new(dim: i64) -> Self {
        LogSoftmax { dim }
    }
}

impl Forward for LogSoftmax {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.log_softmax(self.dim)
    }
}
