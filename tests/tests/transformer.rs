//! Transformer layers: LayerNorm, RMSNorm, GELU and SiLU modules, forward and backward on both
//! devices against float64, with PyTorch's parameter names.

use kiln::nn::functional::layer_norm;
use kiln::nn::{Forward, GELU, LayerNorm, RMSNorm, SiLU};
use kiln::prelude::*;
use kiln_tests::{assert_close, device_test, f64s, tensor, weighted_sum};

/// Per row of `n` values: (xhat, 1 / sigma) for layer norm (`rms` false) or RMS norm.
fn normalise(row: &[f64], eps: f64, rms: bool) -> (Vec<f64>, f64) {
    let n = row.len() as f64;
    let mean = if rms { 0.0 } else { row.iter().sum::<f64>() / n };
    let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let r = 1.0 / (var + eps).sqrt();
    (row.iter().map(|v| (v - mean) * r).collect(), r)
}

/// Checks y = norm(x) * w (+ b) over rows of `n` and its gradients for x, w, b against f64:
/// with gw = g * w, dx = r * (gw - mean(gw) - xhat * mean(gw * xhat)) for layer norm and
/// r * (gw - xhat * mean(gw * xhat)) for RMS norm; dw = sum g * xhat, db = sum g.
fn check_norm(
    x: &Tensor,
    y: &Tensor,
    n: usize,
    w: &Tensor,
    b: Option<&Tensor>,
    eps: f64,
    rms: bool,
) -> kiln::Result<()> {
    let (xv, wv) = (f64s(&x.to_vec()?), f64s(&w.to_vec()?));
    let bv = b.map(|b| f64s(&b.to_vec().unwrap())).unwrap_or(vec![0.0; n]);
    let (loss, g) = weighted_sum(y, 41);
    loss.backward()?;
    let (mut want, mut dx, mut dw, mut db) = (vec![], vec![], vec![0.0; n], vec![0.0; n]);
    for (r, row) in xv.chunks(n).enumerate() {
        let (xhat, rs) = normalise(row, eps, rms);
        let gr = &g[r * n..(r + 1) * n];
        let gw: Vec<f64> = gr.iter().zip(&wv).map(|(a, b)| a * b).collect();
        let m1 = if rms { 0.0 } else { gw.iter().sum::<f64>() / n as f64 };
        let m2 = gw.iter().zip(&xhat).map(|(a, b)| a * b).sum::<f64>() / n as f64;
        for j in 0..n {
            want.push(xhat[j] * wv[j] + bv[j]);
            dx.push(rs * (gw[j] - m1 - xhat[j] * m2));
            dw[j] += gr[j] * xhat[j];
            db[j] += gr[j];
        }
    }
    assert_close(&y.to_vec()?, &want, 1e-4);
    assert_close(&x.grad().unwrap().to_vec()?, &dx, 1e-4);
    assert_close(&w.grad().unwrap().to_vec()?, &dw, 1e-4);
    if let Some(b) = b {
        assert_close(&b.grad().unwrap().to_vec()?, &db, 1e-4);
    }
    Ok(())
}

device_test!(layer_norm_and_rms_norm_match_f64, |dev| {
    // One trailing dim (a row longer than a workgroup) and two.
    for (shape, norm) in [(vec![3usize, 2, 300], vec![300usize]), (vec![4, 5, 7], vec![5, 7])] {
        let n: usize = norm.iter().product();
        let ln = LayerNorm::new(&norm, dev)?;
        ln.weight.set(tensor(&norm, 2, dev, false).add_scalar(1.0)?)?;
        ln.bias.as_ref().unwrap().set(tensor(&norm, 3, dev, false))?;
        let x = tensor(&shape, 1, dev, true).mul_scalar(3.0)?.add_scalar(5.0)?.detach().set_requires_grad(true);
        let y = ln.forward(&x)?;
        assert_eq!(y.shape(), &shape[..]);
        let b = ln.bias.as_ref().unwrap().tensor();
        check_norm(&x, &y, n, &ln.weight.tensor(), Some(&b), 1e-5, false)?;
        let rn = RMSNorm::new(&norm, dev)?;
        rn.weight.set(tensor(&norm, 4, dev, false).add_scalar(1.0)?)?;
        let x = tensor(&shape, 5, dev, true);
        let y = rn.forward(&x)?;
        check_norm(&x, &y, n, &rn.weight.tensor(), None, f32::EPSILON as f64, true)?;
    }
    // The functional form without weight or bias, and its input gradient
    // (r * (g - mean(g) - xhat * mean(g * xhat)) per row).
    let x = tensor(&[2, 9], 6, dev, true);
    let y = layer_norm(&x, &[9], None, None, 1e-5)?;
    let xv = f64s(&x.to_vec()?);
    let want: Vec<f64> = xv.chunks(9).flat_map(|r| normalise(r, 1e-5, false).0).collect();
    assert_close(&y.to_vec()?, &want, 1e-5);
    let (loss, g) = weighted_sum(&y, 8);
    loss.backward()?;
    let mut dx = Vec::new();
    for (row, gr) in xv.chunks(9).zip(g.chunks(9)) {
        let (xhat, r) = normalise(row, 1e-5, false);
        let m1 = gr.iter().sum::<f64>() / 9.0;
        let m2 = gr.iter().zip(&xhat).map(|(a, b)| a * b).sum::<f64>() / 9.0;
        dx.extend((0..9).map(|j| r * (gr[j] - m1 - xhat[j] * m2)));
    }
    assert_close(&x.grad().unwrap().to_vec()?, &dx, 1e-4);
});

device_test!(norm_layers_have_pytorch_names_and_refuse_bad_input, |dev| {
    let names =
        |m: &dyn Module| m.named_parameters().into_iter().map(|(n, p)| (n, p.shape().to_vec())).collect::<Vec<_>>();
    assert_eq!(names(&LayerNorm::new(&[8], dev)?), vec![("weight".into(), vec![8]), ("bias".into(), vec![8])]);
    assert_eq!(names(&LayerNorm::no_bias(&[8], dev)?), vec![("weight".into(), vec![8])]);
    assert_eq!(names(&RMSNorm::new(&[4, 2], dev)?), vec![("weight".into(), vec![4, 2])]);
    let e = LayerNorm::new(&[8], dev)?.forward(&Tensor::zeros(&[2, 7], dev)?).unwrap_err().to_string();
    assert!(e.starts_with("LayerNorm([8])") && e.contains("[2, 7]"), "{e}");
    assert!(LayerNorm::new(&[], dev).is_err() && RMSNorm::new(&[0], dev).is_err());
    let x = Tensor::zeros(&[2, 4], dev)?;
    let e = layer_norm(&x, &[4], Some(&Tensor::ones(&[3], dev)?), None, 1e-5).unwrap_err().to_string();
    assert!(e.contains("layer_norm") && e.contains("[3]"), "{e}");
    // A constant row normalises to 0, not NaN.
    assert!(layer_norm(&x, &[4], None, None, 1e-5)?.to_vec()?.iter().all(|&v| v == 0.0));
    // Empty inputs (no rows; empty rows) give empty outputs and gradients, as PyTorch.
    for (shape, norm) in [([0, 8], [8]), ([3, 0], [0])] {
        let x = Tensor::zeros(&shape, dev)?.set_requires_grad(true);
        let w = Tensor::ones(&norm, dev)?.set_requires_grad(true);
        let y = layer_norm(&x, &norm, Some(&w), None, 1e-5)?;
        assert_eq!(y.shape(), shape);
        y.sum_all()?.backward()?;
        assert_eq!(x.grad().unwrap().shape(), shape);
    }
});

device_test!(gelu_and_silu_modules, |dev| {
    let x = tensor(&[3, 70], 7, dev, false).mul_scalar(3.0)?;
    assert_eq!(GELU.forward(&x)?.to_vec()?, x.gelu()?.to_vec()?);
    let s = SiLU.forward(&x)?.to_vec()?;
    let want: Vec<f64> = f64s(&x.to_vec()?).iter().map(|v| v / (1.0 + (-v).exp())).collect();
    assert_close(&s, &want, 1e-5);
});

device_test!(attention_layers_init_train_and_refuse_bad_input, |dev| {
    use kiln::nn::{MultiheadAttention, TransformerEncoderLayer};
    // PyTorch's init: in_proj_weight xavier-uniform (bound sqrt(6 / (E + 3E))), zero biases.
    let m = MultiheadAttention::new(16, 4, dev)?;
    let bound = (6.0f32 / (16.0 + 48.0)).sqrt();
    let w = m.in_proj_weight.tensor().to_vec()?;
    assert!(w.iter().all(|v| v.abs() <= bound) && w.iter().any(|v| v.abs() > bound * 0.9));
    assert!(m.in_proj_bias.tensor().to_vec()?.iter().all(|&v| v == 0.0));
    assert!(m.out_proj.bias.as_ref().unwrap().tensor().to_vec()?.iter().all(|&v| v == 0.0));
    // Cross-attention with L != S, a [B * heads, L, S] mask, and gradients reaching every
    // parameter.
    let q = tensor(&[2, 3, 16], 1, dev, false);
    let kv = tensor(&[2, 5, 16], 2, dev, false);
    let mask = Tensor::zeros(&[8, 3, 5], dev)?;
    let y = m.forward_with(&q, &kv, &kv, Some(&mask), false)?;
    assert_eq!(y.shape(), &[2, 3, 16]);
    y.sum_all()?.backward()?;
    for (n, p) in m.named_parameters() {
        let g = p.grad().unwrap_or_else(|| panic!("{n} has no gradient")).to_vec()?;
        assert!(g.iter().all(|v| v.is_finite()) && g.iter().any(|&v| v != 0.0), "{n}");
    }
    let err = |r: kiln::Result<Tensor>| r.unwrap_err().to_string();
    assert!(MultiheadAttention::new(16, 3, dev).is_err());
    let e = err(m.forward(&tensor(&[2, 3, 8], 3, dev, false)));
    assert!(e.starts_with("MultiheadAttention(16, 4)") && e.contains("[2, 3, 8]"), "{e}");
    assert!(m.forward_with(&q, &kv, &tensor(&[2, 4, 16], 4, dev, false), None, false).is_err());
    assert!(m.forward_with(&q, &kv, &kv, Some(&Tensor::zeros(&[7, 3, 5], dev)?), false).is_err());
    // Dropout 0.1 in training changes the output from call to call; eval mode is deterministic.
    let layer = TransformerEncoderLayer::new(16, 4, 32, dev)?;
    let x = tensor(&[2, 6, 16], 5, dev, false);
    assert_ne!(layer.forward(&x)?.to_vec()?, layer.forward(&x)?.to_vec()?);
    layer.eval();
    assert_eq!(layer.forward(&x)?.to_vec()?, layer.forward(&x)?.to_vec()?);
    assert_eq!(
        layer.num_parameters().total,
        3 * 16 * 16 + 3 * 16 + 16 * 16 + 16 + 16 * 32 + 32 + 32 * 16 + 16 + 4 * 16
    );
});
