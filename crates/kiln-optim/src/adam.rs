//! Adam and AdamW (`torch.optim.Adam`, `torch.optim.AdamW`), with amsgrad and weight decay.

use std::collections::HashMap;

use kiln_core::kiln_device::kernels::{OptimKernel, OptimParams, optim_flags as f};
use kiln_core::{Error, Parameter, Result, StateDict};
use serde::{Deserialize, Serialize};

use crate::Optimizer;
use crate::fused;
use crate::groups::{Group, HasLr, check_unique, load_groups, save_groups};
use crate::state::{ParamState, StateBuf, load_all, save_all};

/// Adam/AdamW hyperparameters; `Default` is PyTorch's Adam (lr 1e-3, betas (0.9, 0.999),
/// eps 1e-8, no weight decay). PyTorch's AdamW defaults to weight_decay 0.01:
/// [`AdamConfig::adamw`] gives that.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f32,
    /// Decay rates of the first and second moment estimates.
    pub betas: (f32, f32),
    /// Added to the denominator.
    pub eps: f32,
    /// Weight decay (L2 in Adam, decoupled in AdamW).
    pub weight_decay: f32,
    /// Use the maximum of past second moments.
    pub amsgrad: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig { lr: 1e-3, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.0, amsgrad: false }
    }
}

impl AdamConfig {
    /// PyTorch's AdamW defaults (weight_decay 0.01).
    pub fn adamw() -> AdamConfig {
        AdamConfig { weight_decay: 1e-2, ..AdamConfig::default() }
    }

    fn check(&self) -> Result<()> {
        let ok = self.lr >= 0.0
            && self.eps >= 0.0
            && (0.0..1.0).contains(&self.betas.0)
            && (0.0..1.0).contains(&self.betas.1)
            && self.weight_decay >= 0.0;
        if !ok {
            return Err(Error::invalid("Adam", format!("invalid hyperparameters {self:?}")));
        }
        Ok(())
    }
}

const ADAM_BUFS: [&str; 3] = ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"];

/// Adam (`DECOUPLED = false`) or AdamW (`true`): one implementation.
pub struct AdamBase<const DECOUPLED: bool> {
    groups: Vec<Group<AdamConfig>>,
    state: HashMap<String, ParamState>,
    decoupled: bool,
}

/// Adam: L2 weight decay added to the gradient.
pub type Adam = AdamBase<false>;

/// AdamW: decoupled weight decay, p <- p * (1 - lr * wd) before the Adam step.
pub type AdamW = AdamBase<true>;

impl<const DECOUPLED: bool> AdamBase<DECOUPLED> {
    fn kind(&self) -> &'static str {
        if self.decoupled { "AdamW" } else { "Adam" }
    }

    /// An optimizer over `params` (from `model.named_parameters()`).
    pub fn new(params: Vec<(String, Parameter)>, cfg: AdamConfig) -> Result<AdamBase<DECOUPLED>> {
        let mut a = AdamBase { groups: Vec::new(), state: HashMap::new(), decoupled: DECOUPLED };
        a.add_param_group(params, cfg)?;
        Ok(a)
    }

    /// Adds parameters with their own hyperparameters.
    pub fn add_param_group(&mut self, params: Vec<(String, Parameter)>, cfg: AdamConfig) -> Result<()> {
        cfg.check()?;
        check_unique(self.groups.iter().flat_map(|g| g.params.iter()), &params)?;
        self.groups.push(Group::new(params, cfg));
        Ok(())
    }

    /// True for AdamW.
    pub fn is_decoupled(&self) -> bool {
        self.decoupled
    }
}

impl<const DECOUPLED: bool> Optimizer for AdamBase<DECOUPLED> {
    fn step(&mut self) -> Result<()> {
        for group in &self.groups {
            let c = group.current();
            for (name, p) in &group.params {
                if !p.requires_grad() {
                    continue;
                }
                let Some(g) = p.grad() else { continue };
                let st = match self.state.entry(name.clone()) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        let third = if c.amsgrad { Some(StateBuf::zeros(p)?) } else { None };
                        e.insert(ParamState {
                            step: 0,
                            bufs: [Some(StateBuf::zeros(p)?), Some(StateBuf::zeros(p)?), third],
                        })
                    }
                };
                if c.amsgrad && st.bufs[2].is_none() {
                    st.bufs[2] = Some(StateBuf::zeros(p)?);
                }
                st.step += 1;
                // Scalars as PyTorch computes them: in double on the host.
                let (b1, b2) = (c.betas.0 as f64, c.betas.1 as f64);
                let t = st.step as i32;
                let bc1 = 1.0 - b1.powi(t);
                let bc2 = 1.0 - b2.powi(t);
                let mut flags = 0;
                if c.amsgrad {
                    flags |= f::AMSGRAD;
                }
                if self.decoupled {
                    flags |= f::DECOUPLED;
                }
                let u = OptimParams {
                    flags,
                    lr: c.lr,
                    wd: c.weight_decay,
                    one_minus_beta1: (1.0 - b1) as f32,
                    beta2: c.betas.1,
                    one_minus_beta2: (1.0 - b2) as f32,
                    eps: c.eps,
                    step_size: (c.lr as f64 / bc1) as f32,
                    bc2_sqrt: bc2.sqrt() as f32,
                    decay: (1.0 - c.lr as f64 * c.weight_decay as f64) as f32,
                    ..Default::default()
                };
                if let Err(e) = fused::apply(OptimKernel::Adam, p, &g, st, u) {
                    st.step -= 1;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    crate::groups::group_methods!();

    fn state_dict(&self) -> Result<StateDict> {
        let mut sd = save_all(&self.groups, &self.state, ADAM_BUFS)?;
        save_groups(&mut sd, self.kind(), &self.groups)?;
        Ok(sd)
    }

    fn load_state_dict(&mut self, sd: &StateDict) -> Result<()> {
        let cfgs: Vec<AdamConfig> = load_groups(sd, self.kind(), &self.groups)?;
        for c in &cfgs {
            c.check()?;
        }
        let state = load_all(sd, &self.groups, ADAM_BUFS)?;
        if let Some((name, _)) = state.iter().find(|(_, st)| st.bufs[0].is_none() || st.bufs[1].is_none()) {
            return Err(Error::invalid(
                "optimizer load_state_dict",
                format!("state for {name:?} lacks exp_avg/exp_avg_sq"),
            ));
        }
        for (g, c) in self.groups.iter_mut().zip(cfgs) {
            g.replace(c);
        }
        self.state = state;
        Ok(())
    }
}

impl HasLr for AdamConfig {
    fn lr(&self) -> f32 {
        self.lr
    }
    fn with_lr(self, lr: f32) -> Self {
        AdamConfig { lr, ..self }
    }
}
