//! A character-level GPT on the bundled Shakespeare text (data/shakespeare.txt.gz, split 90/10 as
//! nanoGPT does), with nanoGPT's small CPU configuration and defaults: 4 layers, 4 heads,
//! 128-dimensional embeddings, block 64, batch 12, no biases, no dropout, `lm_head` tied to
//! `wte`, nanoGPT's init; AdamW lr 1e-3, betas (0.9, 0.99), weight decay 0.1 on 2-D weights only,
//! 100 warm-up iterations then cosine decay to 1e-4 at 2000, gradient clipping at norm 1.0, 2000
//! iterations. The model is `examples/gpt/` (nanoGPT's module names: its checkpoints load).
//!
//! ```text
//! cargo run --release -p kiln-examples --example train_gpt -- \
//!     [--device cpu|gpu|software] [--iters N] [--seed S] [--eval-interval N] [--eval-iters N]
//!     [--checkpoint PATH] [--resume] [--sample-len N] [--temperature T] [--top-k K]
//! ```
//!
//! The validation loss is the mean over `--eval-iters` (200) random validation batches, every
//! `--eval-interval` iterations and at the end; a checkpoint (model and optimizer) is written at
//! each evaluation, and `--resume` continues from it (with fresh batch draws). It ends with a
//! text sample and the line `val_loss=<x> seconds=<y> device=<name>`. The command line, the loop
//! and its ending are `examples/src/lm_train.rs`, shared with `train_lstm`.

use kiln::optim::{AdamConfig, AdamW, Optimizer};
use kiln::prelude::*;
use kiln::train::Checkpoint;
use kiln_examples::gpt::{Gpt, GptConfig};
use kiln_examples::lm_train::{LmArgs, LmTraining, optimize, resume, train};
use kiln_examples::text::{Rng, draw, load_text, shakespeare_path};

/// `batch` random windows of `block + 1` ids: inputs and next-token targets, [batch, block].
fn get_batch(data: &[u32], rng: &mut Rng, batch: usize, block: usize, dev: &Device) -> Result<(Tensor, Tensor)> {
    let (mut x, mut y) = (Vec::with_capacity(batch * block), Vec::with_capacity(batch * block));
    for _ in 0..batch {
        let i = rng.below(data.len() - block);
        x.extend_from_slice(&data[i..i + block]);
        y.extend_from_slice(&data[i + 1..i + block + 1]);
    }
    Ok((
        Tensor::from_labels(&x, dev)?.reshape(&[batch, block])?,
        Tensor::from_labels(&y, dev)?.reshape(&[batch, block])?,
    ))
}

/// nanoGPT's schedule: linear warm-up over 100 iterations, cosine decay to 1e-4 at 2000.
fn get_lr(it: u64) -> f32 {
    let (lr, min_lr, warmup, decay) = (1e-3f32, 1e-4f32, 100u64, 2000u64);
    if it < warmup {
        return lr * (it + 1) as f32 / (warmup + 1) as f32;
    }
    if it > decay {
        return min_lr;
    }
    let ratio = (it - warmup) as f32 / (decay - warmup) as f32;
    min_lr + 0.5 * (1.0 + (std::f32::consts::PI * ratio).cos()) * (lr - min_lr)
}

/// The mean loss over `iters` random batches of `data`, in eval mode without gradients; the
/// losses are summed on the device and read back once.
fn estimate_loss(model: &Gpt, data: &[u32], rng: &mut Rng, iters: usize, dev: &Device) -> Result<f32> {
    model.eval();
    let block = model.config().block_size;
    let total = no_grad(|| -> Result<Tensor> {
        let mut total = Tensor::zeros(&[], dev)?;
        for _ in 0..iters {
            let (x, y) = get_batch(data, rng, 12, block, dev)?;
            total = total.add(&model.loss(&x, &y)?)?;
        }
        Ok(total)
    })?;
    model.train();
    Ok(total.item()? / iters as f32)
}

/// The model, its optimizer and the text, as the shared loop drives them.
struct Run<'a> {
    model: Gpt,
    opt: AdamW,
    params: Vec<Parameter>,
    train: &'a [u32],
    val: &'a [u32],
    chars: &'a [char],
    rng: Rng,
    eval_rng: Rng,
    eval_iters: usize,
    dev: Device,
}

impl LmTraining for Run<'_> {
    /// A random batch of 12 at the schedule's learning rate.
    fn step(&mut self, it: u64) -> Result<Tensor> {
        self.opt.set_lr(get_lr(it));
        let (x, y) = get_batch(self.train, &mut self.rng, 12, self.model.config().block_size, &self.dev)?;
        optimize(&self.model.loss(&x, &y)?, &mut self.opt, &self.params)
    }

    fn evaluate(&mut self) -> Result<f32> {
        estimate_loss(&self.model, self.val, &mut self.eval_rng, self.eval_iters, &self.dev)
    }

    fn checkpoint(&self, step: u64) -> Result<Checkpoint> {
        Checkpoint::capture(&self.model, Some(&self.opt), None, 0, step)
    }

    fn note(&self, it: u64) -> String {
        format!("  lr {:.2e}", get_lr(it))
    }

    /// `len` characters continuing a newline, each drawn from the softmax of the last
    /// position's logits / temperature, restricted to the `top_k` most likely.
    fn sample(&mut self, len: usize, temperature: f32, top_k: usize) -> Result<String> {
        self.model.eval();
        let block = self.model.config().block_size;
        let mut ids: Vec<u32> = vec![self.chars.binary_search(&'\n').unwrap_or(0) as u32];
        for _ in 0..len {
            let ctx = &ids[ids.len().saturating_sub(block)..];
            let x = Tensor::from_labels(ctx, &self.dev)?.reshape(&[1, ctx.len()])?;
            let logits = no_grad(|| self.model.logits(&x))?;
            let v = logits.shape()[2];
            let last = logits.reshape(&[ctx.len(), v])?.narrow(0usize, ctx.len() - 1, 1)?.to_vec()?;
            ids.push(draw(&last, temperature, top_k, &mut self.rng) as u32);
        }
        Ok(ids[1..].iter().map(|&i| self.chars[i as usize]).collect())
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let Some(args) = LmArgs::defaults("train_gpt").parse("train_gpt", &["--eval-iters"], std::env::args().skip(1))?
    else {
        return Ok(());
    };
    let dev = args.device();
    kiln::manual_seed(args.seed);
    let (chars, ids) = load_text(&shakespeare_path())?;
    let split = ids.len() * 9 / 10;
    let (train_text, val) = (&ids[..split], &ids[split..]);
    let model = Gpt::new(GptConfig::small(chars.len()), &dev)?;
    println!(
        "kiln train_gpt: {} characters ({} train / {} val), vocabulary {}, {} parameters, device: {}",
        ids.len(),
        train_text.len(),
        val.len(),
        chars.len(),
        model.num_parameters().total,
        dev.name()
    );
    // nanoGPT's two groups: weight decay on the 2-D weights (embeddings included), none elsewhere.
    let (decay, rest): (Vec<_>, Vec<_>) = model.named_parameters().into_iter().partition(|(_, p)| p.shape().len() >= 2);
    let adam = AdamConfig { lr: get_lr(0), betas: (0.9, 0.99), eps: 1e-8, weight_decay: 0.1, ..AdamConfig::adamw() };
    let mut opt = AdamW::new(decay, adam)?;
    opt.add_param_group(rest, AdamConfig { weight_decay: 0.0, ..adam })?;
    let start = resume(&args, &model, &mut opt, &dev)?;
    model.train();
    let params = model.parameters();
    let (rng, eval_rng) = (Rng(args.draw_seed(start)), Rng(0xD1B5_4A32_D192_ED03 ^ args.seed.wrapping_add(7)));
    let mut run = Run {
        model,
        opt,
        params,
        train: train_text,
        val,
        chars: &chars,
        rng,
        eval_rng,
        eval_iters: args.eval_iters,
        dev: dev.clone(),
    };
    train(&args, start, &mut run, &dev)
}
