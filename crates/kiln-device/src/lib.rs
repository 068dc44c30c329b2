//! kiln-device: the wgpu layer of kiln.
//!
//! This crate knows adapters, buffers, pipelines and kernels, and nothing about autograd or
//! tensors' meaning. [`GpuDevice`] owns one wgpu device and queue, a pool of storage buffers
//! ([`GpuBuffer`]), a cache of compute pipelines and the pending command batch into which every
//! kernel launch is recorded. The launchers in [`kernels`] take buffers plus plain shape
//! parameters and record one dispatch each (elementwise ops in a row are fused into one generated
//! kernel first); nothing is submitted until a read-back, [`GpuDevice::synchronize`], or a full
//! batch.
//!
//! The hand-written WGSL sources live in the crate's `shaders/` folder (the workspace's top-level
//! `shaders/` links to it), one file per kernel family, compiled in with `include_str!`; kernels
//! that vary by tile shape are generated from typed descriptions (see [`wgsl`]). What a device's
//! kernels may do (fusion, matmul kernel policy, wide access) is its [`DeviceOptions`].

#![warn(missing_docs)]

// The modules in their one-way order: each uses only those above it.
mod adapter;
mod context;
mod device;
mod error;
mod fuse;
pub mod kernels;
pub mod op;
mod options;
mod pool;
mod recorder;
pub mod wgsl;

pub use wgpu;

pub use adapter::{AdapterChoice, AdapterReport, AdapterSummary, adapter_reports, list_adapters};
pub use device::GpuDevice;
pub use error::{DeviceError, DeviceResult};
pub use options::{AttentionPolicy, DeviceOptions, Fusion, MatmulPolicy};
pub use pool::{GpuBuffer, PoolStats};

/// The hint printed when no adapter can be found.
pub const INSTALL_HINT: &str = "no wgpu adapter found: install a GPU driver, or the software \
adapter (Debian/Ubuntu: `apt-get install mesa-vulkan-drivers`), or use Device::cpu()";
