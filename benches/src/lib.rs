//! kiln's performance workloads, shared by the `workloads` binary. Each prints one line in the
//! common format of the project's performance notes:
//! `workload=<name> impl=<kiln-gpu|kiln-cpu> <key>=<value> ...`.
//!
//! Rules: whole operations are timed, including the final synchronisation (a read-back); inputs
//! are random, never zeros; a checksum is printed so that nothing can be skipped.

use std::time::Instant;

mod attention;
mod cnn;
mod gpt;
mod lstm;
pub use attention::attention;
pub use cnn::{cnn_memory, cnn_parts, cnn_step};
pub use gpt::gpt_step;
pub use lstm::lstm_step;

use kiln::nn::functional::cross_entropy;
use kiln::nn::{Forward, Linear, ReLU, Sequential};
use kiln::optim::{Adam, AdamConfig, Optimizer};
use kiln::{Device, Module, Result, Tensor};

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

/// The training-step protocol of the step workloads: `warmup` steps (the first one's loss read
/// back: loss0), a sync, `steps` timed steps ending with the read-back of the last loss. Returns
/// (loss0, last loss, seconds per step).
pub(crate) fn time_steps(
    dev: &Device,
    mut step: impl FnMut() -> Result<Tensor>,
    warmup: usize,
    steps: usize,
) -> Result<(f32, f32, f64)> {
    let loss0 = step()?.item()?;
    for _ in 1..warmup {
        step()?;
    }
    dev.synchronize()?;
    let t = Instant::now();
    let mut loss = None;
    for _ in 0..steps {
        loss = Some(step()?);
    }
    let l = loss.map(|l| l.item()).transpose()?.unwrap_or(f32::NAN);
    Ok((loss0, l, t.elapsed().as_secs_f64() / steps.max(1) as f64))
}

/// One training step of an MLP 784-512-512-10 (ReLU), batch `batch`, cross-entropy, Adam lr 1e-3,
/// data fixed on the device: 5 warm-up steps, `steps` timed, the loss read back once at the end.
/// Also reports the buffer pool's peak bytes (GPU).
pub fn mlp_step(dev: &Device, batch: usize, steps: usize) -> Result<Vec<String>> {
    let (_, l, dt) = time_steps(dev, mlp_stepper(dev, batch)?, 5, steps)?;
    let peak =
        dev.as_gpu().map(|g| format!(" pool_peak_mib={:.1}", g.pool_stats().peak_bytes as f64 / (1 << 20) as f64));
    Ok(vec![format!(
        "workload=mlp_step impl={} batch={batch} ms={:.3} samples_per_s={:.0} loss={l:.4}{}",
        impl_name(dev),
        dt * 1e3,
        batch as f64 / dt,
        peak.unwrap_or_default()
    )])
}

/// The MLP workload's model, data and optimizer, as a closure running one step.
fn mlp_stepper(dev: &Device, batch: usize) -> Result<impl FnMut() -> Result<Tensor>> {
    kiln::manual_seed(0);
    let model = Sequential::new()
        .push(Linear::new(784, 512, dev)?)
        .push(ReLU)
        .push(Linear::new(512, 512, dev)?)
        .push(ReLU)
        .push(Linear::new(512, 10, dev)?);
    let mut opt = Adam::new(model.named_parameters(), AdamConfig::default())?;
    let x = Tensor::rand(&[batch, 784], dev)?;
    let labels: Vec<u32> = (0..batch).map(|i| ((i * 7919) % 10) as u32).collect();
    let y = Tensor::from_labels(&labels, dev)?;
    Ok(move || -> Result<Tensor> {
        opt.zero_grad();
        let loss = cross_entropy(&model.forward(&x)?, &y)?;
        loss.backward()?;
        opt.step()?;
        Ok(loss)
    })
}

/// Resident set size of this process in bytes (Linux; 0 elsewhere).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

/// The MLP workload run for `steps` steps: GPU pool bytes (live, peak) and host RSS after the
/// warm-up and every `steps / 4` steps, next to the theoretical minimum (parameters, gradients,
/// Adam moments, activations).
pub fn memory(dev: &Device, batch: usize, steps: usize) -> Result<Vec<String>> {
    let step = mlp_stepper(dev, batch)?;
    let params = 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10;
    let acts = batch * (784 + 2 * 512 + 2 * 512 + 10);
    memory_of("memory", dev, step, (4 * params + acts) * 4, steps)
}

/// Runs `step` `steps` times and reports the pool (live + cached, peak) and the host RSS after a
/// warm-up of 50 steps and every `steps / 4` steps, as `workload=<name>` lines with the
/// minimum (`min_bytes`: what the step must hold) next to them.
pub fn memory_of(
    name: &str,
    dev: &Device,
    mut step: impl FnMut() -> Result<Tensor>,
    min_bytes: usize,
    steps: usize,
) -> Result<Vec<String>> {
    let min_mib = min_bytes as f64 / (1 << 20) as f64;
    let mut out = Vec::new();
    let report = |at: usize, out: &mut Vec<String>| {
        let (live, peak) = dev
            .as_gpu()
            .map(|g| {
                let s = g.pool_stats();
                (s.live_bytes + s.cached_bytes, s.peak_bytes)
            })
            .unwrap_or((0, 0));
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        out.push(format!(
            "workload={name} impl={} step={at} pool_mib={:.1} pool_peak_mib={:.1} rss_mib={:.1} minimum_mib={min_mib:.1}",
            impl_name(dev),
            mib(live),
            mib(peak),
            mib(rss_bytes())
        ));
    };
    let warm = 50.min(steps);
    for _ in 0..warm {
        step()?;
    }
    dev.synchronize()?;
    report(warm, &mut out);
    let every = (steps / 4).max(1);
    for i in warm + 1..=steps {
        step()?;
        if i % every == 0 || i == steps {
            dev.synchronize()?;
            report(i, &mut out);
        }
    }
    Ok(out)
}

/// The main example's recipe end to end (30 epochs on the bundled digits): seconds and test
/// accuracy, without the progress bar and checkpoint.
pub fn digits(dev: &Device) -> Result<Vec<String>> {
    use kiln::data::{DataLoader, Dataset};
    kiln::manual_seed(0);
    let (train, test) = kiln_examples::digits(&kiln_examples::default_path(), 0)?;
    let model = Sequential::new()
        .push(Linear::new(64, 128, dev)?)
        .push(ReLU)
        .push(Linear::new(128, 128, dev)?)
        .push(ReLU)
        .push(Linear::new(128, 10, dev)?);
    let mut opt = Adam::new(model.named_parameters(), AdamConfig::default())?;
    let loader = DataLoader::new(&train, 64).shuffle(0).device(dev);
    let t = Instant::now();
    for _ in 0..30 {
        for b in loader.try_iter() {
            let (x, y) = b?;
            opt.zero_grad();
            cross_entropy(&model.forward(&x)?, &y)?.backward()?;
            opt.step()?;
        }
    }
    let (xt, yt) = test.get_batch(&(0..test.len()).collect::<Vec<_>>())?.to_device(dev)?;
    let pred = kiln::no_grad(|| model.forward(&xt)?.argmax(1))?.to_vec_u32()?;
    let secs = t.elapsed().as_secs_f64();
    let yt = yt.to_vec_u32()?;
    let acc = pred.iter().zip(&yt).filter(|(a, b)| a == b).count() as f64 / yt.len() as f64;
    Ok(vec![format!("workload=digits impl={} seconds={secs:.2} test_accuracy={acc:.4}", impl_name(dev))])
}

/// The MLP step's matmul shapes one by one (batch 256), straight through the launcher:
/// GFLOP/s of each kernel variant kiln picks, 20 products each after 3 warm-ups.
pub fn mlp_shapes(dev: &Device) -> Result<Vec<String>> {
    use kiln::kiln_device::kernels::{MatmulDesc, matmul};
    let Some(g) = dev.as_gpu() else { return Ok(vec![]) };
    let b = 256;
    // (label, m, n, k, transpose a, transpose b)
    let shapes = [
        ("fwd1 x.W1^T", b, 512, 784, false, true),
        ("fwd2 h.W2^T", b, 512, 512, false, true),
        ("fwd3 h.W3^T", b, 10, 512, false, true),
        ("dx2 g.W2", b, 512, 512, false, false),
        ("dx3 g.W3", b, 512, 10, false, false),
        ("dW1 g^T.x", 512, 784, b, true, false),
        ("dW2 g^T.h", 512, 512, b, true, false),
        ("dW3 g^T.h", 10, 512, b, true, false),
    ];
    let mut out = Vec::new();
    for (label, m, n, k, ta, tb) in shapes {
        let a = g.upload(bytemuck_bytes(&vec![0.5f32; m * k]), "bench")?;
        let bb = g.upload(bytemuck_bytes(&vec![0.25f32; k * n]), "bench")?;
        let (a_rs, a_cs) = if ta { (1, m) } else { (k, 1) };
        let (b_rs, b_cs) = if tb { (1, k) } else { (n, 1) };
        let d = MatmulDesc { m, n, k, batch: 1, a_rs, a_cs, a_bs: 0, b_rs, b_cs, b_bs: 0 };
        for _ in 0..3 {
            matmul(g, &a, &bb, &d)?;
        }
        g.synchronize()?;
        // The best of 6 blocks of 10: on a shared 2-core machine single blocks vary by 20%.
        let mut dt = f64::INFINITY;
        for _ in 0..6 {
            let t = Instant::now();
            for _ in 0..10 {
                matmul(g, &a, &bb, &d)?;
            }
            g.synchronize()?;
            dt = dt.min(t.elapsed().as_secs_f64() / 10.0);
        }
        out.push(format!(
            "workload=mlp_shapes impl={} shape=\"{label}\" m={m} n={n} k={k} ms={:.3} gflops={:.2}",
            impl_name(dev),
            dt * 1e3,
            2.0 * (m * n * k) as f64 / dt / 1e9
        ));
    }
    Ok(out)
}

fn bytemuck_bytes(v: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding and any byte pattern is a valid u8.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
}
