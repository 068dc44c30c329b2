//! The `lstm_step` workload (the project's workload description): one AdamW step (lr 1e-3,
//! PyTorch's defaults: betas 0.9/0.999, eps 1e-8, weight decay 0.01 on every parameter) of a
//! 2-layer LSTM (input 128, hidden 256, biases, batch-first, no dropout) with a linear head
//! 256→128 on every step, MSE against fixed uniform targets, batch 32 × 64 steps.

use kiln::nn::functional::mse_loss;
use kiln::nn::{Forward, LSTM, Linear, RnnOptions};
use kiln::optim::{AdamConfig, AdamW, Optimizer};
use kiln::{Device, Module, Result, Tensor};

use crate::impl_name;

/// The workload's model: `LstmNet` of the reference programs.
struct LstmNet {
    lstm: LSTM,
    head: Linear,
}

/// The model, its optimizer and a step over fixed data.
fn lstm_stepper(dev: &Device, batch: usize, steps: usize) -> Result<impl FnMut() -> Result<Tensor>> {
    kiln::manual_seed(0);
    let net = LstmNet {
        lstm: LSTM::with_options(128, 256, RnnOptions { num_layers: 2, ..RnnOptions::default() }, dev)?,
        head: Linear::new(256, 128, dev)?,
    };
    let mut params = net.lstm.named_parameters();
    params.extend(net.head.named_parameters().into_iter().map(|(n, p)| (format!("head.{n}"), p)));
    let mut opt = AdamW::new(params, AdamConfig { lr: 1e-3, ..AdamConfig::adamw() })?;
    let x = Tensor::rand(&[batch, steps, 128], dev)?;
    let y = Tensor::rand(&[batch, steps, 128], dev)?;
    Ok(move || -> Result<Tensor> {
        opt.zero_grad();
        let loss = mse_loss(&net.head.forward(&net.lstm.forward(&x)?)?, &y)?;
        loss.backward()?;
        opt.step()?;
        Ok(loss)
    })
}

/// 3 warm-up steps and `steps` timed ones (`time_steps`).
pub fn lstm_step(dev: &Device, steps: usize) -> Result<Vec<String>> {
    let batch = 32;
    let (loss0, l, dt) = crate::time_steps(dev, lstm_stepper(dev, batch, 64)?, 3, steps)?;
    Ok(vec![format!(
        "workload=lstm_step impl={} ms={:.3} samples_per_s={:.0} loss={l:.4} loss0={loss0:.4}",
        impl_name(dev),
        dt * 1e3,
        batch as f64 / dt
    )])
}
