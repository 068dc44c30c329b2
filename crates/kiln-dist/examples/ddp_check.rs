//! The data-parallel equivalence check, run as `mpirun -np 2 target/release/examples/ddp_check`
//! (CI does): every rank starts from a different random init, DistributedDataParallel broadcasts
//! rank 0's, each rank trains K steps on its half of a batch, and afterwards (1) every rank
//! holds identical parameters and (2) they equal (1e-5) a single-process run on the whole batch.
//! Exits 1 on a mismatch.

use kiln::nn::functional::cross_entropy;
use kiln::nn::{Forward, Linear, ReLU, Sequential};
use kiln::optim::{Adam, AdamConfig, Optimizer};
use kiln::prelude::*;
use kiln_dist::{DistributedDataParallel, init};

fn model(dev: &Device) -> Result<Sequential> {
    Ok(Sequential::new().push(Linear::new(8, 16, dev)?).push(ReLU).push(Linear::new(16, 3, dev)?))
}

/// Sample i of the global batch: deterministic features and label.
fn sample(i: usize) -> (Vec<f32>, u32) {
    let x = (0..8).map(|j| (((i * 31 + j * 17) % 23) as f32 / 11.0) - 1.0).collect();
    (x, (i % 3) as u32)
}

fn batch(range: std::ops::Range<usize>, dev: &Device) -> Result<(Tensor, Tensor)> {
    let n = range.len();
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for i in range {
        let (x, y) = sample(i);
        xs.extend(x);
        ys.push(y);
    }
    Ok((Tensor::from_vec(xs, &[n, 8], dev)?, Tensor::from_labels(&ys, dev)?))
}

fn main() {
    if let Err(e) = run() {
        eprintln!("ddp_check error: {e}");
        std::process::exit(1);
    }
}

fn run() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let dist = init()?;
    let (rank, size) = (dist.rank(), dist.size());
    let dev = Device::best();
    let per = 12;
    kiln::manual_seed(100 + rank as u64); // a different init on every rank
    let m = model(&dev)?;
    let ddp = DistributedDataParallel::new(&m, &dist)?.with_bucket_elems(100); // several buckets
    let start = m.state_dict();
    // The single-process reference starts from the same (broadcast) values.
    let reference = model(&dev)?;
    reference.load_state_dict(&start, true)?;
    let cfg = AdamConfig { lr: 0.01, ..Default::default() };
    let mut opt = Adam::new(m.named_parameters(), cfg)?;
    let mut ref_opt = Adam::new(reference.named_parameters(), cfg)?;
    let (x, y) = batch(rank * per..(rank + 1) * per, &dev)?;
    let (xa, ya) = batch(0..size * per, &dev)?;
    let mut exchanged = 0;
    for _ in 0..10 {
        opt.zero_grad();
        cross_entropy(&m.forward(&x)?, &y)?.backward()?;
        exchanged += ddp.sync_gradients()?;
        opt.step()?;
        ref_opt.zero_grad();
        cross_entropy(&reference.forward(&xa)?, &ya)?.backward()?;
        ref_opt.step()?;
    }
    let mut worst = 0f64;
    let mut spread = 0f64;
    for ((k, a), (_, b)) in m.state_dict().iter().zip(reference.state_dict().iter()) {
        let (va, vb) = (a.to_vec()?, b.to_vec()?);
        for (p, q) in va.iter().zip(&vb) {
            worst = worst.max(((p - q).abs() / q.abs().max(1.0)) as f64);
        }
        // Identical on every rank: the sum across ranks equals size x own value.
        let mut summed = va.clone();
        dist.all_reduce_sum(&mut summed)?;
        for (s, p) in summed.iter().zip(&va) {
            spread = spread.max((s - size as f32 * p).abs() as f64);
        }
        let _ = k;
    }
    println!(
        "ddp_check rank {rank}/{size} on {}: max relative difference to one process {worst:.2e}, max rank spread {spread:.2e}, {exchanged} bytes all-reduced",
        dev.name()
    );
    if worst > 1e-5 || spread > 1e-6 {
        return Err(format!("rank {rank}: mismatch (relative {worst:e}, spread {spread:e})").into());
    }
    Ok(())
}
