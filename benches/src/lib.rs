//! kiln's performance workloads, shared by the `workloads` binary. Each prints one line in the
//! common format of the project's performance notes:
//! `workload=<name> impl=<kiln-gpu|kiln-cpu> <key>=<value> ...`.
//!
//! Rules: whole operations are timed, including the final synchronisation (a read-back); inputs
//! are random, never zeros; a checksum is printed so that nothing can be skipped.

use std::time::Instant;

use kiln::{Device, Result, Tensor};

/// "kiln-gpu" or "kiln-cpu".
pub fn impl_name(dev: &Device) -> &'static str {
    if dev.is_gpu() { "kiln-gpu" } else { "kiln-cpu" }
}

/// Square matmul C = A·B for each n: 3 warm-up products, then 10 chained products (`c = c·b`)
/// and one read-back.
pub fn matmul(dev: &Device, sizes: &[usize]) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    for &n in sizes {
        kiln::manual_seed(0);
        let a = Tensor::rand(&[n, n], dev)?;
        let b = Tensor::rand(&[n, n], dev)?.div_scalar(n as f32)?;
        for _ in 0..3 {
            a.matmul(&b)?.sum_all()?.item()?;
        }
        let reps = 10;
        let t = Instant::now();
        let mut c = a.clone();
        for _ in 0..reps {
            c = c.matmul(&b)?;
        }
        let v = c.to_vec()?;
        let dt = t.elapsed().as_secs_f64() / reps as f64;
        let cs: f64 = v.iter().map(|&x| x as f64).sum();
        let gflops = 2.0 * (n as f64).powi(3) / dt / 1e9;
        lines.push(format!(
            "workload=matmul impl={} n={n} ms={:.3} gflops={gflops:.2} checksum={cs:.4}",
            impl_name(dev),
            dt * 1e3
        ));
    }
    Ok(lines)
}

/// 1000 chained elementwise adds on a [1024] tensor, one read-back at the end.
pub fn small_ops(dev: &Device) -> Result<Vec<String>> {
    kiln::manual_seed(0);
    let x = Tensor::rand(&[1024], dev)?;
    let one = Tensor::ones(&[1024], dev)?;
    x.add(&one)?.to_vec()?;
    let n = 1000;
    let t = Instant::now();
    let mut y = x;
    for _ in 0..n {
        y = y.add(&one)?;
    }
    let v = y.to_vec()?;
    let dt = t.elapsed().as_secs_f64();
    Ok(vec![format!(
        "workload=small_ops impl={} us_per_op={:.2} check={:.2}",
        impl_name(dev),
        dt / n as f64 * 1e6,
        v[0]
    )])
}
