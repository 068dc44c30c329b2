//! kiln: train models in Rust on whatever GPU wgpu reaches (Vulkan, Metal, DX12, GL), or on the
//! CPU, with PyTorch's names and semantics.
//!
//! `use kiln::prelude::*;` brings in [`Tensor`], [`DType`], [`Device`], [`no_grad`] and
//! [`Result`]. Losses live in [`nn::functional`].
//!
//! ```
//! use kiln::prelude::*;
//! use kiln::nn::functional::mse_loss;
//!
//! kiln::manual_seed(0);
//! let dev = Device::cpu(); // or Device::best(): the GPU when there is one
//! let w = Tensor::randn(&[3, 1], &dev)?.set_requires_grad(true);
//! let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3], &dev)?;
//! let y = Tensor::from_vec(vec![1.0, 2.0], &[2, 1], &dev)?;
//! let loss = mse_loss(&x.matmul(&w)?, &y)?;
//! loss.backward()?;
//! assert_eq!(w.grad().unwrap().shape(), &[3, 1]);
//! # Ok::<(), kiln::Error>(())
//! ```

pub use kiln_core::{
    DType, Device, Dim, Error, GradSlot, NoGradGuard, Result, Tensor, is_grad_enabled, manual_seed, no_grad,
};
pub use kiln_device;

/// The names most programs need: `use kiln::prelude::*;`.
pub mod prelude {
    pub use kiln_core::{DType, Device, Result, Tensor, no_grad};
}

/// Neural-network building blocks. (Layers and modules arrive with kiln-nn.)
pub mod nn {
    /// Stateless functions: losses.
    pub mod functional {
        pub use kiln_core::functional::{cross_entropy, mse_loss};
    }
}
