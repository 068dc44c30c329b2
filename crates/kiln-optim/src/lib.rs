//! kiln-optim: optimizers with PyTorch's update rules, one fused WGSL kernel per parameter on
//! the GPU (no read-back), the same formulas on the CPU; LR schedulers; gradient clipping.
//!
//! Optimizers take `model.named_parameters()`: state is keyed by the parameter's name, so a
//! checkpoint resumes into a fresh process exactly. Frozen parameters (`requires_grad ==
//! false`) and parameters without a gradient are skipped.

#![warn(missing_docs)]
// `!(x >= 0.0)` is deliberate throughout: it rejects NaN as well as negatives.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

mod adam;
mod clip;
mod fused;
mod groups;
pub mod lr_scheduler;
mod sgd;
mod state;

pub use adam::{Adam, AdamBase, AdamConfig, AdamW};
pub use clip::{clip_grad_norm_, clip_grad_value_};
pub use sgd::{Sgd, SgdConfig};

use kiln_core::{Result, StateDict};

/// What every optimizer does (PyTorch's `torch.optim.Optimizer`).
pub trait Optimizer {
    /// Applies one update to every parameter that has a gradient and requires grad.
    fn step(&mut self) -> Result<()>;
    /// Clears the gradients of every parameter the optimizer holds.
    fn zero_grad(&mut self);
    /// The learning rate of the first parameter group.
    fn lr(&self) -> f32;
    /// Sets the learning rate of every parameter group.
    fn set_lr(&mut self, lr: f32);
    /// The learning rate of each parameter group.
    fn group_lrs(&self) -> Vec<f32>;
    /// Sets the learning rate of group `i` (ignored when there is no such group). Takes
    /// `&self`: a scheduler built from `&optimizer` sets the first epoch's rate through it.
    fn set_group_lr(&self, i: usize, lr: f32);
    /// Step counts and moments keyed by parameter name (copies), plus the hyperparameters of
    /// each group in the metadata.
    fn state_dict(&self) -> Result<StateDict>;
    /// Restores what `state_dict` saved. Checks every entry first; on error nothing changes.
    fn load_state_dict(&mut self, sd: &StateDict) -> Result<()>;
}
