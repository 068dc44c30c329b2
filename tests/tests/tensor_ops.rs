//! The tensor ops transformers need, forward and backward on both devices against index math
//! done here: cat, stack, narrow, chunk, split, permute (shapes that are not multiples of any
//! workgroup), and their bad input.

use kiln::{Device, Tensor};
use kiln_tests::{assert_close, device_test, f64s, tensor, weighted_sum};

/// Row-major coordinates of flat index `i` in `shape`.
fn coords(shape: &[usize], mut i: usize) -> Vec<usize> {
    let mut c = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        c[d] = i % shape[d];
        i /= shape[d];
    }
    c
}

fn flat(shape: &[usize], c: &[usize]) -> usize {
    c.iter().zip(shape).fold(0, |acc, (&x, &s)| acc * s + x)
}

/// Checks a rearrangement y of `xs` (each requiring grad): element i of y must be element
/// `src(i)` = (input k, flat index) of the inputs, and for L = sum(y * w) each input's gradient
/// is the sum of the w's of the elements taken from it.
fn check_rearrange(y: &Tensor, xs: &[&Tensor], src: impl Fn(&[usize]) -> (usize, usize)) -> kiln::Result<()> {
    let vals: Vec<Vec<f64>> = xs.iter().map(|x| f64s(&x.to_vec().unwrap())).collect();
    let (loss, w) = weighted_sum(y, 77);
    loss.backward()?;
    let mut want = Vec::with_capacity(y.numel());
    let mut grads: Vec<Vec<f64>> = vals.iter().map(|v| vec![0.0; v.len()]).collect();
    for (i, wi) in w.iter().enumerate() {
        let (k, j) = src(&coords(y.shape(), i));
        want.push(vals[k][j]);
        grads[k][j] += wi;
    }
    assert_close(&y.to_vec()?, &want, 0.0);
    for (x, g) in xs.iter().zip(&grads) {
        assert_close(&x.grad().unwrap().to_vec()?, g, 1e-6);
    }
    Ok(())
}

device_test!(cat_and_stack_match_index_math, |dev| {
    // Along each dim, with unequal lengths (the middle one long enough for several workgroups).
    for d in 0..3 {
        let shapes: Vec<Vec<usize>> = [2usize, 1, 300]
            .iter()
            .map(|&len| {
                let mut s = vec![3, 5, 7];
                s[d] = len;
                s
            })
            .collect();
        let xs: Vec<Tensor> = shapes.iter().enumerate().map(|(k, s)| tensor(s, 10 + k as u64, dev, true)).collect();
        let refs: Vec<&Tensor> = xs.iter().collect();
        let y = Tensor::cat(&refs, d as i64 - 3)?; // negative dims count from the end
        let mut want_shape = [3, 5, 7];
        want_shape[d] = 303;
        assert_eq!(y.shape(), &want_shape[..]);
        check_rearrange(&y, &refs, |c| {
            let (mut k, mut at) = (0, c[d]);
            while at >= shapes[k][d] {
                at -= shapes[k][d];
                k += 1;
            }
            let mut cc = c.to_vec();
            cc[d] = at;
            (k, flat(&shapes[k], &cc))
        })?;
    }
    // stack: a new dim, first and last.
    let a = tensor(&[4, 65], 1, dev, true);
    let b = tensor(&[4, 65], 2, dev, true);
    let y = Tensor::stack(&[&a, &b], 0usize)?;
    assert_eq!(y.shape(), &[2, 4, 65]);
    check_rearrange(&y, &[&a, &b], |c| (c[0], c[1] * 65 + c[2]))?;
    let (a, b) = (a.detach().set_requires_grad(true), b.detach().set_requires_grad(true));
    let y = Tensor::stack(&[&a, &b], -1i64)?;
    assert_eq!(y.shape(), &[4, 65, 2]);
    check_rearrange(&y, &[&a, &b], |c| (c[2], c[0] * 65 + c[1]))?;
    // U32 index tensors join too (no gradient).
    let i = Tensor::from_labels(&[1, 2, 3], dev)?;
    let j = Tensor::from_labels(&[7], dev)?;
    assert_eq!(Tensor::cat(&[&i, &j], 0usize)?.to_vec_u32()?, vec![1, 2, 3, 7]);
});

device_test!(narrow_chunk_split_match_index_math, |dev| {
    let shape = [4usize, 300, 3];
    for (d, start, len) in [(1usize, 17usize, 261usize), (0, 1, 2), (2, 2, 1), (1, 0, 300)] {
        let x = tensor(&shape, 5, dev, true);
        let y = x.narrow(d, start, len)?;
        let mut ys = shape.to_vec();
        ys[d] = len;
        assert_eq!(y.shape(), &ys[..]);
        check_rearrange(&y, &[&x], |c| {
            let mut cc = c.to_vec();
            cc[d] += start;
            (0, flat(&shape, &cc))
        })?;
    }
    // chunk and split take PyTorch's sizes; together the pieces give back the tensor.
    let x = tensor(&[10, 3], 6, dev, false);
    let sizes = |v: Vec<Tensor>| v.iter().map(|t| t.shape()[0]).collect::<Vec<_>>();
    assert_eq!(sizes(x.chunk(3, 0usize)?), vec![4, 4, 2]);
    assert_eq!(sizes(x.chunk(4, 0usize)?), vec![3, 3, 3, 1]);
    assert_eq!(sizes(x.chunk(20, 0usize)?), vec![1; 10]);
    assert_eq!(sizes(x.split(4, 0usize)?), vec![4, 4, 2]);
    let parts = x.split(3, 0usize)?;
    let back = Tensor::cat(&parts.iter().collect::<Vec<_>>(), 0usize)?;
    assert_eq!(back.to_vec()?, x.to_vec()?);
    let cols = x.chunk(3, 1usize)?;
    assert_eq!(cols.len(), 3);
    assert_eq!(cols[2].to_vec()?, x.narrow(1usize, 2, 1)?.to_vec()?);
    // The gradient of a chunked use reaches every piece's slice (q, k, v of a fused projection).
    let qkv = tensor(&[2, 5, 12], 7, dev, true);
    let p = qkv.chunk(3, -1i64)?;
    let y = Tensor::cat(&[&p[2], &p[0]], -1i64)?;
    check_rearrange(&y, &[&qkv], |c| {
        let col = if c[2] < 4 { c[2] + 8 } else { c[2] - 4 };
        (0, (c[0] * 5 + c[1]) * 12 + col)
    })?;
});

device_test!(permute_matches_index_math, |dev| {
    // Four dims (the general gather), and three (the per-row gather) with a long last dim.
    for (shape, perm) in [
        (vec![2usize, 3, 4, 5], vec![2usize, 0, 3, 1]),
        (vec![3, 70, 260], vec![1, 0, 2]),
        (vec![3, 70, 26], vec![2, 0, 1]),
        (vec![5, 1, 3], vec![1, 2, 0]),
    ] {
        let x = tensor(&shape, 8, dev, true);
        let y = x.permute(&perm)?;
        let ys: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
        assert_eq!(y.shape(), &ys[..]);
        check_rearrange(&y, &[&x], |c| {
            let mut xc = vec![0; shape.len()];
            for (i, &p) in perm.iter().enumerate() {
                xc[p] = c[i];
            }
            (0, flat(&shape, &xc))
        })?;
    }
});

device_test!(join_ops_refuse_bad_input, |dev| {
    let a = Tensor::zeros(&[2, 3], dev)?;
    let err = |r: kiln::Result<Tensor>| r.unwrap_err().to_string();
    let e = err(Tensor::cat(&[&a, &Tensor::zeros(&[2, 3, 1], dev)?], 0usize));
    assert!(e.starts_with("cat:") && e.contains("[2, 3, 1]"), "{e}");
    let e = err(Tensor::cat(&[&a, &Tensor::zeros(&[2, 4], dev)?], 0usize));
    assert!(e.contains("[2, 4]"), "{e}");
    assert!(Tensor::cat(&[&a, &Tensor::zeros(&[2, 4], dev)?], 1usize)?.shape() == [2, 7]);
    assert!(err(Tensor::cat(&[], 0usize)).contains("at least one"));
    assert!(err(Tensor::cat(&[&a], 2usize)).contains("cat"));
    assert!(err(Tensor::cat(&[&a, &Tensor::from_labels(&[1, 2], dev)?], 0usize)).contains("cat"));
    let e = err(Tensor::stack(&[&a, &Tensor::zeros(&[3, 2], dev)?], 0usize));
    assert!(e.contains("stack") && e.contains("[3, 2]"), "{e}");
    let e = err(a.narrow(1usize, 2, 2));
    assert!(e.starts_with("narrow:") && e.contains("past the end") && e.contains("[2, 3]"), "{e}");
    assert!(a.narrow(1usize, usize::MAX, 2).is_err());
    assert!(err(a.permute(&[0, 0])).contains("not a permutation"));
    assert!(a.permute(&[1]).is_err() && a.permute(&[0, 2]).is_err());
    assert!(a.chunk(0, 0usize).is_err() && a.split(0, 0usize).is_err());
    if dev.is_gpu() {
        let e = err(Tensor::cat(&[&a, &Tensor::zeros(&[2, 3], &Device::cpu())?], 0usize));
        assert!(e.contains("different devices"), "{e}");
    }
});

device_test!(index_select_and_gather_match_index_math, |dev| {
    let shape = [4usize, 300, 3];
    let ids = [5u32, 0, 299, 5, 17];
    for d in [1usize, 0, 2] {
        let x = tensor(&shape, 21, dev, true);
        let ids: Vec<u32> = ids.iter().map(|&i| i % shape[d] as u32).collect();
        let idx = Tensor::from_labels(&ids, dev)?;
        let y = x.index_select(d, &idx)?;
        let mut ys = shape.to_vec();
        ys[d] = ids.len();
        assert_eq!(y.shape(), &ys[..]);
        // Repeated indices add their gradients.
        check_rearrange(&y, &[&x], |c| {
            let mut cc = c.to_vec();
            cc[d] = ids[c[d]] as usize;
            (0, flat(&shape, &cc))
        })?;
    }
    // gather along the middle dim (4 picks of 7) and the last (one pick per row, as a loss does).
    let x = tensor(&[3, 7, 5], 22, dev, true);
    let picks: Vec<u32> = (0..3 * 4 * 5).map(|i| ((i * 7919 + 3) % 7) as u32).collect();
    let idx = Tensor::from_labels(&picks, dev)?.reshape(&[3, 4, 5])?;
    let y = x.gather(1usize, &idx)?;
    assert_eq!(y.shape(), &[3, 4, 5]);
    check_rearrange(&y, &[&x], |c| (0, (c[0] * 7 + picks[(c[0] * 4 + c[1]) * 5 + c[2]] as usize) * 5 + c[2]))?;
    let x = tensor(&[6, 10], 23, dev, true);
    let last: Vec<u32> = vec![9, 0, 3, 3, 7, 1];
    let y = x.gather(-1i64, &Tensor::from_labels(&last, dev)?.reshape(&[6, 1])?)?;
    check_rearrange(&y, &[&x], |c| (0, c[0] * 10 + last[c[0]] as usize))?;
    // A select: an infinity elsewhere in the row does not leak into the picks.
    let x = Tensor::from_vec(vec![1.0, f32::INFINITY, 3.0], &[1, 3], dev)?;
    assert_eq!(x.gather(1usize, &Tensor::from_labels(&[2, 0], dev)?.reshape(&[1, 2])?)?.to_vec()?, vec![3.0, 1.0]);
    // Out of range: refused when the bound is known on the host; NaN (never a silent 0) for
    // indices computed on the device.
    let x = tensor(&[5, 2], 24, dev, false);
    let e = x.index_select(0usize, &Tensor::from_labels(&[1, 5], dev)?).unwrap_err().to_string();
    assert!(e.starts_with("index_select:") && e.contains("out of range") && e.contains("[5, 2]"), "{e}");
    let e = x.gather(0usize, &Tensor::from_labels(&[0, 9], dev)?.reshape(&[1, 2])?).unwrap_err().to_string();
    assert!(e.starts_with("gather:") && e.contains("out of range"), "{e}");
    let far = Tensor::from_vec((0..10).map(|i| i as f32).collect(), &[1, 10], dev)?.argmax(1usize)?; // [9]
    let idx = Tensor::cat(&[&Tensor::from_labels(&[2], dev)?, &far], 0usize)?;
    if dev.is_gpu() {
        let v = x.index_select(0usize, &idx)?.to_vec()?;
        assert_eq!(v[..2], x.to_vec()?[4..6]);
        assert!(v[2].is_nan() && v[3].is_nan(), "{v:?}");
    } else {
        assert!(x.index_select(0usize, &idx).is_err());
    }
    // Shapes that do not fit.
    assert!(x.index_select(0usize, &Tensor::from_labels(&[0], dev)?.reshape(&[1, 1])?).is_err());
    let e = x.gather(0usize, &Tensor::from_labels(&[0, 1, 2], dev)?.reshape(&[1, 3])?).unwrap_err().to_string();
    assert!(e.contains("gather") && e.contains("[1, 3]") && e.contains("[5, 2]"), "{e}");
});

device_test!(triangles_arange_and_reductions_match_f64, |dev| {
    for diag in [-1i64, 0, 2] {
        let x = tensor(&[2, 5, 7], 31, dev, true);
        let xv = f64s(&x.to_vec()?);
        let (lo, hi) = (x.tril(diag)?, x.triu(diag)?);
        let keep = |i: usize, lower: bool| {
            let (r, c) = ((i / 7 % 5) as i64, (i % 7) as i64);
            if lower { c - r <= diag } else { c - r >= diag }
        };
        for (y, lower) in [(&lo, true), (&hi, false)] {
            let want: Vec<f64> = (0..70).map(|i| if keep(i, lower) { xv[i] } else { 0.0 }).collect();
            assert_close(&y.to_vec()?, &want, 0.0);
        }
        lo.sum_all()?.backward()?;
        let want: Vec<f64> = (0..70).map(|i| f64::from(u8::from(keep(i, true)))).collect();
        assert_close(&x.grad().unwrap().to_vec()?, &want, 0.0);
    }
    // An infinity above the diagonal does not leak (a causal mask's use).
    let inf = Tensor::full(&[3, 3], f32::INFINITY, dev)?.tril(0)?.to_vec()?;
    assert_eq!(inf.iter().filter(|v| v.is_infinite()).count(), 6);
    assert!(Tensor::zeros(&[4], dev)?.tril(0).is_err());
    assert_eq!(Tensor::arange(5, dev)?.to_vec()?, vec![0.0, 1.0, 2.0, 3.0, 4.0]);
    // var (both divisors), min and argmin over the middle dim of [3, 6, 5].
    let x = tensor(&[3, 6, 5], 32, dev, true);
    let xv = f64s(&x.to_vec()?);
    let col = |o: usize, i: usize| (0..6).map(|j| xv[(o * 6 + j) * 5 + i]).collect::<Vec<f64>>();
    for unbiased in [true, false] {
        let v = x.var(1usize, false, unbiased)?;
        assert_eq!(v.shape(), &[3, 5]);
        let want: Vec<f64> = (0..15)
            .map(|k| {
                let c = col(k / 5, k % 5);
                let m = c.iter().sum::<f64>() / 6.0;
                c.iter().map(|a| (a - m).powi(2)).sum::<f64>() / if unbiased { 5.0 } else { 6.0 }
            })
            .collect();
        assert_close(&v.to_vec()?, &want, 1e-5);
    }
    assert!(tensor(&[1, 3], 1, dev, false).var(0usize, false, true)?.to_vec()?.iter().all(|v| v.is_nan()));
    let mn = x.min(1usize, true)?;
    assert_eq!(mn.shape(), &[3, 1, 5]);
    let am = x.argmin(1usize)?.to_vec_u32()?;
    let (mut want, mut grad) = (Vec::new(), vec![0.0; 90]);
    for k in 0..15 {
        let c = col(k / 5, k % 5);
        let j = (0..6).fold(0, |b, j| if c[j] < c[b] { j } else { b });
        assert_eq!(am[k] as usize, j);
        want.push(c[j]);
        grad[((k / 5) * 6 + j) * 5 + k % 5] = 1.0;
    }
    assert_close(&mn.to_vec()?, &want, 0.0);
    mn.sum_all()?.backward()?;
    assert_close(&x.grad().unwrap().to_vec()?, &grad, 0.0);
});
