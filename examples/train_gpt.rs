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
//! text sample and the line `val_loss=<x> seconds=<y> device=<name>`.

use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use kiln::optim::{AdamConfig, AdamW, Optimizer, clip_grad_norm_};
use kiln::prelude::*;
use kiln::train::Checkpoint;
use kiln_examples::device_arg;
use kiln_examples::gpt::{Gpt, GptConfig};
use kiln_examples::text::{Rng, draw, load_text, shakespeare_path};

struct Args {
    device: Device,
    iters: u64,
    seed: u64,
    eval_interval: u64,
    eval_iters: usize,
    checkpoint: PathBuf,
    resume: bool,
    sample_len: usize,
    temperature: f32,
    top_k: usize,
}

const USAGE: &str = "usage: train_gpt [--device cpu|gpu|software] [--iters N] [--seed S] [--eval-interval N] \
[--eval-iters N] [--checkpoint PATH] [--resume] [--sample-len N] [--temperature T] [--top-k K]";

fn parse_args() -> std::result::Result<Args, String> {
    let mut args = Args {
        device: Device::best(),
        iters: 2000,
        seed: 0,
        eval_interval: 500,
        eval_iters: 200,
        checkpoint: PathBuf::from("target/checkpoints/train_gpt.safetensors"),
        resume: false,
        sample_len: 300,
        temperature: 0.8,
        top_k: 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value\n{USAGE}"));
        let num = |v: String| v.parse::<u64>().map_err(|e| format!("{a}: {e}"));
        match a.as_str() {
            "--device" => args.device = device_arg(&val()?)?,
            "--iters" => args.iters = num(val()?)?,
            "--seed" => args.seed = num(val()?)?,
            "--eval-interval" => args.eval_interval = num(val()?)?.max(1),
            "--eval-iters" => args.eval_iters = num(val()?)?.max(1) as usize,
            "--checkpoint" => args.checkpoint = PathBuf::from(val()?),
            "--resume" => args.resume = true,
            "--sample-len" => args.sample_len = num(val()?)? as usize,
            "--temperature" => args.temperature = val()?.parse().map_err(|e| format!("--temperature: {e}"))?,
            "--top-k" => args.top_k = num(val()?)? as usize,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if args.temperature.is_nan() || args.temperature <= 0.0 {
        return Err("--temperature must be positive".into());
    }
    Ok(args)
}

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

/// `len` characters continuing `start`, each drawn from the softmax of the last position's
/// logits / temperature, restricted to the `top_k` most likely.
fn sample(model: &Gpt, chars: &[char], rng: &mut Rng, args: &Args, dev: &Device) -> Result<String> {
    model.eval();
    let block = model.config().block_size;
    let mut ids: Vec<u32> = vec![chars.binary_search(&'\n').unwrap_or(0) as u32];
    for _ in 0..args.sample_len {
        let ctx = &ids[ids.len().saturating_sub(block)..];
        let x = Tensor::from_labels(ctx, dev)?.reshape(&[1, ctx.len()])?;
        let logits = no_grad(|| model.logits(&x))?;
        let v = logits.shape()[2];
        let last = logits.reshape(&[ctx.len(), v])?.narrow(0usize, ctx.len() - 1, 1)?.to_vec()?;
        let pick = draw(&last, args.temperature, args.top_k, rng);
        ids.push(pick as u32);
    }
    Ok(ids[1..].iter().map(|&i| chars[i as usize]).collect())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let dev = args.device.clone();
    kiln::manual_seed(args.seed);
    let (chars, ids) = load_text(&shakespeare_path())?;
    let split = ids.len() * 9 / 10;
    let (train, val) = (&ids[..split], &ids[split..]);
    let cfg = GptConfig::small(chars.len());
    let model = Gpt::new(cfg, &dev)?;
    println!(
        "kiln train_gpt: {} characters ({} train / {} val), vocabulary {}, {} parameters, device: {}",
        ids.len(),
        train.len(),
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
    let params = model.parameters();

    let mut start_it = 0;
    if args.resume {
        let ck = Checkpoint::load(&args.checkpoint, &dev)?;
        ck.restore(&model, Some(&mut opt), None)?;
        start_it = ck.progress.step;
        println!("resumed from {} at iteration {start_it}", args.checkpoint.display());
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (args.seed.wrapping_add(1).wrapping_mul(0x1000_0000_01B3)) ^ start_it);
    let mut eval_rng = Rng(0xD1B5_4A32_D192_ED03 ^ args.seed.wrapping_add(7));
    let style = ProgressStyle::with_template("iter {pos:>5}/{len} [{bar:30}] {elapsed_precise} {msg}")
        .map_err(|e| e.to_string())?
        .progress_chars("=> ");
    let bar = ProgressBar::new(args.iters).with_style(style);
    bar.set_position(start_it);
    let started = Instant::now();
    let mut val_loss = f32::NAN;
    let mut train_sum = Tensor::zeros(&[], &dev)?;
    let mut since = 0;
    model.train();
    for it in start_it..args.iters {
        opt.set_lr(get_lr(it));
        let (x, y) = get_batch(train, &mut rng, 12, cfg.block_size, &dev)?;
        opt.zero_grad();
        let loss = model.loss(&x, &y)?;
        loss.backward()?;
        clip_grad_norm_(&params, 1.0)?;
        opt.step()?;
        train_sum = train_sum.add(&loss.detach())?;
        since += 1;
        bar.inc(1);
        let done = it + 1;
        if done % args.eval_interval == 0 || done == args.iters {
            val_loss = estimate_loss(&model, val, &mut eval_rng, args.eval_iters, &dev)?;
            let train_loss = train_sum.item()? / since as f32;
            (train_sum, since) = (Tensor::zeros(&[], &dev)?, 0);
            let line =
                format!("iter {done:5}  train loss {train_loss:.4}  val loss {val_loss:.4}  lr {:.2e}", get_lr(it));
            bar.suspend(|| println!("{line}"));
            if let Some(dir) = args.checkpoint.parent() {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            Checkpoint::capture(&model, Some(&opt), None, 0, done)?.save(&args.checkpoint)?;
        }
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    if val_loss.is_nan() {
        val_loss = estimate_loss(&model, val, &mut eval_rng, args.eval_iters, &dev)?;
    }
    println!("checkpoint: {}", args.checkpoint.display());
    println!("--- sample (temperature {}, top-k {}) ---", args.temperature, args.top_k);
    println!("{}", sample(&model, &chars, &mut rng, &args, &dev)?);
    println!("---");
    println!("val_loss={val_loss:.4} seconds={seconds:.2} device={}", dev.name());
    Ok(())
}
