//! Pruning (`torch.nn.utils.prune`): zero the smallest weights and keep them zero.
//!
//! A pruned parameter keeps a 0/1 mask as a buffer. While pruned it appears under PyTorch's
//! names — `<name>_orig` for the parameter and `<name>_mask` for the mask — so the state_dict
//! loads into a PyTorch model pruned the same way; its value is kept multiplied by the mask
//! (optimizers re-apply the mask after each step). [`remove`] makes the pruning permanent and
//! restores the plain name. Pruning an already pruned parameter prunes among the remaining
//! weights, as PyTorch's pruning container does.

use kiln_core::{Buffer, Error, Module, Parameter, Result, Tensor, stats::tensor_stats};

/// How much to prune.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    /// A fraction (0..=1) of the weights not pruned yet, rounded as PyTorch does.
    Fraction(f64),
    /// A number of weights.
    Count(usize),
}

impl Amount {
    fn resolve(self, op: &'static str, available: usize) -> Result<usize> {
        match self {
            Amount::Fraction(f) if (0.0..=1.0).contains(&f) => Ok((f * available as f64).round() as usize),
            Amount::Fraction(f) => Err(Error::invalid(op, format!("a fraction must lie in [0, 1], got {f}"))),
            Amount::Count(n) if n <= available => Ok(n),
            Amount::Count(n) => Err(Error::invalid(op, format!("cannot prune {n} of {available} remaining weights"))),
        }
    }
}

/// The parameter called `name` in `module` (its plain name, or `<name>_orig` while pruned).
pub fn find(module: &dyn Module, name: &str) -> Result<Parameter> {
    let plain = name.strip_suffix("_orig").unwrap_or(name);
    module
        .named_parameters()
        .into_iter()
        .find(|(n, p)| n == name || (p.prune_mask().is_some() && n.strip_suffix("_orig") == Some(plain)))
        .map(|(_, p)| p)
        .ok_or_else(|| Error::invalid("prune", format!("no parameter named {name:?}")))
}

/// The current mask of `p` on the host (all ones when unpruned).
fn host_mask(p: &Parameter) -> Result<Vec<f32>> {
    match p.prune_mask() {
        Some(m) => m.tensor().to_vec(),
        None => Ok(vec![1.0; p.numel()]),
    }
}

fn set_host_mask(p: &Parameter, mask: Vec<f32>) -> Result<()> {
    let t = Tensor::from_vec(mask, &p.shape(), &p.device())?;
    match p.prune_mask() {
        Some(b) => {
            b.set(t)?;
            p.apply_mask()
        }
        None => p.set_prune_mask(Some(Buffer::new(t))),
    }
}

/// Masks that zero the `k` smallest-magnitude weights among those still unpruned, across all
/// `params` (ties broken by position).
fn prune_smallest(op: &'static str, params: &[Parameter], amount: Amount) -> Result<()> {
    let mut masks = Vec::new();
    let mut cands: Vec<(f32, usize, usize)> = Vec::new();
    for (pi, p) in params.iter().enumerate() {
        let v = p.tensor().to_vec()?;
        let m = host_mask(p)?;
        for (i, (&w, &keep)) in v.iter().zip(&m).enumerate() {
            if keep != 0.0 {
                cands.push((w.abs(), pi, i));
            }
        }
        masks.push(m);
    }
    let k = amount.resolve(op, cands.len())?;
    cands.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    for &(_, pi, i) in &cands[..k] {
        masks[pi][i] = 0.0;
    }
    for (p, m) in params.iter().zip(masks) {
        set_host_mask(p, m)?;
    }
    Ok(())
}

/// Prunes the `amount` smallest-magnitude weights of parameter `name` of `module`
/// (PyTorch's `prune.l1_unstructured`).
pub fn l1_unstructured(module: &dyn Module, name: &str, amount: Amount) -> Result<()> {
    prune_smallest("l1_unstructured", &[find(module, name)?], amount)
}

/// Prunes the `amount` smallest-magnitude weights across all `params` together
/// (PyTorch's `prune.global_unstructured` with L1).
pub fn global_unstructured(params: &[Parameter], amount: Amount) -> Result<()> {
    prune_smallest("global_unstructured", params, amount)
}

/// Prunes every weight of parameter `name` whose magnitude is below `threshold`.
pub fn threshold(module: &dyn Module, name: &str, threshold: f32) -> Result<()> {
    let p = find(module, name)?;
    let v = p.tensor().to_vec()?;
    let mut m = host_mask(&p)?;
    for (mi, w) in m.iter_mut().zip(&v) {
        if w.abs() < threshold {
            *mi = 0.0;
        }
    }
    set_host_mask(&p, m)
}

/// Makes the pruning of `name` permanent: drops the mask (the zeros stay) and restores the
/// plain name (PyTorch's `prune.remove`).
pub fn remove(module: &dyn Module, name: &str) -> Result<()> {
    let p = find(module, name)?;
    if p.prune_mask().is_none() {
        return Err(Error::invalid("prune::remove", format!("parameter {name:?} is not pruned")));
    }
    p.set_prune_mask(None)
}

/// Zeros per parameter and overall.
#[derive(Debug, Clone, PartialEq)]
pub struct Sparsity {
    /// (name, zeros, elements) per parameter.
    pub per_parameter: Vec<(String, usize, usize)>,
    /// Zeros over all parameters.
    pub zeros: usize,
    /// Elements over all parameters.
    pub total: usize,
}

impl Sparsity {
    /// The overall fraction of zeros.
    pub fn fraction(&self) -> f64 {
        if self.total == 0 { 0.0 } else { self.zeros as f64 / self.total as f64 }
    }
}

impl std::fmt::Display for Sparsity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (n, z, t) in &self.per_parameter {
            writeln!(f, "{n}: {z}/{t} zero ({:.2}%)", 100.0 * *z as f64 / (*t).max(1) as f64)?;
        }
        writeln!(f, "global: {}/{} zero ({:.2}%)", self.zeros, self.total, 100.0 * self.fraction())
    }
}

/// How sparse the model's parameters are (counted on the device, one read-back).
pub fn sparsity(model: &dyn Module) -> Result<Sparsity> {
    let named = model.named_parameters();
    let stats = tensor_stats(&named.iter().map(|(_, p)| p.tensor().detach()).collect::<Vec<_>>())?;
    let per: Vec<(String, usize, usize)> = named
        .iter()
        .zip(&stats)
        .map(|((n, _), s)| (n.clone(), (s.zero_fraction * s.numel as f64).round() as usize, s.numel))
        .collect();
    Ok(Sparsity { zeros: per.iter().map(|x| x.1).sum(), total: per.iter().map(|x| x.2).sum(), per_parameter: per })
}
