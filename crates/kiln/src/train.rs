//! Training helpers: checkpoints that hold everything a run needs to resume exactly.
//!
//! A checkpoint is one safetensors file: the model's state_dict under `model.`, the optimizer's
//! under `optim.` (tensors as tensors), and in the metadata, as JSON, the epoch, the step, the
//! scheduler's epoch, kiln's RNG state and the optimizer's hyperparameters. It is written
//! atomically (temp file, fsync, rename), so a crash never leaves a half-written checkpoint under
//! the name. Restoring checks everything first and changes nothing on error.

use std::collections::BTreeMap;
use std::path::Path;

use kiln_core::{Device, Error, Module, Result, StateDict, Tensor, rng};
use kiln_optim::Optimizer;
use kiln_optim::lr_scheduler::LrScheduler;
use serde::{Deserialize, Serialize};

/// The non-tensor part of a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Completed epochs.
    pub epoch: u64,
    /// Completed optimizer steps.
    pub step: u64,
    /// The scheduler's epoch, if a scheduler was saved.
    pub scheduler_epoch: Option<u64>,
    /// kiln's global RNG state (for `randn`, `rand`, dropout, init).
    pub rng: Option<[u64; 4]>,
    /// Anything else the program wants to keep (strings).
    pub extra: BTreeMap<String, String>,
}

/// Everything needed to resume training.
#[derive(Debug, Clone, Default)]
pub struct Checkpoint {
    /// The model's state_dict.
    pub model: StateDict,
    /// The optimizer's state_dict, if saved.
    pub optimizer: Option<StateDict>,
    /// Epoch, step, scheduler, RNG.
    pub progress: Progress,
}

const META_KEY: &str = "kiln.checkpoint";

impl Checkpoint {
    /// Captures the current state (the optimizer's state is copied; the model's tensors are
    /// the live, immutable values).
    pub fn capture(
        model: &dyn Module,
        optimizer: Option<&dyn Optimizer>,
        scheduler: Option<&dyn LrScheduler>,
        epoch: u64,
        step: u64,
    ) -> Result<Checkpoint> {
        Ok(Checkpoint {
            model: model.state_dict(),
            optimizer: optimizer.map(|o| o.state_dict()).transpose()?,
            progress: Progress {
                epoch,
                step,
                scheduler_epoch: scheduler.map(|s| s.last_epoch()),
                rng: Some(rng::state()),
                extra: BTreeMap::new(),
            },
        })
    }

    /// Writes the checkpoint to `path` atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut sd = StateDict::new();
        for (k, t) in self.model.iter() {
            sd.insert(format!("model.{k}"), t.clone());
        }
        if let Some(o) = &self.optimizer {
            for (k, t) in o.iter() {
                sd.insert(format!("optim.{k}"), t.clone());
            }
            for (k, v) in o.metadata() {
                sd.set_metadata(format!("optim.{k}"), v.clone());
            }
        }
        let json =
            serde_json::to_string(&self.progress).map_err(|e| Error::invalid("Checkpoint::save", e.to_string()))?;
        sd.set_metadata(META_KEY, json);
        let bytes = kiln_core::io::to_safetensors_bytes(&sd)?;
        kiln_core::io::write_atomic(path.as_ref(), &bytes, "Checkpoint::save")
    }

    /// Reads a checkpoint written by [`Checkpoint::save`], with its tensors on `dev`.
    pub fn load(path: impl AsRef<Path>, dev: &Device) -> Result<Checkpoint> {
        let path = path.as_ref();
        let sd = kiln_core::io::load_safetensors(path, dev)?;
        let meta = sd.metadata().get(META_KEY).ok_or_else(|| Error::Io {
            op: "Checkpoint::load",
            path: path.display().to_string(),
            msg: "not a kiln checkpoint (no kiln.checkpoint metadata)".into(),
        })?;
        let progress: Progress = serde_json::from_str(meta).map_err(|e| Error::Io {
            op: "Checkpoint::load",
            path: path.display().to_string(),
            msg: format!("kiln.checkpoint metadata: {e}"),
        })?;
        let mut model = StateDict::new();
        let mut optim = StateDict::new();
        for (k, t) in sd.iter() {
            if let Some(n) = k.strip_prefix("model.") {
                model.insert(n, t.clone());
            } else if let Some(n) = k.strip_prefix("optim.") {
                optim.insert(n, t.clone());
            }
        }
        let mut has_optim = !optim.is_empty();
        for (k, v) in sd.metadata() {
            if let Some(n) = k.strip_prefix("optim.") {
                optim.set_metadata(n, v.clone());
                has_optim = true;
            }
        }
        Ok(Checkpoint { model, optimizer: has_optim.then_some(optim), progress })
    }

    /// Restores the model (strictly: same architecture), the optimizer and the scheduler, and
    /// kiln's RNG. Everything is checked first; if any part fails, the model and optimizer are
    /// put back as they were and the error is returned.
    pub fn restore(
        &self,
        model: &dyn Module,
        optimizer: Option<&mut dyn Optimizer>,
        scheduler: Option<&mut dyn LrScheduler>,
    ) -> Result<()> {
        let model_before = model.state_dict();
        model.load_state_dict(&self.model, true)?;
        if let Some(opt) = optimizer {
            let Some(osd) = &self.optimizer else {
                model.load_state_dict(&model_before, true)?;
                return Err(Error::invalid("Checkpoint::restore", "the checkpoint holds no optimizer state"));
            };
            if let Err(e) = opt.load_state_dict(osd) {
                model.load_state_dict(&model_before, true)?;
                return Err(e);
            }
            if let (Some(s), Some(e)) = (scheduler, self.progress.scheduler_epoch) {
                s.set_last_epoch(e, opt);
            }
        }
        if let Some(r) = self.progress.rng {
            rng::set_state(r);
        }
        Ok(())
    }
}

/// Stops training on NaN/Inf instead of training on through it. `check` reads the loss (one
/// read-back; call it every N steps, or once per epoch with the epoch's accumulated loss) and,
/// when it is not finite, returns [`Error::NonFinite`] with the step, the loss and the first
/// parameter or gradient that went non-finite (statistics computed on the device).
#[derive(Debug, Clone, Copy, Default)]
pub struct NanGuard;

impl NanGuard {
    /// Checks `loss` (a one-element tensor) at `step`; on a non-finite loss, names the culprit.
    pub fn check(&self, step: u64, loss: &Tensor, model: &dyn Module) -> Result<f32> {
        let l = loss.item()?;
        if l.is_finite() {
            return Ok(l);
        }
        let mut first = "loss only (every parameter and gradient is finite)".to_string();
        for s in crate::inspect::parameter_stats(model)? {
            if !s.value.is_finite() {
                first = format!("parameter {}", s.name);
                break;
            }
            if let crate::inspect::GradState::Present(g) = s.grad {
                if !g.is_finite() {
                    first = format!("gradient of {}", s.name);
                    break;
                }
            }
        }
        Err(Error::NonFinite { step, loss: l, first })
    }
}
