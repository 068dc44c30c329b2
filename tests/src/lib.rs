//! Shared helpers for kiln's integration tests: the devices to run each test on, float64
//! reference math, tolerance checks and a finite-difference gradient checker.

use kiln::{Device, Tensor};

/// The GPU device for tests: `None` (the test is skipped, with a note) when no adapter exists,
/// unless `KILN_REQUIRE_GPU=1`, which turns a missing adapter into a failure.
pub fn gpu_device() -> Option<Device> {
    match Device::gpu() {
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
