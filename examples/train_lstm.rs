//! A character-level LSTM on the bundled Shakespeare text (data/shakespeare.txt.gz, split 90/10),
//! trained by truncated back-propagation through time: the training text is cut into `--batch`
//! contiguous streams read side by side in chunks of `--seq` characters; the LSTM's state carries
//! from chunk to chunk in the model's non-persistent buffers (`examples/src/char_lstm.rs`),
//! detached at each boundary, and is reset at the start of each pass over the text.
//!
//! ```text
//! cargo run --release -p kiln-examples --example train_lstm -- \
//!     [--device cpu|gpu|software] [--iters N] [--seed S] [--eval-interval N]
//!     [--checkpoint PATH] [--resume] [--sample-len N] [--temperature T] [--top-k K]
//! ```
//!
//! The model: an embedding of 64, a 2-layer LSTM of 256, a linear head; AdamW (lr 2e-3, PyTorch's
//! defaults otherwise), gradients clipped at norm 1. The validation loss is the mean cross-entropy
//! over the whole validation text, read as `--batch` streams with the state carried (the training
//! state is put aside and restored around it), every `--eval-interval` iterations and at the end;
//! a checkpoint (model and optimizer, no state: it is not persistent) is written at each
//! evaluation, and `--resume` continues from it at the same place in the text with a fresh state.
//! It ends with a text sample and the line `val_loss=<x> seconds=<y> device=<name>`.

use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use kiln::optim::{AdamConfig, AdamW, Optimizer, clip_grad_norm_};
use kiln::prelude::*;
use kiln::train::Checkpoint;
use kiln_examples::char_lstm::{CharLstm, CharLstmConfig};
use kiln_examples::device_arg;
use kiln_examples::text::{Rng, draw, load_text, shakespeare_path};

struct Args {
    device: Device,
    iters: u64,
    seed: u64,
    batch: usize,
    seq: usize,
    eval_interval: u64,
    checkpoint: PathBuf,
    resume: bool,
    sample_len: usize,
    temperature: f32,
    top_k: usize,
}

const USAGE: &str = "usage: train_lstm [--device cpu|gpu|software] [--iters N] [--seed S] [--batch B] [--seq T] \
[--eval-interval N] [--checkpoint PATH] [--resume] [--sample-len N] [--temperature T] [--top-k K]";

fn parse_args() -> std::result::Result<Args, String> {
    let mut args = Args {
        device: Device::best(),
        iters: 1000,
        seed: 0,
        batch: 32,
        seq: 64,
        eval_interval: 250,
        checkpoint: PathBuf::from("target/checkpoints/train_lstm.safetensors"),
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
            "--batch" => args.batch = num(val()?)?.max(1) as usize,
            "--seq" => args.seq = num(val()?)?.max(1) as usize,
            "--eval-interval" => args.eval_interval = num(val()?)?.max(1),
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

/// A text read as `batch` contiguous streams, side by side, in chunks of `seq`.
struct Streams<'a> {
    data: &'a [u32],
    batch: usize,
    seq: usize,
    /// Characters per stream.
    len: usize,
}

impl<'a> Streams<'a> {
    fn new(data: &'a [u32], batch: usize, seq: usize) -> std::result::Result<Streams<'a>, String> {
        let len = data.len() / batch;
        if len < seq + 1 {
            return Err(format!("{} characters are too few for {batch} streams of chunks of {seq}", data.len()));
        }
        Ok(Streams { data, batch, seq, len })
    }

    /// Chunks per pass over the text.
    fn chunks(&self) -> usize {
        (self.len - 1) / self.seq
    }

    /// Chunk `k`: inputs and next-character targets, [batch, seq] each.
    fn chunk(&self, k: usize, dev: &Device) -> Result<(Tensor, Tensor)> {
        let (mut x, mut y) = (Vec::with_capacity(self.batch * self.seq), Vec::with_capacity(self.batch * self.seq));
        for b in 0..self.batch {
            let at = b * self.len + k * self.seq;
            x.extend_from_slice(&self.data[at..at + self.seq]);
            y.extend_from_slice(&self.data[at + 1..at + self.seq + 1]);
        }
        let shape = [self.batch, self.seq];
        Ok((Tensor::from_labels(&x, dev)?.reshape(&shape)?, Tensor::from_labels(&y, dev)?.reshape(&shape)?))
    }
}

/// The mean loss over every chunk of `val`, in eval mode without gradients, from a zero state;
/// the training state is put aside and restored. The losses are summed on the device and read
/// back once.
fn estimate_loss(model: &mut CharLstm, val: &Streams, dev: &Device) -> Result<f32> {
    let saved = (model.h.clone(), model.c.clone());
    model.eval();
    model.reset_state(val.batch)?;
    let m = &*model;
    let total = no_grad(|| -> Result<Tensor> {
        let mut total = Tensor::zeros(&[], dev)?;
        for k in 0..val.chunks() {
            let (x, y) = val.chunk(k, dev)?;
            total = total.add(&m.loss(&x, &y)?)?;
        }
        Ok(total)
    })?;
    (model.h, model.c) = saved;
    model.train();
    Ok(total.item()? / val.chunks() as f32)
}

/// `len` characters after a newline, one step at a time from a fresh state for one stream, each
/// drawn from the last logits / temperature among the `top_k` most likely.
fn sample(model: &mut CharLstm, chars: &[char], rng: &mut Rng, args: &Args, dev: &Device) -> Result<String> {
    model.eval();
    model.reset_state(1)?;
    let mut id = chars.binary_search(&'\n').unwrap_or(0) as u32;
    let mut out = String::new();
    for _ in 0..args.sample_len {
        let x = Tensor::from_labels(&[id], dev)?.reshape(&[1, 1])?;
        let logits = no_grad(|| model.forward_chunk(&x))?.to_vec()?;
        id = draw(&logits, args.temperature, args.top_k, rng) as u32;
        out.push(chars[id as usize]);
    }
    Ok(out)
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
    let train = Streams::new(&ids[..split], args.batch, args.seq)?;
    let val = Streams::new(&ids[split..], args.batch, args.seq)?;
    let cfg = CharLstmConfig { vocab_size: chars.len(), embed: 64, hidden: 256, layers: 2 };
    let mut model = CharLstm::new(cfg, &dev)?;
    println!(
        "kiln train_lstm: {} characters ({} train / {} val), vocabulary {}, {} parameters, \
         {} streams x chunks of {}, device: {}",
        ids.len(),
        split,
        ids.len() - split,
        chars.len(),
        model.num_parameters().total,
        args.batch,
        args.seq,
        dev.name()
    );
    let mut opt = AdamW::new(model.named_parameters(), AdamConfig { lr: 2e-3, ..AdamConfig::adamw() })?;
    let params = model.parameters();

    let mut start_it = 0;
    if args.resume {
        let ck = Checkpoint::load(&args.checkpoint, &dev)?;
        ck.restore(&model, Some(&mut opt), None)?;
        start_it = ck.progress.step;
        println!("resumed from {} at iteration {start_it} (the state starts from zeros)", args.checkpoint.display());
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ args.seed.wrapping_add(1).wrapping_mul(0x1000_0000_01B3));
    let style = ProgressStyle::with_template("iter {pos:>5}/{len} [{bar:30}] {elapsed_precise} {msg}")
        .map_err(|e| e.to_string())?
        .progress_chars("=> ");
    let bar = ProgressBar::new(args.iters).with_style(style);
    bar.set_position(start_it);
    let started = Instant::now();
    let mut val_loss = f32::NAN;
    let mut train_sum = Tensor::zeros(&[], &dev)?;
    let mut since = 0;
    model.reset_state(args.batch)?;
    model.train();
    for it in start_it..args.iters {
        let k = it as usize % train.chunks();
        if k == 0 {
            model.reset_state(args.batch)?; // a new pass over the text
        }
        let (x, y) = train.chunk(k, &dev)?;
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
            val_loss = estimate_loss(&mut model, &val, &dev)?;
            let train_loss = train_sum.item()? / since as f32;
            (train_sum, since) = (Tensor::zeros(&[], &dev)?, 0);
            bar.suspend(|| println!("iter {done:5}  train loss {train_loss:.4}  val loss {val_loss:.4}"));
            if let Some(dir) = args.checkpoint.parent() {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            Checkpoint::capture(&model, Some(&opt), None, 0, done)?.save(&args.checkpoint)?;
        }
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    if val_loss.is_nan() {
        val_loss = estimate_loss(&mut model, &val, &dev)?;
    }
    println!("checkpoint: {}", args.checkpoint.display());
    println!("--- sample (temperature {}, top-k {}) ---", args.temperature, args.top_k);
    println!("{}", sample(&mut model, &chars, &mut rng, &args, &dev)?);
    println!("---");
    println!("val_loss={val_loss:.4} seconds={seconds:.2} device={}", dev.name());
    Ok(())
}
