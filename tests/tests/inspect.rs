//! Inspection: the parameter summary (grouped, subtotals, totals, Display, serde), parameter and
//! gradient statistics on the device, and the gradient check.

use kiln::inspect::{GradState, GradThresholds, check_gradients, parameter_stats, summary};
use kiln::nn::{BatchNorm1d, Forward, Linear, ReLU, Sequential};
use kiln::prelude::*;
use kiln_tests::{data, device_test};

#[derive(Module)]
struct Net {
    encoder: Linear,
    bn: BatchNorm1d,
    head: Sequential,
    unused: Parameter,
}

fn net(dev: &Device) -> Net {
    Net {
        encoder: Linear::new(4, 6, dev).unwrap(),
        bn: BatchNorm1d::new(6, dev).unwrap(),
        head: Sequential::new().push(Linear::new(6, 3, dev).unwrap()).push(ReLU).push(Linear::new(3, 2, dev).unwrap()),
        unused: Parameter::new(Tensor::ones(&[5], dev).unwrap()),
    }
}

device_test!(summary_groups_and_totals, |dev| {
    let m = net(dev);
    m.freeze("encoder.").unwrap();
    let s = summary(&m);
    let modules: Vec<&str> = s.groups.iter().map(|g| g.module.as_str()).collect();
    assert_eq!(modules, ["", "encoder", "bn", "head.0", "head.2"]);
    let enc = &s.groups[1];
    assert_eq!(enc.params, 4 * 6 + 6);
    assert_eq!(enc.rows[0].name, "encoder.weight");
    assert_eq!(enc.rows[0].shape, vec![6, 4]);
    assert_eq!(enc.rows[0].trainable, "no");
    let bn = &s.groups[2];
    assert_eq!(bn.rows.iter().filter(|r| r.trainable == "buffer").count(), 3);
    assert_eq!(bn.params, 12, "buffers are not parameters");
    let total = 5 + 30 + 12 + 21 + 8;
    assert_eq!((s.total, s.trainable, s.non_trainable, s.buffers), (total, total - 30, 30, 3));
    // f32 parameters, two f32 buffers of 6 and one i64 counter.
    assert_eq!(s.bytes, total * 4 + 12 * 4 + 8);
    let text = s.to_string();
    assert!(text.contains("encoder.weight") && text.contains("[6, 4]") && text.contains("head.2 subtotal"));
    assert!(text.contains(&format!("total parameters {total}")), "{text}");
    // One device: said once, under the table, not on every row.
    assert_eq!(text.matches(&dev.name()).count(), 1, "{text}");
    assert!(text.contains(&format!("device: {}", dev.name())) && !text.contains("  device"), "{text}");
    let json = serde_json::to_string(&s).unwrap();
    assert!(json.contains("\"bn.running_mean\""));
});

device_test!(parameter_and_gradient_stats, |dev| {
    let m = net(dev);
    m.freeze("encoder.").unwrap();
    let x = Tensor::from_vec(data(8 * 4, 1), &[8, 4], dev)?;
    let y = m.head.forward(&m.bn.forward(&m.encoder.forward(&x)?)?)?;
    y.sum_all()?.backward()?;
    let stats = parameter_stats(&m)?;
    let by = |n: &str| stats.iter().find(|s| s.name == n).unwrap();
    assert_eq!(by("encoder.weight").grad, GradState::Frozen);
    assert_eq!(by("unused").grad, GradState::NotReached);
    let GradState::Present(g) = by("head.2.bias").grad else { panic!("head.2.bias has a gradient") };
    assert_eq!(g.mean, 8.0, "d sum / d bias = batch size");
    let u = by("unused").value;
    assert_eq!((u.mean, u.min, u.max, u.norm), (1.0, 1.0, 1.0, 5f64.sqrt()));
    assert_eq!(u.std, 0.0);
    // The value statistics agree with a host computation.
    let w = m.head.parameters()[0].tensor().to_vec()?;
    let mean = w.iter().map(|&v| v as f64).sum::<f64>() / w.len() as f64;
    assert!((by("head.0.weight").value.mean - mean).abs() < 1e-6);

    let r = check_gradients(&m, GradThresholds::default())?;
    assert_eq!(r.no_gradient, ["unused"]);
    assert_eq!(r.frozen, ["encoder.weight", "encoder.bias"]);
    assert!(r.non_finite.is_empty() && !r.is_healthy());
    // A NaN gradient is named, the first one first; a huge one is exploding, a tiny one vanishing.
    m.bn.weight.set_grad(Some(Tensor::from_vec(vec![0.0, f32::NAN, 0.0, 0.0, 0.0, f32::INFINITY], &[6], dev)?));
    m.bn.bias.set_grad(Some(Tensor::full(&[6], 1e6, dev)?));
    m.unused.set_grad(Some(Tensor::full(&[5], 1e-12, dev)?));
    let r = check_gradients(&m, GradThresholds::default())?;
    assert_eq!(r.first_non_finite(), Some("bn.weight"));
    assert_eq!(r.exploding.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["bn.bias"]);
    assert_eq!(r.vanishing.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["unused"]);
    assert!(r.to_string().contains("first: bn.weight"));
});

device_test!(anomaly_mode_names_the_op, |dev| {
    // Forward: log(0) = -inf; the error names log, not the sum after it.
    let x = Tensor::from_vec(vec![1.0, 0.0, 2.0], &[3], dev)?.set_requires_grad(true);
    let e = kiln::detect_anomaly(|| x.mul_scalar(2.0)?.log()?.sum_all()?.backward()).unwrap_err();
    assert!(matches!(&e, kiln::Error::Anomaly { op, phase: "forward" } if op == "log"), "{e}");
    assert!(e.to_string().contains("forward of log"));
    // Backward: sqrt(0) is fine forward, its gradient 0.5 / sqrt(0) is not.
    let e = kiln::detect_anomaly(|| x.mul_scalar(0.0)?.sqrt()?.sum_all()?.backward()).unwrap_err();
    assert!(matches!(&e, kiln::Error::Anomaly { op, phase: "backward" } if op == "sqrt"), "{e}");
    // Healthy computations pass, and outside the mode nothing is checked.
    let v = kiln::detect_anomaly(|| x.exp()?.sum_all()?.item())?;
    assert!((v - (1f32.exp() + 1.0 + 2f32.exp())).abs() < 1e-4, "{v}");
    assert!(x.log()?.sum_all()?.item()?.is_infinite());
});

device_test!(expected_zero_gradients_are_notes_and_stats_print, |dev| {
    // A bias followed by batch normalisation: its gradient cancels (zero up to rounding).
    let m =
        Sequential::new().push(Linear::new(4, 6, dev)?).push(BatchNorm1d::new(6, dev)?).push(Linear::new(6, 2, dev)?);
    let x = Tensor::from_vec(data(8 * 4, 3), &[8, 4], dev)?;
    m.forward(&x)?.powf(2.0)?.sum_all()?.backward()?;
    // The first bias's gradient is tiny, not a problem: reported as a note with the reason.
    let r = check_gradients(&m, GradThresholds { exploding: 1e3, vanishing: 1e-3 })?;
    assert!(r.vanishing.is_empty() && r.is_healthy(), "{r}");
    assert_eq!(r.notes.len(), 1, "{r}");
    assert_eq!(r.notes[0].0, "0.bias");
    assert!(r.notes[0].1.contains("the next module, 1, is a batch normalisation"), "{r}");
    assert!(r.to_string().contains("note: 0.bias"), "{r}");
    // Where nothing says it is expected, a vanishing gradient stays a problem.
    m.parameters()[3].set_grad(Some(Tensor::full(&[6], 1e-9, dev)?));
    let r = check_gradients(&m, GradThresholds { exploding: 1e3, vanishing: 1e-3 })?;
    assert_eq!(r.vanishing.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["1.bias"]);
    // ParamStats prints the value's and the gradient's statistics.
    let stats = parameter_stats(&m)?;
    let text = stats[1].to_string();
    assert!(text.starts_with("0.bias: value mean ") && text.contains("\n0.bias: grad  mean "), "{text}");
    m.freeze("2.")?;
    m.zero_grad();
    let text = parameter_stats(&m)?.last().unwrap().to_string();
    assert!(text.ends_with("2.bias: grad  none (frozen)"), "{text}");
});
