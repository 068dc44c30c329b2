//! Convolution and pooling, forward and every gradient, against float64 references computed here
//! by direct loops, on both devices: strides, padding, dilation, groups (depthwise included),
//! rectangular kernels, shapes that are not multiples of any tile; conv1d; max, average and
//! adaptive average pooling; flatten_dims; bad input.

use kiln::nn::functional::{Conv1dOptions, Conv2dOptions, adaptive_avg_pool2d, avg_pool2d, conv1d, conv2d, max_pool2d};
use kiln::prelude::*;
use kiln_tests::{assert_close, device_test, f64s, tensor, weighted_sum};

/// y = conv2d(x, w) + b in f64, and for L = sum(g * y) the gradients dx, dw, db.
#[allow(clippy::type_complexity)]
fn conv_ref(
    x: &[f64],
    xs: [usize; 4],
    w: &[f64],
    ws: [usize; 4],
    b: &[f64],
    o: &Conv2dOptions,
    g: &[f64],
) -> ([usize; 4], Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let [n, c, h, wd] = xs;
    let [oc, cg, kh, kw] = ws;
    let groups = o.groups;
    let (sh, sw) = o.stride;
    let (ph, pw) = o.padding;
    let (dh, dw) = o.dilation;
    let oh = (h + 2 * ph - dh * (kh - 1) - 1) / sh + 1;
    let ow = (wd + 2 * pw - dw * (kw - 1) - 1) / sw + 1;
    let og = oc / groups;
    let mut y = vec![0.0; n * oc * oh * ow];
    let (mut dx, mut dwt, mut db) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; oc]);
    for ni in 0..n {
        for o_ in 0..oc {
            let grp = o_ / og;
            for oy in 0..oh {
                for ox in 0..ow {
                    let yi = ((ni * oc + o_) * oh + oy) * ow + ox;
                    let mut acc = b[o_];
                    db[o_] += g[yi];
                    for ci in 0..cg {
                        let cin = grp * cg + ci;
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * sh + ky * dh) as isize - ph as isize;
                                let ix = (ox * sw + kx * dw) as isize - pw as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                    continue;
                                }
                                let xi = ((ni * c + cin) * h + iy as usize) * wd + ix as usize;
                                let wi = ((o_ * cg + ci) * kh + ky) * kw + kx;
                                acc += x[xi] * w[wi];
                                dx[xi] += g[yi] * w[wi];
                                dwt[wi] += g[yi] * x[xi];
                            }
                        }
                    }
                    y[yi] = acc;
                }
            }
        }
    }
    ([n, oc, oh, ow], y, dx, dwt, db)
}

fn check_conv(dev: &Device, xs: [usize; 4], ws: [usize; 4], bias: bool, o: Conv2dOptions) -> kiln::Result<()> {
    let x = tensor(&xs, 1, dev, true);
    let w = tensor(&ws, 2, dev, true);
    let b = tensor(&[ws[0]], 3, dev, true);
    let y = conv2d(&x, &w, bias.then_some(&b), &o)?;
    let (loss, g) = weighted_sum(&y, 4);
    loss.backward()?;
    let b64 = if bias { f64s(&b.to_vec()?) } else { vec![0.0; ws[0]] };
    let (shape, want, dx, dw, db) = conv_ref(&f64s(&x.to_vec()?), xs, &f64s(&w.to_vec()?), ws, &b64, &o, &g);
    assert_eq!(y.shape(), &shape[..], "{xs:?} {ws:?} {o:?}");
    assert_close(&y.to_vec()?, &want, 1e-4);
    assert_close(&x.grad().unwrap().to_vec()?, &dx, 1e-4);
    assert_close(&w.grad().unwrap().to_vec()?, &dw, 1e-4);
    match bias {
        true => assert_close(&b.grad().unwrap().to_vec()?, &db, 1e-4),
        false => assert!(b.grad().is_none()),
    }
    Ok(())
}

device_test!(conv2d_matches_f64, |dev| {
    let o = |stride, padding, dilation, groups| Conv2dOptions { stride, padding, dilation, groups };
    // Plain 3x3 with padding; strides, rectangular kernels, dilation; groups; depthwise.
    check_conv(dev, [3, 3, 10, 9], [5, 3, 3, 3], true, o((1, 1), (1, 1), (1, 1), 1))?;
    check_conv(dev, [2, 6, 9, 11], [8, 3, 3, 2], true, o((2, 1), (1, 2), (2, 1), 2))?;
    check_conv(dev, [1, 4, 7, 5], [4, 1, 3, 3], false, o((1, 2), (1, 1), (1, 1), 4))?;
    check_conv(dev, [2, 5, 6, 6], [7, 5, 1, 1], true, Conv2dOptions::default())?;
    // Large enough for the subgroup matmul kernels (33 output channels, 2 * 15 * 15 columns).
    check_conv(dev, [2, 4, 17, 17], [33, 4, 3, 3], true, o((1, 1), (0, 0), (1, 1), 1))?;
});

device_test!(conv1d_matches_the_2d_reference, |dev| {
    let (xs, ws) = ([2usize, 4, 13], [6usize, 2, 3]);
    let o = Conv1dOptions { stride: 2, padding: 1, dilation: 2, groups: 2 };
    let x = tensor(&xs, 5, dev, true);
    let w = tensor(&ws, 6, dev, true);
    let b = tensor(&[6], 7, dev, true);
    let y = conv1d(&x, &w, Some(&b), &o)?;
    let (loss, g) = weighted_sum(&y, 8);
    loss.backward()?;
    let o2 = Conv2dOptions { stride: (1, 2), padding: (0, 1), dilation: (1, 2), groups: 2 };
    let (shape, want, dx, dw, db) =
        conv_ref(&f64s(&x.to_vec()?), [2, 4, 1, 13], &f64s(&w.to_vec()?), [6, 2, 1, 3], &f64s(&b.to_vec()?), &o2, &g);
    assert_eq!(y.shape(), &[shape[0], shape[1], shape[3]]);
    assert_close(&y.to_vec()?, &want, 1e-4);
    assert_close(&x.grad().unwrap().to_vec()?, &dx, 1e-4);
    assert_close(&w.grad().unwrap().to_vec()?, &dw, 1e-4);
    assert_close(&b.grad().unwrap().to_vec()?, &db, 1e-4);
});

/// Pooling in f64: for each output, the window's values (None outside the input).
fn windows(xs: [usize; 4], k: (usize, usize), s: (usize, usize), p: (usize, usize)) -> Vec<Vec<Option<usize>>> {
    let [n, c, h, w] = xs;
    let oh = (h + 2 * p.0 - k.0) / s.0 + 1;
    let ow = (w + 2 * p.1 - k.1) / s.1 + 1;
    let mut out = Vec::new();
    for nc in 0..n * c {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut win = Vec::new();
                for ky in 0..k.0 {
                    for kx in 0..k.1 {
                        let (iy, ix) =
                            ((oy * s.0 + ky) as isize - p.0 as isize, (ox * s.1 + kx) as isize - p.1 as isize);
                        let inside = iy >= 0 && ix >= 0 && iy < h as isize && ix < w as isize;
                        win.push(inside.then(|| (nc * h + iy as usize) * w + ix as usize));
                    }
                }
                out.push(win);
            }
        }
    }
    out
}

device_test!(pooling_matches_f64, |dev| {
    for (xs, k, s, p) in [
        ([2usize, 3, 9, 7], (2usize, 2usize), (2usize, 2usize), (0usize, 0usize)),
        ([1, 2, 8, 9], (3, 3), (2, 2), (1, 1)),
        ([2, 1, 5, 6], (3, 2), (1, 2), (1, 0)),
    ] {
        let wins = windows(xs, k, s, p);
        // Max: the value of the window's maximum; the gradient to its first occurrence.
        let x = tensor(&xs, 9, dev, true);
        let xv = f64s(&x.to_vec()?);
        let y = max_pool2d(&x, k, s, p)?;
        let (loss, g) = weighted_sum(&y, 10);
        loss.backward()?;
        let mut want = Vec::new();
        let mut dx = vec![0.0; xv.len()];
        for (win, gi) in wins.iter().zip(&g) {
            let best = win.iter().flatten().copied().reduce(|a, b| if xv[b] > xv[a] { b } else { a }).unwrap();
            want.push(xv[best]);
            dx[best] += gi;
        }
        assert_close(&y.to_vec()?, &want, 1e-6);
        assert_close(&x.grad().unwrap().to_vec()?, &dx, 1e-6);
        // Average, padding counted (count_include_pad).
        let x = tensor(&xs, 11, dev, true);
        let y = avg_pool2d(&x, k, s, p)?;
        let (loss, g) = weighted_sum(&y, 12);
        loss.backward()?;
        let size = (k.0 * k.1) as f64;
        let want: Vec<f64> =
            wins.iter().map(|win| win.iter().flatten().map(|&i| xv_of(&x, i)).sum::<f64>() / size).collect();
        let mut dx = vec![0.0; x.numel()];
        for (win, gi) in wins.iter().zip(&g) {
            for &i in win.iter().flatten() {
                dx[i] += gi / size;
            }
        }
        assert_close(&y.to_vec()?, &want, 1e-5);
        assert_close(&x.grad().unwrap().to_vec()?, &dx, 1e-5);
    }
});

device_test!(max_pool_propagates_nan_and_breaks_ties_first, |dev| {
    let x = Tensor::from_vec(vec![1.0, f32::NAN, 3.0, 3.0, 0.0, 2.0, 3.0, -1.0], &[1, 1, 2, 4], dev)?
        .set_requires_grad(true);
    let y = max_pool2d(&x, (2, 2), (2, 2), (0, 0))?;
    let v = y.to_vec()?;
    assert!(v[0].is_nan() && v[1] == 3.0, "{v:?}");
    y.sum_all()?.backward()?;
    // The first NaN and the first of the tied 3s (row-major in the window) take the gradient.
    assert_eq!(x.grad().unwrap().to_vec()?, vec![0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
});

fn xv_of(x: &Tensor, i: usize) -> f64 {
    x.to_vec().unwrap()[i] as f64
}

device_test!(adaptive_avg_pool_matches_f64, |dev| {
    for (xs, out) in [([2usize, 3, 7, 5], (3usize, 2usize)), ([1, 2, 4, 6], (1, 1)), ([1, 1, 5, 5], (5, 7))] {
        let [n, c, h, w] = xs;
        let x = tensor(&xs, 13, dev, true);
        let xv = f64s(&x.to_vec()?);
        let y = adaptive_avg_pool2d(&x, out)?;
        assert_eq!(y.shape(), &[n, c, out.0, out.1]);
        let (loss, g) = weighted_sum(&y, 14);
        loss.backward()?;
        let range = |i: usize, size: usize, o: usize| (i * size / o)..((i + 1) * size).div_ceil(o);
        let (mut want, mut dx) = (Vec::new(), vec![0.0; xv.len()]);
        for nc in 0..n * c {
            for oy in 0..out.0 {
                for ox in 0..out.1 {
                    let cells: Vec<usize> = range(oy, h, out.0)
                        .flat_map(|iy| range(ox, w, out.1).map(move |ix| (nc * h + iy) * w + ix))
                        .collect();
                    want.push(cells.iter().map(|&i| xv[i]).sum::<f64>() / cells.len() as f64);
                    let gi = g[want.len() - 1];
                    for &i in &cells {
                        dx[i] += gi / cells.len() as f64;
                    }
                }
            }
        }
        assert_close(&y.to_vec()?, &want, 1e-5);
        assert_close(&x.grad().unwrap().to_vec()?, &dx, 1e-5);
    }
});

device_test!(flatten_dims_and_bad_input, |dev| {
    let t = Tensor::zeros(&[2, 3, 4, 5], dev)?;
    assert_eq!(t.flatten_dims(1, -1)?.shape(), &[2, 60]);
    assert_eq!(t.flatten_dims(1, 2)?.shape(), &[2, 12, 5]);
    assert_eq!(t.flatten_dims(0, 0)?.shape(), &[2, 3, 4, 5]);
    assert!(t.flatten_dims(2, 1).is_err() && t.flatten_dims(0, 4).is_err());
    let x = Tensor::zeros(&[1, 4, 5, 5], dev)?;
    let err = |r: kiln::Result<Tensor>| r.unwrap_err().to_string();
    let w = |s: &[usize]| Tensor::zeros(s, dev).unwrap();
    // Groups that do not divide the channels, a weight of the wrong in_channels.
    let e = err(conv2d(&x, &w(&[6, 2, 3, 3]), None, &Conv2dOptions { groups: 3, ..Default::default() }));
    assert!(e.starts_with("conv2d:") && e.contains("[1, 4, 5, 5]") && e.contains("3 groups"), "{e}");
    assert!(err(conv2d(&x, &w(&[6, 3, 3, 3]), None, &Conv2dOptions::default())).contains("in_channels"));
    // A kernel larger than the padded input; stride 0; a wrong rank; a wrong bias.
    let e = err(conv2d(&x, &w(&[2, 4, 7, 3]), None, &Conv2dOptions::default()));
    assert!(e.contains("larger than the padded input"), "{e}");
    assert!(
        err(conv2d(&x, &w(&[2, 4, 3, 3]), None, &Conv2dOptions { stride: (0, 1), ..Default::default() }))
            .contains("stride")
    );
    assert!(err(conv2d(&w(&[4, 5, 5]), &w(&[2, 4, 3, 3]), None, &Conv2dOptions::default())).contains("[N, C, H, W]"));
    assert!(conv2d(&x, &w(&[2, 4, 3, 3]), Some(&w(&[3])), &Conv2dOptions::default()).is_err());
    assert!(err(conv1d(&x, &w(&[2, 4, 3]), None, &Conv1dOptions::default())).contains("[N, C, L]"));
    // Pooling: padding over half the kernel, a zero kernel.
    assert!(err(max_pool2d(&x, (2, 2), (2, 2), (2, 0))).contains("at most half the kernel"));
    assert!(err(avg_pool2d(&x, (0, 2), (1, 1), (0, 0))).contains("kernel"));
    assert!(adaptive_avg_pool2d(&x, (0, 3)).is_err());
    // An empty batch gives an empty result.
    let y = conv2d(&Tensor::zeros(&[0, 4, 5, 5], dev)?, &w(&[2, 4, 3, 3]), None, &Conv2dOptions::default())?;
    assert_eq!(y.shape(), &[0, 2, 3, 3]);
    // Tensors on two devices.
    if dev.is_gpu() {
        let e = err(conv2d(&x, &Tensor::zeros(&[2, 4, 3, 3], &Device::cpu())?, None, &Conv2dOptions::default()));
        assert!(e.contains("different devices"), "{e}");
    }
});

device_test!(conv_and_pool_layers, |dev| {
    use kiln::nn::{
        AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv1d, Conv2d, Flatten, Forward, GroupNorm, Linear, MaxPool2d,
        ReLU, Sequential,
    };
    // PyTorch's names, layouts and default init bounds (1 / sqrt(fan_in)).
    let conv = Conv2d::with_options(
        6,
        8,
        (3, 2),
        Conv2dOptions { groups: 2, padding: (1, 0), ..Default::default() },
        true,
        dev,
    )?;
    let names: Vec<(String, Vec<usize>)> = conv.named_parameters().into_iter().map(|(n, p)| (n, p.shape())).collect();
    assert_eq!(names, [("weight".to_string(), vec![8, 3, 3, 2]), ("bias".to_string(), vec![8])]);
    let bound = 1.0 / (3.0f32 * 3.0 * 2.0).sqrt();
    for p in conv.parameters() {
        assert!(p.tensor().to_vec()?.iter().all(|v| v.abs() <= bound), "init within 1/sqrt(fan_in)");
    }
    let x = tensor(&[2, 6, 7, 5], 21, dev, false);
    let want = conv2d(&x, &conv.weight.tensor(), conv.bias.as_ref().map(|b| b.tensor()).as_ref(), &conv.options)?;
    assert_eq!(conv.forward(&x)?.to_vec()?, want.to_vec()?);
    assert!(Conv2d::with_options(6, 8, (3, 3), Conv2dOptions { groups: 4, ..Default::default() }, true, dev).is_err());
    let c1 = Conv1d::new(4, 5, 3, dev)?;
    assert_eq!(c1.weight.shape(), vec![5, 4, 3]);
    assert_eq!(c1.forward(&tensor(&[2, 4, 9], 22, dev, false))?.shape(), &[2, 5, 7]);
    // A layer's error names the layer.
    let e = conv.forward(&tensor(&[2, 5, 7, 5], 23, dev, false)).unwrap_err().to_string();
    assert!(
        e.starts_with("Conv2d(6, 8, kernel_size=(3, 2), stride=(1, 1), padding=(1, 0), dilation=(1, 1), groups=2): "),
        "{e}"
    );
    // A small CNN: every parameter gets a gradient; names as PyTorch's nn.Sequential.
    let net = Sequential::new()
        .push(Conv2d::with_options(1, 4, (3, 3), Conv2dOptions { padding: (1, 1), ..Default::default() }, true, dev)?)
        .push(BatchNorm2d::new(4, dev)?)
        .push(ReLU)
        .push(MaxPool2d::new((2, 2), (2, 2)))
        .push(GroupNorm::new(2, 4, dev)?)
        .push(AvgPool2d::new((2, 2), (1, 1)).with_padding((1, 1)))
        .push(AdaptiveAvgPool2d::new((2, 2)))
        .push(Flatten::new())
        .push(Linear::new(16, 3, dev)?);
    let keys = net.state_dict().keys();
    assert_eq!(
        keys,
        [
            "0.weight",
            "0.bias",
            "1.weight",
            "1.bias",
            "1.running_mean",
            "1.running_var",
            "1.num_batches_tracked",
            "4.weight",
            "4.bias",
            "8.weight",
            "8.bias"
        ]
    );
    let y = net.forward(&tensor(&[3, 1, 8, 8], 24, dev, false))?;
    assert_eq!(y.shape(), &[3, 3]);
    y.powf(2.0)?.sum_all()?.backward()?;
    for (n, p) in net.named_parameters() {
        let g = p.grad().unwrap_or_else(|| panic!("{n} has no gradient"));
        assert!(g.to_vec()?.iter().all(|v| v.is_finite()), "{n}");
    }
    assert_eq!(net.get_submodule_as::<BatchNorm2d>("1").unwrap().num_batches_tracked.tensor().to_vec_i64()?, [1]);
});

/// BatchNorm2d in training on x = data + `offset` [n, c, h, w] against f64: per channel over
/// N*H*W (biased variance), running stats updated with the unbiased one, and the backward.
fn check_batchnorm(dev: &Device, [n, c, h, w]: [usize; 4], offset: f32, tol: f64) -> kiln::Result<()> {
    use kiln::nn::{BatchNorm2d, Forward};
    let x = tensor(&[n, c, h, w], 31, dev, false).add_scalar(offset)?;
    let xv = f64s(&x.to_vec()?);
    let idx = |ni: usize, ci: usize, i: usize| (ni * c + ci) * h * w + i;
    let bn = BatchNorm2d::new(c, dev)?;
    let y = bn.forward(&x)?.to_vec()?;
    let mut want = vec![0.0; xv.len()];
    let mut run_var = Vec::new();
    for ci in 0..c {
        let vals: Vec<f64> =
            (0..n).flat_map(|ni| (0..h * w).map(move |i| (ni, i))).map(|(ni, i)| xv[idx(ni, ci, i)]).collect();
        let m = vals.iter().sum::<f64>() / vals.len() as f64;
        let v = vals.iter().map(|a| (a - m).powi(2)).sum::<f64>() / vals.len() as f64;
        run_var.push(0.9 + 0.1 * v * vals.len() as f64 / (vals.len() - 1) as f64);
        for ni in 0..n {
            for i in 0..h * w {
                want[idx(ni, ci, i)] = (xv[idx(ni, ci, i)] - m) / (v + 1e-5).sqrt();
            }
        }
    }
    assert_close(&y, &want, tol);
    assert_close(&bn.running_var.tensor().to_vec()?, &run_var, 1e-5);
    // Its backward (one node, closed form) against the derivative in f64, with a non-trivial
    // weight and bias: for L = sum(G * y), db = sum G, dw = sum G * xhat and
    // dx = w / sqrt(var + eps) * (G - mean(G) - xhat * mean(G * xhat)) per channel.
    let bn = BatchNorm2d::new(c, dev)?;
    bn.weight.set(tensor(&[c], 32, dev, false))?;
    bn.bias.set(tensor(&[c], 33, dev, false))?;
    let xg = x.detach().set_requires_grad(true);
    let (loss, gw) = weighted_sum(&bn.forward(&xg)?, 34);
    loss.backward()?;
    let w64 = f64s(&bn.weight.tensor().to_vec()?);
    let (mut dx, mut dw, mut db) = (vec![0.0; xv.len()], vec![0.0; c], vec![0.0; c]);
    for ci in 0..c {
        let cells: Vec<usize> = (0..n).flat_map(|ni| (0..h * w).map(move |i| idx(ni, ci, i))).collect();
        let mm = cells.len() as f64;
        let mean = cells.iter().map(|&i| xv[i]).sum::<f64>() / mm;
        let var = cells.iter().map(|&i| (xv[i] - mean).powi(2)).sum::<f64>() / mm;
        let rstd = 1.0 / (var + 1e-5).sqrt();
        let xhat = |i: usize| (xv[i] - mean) * rstd;
        db[ci] = cells.iter().map(|&i| gw[i]).sum();
        dw[ci] = cells.iter().map(|&i| gw[i] * xhat(i)).sum();
        for &i in &cells {
            dx[i] = w64[ci] * rstd * (gw[i] - db[ci] / mm - xhat(i) * dw[ci] / mm);
        }
    }
    assert_close(&xg.grad().unwrap().to_vec()?, &dx, tol);
    assert_close(&bn.weight.grad().unwrap().to_vec()?, &dw, tol);
    assert_close(&bn.bias.grad().unwrap().to_vec()?, &db, tol);
    Ok(())
}

device_test!(batchnorm2d_and_groupnorm_match_f64, |dev| {
    use kiln::nn::{BatchNorm2d, Forward, GroupNorm};
    // Short channels (15 values per sample, lanes grouped along N); long ones (323, more than a
    // workgroup), their mean 100 times their spread (the statistics shifted, not cancelled).
    check_batchnorm(dev, [3, 4, 5, 3], 0.0, 1e-4)?;
    check_batchnorm(dev, [2, 3, 17, 19], 100.0, 1e-4)?;
    // Channels longer than one launch walks within llvmpipe's loop limit (30011 samples of
    // 255: each invocation would walk 60022 steps): summed in blocks, then over the blocks.
    check_batchnorm(dev, [30011, 2, 1, 255], 100.0, 1e-3)?;
    let (n, c, h, w) = (3, 4, 5, 3);
    let x = tensor(&[n, c, h, w], 31, dev, false);
    let xv = f64s(&x.to_vec()?);
    let idx = |ni: usize, ci: usize, i: usize| (ni * c + ci) * h * w + i;
    let mut want = vec![0.0; xv.len()];
    // GroupNorm: per sample over each group of channels.
    let gn = GroupNorm::new(2, c, dev)?;
    let y = gn.forward(&x)?.to_vec()?;
    for ni in 0..n {
        for grp in 0..2 {
            let cells: Vec<usize> =
                (grp * 2..grp * 2 + 2).flat_map(|ci| (0..h * w).map(move |i| idx(ni, ci, i))).collect();
            let m = cells.iter().map(|&i| xv[i]).sum::<f64>() / cells.len() as f64;
            let v = cells.iter().map(|&i| (xv[i] - m).powi(2)).sum::<f64>() / cells.len() as f64;
            for &i in &cells {
                want[i] = (xv[i] - m) / (v + 1e-5).sqrt();
            }
        }
    }
    assert_close(&y, &want, 1e-4);
    assert!(GroupNorm::new(3, 4, dev).is_err());
    let e = BatchNorm2d::new(4, dev)?.forward(&tensor(&[2, 3, 4, 4], 1, dev, false)).unwrap_err().to_string();
    assert!(e.starts_with("BatchNorm2d(4): the input has shape [2, 3, 4, 4]"), "{e}");
});

device_test!(conv_state_dicts_check_shapes, |dev| {
    use kiln::nn::Conv2d;
    let a = Conv2d::new(3, 8, (3, 3), dev)?;
    let b = Conv2d::new(3, 8, (5, 5), dev)?;
    let before = a.weight.tensor().to_vec()?;
    // A weight of another kernel size is refused, naming the key, and nothing changes.
    let e = a.load_state_dict(&b.state_dict(), true).unwrap_err().to_string();
    assert!(e.contains("\"weight\"") && e.contains("[8, 3, 5, 5]") && e.contains("[8, 3, 3, 3]"), "{e}");
    assert_eq!(a.weight.tensor().to_vec()?, before);
    // The same architecture loads, values and all.
    let c = Conv2d::new(3, 8, (3, 3), dev)?;
    c.load_state_dict(&a.state_dict(), true)?;
    assert_eq!(c.weight.tensor().to_vec()?, before);
});
