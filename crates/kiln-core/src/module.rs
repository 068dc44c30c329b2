//! The `Module` trait: a struct's parameters, buffers and child modules, visited by name.
//!
//! One required method, [`Module::visit`], reports a module's direct members (written by
//! `#[derive(Module)]`, or by hand). Everything else — dotted-name traversal, `to(device)`,
//! freezing, counting, `state_dict`/`load_state_dict`, train/eval — is derived from the visit.
//! Traversal order is PyTorch's: a module's own parameters, then its own buffers, then each
//! child in order, recursively, so names and orders match PyTorch's `state_dict()`.

use std::collections::HashSet;

use crate::device::Device;
use crate::error::{Error, Result};
use crate::param::{Buffer, Parameter, TrainMode};
use crate::state::StateDict;

/// One member of a module, as reported by [`Module::visit`].
pub enum Entry<'a> {
    /// A trainable parameter.
    Param(&'a Parameter),
    /// A buffer.
    Buffer(&'a Buffer),
    /// A child module.
    Module(&'a dyn Module),
    /// The module's training flag.
    Mode(&'a TrainMode),
}

/// Parameter counts of a model (each shared parameter counted once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ParamCount {
    /// All parameters' elements.
    pub total: usize,
    /// Elements of parameters that require grad.
    pub trainable: usize,
    /// Elements of frozen parameters.
    pub non_trainable: usize,
}

/// What `load_state_dict` did not match (with `strict = false`; with `strict = true` either
/// list being non-empty is an error).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoadReport {
    /// Model keys absent from the state_dict (left unchanged).
    pub missing_keys: Vec<String>,
    /// State_dict keys the model does not have (ignored).
    pub unexpected_keys: Vec<String>,
}

/// A visitor callback: receives each member's name (relative to the visited module) and entry.
pub type VisitFn<'f, 'a> = dyn FnMut(&str, Entry<'a>) + 'f;

/// A field type that `#[derive(Module)]` can visit: `Parameter`, `Buffer`, `TrainMode`, any
/// `Module`, and `Option`/`Vec` of those (a `Vec` field named `layers` yields `layers.0`, ...).
pub trait VisitField {
    /// Reports this field under `name`.
    fn visit_field<'a>(&'a self, name: &str, f: &mut VisitFn<'_, 'a>);
}

impl VisitField for Parameter {
    fn visit_field<'a>(&'a self, name: &str, f: &mut VisitFn<'_, 'a>) {
        f(name, Entry::Param(self))
    }
}

impl VisitField for Buffer {
    fn visit_field<'a>(&'a self, name: &str, f: &mut VisitFn<'_, 'a>) {
        f(name, Entry::Buffer(self))
    }
}

impl VisitField for TrainMode {
    fn visit_field<'a>(&'a self, name: &str, f: &mut VisitFn<'_, 'a>) {
        f(name, Entry::Mode(self))
    }
}

impl<T: VisitField> VisitField for Option<T> {
    fn visit_field<'a>(&'a self, name: &str, f: &mut VisitFn<'_, 'a>) {
        if let Some(v) = self {
            v.visit_field(name, f)
        }
    }
}

impl<T: VisitField> VisitField for Vec<T> {
    fn visit_field<'a>(&'a self, name: &str, f: &mut VisitFn<'_, 'a>) {
        for (i, v) in self.iter().enumerate() {
            v.visit_field(&format!("{name}.{i}"), f)
        }
    }
}

impl<M: Module> VisitField for M {
    fn visit_field<'a>(&'a self, name: &str, f: &mut VisitFn<'_, 'a>) {
        f(name, Entry::Module(self))
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") }
}

/// Walks `m` in PyTorch's order, calling `f` with full dotted names. Modules are reported
/// (before their members) too, the root as "". A pruned parameter is reported as
/// `<name>_orig` after the module's other parameters, and its mask, as `<name>_mask`, to
/// `masks` after the module's buffers (PyTorch's names and order while pruned).
fn walk_masks<'a>(
    m: &'a dyn Module,
    prefix: &str,
    f: &mut dyn FnMut(&str, Entry<'a>),
    masks: &mut dyn FnMut(&str, Buffer),
) {
    let mut params = Vec::new();
    let mut pruned = Vec::new();
    let mut buffers = Vec::new();
    let mut children = Vec::new();
    let mut modes = Vec::new();
    m.visit(&mut |name, e| match e {
        Entry::Param(p) if p.prune_mask().is_some() => pruned.push((name.to_string(), p)),
        Entry::Param(p) => params.push((name.to_string(), p)),
        Entry::Buffer(b) => buffers.push((name.to_string(), b)),
        Entry::Module(c) => children.push((name.to_string(), c)),
        Entry::Mode(t) => modes.push((name.to_string(), t)),
    });
    for (n, t) in modes {
        f(&join(prefix, &n), Entry::Mode(t));
    }
    for (n, p) in &params {
        f(&join(prefix, n), Entry::Param(p));
    }
    for (n, p) in &pruned {
        f(&join(prefix, &format!("{n}_orig")), Entry::Param(p));
    }
    for (n, b) in buffers {
        f(&join(prefix, &n), Entry::Buffer(b));
    }
    for (n, p) in &pruned {
        if let Some(mask) = p.prune_mask() {
            masks(&join(prefix, &format!("{n}_mask")), mask);
        }
    }
    for (n, c) in children {
        let full = join(prefix, &n);
        f(&full, Entry::Module(c));
        walk_masks(c, &full, f, masks);
    }
}

/// [`walk_masks`] without the masks.
fn walk<'a>(m: &'a dyn Module, prefix: &str, f: &mut dyn FnMut(&str, Entry<'a>)) {
    walk_masks(m, prefix, f, &mut |_, _| {})
}

/// A module's parameters and buffers by name, in PyTorch's state_dict order, masks included.
enum Member {
    P(Parameter),
    B(Buffer),
    Mask(Buffer),
}

fn members(m: &dyn Module) -> Vec<(String, Member)> {
    let out = std::cell::RefCell::new(Vec::new());
    walk_masks(
        m,
        "",
        &mut |n, e| match e {
            Entry::Param(p) => out.borrow_mut().push((n.to_string(), Member::P(p.clone()))),
            Entry::Buffer(b) => out.borrow_mut().push((n.to_string(), Member::B(b.clone()))),
            _ => {}
        },
        &mut |n, b| out.borrow_mut().push((n.to_string(), Member::Mask(b))),
    );
    out.into_inner()
}

/// A neural-network module: PyTorch's `nn.Module` model over kiln's handles.
pub trait Module {
    /// Reports each direct member (parameter, buffer, child module, training flag) with its
    /// name. `#[derive(Module)]` writes this from the struct's fields.
    fn visit<'a>(&'a self, f: &mut VisitFn<'_, 'a>);

    /// Every parameter with its dotted name; a parameter shared by two fields appears once,
    /// under its first name.
    fn named_parameters(&self) -> Vec<(String, Parameter)> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        walk(self.as_dyn(), "", &mut |n, e| {
            if let Entry::Param(p) = e {
                if seen.insert(p.id()) {
                    out.push((n.to_string(), p.clone()));
                }
            }
        });
        out
    }

    /// Every parameter (shared ones once).
    fn parameters(&self) -> Vec<Parameter> {
        self.named_parameters().into_iter().map(|(_, p)| p).collect()
    }

    /// Every buffer with its dotted name (persistent or not, pruning masks included; shared
    /// ones once).
    fn named_buffers(&self) -> Vec<(String, Buffer)> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (n, m) in members(self.as_dyn()) {
            if let Member::B(b) | Member::Mask(b) = m {
                if seen.insert(b.id()) {
                    out.push((n, b));
                }
            }
        }
        out
    }

    /// Every buffer.
    fn buffers(&self) -> Vec<Buffer> {
        self.named_buffers().into_iter().map(|(_, b)| b).collect()
    }

    /// Calls `f` on this module ("") and every descendant, with dotted names, parents first.
    fn apply(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        f("", self.as_dyn());
        walk(self.as_dyn(), "", &mut |n, e| {
            if let Entry::Module(m) = e {
                f(n, m)
            }
        });
    }

    /// This module ("") and every descendant module with its dotted name, parents first.
    fn named_modules(&self) -> Vec<(String, &dyn Module)> {
        let mut out: Vec<(String, &dyn Module)> = vec![(String::new(), self.as_dyn())];
        walk(self.as_dyn(), "", &mut |n, e| {
            if let Entry::Module(m) = e {
                out.push((n.to_string(), m))
            }
        });
        out
    }

    /// The direct child modules with their names.
    fn children(&self) -> Vec<(String, &dyn Module)> {
        let mut out: Vec<(String, &dyn Module)> = Vec::new();
        self.visit(&mut |n, e| {
            if let Entry::Module(m) = e {
                out.push((n.to_string(), m))
            }
        });
        out
    }

    /// Moves every parameter (value and gradient) and every buffer, persistent or not, to
    /// `dev`, in place: every handle sees the new device. All copies are made first; if one
    /// fails, nothing is changed and the model stays usable where it was.
    fn to(&self, dev: &Device) -> Result<()> {
        let params = self.parameters();
        let buffers = self.buffers();
        let moved_p = params.iter().map(|p| p.prepare_move(dev)).collect::<Result<Vec<_>>>()?;
        let moved_b = buffers.iter().map(|b| b.tensor().to(dev)).collect::<Result<Vec<_>>>()?;
        for (p, m) in params.iter().zip(moved_p) {
            p.commit_move(m);
        }
        for (b, t) in buffers.iter().zip(moved_b) {
            b.store(t);
        }
        Ok(())
    }

    /// Sets training mode on this module and every descendant.
    fn train(&self) {
        self.set_training(true)
    }

    /// Sets evaluation mode on this module and every descendant.
    fn eval(&self) {
        self.set_training(false)
    }

    /// Sets every training flag in the model.
    fn set_training(&self, training: bool) {
        walk(self.as_dyn(), "", &mut |_, e| {
            if let Entry::Mode(m) = e {
                m.set(training)
            }
        });
    }

    /// The first training flag in traversal order (this module's own, else a descendant's);
    /// `true` for a model without any.
    fn is_training(&self) -> bool {
        let mut found = None;
        walk(self.as_dyn(), "", &mut |_, e| {
            if let (Entry::Mode(m), None) = (e, found) {
                found = Some(m.get())
            }
        });
        found.unwrap_or(true)
    }

    /// Clears every parameter's gradient.
    fn zero_grad(&self) {
        for p in self.parameters() {
            p.zero_grad()
        }
    }

    /// Freezes (`false`) or unfreezes (`true`) every parameter.
    fn requires_grad_(&self, requires_grad: bool) {
        for p in self.parameters() {
            p.set_requires_grad(requires_grad)
        }
    }

    /// Freezes every parameter whose dotted name starts with `prefix` (e.g. "layer1."; "" is
    /// every parameter). Returns how many were frozen; a prefix that matches no parameter is an
    /// error naming the model's top-level names (a typo would otherwise freeze nothing).
    fn freeze(&self, prefix: &str) -> Result<usize> {
        self.set_requires_grad_matching("freeze", prefix, false)
    }

    /// Unfreezes every parameter whose dotted name starts with `prefix`; errors as
    /// [`Module::freeze`].
    fn unfreeze(&self, prefix: &str) -> Result<usize> {
        self.set_requires_grad_matching("unfreeze", prefix, true)
    }

    /// `freeze`/`unfreeze`: the count, or an error when `prefix` matches nothing.
    fn set_requires_grad_matching(&self, op: &'static str, prefix: &str, requires_grad: bool) -> Result<usize> {
        let n = self.set_requires_grad_where(&|n| n.starts_with(prefix), requires_grad);
        if n == 0 && !self.named_parameters().is_empty() {
            let mut tops: Vec<String> = Vec::new();
            for (name, _) in self.named_parameters() {
                let top = name.split('.').next().unwrap_or_default().to_string();
                if !tops.contains(&top) {
                    tops.push(top);
                }
            }
            let msg =
                format!("no parameter name starts with {prefix:?} (the model's top-level names: {})", tops.join(", "));
            return Err(Error::invalid(op, msg));
        }
        Ok(n)
    }

    /// The parameter with this dotted name (PyTorch's `get_parameter`), e.g. "features.0.weight".
    fn get_parameter(&self, name: &str) -> Option<Parameter> {
        let mut found = None;
        walk(self.as_dyn(), "", &mut |n, e| {
            if let (Entry::Param(p), None) = (e, &found)
                && n == name
            {
                found = Some(p.clone());
            }
        });
        found
    }

    /// The buffer with this dotted name (PyTorch's `get_buffer`), e.g. "bn.running_mean";
    /// pruning masks included.
    fn get_buffer(&self, name: &str) -> Option<Buffer> {
        self.named_buffers().into_iter().find(|(n, _)| n == name).map(|(_, b)| b)
    }

    /// The descendant module with this dotted name (PyTorch's `get_submodule`; "" is this
    /// module), as a trait object; [`Module::get_submodule_as`] for the concrete type.
    fn get_submodule(&self, name: &str) -> Option<&dyn Module> {
        self.named_modules().into_iter().find(|(n, _)| n == name).map(|(_, m)| m)
    }

    /// This module as `Any`, for typed access (`get_submodule_as`). `#[derive(Module)]` writes
    /// it; a hand-written module without it cannot be reached by type.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }

    /// Sets `requires_grad` on the parameters whose names satisfy `pred`; returns how many.
    fn set_requires_grad_where(&self, pred: &dyn Fn(&str) -> bool, requires_grad: bool) -> usize {
        let mut n = 0;
        for (name, p) in self.named_parameters() {
            if pred(&name) {
                p.set_requires_grad(requires_grad);
                n += 1;
            }
        }
        n
    }

    /// Parameters and persistent buffers by PyTorch name, in PyTorch's order. A shared
    /// parameter appears under every name that reaches it, as in PyTorch. The tensors are the
    /// live values (no copy).
    fn state_dict(&self) -> StateDict {
        let mut sd = StateDict::new();
        for (n, m) in members(self.as_dyn()) {
            match m {
                Member::P(p) => sd.insert(n, p.tensor().detach()),
                Member::B(b) | Member::Mask(b) if b.is_persistent() => sd.insert(n, b.tensor()),
                _ => {}
            }
        }
        sd
    }

    /// Loads values by name. Every key, shape and dtype is checked (and every value copied to
    /// its device) before anything changes: on any error the model is unchanged. With
    /// `strict`, missing or unexpected keys are an error listing all of them; without, they
    /// are returned. f16/bf16/f64 files arrive as f32 from `load_safetensors`.
    fn load_state_dict(&self, sd: &StateDict, strict: bool) -> Result<LoadReport> {
        enum Target {
            P(Parameter),
            B(Buffer),
        }
        let mut targets: Vec<(String, Target)> = Vec::new();
        let mut pruned = Vec::new();
        for (n, m) in members(self.as_dyn()) {
            match m {
                Member::P(p) => {
                    if p.prune_mask().is_some() {
                        pruned.push(p.clone());
                    }
                    targets.push((n, Target::P(p)))
                }
                Member::B(b) | Member::Mask(b) if b.is_persistent() => targets.push((n, Target::B(b))),
                _ => {}
            }
        }
        let names: HashSet<&str> = targets.iter().map(|(n, _)| n.as_str()).collect();
        let missing: Vec<String> =
            targets.iter().filter(|(n, _)| !sd.contains_key(n)).map(|(n, _)| n.clone()).collect();
        let unexpected: Vec<String> = sd.keys().into_iter().filter(|k| !names.contains(k.as_str())).collect();
        if strict && (!missing.is_empty() || !unexpected.is_empty()) {
            return Err(Error::Keys { missing, unexpected });
        }
        let mut staged = Vec::new();
        for (name, target) in &targets {
            let Some(t) = sd.get(name) else { continue };
            let (shape, dtype, dev) = match target {
                Target::P(p) => (p.shape(), p.dtype(), p.device()),
                Target::B(b) => (b.shape(), b.dtype(), b.device()),
            };
            if t.shape() != shape.as_slice() {
                return Err(Error::KeyShape {
                    op: "load_state_dict",
                    key: name.clone(),
                    expected: shape,
                    got: t.shape().to_vec(),
                });
            }
            if t.dtype() != dtype {
                return Err(Error::KeyDType {
                    op: "load_state_dict",
                    key: name.clone(),
                    expected: dtype,
                    got: t.dtype().to_string(),
                });
            }
            staged.push(t.to(&dev)?.detach());
        }
        let mut staged = staged.into_iter();
        for (name, target) in &targets {
            if !sd.contains_key(name) {
                continue;
            }
            let t = staged.next().expect("one staged value per present key");
            match target {
                Target::P(p) => p.store(t),
                Target::B(b) => b.store(t),
            }
        }
        // A pruned weight is weight_orig * weight_mask, as PyTorch computes it.
        for p in pruned {
            p.apply_mask()?;
        }
        Ok(LoadReport { missing_keys: missing, unexpected_keys: unexpected })
    }

    /// Total, trainable and frozen parameter elements (shared parameters once).
    fn num_parameters(&self) -> ParamCount {
        let mut c = ParamCount::default();
        for p in self.parameters() {
            let n = p.numel();
            c.total += n;
            if p.requires_grad() {
                c.trainable += n;
            } else {
                c.non_trainable += n;
            }
        }
        c
    }

    /// The descendant module with this dotted name as its concrete type, e.g.
    /// `model.get_submodule_as::<nn::Linear>("features.0")`; `None` if there is no such module
    /// or it is of another type.
    fn get_submodule_as<T: 'static>(&self, name: &str) -> Option<&T>
    where
        Self: Sized,
    {
        self.get_submodule(name)?.as_any()?.downcast_ref::<T>()
    }

    /// This module as a trait object: `fn as_dyn(&self) -> &dyn Module { self }` (the derive
    /// writes it). The provided methods traverse through it.
    fn as_dyn(&self) -> &dyn Module;
}
