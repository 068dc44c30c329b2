//! Autograd semantics (accumulation, no_grad, detach, set_requires_grad, graphs freed on drop),
//! device moves, the finite-difference gradient checker on a composite MLP with cross-entropy,
//! losses, and the error cases: each a `kiln::Error` naming the op, never a panic.

use kiln::nn::functional::{cross_entropy, mse_loss};
use kiln::{DType, Device, Error, Tensor, no_grad};
use kiln_tests::{assert_close, check_gradients, data, device_test, f64s, gpu_device, tensor};

device_test!(gradients_accumulate_until_zeroed, |dev| {
    let x = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3], dev)?.set_requires_grad(true);
    x.mul(&x)?.sum_all()?.backward()?;
    x.mul(&x)?.sum_all()?.backward()?;
    assert_eq!(x.grad().unwrap().to_vec()?, vec![4.0, 8.0, 12.0]);
    x.zero_grad();
    assert!(x.grad().is_none());
    // A tensor used twice in one graph gets both contributions.
    let y = x.mul_scalar(3.0)?.add(&x)?.sum_all()?;
    y.backward()?;
    assert_eq!(x.grad().unwrap().to_vec()?, vec![4.0, 4.0, 4.0]);
});

device_test!(no_grad_detach_and_flags, |dev| {
    let x = Tensor::ones(&[2, 2], dev)?.set_requires_grad(true);
    assert!(x.requires_grad() && x.is_leaf());
    let y = no_grad(|| x.mul_scalar(2.0))?;
    assert!(!y.requires_grad());
    {
        let _g = kiln::NoGradGuard::new();
        assert!(!kiln::is_grad_enabled());
        assert!(!x.exp()?.requires_grad());
    }
    assert!(kiln::is_grad_enabled());
    let z = x.mul_scalar(2.0)?;
    assert!(z.requires_grad() && !z.is_leaf());
    let d = z.detach();
    assert!(!d.requires_grad() && d.is_leaf());
    assert_eq!(d.to_vec()?, vec![2.0; 4]);
    // Only the branch through x gets a gradient; the detached branch contributes nothing.
    z.add(&d)?.sum_all()?.backward()?;
    assert_eq!(x.grad().unwrap().to_vec()?, vec![2.0; 4]);
    let plain = Tensor::ones(&[2], dev)?;
    assert!(!plain.requires_grad());
    assert!(plain.add_scalar(1.0)?.grad().is_none());
    // Labels never require grad.
    assert!(!Tensor::from_labels(&[1, 2], dev)?.set_requires_grad(true).requires_grad());
});

// Backward skips the gradient of an input that does not require grad (for a matmul whose
// input is data, a whole product per step): the other input's gradient must be unchanged.
device_test!(one_sided_gradients_match_two_sided, |dev| {
    type BinOp = fn(&Tensor, &Tensor) -> kiln::Result<Tensor>;
    let ops: [(&str, BinOp); 7] = [
        ("add", |a, b| a.add(b)),
        ("sub", |a, b| a.sub(b)),
        ("mul", |a, b| a.mul(b)),
        ("div", |a, b| a.div(b)),
        ("maximum", |a, b| a.maximum(b)),
        ("minimum", |a, b| a.minimum(b)),
        ("matmul", |a, b| a.matmul(&b.reshape(&[5, 3])?)),
    ];
    for (name, op) in ops {
        let av = data(15, 3);
        let bv: Vec<f32> = data(15, 4).iter().map(|v| v + 2.0).collect();
        // Both sides, then each side alone.
        let grads = |ga: bool, gb: bool| -> (Option<Vec<f32>>, Option<Vec<f32>>) {
            let a = Tensor::from_vec(av.clone(), &[3, 5], dev).unwrap().set_requires_grad(ga);
            let b = Tensor::from_vec(bv.clone(), &[3, 5], dev).unwrap().set_requires_grad(gb);
            let y = op(&a, &b).unwrap();
            let w = Tensor::from_vec(data(y.numel(), 9), y.shape(), dev).unwrap();
            y.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
            (a.grad().map(|g| g.to_vec().unwrap()), b.grad().map(|g| g.to_vec().unwrap()))
        };
        let (a2, b2) = grads(true, true);
        let (a1, none_b) = grads(true, false);
        let (none_a, b1) = grads(false, true);
        assert!(none_a.is_none() && none_b.is_none(), "{name}");
        // Fused differently, the same values may round differently (a contracted multiply-add).
        assert_close(&a1.expect(name), &f64s(&a2.expect(name)), 1e-6);
        assert_close(&b1.expect(name), &f64s(&b2.expect(name)), 1e-6);
    }
});

device_test!(scalars_are_zero_dimensional, |dev| {
    let s = Tensor::from_vec(vec![3.0], &[], dev)?;
    assert_eq!(s.shape(), &[] as &[usize]);
    assert_eq!(s.numel(), 1);
    assert_eq!(s.item()?, 3.0);
    let x = tensor(&[4, 5], 1, dev, true);
    let l = x.sum_all()?;
    assert_eq!(l.shape(), &[] as &[usize]);
    let m = x.mean_all()?;
    assert_eq!(m.shape(), &[] as &[usize]);
    m.backward()?;
    assert_close(&x.grad().unwrap().to_vec()?, &[0.05; 20], 1e-7);
    // Broadcasting a scalar.
    assert_eq!(Tensor::ones(&[3], dev)?.mul(&s)?.to_vec()?, vec![3.0; 3]);
});

device_test!(mlp_with_cross_entropy_matches_finite_differences, |dev| {
    // A 2-layer MLP written from primitives: cross_entropy(relu(x W1 + b1) W2 + b2, labels).
    let x = tensor(&[5, 4], 81, dev, false);
    let labels = Tensor::from_labels(&[0, 2, 1, 2, 0], dev)?;
    let w1 = tensor(&[4, 6], 82, dev, true);
    let b1 = tensor(&[6], 83, dev, true);
    let w2 = tensor(&[6, 3], 84, dev, true);
    let b2 = tensor(&[3], 85, dev, true);
    let xv = f64s(&x.to_vec()?);
    let lab = [0usize, 2, 1, 2, 0];
    let f = |p: &[Tensor]| {
        let h = x.matmul(&p[0])?.add(&p[1])?.relu()?;
        cross_entropy(&h.matmul(&p[2])?.add(&p[3])?, &labels)
    };
    let f64_f = |p: &[Vec<f64>]| {
        let mut loss = 0.0;
        for r in 0..5 {
            let h: Vec<f64> = (0..6)
                .map(|j| ((0..4).map(|k| xv[r * 4 + k] * p[0][k * 6 + j]).sum::<f64>() + p[1][j]).max(0.0))
                .collect();
            let z: Vec<f64> = (0..3).map(|c| (0..6).map(|j| h[j] * p[2][j * 3 + c]).sum::<f64>() + p[3][c]).collect();
            let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            loss += lse - z[lab[r]];
        }
        loss / 5.0
    };
    let params = [w1, b1, w2, b2];
    let want = f64_f(&params.iter().map(|t| f64s(&t.to_vec().unwrap())).collect::<Vec<_>>());
    assert!((f(&params)?.item()? as f64 - want).abs() < 1e-5);
    check_gradients(&params, f, f64_f, 1e-3);
});

device_test!(mse_and_cross_entropy_values, |dev| {
    let p = tensor(&[7, 3], 91, dev, true);
    let t = tensor(&[7, 3], 92, dev, false);
    let (pv, tv) = (f64s(&p.to_vec()?), f64s(&t.to_vec()?));
    let want: f64 = pv.iter().zip(&tv).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / 21.0;
    assert_close(&[mse_loss(&p, &t)?.item()?], &[want], 1e-6);
    assert!(matches!(mse_loss(&p, &tensor(&[3, 7], 1, dev, false)), Err(Error::ShapeMismatch { .. })));
    // Uniform logits: loss = ln(C).
    let z = Tensor::zeros(&[4, 10], dev)?;
    let l = cross_entropy(&z, &Tensor::from_labels(&[0, 3, 9, 5], dev)?)?;
    assert_close(&[l.item()?], &[10f64.ln()], 1e-6);
    let onehot = Tensor::one_hot(&Tensor::from_labels(&[2, 0], dev)?, 3)?;
    assert_eq!(onehot.to_vec()?, vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
});

#[test]
fn tensors_move_between_devices_with_gradients() {
    let Some(gpu) = gpu_device() else { return };
    let cpu = Device::cpu();
    let x = Tensor::from_vec(data(65 * 3, 7), &[65, 3], &cpu).unwrap().set_requires_grad(true);
    let g = x.to(&gpu).unwrap();
    assert_eq!(g.device(), gpu);
    let back = g.to(&cpu).unwrap();
    assert_eq!(back.to_vec().unwrap(), x.to_vec().unwrap());
    // The gradient of a computation on the GPU lands on the CPU leaf.
    g.mul_scalar(3.0).unwrap().sum_all().unwrap().backward().unwrap();
    let gr = x.grad().unwrap();
    assert_eq!(gr.device(), cpu);
    assert_eq!(gr.to_vec().unwrap(), vec![3.0; 195]);
    // Labels move too.
    let l = Tensor::from_labels(&[3, 1, 4], &cpu).unwrap().to(&gpu).unwrap();
    assert_eq!(l.dtype(), DType::U32);
    assert_eq!(l.to_vec_u32().unwrap(), vec![3, 1, 4]);
    // Mixing devices is an error, not an implicit copy.
    let e = x.add(&g).unwrap_err();
    assert!(matches!(e, Error::DeviceMismatch { op: "add", .. }), "{e}");
    assert!(e.to_string().contains("different devices"));
    assert_eq!(Device::gpu().unwrap(), gpu);
    assert!(gpu.is_gpu() && !cpu.is_gpu());
    assert!(!gpu.name().is_empty());
    gpu.synchronize().unwrap();
}

device_test!(bad_input_is_an_error_naming_the_op, |dev| {
    let a = tensor(&[2, 3], 1, dev, false);
    let b = tensor(&[4, 5], 2, dev, false);
    let e = a.add(&b).unwrap_err();
    assert!(matches!(&e, Error::ShapeMismatch { op: "add", lhs, rhs } if lhs == &[2, 3] && rhs == &[4, 5]), "{e}");
    assert!(e.to_string().contains("add") && e.to_string().contains("[2, 3]"));
    assert!(matches!(a.matmul(&b), Err(Error::ShapeMismatch { op: "matmul", .. })));
    assert!(matches!(a.matmul(&tensor(&[3], 1, dev, false)), Err(Error::Invalid { op: "matmul", .. })));
    assert!(matches!(a.sum(2usize, false), Err(Error::DimOutOfRange { op: "sum", dim: 2, .. })));
    assert!(matches!(a.softmax(-3), Err(Error::DimOutOfRange { op: "softmax", dim: -3, .. })));
    assert!(matches!(a.transpose(0usize, 5usize), Err(Error::DimOutOfRange { .. })));
    let e = Tensor::from_vec(vec![1.0; 5], &[2, 3], dev).unwrap_err();
    assert!(matches!(e, Error::DataLength { len: 5, numel: 6, .. }), "{e}");
    assert!(matches!(a.reshape(&[4, 2]), Err(Error::ShapeMismatch { op: "reshape", .. })));
    let labels = Tensor::from_labels(&[1, 0], dev)?;
    assert!(matches!(labels.exp(), Err(Error::DType { op: "exp", .. })));
    assert!(matches!(a.add(&labels), Err(Error::DType { .. })));
    assert!(matches!(a.item(), Err(Error::Invalid { op: "item", .. })));
    assert!(matches!(a.t()?.t()?.to_vec_u32(), Err(Error::DType { .. })));
    assert!(matches!(cross_entropy(&a, &Tensor::from_labels(&[1, 0, 2], dev)?), Err(Error::ShapeMismatch { .. })));
    assert!(matches!(cross_entropy(&a, &a), Err(Error::DType { .. })));
    // backward on a non-scalar, and on a tensor that needs no grad.
    let x = tensor(&[3], 3, dev, true);
    assert!(matches!(x.mul_scalar(2.0)?.backward(), Err(Error::Backward(_))));
    assert!(matches!(a.sum_all()?.backward(), Err(Error::Backward(_))));
    assert!(matches!(a.max(0usize, false).map(|_| ()), Ok(())));
    assert!(Tensor::zeros(&[0, 3], dev)?.max(0usize, false).is_err());
    assert!(Tensor::zeros(&[usize::MAX, 2], dev).is_err());
    if dev.is_gpu() {
        // Larger than any storage binding: an error naming the limit, before any allocation.
        let e = Tensor::zeros(&[1 << 20, 1 << 20], dev).unwrap_err();
        assert!(e.to_string().contains("max_storage_buffer_binding_size"), "{e}");
    }
});
