//! Soak: training steps and forward passes (with and without no_grad) keep GPU pool bytes and
//! host RSS flat after warm-up. The CI variant runs a few hundred steps; the long one (10,000
//! MLP steps per device) is ignored by default: `cargo test -p kiln-tests --test soak -- --ignored`.

use std::sync::Mutex;

use kiln::nn::functional::cross_entropy;
use kiln::nn::{Forward, Linear, ReLU, Sequential};
use kiln::optim::{Adam, AdamConfig, Optimizer};
use kiln::prelude::*;
use kiln_tests::gpu_device;

static SERIAL: Mutex<()> = Mutex::new(());

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()))
        .map(|p| p * 4096.0 / (1 << 20) as f64)
        .unwrap_or(0.0)
}

fn pool_mib(dev: &Device) -> f64 {
    dev.as_gpu()
        .map(|g| {
            let s = g.pool_stats();
            (s.live_bytes + s.cached_bytes) as f64 / (1 << 20) as f64
        })
        .unwrap_or(0.0)
}

/// Runs `steps` MLP training steps and as many forward passes with and without no_grad;
/// returns (pool, rss) after warm-up and at the end of each phase.
fn soak(dev: &Device, steps: usize) -> Vec<(String, f64, f64)> {
    kiln::manual_seed(1);
    let m =
        Sequential::new().push(Linear::new(64, 128, dev).unwrap()).push(ReLU).push(Linear::new(128, 10, dev).unwrap());
    let mut opt = Adam::new(m.named_parameters(), AdamConfig::default()).unwrap();
    let x = Tensor::rand(&[32, 64], dev).unwrap();
    let y = Tensor::from_labels(&(0..32).map(|i| i % 10).collect::<Vec<u32>>(), dev).unwrap();
    let mut marks = Vec::new();
    let mut mark = |name: &str| {
        dev.synchronize().unwrap();
        marks.push((name.to_string(), pool_mib(dev), rss_mib()));
    };
    let warm = 50;
    for i in 0..steps + warm {
        opt.zero_grad();
        cross_entropy(&m.forward(&x).unwrap(), &y).unwrap().backward().unwrap();
        opt.step().unwrap();
        if i + 1 == warm {
            mark("train warm");
        }
    }
    mark("train end");
    for _ in 0..steps {
        let _ = kiln::no_grad(|| m.forward(&x)).unwrap();
    }
    mark("no_grad forward end");
    for _ in 0..steps {
        let _ = m.forward(&x).unwrap().sum_all().unwrap(); // graph built, then dropped
    }
    mark("forward end");
    marks
}

fn check(dev: &Device, steps: usize, rss_slack_mib: f64) {
    let marks = soak(dev, steps);
    for (n, p, r) in &marks {
        eprintln!("{} {n}: pool {p:.2} MiB, rss {r:.1} MiB", dev.name());
    }
    let (_, p0, r0) = &marks[0];
    for (n, p, r) in &marks[1..] {
        assert!(p <= p0, "{n}: pool grew from {p0} to {p} MiB");
        assert!(r - r0 < rss_slack_mib, "{n}: RSS grew from {r0:.1} to {r:.1} MiB");
    }
}

#[test]
fn short_soak_cpu() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    check(&Device::cpu(), 300, 16.0);
}

#[test]
fn short_soak_gpu() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(d) = gpu_device() {
        check(&d, 300, 16.0);
    }
}

#[test]
#[ignore = "long soak: 10,000 steps per device"]
fn long_soak() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    check(&Device::cpu(), 10_000, 16.0);
    if let Some(d) = gpu_device() {
        check(&d, 10_000, 16.0);
    }
}
