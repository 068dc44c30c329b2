//! The main example: an MLP 64-128-128-10 (ReLU) trained with Adam on the bundled handwritten
//! digits (8x8 images), on the GPU when there is one (or the software adapter), else the CPU.
//!
//! ```text
//! cargo run --release -p kiln-examples --example train_digits -- [--device cpu|gpu|software] [--epochs N] [--seed S]
//! ```
//!
//! The model is a `#[derive(Module)]` struct of `nn::Linear` layers (PyTorch's layout and
//! default init); the Adam update is written here from tensor ops under `no_grad`, writing each
//! parameter in place through its handle.

use std::time::Instant;

use kiln::nn::functional::cross_entropy;
use kiln::nn::{Forward, Linear};
use kiln::prelude::*;
use kiln_examples::{default_path, load_digits};

struct Args {
    device: Device,
    epochs: usize,
    seed: u64,
}

fn parse_args() -> std::result::Result<Args, String> {
    let mut args = Args { device: Device::best(), epochs: 30, seed: 0 };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--device" => {
                args.device = match val()?.as_str() {
                    "cpu" => Device::cpu(),
                    "gpu" => Device::gpu().map_err(|e| e.to_string())?,
                    "software" => Device::software().map_err(|e| e.to_string())?,
                    other => {
                        return Err(format!("unknown device {other:?} (cpu, gpu or software)"));
                    }
                }
            }
            "--epochs" => args.epochs = val()?.parse().map_err(|e| format!("--epochs: {e}"))?,
            "--seed" => args.seed = val()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "-h" | "--help" => {
                println!("usage: train_digits [--device cpu|gpu|software] [--epochs N] [--seed S]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

/// A small deterministic generator for the split and the shuffles.
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
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

/// Adam (PyTorch's defaults: betas 0.9, 0.999, eps 1e-8), written with tensor ops.
struct Adam {
    lr: f32,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    t: i32,
}

impl Adam {
    fn step(&mut self, params: &[Parameter]) -> Result<()> {
        let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        self.t += 1;
        let (c1, c2) = (1.0 - b1.powi(self.t), 1.0 - b2.powi(self.t));
        no_grad(|| {
            for (i, p) in params.iter().enumerate() {
                let Some(g) = p.grad() else { continue };
                self.m[i] = self.m[i].mul_scalar(b1)?.add(&g.mul_scalar(1.0 - b1)?)?;
                self.v[i] = self.v[i].mul_scalar(b2)?.add(&g.mul(&g)?.mul_scalar(1.0 - b2)?)?;
                let denom = self.v[i].div_scalar(c2)?.sqrt()?.add_scalar(eps)?;
                let upd = self.m[i].div(&denom)?.mul_scalar(self.lr / c1)?;
                p.set(p.tensor().sub(&upd)?)?;
            }
            Ok(())
        })
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
    let data = load_digits(&default_path())?;
    println!("kiln train_digits: {} samples, device: {}", data.len(), dev.name());

    // Seeded 80/20 split.
    let mut rng = Lcg(args.seed ^ 0x5eed);
    let mut order: Vec<usize> = (0..data.len()).collect();
    rng.shuffle(&mut order);
    let n_train = data.len() * 4 / 5;
    let (train_idx, test_idx) = order.split_at(n_train);
    let rows = |idx: &[usize]| -> (Vec<f32>, Vec<u32>) {
        let x = idx.iter().flat_map(|&i| data.x[i * 64..(i + 1) * 64].iter().map(|v| v / 16.0)).collect();
        (x, idx.iter().map(|&i| data.y[i]).collect())
    };

    let model = Mlp::new(&dev)?;
    let params = model.parameters();
    println!("model: {} parameters", model.num_parameters().total);
    let zeros = |p: &Parameter| Tensor::zeros(&p.shape(), &dev);
    let mut opt = Adam {
        lr: 1e-3,
        m: params.iter().map(zeros).collect::<Result<_>>()?,
        v: params.iter().map(zeros).collect::<Result<_>>()?,
        t: 0,
    };

    let batch = 64;
    let start = Instant::now();
    let mut shuffled = train_idx.to_vec();
    for epoch in 1..=args.epochs {
        rng.shuffle(&mut shuffled);
        let mut total = Tensor::zeros(&[], &dev)?;
        let mut batches = 0;
        for chunk in shuffled.chunks(batch) {
            let (xb, yb) = rows(chunk);
            let x = Tensor::from_vec(xb, &[chunk.len(), 64], &dev)?;
            let y = Tensor::from_labels(&yb, &dev)?;
            model.zero_grad();
            let loss = cross_entropy(&model.forward(&x)?, &y)?;
            loss.backward()?;
            opt.step(&params)?;
            total = total.add(&loss.detach())?; // stays on the device: one read-back per epoch
            batches += 1;
        }
        if epoch == 1 || epoch % 5 == 0 || epoch == args.epochs {
            println!("epoch {epoch:3}  train loss {:.4}", total.item()? / batches as f32);
        }
    }
    let train_s = start.elapsed().as_secs_f64();

    let (xt, yt) = rows(test_idx);
    let x = Tensor::from_vec(xt, &[test_idx.len(), 64], &dev)?;
    model.eval();
    let pred = no_grad(|| model.forward(&x)?.argmax(1))?.to_vec_u32()?;
    let correct = pred.iter().zip(&yt).filter(|(p, y)| p == y).count();
    let acc = correct as f64 / yt.len() as f64;
    println!("test accuracy {:.2}% ({correct}/{}), {train_s:.2} s training", acc * 100.0, yt.len());
    Ok(())
}
