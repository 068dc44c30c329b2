//! A small convolutional network on the bundled handwritten digits (8x8 images; the MLP
//! example's split, seed and optimizer): two 3x3 convolutions of 16 and 32 channels, each with
//! BatchNorm and ReLU, one 2x2 max pool and a linear head, trained with Adam (lr 1e-3, batch 64,
//! 30 epochs) on `Device::best()`.
//!
//! ```text
//! cargo run --release -p kiln-examples --example train_digits_cnn -- \
//!     [--device cpu|gpu|software] [--epochs N] [--seed S] [--lr LR]
//! ```
//!
//! The last line is `test_accuracy=<x> seconds=<y> device=<name>`, as the MLP example's.

use std::time::Instant;

use kiln::data::{DataLoader, Dataset};
use kiln::nn::functional::cross_entropy;
use kiln::nn::{BatchNorm2d, Conv2d, Conv2dOptions, Flatten, Forward, Linear, MaxPool2d, ReLU, Sequential};
use kiln::optim::{Adam, AdamConfig, Optimizer};
use kiln::prelude::*;
use kiln::train::NanGuard;
use kiln_examples::{default_path, device_arg, digits};

const USAGE: &str = "usage: train_digits_cnn [--device cpu|gpu|software] [--epochs N] [--seed S] [--lr LR]";

struct Args {
    device: Device,
    epochs: u64,
    seed: u64,
    lr: f32,
}

fn parse_args() -> std::result::Result<Args, String> {
    let mut args = Args { device: Device::best(), epochs: 30, seed: 0, lr: 1e-3 };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value\n{USAGE}"));
        match a.as_str() {
            "--device" => args.device = device_arg(&val()?)?,
            "--epochs" => args.epochs = val()?.parse().map_err(|e| format!("--epochs: {e}"))?,
            "--seed" => args.seed = val()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--lr" => args.lr = val()?.parse().map_err(|e| format!("--lr: {e}"))?,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(args)
}

/// conv(1->16)+BN+ReLU, conv(16->32)+BN+ReLU, max pool 2, flatten, linear(32*4*4 -> 10), as a
/// PyTorch `nn.Sequential` (the same state_dict names).
fn cnn(dev: &Device) -> Result<Sequential> {
    let same = Conv2dOptions { padding: (1, 1), ..Default::default() };
    Ok(Sequential::new()
        .push(Conv2d::with_options(1, 16, (3, 3), same, true, dev)?)
        .push(BatchNorm2d::new(16, dev)?)
        .push(ReLU)
        .push(Conv2d::with_options(16, 32, (3, 3), same, true, dev)?)
        .push(BatchNorm2d::new(32, dev)?)
        .push(ReLU)
        .push(MaxPool2d::new((2, 2), (2, 2)))
        .push(Flatten::new())
        .push(Linear::new(32 * 4 * 4, 10, dev)?))
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
    println!("kiln train_digits_cnn: {} train / {} test samples, device: {}", train.len(), test.len(), dev.name());
    let model = cnn(&dev)?;
    let mut opt = Adam::new(model.named_parameters(), AdamConfig { lr: args.lr, ..Default::default() })?;
    let loader = DataLoader::new(&train, 64).shuffle(args.seed).device(&dev);
    let (x_test, y_test) = test.get_batch(&(0..test.len()).collect::<Vec<_>>())?.to_device(&dev)?;
    let x_test = x_test.reshape(&[test.len(), 1, 8, 8])?;
    let labels_test = y_test.to_vec_u32()?;
    println!("model: {} parameters", model.num_parameters().total);

    let start = Instant::now();
    let (mut accuracy, mut step) = (0.0, 0);
    for epoch in 1..=args.epochs {
        model.train();
        let mut total = Tensor::zeros(&[], &dev)?;
        let mut batches = 0;
        for batch in loader.try_iter() {
            let (x, y) = batch?;
            let x = x.reshape(&[x.shape()[0], 1, 8, 8])?;
            opt.zero_grad();
            let loss = cross_entropy(&model.forward(&x)?, &y)?;
            loss.backward()?;
            opt.step()?;
            total = total.add(&loss.detach())?;
            batches += 1;
            step += 1;
        }
        model.eval();
        let pred = no_grad(|| model.forward(&x_test)?.argmax(1))?.to_vec_u32()?;
        accuracy = pred.iter().zip(&labels_test).filter(|(p, y)| p == y).count() as f64 / labels_test.len() as f64;
        let loss = NanGuard.check(step, &total, &model)? / batches.max(1) as f32;
        println!("epoch {epoch:3}  train loss {loss:.4}  test accuracy {:.2}%", accuracy * 100.0);
    }
    let seconds = start.elapsed().as_secs_f64();
    println!("test_accuracy={accuracy:.4} seconds={seconds:.2} device={}", dev.name());
    Ok(())
}
