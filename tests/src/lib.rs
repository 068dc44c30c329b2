//! Shared helpers for kiln's integration tests: the devices to run each test on, float64
//! reference math, tolerance checks and a finite-difference gradient checker.

use kiln::{Device, Tensor};

pub mod elementwise_cases;

/// The GPU device for tests: `None` (the test is skipped, with a note) when no adapter exists,
/// unless `KILN_REQUIRE_GPU=1`, which turns a missing adapter into a failure.
pub fn gpu_device() -> Option<Device> {
    or_skip(Device::gpu())
}

/// A GPU device of its own with `options` (see [`gpu_device`] for what happens without one).
pub fn gpu_device_with(options: kiln::DeviceOptions) -> Option<Device> {
    or_skip(Device::gpu_with(options))
}

fn or_skip(found: kiln::Result<Device>) -> Option<Device> {
    match found {
        Ok(d) => Some(d),
        Err(e) => {
            if std::env::var("KILN_REQUIRE_GPU").as_deref() == Ok("1") {
                panic!("KILN_REQUIRE_GPU=1 but no GPU device: {e}");
            }
            eprintln!("skipping GPU test: {e}");
            None
        }
    }
}

/// Writes one test body for each device: `name::cpu` and `name::gpu`.
#[macro_export]
macro_rules! device_test {
    ($name:ident, |$dev:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn run($dev: &kiln::Device) -> kiln::Result<()> {
                $body
                #[allow(unreachable_code)]
                Ok(())
            }
            #[test]
            fn cpu() {
                run(&kiln::Device::cpu()).unwrap();
            }
            #[test]
            fn gpu() {
                if let Some(d) = $crate::gpu_device() {
                    run(&d).unwrap();
                }
            }
        }
    };
}

/// A deterministic pseudo-random vector in [-1, 1) (independent of kiln's RNG).
pub fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}

/// Asserts that `got` matches the float64 `want` elementwise within `rtol * max(1, |want|)`.
#[track_caller]
pub fn assert_close(got: &[f32], want: &[f64], rtol: f64) {
    assert_eq!(got.len(), want.len(), "length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let tol = rtol * w.abs().max(1.0);
        assert!(
            (g as f64 - w).abs() <= tol || (g.is_nan() && w.is_nan()),
            "element {i}: got {g}, want {w} (tol {tol:e})"
        );
    }
}

/// A tensor of `data(n, seed)` in `shape`, optionally requiring grad.
pub fn tensor(shape: &[usize], seed: u64, dev: &Device, grad: bool) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(data(n, seed), shape, dev).unwrap().set_requires_grad(grad)
}

/// f32 values as f64.
pub fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// `sum(y * w)` for a fixed pseudo-random `w`, and `w` in f64: a loss whose gradient is `w`.
pub fn weighted_sum(y: &Tensor, seed: u64) -> (Tensor, Vec<f64>) {
    let w = Tensor::from_vec(data(y.numel(), seed), y.shape(), &y.device()).unwrap();
    (y.mul(&w).unwrap().sum_all().unwrap(), f64s(&w.to_vec().unwrap()))
}

/// C = A @ B in f64 for row-major [m,k] and [k,n].
pub fn mm(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for p in 0..k {
            for j in 0..n {
                c[i * n + j] += a[i * k + p] * b[p * n + j];
            }
        }
    }
    c
}

/// The transpose of a row-major [r, c] matrix.
pub fn tr(a: &[f64], r: usize, c: usize) -> Vec<f64> {
    let mut t = vec![0.0; r * c];
    for i in 0..r {
        for j in 0..c {
            t[j * r + i] = a[i * c + j];
        }
    }
    t
}

/// Checks a (possibly batched) matmul against f64, including both gradients.
#[track_caller]
pub fn check_matmul(dev: &Device, sa: &[usize], sb: &[usize], rtol: f64) {
    let a = tensor(sa, 21, dev, true);
    let b = tensor(sb, 22, dev, true);
    let y = a.matmul(&b).unwrap();
    let (m, k) = (sa[sa.len() - 2], sa[sa.len() - 1]);
    let n = sb[sb.len() - 1];
    // The batch dims broadcast (right-aligned, size 1 stretches); z walks them row-major and
    // za / zb are the matching batch indices of a and b.
    let (la, lb) = (&sa[..sa.len() - 2], &sb[..sb.len() - 2]);
    let r = la.len().max(lb.len());
    let pad = |l: &[usize]| -> Vec<usize> { std::iter::repeat_n(1, r - l.len()).chain(l.iter().copied()).collect() };
    let (pa, pb) = (pad(la), pad(lb));
    let full: Vec<usize> = pa.iter().zip(&pb).map(|(&x, &y)| x.max(y)).collect();
    let batch: usize = full.iter().product();
    let index = |own: &[usize], z: usize| -> usize {
        let mut rest = z;
        let mut coords = vec![0; r];
        for d in (0..r).rev() {
            coords[d] = rest % full[d];
            rest /= full[d];
        }
        coords.iter().zip(own).fold(0, |acc, (&c, &sz)| acc * sz + if sz == 1 { 0 } else { c })
    };
    let (av, bv) = (f64s(&a.to_vec().unwrap()), f64s(&b.to_vec().unwrap()));
    let (loss, w) = weighted_sum(&y, 23);
    loss.backward().unwrap();
    let mut want = Vec::new();
    let mut ga = vec![0.0; av.len()];
    let mut gb = vec![0.0; bv.len()];
    for z in 0..batch {
        let (za, zb) = (index(&pa, z), index(&pb, z));
        let a_z = &av[za * m * k..(za + 1) * m * k];
        let b_z = &bv[zb * k * n..(zb + 1) * k * n];
        want.extend(mm(a_z, b_z, m, k, n));
        let g = &w[z * m * n..(z + 1) * m * n];
        for (acc, v) in ga[za * m * k..].iter_mut().zip(mm(g, &tr(b_z, k, n), m, n, k)) {
            *acc += v;
        }
        for (acc, v) in gb[zb * k * n..].iter_mut().zip(mm(&tr(a_z, m, k), g, k, m, n)) {
            *acc += v;
        }
    }
    assert_close(&y.to_vec().unwrap(), &want, rtol);
    assert_close(&a.grad().unwrap().to_vec().unwrap(), &ga, rtol);
    assert_close(&b.grad().unwrap().to_vec().unwrap(), &gb, rtol);
}

/// Products shaped to reach every matmul kernel (the subgroup kernels on software adapters,
/// the vec4 tiles elsewhere): each forward and both gradients against f64, with edges that are
/// not multiples of any tile. The backward of `x @ w` runs the `nt` form (g @ w^T) and the `tn`
/// form (x^T @ g); `linear` (x @ w^T, w stored [N, K] and read transposed) runs `nt` forward.
#[track_caller]
pub fn matmul_kernel_cases(dev: &Device) {
    // N < 64 takes the 32-column subgroup kernels, N >= 64 the 64-column ones (32- or 64-row
    // blocks: M = 33, 70, 130, 200 end inside both): (40, 68, 72)
    // reaches all three 64-column forms (x @ w, g @ w^T, x^T @ g) with edges past their tiles;
    // (520, 8, 516) a large product with edges past both tiles.
    for (m, k, n) in [(130, 36, 44), (70, 12, 20), (33, 64, 65), (200, 16, 36), (40, 68, 72), (520, 8, 516)] {
        check_matmul(dev, &[m, k], &[k, n], 1e-5);
    }
    // Thin products: K = 10 or 7 (A not readable by vec4: scalar loads, one K at a time), and
    // their weight gradients with M = 10 or 7 (lanes own columns), with edges past the tiles.
    for (m, k, n) in [(70, 10, 68), (66, 7, 132)] {
        check_matmul(dev, &[m, k], &[k, n], 1e-5);
    }
    check_matmul(dev, &[3, 70, 32], &[3, 32, 36], 1e-5);
    check_matmul(dev, &[2, 66, 40], &[40, 12], 1e-5);
    // linear: x [M, K] @ w^T with w stored [N, K]; N = 10 takes the narrow `nt`, N = 70 the
    // 64-column one.
    for (m, k, n) in [(70, 12, 10), (130, 20, 44), (66, 12, 70), (65, 8, 3)] {
        let x = tensor(&[m, k], 41, dev, true);
        let w = tensor(&[n, k], 42, dev, true);
        let y = Tensor::linear(&x, &w, None).unwrap();
        let (xv, wv) = (f64s(&x.to_vec().unwrap()), f64s(&w.to_vec().unwrap()));
        assert_close(&y.to_vec().unwrap(), &mm(&xv, &tr(&wv, n, k), m, k, n), 1e-5);
        let (loss, g) = weighted_sum(&y, 43);
        loss.backward().unwrap();
        assert_close(&x.grad().unwrap().to_vec().unwrap(), &mm(&g, &wv, m, n, k), 1e-5);
        assert_close(&w.grad().unwrap().to_vec().unwrap(), &mm(&tr(&g, m, n), &xv, n, m, k), 1e-5);
    }
}

/// Checks autograd's gradient of `f` (which maps the inputs to a one-element tensor) against
/// central finite differences computed in float64 on the host by `f64_f`, which must compute
/// the same function as `f` in float64.
#[track_caller]
pub fn check_gradients(
    inputs: &[Tensor],
    f: impl Fn(&[Tensor]) -> kiln::Result<Tensor>,
    f64_f: impl Fn(&[Vec<f64>]) -> f64,
    rtol: f64,
) {
    let loss = f(inputs).unwrap();
    loss.backward().unwrap();
    let vals: Vec<Vec<f64>> = inputs.iter().map(|t| f64s(&t.to_vec().unwrap())).collect();
    for (ti, t) in inputs.iter().enumerate() {
        let g = t.grad().expect("input has a gradient").to_vec().unwrap();
        for j in 0..vals[ti].len() {
            let h = 1e-6 * vals[ti][j].abs().max(1.0);
            let mut plus = vals.clone();
            plus[ti][j] += h;
            let mut minus = vals.clone();
            minus[ti][j] -= h;
            let num = (f64_f(&plus) - f64_f(&minus)) / (2.0 * h);
            let tol = rtol * num.abs().max(1e-2);
            assert!(
                (g[j] as f64 - num).abs() <= tol,
                "input {ti} element {j}: autograd {} vs finite difference {num}",
                g[j]
            );
        }
    }
}

/// The path of a committed fixture file (tests/fixtures/NAME).
pub fn fixture(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

/// A JSON list of plain strings, as the fixture metadata stores names.
pub fn json_list(s: &str) -> Vec<String> {
    s.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(|x| x.trim().trim_matches('"').to_string())
        .collect()
}
