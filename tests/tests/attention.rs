//! Scaled dot-product attention, forward and backward, on both devices against a float64
//! reference: L != S, lengths that are no multiple of any workgroup, head dims 5 to 128 (and
//! beyond, where the GPU composes), causal and additive masks (broadcast over heads or batch,
//! with -inf entries), rows with every key masked, rows longer than one dispatch walks.

use kiln::nn::functional::scaled_dot_product_attention as sdpa;
use kiln::{AttentionPolicy, Device, DeviceOptions, Tensor};
use kiln_tests::{assert_close, device_test, f64s, gpu_device_with, tensor, weighted_sum};

/// `dev`, and on a GPU also devices of their own that always take the fused kernels and the
/// blocked form (by default a software adapter composes problems this small).
fn variants(dev: &Device) -> Vec<Device> {
    let mut v = vec![dev.clone()];
    if dev.is_gpu() {
        for attention in [AttentionPolicy::Fused, AttentionPolicy::Blocked] {
            v.extend(gpu_device_with(DeviceOptions { attention, ..DeviceOptions::default() }));
        }
    }
    v
}

struct Case {
    batch: Vec<usize>,
    l: usize,
    s: usize,
    d: usize,
    dv: usize,
    causal: bool,
    /// The mask's shape (broadcast to [..batch, L, S]); its values from `tensor`, with every
    /// 7th entry -inf.
    mask: Option<Vec<usize>>,
}

/// softmax(q k^T / sqrt(d) + mask) v in f64 and, for L = sum(out * w), the gradients of q, k, v.
#[allow(clippy::type_complexity)]
fn reference(c: &Case, q: &[f64], k: &[f64], v: &[f64], mask: Option<&[f64]>, w: &[f64]) -> [Vec<f64>; 4] {
    let bh: usize = c.batch.iter().product();
    let (l, s, d, dv) = (c.l, c.s, c.d, c.dv);
    let scale = 1.0 / (d as f64).sqrt();
    let mut full = c.batch.clone();
    full.extend([l, s]);
    // The mask element for (flat batch index, i, j), broadcasting its size-1 dims.
    let mask_at = |b: usize, i: usize, j: usize| -> f64 {
        let (Some(m), Some(ms)) = (mask, &c.mask) else { return 0.0 };
        let mut coords = Vec::new();
        let mut rest = b;
        for &sz in c.batch.iter().rev() {
            coords.push(rest % sz);
            rest /= sz;
        }
        coords.reverse();
        coords.extend([i, j]);
        let off = full.len() - ms.len();
        let idx = ms.iter().enumerate().fold(0, |acc, (a, &sz)| acc * sz + if sz == 1 { 0 } else { coords[a + off] });
        m[idx]
    };
    let (mut out, mut dq, mut dk, mut dvv) =
        (vec![0.0; bh * l * dv], vec![0.0; bh * l * d], vec![0.0; bh * s * d], vec![0.0; bh * s * dv]);
    for b in 0..bh {
        for i in 0..l {
            let sc: Vec<f64> = (0..s)
                .map(|j| {
                    if c.causal && j > i {
                        return f64::NEG_INFINITY;
                    }
                    let dot: f64 = (0..d).map(|x| q[(b * l + i) * d + x] * k[(b * s + j) * d + x]).sum();
                    dot * scale + mask_at(b, i, j)
                })
                .collect();
            let m = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let o = (b * l + i) * dv;
            if m == f64::NEG_INFINITY {
                out[o..o + dv].iter_mut().for_each(|x| *x = f64::NAN);
                continue;
            }
            let e: Vec<f64> = sc.iter().map(|x| (x - m).exp()).collect();
            let z: f64 = e.iter().sum();
            let p: Vec<f64> = e.iter().map(|x| x / z).collect();
            for j in 0..s {
                for x in 0..dv {
                    out[o + x] += p[j] * v[(b * s + j) * dv + x];
                }
            }
            // dP = w_i . v_j; dS = P (dP - sum P dP).
            let g = &w[o..o + dv];
            let dp: Vec<f64> = (0..s).map(|j| (0..dv).map(|x| g[x] * v[(b * s + j) * dv + x]).sum()).collect();
            let pd: f64 = p.iter().zip(&dp).map(|(a, b)| a * b).sum();
            for j in 0..s {
                let ds = p[j] * (dp[j] - pd) * scale;
                for x in 0..d {
                    dq[(b * l + i) * d + x] += ds * k[(b * s + j) * d + x];
                    dk[(b * s + j) * d + x] += ds * q[(b * l + i) * d + x];
                }
                for x in 0..dv {
                    dvv[(b * s + j) * dv + x] += p[j] * g[x];
                }
            }
        }
    }
    [out, dq, dk, dvv]
}

fn check(dev: &kiln::Device, c: &Case) -> kiln::Result<()> {
    let shape = |rows: usize, cols: usize| {
        let mut s = c.batch.clone();
        s.extend([rows, cols]);
        s
    };
    let q = tensor(&shape(c.l, c.d), 1, dev, true).mul_scalar(2.0)?.detach().set_requires_grad(true);
    let k = tensor(&shape(c.s, c.d), 2, dev, true).mul_scalar(2.0)?.detach().set_requires_grad(true);
    let v = tensor(&shape(c.s, c.dv), 3, dev, true);
    let mask = match &c.mask {
        Some(ms) => {
            let n: usize = ms.iter().product();
            let vals: Vec<f32> = tensor(ms, 4, dev, false)
                .to_vec()?
                .iter()
                .enumerate()
                .map(|(i, &x)| if i % 7 == 3 { f32::NEG_INFINITY } else { x })
                .collect();
            assert_eq!(vals.len(), n);
            Some(Tensor::from_vec(vals, ms, dev)?)
        }
        None => None,
    };
    let y = sdpa(&q, &k, &v, mask.as_ref(), c.causal)?;
    assert_eq!(y.shape(), &shape(c.l, c.dv)[..]);
    let (loss, w) = weighted_sum(&y.where_(&y.eq(&y)?, &Tensor::zeros(&[], dev)?)?, 9);
    loss.backward()?;
    let mv = mask.as_ref().map(|m| f64s(&m.to_vec().unwrap()));
    let [out, dq, dk, dv] =
        reference(c, &f64s(&q.to_vec()?), &f64s(&k.to_vec()?), &f64s(&v.to_vec()?), mv.as_deref(), &w);
    assert_close(&y.to_vec()?, &out, 1e-4);
    assert_close(&q.grad().unwrap().to_vec()?, &dq, 1e-4);
    assert_close(&k.grad().unwrap().to_vec()?, &dk, 1e-4);
    assert_close(&v.grad().unwrap().to_vec()?, &dv, 1e-4);
    Ok(())
}

device_test!(attention_matches_f64_forward_and_backward, |dev| {
    let case = |batch: &[usize], l, s, d, causal, mask: Option<&[usize]>| Case {
        batch: batch.to_vec(),
        l,
        s,
        d,
        dv: d,
        causal,
        mask: mask.map(|m| m.to_vec()),
    };
    for c in [
        case(&[2, 3], 37, 45, 16, false, None),
        case(&[2, 3], 37, 45, 16, true, None),
        case(&[2, 3], 70, 70, 5, true, Some(&[70, 70])),
        case(&[2, 3], 37, 45, 8, false, Some(&[2, 1, 37, 45])),
        case(&[2, 3], 9, 11, 8, false, Some(&[2, 3, 9, 11])),
        case(&[2, 2, 3], 9, 11, 4, false, Some(&[2, 1, 1, 11])),
        case(&[4], 66, 20, 128, false, None),
        case(&[], 13, 13, 32, true, None),
        // Past the fused kernels' head dim, and a value head dim of its own: the composition.
        case(&[2], 10, 12, 130, true, None),
        Case { dv: 6, ..case(&[3], 10, 12, 8, false, Some(&[10, 12])) },
        // L > S with a causal mask: the first rows see fewer keys, none is empty.
        case(&[2], 20, 7, 8, true, None),
        // Rows long enough that one invocation walking every key would pass llvmpipe's 65535
        // loop iterations (529 keys x 129 at D = 64): the kernels walk keys in blocks; several
        // key blocks of the blocked form (256 keys), the last one partial.
        case(&[1], 530, 600, 64, false, Some(&[530, 600])),
        case(&[1], 600, 600, 64, true, None),
        // Causal with masks over several key blocks (whose rows start at the block's first key):
        // a per-batch mask with rows, and a mask of keys only.
        case(&[2, 1], 300, 300, 8, true, Some(&[2, 1, 300, 300])),
        case(&[2], 300, 290, 8, true, Some(&[290])),
    ] {
        for d in variants(dev) {
            check(&d, &c)?;
        }
    }
});

device_test!(fully_masked_rows_are_nan_without_gradient, |dev| {
    for d in variants(dev) {
        fully_masked(&d)?;
    }
});

fn fully_masked(dev: &Device) -> kiln::Result<()> {
    // Row 1 of the mask blocks every key: its output is NaN (as PyTorch's math attention), the
    // other rows are exact and every gradient finite, as if that row did not exist.
    let (l, s, d) = (3usize, 4usize, 8usize);
    let mut m = vec![0.0f32; l * s];
    m[s..2 * s].iter_mut().for_each(|x| *x = f32::NEG_INFINITY);
    let mask = Tensor::from_vec(m, &[l, s], dev)?;
    let q = tensor(&[2, l, d], 1, dev, true);
    let k = tensor(&[2, s, d], 2, dev, true);
    let v = tensor(&[2, s, d], 3, dev, true);
    let y = sdpa(&q, &k, &v, Some(&mask), false)?;
    let yv = y.to_vec()?;
    for (i, x) in yv.iter().enumerate() {
        assert_eq!(x.is_nan(), (i / d) % l == 1, "element {i}: {x}");
    }
    // The loss over the other rows.
    let keep = Tensor::from_vec((0..2 * l * d).map(|i| f32::from((i / d) % l != 1)).collect(), &[2, l, d], dev)?;
    y.keep_where(&keep)?.sum_all()?.backward()?;
    for t in [&q, &k, &v] {
        let g = t.grad().unwrap().to_vec()?;
        assert!(g.iter().all(|x| x.is_finite()), "{g:?}");
    }
    assert!(q.grad().unwrap().to_vec()?[d..2 * d].iter().all(|&x| x == 0.0));
    assert!(v.grad().unwrap().to_vec()?.iter().any(|&x| x != 0.0));
    Ok(())
}

device_test!(attention_refuses_bad_input, |dev| {
    let t = |s: &[usize]| Tensor::zeros(s, dev).unwrap();
    let err = |r: kiln::Result<Tensor>| r.unwrap_err().to_string();
    let e = err(sdpa(&t(&[2, 5, 8]), &t(&[2, 6, 4]), &t(&[2, 6, 8]), None, false));
    assert!(e.starts_with("scaled_dot_product_attention:") && e.contains("[2, 6, 4]"), "{e}");
    assert!(err(sdpa(&t(&[2, 5, 8]), &t(&[3, 6, 8]), &t(&[3, 6, 8]), None, false)).contains("same leading dims"));
    assert!(sdpa(&t(&[2, 5, 8]), &t(&[2, 6, 8]), &t(&[2, 7, 8]), None, false).is_err());
    let e = err(sdpa(&t(&[2, 5, 8]), &t(&[2, 6, 8]), &t(&[2, 6, 8]), Some(&t(&[5, 5])), false));
    assert!(e.contains("[5, 5]") && e.contains("does not broadcast"), "{e}");
    assert!(sdpa(&t(&[8]), &t(&[8]), &t(&[8]), None, false).is_err());
    assert!(sdpa(&t(&[2, 0, 8]), &t(&[2, 6, 8]), &t(&[2, 6, 8]), None, false).is_err());
});
