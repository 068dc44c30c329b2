//! `Tensor`: a cheap handle (`Arc`) to immutable storage plus shape, dtype and device, and,
//! when it was produced by an op that needs gradients, the autograd node that made it.

use std::sync::{Arc, Mutex, OnceLock};

use crate::autograd::{Op, is_grad_enabled};
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::rng;
use crate::shape::checked_numel;
use crate::storage::{CpuData, Storage};

/// The gradient slot of a leaf: where `backward()` accumulates. Shared between every handle of
/// the same leaf (and, later, with the Parameter that owns it).
#[derive(Default)]
pub struct GradSlot {
    grad: Mutex<Option<Tensor>>,
}

impl GradSlot {
    /// The accumulated gradient.
    pub fn get(&self) -> Option<Tensor> {
        self.grad.lock().unwrap().clone()
    }

    /// Replaces the gradient.
    pub fn set(&self, g: Option<Tensor>) {
        *self.grad.lock().unwrap() = g;
    }

    /// Adds `g` to the gradient (`+=`, as every autograd engine does).
    pub(crate) fn accumulate(&self, g: Tensor) -> Result<()> {
        let mut slot = self.grad.lock().unwrap();
        let new = match slot.take() {
            None => g,
            Some(old) => old.add(&g)?,
        };
        *slot = Some(new);
        Ok(())
    }
}

pub(crate) struct TensorInner {
    pub(crate) storage: Storage,
    pub(crate) shape: Vec<usize>,
    pub(crate) dtype: DType,
    pub(crate) device: Device,
    pub(crate) requires_grad: bool,
    /// The op that produced this tensor, kept only when it needs gradients.
    pub(crate) grad_fn: Option<Box<Op>>,
    /// For leaves that require grad: where the gradient lands.
    pub(crate) grad_slot: Option<Arc<GradSlot>>,
    /// For U32 tensors made from host data: the largest value + 1 (every value is below it).
    /// Lets label checks run on the GPU with no read-back.
    pub(crate) index_bound: OnceLock<u32>,
}

impl Drop for TensorInner {
    // Dropping a long chain of nodes recursively could overflow the stack (a 100k-op graph);
    // unlink it iteratively instead.
    fn drop(&mut self) {
        let Some(op) = self.grad_fn.take() else {
            return;
        };
        let mut stack: Vec<Tensor> = op.into_inputs();
        while let Some(t) = stack.pop() {
            if let Ok(mut inner) = Arc::try_unwrap(t.inner) {
                if let Some(op) = inner.grad_fn.take() {
                    stack.extend(op.into_inputs());
                }
            }
        }
    }
}

/// An n-dimensional array on a [`Device`], with reverse-mode autograd.
///
/// Cloning is cheap and shares the storage: tensors are immutable, every op returns a new one.
#[derive(Clone)]
pub struct Tensor {
    pub(crate) inner: Arc<TensorInner>,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tensor(shape={:?}, dtype={}, device={}{})",
            self.shape(),
            self.dtype(),
            self.device(),
            if self.requires_grad() { ", requires_grad" } else { "" }
        )
    }
}

/// Direct access to a tensor's elements, for extension crates that launch their own fused
/// kernels (the optimizers do). The storage must not be written through this view: tensors are
/// immutable.
pub enum RawStorage<'a> {
    /// f32 elements in host memory.
    CpuF32(&'a [f32]),
    /// A GPU buffer (of the tensor's dtype, row-major).
    Gpu(&'a kiln_device::GpuBuffer),
    /// Host storage of another dtype.
    CpuOther,
}

/// Checks that `len` values fill `shape` exactly.
fn check_len(op: &'static str, len: usize, shape: &[usize]) -> Result<()> {
    let numel = checked_numel(op, shape)?;
    if len != numel {
        return Err(Error::DataLength { op, len, shape: shape.to_vec(), numel });
    }
    Ok(())
}

/// The element count of `shape`, refused before any host allocation when it cannot fit in one
/// buffer on `dev` (a GPU binding limit), so a huge shape is an error rather than an abort.
fn alloc_numel(op: &'static str, shape: &[usize], dev: &Device) -> Result<usize> {
    let n = checked_numel(op, shape)?;
    if let Device::Gpu(g) = dev {
        let limit = g.limits().max_storage_buffer_binding_size;
        if (n as u64).saturating_mul(4) > limit {
            return Err(Error::Device(kiln_device::DeviceError::TooLarge {
                op: op.to_string(),
                bytes: (n as u64).saturating_mul(4),
                limit,
                what: "max_storage_buffer_binding_size",
            }));
        }
    }
    Ok(n)
}

impl Tensor {
    pub(crate) fn from_parts(storage: Storage, shape: Vec<usize>, dtype: DType, device: Device) -> Tensor {
        Tensor {
            inner: Arc::new(TensorInner {
                storage,
                shape,
                dtype,
                device,
                requires_grad: false,
                grad_fn: None,
                grad_slot: None,
                index_bound: OnceLock::new(),
            }),
        }
    }

    /// The result of an op: records `op` when grad mode is on and any input requires grad.
    pub(crate) fn from_op(storage: Storage, shape: Vec<usize>, dtype: DType, device: Device, op: Op) -> Tensor {
        if dtype == DType::F32 && crate::autograd::is_anomaly_enabled() {
            let out = Tensor::from_parts(storage.clone(), shape.clone(), dtype, device.clone());
            crate::autograd::check_forward(&op, &out);
        }
        let needs = dtype == DType::F32 && is_grad_enabled() && op.inputs().iter().any(|t| t.requires_grad());
        Tensor {
            inner: Arc::new(TensorInner {
                storage,
                shape,
                dtype,
                device,
                requires_grad: needs,
                grad_fn: if needs { Some(Box::new(op)) } else { None },
                grad_slot: None,
                index_bound: OnceLock::new(),
            }),
        }
    }

    /// A leaf sharing `storage` whose gradient accumulates into `slot`.
    pub fn leaf_with_slot(&self, slot: Arc<GradSlot>) -> Tensor {
        Tensor {
            inner: Arc::new(TensorInner {
                storage: self.inner.storage.clone(),
                shape: self.inner.shape.clone(),
                dtype: self.inner.dtype,
                device: self.inner.device.clone(),
                requires_grad: true,
                grad_fn: None,
                grad_slot: Some(slot),
                index_bound: OnceLock::new(),
            }),
        }
    }

    /// The elements, for fused kernels in extension crates (see [`RawStorage`]).
    pub fn raw_storage(&self) -> RawStorage<'_> {
        match &self.inner.storage {
            Storage::Cpu(CpuData::F32(v)) => RawStorage::CpuF32(v),
            Storage::Cpu(_) => RawStorage::CpuOther,
            Storage::Gpu(b) => RawStorage::Gpu(b),
        }
    }

    /// An F32 tensor over a GPU buffer that a fused kernel wrote (`dev` must be that buffer's
    /// device and the buffer must hold at least `shape`'s elements).
    pub fn from_gpu_buffer(buf: kiln_device::GpuBuffer, shape: &[usize], dev: &Device) -> Result<Tensor> {
        let n = checked_numel("from_gpu_buffer", shape)?;
        if !dev.is_gpu() || buf.bucket_bytes() < (n * 4) as u64 {
            return Err(Error::invalid(
                "from_gpu_buffer",
                format!("a buffer of {} bytes on {dev} cannot hold shape {shape:?}", buf.bucket_bytes()),
            ));
        }
        Ok(Tensor::from_parts(Storage::gpu(buf), shape.to_vec(), DType::F32, dev.clone()))
    }

    /// True when `a` and `b` are handles of the same tensor node.
    pub fn ptr_eq(a: &Tensor, b: &Tensor) -> bool {
        Arc::ptr_eq(&a.inner, &b.inner)
    }

    pub(crate) fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// For a U32 tensor made from host data: the largest value + 1, known without reading the
    /// device.
    pub fn index_bound(&self) -> Option<u32> {
        self.inner.index_bound.get().copied()
    }

    /// Records the index bound (on a freshly made tensor).
    pub(crate) fn with_index_bound(self, bound: Option<u32>) -> Tensor {
        if let Some(b) = bound {
            let _ = self.inner.index_bound.set(b);
        }
        self
    }

    /// A process-unique identity of this handle's node (equal for clones).
    pub(crate) fn id(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    /// Builds a tensor from values in row-major order.
    pub fn from_vec(data: Vec<f32>, shape: &[usize], dev: &Device) -> Result<Tensor> {
        check_len("from_vec", data.len(), shape)?;
        let storage = Storage::from_f32(data, dev, "from_vec")?;
        Ok(Tensor::from_parts(storage, shape.to_vec(), DType::F32, dev.clone()))
    }

    /// Builds a tensor from a slice of values in row-major order.
    pub fn from_slice(data: &[f32], shape: &[usize], dev: &Device) -> Result<Tensor> {
        Tensor::from_vec(data.to_vec(), shape, dev)
    }

    /// A 0-d (scalar) tensor.
    pub fn scalar(v: f32, dev: &Device) -> Result<Tensor> {
        Tensor::from_vec(vec![v], &[], dev)
    }

    /// A tensor filled with `value`.
    pub fn full(shape: &[usize], value: f32, dev: &Device) -> Result<Tensor> {
        let n = alloc_numel("full", shape, dev)?;
        let storage = match dev {
            Device::Cpu => Storage::f32_cpu(vec![value; n]),
            Device::Gpu(g) => Storage::gpu(kiln_device::kernels::fill(g, value, n)?),
        };
        Ok(Tensor::from_parts(storage, shape.to_vec(), DType::F32, dev.clone()))
    }

    /// A tensor of zeros.
    pub fn zeros(shape: &[usize], dev: &Device) -> Result<Tensor> {
        Tensor::full(shape, 0.0, dev)
    }

    /// A tensor of ones.
    pub fn ones(shape: &[usize], dev: &Device) -> Result<Tensor> {
        Tensor::full(shape, 1.0, dev)
    }

    /// Samples from the standard normal distribution (seeded by [`crate::manual_seed`]).
    pub fn randn(shape: &[usize], dev: &Device) -> Result<Tensor> {
        let n = alloc_numel("randn", shape, dev)?;
        Tensor::from_vec(rng::normal_vec(n), shape, dev)
    }

    /// Samples uniformly from [0, 1) (seeded by [`crate::manual_seed`]).
    pub fn rand(shape: &[usize], dev: &Device) -> Result<Tensor> {
        let n = alloc_numel("rand", shape, dev)?;
        Tensor::from_vec(rng::uniform_vec(n), shape, dev)
    }

    /// A 1-D tensor of integer class labels (`DType::U32`).
    pub fn from_labels(data: &[u32], dev: &Device) -> Result<Tensor> {
        let storage = Storage::from_u32(data.to_vec(), dev, "from_labels")?;
        let bound = data.iter().max().map(|m| m.saturating_add(1)).unwrap_or(0);
        Ok(Tensor::from_parts(storage, vec![data.len()], DType::U32, dev.clone()).with_index_bound(Some(bound)))
    }

    /// A `U32` tensor of any shape.
    pub fn from_vec_u32(data: Vec<u32>, shape: &[usize], dev: &Device) -> Result<Tensor> {
        check_len("from_vec_u32", data.len(), shape)?;
        let bound = data.iter().max().map(|m| m.saturating_add(1)).unwrap_or(0);
        let storage = Storage::from_u32(data, dev, "from_vec_u32")?;
        Ok(Tensor::from_parts(storage, shape.to_vec(), DType::U32, dev.clone()).with_index_bound(Some(bound)))
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.inner.shape
    }

    /// The number of dims.
    pub fn rank(&self) -> usize {
        self.inner.shape.len()
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.inner.shape.iter().product()
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.inner.dtype
    }

    /// The device the tensor lives on.
    pub fn device(&self) -> Device {
        self.inner.device.clone()
    }

    pub(crate) fn dev(&self) -> &Device {
        &self.inner.device
    }

    /// Copies the values to the host in row-major order (integer values are converted to f32).
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        let bytes = self.inner.storage.to_bytes(&self.inner.device, self.numel(), self.dtype())?;
        Ok(match self.dtype() {
            DType::F32 => bytemuck::pod_collect_to_vec(&bytes),
            DType::U32 => bytemuck::pod_collect_to_vec::<u8, u32>(&bytes).into_iter().map(|w| w as f32).collect(),
            DType::I64 => bytemuck::pod_collect_to_vec::<u8, i64>(&bytes).into_iter().map(|w| w as f32).collect(),
        })
    }

    /// The same values as `dtype` (PyTorch's `.to(dtype)`): between `F32`, `U32` and `I64`, on
    /// the tensor's device. A value that does not fit (a fraction, a negative or too large
    /// integer for the target, NaN) is an error naming the first one; integers beyond 2^24 become
    /// the nearest f32, as in PyTorch. Not differentiable (the result is a new leaf), except
    /// `F32` to `F32`, which is the tensor itself. On a GPU device the values are read back to be
    /// checked and converted, then uploaded: convert labels once, not every step.
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        let op = "to_dtype";
        let dev = self.dev();
        let shape = self.shape();
        let bad = |i: usize, v: String| {
            Err(Error::invalid(op, format!("element {i} ({v}) of a {} tensor does not fit in {dtype}", self.dtype())))
        };
        match (self.dtype(), dtype) {
            (DType::F32, DType::U32) => {
                let v = self.to_vec()?;
                match v.iter().position(|&x| !(x >= 0.0 && x <= u32::MAX as f32 && x.fract() == 0.0)) {
                    Some(i) => bad(i, v[i].to_string()),
                    None => Tensor::from_vec_u32(v.iter().map(|&x| x as u32).collect(), shape, dev),
                }
            }
            (DType::F32, DType::I64) => {
                let v = self.to_vec()?;
                let fits = |x: f32| x.fract() == 0.0 && x >= i64::MIN as f32 && x < i64::MAX as f32;
                match v.iter().position(|&x| !fits(x)) {
                    Some(i) => bad(i, v[i].to_string()),
                    None => Tensor::from_vec_i64(v.iter().map(|&x| x as i64).collect(), shape, dev),
                }
            }
            (DType::I64, DType::U32) => {
                let v = self.to_vec_i64()?;
                match v.iter().position(|&x| u32::try_from(x).is_err()) {
                    Some(i) => bad(i, v[i].to_string()),
                    None => Tensor::from_vec_u32(v.iter().map(|&x| x as u32).collect(), shape, dev),
                }
            }
            (DType::U32, DType::I64) => {
                Tensor::from_vec_i64(self.to_vec_u32()?.into_iter().map(i64::from).collect(), shape, dev)
            }
            // U32 and I64 to F32: to_vec converts (exact up to 2^24, nearest beyond).
            (_, DType::F32) => Tensor::from_vec(self.to_vec()?, shape, dev),
            (a, b) => unreachable!("to_dtype {a} -> {b} is covered above"),
        }
    }

    /// Class labels as `U32` for `op`: a `U32` tensor as it is, an `I64` one (PyTorch's int64
    /// labels) converted (`to_dtype`; a negative label is an error), anything else a dtype error.
    pub(crate) fn labels_u32(&self, op: &'static str) -> Result<Tensor> {
        match self.dtype() {
            DType::U32 => Ok(self.clone()),
            DType::I64 => self.to_dtype(DType::U32).map_err(|e| match e {
                Error::Invalid { msg, .. } => Error::invalid(op, format!("labels: {msg}")),
                e => e,
            }),
            _ => Err(Error::DType { op, expected: DType::U32, got: self.dtype(), shape: self.shape().to_vec() }),
        }
    }

    /// Copies the values of an `I64` tensor to the host.
    pub fn to_vec_i64(&self) -> Result<Vec<i64>> {
        self.expect_dtype("to_vec_i64", DType::I64)?;
        let bytes = self.inner.storage.to_bytes(&self.inner.device, self.numel(), DType::I64)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// An `I64` tensor (counters, PyTorch int64 buffers).
    pub fn from_vec_i64(data: Vec<i64>, shape: &[usize], dev: &Device) -> Result<Tensor> {
        check_len("from_vec_i64", data.len(), shape)?;
        let storage = Storage::from_bytes(bytemuck::cast_slice(&data), DType::I64, dev, "from_vec_i64")?;
        Ok(Tensor::from_parts(storage, shape.to_vec(), DType::I64, dev.clone()))
    }

    /// A tensor of `dtype` from its little-endian bytes (as stored in a safetensors file).
    pub fn from_bytes(bytes: &[u8], dtype: DType, shape: &[usize], dev: &Device) -> Result<Tensor> {
        let numel = checked_numel("from_bytes", shape)?;
        if numel.checked_mul(dtype.size_in_bytes()) != Some(bytes.len()) {
            return Err(Error::DataLength {
                op: "from_bytes",
                len: bytes.len() / dtype.size_in_bytes(),
                shape: shape.to_vec(),
                numel,
            });
        }
        let storage = Storage::from_bytes(bytes, dtype, dev, "from_bytes")?;
        Ok(Tensor::from_parts(storage, shape.to_vec(), dtype, dev.clone()))
    }

    /// The little-endian bytes of the elements (a read-back on the GPU).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.inner.storage.to_bytes(&self.inner.device, self.numel(), self.dtype())
    }

    /// Copies the values of a `U32` tensor to the host.
    pub fn to_vec_u32(&self) -> Result<Vec<u32>> {
        self.expect_dtype("to_vec_u32", DType::U32)?;
        self.inner.storage.to_words(&self.inner.device, self.numel())
    }

    /// The value of a one-element tensor.
    pub fn item(&self) -> Result<f32> {
        if self.numel() != 1 {
            return Err(Error::invalid(
                "item",
                format!("only one-element tensors have an item; this one has shape {:?}", self.shape()),
            ));
        }
        Ok(self.to_vec()?[0])
    }

    /// The same values on `dev` (the same tensor if already there). Differentiable: the gradient
    /// flows back to the source device.
    pub fn to(&self, dev: &Device) -> Result<Tensor> {
        if self.dev() == dev {
            return Ok(self.clone());
        }
        let storage = self.inner.storage.to_device(self.dev(), dev, self.numel(), self.dtype())?;
        let t = Tensor::from_op(
            storage,
            self.shape().to_vec(),
            self.dtype(),
            dev.clone(),
            Op::ToDevice { x: self.clone() },
        );
        Ok(t.with_index_bound(self.index_bound()))
    }

    /// Whether gradients flow to (a leaf) or through (a result) this tensor.
    pub fn requires_grad(&self) -> bool {
        self.inner.requires_grad
    }

    /// True for tensors not produced by a recorded op.
    pub fn is_leaf(&self) -> bool {
        self.inner.grad_fn.is_none()
    }

    /// A leaf sharing this tensor's storage, with `requires_grad` set as asked and a fresh
    /// gradient slot. (On a recorded result, `false` detaches it; `true` leaves it as it is.)
    pub fn set_requires_grad(&self, requires_grad: bool) -> Tensor {
        if !self.is_leaf() && requires_grad {
            return self.clone();
        }
        if requires_grad && self.dtype() == DType::F32 {
            self.leaf_with_slot(Arc::new(GradSlot::default()))
        } else {
            self.detach()
        }
    }

    /// The gradient accumulated into this leaf by `backward`, if any.
    pub fn grad(&self) -> Option<Tensor> {
        self.inner.grad_slot.as_ref().and_then(|s| s.get())
    }

    /// Clears this leaf's gradient.
    pub fn zero_grad(&self) {
        if let Some(s) = &self.inner.grad_slot {
            s.set(None);
        }
    }

    /// The same values, cut from the graph (no grad, a leaf).
    pub fn detach(&self) -> Tensor {
        Tensor::from_parts(self.inner.storage.clone(), self.shape().to_vec(), self.dtype(), self.device())
    }

    pub(crate) fn expect_dtype(&self, op: &'static str, dtype: DType) -> Result<()> {
        if self.dtype() != dtype {
            return Err(Error::DType { op, expected: dtype, got: self.dtype(), shape: self.shape().to_vec() });
        }
        Ok(())
    }

    pub(crate) fn same_device(&self, op: &'static str, other: &Tensor) -> Result<()> {
        if self.dev() != other.dev() {
            return Err(Error::DeviceMismatch { op, lhs: self.dev().name(), rhs: other.dev().name() });
        }
        Ok(())
    }

    /// Host f32 data (only for CPU F32 tensors; callers check).
    pub(crate) fn cpu_f32(&self) -> &[f32] {
        match &self.inner.storage {
            Storage::Cpu(CpuData::F32(v)) => v,
            _ => panic!("internal: cpu_f32 on a non-CPU-F32 tensor"),
        }
    }
}
