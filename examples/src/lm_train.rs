//! What the character-level language-model examples (`train_gpt`, `train_lstm`) share beyond
//! their models: the command line ([`LmArgs`]), resuming from a checkpoint ([`resume`]) and the
//! training loop with its progress bar, periodic evaluation and checkpoint, and its ending (a
//! text sample and the line `val_loss=<x> seconds=<y> device=<name>`) ([`train`]). Each example
//! says what one step, one evaluation, a checkpoint and a sample are through [`LmTraining`].

use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use kiln::optim::{Optimizer, clip_grad_norm_};
use kiln::prelude::*;
use kiln::train::Checkpoint;

use crate::device_arg;

/// The command line of a language-model example. Options an example does not take keep their
/// defaults.
pub struct LmArgs {
    /// `--device cpu|gpu|software`; `None`: [`Device::best`].
    pub device: Option<Device>,
    /// `--iters N`: the iteration to stop at.
    pub iters: u64,
    /// `--seed S`: parameters, batches and samples.
    pub seed: u64,
    /// `--eval-interval N`: iterations between evaluations (and checkpoints).
    pub eval_interval: u64,
    /// `--checkpoint PATH`: written at each evaluation, read by `--resume`.
    pub checkpoint: PathBuf,
    /// `--resume`: continue from the checkpoint.
    pub resume: bool,
    /// `--sample-len N`: characters in the closing sample.
    pub sample_len: usize,
    /// `--temperature T` (positive) of the sample.
    pub temperature: f32,
    /// `--top-k K` of the sample.
    pub top_k: usize,
    /// `--batch B` (train_lstm: streams read side by side).
    pub batch: usize,
    /// `--seq T` (train_lstm: characters per chunk).
    pub seq: usize,
    /// `--eval-iters N` (train_gpt: validation batches per evaluation).
    pub eval_iters: usize,
}

/// The options every language-model example takes; an example adds its own from
/// [`LmArgs::OWN`].
const COMMON: [&str; 9] = [
    "--device cpu|gpu|software",
    "--iters N",
    "--seed S",
    "--eval-interval N",
    "--checkpoint PATH",
    "--resume",
    "--sample-len N",
    "--temperature T",
    "--top-k K",
];

impl LmArgs {
    /// The options only some examples take.
    pub const OWN: [&str; 3] = ["--batch", "--seq", "--eval-iters"];

    /// The defaults of the example `name`: its checkpoint is
    /// `target/checkpoints/<name>.safetensors`; 2000 iterations, evaluation every 500, batch
    /// 12, sequence 64, 200 evaluation batches, a 300-character sample at temperature 0.8 among
    /// the 20 most likely.
    pub fn defaults(name: &str) -> LmArgs {
        LmArgs {
            device: None,
            iters: 2000,
            seed: 0,
            eval_interval: 500,
            checkpoint: PathBuf::from(format!("target/checkpoints/{name}.safetensors")),
            resume: false,
            sample_len: 300,
            temperature: 0.8,
            top_k: 20,
            batch: 12,
            seq: 64,
            eval_iters: 200,
        }
    }

    /// The usage line of the example `name` taking `own` (from [`LmArgs::OWN`]).
    pub fn usage(name: &str, own: &[&str]) -> String {
        let own = own.iter().map(|o| format!("{o} N"));
        let all: Vec<String> = COMMON.iter().map(|s| s.to_string()).chain(own).collect();
        format!("usage: {name} [{}]", all.join("] ["))
    }

    /// Parses `args` (without the program's name) over these values for the example `name`,
    /// which takes the options common to all and `own` (from [`LmArgs::OWN`]). `Ok(None)`:
    /// `--help` was asked for, and the usage printed.
    pub fn parse(
        mut self,
        name: &str,
        own: &[&str],
        args: impl IntoIterator<Item = String>,
    ) -> std::result::Result<Option<LmArgs>, String> {
        let usage = LmArgs::usage(name, own);
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            if Self::OWN.contains(&a.as_str()) && !own.contains(&a.as_str()) {
                return Err(format!("{name} does not take {a}\n{usage}"));
            }
            let mut val = || it.next().ok_or(format!("{a} needs a value\n{usage}"));
            let num = |v: String| v.parse::<u64>().map_err(|e| format!("{a} {v:?}: {e}"));
            match a.as_str() {
                "--device" => self.device = Some(device_arg(&val()?)?),
                "--iters" => self.iters = num(val()?)?,
                "--seed" => self.seed = num(val()?)?,
                "--eval-interval" => self.eval_interval = num(val()?)?.max(1),
                "--checkpoint" => self.checkpoint = PathBuf::from(val()?),
                "--resume" => self.resume = true,
                "--sample-len" => self.sample_len = num(val()?)? as usize,
                "--temperature" => {
                    let v = val()?;
                    self.temperature = v.parse().map_err(|e| format!("--temperature {v:?}: {e}"))?;
                }
                "--top-k" => self.top_k = num(val()?)? as usize,
                "--batch" => self.batch = num(val()?)?.max(1) as usize,
                "--seq" => self.seq = num(val()?)?.max(1) as usize,
                "--eval-iters" => self.eval_iters = num(val()?)?.max(1) as usize,
                "-h" | "--help" => {
                    println!("{usage}");
                    return Ok(None);
                }
                other => return Err(format!("unknown argument {other:?}\n{usage}")),
            }
        }
        if self.temperature.is_nan() || self.temperature <= 0.0 {
            return Err(format!("--temperature must be positive, not {}", self.temperature));
        }
        Ok(Some(self))
    }

    /// The device asked for, or the best one there is.
    pub fn device(&self) -> Device {
        self.device.clone().unwrap_or_else(Device::best)
    }

    /// The seed of the example's batch and sampling draws: `args.seed` mixed with `salt`.
    pub fn draw_seed(&self, salt: u64) -> u64 {
        0x9E37_79B9_7F4A_7C15 ^ self.seed.wrapping_add(1).wrapping_mul(0x1000_0000_01B3) ^ salt
    }
}

/// With `--resume`: restores `model` and `opt` from the checkpoint and returns the iteration it
/// was written at (else 0).
pub fn resume(args: &LmArgs, model: &dyn Module, opt: &mut dyn Optimizer, dev: &Device) -> Result<u64> {
    if !args.resume {
        return Ok(0);
    }
    let ck = Checkpoint::load(&args.checkpoint, dev)?;
    ck.restore(model, Some(opt), None)?;
    println!("resumed from {} at iteration {}", args.checkpoint.display(), ck.progress.step);
    Ok(ck.progress.step)
}

/// One optimisation step on `loss`: gradients from zero, clipped at norm 1, the update; the
/// loss, detached.
pub fn optimize(loss: &Tensor, opt: &mut dyn Optimizer, params: &[Parameter]) -> Result<Tensor> {
    opt.zero_grad();
    loss.backward()?;
    clip_grad_norm_(params, 1.0)?;
    opt.step()?;
    Ok(loss.detach())
}

/// One example's model, optimizer and data, as [`train`] drives them.
pub trait LmTraining {
    /// One optimisation step at iteration `it`; the training loss, detached.
    fn step(&mut self, it: u64) -> Result<Tensor>;
    /// The validation loss.
    fn evaluate(&mut self) -> Result<f32>;
    /// A checkpoint of the model and optimizer after `step` iterations.
    fn checkpoint(&self, step: u64) -> Result<Checkpoint>;
    /// What an evaluation line after iteration `it` adds (the learning rate, say).
    fn note(&self, _it: u64) -> String {
        String::new()
    }
    /// The closing sample of `len` characters.
    fn sample(&mut self, len: usize, temperature: f32, top_k: usize) -> Result<String>;
}

/// Runs iterations `start..args.iters` of `run` under a progress bar; every
/// `args.eval_interval` iterations and at the end prints the mean training loss since the last
/// evaluation and the validation loss, and writes the checkpoint. Then prints the checkpoint's
/// path, a sample and `val_loss=<x> seconds=<y> device=<name>` (seconds of training and
/// evaluation).
pub fn train(
    args: &LmArgs,
    start: u64,
    run: &mut impl LmTraining,
    dev: &Device,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let style = ProgressStyle::with_template("iter {pos:>5}/{len} [{bar:30}] {elapsed_precise} {msg}")
        .map_err(|e| e.to_string())?
        .progress_chars("=> ");
    let bar = ProgressBar::new(args.iters).with_style(style);
    bar.set_position(start);
    let started = Instant::now();
    let mut val_loss = f32::NAN;
    let mut train_sum = Tensor::zeros(&[], dev)?;
    let mut since = 0;
    for it in start..args.iters {
        train_sum = train_sum.add(&run.step(it)?)?;
        since += 1;
        bar.inc(1);
        let done = it + 1;
        if done % args.eval_interval == 0 || done == args.iters {
            val_loss = run.evaluate()?;
            let train_loss = train_sum.item()? / since as f32;
            (train_sum, since) = (Tensor::zeros(&[], dev)?, 0);
            let line = format!("iter {done:5}  train loss {train_loss:.4}  val loss {val_loss:.4}{}", run.note(it));
            bar.suspend(|| println!("{line}"));
            if let Some(dir) = args.checkpoint.parent() {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            run.checkpoint(done)?.save(&args.checkpoint)?;
        }
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    if val_loss.is_nan() {
        val_loss = run.evaluate()?;
    }
    println!("checkpoint: {}", args.checkpoint.display());
    println!("--- sample (temperature {}, top-k {}) ---", args.temperature, args.top_k);
    println!("{}", run.sample(args.sample_len, args.temperature, args.top_k)?);
    println!("---");
    println!("val_loss={val_loss:.4} seconds={seconds:.2} device={}", dev.name());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(own: &[&str], line: &str) -> std::result::Result<Option<LmArgs>, String> {
        LmArgs::defaults("t").parse("t", own, line.split_whitespace().map(String::from))
    }

    #[test]
    fn options_parse_over_the_defaults() {
        let a = parse(&["--batch", "--seq"], "--iters 7 --batch 3 --seq 0 --resume --temperature 0.5 --top-k 2")
            .unwrap()
            .unwrap();
        assert_eq!((a.iters, a.batch, a.seq, a.resume, a.temperature, a.top_k), (7, 3, 1, true, 0.5, 2));
        assert_eq!((a.eval_interval, a.eval_iters, a.seed), (500, 200, 0));
        assert_eq!(a.checkpoint, PathBuf::from("target/checkpoints/t.safetensors"));
        assert!(a.device.is_none());
        assert!(parse(&[], "--help").unwrap().is_none());
    }

    #[test]
    fn bad_options_say_what_is_wrong() {
        let err = |own: &[&str], line: &str| parse(own, line).err().expect("an error");
        assert!(err(&["--batch"], "--eval-iters 3").starts_with("t does not take --eval-iters"));
        assert!(err(&[], "--iters").starts_with("--iters needs a value"));
        assert!(err(&[], "--iters ten").starts_with("--iters \"ten\""));
        assert!(err(&[], "--temperature 0").contains("must be positive"));
        assert!(err(&[], "--temperature nan").contains("must be positive"));
        assert!(err(&[], "--frobnicate").contains("unknown argument \"--frobnicate\""));
        assert!(err(&[], "--device tpu").contains("tpu"));
        assert!(LmArgs::usage("t", &["--eval-iters"]).ends_with("[--top-k K] [--eval-iters N]"));
    }
}
