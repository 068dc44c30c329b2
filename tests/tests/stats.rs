//! Tensor statistics and histograms on the device against float64 references, NaN/Inf counting,
//! one-element std, and one read-back for many tensors.

use kiln::prelude::*;
use kiln::stats::{histogram, tensor_stats};
use kiln_tests::{data, device_test};

fn reference(v: &[f32]) -> (f64, f64, f64, f64, f64, f64, usize, usize) {
    let fin: Vec<f64> = v.iter().filter(|x| x.is_finite()).map(|&x| x as f64).collect();
    let n = fin.len() as f64;
    let mean = fin.iter().sum::<f64>() / n;
    let var = fin.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let min = fin.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = fin.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let norm = fin.iter().map(|x| x * x).sum::<f64>().sqrt();
    let zf = v.iter().filter(|&&x| x == 0.0).count() as f64 / v.len() as f64;
    (
        mean,
        var.sqrt(),
        min,
        max,
        norm,
        zf,
        v.iter().filter(|x| x.is_nan()).count(),
        v.iter().filter(|x| x.is_infinite()).count(),
    )
}

fn close(a: f64, b: f64, rtol: f64) -> bool {
    (a - b).abs() <= rtol * b.abs().max(1e-3) || (a.is_nan() && b.is_nan())
}

device_test!(stats_match_f64, |dev| {
    let mut specials: Vec<f32> = data(1000, 3).iter().map(|v| v * 5.0 + 2.0).collect();
    specials[10] = f32::NAN;
    specials[20] = f32::INFINITY;
    specials[30] = f32::NEG_INFINITY;
    specials[40] = 0.0;
    specials[41] = 0.0;
    let cases: Vec<Vec<f32>> = vec![
        vec![3.5],
        data(3, 1),
        data(65 * 129, 2).iter().map(|v| v * 100.0 + 1000.0).collect(),
        specials,
        data(1_000_000, 4),
        vec![0.0; 17],
    ];
    let tensors: Vec<Tensor> = cases.iter().map(|v| Tensor::from_vec(v.clone(), &[v.len()], dev).unwrap()).collect();
    let stats = tensor_stats(&tensors)?;
    for (v, s) in cases.iter().zip(&stats) {
        let (mean, std, min, max, norm, zf, nan, inf) = reference(v);
        assert_eq!((s.numel, s.nan, s.inf), (v.len(), nan, inf));
        assert_eq!(s.finite, v.len() - nan - inf);
        assert!(close(s.mean, mean, 1e-5), "mean {} vs {mean}", s.mean);
        assert!(close(s.std, std, 1e-4), "std {} vs {std}", s.std);
        assert!(close(s.min, min, 1e-7) && close(s.max, max, 1e-7));
        assert!(close(s.norm, norm, 1e-5), "norm {} vs {norm}", s.norm);
        assert!(close(s.zero_fraction, zf, 1e-9));
    }
    assert!(stats[0].std.is_nan(), "one element: std is NaN, as PyTorch");
    assert!(!stats[3].is_finite() && stats[2].is_finite());
    // Histograms.
    let v = data(10_000, 5);
    let t = Tensor::from_vec(v.clone(), &[10_000], dev)?;
    let h = histogram(&t, 10, -1.0, 1.0)?;
    let mut want = vec![0u32; 10];
    for x in &v {
        want[(((x + 1.0) / 2.0 * 10.0).floor() as usize).min(9)] += 1;
    }
    assert_eq!(h, want);
    assert_eq!(h.iter().sum::<u32>(), 10_000);
    assert!(histogram(&t, 0, 0.0, 1.0).is_err());
});
