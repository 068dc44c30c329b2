//! Parameter groups and their hyperparameters in an optimizer's state_dict (JSON in the
//! metadata: the optimizer kind, and per group its hyperparameters and parameter names).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};

use kiln_core::{Error, Parameter, Result, StateDict};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A group of parameters with its own hyperparameters. The learning rate lives apart, in an
/// atomic, so that a scheduler holding only `&optimizer` can set it (PyTorch's schedulers set
/// the first epoch's rate when they are built).
pub(crate) struct Group<C> {
    pub(crate) params: Vec<(String, Parameter)>,
    pub(crate) cfg: C,
    lr: AtomicU32,
}

/// Hyperparameters with a learning rate.
pub(crate) trait HasLr: Copy {
    fn lr(&self) -> f32;
    fn with_lr(self, lr: f32) -> Self;
}

impl<C: HasLr> Group<C> {
    pub(crate) fn new(params: Vec<(String, Parameter)>, cfg: C) -> Group<C> {
        Group { params, cfg, lr: AtomicU32::new(cfg.lr().to_bits()) }
    }

    /// The current learning rate.
    pub(crate) fn lr(&self) -> f32 {
        f32::from_bits(self.lr.load(Ordering::Relaxed))
    }

    pub(crate) fn set_lr(&self, lr: f32) {
        self.lr.store(lr.to_bits(), Ordering::Relaxed)
    }

    /// The hyperparameters with the current learning rate.
    pub(crate) fn current(&self) -> C {
        self.cfg.with_lr(self.lr())
    }

    pub(crate) fn replace(&mut self, cfg: C) {
        self.cfg = cfg;
        self.set_lr(cfg.lr());
    }
}

/// Errors when a name is given twice (within the new group or with earlier groups).
pub(crate) fn check_unique<'a>(
    existing: impl Iterator<Item = &'a (String, Parameter)>,
    new: &[(String, Parameter)],
) -> Result<()> {
    let mut seen: HashSet<&str> = existing.map(|(n, _)| n.as_str()).collect();
    for (n, _) in new {
        if !seen.insert(n.as_str()) {
            return Err(Error::invalid("add_param_group", format!("parameter {n:?} is already in a group")));
        }
    }
    Ok(())
}

#[derive(Serialize, serde::Deserialize)]
struct SavedGroup<C> {
    #[serde(flatten)]
    cfg: C,
    params: Vec<String>,
}

/// Stores the kind and the groups in `sd`'s metadata.
pub(crate) fn save_groups<C: Serialize + HasLr>(sd: &mut StateDict, kind: &str, groups: &[Group<C>]) -> Result<()> {
    let saved: Vec<SavedGroup<C>> = groups
        .iter()
        .map(|g| SavedGroup { cfg: g.current(), params: g.params.iter().map(|(n, p)| saved_name(n, p)).collect() })
        .collect();
    let json = serde_json::to_string(&saved).map_err(|e| Error::invalid("optimizer state_dict", e.to_string()))?;
    sd.set_metadata("optimizer", kind);
    sd.set_metadata("optimizer.param_groups", json);
    Ok(())
}

/// Reads the groups' hyperparameters back, checking the kind and that every group holds the
/// same parameters as this optimizer's (by their current names, in any order).
pub(crate) fn load_groups<C: DeserializeOwned, D>(sd: &StateDict, kind: &str, groups: &[Group<D>]) -> Result<Vec<C>> {
    let op = "optimizer load_state_dict";
    match sd.metadata().get("optimizer") {
        Some(k) if k == kind => {}
        other => {
            return Err(Error::invalid(op, format!("the state is for optimizer {other:?}, this one is {kind:?}")));
        }
    }
    let json = sd
        .metadata()
        .get("optimizer.param_groups")
        .ok_or_else(|| Error::invalid(op, "no param_groups in the metadata"))?;
    let saved: Vec<SavedGroup<C>> =
        serde_json::from_str(json).map_err(|e| Error::invalid(op, format!("param_groups: {e}")))?;
    if saved.len() != groups.len() {
        return Err(Error::invalid(
            op,
            format!("{} parameter groups saved, this optimizer has {}", saved.len(), groups.len()),
        ));
    }
    let mut out = Vec::new();
    for (i, (s, g)) in saved.into_iter().zip(groups).enumerate() {
        // The same parameters, in any order (state is looked up by name; pruning moves a
        // renamed weight after its bias, as PyTorch lists it).
        let mine: Vec<String> = g.params.iter().map(|(n, p)| saved_name(n, p)).collect();
        let only_saved: Vec<&String> = s.params.iter().filter(|n| !mine.contains(n)).collect();
        let only_mine: Vec<&String> = mine.iter().filter(|n| !s.params.contains(n)).collect();
        if !only_saved.is_empty() || !only_mine.is_empty() {
            // Only what differs: a typical mismatch is one renamed or added layer among many.
            return Err(Error::invalid(
                op,
                format!(
                    "group {i}: parameters in the state but not in this optimizer: {only_saved:?}; \
                     in this optimizer but not in the state: {only_mine:?}"
                ),
            ));
        }
        out.push(s.cfg);
    }
    Ok(out)
}

/// The name a parameter's state is saved under: the model's current name for it. Pruning
/// renames a parameter `w` to `w_orig` (and adds the mask `w_mask`) while every holder keeps the
/// same handle, so a name the optimizer was given before the pruning gets the suffix while the
/// parameter carries a mask: a checkpoint then restores into a model pruned before or after its
/// optimizer was built alike.
pub(crate) fn saved_name(name: &str, p: &Parameter) -> String {
    if p.prune_mask().is_some() && !name.ends_with("_orig") { format!("{name}_orig") } else { name.to_string() }
}

/// The `Optimizer` methods that only touch the parameter groups (`self.groups`), written once
/// for every optimizer.
macro_rules! group_methods {
    () => {
        fn zero_grad(&mut self) {
            self.groups.iter().flat_map(|g| &g.params).for_each(|(_, p)| p.zero_grad());
        }

        fn lr(&self) -> f32 {
            self.groups.first().map(|g| g.lr()).unwrap_or(0.0)
        }

        fn set_lr(&mut self, lr: f32) {
            self.groups.iter().for_each(|g| g.set_lr(lr));
        }

        fn group_lrs(&self) -> Vec<f32> {
            self.groups.iter().map(|g| g.lr()).collect()
        }

        fn set_group_lr(&self, i: usize, lr: f32) {
            if let Some(g) = self.groups.get(i) {
                g.set_lr(lr);
            }
        }
    };
}
pub(crate) use group_methods;
