//! kiln-core: tensors on the CPU or a wgpu device, their ops, and reverse-mode autograd.
//!
//! - [`Tensor`] is a cheap handle to immutable storage; every op returns a new tensor and, when
//!   gradients are needed, records one [`autograd`] node.
//! - [`Device`] is the CPU (reference kernels in Rust) or a wgpu device (WGSL kernels from
//!   kiln-device). Ops never move data between devices implicitly.
//! - Every fallible call returns [`Result`], whose [`Error`] names the op and the shapes.
//!
//! ```
//! use kiln_core::{Device, Tensor};
//! let dev = Device::cpu();
//! let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2], &dev)?.set_requires_grad(true);
//! let y = x.matmul(&x)?.sum_all()?;
//! y.backward()?;
//! assert_eq!(y.item()?, 54.0);
//! assert_eq!(x.grad().unwrap().to_vec()?, vec![7.0, 11.0, 9.0, 13.0]);
//! # Ok::<(), kiln_core::Error>(())
//! ```

#![warn(missing_docs)]

pub mod autograd;
mod cpu;
mod device;
mod dtype;
mod error;
pub mod functional;
pub mod io;
pub mod module;
mod ops;
mod param;
pub mod rng;
pub mod shape;
mod state;
pub mod stats;
mod storage;
mod tensor;

pub use autograd::{NoGradGuard, detect_anomaly, is_anomaly_enabled, is_grad_enabled, no_grad};
pub use device::Device;
pub use dtype::DType;
pub use error::{Error, Result};
pub use module::{Entry, LoadReport, Module, ParamCount, VisitField};
pub use param::{Buffer, Parameter, TrainMode};
pub use rng::manual_seed;
pub use shape::Dim;
pub use state::StateDict;
pub use tensor::{GradSlot, RawStorage, Tensor};

/// Lower-level access to the GPU layer (for applications that share a wgpu device).
pub use kiln_device;
