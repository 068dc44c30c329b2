//! Transfer learning with kiln's module tools: pre-train a small model on the digits, save it,
//! load it into a bigger model with `strict = false` (reporting what did not match), freeze the
//! loaded encoder, train only the new head, then unfreeze the encoder gradually. Prints the
//! trainable / non-trainable parameter counts and the test accuracy at each stage.
//!
//! ```text
//! cargo run --release --example freeze_finetune -- [--device cpu|gpu|software]
//! ```

use kiln::data::{DataLoader, Dataset, TensorDataset};
use kiln::nn::functional::cross_entropy;
use kiln::nn::{Forward, Linear, ReLU, Sequential};
use kiln::optim::{Adam, AdamConfig, Optimizer};
use kiln::prelude::*;
use kiln_examples::{default_path, digits};

/// The pre-trained model: an encoder and a linear head.
#[derive(Module)]
struct Small {
    encoder: Sequential,
    head: Linear,
}

/// The bigger model: the same encoder (same names, so it loads) and a deeper new head.
#[derive(Module)]
struct Big {
    encoder: Sequential,
    classifier: Sequential,
}

fn encoder(dev: &Device) -> Result<Sequential> {
    Ok(Sequential::new().push(Linear::new(64, 64, dev)?).push(ReLU).push(Linear::new(64, 32, dev)?).push(ReLU))
}

fn train(
    forward: &dyn Fn(&Tensor) -> Result<Tensor>,
    model: &dyn Module,
    data: &TensorDataset,
    epochs: usize,
    dev: &Device,
) -> Result<()> {
    // The optimizer holds every parameter; frozen ones are skipped at each step.
    let mut opt = Adam::new(model.named_parameters(), AdamConfig { lr: 2e-3, ..Default::default() })?;
    let loader = DataLoader::new(data, 64).shuffle(1).device(dev);
    model.train();
    for _ in 0..epochs {
        for batch in loader.try_iter() {
            let (x, y) = batch?;
            opt.zero_grad();
            cross_entropy(&forward(&x)?, &y)?.backward()?;
            opt.step()?;
        }
    }
    Ok(())
}

fn accuracy(
    forward: &dyn Fn(&Tensor) -> Result<Tensor>,
    model: &dyn Module,
    test: &TensorDataset,
    dev: &Device,
) -> Result<f64> {
    model.eval();
    let (x, y) = test.get_batch(&(0..test.len()).collect::<Vec<_>>())?.to_device(dev)?;
    let pred = no_grad(|| forward(&x)?.argmax(1))?.to_vec_u32()?;
    let y = y.to_vec_u32()?;
    Ok(pred.iter().zip(&y).filter(|(p, l)| p == l).count() as f64 / y.len() as f64)
}

fn report(stage: &str, model: &dyn Module, acc: f64) {
    let c = model.num_parameters();
    println!(
        "{stage:<34} trainable {:>6}  non-trainable {:>6}  test accuracy {:.2}%",
        c.trainable,
        c.non_trainable,
        acc * 100.0
    );
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let dev = match std::env::args().skip_while(|a| a != "--device").nth(1).as_deref() {
        Some("cpu") => Device::cpu(),
        Some("gpu") => Device::gpu()?,
        Some("software") => Device::software()?,
        Some(other) => return Err(format!("unknown device {other:?}").into()),
        None => Device::best(),
    };
    println!("device: {}", dev.name());
    kiln::manual_seed(0);
    let (train_set, test_set) = digits(&default_path(), 0)?;

    // 1. Pre-train the small model and save it.
    let small = Small { encoder: encoder(&dev)?, head: Linear::new(32, 10, &dev)? };
    let fwd_small = |x: &Tensor| small.head.forward(&small.encoder.forward(x)?);
    train(&fwd_small, &small, &train_set, 5, &dev)?;
    report("pre-trained small model", &small, accuracy(&fwd_small, &small, &test_set, &dev)?);
    let path = std::env::temp_dir().join("kiln_freeze_finetune_small.safetensors");
    kiln::io::save_safetensors(&path, &small.state_dict())?;

    // 2. Load it into the bigger model without strictness: the encoder matches by name.
    let big = Big {
        encoder: encoder(&dev)?,
        classifier: Sequential::new().push(Linear::new(32, 32, &dev)?).push(ReLU).push(Linear::new(32, 10, &dev)?),
    };
    let report_load = big.load_state_dict(&kiln::io::load_safetensors(&path, &dev)?, false)?;
    println!("loaded with strict=false: missing {:?}", report_load.missing_keys);
    println!("                          unexpected {:?}", report_load.unexpected_keys);
    let fwd_big = |x: &Tensor| big.classifier.forward(&big.encoder.forward(x)?);

    // 3. Freeze the loaded encoder and train only the new classifier.
    big.freeze("encoder.")?;
    report("encoder frozen, before training", &big, accuracy(&fwd_big, &big, &test_set, &dev)?);
    train(&fwd_big, &big, &train_set, 3, &dev)?;
    report("classifier trained (encoder frozen)", &big, accuracy(&fwd_big, &big, &test_set, &dev)?);

    // 4. Unfreeze gradually: the encoder's last layer, then everything.
    big.unfreeze("encoder.2.")?;
    train(&fwd_big, &big, &train_set, 2, &dev)?;
    report("encoder's last layer unfrozen", &big, accuracy(&fwd_big, &big, &test_set, &dev)?);
    big.unfreeze("")?;
    train(&fwd_big, &big, &train_set, 2, &dev)?;
    report("all unfrozen", &big, accuracy(&fwd_big, &big, &test_set, &dev)?);
    std::fs::remove_file(&path).ok();
    Ok(())
}
