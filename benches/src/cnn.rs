//! The `cnn_step` workload (the project's workload description): one SGD step of a CIFAR-shaped
//! CNN on fixed random data, batch 64 x 3 x 32 x 32.

use std::time::Instant;

use kiln::nn::functional::cross_entropy;
use kiln::nn::{
    AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Conv2dOptions, Flatten, Forward, Linear, MaxPool2d, ReLU, Sequential,
};
use kiln::optim::{Optimizer, Sgd, SgdConfig};
use kiln::{Device, Module, Result, Tensor};

use crate::impl_name;

/// conv3x3 3->32 + BN + ReLU, maxpool 2, conv3x3 32->64 + BN + ReLU, maxpool 2,
/// conv3x3 64->128 + BN + ReLU, adaptive avg pool 1, flatten, linear 128->10.
fn model(dev: &Device) -> Result<Sequential> {
    let same = Conv2dOptions { padding: (1, 1), ..Default::default() };
    let block = |s: Sequential, i: usize, o: usize| -> Result<Sequential> {
        Ok(s.push(Conv2d::with_options(i, o, (3, 3), same, true, dev)?).push(BatchNorm2d::new(o, dev)?).push(ReLU))
    };
    let s = block(Sequential::new(), 3, 32)?.push(MaxPool2d::new((2, 2), (2, 2)));
    let s = block(s, 32, 64)?.push(MaxPool2d::new((2, 2), (2, 2)));
    Ok(block(s, 64, 128)?.push(AdaptiveAvgPool2d::new((1, 1))).push(Flatten::new()).push(Linear::new(128, 10, dev)?))
}

/// The workload's model, data and optimizer, as a closure running one step.
fn cnn_stepper(dev: &Device, batch: usize) -> Result<impl FnMut() -> Result<Tensor>> {
    kiln::manual_seed(0);
    let net = model(dev)?;
    let cfg = SgdConfig { lr: 0.01, momentum: 0.9, ..Default::default() };
    let mut opt = Sgd::new(net.named_parameters(), cfg)?;
    let x = Tensor::rand(&[batch, 3, 32, 32], dev)?;
    let labels: Vec<u32> = (0..batch).map(|i| ((i * 7919) % 10) as u32).collect();
    let y = Tensor::from_labels(&labels, dev)?;
    Ok(move || -> Result<Tensor> {
        opt.zero_grad();
        let loss = cross_entropy(&net.forward(&x)?, &y)?;
        loss.backward()?;
        opt.step()?;
        Ok(loss)
    })
}

/// `cnn_step` run for `steps` steps, the pool and RSS reported as `memory` does, next to the
/// minimum: parameters with their gradients and momentum, the input, and the activations the
/// backward needs (each conv, BatchNorm and ReLU output, each pool output).
pub fn cnn_memory(dev: &Device, steps: usize) -> Result<Vec<String>> {
    let batch = 64;
    let step = cnn_stepper(dev, batch)?;
    let params: usize = [(3, 32), (32, 64), (64, 128)].iter().map(|(i, o)| o * i * 9 + o + 2 * o).sum::<usize>() + 1290;
    // Per sample: the input, then per block three maps (conv, BN, ReLU) and the pooled one.
    let acts = batch * (3 * 1024 + 3 * 32 * 1024 + 32 * 256 + 3 * 64 * 256 + 64 * 64 + 3 * 128 * 64 + 128 + 10);
    crate::memory_of("cnn_memory", dev, step, (3 * params + acts) * 4, steps)
}

/// 3 warm-up steps and `steps` timed ones (`time_steps`).
pub fn cnn_step(dev: &Device, steps: usize) -> Result<Vec<String>> {
    let batch = 64;
    let (loss0, l, dt) = crate::time_steps(dev, cnn_stepper(dev, batch)?, 3, steps)?;
    Ok(vec![format!(
        "workload=cnn_step impl={} ms={:.3} samples_per_s={:.0} loss={l:.4} loss0={loss0:.4}",
        impl_name(dev),
        dt * 1e3,
        batch as f64 / dt
    )])
}

/// The parts of `cnn_step`'s first block, timed one by one on `dev` (each 5 times after a
/// warm-up, with a sync): where a step's time goes.
pub fn cnn_parts(dev: &Device) -> Result<Vec<String>> {
    use kiln::nn::functional::{conv2d, max_pool2d};
    kiln::manual_seed(0);
    let x = Tensor::rand(&[64, 3, 32, 32], dev)?.set_requires_grad(true);
    let w = Tensor::rand(&[32, 3, 3, 3], dev)?.set_requires_grad(true);
    let h = Tensor::rand(&[64, 32, 32, 32], dev)?.set_requires_grad(true);
    let bn = BatchNorm2d::new(32, dev)?;
    let same = Conv2dOptions { padding: (1, 1), ..Default::default() };
    let mut lines = Vec::new();
    let mut time = |name: &str, f: &mut dyn FnMut() -> Result<Tensor>| -> Result<()> {
        f()?.sum_all()?.item()?;
        let t = Instant::now();
        for _ in 0..5 {
            f()?.sum_all()?.item()?;
        }
        lines.push(format!(
            "workload=cnn_parts impl={} part={name} ms={:.3}",
            impl_name(dev),
            t.elapsed().as_secs_f64() * 200.0
        ));
        Ok(())
    };
    time("conv1_forward", &mut || conv2d(&x, &w, None, &same))?;
    time("conv1_forward_backward", &mut || {
        let y = conv2d(&x, &w, None, &same)?;
        y.sum_all()?.backward()?;
        Ok(y)
    })?;
    time("bn_forward", &mut || bn.forward(&h))?;
    time("bn_forward_backward", &mut || {
        let y = bn.forward(&h)?;
        y.sum_all()?.backward()?;
        Ok(y)
    })?;
    time("maxpool_forward_backward", &mut || {
        let y = max_pool2d(&h, (2, 2), (2, 2), (0, 0))?;
        y.sum_all()?.backward()?;
        Ok(y)
    })?;
    time("relu_forward_backward", &mut || {
        let y = h.relu()?;
        y.sum_all()?.backward()?;
        Ok(y)
    })?;
    // The second block's convolution (32 -> 64 channels on 16x16, K = 288): each pass in GFLOP/s
    // (2 N O L K flops each), the backward passes as the difference to the forward alone.
    let x2 = Tensor::rand(&[64, 32, 16, 16], dev)?;
    let w2 = Tensor::rand(&[64, 32, 3, 3], dev)?;
    let flops = 2.0 * 64.0 * 64.0 * 256.0 * 288.0;
    let run = |dx: bool, dw: bool| -> Result<f64> {
        let (x, w) = (x2.detach().set_requires_grad(dx), w2.detach().set_requires_grad(dw));
        let step = || -> Result<()> {
            let y = conv2d(&x, &w, None, &same)?;
            if dx || dw {
                y.sum_all()?.backward()?;
            }
            let probe = if dx {
                x.grad()
            } else if dw {
                w.grad()
            } else {
                Some(y)
            };
            probe.map(|t| t.sum_all()?.item()).transpose()?;
            Ok(())
        };
        step()?;
        let t = Instant::now();
        for _ in 0..5 {
            step()?;
        }
        Ok(t.elapsed().as_secs_f64() / 5.0)
    };
    let fwd = run(false, false)?;
    let (bx, bw) = (run(true, false)? - fwd, run(false, true)? - fwd);
    for (pass, t) in [("forward", fwd), ("backward_input", bx), ("backward_weight", bw)] {
        lines.push(format!(
            "workload=cnn_parts impl={} part=conv2_{pass} ms={:.3} gflops={:.2}",
            impl_name(dev),
            t * 1e3,
            flops / t.max(1e-9) / 1e9
        ));
    }
    Ok(lines)
}
