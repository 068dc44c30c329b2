//! `Parameter`, `Buffer` and `TrainMode`: shared handles with interior mutability, so that the
//! model's field, `parameters()`, an optimizer and user code all see one value (PyTorch's
//! references, not copies).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::{GradSlot, Tensor};

fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

struct ParamInner {
    id: u64,
    value: RwLock<Tensor>,
    slot: Arc<GradSlot>,
    requires_grad: AtomicBool,
    /// A pruning mask (0/1, same shape): while set, the value is kept multiplied by it and the
    /// parameter appears as `<name>_orig` with a buffer `<name>_mask`, as in PyTorch.
    mask: RwLock<Option<Buffer>>,
}

/// A trainable tensor: `requires_grad` by default, with a gradient slot, registered with a
/// module by being one of its fields. Clones are the same parameter (same storage, same grad).
#[derive(Clone)]
pub struct Parameter {
    inner: Arc<ParamInner>,
}

impl std::fmt::Debug for Parameter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.inner.value.read().unwrap();
        write!(f, "Parameter(shape={:?}, device={}, requires_grad={})", v.shape(), v.device(), self.requires_grad())
    }
}

impl Parameter {
    /// Wraps a value (detached from any graph) as a trainable parameter.
    pub fn new(t: Tensor) -> Parameter {
        Parameter {
            inner: Arc::new(ParamInner {
                id: next_id(),
                value: RwLock::new(t.detach()),
                slot: Arc::new(GradSlot::default()),
                requires_grad: AtomicBool::new(true),
                mask: RwLock::new(None),
            }),
        }
    }

    /// A stable identity: equal for clones of one parameter.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The value as a tensor for computing with. While the parameter requires grad, it is a
    /// leaf whose gradient accumulates into this parameter's `grad()`.
    pub fn tensor(&self) -> Tensor {
        let v = self.inner.value.read().unwrap();
        if self.requires_grad() { v.leaf_with_slot(self.inner.slot.clone()) } else { v.clone() }
    }

    /// The accumulated gradient.
    pub fn grad(&self) -> Option<Tensor> {
        self.inner.slot.get()
    }

    /// Replaces the gradient (optimizers and clipping use this).
    pub fn set_grad(&self, g: Option<Tensor>) {
        self.inner.slot.set(g.map(|t| t.detach()));
    }

    /// Clears the gradient.
    pub fn zero_grad(&self) {
        self.inner.slot.set(None);
    }

    /// Whether backward computes a gradient for this parameter.
    pub fn requires_grad(&self) -> bool {
        self.inner.requires_grad.load(Ordering::Relaxed)
    }

    /// Freezes (`false`) or unfreezes (`true`) the parameter.
    pub fn set_requires_grad(&self, requires_grad: bool) {
        self.inner.requires_grad.store(requires_grad, Ordering::Relaxed);
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.inner.value.read().unwrap().numel()
    }

    /// The shape.
    pub fn shape(&self) -> Vec<usize> {
        self.inner.value.read().unwrap().shape().to_vec()
    }

    /// The device the value lives on.
    pub fn device(&self) -> Device {
        self.inner.value.read().unwrap().device()
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.inner.value.read().unwrap().dtype()
    }

    /// Replaces the value, as an in-place update under `no_grad` would (the shape must match; a
    /// value on another device is copied to the parameter's device). Every handle sees it.
    pub fn set(&self, t: Tensor) -> Result<()> {
        replace_checked("Parameter::set", &self.inner.value, t)
    }

    /// The pruning mask, if the parameter is pruned.
    pub fn prune_mask(&self) -> Option<Buffer> {
        self.inner.mask.read().unwrap().clone()
    }

    /// Sets (or with `None` removes) the pruning mask. A mask must have the parameter's shape;
    /// the value is multiplied by it at once. Removing keeps the value as it is (pruning made
    /// permanent, like PyTorch's `prune.remove`).
    pub fn set_prune_mask(&self, mask: Option<Buffer>) -> Result<()> {
        if let Some(m) = &mask {
            if m.shape() != self.shape() || m.dtype() != DType::F32 {
                return Err(Error::ShapeMismatch { op: "set_prune_mask", lhs: self.shape(), rhs: m.shape() });
            }
        }
        *self.inner.mask.write().unwrap() = mask;
        self.apply_mask()
    }

    /// Multiplies the value by the pruning mask (a no-op when not pruned). Optimizers call it
    /// after each update so that pruned weights stay zero.
    pub fn apply_mask(&self) -> Result<()> {
        let Some(m) = self.prune_mask() else { return Ok(()) };
        let v = self.inner.value.read().unwrap().clone();
        let masked = crate::no_grad(|| v.mul(&m.tensor().to(v.dev())?))?;
        self.store(masked);
        Ok(())
    }

    /// The value and gradient copied to `dev`, not yet committed (see [`Parameter::commit_move`]).
    pub(crate) fn prepare_move(&self, dev: &Device) -> Result<(Tensor, Option<Tensor>)> {
        let v = self.inner.value.read().unwrap().to(dev)?.detach();
        let g = match self.grad() {
            Some(g) => Some(g.to(dev)?.detach()),
            None => None,
        };
        Ok((v, g))
    }

    pub(crate) fn commit_move(&self, moved: (Tensor, Option<Tensor>)) {
        *self.inner.value.write().unwrap() = moved.0;
        self.inner.slot.set(moved.1);
    }

    /// Moves the value and the gradient to `dev`.
    pub fn to(&self, dev: &Device) -> Result<()> {
        let m = self.prepare_move(dev)?;
        self.commit_move(m);
        Ok(())
    }

    /// Sets the value without checks (callers have checked shape and dtype).
    pub(crate) fn store(&self, t: Tensor) {
        *self.inner.value.write().unwrap() = t.detach();
    }
}

/// Checks a replacement value against the current one: same shape and dtype; moved to the
/// current device.
fn checked_value(op: &'static str, cur: &Tensor, t: Tensor) -> Result<Tensor> {
    if t.shape() != cur.shape() {
        return Err(Error::ShapeMismatch { op, lhs: cur.shape().to_vec(), rhs: t.shape().to_vec() });
    }
    if t.dtype() != cur.dtype() {
        return Err(Error::DType { op, expected: cur.dtype(), got: t.dtype(), shape: t.shape().to_vec() });
    }
    Ok(t.to(cur.dev())?.detach())
}

/// Replaces the value in `slot` after [`checked_value`] (the one body of `Parameter::set` and
/// `Buffer::set`).
fn replace_checked(op: &'static str, slot: &RwLock<Tensor>, t: Tensor) -> Result<()> {
    let t = checked_value(op, &slot.read().unwrap(), t)?;
    *slot.write().unwrap() = t;
    Ok(())
}

struct BufferInner {
    id: u64,
    value: RwLock<Tensor>,
    persistent: bool,
}

/// Module state that moves and saves with the module but is never trained (running
/// statistics, counters, masks). Non-persistent buffers move but are not saved.
#[derive(Clone)]
pub struct Buffer {
    inner: Arc<BufferInner>,
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.inner.value.read().unwrap();
        write!(f, "Buffer(shape={:?}, dtype={}, persistent={})", v.shape(), v.dtype(), self.inner.persistent)
    }
}

impl Buffer {
    fn make(t: Tensor, persistent: bool) -> Buffer {
        Buffer { inner: Arc::new(BufferInner { id: next_id(), value: RwLock::new(t.detach()), persistent }) }
    }

    /// A persistent buffer (saved in the state_dict).
    pub fn new(t: Tensor) -> Buffer {
        Buffer::make(t, true)
    }

    /// A buffer that moves with the module but is not saved.
    pub fn non_persistent(t: Tensor) -> Buffer {
        Buffer::make(t, false)
    }

    /// A stable identity: equal for clones.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Whether the buffer is saved in the state_dict.
    pub fn is_persistent(&self) -> bool {
        self.inner.persistent
    }

    /// The current value.
    pub fn tensor(&self) -> Tensor {
        self.inner.value.read().unwrap().clone()
    }

    /// Replaces the value (same shape and dtype; moved to the buffer's device).
    pub fn set(&self, t: Tensor) -> Result<()> {
        replace_checked("Buffer::set", &self.inner.value, t)
    }

    /// The shape.
    pub fn shape(&self) -> Vec<usize> {
        self.inner.value.read().unwrap().shape().to_vec()
    }

    /// The device.
    pub fn device(&self) -> Device {
        self.inner.value.read().unwrap().device()
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.inner.value.read().unwrap().dtype()
    }

    /// Moves the value to `dev`.
    pub fn to(&self, dev: &Device) -> Result<()> {
        let v = self.tensor().to(dev)?;
        self.store(v);
        Ok(())
    }

    pub(crate) fn store(&self, t: Tensor) {
        *self.inner.value.write().unwrap() = t.detach();
    }
}

/// A module's training flag (PyTorch's `module.training`), shared by clones. Layers whose
/// behaviour differs between training and evaluation hold one; `train()`/`eval()` set every
/// flag in a model.
#[derive(Clone, Debug)]
pub struct TrainMode(Arc<AtomicBool>);

impl Default for TrainMode {
    fn default() -> Self {
        TrainMode(Arc::new(AtomicBool::new(true)))
    }
}

impl TrainMode {
    /// A new flag, in training mode.
    pub fn new() -> TrainMode {
        TrainMode::default()
    }

    /// True in training mode.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Sets the mode.
    pub fn set(&self, training: bool) {
        self.0.store(training, Ordering::Relaxed)
    }
}
