//! Matmul (2-D, batched, broadcast batch), reductions, softmax and layout ops: forward and
//! backward against float64 references on both devices.

use kiln::Tensor;
use kiln_tests::{
    assert_close, check_matmul, data, device_test, f64s, matmul_kernel_cases, mm, tensor, tr, weighted_sum,
};

device_test!(matmul_2d_any_shape, |dev| {
    for (m, k, n) in [(1, 1, 1), (3, 5, 2), (65, 129, 33), (1000, 7, 3), (7, 1000, 5), (4, 4, 4), (33, 64, 65)] {
        check_matmul(dev, &[m, k], &[k, n], 1e-5);
    }
    // Large K accumulates more rounding: 1e-4.
    check_matmul(dev, &[17, 2049], &[2049, 9], 1e-4);
});

// The shapes that reach each matmul kernel (see `matmul_kernel_cases`); the tiled kernels run
// these too, in their own test binary (`matmul_tiles.rs`).
device_test!(matmul_every_kernel, |dev| {
    matmul_kernel_cases(dev);
});

device_test!(matmul_batched_and_broadcast, |dev| {
    check_matmul(dev, &[4, 65, 33], &[4, 33, 17], 1e-5);
    check_matmul(dev, &[3, 40, 32], &[3, 32, 36], 1e-5);
    check_matmul(dev, &[2, 80, 32], &[2, 32, 36], 1e-5);
    check_matmul(dev, &[1, 40, 32], &[3, 32, 36], 1e-5);
    check_matmul(dev, &[1, 5, 3], &[4, 3, 2], 1e-5);
    check_matmul(dev, &[4, 5, 3], &[1, 3, 2], 1e-5);
    check_matmul(dev, &[5, 3], &[4, 3, 2], 1e-5);
    // More batch dims (attention's [B, H, L, D]), broadcast as PyTorch does.
    check_matmul(dev, &[2, 3, 9, 5], &[2, 3, 5, 7], 1e-5);
    check_matmul(dev, &[2, 1, 9, 5], &[3, 5, 7], 1e-5);
    check_matmul(dev, &[9, 5], &[2, 3, 5, 7], 1e-5);
    check_matmul(dev, &[2, 3, 9, 5], &[5, 7], 1e-5);
    check_matmul(dev, &[1, 1, 9, 5], &[2, 3, 5, 7], 1e-5);
    assert!(tensor(&[2, 3, 4, 5], 1, dev, false).matmul(&tensor(&[3, 2, 5, 6], 2, dev, false)).is_err());
    assert!(tensor(&[2, 3, 4, 5], 1, dev, false).matmul(&tensor(&[2, 3, 4, 6], 2, dev, false)).is_err());
    // An empty batch broadcast against a single matrix stays empty (it once read past an empty
    // buffer on the CPU; found by no_panic.rs).
    for (sa, sb) in [(&[1usize, 1][..], &[0usize, 1, 1][..]), (&[0, 4, 1], &[1, 4])] {
        let y = tensor(sa, 33, dev, true).matmul(&tensor(sb, 34, dev, true))?;
        assert_eq!(y.numel(), 0, "{sa:?} @ {sb:?}");
        assert_eq!(y.shape()[0], 0);
        y.sum_all()?.backward()?;
    }
    // [B,M,K]@[K,N] is treated as one product; b's gradient sums over the batch.
    let a = tensor(&[3, 5, 4], 31, dev, true);
    let b = tensor(&[4, 2], 32, dev, true);
    let y = a.matmul(&b)?;
    assert_eq!(y.shape(), &[3, 5, 2]);
    let want = mm(&f64s(&a.to_vec()?), &f64s(&b.to_vec()?), 15, 4, 2);
    assert_close(&y.to_vec()?, &want, 1e-5);
    y.sum_all()?.backward()?;
    let ones = vec![1.0; 30];
    let gb = mm(&tr(&f64s(&a.to_vec()?), 15, 4), &ones, 4, 15, 2);
    assert_close(&b.grad().unwrap().to_vec()?, &gb, 1e-5);
});

fn split(shape: &[usize], d: usize) -> (usize, usize, usize) {
    (shape[..d].iter().product(), shape[d], shape[d + 1..].iter().product())
}

device_test!(sum_mean_max_argmax_along_dims, |dev| {
    // [33, 12] and [3, 5, 8] have inner sizes that are multiples of 4 (the vec4 sum kernel).
    for shape in [&[1usize][..], &[3], &[65, 129], &[1000, 7], &[4, 65, 3], &[33, 12], &[3, 5, 8]] {
        for d in 0..shape.len() {
            let (o, l, i) = split(shape, d);
            for keepdim in [false, true] {
                let x = tensor(shape, 41, dev, true);
                let xv = f64s(&x.to_vec()?);
                let mut out_shape = shape.to_vec();
                if keepdim {
                    out_shape[d] = 1
                } else {
                    out_shape.remove(d);
                }
                // sum
                let s = x.sum(d, keepdim)?;
                assert_eq!(s.shape(), &out_shape[..]);
                let want: Vec<f64> =
                    (0..o * i).map(|r| (0..l).map(|k| xv[(r / i) * l * i + k * i + r % i]).sum()).collect();
                assert_close(&s.to_vec()?, &want, 1e-5);
                let (loss, w) = weighted_sum(&s, 42);
                loss.backward()?;
                let g: Vec<f64> = (0..xv.len()).map(|e| w[(e / (l * i)) * i + e % i]).collect();
                assert_close(&x.grad().unwrap().to_vec()?, &g, 1e-5);
                // mean
                let x = tensor(shape, 41, dev, true);
                let mv = x.mean(d, keepdim)?;
                let wm: Vec<f64> = want.iter().map(|v| v / l as f64).collect();
                assert_close(&mv.to_vec()?, &wm, 1e-5);
                // max and its gradient (to the first maximum)
                let mx = x.max(d, keepdim)?;
                let mut wmax = vec![0.0; o * i];
                let mut arg = vec![0usize; o * i];
                for r in 0..o * i {
                    let (best, bi) = (0..l)
                        .map(|k| (xv[(r / i) * l * i + k * i + r % i], k))
                        .fold((f64::NEG_INFINITY, 0), |acc, (v, k)| if v > acc.0 { (v, k) } else { acc });
                    wmax[r] = best;
                    arg[r] = bi;
                }
                assert_close(&mx.to_vec()?, &wmax, 0.0);
                let (loss, w) = weighted_sum(&mx, 43);
                loss.backward()?;
                let mut g = vec![0.0; xv.len()];
                for r in 0..o * i {
                    g[(r / i) * l * i + arg[r] * i + r % i] = w[r];
                }
                assert_close(&x.grad().unwrap().to_vec()?, &g, 1e-6);
                let am = x.argmax(d)?;
                assert_eq!(am.dtype(), kiln::DType::U32);
                assert_eq!(am.to_vec_u32()?, arg.iter().map(|&a| a as u32).collect::<Vec<_>>());
            }
        }
    }
});

device_test!(max_takes_nan_as_the_largest_value, |dev| {
    // As PyTorch: a NaN is the maximum (the first NaN, for the index), through every kernel
    // (one invocation per output, a workgroup per output for long rows).
    let n = f32::NAN;
    let x = Tensor::from_vec(vec![1.0, n, 5.0, n, 2.0, 3.0], &[2, 3], dev)?;
    let m = x.max(1usize, false)?.to_vec()?;
    assert!(m[0].is_nan() && m[1].is_nan(), "{m:?}");
    assert_eq!(x.argmax(1usize)?.to_vec()?, [1.0, 0.0]);
    assert_eq!(x.argmax(0usize)?.to_vec()?, [1.0, 0.0, 0.0]);
    assert!(x.min(1usize, false)?.to_vec()?.iter().all(|v| v.is_nan()));
    let mut v: Vec<f32> = (0..5000).map(|i| (i % 11) as f32).collect();
    v[4000] = n;
    v[3001] = n;
    v[4500] = 100.0;
    let long = Tensor::from_vec(v, &[1, 5000], dev)?;
    assert!(long.max(1usize, false)?.item()?.is_nan());
    assert_eq!(long.argmax(1usize)?.to_vec()?, [3001.0]);
});

device_test!(reductions_over_a_million_elements, |dev| {
    let n = 1_000_000;
    let xs = data(n, 51);
    let x = Tensor::from_vec(xs.clone(), &[n], dev)?;
    let want: f64 = xs.iter().map(|&v| v as f64).sum();
    let got = x.sum_all()?.item()? as f64;
    assert!((got - want).abs() <= 1e-5 * want.abs().max(1.0) * 10.0, "{got} vs {want}");
    let m = x.mean_all()?.item()? as f64;
    assert!((m - want / n as f64).abs() < 1e-6, "{m}");
    let (mi, mv) = xs.iter().enumerate().fold((0, f32::MIN), |a, (i, &v)| if v > a.1 { (i, v) } else { a });
    assert_eq!(x.max(0usize, false)?.item()?, mv);
    assert_eq!(x.argmax(0usize)?.to_vec_u32()?, vec![mi as u32]);
    // Ties go to the first index.
    let t = Tensor::from_vec(vec![1.0, 3.0, 3.0, 0.0], &[4], dev)?;
    assert_eq!(t.argmax(0usize)?.to_vec_u32()?, vec![1]);
    // A 0-d tensor sums to itself.
    assert_eq!(Tensor::scalar(2.5, dev)?.sum_all()?.item()?, 2.5);
});

device_test!(softmax_and_log_softmax, |dev| {
    for (shape, d) in [(&[1usize, 1][..], 1usize), (&[65, 129], 1), (&[65, 129], 0), (&[4, 7, 3], 1), (&[3], 0)] {
        let (o, l, i) = split(shape, d);
        for log in [false, true] {
            let x = Tensor::from_vec(data(shape.iter().product(), 61).iter().map(|v| v * 30.0).collect(), shape, dev)?
                .set_requires_grad(true);
            let y = if log { x.log_softmax(d)? } else { x.softmax(d)? };
            let xv = f64s(&x.to_vec()?);
            let (loss, w) = weighted_sum(&y, 62);
            loss.backward()?;
            let mut want = vec![0.0; xv.len()];
            let mut g = vec![0.0; xv.len()];
            for r in 0..o * i {
                let at = |k: usize| (r / i) * l * i + k * i + r % i;
                let m = (0..l).map(|k| xv[at(k)]).fold(f64::NEG_INFINITY, f64::max);
                let s: f64 = (0..l).map(|k| (xv[at(k)] - m).exp()).sum();
                let p: Vec<f64> = (0..l).map(|k| (xv[at(k)] - m).exp() / s).collect();
                let wsum: f64 = (0..l).map(|k| w[at(k)]).sum();
                let wp: f64 = (0..l).map(|k| w[at(k)] * p[k]).sum();
                for k in 0..l {
                    if log {
                        want[at(k)] = xv[at(k)] - m - s.ln();
                        g[at(k)] = w[at(k)] - p[k] * wsum;
                    } else {
                        want[at(k)] = p[k];
                        g[at(k)] = p[k] * (w[at(k)] - wp);
                    }
                }
            }
            assert_close(&y.to_vec()?, &want, 1e-5);
            assert_close(&x.grad().unwrap().to_vec()?, &g, 1e-5);
        }
    }
});

device_test!(layout_ops_and_their_gradients, |dev| {
    let x = tensor(&[4, 65, 3], 71, dev, true);
    let xv = f64s(&x.to_vec()?);
    let t = x.transpose(0usize, 2usize)?;
    assert_eq!(t.shape(), &[3, 65, 4]);
    let tv = t.to_vec()?;
    for a in 0..4 {
        for b in 0..65 {
            for c in 0..3 {
                assert_eq!(tv[(c * 65 + b) * 4 + a] as f64, xv[(a * 65 + b) * 3 + c]);
            }
        }
    }
    let (loss, w) = weighted_sum(&t, 72);
    loss.backward()?;
    let mut g = vec![0.0; xv.len()];
    for a in 0..4 {
        for b in 0..65 {
            for c in 0..3 {
                g[(a * 65 + b) * 3 + c] = w[(c * 65 + b) * 4 + a];
            }
        }
    }
    assert_close(&x.grad().unwrap().to_vec()?, &g, 0.0);
    // Negative dims, t(), reshape, unsqueeze/squeeze, broadcast_to.
    let m = tensor(&[65, 129], 73, dev, true);
    assert_eq!(m.transpose(-1, -2)?.to_vec()?, m.t()?.to_vec()?);
    let r = m.reshape(&[129, 65])?.unsqueeze(0usize)?;
    assert_eq!(r.shape(), &[1, 129, 65]);
    assert_eq!(r.squeeze(0usize)?.to_vec()?, m.to_vec()?);
    let b = tensor(&[3, 1], 74, dev, true);
    let bb = b.broadcast_to(&[2, 3, 5])?;
    let bv = b.to_vec()?;
    assert_eq!(bb.to_vec()?, (0..30).map(|e| bv[(e / 5) % 3]).collect::<Vec<_>>());
    bb.sum_all()?.backward()?;
    assert_eq!(b.grad().unwrap().to_vec()?, vec![10.0; 3]);
    assert!(b.broadcast_to(&[3, 2, 4]).is_err());
});

device_test!(concat_and_slice_flat, |dev| {
    let a = tensor(&[3, 5], 1, dev, false);
    let b = tensor(&[7], 2, dev, false);
    let c = tensor(&[2, 2, 2], 3, dev, false);
    let flat = Tensor::concat_flat(&[a.clone(), b.clone(), c.clone()], dev)?;
    assert_eq!(flat.shape(), &[30]);
    let want: Vec<f32> = [a.to_vec()?, b.to_vec()?, c.to_vec()?].concat();
    assert_eq!(flat.to_vec()?, want);
    assert_eq!(flat.slice_flat(15, &[7])?.to_vec()?, b.to_vec()?);
    assert_eq!(flat.slice_flat(22, &[2, 2, 2])?.to_vec()?, c.to_vec()?);
    assert_eq!(flat.slice_flat(0, &[3, 5])?.to_vec()?, a.to_vec()?);
    assert!(flat.slice_flat(25, &[6]).is_err());
});
