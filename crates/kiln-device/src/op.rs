//! The op table: one declaration per elementwise op, from which every layer takes what it needs.
//!
//! [`unary_ops!`](crate::unary_ops) and [`binary_ops!`](crate::binary_ops) hold the table and hand
//! it to a macro of the caller's. Each line gives an op's name (its [`UnaryOp`] / [`BinaryOp`]
//! variant; the doc comment above it documents the variant and kiln-core's `Tensor` method), its
//! WGSL function in `shaders/ops.wgsl`, its CPU scalar function, the `Tensor` method kiln-core
//! generates for it (with its scalar argument, if it takes one; empty for internal ops), and its
//! derivative (empty for ops that are not differentiable, such as masks). This crate expands the
//! table into the enums, [`UnaryOp::ALL`], [`UnaryOp::wgsl_fn`], [`UnaryOp::eval`] and the WGSL
//! `switch` of the unary and binary kernel families (`wgsl::op_switches`); kiln-core expands it into
//! the `Tensor` methods, the CPU reference and the backward rules. Nothing here interprets the
//! derivatives: they are kiln-core code (Tensor methods returning `Result<Tensor>`), type-checked
//! there.
//!
//! A missing piece cannot pass silently: a variant without a CPU function or WGSL name does not
//! compile, and a WGSL name without its function in `ops.wgsl` fails naga validation of the
//! generated switch (`wgsl::tests`). Adding an op: ARCHITECTURE.md, "Adding an op".

/// tanh as `ops.wgsl`'s `tanh_` computes it, (1 - e^(-2|v|)) / (1 + e^(-2|v|)) with v's sign:
/// one `exp` (libm's `tanhf` costs several times that), +-1 for large |v|, and the CPU and the
/// GPU agree.
pub fn tanh(v: f32) -> f32 {
    let t = (-2.0 * v.abs()).exp();
    let r = (1.0 - t) / (1.0 + t);
    if v < 0.0 { -r } else { r }
}

/// erf as `ops.wgsl`'s `u_erf` computes it: a Taylor series below |v| = 0.5 (relative error
/// under 1e-6), else Abramowitz and Stegun 7.1.26 (absolute error under 1.5e-7, 5e-7 in f32
/// arithmetic; tested): one `exp` (libm's `erff` costs several times that: a tenth of a GPT
/// step on the CPU), and the CPU and the GPU agree.
#[inline]
pub fn erf(v: f32) -> f32 {
    erf_with(v, || (-v * v).exp())
}

/// erf(v) given a way to e^(-v^2), which only |v| >= 0.5 needs (GELU's gradient has it anyway).
#[inline]
fn erf_with(v: f32, exp_neg_sq: impl FnOnce() -> f32) -> f32 {
    let x = v.abs();
    if x < 0.5 {
        let x2 = v * v;
        return core::f32::consts::FRAC_2_SQRT_PI
            * v
            * (1.0 - x2 * (0.333_333_34 - x2 * (0.1 - x2 * (0.023_809_524 - x2 * 0.004_629_629_6))));
    }
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t * (0.254_829_6 + t * (-0.284_496_72 + t * (1.421_413_8 + t * (-1.453_152_1 + t * 1.061_405_4))));
    (1.0 - poly * exp_neg_sq()).copysign(v)
}

/// GELU as `ops.wgsl`'s `u_gelu` computes it: x / 2 * (1 + erf(x / sqrt 2)).
#[inline]
pub fn gelu(v: f32) -> f32 {
    0.5 * v * (1.0 + erf(v * core::f32::consts::FRAC_1_SQRT_2))
}

/// GELU's derivative, Phi(x) + x * phi(x), as `ops.wgsl`'s `b_gelu_backward` computes it: one
/// `exp`, e^(-x^2 / 2), serves phi and the erf.
#[inline]
pub fn gelu_grad(v: f32) -> f32 {
    let e = (-0.5 * v * v).exp();
    0.5 * (1.0 + erf_with(v * core::f32::consts::FRAC_1_SQRT_2, || e)) + v * e * 0.398_942_3
}

/// Calls `$then! { ... }` with the table of unary ops. Each entry:
/// `/// doc` `Name: "wgsl_fn", |v, alpha| cpu, [method arg?], [|g, x, y, alpha| derivative];`
/// where the derivative gets the incoming gradient `g`, the input `x`, the output `y` and the
/// scalar, all as kiln-core `Tensor`s (`alpha: f32`), and returns `Result<Tensor>`.
#[macro_export]
macro_rules! unary_ops {
    ($then:ident) => {
        $then! {
            /// -x
            Neg: "u_neg", |v, _a| -v, [neg], [|g, _x, _y, _a| g.neg()];
            /// e^x
            Exp: "u_exp", |v, _a| v.exp(), [exp], [|g, _x, y, _a| g.mul(y)];
            /// Natural logarithm.
            Log: "u_log", |v, _a| v.ln(), [log], [|g, x, _y, _a| g.div(x)];
            /// Square root.
            Sqrt: "u_sqrt", |v, _a| v.sqrt(), [sqrt], [|g, _x, y, _a| g.div(y)?.mul_scalar(0.5)];
            /// Hyperbolic tangent.
            Tanh: "u_tanh", |v, _a| $crate::op::tanh(v), [tanh], [|g, _x, y, _a| g.mul(&y.mul(y)?.rsub_scalar(1.0)?)];
            /// Logistic sigmoid 1 / (1 + e^-x).
            Sigmoid: "u_sigmoid", |v, _a| 1.0 / (1.0 + (-v).exp()), [sigmoid],
                [|g, _x, y, _a| g.mul(&y.mul(&y.rsub_scalar(1.0)?)?)];
            /// max(x, 0); the gradient at 0 is 0, as in PyTorch.
            Relu: "u_relu", |v, _a| if v > 0.0 { v } else { 0.0 }, [relu], [|g, x, _y, _a| g.relu_backward(x)];
            /// x + s
            AddScalar: "u_add_scalar", |v, a| v + a, [add_scalar s], [|g, _x, _y, _a| Ok(g.clone())];
            /// x * s
            MulScalar: "u_mul_scalar", |v, a| v * a, [mul_scalar s], [|g, _x, _y, a| g.mul_scalar(a)];
            /// x / s
            DivScalar: "u_div_scalar", |v, a| v / a, [div_scalar s], [|g, _x, _y, a| g.div_scalar(a)];
            /// x ^ p (negative bases only with integer exponents, as in PyTorch).
            PowScalar: "u_pow_scalar", |v, a| v.powf(a), [powf p],
                [|g, x, _y, a| g.mul(&x.powf(a - 1.0)?.mul_scalar(a)?)];
            /// 1.0 where x > s, else 0.0 (not differentiable).
            GtScalar: "u_gt_scalar", |v, a| f32::from(v > a), [gt_scalar s], [];
            /// 1.0 where x < s, else 0.0 (not differentiable).
            LtScalar: "u_lt_scalar", |v, a| f32::from(v < a), [lt_scalar s], [];
            /// 1.0 where x >= s, else 0.0 (not differentiable).
            GeScalar: "u_ge_scalar", |v, a| f32::from(v >= a), [ge_scalar s], [];
            /// 1.0 where x <= s, else 0.0 (not differentiable).
            LeScalar: "u_le_scalar", |v, a| f32::from(v <= a), [le_scalar s], [];
            /// 1.0 where x == s, else 0.0 (not differentiable).
            EqScalar: "u_eq_scalar", |v, a| f32::from(v == a), [eq_scalar s], [];
            /// |x| (gradient 0 at 0, as in PyTorch).
            Abs: "u_abs", |v, _a| v.abs(), [abs], [|g, x, _y, _a| g.mul(&x.gt_scalar(0.0)?.sub(&x.lt_scalar(0.0)?)?)];
            /// s - x
            RsubScalar: "u_rsub_scalar", |v, a| a - v, [rsub_scalar s], [|g, _x, _y, _a| g.neg()];
            /// The scalar everywhere, x not read (`kernels::fill`; `Tensor::full`).
            Fill: "u_fill", |_v, a| a, [], [];
            /// log(1 + e^x), computed stably; its gradient is sigmoid(x) everywhere (no kink at 0).
            Softplus: "u_softplus", |v, _a| v.max(0.0) + (1.0 + (-v.abs()).exp()).ln(), [softplus],
                [|g, x, _y, _a| g.mul(&x.sigmoid()?)];
            /// The error function erf(x) = 2/sqrt(pi) * integral from 0 to x of e^(-t^2) dt.
            Erf: "u_erf", |v, _a| $crate::op::erf(v), [erf],
                [|g, x, _y, _a| g.mul(&x.mul(x)?.neg()?.exp()?.mul_scalar(core::f32::consts::FRAC_2_SQRT_PI)?)];
            /// Sine.
            Sin: "u_sin", |v, _a| v.sin(), [sin], [|g, x, _y, _a| g.mul(&x.cos()?)];
            /// Cosine.
            Cos: "u_cos", |v, _a| v.cos(), [cos], [|g, x, _y, _a| g.mul(&x.sin()?.neg()?)];
            /// GELU, exact (PyTorch's default `approximate='none'`): x * Phi(x) =
            /// x / 2 * (1 + erf(x / sqrt 2)). One op; its gradient one op (`GeluBackward`).
            Gelu: "u_gelu", |v, _a| $crate::op::gelu(v), [gelu], [|g, x, _y, _a| g.gelu_backward(x)];
        }
    };
}

/// Calls `$then! { ... }` with the table of binary ops. Each entry:
/// `/// doc` `Name: "wgsl_fn", |u, v| cpu, [method], [|g, a, b| da, |g, a, b| db];` where the
/// derivatives get the incoming gradient and both inputs as kiln-core `Tensor`s and return the
/// gradient of the output's shape (kiln-core sums it to the input's shape).
#[macro_export]
macro_rules! binary_ops {
    ($then:ident) => {
        $then! {
            /// a + b (broadcasting).
            Add: "b_add", |u, v| u + v, [add], [|g, _a, _b| Ok(g.clone()), |g, _a, _b| Ok(g.clone())];
            /// a - b (broadcasting).
            Sub: "b_sub", |u, v| u - v, [sub], [|g, _a, _b| Ok(g.clone()), |g, _a, _b| g.neg()];
            /// a * b (broadcasting).
            Mul: "b_mul", |u, v| u * v, [mul], [|g, _a, b| g.mul(b), |g, a, _b| g.mul(a)];
            /// a / b (broadcasting).
            Div: "b_div", |u, v| u / v, [div], [|g, _a, b| g.div(b), |g, a, b| g.mul(a)?.div(&b.mul(b)?)?.neg()];
            /// Elementwise maximum (ties share the gradient, as torch.maximum).
            Maximum: "b_maximum", |u, v| u.max(v), [maximum], [
                |g, a, b| g.mul(&a.gt(b)?.add(&a.eq(b)?.mul_scalar(0.5)?)?),
                |g, a, b| g.mul(&b.gt(a)?.add(&a.eq(b)?.mul_scalar(0.5)?)?)
            ];
            /// Elementwise minimum (ties share the gradient, as torch.minimum).
            Minimum: "b_minimum", |u, v| u.min(v), [minimum], [
                |g, a, b| g.mul(&a.lt(b)?.add(&a.eq(b)?.mul_scalar(0.5)?)?),
                |g, a, b| g.mul(&b.lt(a)?.add(&a.eq(b)?.mul_scalar(0.5)?)?)
            ];
            /// 1.0 where a > b, else 0.0 (broadcasting, not differentiable).
            Gt: "b_gt", |u, v| f32::from(u > v), [gt], [];
            /// 1.0 where a < b, else 0.0 (broadcasting, not differentiable).
            Lt: "b_lt", |u, v| f32::from(u < v), [lt], [];
            /// 1.0 where a >= b, else 0.0 (broadcasting, not differentiable).
            Ge: "b_ge", |u, v| f32::from(u >= v), [ge], [];
            /// 1.0 where a <= b, else 0.0 (broadcasting, not differentiable).
            Le: "b_le", |u, v| f32::from(u <= v), [le], [];
            /// 1.0 where a == b, else 0.0 (broadcasting, not differentiable).
            Eq: "b_eq", |u, v| f32::from(u == v), [eq], [];
            /// 1.0 where a != b, else 0.0 (broadcasting, not differentiable).
            Ne: "b_ne", |u, v| f32::from(u != v), [ne], [];
            /// a where b > 0 else 0: ReLU's backward (a the gradient, b the input), one kernel.
            ReluBackward: "b_relu_backward", |u, v| if v > 0.0 { u } else { 0.0 }, [], [];
            /// a * GELU'(b) = a * (Phi(b) + b * phi(b)): GELU's backward (a the gradient, b the
            /// input), one kernel.
            GeluBackward: "b_gelu_backward", |u, v| u * $crate::op::gelu_grad(v), [], [];
            /// a where b is nonzero, else 0: a select, so an infinity or NaN of a where b is 0 gives
            /// exactly 0 (`where_` and `masked_fill` are built from it). Differentiable in a.
            Keep: "b_keep", |u, v| if v != 0.0 { u } else { 0.0 }, [keep_where],
                [|g, _a, b| g.keep_where(b), |g, _a, _b| Tensor::zeros(g.shape(), g.dev())];
        }
    };
}

/// The enum of one table, its list and its names (the table's first three columns).
macro_rules! define_ops {
    ($ty:ident, $what:literal, $($(#[$doc:meta])* $name:ident : $wgsl:literal, $cpu:expr, [$($rest:tt)*], [$($grad:tt)*];)*) => {
        #[doc = concat!("The ", $what, " elementwise ops (the op table; the discriminant is the WGSL kernels' op number).")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum $ty {
            $($(#[$doc])* $name,)*
        }

        impl $ty {
            /// Every op, in discriminant order.
            pub const ALL: [$ty; <[&str]>::len(&[$(stringify!($name)),*])] = [$($ty::$name),*];

            /// The op's function in `shaders/ops.wgsl`.
            pub fn wgsl_fn(self) -> &'static str {
                match self {
                    $($ty::$name => $wgsl,)*
                }
            }

            /// Whether the op has a derivative (masks and fills have none: their results never
            /// require grad).
            pub fn differentiable(self) -> bool {
                match self {
                    $($ty::$name => !<[&str]>::is_empty(&[$(stringify!($grad)),*]),)*
                }
            }
        }
    };
}

macro_rules! define_unary {
    ($($(#[$doc:meta])* $name:ident : $wgsl:literal, $cpu:expr, [$($rest:tt)*], [$($grad:tt)*];)*) => {
        define_ops!(UnaryOp, "unary", $($(#[$doc])* $name: $wgsl, $cpu, [$($rest)*], [$($grad)*];)*);

        impl UnaryOp {
            /// The op on one value on the CPU (`alpha` is the scalar of the scalar forms). Inlined
            /// into the CPU reference's loops, where the match is hoisted out of the loop.
            #[inline]
            pub fn eval(self, v: f32, alpha: f32) -> f32 {
                match self {
                    $(UnaryOp::$name => {
                        let f: fn(f32, f32) -> f32 = $cpu;
                        f(v, alpha)
                    })*
                }
            }
        }
    };
}

macro_rules! define_binary {
    ($($(#[$doc:meta])* $name:ident : $wgsl:literal, $cpu:expr, [$($rest:tt)*], [$($grad:tt)*];)*) => {
        define_ops!(BinaryOp, "binary", $($(#[$doc])* $name: $wgsl, $cpu, [$($rest)*], [$($grad)*];)*);

        impl BinaryOp {
            /// The op on one pair of values on the CPU (inlined, as [`UnaryOp::eval`]).
            #[inline]
            pub fn eval(self, u: f32, v: f32) -> f32 {
                match self {
                    $(BinaryOp::$name => {
                        let f: fn(f32, f32) -> f32 = $cpu;
                        f(u, v)
                    })*
                }
            }
        }
    };
}

unary_ops!(define_unary);
binary_ops!(define_binary);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_and_gelu_are_within_float_rounding_of_f64() {
        let erf64 = libm::erf;
        let (mut worst, mut worst_gelu, mut worst_grad) = (0f64, 0f64, 0f64);
        for i in -16_000..=16_000 {
            let v = i as f32 * 2.5e-4;
            let (x, e) = (v as f64, erf64(v as f64));
            worst = worst.max((erf(v) as f64 - e).abs());
            worst_gelu = worst_gelu.max((gelu(v) as f64 - 0.5 * x * (1.0 + erf64(x / 2f64.sqrt()))).abs());
            let phi = 0.5 * (1.0 + erf64(x / 2f64.sqrt()));
            let want = phi + x * (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
            worst_grad = worst_grad.max((gelu_grad(v) as f64 - want).abs());
        }
        assert!(worst < 6e-7 && worst_gelu < 1e-6 && worst_grad < 1e-6, "{worst} {worst_gelu} {worst_grad}");
        assert_eq!((erf(0.0), erf(10.0), erf(-10.0), erf(f32::INFINITY)), (0.0, 1.0, -1.0, 1.0));
        assert!(erf(f32::NAN).is_nan());
    }

    #[test]
    fn tanh_is_within_float_rounding_of_f64_and_saturates() {
        let mut worst = 0f64;
        for i in -40_000..=40_000 {
            let v = i as f32 * 2.5e-4;
            worst = worst.max((tanh(v) as f64 - (v as f64).tanh()).abs());
        }
        assert!(worst < 2.5e-7, "{worst}");
        assert_eq!((tanh(100.0), tanh(-100.0), tanh(f32::INFINITY), tanh(f32::NEG_INFINITY)), (1.0, -1.0, 1.0, -1.0));
        assert_eq!(tanh(0.0), 0.0);
        assert!(tanh(f32::NAN).is_nan());
    }

    #[test]
    fn tables_expand_in_order() {
        // Discriminants in table order (the kernels' op numbers), WGSL functions distinct.
        for (i, op) in UnaryOp::ALL.iter().enumerate() {
            assert_eq!(*op as usize, i);
        }
        for (i, op) in BinaryOp::ALL.iter().enumerate() {
            assert_eq!(*op as usize, i);
        }
        let mut names: Vec<&str> = UnaryOp::ALL.iter().map(|o| o.wgsl_fn()).collect();
        names.extend(BinaryOp::ALL.iter().map(|o| o.wgsl_fn()));
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
        assert_eq!(UnaryOp::Softplus.wgsl_fn(), "u_softplus");
        assert!(
            UnaryOp::Exp.differentiable() && !UnaryOp::GtScalar.differentiable() && !UnaryOp::Fill.differentiable()
        );
        assert!(BinaryOp::Div.differentiable() && !BinaryOp::ReluBackward.differentiable());
        assert_eq!(UnaryOp::PowScalar.eval(-2.0, 3.0), -8.0);
        assert_eq!(UnaryOp::GeScalar.eval(1.0, 1.0), 1.0);
        assert_eq!(BinaryOp::ReluBackward.eval(3.0, -1.0), 0.0);
        assert_eq!(BinaryOp::Maximum.eval(3.0, -1.0), 3.0);
        assert!(BinaryOp::Keep.eval(f32::INFINITY, 0.0) == 0.0 && BinaryOp::Keep.eval(2.0, 1.0) == 2.0);
    }
}
