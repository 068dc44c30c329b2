//! Elementwise test cases shared by `tests/elementwise.rs` (fusion on, the default) and
//! `tests/kernel_options.rs` (fusion off, so every op runs its family's own kernel; and the vec4
//! forms the software adapter widens): unary, scalar
//! and broadcasting binary ops, forward and backward against float64 references, on shapes that
//! are not multiples of any tile or workgroup size.

use kiln::{Device, Tensor};

use crate::{assert_close, data, f64s, tensor, weighted_sum};

type F = fn(f64) -> f64;

fn sig(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

/// d/dx erf(x) = 2 / sqrt(pi) * e^(-x^2).
fn erf_grad(v: f64) -> f64 {
    (-v * v).exp() * std::f64::consts::FRAC_2_SQRT_PI
}

const GELU_C: f64 = 0.797_884_560_802_865_4; // sqrt(2 / pi)

fn gelu_tanh(v: f64) -> f64 {
    0.5 * v * (1.0 + (GELU_C * (v + 0.044715 * v.powi(3))).tanh())
}

fn gelu_tanh_grad(v: f64) -> f64 {
    let t = (GELU_C * (v + 0.044715 * v.powi(3))).tanh();
    0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * 0.044715 * v * v)
}

fn check_unary(
    dev: &Device,
    name: &str,
    shape: &[usize],
    shift: f32,
    op: impl Fn(&Tensor) -> kiln::Result<Tensor>,
    f: F,
    df: F,
) {
    let n: usize = shape.iter().product();
    let xs: Vec<f32> = data(n, 11).iter().map(|v| v * 2.0 + shift).collect();
    let x = Tensor::from_vec(xs.clone(), shape, dev).unwrap().set_requires_grad(true);
    let y = op(&x).unwrap();
    assert_eq!(y.shape(), shape, "{name}");
    let want: Vec<f64> = xs.iter().map(|&v| f(v as f64)).collect();
    assert_close(&y.to_vec().unwrap(), &want, 1e-5);
    let (loss, w) = weighted_sum(&y, 5);
    loss.backward().unwrap();
    let gw: Vec<f64> = xs.iter().zip(&w).map(|(&v, wi)| wi * df(v as f64)).collect();
    assert_close(&x.grad().unwrap().to_vec().unwrap(), &gw, 1e-5);
}

/// Every unary and scalar op, forward and gradient, against float64 on four shapes.
pub fn unary_cases(dev: &Device) {
    for shape in [&[1usize][..], &[3], &[65, 129], &[1000, 7]] {
        check_unary(dev, "neg", shape, 0.0, |x| x.neg(), |v| -v, |_| -1.0);
        check_unary(dev, "exp", shape, 0.0, |x| x.exp(), f64::exp, f64::exp);
        check_unary(dev, "log", shape, 3.0, |x| x.log(), f64::ln, |v| 1.0 / v);
        check_unary(dev, "sqrt", shape, 3.0, |x| x.sqrt(), f64::sqrt, |v| 0.5 / v.sqrt());
        check_unary(dev, "tanh", shape, 0.0, |x| x.tanh(), f64::tanh, |v| 1.0 - v.tanh().powi(2));
        check_unary(dev, "sigmoid", shape, 0.0, |x| x.sigmoid(), sig, |v| sig(v) * (1.0 - sig(v)));
        check_unary(dev, "relu", shape, 0.0, |x| x.relu(), |v| v.max(0.0), |v| if v > 0.0 { 1.0 } else { 0.0 });
        check_unary(dev, "abs", shape, 0.0, |x| x.abs(), f64::abs, f64::signum);
        check_unary(dev, "powf3", shape, 0.0, |x| x.powf(3.0), |v| v.powi(3), |v| 3.0 * v * v);
        check_unary(dev, "powf1.5", shape, 3.0, |x| x.powf(1.5), |v| v.powf(1.5), |v| 1.5 * v.sqrt());
        check_unary(dev, "add_scalar", shape, 0.0, |x| x.add_scalar(2.5), |v| v + 2.5, |_| 1.0);
        check_unary(dev, "sub_scalar", shape, 0.0, |x| x.sub_scalar(2.5), |v| v - 2.5, |_| 1.0);
        check_unary(dev, "mul_scalar", shape, 0.0, |x| x.mul_scalar(-1.5), |v| v * -1.5, |_| -1.5);
        check_unary(dev, "div_scalar", shape, 0.0, |x| x.div_scalar(3.0), |v| v / 3.0, |_| 1.0 / 3.0);
        check_unary(dev, "rsub_scalar", shape, 0.0, |x| x.rsub_scalar(1.0), |v| 1.0 - v, |_| -1.0);
        check_unary(dev, "softplus", shape, 0.0, |x| x.softplus(), |v| v.exp().ln_1p(), sig);
        check_unary(dev, "erf", shape, 0.0, |x| x.erf(), libm::erf, erf_grad);
        let gelu = |v: f64| 0.5 * v * (1.0 + libm::erf(v * std::f64::consts::FRAC_1_SQRT_2));
        let gelu_grad = |v: f64| {
            let phi = (-0.5 * v * v).exp() / (2.0 * std::f64::consts::PI).sqrt();
            0.5 * (1.0 + libm::erf(v * std::f64::consts::FRAC_1_SQRT_2)) + v * phi
        };
        check_unary(dev, "gelu", shape, 0.0, |x| x.gelu(), gelu, gelu_grad);
        check_unary(
            dev,
            "sin",
            shape,
            0.0,
            |x| x.mul_scalar(4.0)?.sin(),
            |v| (4.0 * v).sin(),
            |v| 4.0 * (4.0 * v).cos(),
        );
        check_unary(
            dev,
            "cos",
            shape,
            0.0,
            |x| x.mul_scalar(4.0)?.cos(),
            |v| (4.0 * v).cos(),
            |v| -4.0 * (4.0 * v).sin(),
        );
        check_unary(
            dev,
            "gelu_tanh",
            shape,
            0.0,
            |x| x.mul_scalar(3.0)?.gelu_tanh(),
            |v| gelu_tanh(3.0 * v),
            |v| 3.0 * gelu_tanh_grad(3.0 * v),
        );
        check_unary(
            dev,
            "silu",
            shape,
            0.0,
            |x| x.mul_scalar(3.0)?.silu(),
            |v| 3.0 * v * sig(3.0 * v),
            |v| 3.0 * sig(3.0 * v) * (1.0 + 3.0 * v * (1.0 - sig(3.0 * v))),
        );
        let leaky = |v: f64| if v > 0.0 { v } else { 0.1 * v };
        check_unary(dev, "leaky_relu", shape, 0.0, |x| x.leaky_relu(0.1), leaky, |v| if v > 0.0 { 1.0 } else { 0.1 });
        let clamp = |v: f64| v.clamp(-0.5, 0.25);
        let inside = |v: f64| if (-0.5..=0.25).contains(&v) { 1.0 } else { 0.0 };
        check_unary(dev, "clamp", shape, 0.0, |x| x.clamp(-0.5, 0.25), clamp, inside);
        // Wide inputs: the tails (erf -> +-1) and the switch between the two forms at |x| = 0.5.
        let erf3 = |x: &Tensor| x.mul_scalar(3.0)?.erf();
        check_unary(dev, "erf wide", shape, 0.0, erf3, |v| libm::erf(3.0 * v), |v| 3.0 * erf_grad(3.0 * v));
    }
}

fn bshape(a: &[usize], b: &[usize]) -> Vec<usize> {
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| {
            let da = if i + a.len() >= n { a[i + a.len() - n] } else { 1 };
            let db = if i + b.len() >= n { b[i + b.len() - n] } else { 1 };
            da.max(db)
        })
        .collect()
}

/// Index into a right-aligned broadcast operand of `shape` for output coordinates `c`.
fn bidx(shape: &[usize], out: &[usize], c: &[usize]) -> usize {
    let off = out.len() - shape.len();
    let mut i = 0;
    for d in 0..shape.len() {
        let ci = if shape[d] == 1 { 0 } else { c[d + off] };
        i = i * shape[d] + ci;
    }
    i
}

fn coords(out: &[usize], mut i: usize) -> Vec<usize> {
    let mut c = vec![0; out.len()];
    for d in (0..out.len()).rev() {
        c[d] = i % out[d];
        i /= out[d];
    }
    c
}

type Bin = fn(f64, f64) -> (f64, f64, f64); // value, d/da, d/db

fn check_binary(
    dev: &Device,
    sa: &[usize],
    sb: &[usize],
    op: impl Fn(&Tensor, &Tensor) -> kiln::Result<Tensor>,
    f: Bin,
) {
    let a = tensor(sa, 1, dev, true);
    let b = tensor(sb, 2, dev, true);
    // Keep divisors away from 0.
    let b = Tensor::from_vec(b.to_vec().unwrap().iter().map(|v| v + 2.0).collect(), sb, dev)
        .unwrap()
        .set_requires_grad(true);
    let y = op(&a, &b).unwrap();
    let out = bshape(sa, sb);
    assert_eq!(y.shape(), &out[..]);
    let (av, bv) = (f64s(&a.to_vec().unwrap()), f64s(&b.to_vec().unwrap()));
    let (loss, w) = weighted_sum(&y, 9);
    loss.backward().unwrap();
    let n: usize = out.iter().product();
    let mut want = vec![0.0; n];
    let mut ga = vec![0.0; av.len()];
    let mut gb = vec![0.0; bv.len()];
    for i in 0..n {
        let c = coords(&out, i);
        let (ia, ib) = (bidx(sa, &out, &c), bidx(sb, &out, &c));
        let (v, da, db) = f(av[ia], bv[ib]);
        want[i] = v;
        ga[ia] += w[i] * da;
        gb[ib] += w[i] * db;
    }
    assert_close(&y.to_vec().unwrap(), &want, 1e-5);
    assert_close(&a.grad().unwrap().to_vec().unwrap(), &ga, 1e-5);
    assert_close(&b.grad().unwrap().to_vec().unwrap(), &gb, 1e-5);
}

/// Every broadcasting binary op, forward and both gradients, against float64.
pub fn binary_cases(dev: &Device) {
    // Unfused, the standard kernels: two dims of 64 columns or more the 2-D kernels (the last
    // five four columns per invocation: contiguous, row and column broadcasts, a scalar, and a
    // broadcast first operand), narrower ones and three dims the 1-D kernel. Fused (the
    // default), these run as generated kernels with each index map; the last two are large
    // enough for the four-elements-per-invocation form of those.
    let pairs: [(&[usize], &[usize]); 18] = [
        (&[1], &[1]),
        (&[65, 129], &[65, 129]),
        (&[65, 129], &[129]),
        (&[65, 1], &[1, 129]),
        (&[3], &[]),
        (&[2, 3, 4], &[3, 1]),
        (&[1000, 7], &[1000, 1]),
        (&[65, 132], &[132]),
        (&[5, 3], &[3]),
        (&[4, 260], &[4, 260]),
        (&[5, 260], &[260]),
        (&[5, 260], &[5, 1]),
        (&[12], &[]),
        (&[1, 260], &[3, 260]),
        (&[130, 132], &[132]),
        (&[130, 132], &[130, 1]),
        // Per-channel vectors over [N, C, L] (a BatchNorm's), one and four elements per invocation.
        (&[3, 5, 7], &[5, 1]),
        (&[5, 7, 520], &[1, 7, 1]),
    ];
    for (sa, sb) in pairs {
        check_binary(dev, sa, sb, |a, b| a.add(b), |x, y| (x + y, 1.0, 1.0));
        check_binary(dev, sa, sb, |a, b| a.sub(b), |x, y| (x - y, 1.0, -1.0));
        check_binary(dev, sa, sb, |a, b| a.mul(b), |x, y| (x * y, y, x));
        check_binary(dev, sa, sb, |a, b| a.div(b), |x, y| (x / y, 1.0 / y, -x / (y * y)));
        check_binary(dev, sb, sa, |a, b| a.maximum(b), |x, y| (x.max(y), (x > y) as u8 as f64, (y > x) as u8 as f64));
        check_binary(dev, sa, sb, |a, b| a.minimum(b), |x, y| (x.min(y), (x < y) as u8 as f64, (y < x) as u8 as f64));
        // (b is never 0 here: its zeros, infinities and masks are tested in elementwise.rs.)
        check_binary(dev, sa, sb, |a, b| a.keep_where(b), |x, y| (if y != 0.0 { x } else { 0.0 }, 1.0, 0.0));
    }
}
