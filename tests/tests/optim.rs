//! Optimizers, schedulers and clipping against PyTorch's trajectories
//! (tests/fixtures/optim.safetensors, made by make_optim_fixtures.py), on both devices; optimizer
//! state round trips (N + N steps equal 2N); skipping frozen parameters; bad input.

use std::path::PathBuf;

use kiln::io::load_safetensors;
use kiln::nn::functional::mse_loss;
use kiln::nn::{Forward, Linear, ReLU, Sequential};
use kiln::optim::lr_scheduler::{
    CosineAnnealingLR, ExponentialLR, LinearLR, LrScheduler, MultiStepLR, SequentialLR, StepLR,
};
use kiln::optim::{Adam, AdamConfig, AdamW, Optimizer, Sgd, SgdConfig, clip_grad_norm_, clip_grad_value_};
use kiln::prelude::*;
use kiln_tests::{assert_close, device_test, f64s};
use serde_json::Value;

fn fixtures(dev: &Device) -> StateDict {
    load_safetensors(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/optim.safetensors"), dev).unwrap()
}

fn model(fx: &StateDict, dev: &Device) -> Sequential {
    let m = Sequential::new().push(Linear::new(4, 3, dev).unwrap()).push(ReLU).push(Linear::new(3, 2, dev).unwrap());
    let mut init = StateDict::new();
    for (k, t) in fx.iter() {
        if let Some(name) = k.strip_prefix("init.") {
            init.insert(name, t.clone());
        }
    }
    m.load_state_dict(&init, true).unwrap();
    m
}

fn f32_of(v: &Value, key: &str, default: f32) -> f32 {
    v.get(key).and_then(|x| x.as_f64()).map(|x| x as f32).unwrap_or(default)
}

fn sgd_cfg(kw: &Value, base: SgdConfig) -> SgdConfig {
    SgdConfig {
        lr: f32_of(kw, "lr", base.lr),
        momentum: f32_of(kw, "momentum", base.momentum),
        dampening: f32_of(kw, "dampening", base.dampening),
        weight_decay: f32_of(kw, "weight_decay", base.weight_decay),
        nesterov: kw.get("nesterov").and_then(|x| x.as_bool()).unwrap_or(base.nesterov),
    }
}

fn adam_cfg(kw: &Value, base: AdamConfig) -> AdamConfig {
    let betas = kw
        .get("betas")
        .and_then(|b| b.as_array())
        .map(|b| (b[0].as_f64().unwrap() as f32, b[1].as_f64().unwrap() as f32));
    AdamConfig {
        lr: f32_of(kw, "lr", base.lr),
        betas: betas.unwrap_or(base.betas),
        eps: f32_of(kw, "eps", base.eps),
        weight_decay: f32_of(kw, "weight_decay", base.weight_decay),
        amsgrad: kw.get("amsgrad").and_then(|x| x.as_bool()).unwrap_or(base.amsgrad),
    }
}

/// Builds the optimizer a fixture config describes (with parameter groups when it has them).
fn build(kind: &str, kw: &Value, groups: &Value, m: &Sequential) -> Box<dyn Optimizer> {
    let named = m.named_parameters();
    let split: Vec<(Vec<(String, Parameter)>, Value)> = match groups.as_array() {
        None => vec![(named, Value::Null)],
        Some(gs) => gs
            .iter()
            .map(|g| {
                let prefix = g[0].as_str().unwrap();
                let ps = named.iter().filter(|(n, _)| n.starts_with(prefix)).cloned().collect();
                (ps, g.get(1).cloned().unwrap_or(Value::Null))
            })
            .collect(),
    };
    let mut it = split.into_iter();
    let (first, over) = it.next().unwrap();
    match kind {
        "SGD" => {
            let base = sgd_cfg(kw, SgdConfig::default());
            let mut o = Sgd::new(first, sgd_cfg(&over, base)).unwrap();
            for (ps, over) in it {
                o.add_param_group(ps, sgd_cfg(&over, base)).unwrap();
            }
            Box::new(o)
        }
        "Adam" | "AdamW" => {
            let base = adam_cfg(kw, if kind == "AdamW" { AdamConfig::adamw() } else { AdamConfig::default() });
            if kind == "Adam" {
                let mut o = Adam::new(first, adam_cfg(&over, base)).unwrap();
                for (ps, over) in it {
                    o.add_param_group(ps, adam_cfg(&over, base)).unwrap();
                }
                Box::new(o)
            } else {
                let mut o = AdamW::new(first, adam_cfg(&over, base)).unwrap();
                for (ps, over) in it {
                    o.add_param_group(ps, adam_cfg(&over, base)).unwrap();
                }
                Box::new(o)
            }
        }
        other => panic!("unknown optimizer {other}"),
    }
}

fn train_step(m: &Sequential, opt: &mut dyn Optimizer, x: &Tensor, y: &Tensor) -> Result<()> {
    opt.zero_grad();
    mse_loss(&m.forward(x)?, y)?.backward()?;
    opt.step()
}

device_test!(optimizers_follow_pytorch_trajectories, |dev| {
    let fx = fixtures(dev);
    let configs: Value = serde_json::from_str(&fx.metadata()["configs"]).unwrap();
    let (x, y) = (fx.get("x").unwrap().clone(), fx.get("y").unwrap().clone());
    for (name, cfg) in configs.as_object().unwrap() {
        let m = model(&fx, dev);
        let mut opt = build(cfg[0].as_str().unwrap(), &cfg[1], &cfg[2], &m);
        for step in 1..=50 {
            train_step(&m, opt.as_mut(), &x, &y)?;
            for (k, t) in m.state_dict().iter() {
                let want = fx.get(&format!("{name}.{step}.{k}")).unwrap();
                let got = t.to_vec()?;
                let want = f64s(&want.to_vec()?);
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    let tol = 1e-5 * w.abs().max(1.0);
                    assert!((*g as f64 - w).abs() <= tol, "{name} step {step} {k}[{i}]: {g} vs {w}");
                }
            }
        }
    }
});

device_test!(schedulers_follow_pytorch, |dev| {
    let fx = fixtures(dev);
    let want: Value = serde_json::from_str(&fx.metadata()["schedulers"]).unwrap();
    let p = Parameter::new(Tensor::zeros(&[1], dev)?);
    let new_opt = || Sgd::new(vec![("p".into(), p.clone())], SgdConfig { lr: 0.1, ..Default::default() }).unwrap();
    type Make = fn(&dyn Optimizer) -> Box<dyn LrScheduler>;
    let cases: [(&str, Make); 6] = [
        ("step", |o| Box::new(StepLR::new(o, 3, 0.5).unwrap())),
        ("multistep", |o| Box::new(MultiStepLR::new(o, &[2, 5, 9], 0.3).unwrap())),
        ("exponential", |o| Box::new(ExponentialLR::new(o, 0.9).unwrap())),
        ("cosine", |o| Box::new(CosineAnnealingLR::new(o, 10, 0.001).unwrap())),
        ("linear", |o| Box::new(LinearLR::new(o, 0.25, 1.0, 4).unwrap())),
        ("sequential", |o| {
            let warm: Box<dyn LrScheduler> = Box::new(LinearLR::new(o, 0.1, 1.0, 3).unwrap());
            let cos: Box<dyn LrScheduler> = Box::new(CosineAnnealingLR::new(o, 8, 0.0).unwrap());
            Box::new(SequentialLR::new(o, vec![warm, cos], &[3]).unwrap())
        }),
    ];
    for (name, make) in cases {
        let mut opt = new_opt();
        let mut s = make(&opt);
        let mut got = vec![opt.lr() as f64];
        assert_eq!(s.last_lr(), opt.lr());
        for _ in 0..24 {
            s.step(&mut opt);
            got.push(opt.lr() as f64);
        }
        let w: Vec<f64> = want[name].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        for (e, (g, w)) in got.iter().zip(&w).enumerate() {
            assert!((g - w).abs() <= 1e-6 * w.abs().max(1e-3), "{name} epoch {e}: {g} vs {w}");
        }
        assert_eq!(s.last_epoch(), 24);
    }
    assert!(StepLR::new(&new_opt(), 0, 0.5).is_err());
    assert!(LinearLR::new(&new_opt(), 0.0, 1.0, 4).is_err());
});

device_test!(clip_grad_norm_matches_pytorch, |dev| {
    let fx = fixtures(dev);
    let m = model(&fx, dev);
    let params: Vec<Parameter> = m.parameters();
    for (name, p) in m.named_parameters() {
        p.set_grad(Some(fx.get(&format!("clip.grad.{name}")).unwrap().clone()));
    }
    let norm = clip_grad_norm_(&params, 0.5)?;
    let want: f64 = fx.metadata()["clip.norm"].parse().unwrap();
    assert!((norm as f64 - want).abs() < 1e-6 * want, "{norm} vs {want}");
    for (name, p) in m.named_parameters() {
        let w = f64s(&fx.get(&format!("clip.clipped.{name}")).unwrap().to_vec()?);
        assert_close(&p.grad().unwrap().to_vec()?, &w, 1e-6);
    }
    // A norm below the limit leaves the gradients as they are; clip_grad_value_ clamps.
    let before = params[0].grad().unwrap().to_vec()?;
    clip_grad_norm_(&params, 100.0)?;
    assert_close(&params[0].grad().unwrap().to_vec()?, &f64s(&before), 1e-6);
    clip_grad_value_(&params, 0.01)?;
    assert!(params.iter().all(|p| p.grad().unwrap().to_vec().unwrap().iter().all(|v| v.abs() <= 0.01)));
    assert!(clip_grad_norm_(&params, -1.0).is_err());
});

device_test!(optimizer_state_resumes_exactly, |dev| {
    let fx = fixtures(dev);
    let (x, y) = (fx.get("x").unwrap().clone(), fx.get("y").unwrap().clone());
    for kind in ["sgd", "adam", "adamw"] {
        let make = |m: &Sequential| -> Box<dyn Optimizer> {
            let ps = m.named_parameters();
            match kind {
                "sgd" => Box::new(
                    Sgd::new(ps, SgdConfig { lr: 0.05, momentum: 0.9, nesterov: true, ..Default::default() }).unwrap(),
                ),
                "adam" => {
                    Box::new(Adam::new(ps, AdamConfig { lr: 0.01, amsgrad: true, ..Default::default() }).unwrap())
                }
                _ => Box::new(AdamW::new(ps, AdamConfig { lr: 0.01, ..AdamConfig::adamw() }).unwrap()),
            }
        };
        // 2N steps straight.
        let straight = model(&fx, dev);
        let mut o1 = make(&straight);
        for _ in 0..20 {
            train_step(&straight, o1.as_mut(), &x, &y)?;
        }
        // N steps, save model and optimizer, rebuild both from scratch, load, N more.
        let first = model(&fx, dev);
        let mut o2 = make(&first);
        for _ in 0..10 {
            train_step(&first, o2.as_mut(), &x, &y)?;
        }
        let msd = first.state_dict();
        let osd = o2.state_dict()?;
        let resumed = model(&fx, dev);
        let mut o3 = make(&resumed);
        resumed.load_state_dict(&msd, true)?;
        o3.load_state_dict(&osd)?;
        for _ in 0..10 {
            train_step(&resumed, o3.as_mut(), &x, &y)?;
        }
        for ((k, a), (_, b)) in straight.state_dict().iter().zip(resumed.state_dict().iter()) {
            assert_close(&b.to_vec()?, &f64s(&a.to_vec()?), 1e-6);
            let _ = k;
        }
        // Another optimizer kind's state is refused, and nothing changes.
        let other: Box<dyn Optimizer> = if kind == "sgd" { make_adam(&resumed) } else { make_sgd(&resumed) };
        let mut o4 = make(&resumed);
        assert!(o4.load_state_dict(&other.state_dict()?).is_err());
        // A state for other parameters: the error names only the ones that differ.
        let fewer: Vec<(String, Parameter)> = resumed.named_parameters().into_iter().skip(1).collect();
        let mut o5: Box<dyn Optimizer> = match kind {
            "sgd" => Box::new(Sgd::new(fewer, SgdConfig::default())?),
            "adam" => Box::new(Adam::new(fewer, AdamConfig { amsgrad: true, ..Default::default() })?),
            _ => Box::new(AdamW::new(fewer, AdamConfig::adamw())?),
        };
        let e = o5.load_state_dict(&osd).unwrap_err().to_string();
        let first_name = &resumed.named_parameters()[0].0;
        assert!(e.contains(&format!("in the state but not in this optimizer: [{first_name:?}]")), "{e}");
        assert!(e.contains("in this optimizer but not in the state: []"), "{e}");
    }
});

fn make_adam(m: &Sequential) -> Box<dyn Optimizer> {
    Box::new(Adam::new(m.named_parameters(), AdamConfig::default()).unwrap())
}
fn make_sgd(m: &Sequential) -> Box<dyn Optimizer> {
    Box::new(Sgd::new(m.named_parameters(), SgdConfig::default()).unwrap())
}

device_test!(frozen_and_gradless_parameters_are_skipped, |dev| {
    let fx = fixtures(dev);
    let (x, y) = (fx.get("x").unwrap().clone(), fx.get("y").unwrap().clone());
    let m = model(&fx, dev);
    m.freeze("0.").unwrap();
    let before: Vec<Vec<f32>> = m.parameters().iter().map(|p| p.tensor().to_vec().unwrap()).collect();
    let mut opt = Adam::new(m.named_parameters(), AdamConfig { lr: 0.1, ..Default::default() })?;
    train_step(&m, &mut opt, &x, &y)?;
    let after: Vec<Vec<f32>> = m.parameters().iter().map(|p| p.tensor().to_vec().unwrap()).collect();
    assert_eq!(before[0], after[0], "frozen weight unchanged");
    assert_eq!(before[1], after[1], "frozen bias unchanged");
    assert_ne!(before[2], after[2], "trainable weight moved");
    // A parameter with no gradient is skipped too.
    m.unfreeze("").unwrap();
    opt.zero_grad();
    opt.step()?;
    assert_eq!(m.parameters()[2].tensor().to_vec()?, after[2]);
    let osd = opt.state_dict()?;
    assert!(osd.contains_key("state.2.weight.exp_avg") && !osd.contains_key("state.0.weight.exp_avg"));
    // Invalid hyperparameters are errors.
    assert!(Sgd::new(m.named_parameters(), SgdConfig { lr: -1.0, ..Default::default() }).is_err());
    assert!(Sgd::new(m.named_parameters(), SgdConfig { nesterov: true, ..Default::default() }).is_err());
    assert!(Adam::new(m.named_parameters(), AdamConfig { betas: (1.0, 0.9), ..Default::default() }).is_err());
    let mut dup = Adam::new(m.named_parameters(), AdamConfig::default())?;
    assert!(dup.add_param_group(m.named_parameters(), AdamConfig::default()).is_err());
    // set_lr / lr.
    dup.set_lr(0.5);
    assert_eq!(dup.lr(), 0.5);
});
