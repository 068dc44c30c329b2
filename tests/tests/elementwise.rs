//! Unary, scalar and broadcasting binary ops: forward and backward against float64 references
//! on both devices, on shapes that are not multiples of any tile or workgroup size (the cases
//! are in `kiln_tests::elementwise_cases`, shared with `unfused.rs`), edge values and masks.

use kiln::Tensor;
use kiln_tests::{assert_close, device_test, tensor};

device_test!(unary_ops_match_f64, |dev| {
    kiln_tests::elementwise_cases::unary_cases(dev);
});

device_test!(unary_edge_values, |dev| {
    // tanh and sigmoid saturate instead of overflowing; relu(0) = 0 with gradient 0.
    let x = Tensor::from_vec(vec![-100.0, -20.0, 0.0, 20.0, 100.0], &[5], dev)?.set_requires_grad(true);
    assert_eq!(x.tanh()?.to_vec()?, vec![-1.0, -1.0, 0.0, 1.0, 1.0]);
    let s = x.sigmoid()?.to_vec()?;
    assert!(s[0] >= 0.0 && s[0] < 1e-30 && s[2] == 0.5 && s[4] == 1.0, "{s:?}");
    let r = x.relu()?;
    r.sum_all()?.backward()?;
    assert_eq!(x.grad().unwrap().to_vec()?, vec![0.0, 0.0, 0.0, 1.0, 1.0]);
    let p = Tensor::from_vec(vec![-2.0, 0.0, 2.0], &[3], dev)?;
    assert_eq!(p.powf(2.0)?.to_vec()?, vec![4.0, 0.0, 4.0]);
    assert_eq!(p.powf(3.0)?.to_vec()?, vec![-8.0, 0.0, 8.0]);
    assert_eq!(p.powf(0.0)?.to_vec()?, vec![1.0, 1.0, 1.0]);
    assert!(p.powf(0.5)?.to_vec()?[0].is_nan());
});

device_test!(binary_ops_broadcast_and_reduce_gradients, |dev| {
    kiln_tests::elementwise_cases::binary_cases(dev);
    // Operator sugar is the same op.
    let a = tensor(&[4, 3], 3, dev, false);
    let b = tensor(&[3], 4, dev, false);
    assert_eq!((&a + &b).to_vec()?, a.add(&b)?.to_vec()?);
    assert_eq!((&a * &b).to_vec()?, a.mul(&b)?.to_vec()?);
});

device_test!(masks_are_zero_one_and_not_differentiable, |dev| {
    let x = Tensor::from_vec(vec![-1.0, 0.0, 0.5, 2.0], &[4], dev)?.set_requires_grad(true);
    assert_eq!(x.gt_scalar(0.0)?.to_vec()?, vec![0.0, 0.0, 1.0, 1.0]);
    assert_eq!(x.le_scalar(0.0)?.to_vec()?, vec![1.0, 1.0, 0.0, 0.0]);
    assert_eq!(x.eq_scalar(0.5)?.to_vec()?, vec![0.0, 0.0, 1.0, 0.0]);
    assert!(!x.gt_scalar(0.0)?.requires_grad());
    let y = Tensor::from_vec(vec![0.0, 0.0, 1.0, 1.0], &[4], dev)?;
    assert_eq!(x.gt(&y)?.to_vec()?, vec![0.0, 0.0, 0.0, 1.0]);
    assert_eq!(x.ne(&y)?.to_vec()?, vec![1.0, 0.0, 1.0, 1.0]);
    // where_: x where mask else -x; gradient 1 where kept, -1 elsewhere.
    let m = x.gt_scalar(0.0)?;
    let w = x.where_(&m, &x.neg()?)?;
    assert_eq!(w.to_vec()?, vec![1.0, 0.0, 0.5, 2.0]);
    w.sum_all()?.backward()?;
    assert_eq!(x.grad().unwrap().to_vec()?, vec![-1.0, -1.0, 1.0, 1.0]);
    assert_eq!(x.masked_fill(&m, 9.0)?.to_vec()?, vec![-1.0, 0.0, 9.0, 9.0]);
});

device_test!(masked_fill_and_where_are_selects, |dev| {
    // The new user's attention mask: -inf where the mask is 1, the other values exact (this was
    // [NaN, -inf, NaN, NaN] when where_ was arithmetic), and the softmax after it finite.
    let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[4], dev)?.set_requires_grad(true);
    let m = Tensor::from_vec(vec![0.0, 1.0, 0.0, 0.0], &[4], dev)?;
    let y = x.masked_fill(&m, f32::NEG_INFINITY)?;
    assert_eq!(y.to_vec()?, vec![1.0, f32::NEG_INFINITY, 3.0, 4.0]);
    let p = y.softmax(0usize)?;
    let e = [1f64.exp(), 0.0, 3f64.exp(), 4f64.exp()];
    let z: f64 = e.iter().sum();
    assert_close(&p.to_vec()?, &e.map(|v| v / z), 1e-6);
    // Its gradient reaches the unmasked positions only, and is finite.
    p.mul(&Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[4], dev)?)?.sum_all()?.backward()?;
    let g = x.grad().unwrap().to_vec()?;
    assert!(g[1] == 0.0 && g.iter().all(|v| v.is_finite()), "{g:?}");
    // A broadcast mask (a causal [3, 3] over [2, 3, 3]) and +inf.
    let s = Tensor::zeros(&[2, 3, 3], dev)?;
    let causal = Tensor::from_vec(vec![0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0], &[3, 3], dev)?;
    let v = s.masked_fill(&causal, f32::INFINITY)?.to_vec()?;
    assert_eq!(v[..9], [0.0, f32::INFINITY, f32::INFINITY, 0.0, 0.0, f32::INFINITY, 0.0, 0.0, 0.0]);
    assert_eq!(v[..9], v[9..]);
    // where_ picks exactly, whatever the other side holds (infinities, NaN), and routes the
    // gradient to the side it picked.
    let a = Tensor::from_vec(vec![f32::INFINITY, 1.5, f32::NAN, -2.0], &[4], dev)?.set_requires_grad(true);
    let b = Tensor::from_vec(vec![7.0, f32::NEG_INFINITY, 0.25, f32::NAN], &[4], dev)?.set_requires_grad(true);
    let sel = Tensor::from_vec(vec![0.0, 1.0, 0.0, 1.0], &[4], dev)?;
    let w = a.where_(&sel, &b)?;
    assert_eq!(w.to_vec()?, vec![7.0, 1.5, 0.25, -2.0]);
    w.sum_all()?.backward()?;
    assert_eq!(a.grad().unwrap().to_vec()?, vec![0.0, 1.0, 0.0, 1.0]);
    assert_eq!(b.grad().unwrap().to_vec()?, vec![1.0, 0.0, 1.0, 0.0]);
    // A mask that does not broadcast to the tensor is an error naming the op.
    let e = x.masked_fill(&Tensor::zeros(&[3], dev)?, 0.0).unwrap_err().to_string();
    assert!(e.contains("masked_fill") && e.contains("[3]"), "{e}");
    let e = x.masked_fill(&Tensor::zeros(&[2, 4], dev)?, 0.0).unwrap_err().to_string();
    assert!(e.contains("masked_fill") && e.contains("[2, 4]"), "{e}");
});
