//! kiln-nn: layers with PyTorch's names, shapes and default initialisation.
//!
//! Every layer is a [`Module`](kiln_core::Module) (its parameters and buffers are found by
//! name) and implements [`Forward`]. Names match PyTorch's: `Linear` has `weight` [out, in] and
//! `bias` [out]; `BatchNorm1d` has `weight`, `bias` and the buffers `running_mean`,
//! `running_var`, `num_batches_tracked`; `Sequential` names its children "0", "1", ...

#![warn(missing_docs)]

mod activation;
mod batchnorm;
mod conv;
mod dropout;
mod embedding;
mod groupnorm;
pub mod init;
mod layernorm;
mod linear;
mod pool;
pub mod prune;
mod rnn;
mod rnn_cell;
mod sequential;
mod transformer;

pub use activation::{GELU, Identity, LogSoftmax, ReLU, SiLU, Sigmoid, Softmax, Tanh};
pub use batchnorm::{BatchNorm1d, BatchNorm2d};
pub use conv::{Conv1d, Conv2d};
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use groupnorm::GroupNorm;
pub use kiln_core::functional::{Conv1dOptions, Conv2dOptions};
pub use layernorm::{LayerNorm, RMSNorm};
pub use linear::Linear;
pub use pool::{AdaptiveAvgPool2d, AvgPool2d, Flatten, MaxPool2d};
pub use rnn::{GRU, LSTM, Nonlinearity, RNN, RnnOptions};
pub use rnn_cell::{GRUCell, LSTMCell, RNNCell};
pub use sequential::{Layer, Sequential};
pub use transformer::{Activation, MultiheadAttention, TransformerEncoderLayer, TransformerOptions};

use kiln_core::{Result, Tensor};

/// A layer's computation: `y = layer.forward(&x)?`.
pub trait Forward {
    /// Applies the layer.
    fn forward(&self, x: &Tensor) -> Result<Tensor>;
}
