//! Elementwise ops: unary maps, scalar forms, broadcasting binary ops and 0/1 masks.

use kiln_device::kernels::{self, BinaryOp, UnaryOp};

use super::gpu;
use crate::autograd::Op;
use crate::cpu;
use crate::dtype::DType;
use crate::error::Result;
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

    /// -x
    pub fn neg(&self) -> Result<Tensor> {
        self.unary_op("neg", UnaryOp::Neg, 0.0, false)
    }
    /// e^x
    pub fn exp(&self) -> Result<Tensor> {
        self.unary_op("exp", UnaryOp::Exp, 0.0, false)
    }
    /// Natural logarithm.
    pub fn log(&self) -> Result<Tensor> {
        self.unary_op("log", UnaryOp::Log, 0.0, false)
    }
    /// Square root.
    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary_op("sqrt", UnaryOp::Sqrt, 0.0, false)
    }
    /// Hyperbolic tangent.
    pub fn tanh(&self) -> Result<Tensor> {
        self.unary_op("tanh", UnaryOp::Tanh, 0.0, false)
    }
    /// Logistic sigmoid 1 / (1 + e^-x).
    pub fn sigmoid(&self) -> Result<Tensor> {
        self.unary_op("sigmoid", UnaryOp::Sigmoid, 0.0, false)
    }
    /// max(x, 0); the gradient at 0 is 0, as in PyTorch.
    pub fn relu(&self) -> Result<Tensor> {
        self.unary_op("relu", UnaryOp::Relu, 0.0, false)
    }
    /// log(1 + e^x), computed stably; its gradient is sigmoid(x) everywhere (no kink at 0).
    pub fn softplus(&self) -> Result<Tensor> {
        self.unary_op("softplus", UnaryOp::Softplus, 0.0, false)
    }
    /// |x| (gradient 0 at 0, as in PyTorch).
    pub fn abs(&self) -> Result<Tensor> {
        self.unary_op("abs", UnaryOp::Abs, 0.0, false)
    }
    /// x ^ p (negative bases only with integer exponents, as in PyTorch).
    pub fn powf(&self, p: f32) -> Result<Tensor> {
        self.unary_op("powf", UnaryOp::PowScalar, p, false)
    }
    /// x + s
    pub fn add_scalar(&self, s: f32) -> Result<Tensor> {
        self.unary_op("add_scalar", UnaryOp::AddScalar, s, false)
    }
    /// x - s
    pub fn sub_scalar(&self, s: f32) -> Result<Tensor> {
        self.unary_op("sub_scalar", UnaryOp::AddScalar, -s, false)
    }
    /// x * s
    pub fn mul_scalar(&self, s: f32) -> Result<Tensor> {
        self.unary_op("mul_scalar", UnaryOp::MulScalar, s, false)
    }
    /// x / s
    pub fn div_scalar(&self, s: f32) -> Result<Tensor> {
        self.unary_op("div_scalar", UnaryOp::DivScalar, s, false)
    }
    /// s - x
    pub fn rsub_scalar(&self, s: f32) -> Result<Tensor> {
        self.unary_op("rsub_scalar", UnaryOp::RsubScalar, s, false)
    }
    /// 1.0 where x > s, else 0.0 (not differentiable).
    pub fn gt_scalar(&self, s: f32) -> Result<Tensor> {
        self.unary_op("gt_scalar", UnaryOp::GtScalar, s, true)
    }
    /// 1.0 where x < s, else 0.0.
    pub fn lt_scalar(&self, s: f32) -> Result<Tensor> {
        self.unary_op("lt_scalar", UnaryOp::LtScalar, s, true)
    }
    /// 1.0 where x >= s, else 0.0.
    pub fn ge_scalar(&self, s: f32) -> Result<Tensor> {
        self.unary_op("ge_scalar", UnaryOp::GeScalar, s, true)
    }
    /// 1.0 where x <= s, else 0.0.
    pub fn le_scalar(&self, s: f32) -> Result<Tensor> {
        self.unary_op("le_scalar", UnaryOp::LeScalar, s, true)
    }
    /// 1.0 where x == s, else 0.0.
    pub fn eq_scalar(&self, s: f32) -> Result<Tensor> {
        self.unary_op("eq_scalar", UnaryOp::EqScalar, s, true)
    }

    /// a + b (broadcasting).
    pub fn add(&self, other: &Tensor) -> Result<Tensor> {
        self.binary_op(other, "add", BinaryOp::Add, false)
    }
    /// a - b (broadcasting).
    pub fn sub(&self, other: &Tensor) -> Result<Tensor> {
        self.binary_op(other, "sub", BinaryOp::Sub, false)
    }
    /// a * b (broadcasting).
    pub fn mul(&self, other: &Tensor) -> Result<Tensor> {
        self.binary_op(other, "mul", BinaryOp::Mul, false)
    }
    /// a / b (broadcasting).
    pub fn div(&self, other: &Tensor) -> Result<Tensor> {
        self.binary_op(other, "div", BinaryOp::Div, false)
    }
    /// Elementwise maximum (ties share the gradient, as torch.maximum).
    pub fn maximum(&self, other: &Tensor) -> Result<Tensor> {
        self.binary_op(other, "maximum", BinaryOp::Maximum, false)
    }
    /// Elementwise minimum.
    pub fn minimum(&self, other: &Tensor) -> Result<Tensor> {
        self.binary_op(other, "minimum", BinaryOp::Minimum, false)
    }
    /// 1.0 where a > b, else 0.0 (broadcasting, not differentiable).
    pub fn gt(&self, other: &Tensor) -> Result<Tensor> {
        self.binary_op(other, "gt", BinaryOp::Gt, true)
    }
    /// 1.0 where a < b, else 0.0.
    pub fn lt(&self, other: &Tensor) -> Result<Tensor> {
        self.binary_op(other, "lt", BinaryOp::Lt, true)
    }
    /// 1.0 where a >= b, else 0.0.
    pub fn ge(&self, other: &Tensor) -> Result<Tensor> {
        self.binary_op(other, "ge", BinaryOp::Ge, true)
    }
    /// 1.0 where a <= b, else 0.0.
    pub fn le(&self, other: &Tensor) -> Result<Tensor> {
        self.binary_op(other, "le", BinaryOp::Le, true)
    }
    /// 1.0 where a == b, else 0.0.
    pub fn eq(&self, other: &Tensor) -> Result<Tensor> {
        self.binary_op(other, "eq", BinaryOp::Eq, true)
    }
    /// 1.0 where a != b, else 0.0.
    pub fn ne(&self, other: &Tensor) -> Result<Tensor> {
        self.binary_op(other, "ne", BinaryOp::Ne, true)
    }

    /// The incoming gradient `self` where `x > 0`, else 0 (ReLU's backward, one kernel).
    pub(crate) fn relu_backward(&self, x: &Tensor) -> Result<Tensor> {
        self.binary_op(x, "relu_backward", BinaryOp::ReluBackward, true)
    }

    /// `self` where `mask` is 1.0, `other` where it is 0.0 (like `torch.where(mask, self, other)`),
    /// differentiable in `self` and `other`.
    pub fn where_(&self, mask: &Tensor, other: &Tensor) -> Result<Tensor> {
        let keep = self.mul(mask)?;
        let rest = other.mul(&mask.rsub_scalar(1.0)?)?;
        keep.add(&rest)
    }

    /// `value` where `mask` is 1.0, `self` elsewhere.
    pub fn masked_fill(&self, mask: &Tensor, value: f32) -> Result<Tensor> {
        let fill = Tensor::full(&[], value, self.dev())?;
        fill.where_(mask, self)
    }
}

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
