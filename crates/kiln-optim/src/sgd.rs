//! SGD with momentum, dampening, Nesterov and weight decay (`torch.optim.SGD`).

use std::collections::HashMap;

use kiln_core::kiln_device::kernels::{OptimKernel, OptimParams, optim_flags as f};
use kiln_core::{Error, Parameter, Result, StateDict};
use serde::{Deserialize, Serialize};

use crate::Optimizer;
use crate::fused;
use crate::groups::{Group, HasLr, check_unique, load_groups, save_groups};
use crate::state::{ParamState, StateBuf, load_all, save_all};

/// SGD hyperparameters; `Default` is PyTorch's (lr 1e-3, everything else off).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SgdConfig {
    /// Learning rate.
    pub lr: f32,
    /// Momentum factor (0 = none).
    pub momentum: f32,
    /// Dampening for momentum.
    pub dampening: f32,
    /// L2 penalty added to the gradient.
    pub weight_decay: f32,
    /// Nesterov momentum (needs momentum > 0 and dampening 0).
    pub nesterov: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig { lr: 1e-3, momentum: 0.0, dampening: 0.0, weight_decay: 0.0, nesterov: false }
    }
}

impl SgdConfig {
    fn check(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::invalid("Sgd", msg));
        if !(self.lr >= 0.0) {
            return bad(format!("invalid learning rate {}", self.lr));
        }
        if !(self.momentum >= 0.0) || !(self.weight_decay >= 0.0) {
            return bad(format!("invalid momentum {} or weight_decay {}", self.momentum, self.weight_decay));
        }
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return bad("Nesterov momentum requires a momentum and zero dampening".into());
        }
        Ok(())
    }
}

/// Stochastic gradient descent, updating each parameter with one fused kernel.
pub struct Sgd {
    groups: Vec<Group<SgdConfig>>,
    state: HashMap<String, ParamState>,
}

const SGD_BUFS: [&str; 3] = ["momentum_buffer", "", ""];

impl Sgd {
    /// An optimizer over `params` (from `model.named_parameters()`).
    pub fn new(params: Vec<(String, Parameter)>, cfg: SgdConfig) -> Result<Sgd> {
        let mut s = Sgd { groups: Vec::new(), state: HashMap::new() };
        s.add_param_group(params, cfg)?;
        Ok(s)
    }

    /// Adds parameters with their own hyperparameters (PyTorch's parameter groups).
    pub fn add_param_group(&mut self, params: Vec<(String, Parameter)>, cfg: SgdConfig) -> Result<()> {
        cfg.check()?;
        check_unique(self.groups.iter().flat_map(|g| g.params.iter()), &params)?;
        self.groups.push(Group::new(params, cfg));
        Ok(())
    }
}

impl Optimizer for Sgd {
    fn step(&mut self) -> Result<()> {
        for group in &self.groups {
            let c = group.current();
            for (name, p) in &group.params {
                if !p.requires_grad() {
                    continue;
                }
                let Some(g) = p.grad() else { continue };
                let st =
                    self.state.entry(name.clone()).or_insert_with(|| ParamState { step: 0, bufs: [None, None, None] });
                let mut flags = 0;
                if c.momentum != 0.0 {
                    flags |= f::MOMENTUM;
                    if st.bufs[0].is_none() {
                        flags |= f::FIRST_STEP;
                        st.bufs[0] = Some(StateBuf::zeros(p)?);
                    }
                }
                if c.nesterov {
                    flags |= f::NESTEROV;
                }
                let u = OptimParams {
                    flags,
                    lr: c.lr,
                    wd: c.weight_decay,
                    momentum: c.momentum,
                    dampening: c.dampening,
                    ..Default::default()
                };
                fused::apply(OptimKernel::Sgd, p, &g, st, u)?;
                st.step += 1;
            }
        }
        Ok(())
    }

    crate::groups::group_methods!();

    fn state_dict(&self) -> Result<StateDict> {
        let mut sd = save_all(&self.groups, &self.state, SGD_BUFS)?;
        save_groups(&mut sd, "SGD", &self.groups)?;
        Ok(sd)
    }

    fn load_state_dict(&mut self, sd: &StateDict) -> Result<()> {
        let cfgs: Vec<SgdConfig> = load_groups(sd, "SGD", &self.groups)?;
        for c in &cfgs {
            c.check()?;
        }
        let state = load_all(sd, &self.groups, SGD_BUFS)?;
        for (g, c) in self.groups.iter_mut().zip(cfgs) {
            g.replace(c);
        }
        self.state = state;
        Ok(())
    }
}

impl HasLr for SgdConfig {
    fn lr(&self) -> f32 {
        self.lr
    }
    fn with_lr(self, lr: f32) -> Self {
        SgdConfig { lr, ..self }
    }
}
