//! Unary, scalar and broadcasting binary ops: forward and backward against float64 references
//! on both devices, on shapes that are not multiples of any tile or workgroup size (the cases
//! are in `kiln_tests::elementwise_cases`, shared with `unfused.rs`), edge values and masks.

use kiln::Tensor;
use kiln_tests::{device_test, tensor};

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
