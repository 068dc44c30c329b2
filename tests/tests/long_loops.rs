//! Kernels whose loops run long: llvmpipe (the software adapter CI runs on) ends every loop of
//! a shader once the shader's loops have run 65535 iterations in all, silently
//! (`LP_MAX_TGSI_LOOP_ITERATIONS` in Mesa's gallivm), so a kernel that walks a whole row, a
//! whole reduced dim or a whole inner dim in one invocation returns wrong numbers past that
//! length. Every op here runs at a length past it (70001, prime to every tile) and must match
//! float64, forward and backward.

use kiln::nn::functional::{cross_entropy, layer_norm};
use kiln::{Device, Tensor};
use kiln_tests::{assert_close, check_matmul, device_test, f64s, tensor, weighted_sum};

/// Past llvmpipe's 65535 loop iterations, and not a multiple of any tile.
const LONG: usize = 70001;

/// Past the longest row one launch of the softmax (5.12M), cross-entropy (7.68M classes) and
/// layer-norm (5.1M) kernels takes: those ops compose blocked reductions there.
const VERY_LONG: usize = 7_680_001;

device_test!(reductions_over_a_long_dim, |dev| {
    // [LONG, 3] reduced over dim 0: each output walks LONG values.
    let x = tensor(&[LONG, 3], 1, dev, true);
    let xv = f64s(&x.to_vec()?);
    let xs = &xv;
    let col = |j: usize| (0..LONG).map(move |i| xs[i * 3 + j]);
    let sums: Vec<f64> = (0..3).map(|j| col(j).sum()).collect();
    let maxes: Vec<f64> = (0..3).map(|j| col(j).fold(f64::MIN, f64::max)).collect();
    let mins: Vec<f64> = (0..3).map(|j| col(j).fold(f64::MAX, f64::min)).collect();
    assert_close(&x.sum(0usize, false)?.to_vec()?, &sums, 1e-5);
    assert_close(&x.max(0usize, false)?.to_vec()?, &maxes, 0.0);
    assert_close(&x.min(0usize, false)?.to_vec()?, &mins, 0.0);
    let argmax: Vec<f64> =
        (0..3).map(|j| (0..LONG).fold(0, |b, i| if xv[i * 3 + j] > xv[b * 3 + j] { i } else { b }) as f64).collect();
    assert_close(&x.argmax(0usize)?.to_vec()?, &argmax, 0.0);
    let means: Vec<f64> = sums.iter().map(|s| s / LONG as f64).collect();
    let vars: Vec<f64> =
        (0..3).map(|j| col(j).map(|a| (a - means[j]).powi(2)).sum::<f64>() / (LONG - 1) as f64).collect();
    assert_close(&x.var(0usize, false, true)?.to_vec()?, &vars, 1e-4);
    // The gradient of a long mean reaches every element.
    let (loss, w) = weighted_sum(&x.mean(0usize, false)?, 2);
    loss.backward()?;
    let want: Vec<f64> = (0..LONG * 3).map(|i| w[i % 3] / LONG as f64).collect();
    assert_close(&x.grad().unwrap().to_vec()?, &want, 1e-5);
    // All of a long tensor.
    let big = tensor(&[3, LONG, 5], 3, dev, false);
    let bv = f64s(&big.to_vec()?);
    assert_close(&[big.sum_all()?.item()?], &[bv.iter().sum()], 1e-4);
});

/// softmax and log_softmax over `rows` rows of `len`, forward and backward, against f64.
fn check_softmax(dev: &Device, rows: usize, len: usize) -> kiln::Result<()> {
    let x = tensor(&[rows, len], 4, dev, true).mul_scalar(3.0)?;
    let xv = f64s(&x.to_vec()?);
    let soft: Vec<f64> = xv
        .chunks(len)
        .flat_map(|r| {
            let m = r.iter().cloned().fold(f64::MIN, f64::max);
            let z: f64 = r.iter().map(|a| (a - m).exp()).sum();
            r.iter().map(move |a| (a - m).exp() / z).collect::<Vec<_>>()
        })
        .collect();
    let y = x.softmax(1usize)?;
    assert_close(&y.to_vec()?, &soft, 1e-4);
    let logs: Vec<f64> = soft.iter().map(|p| p.ln()).collect();
    assert_close(&x.log_softmax(1usize)?.to_vec()?, &logs, 1e-4);
    // d/dx sum(w * softmax(x)) = y * (w - sum(w * y)) per row.
    let xl = x.detach().set_requires_grad(true);
    let (loss, w) = weighted_sum(&xl.softmax(1usize)?, 5);
    loss.backward()?;
    let mut want = vec![0.0; rows * len];
    for r in 0..rows {
        let (ys, ws) = (&soft[r * len..(r + 1) * len], &w[r * len..(r + 1) * len]);
        let dot: f64 = ys.iter().zip(ws).map(|(a, b)| a * b).sum();
        for i in 0..len {
            want[r * len + i] = ys[i] * (ws[i] - dot);
        }
    }
    assert_close(&xl.grad().unwrap().to_vec()?, &want, 1e-5);
    Ok(())
}

device_test!(softmax_and_log_softmax_over_long_rows, |dev| {
    check_softmax(dev, 2, LONG)?;
    // Past the longest row the softmax kernels take: a composition of blocked reductions.
    check_softmax(dev, 1, VERY_LONG)?;
});

/// Cross-entropy over two rows of `len` classes (labels at both ends), loss and gradient.
fn check_cross_entropy(dev: &Device, len: usize) -> kiln::Result<()> {
    let x = tensor(&[2, len], 6, dev, true).mul_scalar(3.0)?.detach().set_requires_grad(true);
    let xv = f64s(&x.to_vec()?);
    let labels = [len as u32 - 1, 17];
    let loss = cross_entropy(&x, &Tensor::from_labels(&labels, dev)?)?;
    let mut want = 0.0;
    let mut grad = vec![0.0; 2 * len];
    for r in 0..2 {
        let row = &xv[r * len..(r + 1) * len];
        let m = row.iter().cloned().fold(f64::MIN, f64::max);
        let z: f64 = row.iter().map(|a| (a - m).exp()).sum();
        want += (m + z.ln() - row[labels[r] as usize]) / 2.0;
        for i in 0..len {
            grad[r * len + i] = ((row[i] - m).exp() / z - (i == labels[r] as usize) as u8 as f64) / 2.0;
        }
    }
    assert_close(&[loss.item()?], &[want], 1e-5);
    loss.backward()?;
    assert_close(&x.grad().unwrap().to_vec()?, &grad, 1e-5);
    Ok(())
}

device_test!(cross_entropy_over_many_classes, |dev| {
    check_cross_entropy(dev, LONG)?;
    // Past the most classes the fused kernel takes: log-normalisers by blocked reductions.
    check_cross_entropy(dev, VERY_LONG)?;
});

/// Layer norm with a weight over `rows` rows of `len`, forward and backward, against f64.
fn check_layer_norm(dev: &Device, rows: usize, len: usize) -> kiln::Result<()> {
    let x = tensor(&[rows, len], 7, dev, true).add_scalar(5.0)?.detach().set_requires_grad(true);
    let w = tensor(&[len], 8, dev, true);
    let xv = f64s(&x.to_vec()?);
    let wv = f64s(&w.to_vec()?);
    let y = layer_norm(&x, &[len], Some(&w), None, 1e-5)?;
    let (loss, g) = weighted_sum(&y, 9);
    loss.backward()?;
    let (mut want, mut dx, mut dw) = (vec![0.0; rows * len], vec![0.0; rows * len], vec![0.0; len]);
    for r in 0..rows {
        let row = &xv[r * len..(r + 1) * len];
        let mean = row.iter().sum::<f64>() / len as f64;
        let var = row.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / len as f64;
        let rstd = 1.0 / (var + 1e-5).sqrt();
        let xhat: Vec<f64> = row.iter().map(|a| (a - mean) * rstd).collect();
        // dxhat = g * w; dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)).
        let dxhat: Vec<f64> = (0..len).map(|i| g[r * len + i] * wv[i]).collect();
        let m1 = dxhat.iter().sum::<f64>() / len as f64;
        let m2 = dxhat.iter().zip(&xhat).map(|(a, b)| a * b).sum::<f64>() / len as f64;
        for i in 0..len {
            want[r * len + i] = xhat[i] * wv[i];
            dx[r * len + i] = rstd * (dxhat[i] - m1 - xhat[i] * m2);
            dw[i] += g[r * len + i] * xhat[i];
        }
    }
    assert_close(&y.to_vec()?, &want, 1e-4);
    assert_close(&x.grad().unwrap().to_vec()?, &dx, 1e-4);
    assert_close(&w.grad().unwrap().to_vec()?, &dw, 1e-4);
    Ok(())
}

device_test!(layer_norm_over_long_rows, |dev| {
    check_layer_norm(dev, 2, LONG)?;
    // Past the longest row the layer-norm kernels take: a composition of blocked reductions.
    check_layer_norm(dev, 1, VERY_LONG)?;
});

device_test!(matmul_over_a_long_inner_dim, |dev| {
    // The product's inner dim long; then the weight gradient's (x^T g over LONG rows).
    check_matmul(dev, &[2, LONG], &[LONG, 3], 1e-4);
    check_matmul(dev, &[LONG, 3], &[3, 2], 1e-4);
    // 4-aligned: the vec4 kernels (tiles, and the subgroup kernels of a software adapter), the
    // product (nn) and the weight gradient (tn) over 70004 rows; f32 sums of 70004 terms of
    // up to 1 in size, whose results cancel to a few units, agree with f64 to about 1e-3.
    check_matmul(dev, &[32, LONG + 3], &[LONG + 3, 32], 1e-3);
    check_matmul(dev, &[LONG + 3, 32], &[32, 32], 1e-3);
});

device_test!(sums_and_statistics_of_very_long_tensors, |dev| {
    // Past one workgroup's reach (2^23 values per block of the sum, 7.68M per statistics
    // dispatch): a sum in blocks, statistics merged over dispatches.
    let n = (1 << 24) + 12345;
    let v: Vec<f32> = (0..n).map(|i| ((i % 7) as f32 - 3.0) * 0.5 + if i == n - 2 { 1000.0 } else { 0.0 }).collect();
    let want_sum: f64 = v.iter().map(|&a| a as f64).sum();
    let x = Tensor::from_vec(v, &[n], dev)?;
    assert_close(&[x.sum_all()?.item()?], &[want_sum], 1e-6);
    assert_close(&[x.mean_all()?.item()?], &[want_sum / n as f64], 1e-6);
    let s = &kiln::stats::tensor_stats(std::slice::from_ref(&x))?[0];
    let mean = want_sum / n as f64;
    assert_eq!((s.numel, s.max, s.min), (n, 1000.0, -1.5));
    // A max over more than one block of 2^23 (the largest value in the second block and again
    // in the third: the first occurrence wins), and a min (a max of the negation).
    let mut v = x.to_vec()?;
    v[(1 << 23) + 5] = 1000.0;
    let x = Tensor::from_vec(v, &[n], dev)?;
    assert_eq!(x.max(0usize, false)?.item()?, 1000.0);
    assert_eq!(x.argmax(0usize)?.to_vec()?, [((1 << 23) + 5) as f32]);
    assert_eq!(x.min(0usize, false)?.item()?, -1.5);
    // A NaN in the last block is the maximum (the first NaN, as PyTorch), past a larger block.
    let mut v = x.to_vec()?;
    (v[n - 5], v[n - 3]) = (f32::NAN, f32::NAN);
    let x = Tensor::from_vec(v, &[n], dev)?;
    assert!(x.max(0usize, false)?.item()?.is_nan());
    assert_eq!(x.argmax(0usize)?.to_vec()?, [(n - 5) as f32]);
    // The device counts in f32: exact up to 2^24.
    assert!(s.finite.abs_diff(n) <= 2, "{} finite of {n}", s.finite);
    assert!((s.mean - mean).abs() < 1e-4, "{} vs {mean}", s.mean);
});
