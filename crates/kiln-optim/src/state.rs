//! Optimizer state buffers: owned by one optimizer, updated in place by the fused kernels (on
//! the GPU) or by the host loop (on the CPU). Copies go out through `state_dict`.

use crate::groups::saved_name;
use kiln_core::kiln_device::{GpuBuffer, kernels};
use kiln_core::{DType, Device, Error, Parameter, RawStorage, Result, StateDict, Tensor};

/// One state tensor (momentum buffer, exp_avg, ...).
pub(crate) enum StateBuf {
    Cpu(Vec<f32>),
    Gpu(GpuBuffer, Device),
}

impl StateBuf {
    /// Zeros shaped like `p`, on its device.
    pub(crate) fn zeros(p: &Parameter) -> Result<StateBuf> {
        let n = p.numel();
        Ok(match p.device() {
            Device::Cpu => StateBuf::Cpu(vec![0.0; n]),
            Device::Gpu(g) => StateBuf::Gpu(kernels::fill(&g, 0.0, n)?, Device::Gpu(g.clone())),
        })
    }

    pub(crate) fn device(&self) -> Device {
        match self {
            StateBuf::Cpu(_) => Device::Cpu,
            StateBuf::Gpu(_, d) => d.clone(),
        }
    }

    /// A copy as a tensor of `shape`.
    pub(crate) fn to_tensor(&self, shape: &[usize]) -> Result<Tensor> {
        match self {
            StateBuf::Cpu(v) => Tensor::from_vec(v.clone(), shape, &Device::Cpu),
            StateBuf::Gpu(b, dev) => {
                let g = dev.as_gpu().expect("gpu state");
                let n: usize = shape.iter().product();
                let out = g.alloc((n * 4) as u64, "optimizer state")?;
                g.copy(b, &out, (n * 4) as u64)?;
                Tensor::from_gpu_buffer(out, shape, dev)
            }
        }
    }

    /// An owned copy of `t` on `dev`.
    pub(crate) fn from_tensor(t: &Tensor, dev: &Device) -> Result<StateBuf> {
        let t = t.to(dev)?;
        Ok(match (t.raw_storage(), dev) {
            (RawStorage::CpuF32(v), _) => StateBuf::Cpu(v.to_vec()),
            (RawStorage::Gpu(b), Device::Gpu(g)) => {
                let bytes = (t.numel() * 4) as u64;
                let out = g.alloc(bytes, "optimizer state")?;
                g.copy(b, &out, bytes)?;
                StateBuf::Gpu(out, dev.clone())
            }
            _ => return Err(Error::invalid("load_state_dict", "optimizer state must be f32")),
        })
    }

    /// Moves the buffer to `dev` if it is elsewhere (after `model.to(dev)`).
    pub(crate) fn ensure_on(&mut self, dev: &Device, shape: &[usize]) -> Result<()> {
        if &self.device() != dev {
            let t = self.to_tensor(shape)?;
            *self = StateBuf::from_tensor(&t, dev)?;
        }
        Ok(())
    }
}

/// The state of one parameter: its step count and up to three buffers.
pub(crate) struct ParamState {
    pub(crate) step: u64,
    pub(crate) bufs: [Option<StateBuf>; 3],
}

/// Writes a parameter's state into `sd` as `state.{name}.{buf}` and `state.{name}.step`
/// (a float 0-d tensor, as PyTorch stores Adam's step).
pub(crate) fn save_state(
    sd: &mut StateDict,
    name: &str,
    st: &ParamState,
    names: [&str; 3],
    shape: &[usize],
) -> Result<()> {
    sd.insert(format!("state.{name}.step"), Tensor::scalar(st.step as f32, &Device::Cpu)?);
    for (b, bn) in st.bufs.iter().zip(names) {
        if let Some(b) = b {
            sd.insert(format!("state.{name}.{bn}"), b.to_tensor(shape)?);
        }
    }
    Ok(())
}

/// Reads a parameter's state saved by [`save_state`], checking shapes; `None` when the state
/// dict has no entry for the parameter.
pub(crate) fn load_state(sd: &StateDict, name: &str, p: &Parameter, names: [&str; 3]) -> Result<Option<ParamState>> {
    let Some(step) = sd.get(&format!("state.{name}.step")) else { return Ok(None) };
    if step.numel() != 1 || step.dtype() != DType::F32 {
        return Err(Error::invalid("load_state_dict", format!("state.{name}.step must be one f32 value")));
    }
    let step = step.item()?;
    if !(step >= 0.0 && step.fract() == 0.0) {
        return Err(Error::invalid("load_state_dict", format!("state.{name}.step = {step} is not a step count")));
    }
    let mut bufs: [Option<StateBuf>; 3] = [None, None, None];
    for (slot, bn) in bufs.iter_mut().zip(names) {
        if bn.is_empty() {
            continue;
        }
        if let Some(t) = sd.get(&format!("state.{name}.{bn}")) {
            if t.shape() != p.shape().as_slice() {
                return Err(Error::KeyShape {
                    op: "optimizer load_state_dict",
                    key: format!("state.{name}.{bn}"),
                    expected: p.shape(),
                    got: t.shape().to_vec(),
                });
            }
            *slot = Some(StateBuf::from_tensor(t, &p.device())?);
        }
    }
    Ok(Some(ParamState { step: step as u64, bufs }))
}

/// Checks that every `state.{name}.` key of `sd` names one of `known` parameters.
pub(crate) fn check_names(sd: &StateDict, known: &[String]) -> Result<()> {
    for k in sd.keys() {
        let Some(rest) = k.strip_prefix("state.") else { continue };
        if !known.iter().any(|n| rest.strip_prefix(n.as_str()).is_some_and(|r| r.starts_with('.'))) {
            return Err(Error::Keys { missing: Vec::new(), unexpected: vec![k] });
        }
    }
    Ok(())
}

/// The state of every parameter of `groups` into a state_dict (names in group order).
pub(crate) fn save_all<C>(
    groups: &[crate::groups::Group<C>],
    state: &std::collections::HashMap<String, ParamState>,
    names: [&str; 3],
) -> Result<StateDict> {
    let mut sd = StateDict::new();
    for g in groups {
        for (name, p) in &g.params {
            if let Some(st) = state.get(name) {
                save_state(&mut sd, &saved_name(name, p), st, names, &p.shape())?;
            }
        }
    }
    Ok(sd)
}

/// Every parameter's state from `sd` (checking that no entry names an unknown parameter).
pub(crate) fn load_all<C>(
    sd: &StateDict,
    groups: &[crate::groups::Group<C>],
    names: [&str; 3],
) -> Result<std::collections::HashMap<String, ParamState>> {
    let known: Vec<String> = groups.iter().flat_map(|g| g.params.iter().map(|(n, p)| saved_name(n, p))).collect();
    check_names(sd, &known)?;
    let mut state = std::collections::HashMap::new();
    for (name, p) in groups.iter().flat_map(|g| g.params.iter()) {
        // Saved under the parameter's current name, kept under the one the optimizer was given.
        if let Some(st) = load_state(sd, &saved_name(name, p), p, names)? {
            state.insert(name.clone(), st);
        }
    }
    Ok(state)
}
