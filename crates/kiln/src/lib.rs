//! kiln: train models in Rust on whatever GPU wgpu reaches (Vulkan, Metal, DX12, GL), or on the
//! CPU, with PyTorch's names and semantics.
//!
//! `use kiln::prelude::*;` brings in [`Tensor`], [`DType`], [`Device`], [`Parameter`],
//! [`Buffer`], [`StateDict`], [`Module`] (the trait and its derive macro), [`no_grad`] and
//! [`Result`]. Layers live in [`nn`], losses in [`nn::functional`], safetensors files in [`io`].
//!
//! ```
//! use kiln::prelude::*;
//! use kiln::nn::functional::mse_loss;
//!
//! kiln::manual_seed(0);
//! let dev = Device::cpu(); // or Device::best(): a hardware GPU when there is one
//! let w = Tensor::randn(&[3, 1], &dev)?.set_requires_grad(true);
//! let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3], &dev)?;
//! let y = Tensor::from_vec(vec![1.0, 2.0], &[2, 1], &dev)?;
//! let loss = mse_loss(&x.matmul(&w)?, &y)?;
//! loss.backward()?;
//! assert_eq!(w.grad().unwrap().shape(), &[3, 1]);
//! # Ok::<(), kiln::Error>(())
//! ```

#![warn(missing_docs)]

/// The `Module` trait and `#[derive(Module)]` (one name, as serde does).
pub use kiln_core::Module;
pub use kiln_core::{
    Buffer, DType, Device, Dim, Error, GradSlot, LoadReport, NoGradGuard, ParamCount, Parameter, RawStorage, Result,
    StateDict, Tensor, TrainMode, detect_anomaly, is_grad_enabled, manual_seed, no_grad, rng, stats,
};
pub use kiln_derive::Module;
pub use kiln_device;
/// Options of a GPU device ([`Device::gpu_with`]).
pub use kiln_device::{AttentionPolicy, DeviceOptions, Fusion, MatmulPolicy};

/// The module machinery the derive macro refers to (`Entry`, `VisitField`, `VisitFn`).
pub mod module {
    pub use kiln_core::module::*;
}

/// Saving and loading state_dicts as safetensors files (PyTorch's names and layouts).
pub mod io {
    pub use kiln_core::io::*;
}

pub mod data;
pub mod inspect;
pub mod monitor;
pub mod plot;
pub mod train;

/// Optimizers (SGD, Adam, AdamW) with fused GPU updates, LR schedulers, gradient clipping.
pub mod optim {
    pub use kiln_optim::*;
}

/// The names most programs need: `use kiln::prelude::*;`.
pub mod prelude {
    pub use kiln_core::{Buffer, DType, Device, Module, Parameter, Result, StateDict, Tensor, no_grad};
    pub use kiln_derive::Module;
}

/// Neural-network building blocks: layers (`Linear`, `ReLU`, `Sequential`, `BatchNorm1d`,
/// `Dropout`), the `Forward` trait, initialisers, losses.
pub mod nn {
    pub use kiln_nn::*;
    /// Stateless functions: convolution, pooling, normalisation, attention, losses.
    pub mod functional {
        pub use kiln_core::functional::{
            Conv1dOptions, Conv2dOptions, LossOptions, Reduction, adaptive_avg_pool2d, avg_pool2d,
            binary_cross_entropy_with_logits, conv1d, conv2d, cross_entropy, cross_entropy_with, l1_loss, layer_norm,
            max_pool2d, mse_loss, nll_loss, nll_loss_with, rms_norm, scaled_dot_product_attention,
        };
    }
}

/// The README's code, compiled and run as a doctest so that the first page stays true.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
