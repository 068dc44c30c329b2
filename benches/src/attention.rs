//! The `attention` workload: causal self-attention forward + backward at B = 1, H = 4, D = 64
//! for L = 256, 1024, 4096, kiln's `scaled_dot_product_attention` in its fused and blocked
//! forms against the unfused composition written out (matmul, masked softmax, matmul): the GPU pool's peak bytes above the inputs,
//! each on a device of its own so that peaks do not mix, and the time of one forward+backward.

use std::time::Instant;

use kiln::nn::functional::scaled_dot_product_attention;
use kiln::{AttentionPolicy, Device, DeviceOptions, Result, Tensor};

/// One causal forward+backward of either form; returns the sum of the gradients' sums (read
/// back, so the work is done).
fn step(q: &Tensor, k: &Tensor, v: &Tensor, sdpa: bool) -> Result<f32> {
    let l = q.shape()[2];
    let y = if sdpa {
        scaled_dot_product_attention(q, k, v, None, true)?
    } else {
        let scores = q.matmul(&k.transpose(2usize, 3usize)?)?.mul_scalar(1.0 / (q.shape()[3] as f32).sqrt())?;
        let above = Tensor::ones(&[l, l], &q.device())?.triu(1)?;
        scores.masked_fill(&above, f32::NEG_INFINITY)?.softmax(-1i64)?.matmul(v)?
    };
    y.sum_all()?.backward()?;
    let g = q.grad().unwrap().sum_all()?.add(&k.grad().unwrap().sum_all()?)?.add(&v.grad().unwrap().sum_all()?)?;
    g.item()
}

/// Peak pool MiB above the inputs and ms per forward+backward (timed at `time_it` only).
fn measure(dev: &Device, l: usize, sdpa: bool, time_it: bool) -> Result<(f64, Option<f64>)> {
    kiln::manual_seed(0);
    let shape = [1, 4, l, 64];
    let q = Tensor::randn(&shape, dev)?.set_requires_grad(true);
    let k = Tensor::randn(&shape, dev)?.set_requires_grad(true);
    let v = Tensor::randn(&shape, dev)?.set_requires_grad(true);
    dev.synchronize()?;
    let stats = || dev.as_gpu().map(|g| g.pool_stats()).unwrap_or_default();
    let base = stats().live_bytes + stats().cached_bytes;
    step(&q, &k, &v, sdpa)?;
    let peak = (stats().peak_bytes.saturating_sub(base)) as f64 / (1 << 20) as f64;
    let ms = if time_it {
        let t = Instant::now();
        for _ in 0..3 {
            for x in [&q, &k, &v] {
                x.zero_grad();
            }
            step(&q, &k, &v, sdpa)?;
        }
        Some(t.elapsed().as_secs_f64() / 3.0 * 1e3)
    } else {
        None
    };
    Ok((peak, ms))
}

/// The workload's lines (GPU only: the fused kernels are GPU kernels).
pub fn attention(dev: &Device) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    if !dev.is_gpu() {
        return Ok(lines);
    }
    for l in [256usize, 1024, 4096] {
        for (form, attention) in [
            ("fused", AttentionPolicy::Fused),
            ("blocked", AttentionPolicy::Blocked),
            ("composed", AttentionPolicy::Composed),
        ] {
            // Each form forced (by default a software adapter composes problems this small).
            let own = Device::gpu_with(DeviceOptions { attention, ..DeviceOptions::default() })?;
            let sdpa = attention != AttentionPolicy::Composed;
            let head = format!("workload=attention impl={} form={form} l={l}", crate::impl_name(dev));
            // The composition's scores may not fit one buffer: reported, not fatal.
            lines.push(match measure(&own, l, sdpa, l == 1024) {
                Ok((peak, ms)) => {
                    format!("{head} peak_mib={peak:.1}{}", ms.map(|m| format!(" ms={m:.1}")).unwrap_or_default())
                }
                Err(e) => format!("{head} error=\"{e}\""),
            });
        }
    }
    Ok(lines)
}
