//! The cost of data parallelism for the MLP workload (784-512-512-10, batch 256 per rank, Adam):
//! `mpirun -np 2 target/release/examples/ddp_mlp`. The device is synchronised before each
//! gradient sync, so the sync's time is the read-back, the all-reduce and the upload alone.

use std::time::Instant;

use kiln::nn::functional::cross_entropy;
use kiln::nn::{Forward, Linear, ReLU, Sequential};
use kiln::optim::{Adam, AdamConfig, Optimizer};
use kiln::prelude::*;
use kiln_dist::{DistributedDataParallel, init};

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let dist = init()?;
    let dev = Device::best();
    kiln::manual_seed(0);
    let m = Sequential::new()
        .push(Linear::new(784, 512, &dev)?)
        .push(ReLU)
        .push(Linear::new(512, 512, &dev)?)
        .push(ReLU)
        .push(Linear::new(512, 10, &dev)?);
    let ddp = DistributedDataParallel::new(&m, &dist)?;
    let mut opt = Adam::new(m.named_parameters(), AdamConfig::default())?;
    let x = Tensor::rand(&[256, 784], &dev)?;
    let y = Tensor::from_labels(&(0..256u32).map(|i| (i * 7 + dist.rank() as u32) % 10).collect::<Vec<_>>(), &dev)?;
    let (mut sync_s, mut total_s, mut bytes) = (0.0, 0.0, 0);
    let steps = 20;
    for i in 0..steps + 3 {
        let t0 = Instant::now();
        opt.zero_grad();
        cross_entropy(&m.forward(&x)?, &y)?.backward()?;
        dev.synchronize()?;
        let t1 = Instant::now();
        let b = ddp.sync_gradients()?;
        let t2 = Instant::now();
        opt.step()?;
        dev.synchronize()?;
        if i >= 3 {
            sync_s += (t2 - t1).as_secs_f64();
            total_s += t0.elapsed().as_secs_f64();
            bytes = b;
        }
    }
    dist.on_main(|| {
        println!(
            "workload=ddp_mlp ranks={} device=\"{}\" step_ms={:.2} sync_ms={:.2} sync_bytes={bytes}",
            dist.size(),
            dev.name(),
            total_s * 1e3 / steps as f64,
            sync_s * 1e3 / steps as f64
        )
    });
    dist.barrier();
    Ok(())
}
