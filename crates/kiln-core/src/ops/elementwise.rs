//! Elementwise ops: unary maps, scalar forms, broadcasting binary ops and 0/1 masks.

use kiln_device::kernels;
use kiln_device::op::{BinaryOp, UnaryOp};

use super::gpu;
use crate::autograd::Op;
use crate::cpu;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::shape::{broadcast_shapes, broadcast_strides, merge_dims};
use crate::storage::Storage;
use crate::tensor::Tensor;

impl Tensor {
    fn unary_op(&self, name: &'static str, op: UnaryOp, alpha: f32, mask: bool) -> Result<Tensor> {
        self.expect_dtype(name, DType::F32)?;
        let storage = match self.storage() {
            Storage::Cpu(_) => Storage::f32_cpu(cpu::unary(op, alpha, self.cpu_f32())),
            Storage::Gpu(b) => Storage::gpu(kernels::unary(gpu(self.dev()), op, alpha, b, self.numel())?),
        };
        let shape = self.shape().to_vec();
        Ok(if mask {
            Tensor::from_parts(storage, shape, DType::F32, self.device())
        } else {
            Tensor::from_op(storage, shape, DType::F32, self.device(), Op::Unary { x: self.clone(), op, alpha })
        })
    }

    fn binary_op(&self, other: &Tensor, name: &'static str, op: BinaryOp, mask: bool) -> Result<Tensor> {
        self.expect_dtype(name, DType::F32)?;
        other.expect_dtype(name, DType::F32)?;
        self.same_device(name, other)?;
        let shape = broadcast_shapes(name, self.shape(), other.shape())?;
        let sa = broadcast_strides(self.shape(), &shape);
        let sb = broadcast_strides(other.shape(), &shape);
        let (ms, st) = merge_dims(&shape, &[sa, sb]);
        let storage = match (self.storage(), other.storage()) {
            (Storage::Gpu(a), Storage::Gpu(b)) => {
                Storage::gpu(kernels::binary(gpu(self.dev()), op, a, b, &ms, &st[0], &st[1])?)
            }
            _ => Storage::f32_cpu(cpu::binary(op, self.cpu_f32(), other.cpu_f32(), &ms, &st[0], &st[1])),
        };
        Ok(if mask {
            Tensor::from_parts(storage, shape, DType::F32, self.device())
        } else {
            let op = Op::Binary { a: self.clone(), b: other.clone(), op };
            Tensor::from_op(storage, shape, DType::F32, self.device(), op)
        })
    }

    /// x - s
    pub fn sub_scalar(&self, s: f32) -> Result<Tensor> {
        self.unary_op("sub_scalar", UnaryOp::AddScalar, -s, false)
    }

    /// The incoming gradient `self` where `x > 0`, else 0 (ReLU's backward, one kernel).
    pub(crate) fn relu_backward(&self, x: &Tensor) -> Result<Tensor> {
        self.binary_op(x, "relu_backward", BinaryOp::ReluBackward, true)
    }

    /// The incoming gradient `self` times GELU's derivative at `x` (GELU's backward, one kernel).
    pub(crate) fn gelu_backward(&self, x: &Tensor) -> Result<Tensor> {
        self.binary_op(x, "gelu_backward", BinaryOp::GeluBackward, true)
    }

    /// GELU with PyTorch's tanh approximation (`approximate='tanh'`):
    /// x / 2 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3))). A composite.
    pub fn gelu_tanh(&self) -> Result<Tensor> {
        let c = (2.0 / std::f32::consts::PI).sqrt();
        let inner = self.mul(self)?.mul(self)?.mul_scalar(0.044715)?.add(self)?.mul_scalar(c)?;
        self.mul(&inner.tanh()?.add_scalar(1.0)?)?.mul_scalar(0.5)
    }

    /// SiLU (swish): x * sigmoid(x). A composite.
    pub fn silu(&self) -> Result<Tensor> {
        self.mul(&self.sigmoid()?)
    }

    /// Leaky ReLU: x where x > 0, else `slope * x` (the gradient is `slope` at 0, as in PyTorch).
    pub fn leaky_relu(&self, slope: f32) -> Result<Tensor> {
        let pos = self.gt_scalar(0.0)?;
        self.keep_where(&pos)?.add(&self.mul_scalar(slope)?.keep_where(&pos.eq_scalar(0.0)?)?)
    }

    /// Each value limited to [min, max] (PyTorch's `clamp`; pass an infinity for no bound): the
    /// bounds exactly, the gradient 1 inside and on the bounds, 0 outside. An error if
    /// min > max or either is NaN.
    pub fn clamp(&self, min: f32, max: f32) -> Result<Tensor> {
        if min.is_nan() || max.is_nan() || min > max {
            return Err(Error::invalid("clamp", format!("needs min <= max, got min {min} and max {max}")));
        }
        let below = self.lt_scalar(min)?;
        let above = self.gt_scalar(max)?;
        let inside = below.add(&above)?.eq_scalar(0.0)?;
        let lo = Tensor::full(&[], min, self.dev())?.keep_where(&below)?;
        let hi = Tensor::full(&[], max, self.dev())?.keep_where(&above)?;
        self.keep_where(&inside)?.add(&lo)?.add(&hi)
    }

    /// `self` where `mask` is nonzero, `other` where it is 0.0 (like `torch.where(mask, self,
    /// other)`), differentiable in `self` and `other`. A select: the values not chosen do not
    /// leak into the result, infinities and NaNs included.
    pub fn where_(&self, mask: &Tensor, other: &Tensor) -> Result<Tensor> {
        self.keep_where(mask)?.add(&other.keep_where(&mask.eq_scalar(0.0)?)?)
    }

    /// `value` where `mask` is nonzero, `self` elsewhere (mask broadcast to self); `value` may be
    /// an infinity (attention masks) and the other values pass through exactly.
    pub fn masked_fill(&self, mask: &Tensor, value: f32) -> Result<Tensor> {
        if broadcast_shapes("masked_fill", self.shape(), mask.shape()).ok().as_deref() != Some(self.shape()) {
            return Err(Error::ShapeMismatch {
                op: "masked_fill",
                lhs: self.shape().to_vec(),
                rhs: mask.shape().to_vec(),
            });
        }
        let fill = Tensor::full(&[], value, self.dev())?.keep_where(mask)?;
        self.keep_where(&mask.eq_scalar(0.0)?)?.add(&fill)
    }
}

/// The op table's `Tensor` methods: one per entry with a method name, taking the entry's scalar
/// argument if it names one; an op without a derivative gives a result that never requires grad.
macro_rules! unary_methods {
    ($($(#[$doc:meta])* $name:ident : $wgsl:literal, $cpu:expr, [$($m:tt)*], [$($grad:tt)*];)*) => {
        impl Tensor {
            $(unary_method!([$(#[$doc])*] $name $($m)*);)*
        }
    };
}

macro_rules! unary_method {
    ([$(#[$doc:meta])*] $name:ident) => {};
    ([$(#[$doc:meta])*] $name:ident $method:ident) => {
        $(#[$doc])*
        pub fn $method(&self) -> Result<Tensor> {
            self.unary_op(stringify!($method), UnaryOp::$name, 0.0, !UnaryOp::$name.differentiable())
        }
    };
    ([$(#[$doc:meta])*] $name:ident $method:ident $arg:ident) => {
        $(#[$doc])*
        pub fn $method(&self, $arg: f32) -> Result<Tensor> {
            self.unary_op(stringify!($method), UnaryOp::$name, $arg, !UnaryOp::$name.differentiable())
        }
    };
}

macro_rules! binary_methods {
    ($($(#[$doc:meta])* $name:ident : $wgsl:literal, $cpu:expr, [$($m:tt)*], [$($grad:tt)*];)*) => {
        impl Tensor {
            $(binary_method!([$(#[$doc])*] $name $($m)*);)*
        }
    };
}

macro_rules! binary_method {
    ([$(#[$doc:meta])*] $name:ident) => {};
    ([$(#[$doc:meta])*] $name:ident $method:ident) => {
        $(#[$doc])*
        pub fn $method(&self, other: &Tensor) -> Result<Tensor> {
            self.binary_op(other, stringify!($method), BinaryOp::$name, !BinaryOp::$name.differentiable())
        }
    };
}

kiln_device::unary_ops!(unary_methods);
kiln_device::binary_ops!(binary_methods);

macro_rules! sugar {
    ($tr:ident, $m:ident, $f:ident) => {
        impl std::ops::$tr<&Tensor> for &Tensor {
            type Output = Tensor;
            /// Panics where the method returns an error; use the method to handle it.
            fn $m(self, rhs: &Tensor) -> Tensor {
                match self.$f(rhs) {
                    Ok(t) => t,
                    Err(e) => panic!("{e}"),
                }
            }
        }
        impl std::ops::$tr<Tensor> for Tensor {
            type Output = Tensor;
            fn $m(self, rhs: Tensor) -> Tensor {
                std::ops::$tr::$m(&self, &rhs)
            }
        }
    };
}

sugar!(Add, add, add);
sugar!(Sub, sub, sub);
sugar!(Mul, mul, mul);
sugar!(Div, div, div);
