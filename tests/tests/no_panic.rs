//! Property test: the public Tensor API, driven with random shapes (including empty and 0-d),
//! dims (including negative and out of range), dtypes and devices, returns Ok or a
//! `kiln::Error` — it never panics.

use kiln::nn::functional::{
    Conv1dOptions, Conv2dOptions, LossOptions, adaptive_avg_pool2d, avg_pool2d, conv1d, conv2d, cross_entropy,
    cross_entropy_with, l1_loss, max_pool2d, mse_loss, nll_loss,
};
use kiln::{Device, Tensor};
use proptest::prelude::*;

fn devices() -> Vec<Device> {
    let mut d = vec![Device::cpu()];
    if let Some(g) = kiln_tests::gpu_device() {
        d.push(g);
    }
    d
}

fn make(shape: &[usize], dev: &Device, seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec(kiln_tests::data(n, seed), shape, dev).unwrap().set_requires_grad(seed.is_multiple_of(2))
}

fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0usize..5, 0..5)
}

/// One op on (a, b) chosen by `op`, with dims d0 and d1; the result is checked only for not
/// panicking, and, when Ok, backward is attempted on a reduction of it.
fn run(op: u8, a: &Tensor, b: &Tensor, d0: i64, d1: i64, shape: &[usize], labels: &Tensor) -> kiln::Result<Tensor> {
    let (u0, u1) = (d0.unsigned_abs() as usize, d1.unsigned_abs() as usize);
    match op % 37 {
        0 => a.add(b),
        1 => a.sub(b),
        2 => a.mul(b),
        3 => a.div(b),
        4 => a.maximum(b),
        5 => a.matmul(b),
        6 => a.sum(d0, d1 > 0),
        7 => a.mean(d0, d1 > 0),
        8 => a.max(d0, d1 > 0),
        9 => a.argmax(d0),
        10 => a.softmax(d0),
        11 => a.log_softmax(d0),
        12 => a.transpose(d0, d1),
        13 => a.t(),
        14 => a.reshape(shape),
        15 => a.broadcast_to(shape),
        16 => a.unsqueeze(d0),
        17 => a.squeeze(d0),
        18 => a.sum_all(),
        19 => a.mean_all(),
        20 => cross_entropy(a, labels),
        21 => nll_loss(a, labels),
        22 => mse_loss(a, b),
        23 => l1_loss(a, b),
        24 => Tensor::one_hot(labels, d0.unsigned_abs() as usize),
        25 => a.item().map(|_| a.clone()),
        26 => Tensor::from_vec(vec![1.0; (d0.unsigned_abs() as usize) % 7], shape, &a.device()),
        27 => cross_entropy_with(
            a,
            labels,
            &LossOptions {
                ignore_index: Some(d1.unsigned_abs() as u32),
                weight: Some(b.clone()),
                ..Default::default()
            },
        ),
        28 => a.powf(d0 as f32 / 2.0)?.log()?.sqrt(),
        30 => conv2d(
            a,
            b,
            None,
            &Conv2dOptions { stride: (u0, 1), padding: (u1, 0), dilation: (1, u1.max(1)), groups: u0.max(1) },
        ),
        31 => conv1d(a, b, Some(labels), &Conv1dOptions { stride: u1, padding: u0, dilation: 1, groups: 1 }),
        32 => max_pool2d(a, (u0, u1), (u1, u0), (u0 / 2, 0)),
        33 => avg_pool2d(a, (u0, u0), (u1, 1), (0, u1)),
        34 => adaptive_avg_pool2d(a, (u0, u1)),
        35 => a.flatten_dims(d0, d1),
        36 => a.to_dtype(if d0 > 0 { kiln::DType::U32 } else { kiln::DType::I64 }),
        37 => Tensor::cat(&[a, b], d0),
        38 => Tensor::stack(&[a, b], d0),
        39 => a.narrow(d0, u0, u1),
        40 => a.chunk(u0, d0).map(|v| v.into_iter().next().unwrap_or_else(|| a.clone())),
        41 => a.split(u1, d0).map(|v| v.into_iter().last().unwrap_or_else(|| a.clone())),
        42 => a.permute(&shape.iter().map(|&s| s % 5).collect::<Vec<_>>()),
        43 => a.index_select(d0, labels),
        44 => a.gather(d0, &labels.reshape(shape)?),
        45 => a.tril(d0)?.triu(d1),
        46 => a.var(d0, d1 > 0, d1 > 1),
        47 => a.min(d0, d1 > 0),
        48 => a.argmin(d0),
        49 => a.clamp(d0 as f32, d1 as f32),
        50 => a.masked_fill(b, f32::NEG_INFINITY),
        51 => a.where_(b, a),
        52 => a.leaky_relu(d0 as f32)?.silu()?.gelu_tanh()?.sin()?.cos(),
        53 => kiln::nn::functional::scaled_dot_product_attention(a, b, b, Some(a), d1 > 0),
        54 => kiln::nn::functional::layer_norm(a, shape, Some(b), None, 1e-5),
        55 => kiln::nn::functional::rms_norm(a, &shape[shape.len().saturating_sub(1)..], None, None),
        // Recurrent layers with sizes from d0, d1 (zero included) on whatever a and b are.
        56..=60 => {
            use kiln::nn::{Forward, GRU, GRUCell, LSTM, LSTMCell, Nonlinearity, RNN, RNNCell, RnnOptions};
            let (i, h) = (d0.unsigned_abs() as usize, d1.unsigned_abs() as usize);
            let o = RnnOptions {
                num_layers: 2,
                bidirectional: d0 > 0,
                nonlinearity: Nonlinearity::Relu,
                ..RnnOptions::default()
            };
            let dev = a.device();
            match op {
                56 => Ok(LSTM::with_options(i, h, o, &dev)?.forward_with_state(a, Some((b, b)))?.0),
                57 => Ok(GRU::with_options(i, h, o, &dev)?.forward_with_state(a, Some(b))?.0),
                58 => RNN::with_options(i, h, o, &dev)?.forward(a),
                59 => Ok(LSTMCell::new(i, h, &dev)?.forward_with_state(a, Some((b, b)))?.0),
                _ => GRUCell::new(i, h, &dev)?
                    .forward_with_state(a, Some(b))?
                    .add(&RNNCell::new(i, h, &dev)?.forward_with_state(a, None)?),
            }
        }
        _ => Tensor::linear(a, b, None),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn tensor_api_never_panics(
        sa in shape(),
        sb in shape(),
        sc in shape(),
        op in any::<u8>(),
        d0 in -4i64..5,
        d1 in -4i64..5,
        nlab in 0usize..5,
        lab in 0u32..6,
        gpu in any::<bool>(),
    ) {
        let devs = devices();
        let dev = &devs[if gpu { devs.len() - 1 } else { 0 }];
        let a = make(&sa, dev, 1);
        let b = make(&sb, dev, 2);
        let labels = Tensor::from_labels(&vec![lab; nlab], dev).unwrap();
        if let Ok(y) = run(op, &a, &b, d0, d1, &sc, &labels) {
            // Whatever came out can be reduced, read and differentiated (or says why not).
            if let (kiln::DType::F32, Ok(s)) = (y.dtype(), y.sum_all()) {
                let _ = s.backward();
                let _ = s.item();
            }
            let _ = y.to_vec();
            // Mixing devices is an error, not a panic.
            let _ = y.to(&Device::cpu()).and_then(|c| c.add(&a));
        }
    }
}
