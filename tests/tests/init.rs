//! Initialisers against the formulas PyTorch documents (moments, bounds, orthogonality), and
//! Dropout's train/eval behaviour.

use kiln::nn::init::{self, FanMode, Nonlinearity};
use kiln::nn::{Dropout, Forward};
use kiln::prelude::*;
use kiln_tests::device_test;

fn moments(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / n;
    (m, var.sqrt())
}

device_test!(initialisers_follow_pytorch_formulas, |dev| {
    kiln::manual_seed(1);
    let p = Parameter::new(Tensor::zeros(&[300, 500], dev)?); // fan_in 500, fan_out 300
    let (fi, fo) = (500.0f64, 300.0f64);
    init::uniform_(&p, -2.0, 3.0)?;
    let v = p.tensor().to_vec()?;
    assert!(v.iter().all(|&x| (-2.0..3.0).contains(&x)));
    let (m, s) = moments(&v);
    assert!((m - 0.5).abs() < 0.01 && (s - 5.0 / 12f64.sqrt()).abs() < 0.01, "{m} {s}");
    init::normal_(&p, 1.0, 0.5)?;
    let (m, s) = moments(&p.tensor().to_vec()?);
    assert!((m - 1.0).abs() < 0.005 && (s - 0.5).abs() < 0.005, "{m} {s}");
    init::xavier_uniform_(&p, 2.0)?;
    let a = 2.0 * (6.0 / (fi + fo)).sqrt();
    let v = p.tensor().to_vec()?;
    assert!(v.iter().all(|&x| (x as f64).abs() <= a + 1e-6));
    assert!((moments(&v).1 - a / 3f64.sqrt()).abs() < 0.01 * a);
    init::xavier_normal_(&p, 1.0)?;
    let want = (2.0 / (fi + fo)).sqrt();
    assert!((moments(&p.tensor().to_vec()?).1 - want).abs() < 0.01 * want);
    init::kaiming_uniform_(&p, 0.0, FanMode::FanIn, Nonlinearity::Relu)?;
    let bound = 2f64.sqrt() * (3.0 / fi).sqrt();
    let v = p.tensor().to_vec()?;
    assert!(v.iter().all(|&x| (x as f64).abs() <= bound + 1e-6));
    assert!((moments(&v).1 - 2f64.sqrt() / fi.sqrt()).abs() < 0.01 * bound);
    init::kaiming_normal_(&p, 0.0, FanMode::FanOut, Nonlinearity::Relu)?;
    let want = 2f64.sqrt() / fo.sqrt();
    assert!((moments(&p.tensor().to_vec()?).1 - want).abs() < 0.01 * want);
    init::constant_(&p, 0.25)?;
    assert!(p.tensor().to_vec()?.iter().all(|&x| x == 0.25));
    init::zeros_(&p)?;
    assert!(p.tensor().to_vec()?.iter().all(|&x| x == 0.0));
    init::ones_(&p)?;
    assert!(p.tensor().to_vec()?.iter().all(|&x| x == 1.0));
    assert!(init::xavier_uniform_(&Parameter::new(Tensor::zeros(&[5], dev)?), 1.0).is_err());
});

device_test!(orthogonal_gives_orthonormal_rows_or_columns, |dev| {
    kiln::manual_seed(2);
    for (r, c) in [(6usize, 4usize), (4, 6), (5, 5)] {
        let p = Parameter::new(Tensor::zeros(&[r, c], dev)?);
        init::orthogonal_(&p, 1.5)?;
        let v = p.tensor().to_vec()?;
        // For tall matrices Q^T Q = gain^2 I; for wide ones Q Q^T = gain^2 I.
        type At<'a> = Box<dyn Fn(usize, usize) -> f64 + 'a>;
        let (n, m, at): (usize, usize, At) = if r >= c {
            (c, r, Box::new(|i, k| v[k * c + i] as f64))
        } else {
            (r, c, Box::new(|i, k| v[i * c + k] as f64))
        };
        for i in 0..n {
            for j in 0..n {
                let d: f64 = (0..m).map(|k| at(i, k) * at(j, k)).sum();
                let want = if i == j { 2.25 } else { 0.0 };
                assert!((d - want).abs() < 1e-5, "{r}x{c} ({i},{j}) = {d}");
            }
        }
    }
});

#[test]
fn gains_match_pytorch() {
    assert_eq!(init::calculate_gain(Nonlinearity::Linear, None), 1.0);
    assert_eq!(init::calculate_gain(Nonlinearity::Tanh, None), 5.0 / 3.0);
    assert_eq!(init::calculate_gain(Nonlinearity::Relu, None), 2f32.sqrt());
    assert!((init::calculate_gain(Nonlinearity::LeakyRelu, Some(0.2)) - (2.0f32 / 1.04).sqrt()).abs() < 1e-7);
    assert_eq!(init::calculate_gain(Nonlinearity::Selu, None), 0.75);
    assert_eq!(init::fans("t", &[8, 3, 5, 5]).unwrap(), (75, 200));
}

device_test!(dropout_in_train_and_eval, |dev| {
    kiln::manual_seed(3);
    let d = Dropout::new(0.25)?;
    let x = Tensor::ones(&[200, 100], dev)?;
    let y = d.forward(&x)?.to_vec()?;
    let zeros = y.iter().filter(|&&v| v == 0.0).count() as f64 / y.len() as f64;
    assert!((zeros - 0.25).abs() < 0.01, "{zeros}");
    assert!(y.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
    d.eval();
    assert_eq!(d.forward(&x)?.to_vec()?, x.to_vec()?);
    assert!(Dropout::new(1.5).is_err());
});
