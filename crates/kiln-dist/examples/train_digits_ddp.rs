//! The main example, data-parallel: `mpirun -np 2 target/release/examples/train_digits_ddp`
//! (build it with `cargo build --release -p kiln-dist --features mpi --examples`). Each rank
//! trains on its shard of every epoch's shuffle (DistributedSampler); gradients are averaged
//! across ranks; rank 0 evaluates, prints and writes the checkpoint. Without MPI it runs as one
//! process. The batch is 64 per rank, so 2 ranks take half as many steps per epoch.

use std::time::Instant;

use kiln::data::{DataLoader, Dataset};
use kiln::nn::functional::cross_entropy;
use kiln::nn::{Forward, Linear};
use kiln::optim::{Adam, AdamConfig, Optimizer};
use kiln::prelude::*;
use kiln::train::Checkpoint;
use kiln_dist::{DistributedDataParallel, DistributedSampler, init};
use kiln_examples::{default_path, digits};

#[derive(Module)]
struct Mlp {
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
}

impl Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.fc1.forward(x)?.relu()?;
        self.fc3.forward(&self.fc2.forward(&h)?.relu()?)
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let dist = init()?;
    let dev = Device::best();
    let epochs: u64 =
        std::env::args().skip_while(|a| a != "--epochs").nth(1).and_then(|v| v.parse().ok()).unwrap_or(30);
    kiln::manual_seed(0);
    let (train, test) = digits(&default_path(), 0)?;
    let model =
        Mlp { fc1: Linear::new(64, 128, &dev)?, fc2: Linear::new(128, 128, &dev)?, fc3: Linear::new(128, 10, &dev)? };
    let ddp = DistributedDataParallel::new(&model, &dist)?;
    let mut opt = Adam::new(model.named_parameters(), AdamConfig::default())?;
    let sampler = DistributedSampler::new(train.len(), &dist, Some(0));
    dist.on_main(|| {
        println!(
            "train_digits_ddp: {} ranks, {} samples per rank per epoch, device {}",
            dist.size(),
            sampler.per_rank(),
            dev.name()
        )
    });
    let start = Instant::now();
    let mut allreduce_bytes = 0;
    let mut allreduce_s = 0.0;
    let mut steps = 0u64;
    for epoch in 0..epochs {
        let shard = train.subset(&sampler.indices(epoch))?;
        let loader = DataLoader::new(&shard, 64).shuffle(epoch).device(&dev);
        for b in loader.try_iter() {
            let (x, y) = b?;
            opt.zero_grad();
            cross_entropy(&model.forward(&x)?, &y)?.backward()?;
            let t = Instant::now();
            allreduce_bytes += ddp.sync_gradients()?; // includes waiting for backward's GPU work
            allreduce_s += t.elapsed().as_secs_f64();
            opt.step()?;
            steps += 1;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    if dist.is_main() {
        let (xt, yt) = test.get_batch(&(0..test.len()).collect::<Vec<_>>())?.to_device(&dev)?;
        let pred = no_grad(|| model.forward(&xt)?.argmax(1))?.to_vec_u32()?;
        let yt = yt.to_vec_u32()?;
        let acc = pred.iter().zip(&yt).filter(|(p, l)| p == l).count() as f64 / yt.len() as f64;
        std::fs::create_dir_all("target/checkpoints").ok();
        Checkpoint::capture(&model, Some(&opt), None, epochs, steps)?
            .save("target/checkpoints/train_digits_ddp.safetensors")?;
        println!(
            "gradient sync: {:.3} ms and {} bytes per step ({steps} steps)",
            allreduce_s * 1e3 / steps.max(1) as f64,
            allreduce_bytes / steps.max(1) as usize
        );
        println!("test_accuracy={acc:.4} seconds={seconds:.2} ranks={} device={}", dist.size(), dev.name());
    }
    dist.barrier();
    Ok(())
}
