//! Learning-rate schedulers with PyTorch's formulas (`torch.optim.lr_scheduler`), in closed
//! form per epoch. Build one from the optimizer (it records each group's base rate and sets the
//! rate for epoch 0, as PyTorch's constructors do), then call `step(&mut opt)` once per epoch
//! after the epoch's optimizer steps.

use kiln_core::{Error, Result};

use crate::Optimizer;

/// What every scheduler does.
pub trait LrScheduler {
    /// The rate for a group with base rate `base` at `epoch` (closed form).
    fn lr_at(&self, base: f64, epoch: u64) -> f64;
    /// Shared bookkeeping.
    fn core(&self) -> &Core;
    /// Shared bookkeeping, mutable.
    fn core_mut(&mut self) -> &mut Core;

    /// Advances one epoch and sets every group's rate.
    fn step(&mut self, opt: &mut dyn Optimizer) {
        self.core_mut().epoch += 1;
        self.apply(opt);
    }

    /// Sets every group's rate for the current epoch.
    fn apply(&mut self, opt: &dyn Optimizer) {
        let epoch = self.core().epoch;
        let lrs: Vec<f32> = self.core().base_lrs.iter().map(|&b| self.lr_at(b, epoch) as f32).collect();
        for (i, lr) in lrs.iter().enumerate() {
            opt.set_group_lr(i, *lr);
        }
        self.core_mut().last_lrs = lrs;
    }

    /// The rate last set (first group).
    fn last_lr(&self) -> f32 {
        self.core().last_lrs.first().copied().unwrap_or(0.0)
    }

    /// Epochs stepped so far (PyTorch's `last_epoch`).
    fn last_epoch(&self) -> u64 {
        self.core().epoch
    }

    /// Restores the epoch count (for resuming) and sets the rates for it.
    fn set_last_epoch(&mut self, epoch: u64, opt: &dyn Optimizer) {
        self.core_mut().epoch = epoch;
        self.apply(opt);
    }
}

/// The state every scheduler keeps: base rates, epoch, last rates.
#[derive(Debug, Clone, Default)]
pub struct Core {
    base_lrs: Vec<f64>,
    epoch: u64,
    last_lrs: Vec<f32>,
}

impl Core {
    fn new(opt: &dyn Optimizer) -> Core {
        Core { base_lrs: opt.group_lrs().into_iter().map(|l| l as f64).collect(), epoch: 0, last_lrs: Vec::new() }
    }
}

macro_rules! scheduler {
    ($t:ident) => {
        impl LrScheduler for $t {
            fn lr_at(&self, base: f64, epoch: u64) -> f64 {
                self.formula(base, epoch)
            }
            fn core(&self) -> &Core {
                &self.core
            }
            fn core_mut(&mut self) -> &mut Core {
                &mut self.core
            }
        }
    };
}

fn started<S: LrScheduler>(mut s: S, opt: &dyn Optimizer) -> S {
    s.apply(opt);
    s
}

/// Decays by `gamma` every `step_size` epochs: base * gamma^(epoch / step_size).
pub struct StepLR {
    core: Core,
    step_size: u64,
    gamma: f64,
}

impl StepLR {
    /// PyTorch's `StepLR(optimizer, step_size, gamma)`.
    pub fn new(opt: &dyn Optimizer, step_size: u64, gamma: f32) -> Result<StepLR> {
        if step_size == 0 {
            return Err(Error::invalid("StepLR", "step_size must be at least 1"));
        }
        Ok(started(StepLR { core: Core::new(opt), step_size, gamma: gamma as f64 }, opt))
    }
    fn formula(&self, base: f64, e: u64) -> f64 {
        base * self.gamma.powi((e / self.step_size) as i32)
    }
}
scheduler!(StepLR);

/// Decays by `gamma` at each milestone: base * gamma^(milestones passed).
pub struct MultiStepLR {
    core: Core,
    milestones: Vec<u64>,
    gamma: f64,
}

impl MultiStepLR {
    /// PyTorch's `MultiStepLR(optimizer, milestones, gamma)`.
    pub fn new(opt: &dyn Optimizer, milestones: &[u64], gamma: f32) -> Result<MultiStepLR> {
        let mut m = milestones.to_vec();
        m.sort_unstable();
        Ok(started(MultiStepLR { core: Core::new(opt), milestones: m, gamma: gamma as f64 }, opt))
    }
    fn formula(&self, base: f64, e: u64) -> f64 {
        base * self.gamma.powi(self.milestones.iter().filter(|&&m| m <= e).count() as i32)
    }
}
scheduler!(MultiStepLR);

/// base * gamma^epoch.
pub struct ExponentialLR {
    core: Core,
    gamma: f64,
}

impl ExponentialLR {
    /// PyTorch's `ExponentialLR(optimizer, gamma)`.
    pub fn new(opt: &dyn Optimizer, gamma: f32) -> Result<ExponentialLR> {
        Ok(started(ExponentialLR { core: Core::new(opt), gamma: gamma as f64 }, opt))
    }
    fn formula(&self, base: f64, e: u64) -> f64 {
        base * self.gamma.powi(e as i32)
    }
}
scheduler!(ExponentialLR);

/// eta_min + (base - eta_min) * (1 + cos(pi * epoch / t_max)) / 2.
pub struct CosineAnnealingLR {
    core: Core,
    t_max: u64,
    eta_min: f64,
}

impl CosineAnnealingLR {
    /// PyTorch's `CosineAnnealingLR(optimizer, T_max, eta_min)`.
    pub fn new(opt: &dyn Optimizer, t_max: u64, eta_min: f32) -> Result<CosineAnnealingLR> {
        if t_max == 0 {
            return Err(Error::invalid("CosineAnnealingLR", "t_max must be at least 1"));
        }
        Ok(started(CosineAnnealingLR { core: Core::new(opt), t_max, eta_min: eta_min as f64 }, opt))
    }
    fn formula(&self, base: f64, e: u64) -> f64 {
        let c = (std::f64::consts::PI * e as f64 / self.t_max as f64).cos();
        self.eta_min + (base - self.eta_min) * (1.0 + c) / 2.0
    }
}
scheduler!(CosineAnnealingLR);

/// Linear warm-up (or decay) of the factor from `start_factor` to `end_factor` over
/// `total_iters` epochs.
pub struct LinearLR {
    core: Core,
    start: f64,
    end: f64,
    total: u64,
}

impl LinearLR {
    /// PyTorch's `LinearLR(optimizer, start_factor, end_factor, total_iters)` (its defaults are
    /// 1/3, 1.0, 5).
    pub fn new(opt: &dyn Optimizer, start_factor: f32, end_factor: f32, total_iters: u64) -> Result<LinearLR> {
        if !(start_factor > 0.0 && start_factor <= 1.0 && (0.0..=1.0).contains(&end_factor)) {
            return Err(Error::invalid(
                "LinearLR",
                format!("factors must lie in (0, 1], got {start_factor} and {end_factor}"),
            ));
        }
        Ok(started(
            LinearLR { core: Core::new(opt), start: start_factor as f64, end: end_factor as f64, total: total_iters },
            opt,
        ))
    }
    fn formula(&self, base: f64, e: u64) -> f64 {
        if self.total == 0 {
            return base * self.end;
        }
        let t = e.min(self.total) as f64 / self.total as f64;
        base * (self.start + (self.end - self.start) * t)
    }
}
scheduler!(LinearLR);

/// Runs `schedulers[i]` from `milestones[i - 1]` on, each from its own epoch 0.
pub struct SequentialLR {
    core: Core,
    schedulers: Vec<Box<dyn LrScheduler>>,
    milestones: Vec<u64>,
}

impl SequentialLR {
    /// PyTorch's `SequentialLR(optimizer, schedulers, milestones)`; needs one milestone fewer
    /// than schedulers.
    pub fn new(opt: &dyn Optimizer, schedulers: Vec<Box<dyn LrScheduler>>, milestones: &[u64]) -> Result<SequentialLR> {
        if schedulers.is_empty() || milestones.len() + 1 != schedulers.len() {
            return Err(Error::invalid(
                "SequentialLR",
                format!(
                    "{} schedulers need {} milestones, got {}",
                    schedulers.len(),
                    schedulers.len().saturating_sub(1),
                    milestones.len()
                ),
            ));
        }
        if milestones.windows(2).any(|w| w[0] > w[1]) {
            return Err(Error::invalid("SequentialLR", "milestones must increase"));
        }
        let mut core = Core::new(opt);
        // The sub-schedulers' base rates are the optimizer's original ones.
        core.base_lrs = schedulers[0].core().base_lrs.clone();
        Ok(started(SequentialLR { core, schedulers, milestones: milestones.to_vec() }, opt))
    }
    fn formula(&self, base: f64, e: u64) -> f64 {
        let i = self.milestones.iter().filter(|&&m| m <= e).count();
        let local = if i == 0 { e } else { e - self.milestones[i - 1] };
        self.schedulers[i].lr_at(base, local)
    }
}
scheduler!(SequentialLR);
