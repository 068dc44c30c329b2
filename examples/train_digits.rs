//! The main example: an MLP 64-128-128-10 (ReLU) trained with Adam on the bundled handwritten
//! digits (8x8 images, 80/20 split), on `Device::best()`: a hardware GPU when there is one, else
//! the CPU (`--device software` for Mesa's software adapter, slower than the CPU device). Saves a checkpoint at the end; `--resume` continues from it.
//!
//! ```text
//! cargo run --release -p kiln-examples --example train_digits -- \
//!     [--device cpu|gpu|software] [--epochs N] [--seed S] [--lr LR] [--checkpoint PATH] [--resume]
//!     [--monitor DIR]
//! ```
//!
//! `--monitor DIR` records every parameter's statistics each epoch (one read-back per epoch) and
//! writes `history.csv`, `history.json`, a chart per parameter and weight histograms into DIR.
//!
//! The loss is read back from the device once per epoch, not per step; the last line is
//! `test_accuracy=<x> seconds=<y> device=<name>`.

use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use kiln::data::{DataLoader, Dataset};
use kiln::monitor::{ParameterMonitor, write_histograms};
use kiln::nn::functional::cross_entropy;
use kiln::nn::{Forward, Linear};
use kiln::optim::{Adam, AdamConfig, Optimizer};
use kiln::prelude::*;
use kiln::train::{Checkpoint, NanGuard};
use kiln_examples::{default_path, device_arg, digits};

struct Args {
    device: Device,
    epochs: u64,
    seed: u64,
    lr: f32,
    checkpoint: PathBuf,
    resume: bool,
    monitor: Option<PathBuf>,
}

const USAGE: &str = "usage: train_digits [--device cpu|gpu|software] [--epochs N] [--seed S] [--lr LR] \
[--checkpoint PATH] [--resume] [--monitor DIR]";

fn parse_args() -> std::result::Result<Args, String> {
    let mut args = Args {
        device: Device::best(),
        epochs: 30,
        seed: 0,
        lr: 1e-3,
        checkpoint: PathBuf::from("target/checkpoints/train_digits.safetensors"),
        resume: false,
        monitor: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value\n{USAGE}"));
        match a.as_str() {
            "--device" => args.device = device_arg(&val()?)?,
            "--epochs" => args.epochs = val()?.parse().map_err(|e| format!("--epochs: {e}"))?,
            "--seed" => args.seed = val()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--lr" => args.lr = val()?.parse().map_err(|e| format!("--lr: {e}"))?,
            "--checkpoint" => args.checkpoint = PathBuf::from(val()?),
            "--resume" => args.resume = true,
            "--monitor" => args.monitor = Some(PathBuf::from(val()?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(args)
}

/// The MLP 64-128-128-10 with ReLU.
#[derive(Module)]
struct Mlp {
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
}

impl Mlp {
    fn new(dev: &Device) -> Result<Mlp> {
        Ok(Mlp { fc1: Linear::new(64, 128, dev)?, fc2: Linear::new(128, 128, dev)?, fc3: Linear::new(128, 10, dev)? })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.fc1.forward(x)?.relu()?;
        let h = self.fc2.forward(&h)?.relu()?;
        self.fc3.forward(&h)
    }
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
    let (train, test) = digits(&default_path(), args.seed)?;
    println!("kiln train_digits: {} train / {} test samples, device: {}", train.len(), test.len(), dev.name());

    let model = Mlp::new(&dev)?;
    let mut opt = Adam::new(model.named_parameters(), AdamConfig { lr: args.lr, ..Default::default() })?;
    let loader = DataLoader::new(&train, 64).shuffle(args.seed).device(&dev);
    let (x_test, y_test) = test.get_batch(&(0..test.len()).collect::<Vec<_>>())?.to_device(&dev)?;
    let labels_test = y_test.to_vec_u32()?;
    println!("model: {} parameters", model.num_parameters().total);

    let (mut epoch, mut step) = (0, 0);
    if args.resume {
        let ck = Checkpoint::load(&args.checkpoint, &dev)?;
        ck.restore(&model, Some(&mut opt), None)?;
        (epoch, step) = (ck.progress.epoch, ck.progress.step);
        loader.set_epoch(epoch);
        println!("resumed from {} after epoch {epoch} (step {step})", args.checkpoint.display());
    }

    let style = ProgressStyle::with_template("epoch {prefix:>3} [{bar:30}] {pos}/{len} batches {elapsed_precise}")
        .map_err(|e| e.to_string())?
        .progress_chars("=> ");
    let mut monitor = args.monitor.as_ref().map(|_| ParameterMonitor::new(1));
    let start = Instant::now();
    let mut accuracy = 0.0;
    while epoch < args.epochs {
        epoch += 1;
        model.train();
        let bar = ProgressBar::new(loader.len() as u64).with_style(style.clone()).with_prefix(epoch.to_string());
        let mut total = Tensor::zeros(&[], &dev)?;
        let mut batches = 0;
        for batch in loader.try_iter() {
            let (x, y) = batch?;
            opt.zero_grad();
            let loss = cross_entropy(&model.forward(&x)?, &y)?;
            loss.backward()?;
            opt.step()?;
            total = total.add(&loss.detach())?; // stays on the device
            batches += 1;
            step += 1;
            bar.inc(1);
        }
        bar.finish_and_clear();
        if let Some(m) = monitor.as_mut() {
            m.record(epoch, &model)?; // the last step's gradients are still there
        }
        model.eval();
        let pred = no_grad(|| model.forward(&x_test)?.argmax(1))?.to_vec_u32()?;
        accuracy = pred.iter().zip(&labels_test).filter(|(p, y)| p == y).count() as f64 / labels_test.len() as f64;
        // The one read-back of the loss this epoch; the NaN guard stops a run that diverged.
        let loss = NanGuard.check(step, &total, &model)? / batches.max(1) as f32;
        println!("epoch {epoch:3}  train loss {loss:.4}  test accuracy {:.2}%", accuracy * 100.0);
    }
    let seconds = start.elapsed().as_secs_f64();

    if let Some(dir) = args.checkpoint.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    Checkpoint::capture(&model, Some(&opt), None, epoch, step)?.save(&args.checkpoint)?;
    println!("checkpoint: {}", args.checkpoint.display());
    if let (Some(m), Some(dir)) = (&monitor, &args.monitor) {
        let mut files = m.write(dir)?;
        files.extend(write_histograms(&model, dir, 40)?);
        println!("monitor: {} files in {}", files.len(), dir.display());
    }
    println!("test_accuracy={accuracy:.4} seconds={seconds:.2} device={}", dev.name());
    Ok(())
}
