//! Losses against float64 references (values and gradients) on both devices: cross-entropy
//! (fused) with class weights, ignore index and reductions; nll_loss; binary cross-entropy on
//! logits; l1; Embedding; label checks.

use kiln::Error;
use kiln::nn::functional::{
    LossOptions, Reduction, binary_cross_entropy_with_logits, cross_entropy, cross_entropy_with, l1_loss, nll_loss,
    nll_loss_with,
};
use kiln::nn::{Embedding, Forward};
use kiln::prelude::*;
use kiln_tests::{assert_close, check_gradients, data, device_test, f64s, tensor};

/// f64 cross-entropy per row.
fn ce_rows(x: &[f64], labels: &[u32], c: usize) -> Vec<f64> {
    labels
        .iter()
        .enumerate()
        .map(|(r, &l)| {
            let row = &x[r * c..(r + 1) * c];
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            lse - row[l as usize % c]
        })
        .collect()
}

device_test!(cross_entropy_weights_ignore_and_reductions, |dev| {
    let (n, c) = (7, 5);
    let labels = [0u32, 4, 2, 2, 1, 3, 4];
    let lt = Tensor::from_labels(&labels, dev)?;
    let x = Tensor::from_vec(data(n * c, 3).iter().map(|v| v * 4.0).collect(), &[n, c], dev)?.set_requires_grad(true);
    let xv = f64s(&x.to_vec()?);
    let rows = ce_rows(&xv, &labels, c);
    let wv = [0.5, 1.0, 2.0, 0.25, 1.5];
    let w = Tensor::from_vec(wv.iter().map(|&v| v as f32).collect(), &[c], dev)?;
    // Plain mean.
    assert_close(&[cross_entropy(&x, &lt)?.item()?], &[rows.iter().sum::<f64>() / n as f64], 1e-6);
    // Weighted mean: sum(w[y] l) / sum(w[y]).
    let o = LossOptions { weight: Some(w.clone()), ..Default::default() };
    let num: f64 = rows.iter().zip(&labels).map(|(l, &y)| l * wv[y as usize]).sum();
    let den: f64 = labels.iter().map(|&y| wv[y as usize]).sum();
    assert_close(&[cross_entropy_with(&x, &lt, &o)?.item()?], &[num / den], 1e-6);
    // Ignore index inside the class range (label 2 rows drop out), with weights.
    let o = LossOptions { weight: Some(w.clone()), ignore_index: Some(2), ..Default::default() };
    let keep = |y: u32| if y == 2 { 0.0 } else { wv[y as usize] };
    let num: f64 = rows.iter().zip(&labels).map(|(l, &y)| l * keep(y)).sum();
    let den: f64 = labels.iter().map(|&y| keep(y)).sum();
    assert_close(&[cross_entropy_with(&x, &lt, &o)?.item()?], &[num / den], 1e-6);
    // An ignore index outside the range (PyTorch's -100 style): rows labelled 255 drop out.
    let l2 = [0u32, 255, 2, 255, 1, 3, 4];
    let lt2 = Tensor::from_labels(&l2, dev)?;
    let o = LossOptions { ignore_index: Some(255), ..Default::default() };
    let kept: Vec<f64> = rows.iter().zip(&l2).filter(|(_, y)| **y != 255).map(|(r, _)| *r).collect();
    let want = kept.iter().sum::<f64>() / kept.len() as f64;
    assert_close(&[cross_entropy_with(&x, &lt2, &o)?.item()?], &[want], 1e-6);
    // Sum and none.
    let o = LossOptions { reduction: Reduction::Sum, ..Default::default() };
    assert_close(&[cross_entropy_with(&x, &lt, &o)?.item()?], &[rows.iter().sum::<f64>()], 1e-6);
    let o = LossOptions { reduction: Reduction::None, ..Default::default() };
    assert_close(&cross_entropy_with(&x, &lt, &o)?.to_vec()?, &rows, 1e-6);
    // Gradient of the weighted, ignoring loss against finite differences.
    let o = LossOptions { weight: Some(w.clone()), ignore_index: Some(2), ..Default::default() };
    check_gradients(
        std::slice::from_ref(&x),
        |p| cross_entropy_with(&p[0], &lt, &o),
        |p| {
            let r = ce_rows(&p[0], &labels, c);
            let num: f64 = r.iter().zip(&labels).map(|(l, &y)| l * keep(y)).sum();
            num / den
        },
        1e-3,
    );
    // nll_loss on log_softmax is cross-entropy.
    let x2 = tensor(&[n, c], 9, dev, false);
    let a = cross_entropy(&x2, &lt)?.item()?;
    let b = nll_loss(&x2.log_softmax(1)?, &lt)?.item()?;
    assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    let o = LossOptions { weight: Some(w.clone()), ignore_index: Some(0), ..Default::default() };
    let a = cross_entropy_with(&x2, &lt, &o)?.item()?;
    let b = nll_loss_with(&x2.log_softmax(1)?, &lt, &o)?.item()?;
    assert!((a - b).abs() < 1e-6, "{a} vs {b}");
});

device_test!(labels_out_of_range_are_errors, |dev| {
    let x = Tensor::zeros(&[3, 4], dev)?;
    let bad = Tensor::from_labels(&[0, 4, 1], dev)?;
    let e = cross_entropy(&x, &bad).unwrap_err();
    assert!(matches!(e, Error::Invalid { .. }) && e.to_string().contains("label 4"), "{e}");
    assert!(nll_loss(&x, &bad).is_err());
    // The ignore index itself may be out of range.
    let o = LossOptions { ignore_index: Some(9), ..Default::default() };
    cross_entropy_with(&x, &Tensor::from_labels(&[0, 9, 1], dev)?, &o)?;
    // Labels computed on the device (no host copy): out of range is an error on the CPU and a
    // NaN loss on the GPU (checking there would need a read-back every step).
    let scores =
        Tensor::from_vec(vec![0., 1., 0., 0., 0., 0., 0., 0., 0., 0., 0., 9., 1., 0., 0., 0., 0., 0.], &[3, 6], dev)?;
    let dev_labels = scores.argmax(1)?;
    match cross_entropy(&x, &dev_labels) {
        Err(e) => assert!(!dev.is_gpu() && e.to_string().contains("label 5"), "{e}"),
        Ok(l) => assert!(dev.is_gpu() && l.item()?.is_nan()),
    }
    // A batch of the wrong width.
    assert!(matches!(cross_entropy(&x, &Tensor::from_labels(&[0, 1], dev)?), Err(Error::ShapeMismatch { .. })));
    let o = LossOptions { weight: Some(Tensor::ones(&[3], dev)?), ..Default::default() };
    assert!(matches!(
        cross_entropy_with(&x, &Tensor::from_labels(&[0, 1, 2], dev)?, &o),
        Err(Error::ShapeMismatch { .. })
    ));
});

device_test!(bce_with_logits_l1_and_their_gradients, |dev| {
    let xs: Vec<f32> = vec![-30.0, -2.0, -0.5, 0.0, 0.0, 0.7, 3.0, 40.0];
    let ts: Vec<f32> = vec![0.0, 1.0, 0.3, 0.0, 1.0, 1.0, 0.5, 0.0];
    let x = Tensor::from_vec(xs.clone(), &[2, 4], dev)?.set_requires_grad(true);
    let t = Tensor::from_vec(ts.clone(), &[2, 4], dev)?;
    let l = binary_cross_entropy_with_logits(&x, &t)?;
    let sp = |v: f64| v.max(0.0) + (1.0 + (-v.abs()).exp()).ln();
    let want: f64 = xs.iter().zip(&ts).map(|(&v, &t)| sp(v as f64) - v as f64 * t as f64).sum::<f64>() / 8.0;
    assert_close(&[l.item()?], &[want], 1e-6);
    l.backward()?;
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    let g: Vec<f64> = xs.iter().zip(&ts).map(|(&v, &t)| (sig(v as f64) - t as f64) / 8.0).collect();
    assert_close(&x.grad().unwrap().to_vec()?, &g, 1e-6);
    // l1
    let p = tensor(&[3, 5], 1, dev, true);
    let q = tensor(&[3, 5], 2, dev, false);
    let (pv, qv) = (f64s(&p.to_vec()?), f64s(&q.to_vec()?));
    let l = l1_loss(&p, &q)?;
    assert_close(&[l.item()?], &[pv.iter().zip(&qv).map(|(a, b)| (a - b).abs()).sum::<f64>() / 15.0], 1e-6);
    l.backward()?;
    let g: Vec<f64> = pv.iter().zip(&qv).map(|(a, b)| (a - b).signum() / 15.0).collect();
    assert_close(&p.grad().unwrap().to_vec()?, &g, 1e-6);
    assert!(l1_loss(&p, &tensor(&[5, 3], 1, dev, false)).is_err());
});

device_test!(embedding_looks_up_and_accumulates, |dev| {
    kiln::manual_seed(4);
    let e = Embedding::new(10, 3, dev)?;
    let w = e.weight.tensor().to_vec()?;
    let ids = Tensor::from_vec_u32(vec![1, 7, 1, 0], &[2, 2], dev)?;
    let y = e.forward(&ids)?;
    assert_eq!(y.shape(), &[2, 2, 3]);
    let yv = y.to_vec()?;
    for (k, id) in [1usize, 7, 1, 0].iter().enumerate() {
        assert_eq!(&yv[k * 3..k * 3 + 3], &w[id * 3..id * 3 + 3]);
    }
    y.sum_all()?.backward()?;
    let g = e.weight.grad().unwrap().to_vec()?;
    let want: Vec<f32> = (0..30)
        .map(|i| match i / 3 {
            1 => 2.0,
            7 | 0 => 1.0,
            _ => 0.0,
        })
        .collect();
    assert_eq!(g, want);
    assert!(e.forward(&Tensor::from_labels(&[10], dev)?).is_err());
    assert_eq!(e.named_parameters()[0].0, "weight");
});

device_test!(dtype_conversions_and_int64_labels, |dev| {
    // to_dtype between F32, U32 and I64, both ways, values kept.
    let f = Tensor::from_vec(vec![0.0, 3.0, 1.0, 2.0, 16777216.0, 7.0], &[2, 3], dev)?;
    let u = f.to_dtype(DType::U32)?;
    assert_eq!((u.dtype(), u.shape()), (DType::U32, &[2usize, 3][..]));
    assert_eq!(u.to_vec_u32()?, [0, 3, 1, 2, 16777216, 7]);
    let i = u.to_dtype(DType::I64)?;
    assert_eq!(i.to_vec_i64()?, [0, 3, 1, 2, 16777216, 7]);
    assert_eq!(i.to_dtype(DType::F32)?.to_vec()?, f.to_vec()?);
    assert_eq!(f.to_dtype(DType::I64)?.to_dtype(DType::U32)?.to_vec_u32()?, u.to_vec_u32()?);
    assert_eq!(Tensor::from_vec(vec![-2.0], &[1], dev)?.to_dtype(DType::I64)?.to_vec_i64()?, [-2]);
    // Values that do not fit: the first one is named, with its index.
    for (vals, to, what) in [
        (vec![1.0, 2.5, -1.0], DType::U32, "element 1 (2.5)"),
        (vec![1.0, -1.0], DType::U32, "element 1 (-1)"),
        (vec![f32::NAN], DType::I64, "element 0 (NaN)"),
    ] {
        let n = vals.len();
        let e = Tensor::from_vec(vals, &[n], dev)?.to_dtype(to).unwrap_err().to_string();
        assert!(e.starts_with("to_dtype") && e.contains(what), "{e}");
    }
    let neg = Tensor::from_vec_i64(vec![4, -100, 5_000_000_000], &[3], dev)?;
    assert!(neg.to_dtype(DType::U32).unwrap_err().to_string().contains("element 1 (-100)"));
    // Losses, one_hot and datasets take PyTorch's int64 labels as they are.
    let x = tensor(&[5, 4], 3, dev, true);
    let l32 = Tensor::from_labels(&[3, 0, 1, 1, 2], dev)?;
    let l64 = Tensor::from_vec_i64(vec![3, 0, 1, 1, 2], &[5], dev)?;
    let a = cross_entropy(&x, &l32)?;
    a.backward()?;
    let ga = x.grad().unwrap().to_vec()?;
    let x2 = tensor(&[5, 4], 3, dev, true);
    let b = cross_entropy(&x2, &l64)?;
    b.backward()?;
    assert_eq!(a.item()?, b.item()?);
    assert_eq!(ga, x2.grad().unwrap().to_vec()?);
    assert_eq!(nll_loss(&x.log_softmax(1)?, &l64)?.item()?, nll_loss(&x.log_softmax(1)?, &l32)?.item()?);
    assert_eq!(Tensor::one_hot(&l64, 4)?.to_vec()?, Tensor::one_hot(&l32, 4)?.to_vec()?);
    let e = cross_entropy(&x, &Tensor::from_vec_i64(vec![3, 0, -1, 1, 2], &[5], dev)?).unwrap_err().to_string();
    assert!(e.starts_with("cross_entropy: labels:") && e.contains("(-1)"), "{e}");
    let ds = kiln::data::TensorDataset::new(&x.detach(), &l64)?;
    let (_, y) = kiln::data::DataLoader::new(&ds, 5).device(dev).iter().next().unwrap();
    assert_eq!((y.dtype(), y.to_vec_u32()?), (DType::U32, vec![3, 0, 1, 1, 2]));
    // A wrong dtype says how to make the right one.
    let e = cross_entropy(&x, &Tensor::from_vec(vec![3.0, 0.0, 1.0, 1.0, 2.0], &[5], dev)?).unwrap_err().to_string();
    assert!(
        e.contains("expected a U32 tensor, got F32")
            && e.contains("Tensor::from_labels")
            && e.contains(".to_dtype(DType::U32)"),
        "{e}"
    );
});
