//! The `gpt_step` workload (the project's workload description): one AdamW step of a
//! nanoGPT-style character GPT (vocab 76, block 64, batch 12, 4 layers, 4 heads, 128 wide, biases
//! in the Linears and LayerNorms, the head tied to the token embedding), nanoGPT's init and its
//! two parameter groups (weight decay 0.1 on rank >= 2, 0 on the rest), fixed random tokens.

use kiln::optim::{AdamConfig, AdamW, Optimizer};
use kiln::prelude::*;
use kiln::{Device, Result, Tensor};
use kiln_examples::gpt::{Gpt, GptConfig};

use crate::impl_name;

/// The model, its optimizer and a step over fixed data.
fn gpt_stepper(dev: &Device, batch: usize) -> Result<impl FnMut() -> Result<Tensor>> {
    kiln::manual_seed(0);
    let cfg = GptConfig { bias: true, ..GptConfig::small(76) };
    let model = Gpt::new(cfg, dev)?;
    let (decay, rest): (Vec<_>, Vec<_>) = model.named_parameters().into_iter().partition(|(_, p)| p.shape().len() >= 2);
    let adam = AdamConfig { lr: 1e-3, betas: (0.9, 0.95), eps: 1e-8, weight_decay: 0.1, ..AdamConfig::adamw() };
    let mut opt = AdamW::new(decay, adam)?;
    opt.add_param_group(rest, AdamConfig { weight_decay: 0.0, ..adam })?;
    let n = batch * cfg.block_size;
    // Fixed pseudo-random ids and targets (xorshift): no pattern a model could learn.
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut draw = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s % 76) as u32
    };
    let ids: Vec<u32> = (0..n).map(|_| draw()).collect();
    let next: Vec<u32> = (0..n).map(|_| draw()).collect();
    let idx = Tensor::from_labels(&ids, dev)?.reshape(&[batch, cfg.block_size])?;
    let tgt = Tensor::from_labels(&next, dev)?.reshape(&[batch, cfg.block_size])?;
    Ok(move || -> Result<Tensor> {
        opt.zero_grad();
        let loss = model.loss(&idx, &tgt)?;
        loss.backward()?;
        opt.step()?;
        Ok(loss)
    })
}

/// 3 warm-up steps and `steps` timed ones (`time_steps`).
pub fn gpt_step(dev: &Device, steps: usize) -> Result<Vec<String>> {
    let batch = 12;
    let count = || dev.as_gpu().map(|g| g.dispatches());
    let before = count();
    let (loss0, l, dt) = crate::time_steps(dev, gpt_stepper(dev, batch)?, 3, steps)?;
    // Compute dispatches per step on a GPU device (all steps alike): what a software adapter
    // pays a fixed cost for each of.
    let per_step = match (before, count()) {
        (Some(a), Some(b)) => format!(" dispatches_per_step={}", (b - a) / (3 + steps.max(1)) as u64),
        _ => String::new(),
    };
    Ok(vec![format!(
        "workload=gpt_step impl={} ms={:.3} tokens_per_s={:.0} loss={l:.4} loss0={loss0:.4}{per_step}",
        impl_name(dev),
        dt * 1e3,
        (batch * 64) as f64 / dt
    )])
}
