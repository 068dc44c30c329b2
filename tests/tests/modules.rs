//! Modules: Parameters and buffers as shared handles, `#[derive(Module)]`, dotted names in
//! PyTorch's order, `to(device)`, freezing, counting, BatchNorm1d, state_dicts and safetensors
//! files exchanged with PyTorch (fixtures made by tests/fixtures/make_torch_fixtures.py).

use std::path::PathBuf;

use kiln::io::{load_safetensors, save_safetensors};
use kiln::nn::{BatchNorm1d, Forward, Linear, ReLU, Sequential};
use kiln::prelude::*;
use kiln::{Error, ParamCount, TrainMode};
use kiln_tests::{assert_close, data, device_test, f64s, fixture, gpu_device, json_list};

#[derive(Module)]
struct Custom {
    encoder: Linear,
    bn: BatchNorm1d,
    scale: Parameter,
    offset: Buffer,
    head: Sequential,
}

impl Custom {
    fn new(dev: &Device) -> Result<Custom> {
        Ok(Custom {
            encoder: Linear::new(6, 8, dev)?,
            bn: BatchNorm1d::new(8, dev)?,
            scale: Parameter::new(Tensor::randn(&[8], dev)?),
            offset: Buffer::non_persistent(Tensor::zeros(&[8], dev)?),
            head: Sequential::new().push(Linear::new(8, 4, dev)?).push(ReLU).push(Linear::new(4, 2, dev)?),
        })
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.bn.forward(&self.encoder.forward(x)?)?.mul(&self.scale.tensor())?.add(&self.offset.tensor())?;
        self.head.forward(&h.relu()?)
    }
}

#[derive(Module)]
struct Tied {
    a: Linear,
    b: Linear,
}

impl Tied {
    fn new(dev: &Device) -> Result<Tied> {
        let a = Linear::new(4, 4, dev)?;
        let mut b = Linear::new(4, 4, dev)?;
        b.weight = a.weight.clone();
        Ok(Tied { a, b })
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.b.forward(&self.a.forward(x)?.relu()?)
    }
}

fn seq(dev: &Device) -> Result<Sequential> {
    Ok(Sequential::new().push(Linear::new(5, 7, dev)?).push(ReLU).push(Linear::new(7, 3, dev)?))
}

/// The fixture script's `cnn()`, layer for layer.
fn cnn(dev: &Device) -> Result<Sequential> {
    use kiln::nn::{AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv2d, Conv2dOptions, Flatten, GroupNorm, MaxPool2d};
    let same = Conv2dOptions { padding: (1, 1), ..Default::default() };
    let grouped = Conv2dOptions { stride: (2, 1), padding: (1, 0), groups: 2, ..Default::default() };
    Ok(Sequential::new()
        .push(Conv2d::with_options(3, 8, (3, 3), same, true, dev)?)
        .push(BatchNorm2d::new(8, dev)?)
        .push(ReLU)
        .push(MaxPool2d::new((2, 2), (2, 2)))
        .push(Conv2d::with_options(8, 6, (3, 2), grouped, false, dev)?)
        .push(GroupNorm::new(3, 6, dev)?)
        .push(ReLU)
        .push(AvgPool2d::new((2, 2), (1, 1)).with_padding((1, 1)))
        .push(AdaptiveAvgPool2d::new((2, 1)))
        .push(Flatten::new())
        .push(Linear::new(12, 5, dev)?))
}

/// The fixture script's TransformerEncoderLayers (dropout 0): post-norm ReLU, pre-norm GELU.
fn encoder(dev: &Device, pre: bool) -> Result<kiln::nn::TransformerEncoderLayer> {
    use kiln::nn::{Activation, TransformerEncoderLayer, TransformerOptions};
    let o = TransformerOptions {
        dropout: 0.0,
        activation: if pre { Activation::Gelu } else { Activation::Relu },
        norm_first: pre,
        ..Default::default()
    };
    TransformerEncoderLayer::with_options(16, 4, if pre { 24 } else { 32 }, o, dev)
}

/// The fixture script's `CausalMha`.
#[derive(Module)]
struct CausalMha {
    attn: kiln::nn::MultiheadAttention,
}

/// The fixture script's `conv1d()`.
fn conv1d(dev: &Device) -> Result<Sequential> {
    use kiln::nn::{Conv1d, Conv1dOptions};
    let o = Conv1dOptions { stride: 2, padding: 2, dilation: 2, ..Default::default() };
    Ok(Sequential::new().push(Conv1d::with_options(2, 4, 3, o, true, dev)?).push(ReLU))
}

/// Loads fixture `name` into `model`, checks names/orders/dtypes against PyTorch's and the
/// eval-mode output, and returns the kiln output.
fn check_fixture(
    name: &str,
    model: &dyn Module,
    forward: &dyn Fn(&Tensor) -> Result<Tensor>,
    dev: &Device,
) -> Result<()> {
    let sd = load_safetensors(fixture(&format!("{name}.safetensors")), dev)?;
    let io = load_safetensors(fixture(&format!("{name}_io.safetensors")), dev)?;
    let report = model.load_state_dict(&sd, true)?;
    assert!(report.missing_keys.is_empty() && report.unexpected_keys.is_empty());
    for (n, b) in model.named_buffers() {
        if let Some(v) = io.get(&format!("buffer:{n}")) {
            b.set(v.clone())?;
        }
    }
    model.eval();
    assert!(!model.is_training());
    let y = no_grad(|| forward(io.get("input").unwrap()))?;
    let want = f64s(&io.get("output").unwrap().to_vec()?);
    assert_close(&y.to_vec()?, &want, 1e-5);
    // Names and orders are PyTorch's.
    let meta = io.metadata();
    let names: Vec<String> = model.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, json_list(&meta["named_parameters"]), "{name}: named_parameters");
    let ksd = model.state_dict();
    assert_eq!(ksd.keys(), json_list(&meta["state_dict_keys"]), "{name}: state_dict keys");
    let dtypes: Vec<String> = ksd
        .iter()
        .map(|(_, t)| match t.dtype() {
            DType::F32 => "torch.float32".to_string(),
            DType::I64 => "torch.int64".to_string(),
            DType::U32 => "torch.uint32".to_string(),
        })
        .collect();
    assert_eq!(dtypes, json_list(&meta["state_dict_dtypes"]), "{name}: dtypes");
    Ok(())
}

device_test!(pytorch_fixtures_load_and_match, |dev| {
    let s = seq(dev)?;
    check_fixture("seq", &s, &|x| s.forward(x), dev)?;
    let c = Custom::new(dev)?;
    check_fixture("custom", &c, &|x| c.forward(x), dev)?;
    assert_eq!(c.bn.num_batches_tracked.tensor().to_vec_i64()?, vec![3]);
    let t = Tied::new(dev)?;
    check_fixture("tied", &t, &|x| t.forward(x), dev)?;
    let c = cnn(dev)?;
    check_fixture("cnn", &c, &|x| c.forward(x), dev)?;
    assert_eq!(c.get_buffer("1.num_batches_tracked").unwrap().tensor().to_vec_i64()?, vec![2]);
    let c = conv1d(dev)?;
    check_fixture("conv1d", &c, &|x| c.forward(x), dev)?;
    for (name, pre) in [("encoder", false), ("encoder_pre", true)] {
        let e = encoder(dev, pre)?;
        check_fixture(name, &e, &|x| e.forward(x), dev)?;
    }
    let m = CausalMha { attn: kiln::nn::MultiheadAttention::new(16, 4, dev)? };
    check_fixture("mha", &m, &|x| m.attn.forward_with(x, x, x, None, true), dev)?;
});

device_test!(pytorch_cnn_training_gradients_match, |dev| {
    // PyTorch's CNN in training mode (batch statistics): the output and, for
    // loss = sum(output * weights), the gradients of the input and of every parameter.
    let c = cnn(dev)?;
    c.load_state_dict(&load_safetensors(fixture("cnn.safetensors"), dev)?, true)?;
    let io = load_safetensors(fixture("cnn_train_io.safetensors"), dev)?;
    let x = io.get("input").unwrap().set_requires_grad(true);
    let y = c.forward(&x)?;
    assert_close(&y.to_vec()?, &f64s(&io.get("output").unwrap().to_vec()?), 1e-4);
    y.mul(io.get("weights").unwrap())?.sum_all()?.backward()?;
    let mut grads = vec![("input".to_string(), x.grad().unwrap())];
    grads.extend(c.named_parameters().into_iter().map(|(n, p)| (n, p.grad().unwrap())));
    assert_eq!(grads.len(), 10);
    for (name, g) in grads {
        let want = io.get(&format!("grad:{name}")).unwrap_or_else(|| panic!("no gradient {name} in the fixture"));
        assert_eq!(g.shape(), want.shape(), "{name}");
        assert_close(&g.to_vec()?, &f64s(&want.to_vec()?), 1e-4);
    }
});

device_test!(half_and_double_files_convert_to_f32, |dev| {
    let base = load_safetensors(fixture("seq.safetensors"), dev)?;
    for (file, tol) in
        [("seq_float16.safetensors", 1e-3), ("seq_bfloat16.safetensors", 8e-3), ("seq_float64.safetensors", 1e-7)]
    {
        let sd = load_safetensors(fixture(file), dev)?;
        assert_eq!(sd.keys(), base.keys());
        for (k, t) in sd.iter() {
            assert_eq!(t.dtype(), DType::F32);
            assert_close(&t.to_vec()?, &f64s(&base.get(k).unwrap().to_vec()?), tol);
        }
        // And they load into the model.
        seq(dev)?.load_state_dict(&sd, true)?;
    }
});

#[test]
fn kiln_saves_pytorch_loadable_files() {
    let dev = Device::cpu();
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/kiln-fixtures");
    std::fs::create_dir_all(&out).unwrap();
    let models: Vec<(&str, Box<dyn Module>)> = vec![
        ("seq", Box::new(seq(&dev).unwrap())),
        ("custom", Box::new(Custom::new(&dev).unwrap())),
        ("tied", Box::new(Tied::new(&dev).unwrap())),
        ("cnn", Box::new(cnn(&dev).unwrap())),
        ("conv1d", Box::new(conv1d(&dev).unwrap())),
        ("encoder", Box::new(encoder(&dev, false).unwrap())),
        ("encoder_pre", Box::new(encoder(&dev, true).unwrap())),
        ("mha", Box::new(CausalMha { attn: kiln::nn::MultiheadAttention::new(16, 4, &dev).unwrap() })),
    ];
    for (name, m) in models {
        let torch = load_safetensors(fixture(&format!("{name}.safetensors")), &dev).unwrap();
        m.load_state_dict(&torch, true).unwrap();
        let path = out.join(format!("{name}.kiln.safetensors"));
        save_safetensors(&path, &m.state_dict()).unwrap();
        // Exactly PyTorch's keys, shapes, dtypes and values.
        let back = load_safetensors(&path, &dev).unwrap();
        let mut a = back.keys();
        let mut b = torch.keys();
        a.sort();
        b.sort();
        assert_eq!(a, b, "{name}");
        for (k, t) in torch.iter() {
            let kt = back.get(k).unwrap();
            assert_eq!((kt.shape(), kt.dtype()), (t.shape(), t.dtype()), "{name}: {k}");
            assert_eq!(kt.to_vec().unwrap(), t.to_vec().unwrap(), "{name}: {k}");
        }
        let leftovers: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }
}

device_test!(parameters_are_shared_handles, |dev| {
    let l = Linear::new(3, 2, dev)?;
    assert!(l.weight.requires_grad());
    assert_eq!(l.weight.shape(), vec![2, 3]);
    assert_eq!(l.bias.as_ref().unwrap().shape(), vec![2]);
    let x = Tensor::from_vec(data(3, 1), &[1, 3], dev)?;
    // An update through the handle from parameters() is what the model's forward sees.
    let handle = &l.parameters()[0];
    assert_eq!(handle.id(), l.weight.id());
    handle.set(Tensor::zeros(&[2, 3], dev)?)?;
    let y = l.forward(&x)?;
    assert_eq!(y.to_vec()?, l.bias.as_ref().unwrap().tensor().to_vec()?);
    assert!(matches!(handle.set(Tensor::zeros(&[3, 2], dev)?), Err(Error::ShapeMismatch { .. })));
    // Gradients land in the parameter, seen through every handle.
    let loss = l.forward(&x)?.sum_all()?;
    loss.backward()?;
    let g = handle.grad().unwrap().to_vec()?;
    assert_eq!(g, l.weight.grad().unwrap().to_vec()?);
    let xv = x.to_vec()?;
    assert_eq!(g, vec![xv[0], xv[1], xv[2], xv[0], xv[1], xv[2]]);
    l.zero_grad();
    assert!(l.weight.grad().is_none() && l.bias.as_ref().unwrap().grad().is_none());
    // Default init: U(-1/sqrt(in), 1/sqrt(in)).
    let big = Linear::new(400, 300, dev)?;
    let w = big.weight.tensor().to_vec()?;
    let bound = 1.0 / 20.0;
    assert!(w.iter().all(|v| v.abs() <= bound));
    let var = w.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / w.len() as f64;
    assert!((var - (bound as f64).powi(2) / 3.0).abs() < 2e-5, "{var}");
    assert!(Linear::no_bias(3, 2, dev)?.bias.is_none());
});

device_test!(freezing_and_counting, |dev| {
    let c = Custom::new(dev)?;
    let n = c.num_parameters();
    // 6*8+8 + 8+8 + 8 + 8*4+4 + 4*2+2
    assert_eq!(n, ParamCount { total: 126, trainable: 126, non_trainable: 0 });
    assert_eq!(c.freeze("encoder.").unwrap(), 2);
    let n = c.num_parameters();
    assert_eq!((n.total, n.trainable, n.non_trainable), (126, 70, 56));
    let x = Tensor::from_vec(data(30, 4), &[5, 6], dev)?;
    c.forward(&x)?.sum_all()?.backward()?;
    assert!(c.encoder.weight.grad().is_none(), "frozen parameters get no gradient");
    assert!(c.head.parameters()[0].grad().is_some());
    c.requires_grad_(false);
    assert_eq!(c.num_parameters().trainable, 0);
    c.unfreeze("").unwrap();
    assert_eq!(c.num_parameters().trainable, 126);
    // A prefix that matches nothing (a typo) is an error that lists the names, and changes nothing.
    let e = c.freeze("encodr.").unwrap_err().to_string();
    assert!(e.contains("freeze") && e.contains("\"encodr.\"") && e.contains("scale, encoder, bn, head"), "{e}");
    assert!(c.unfreeze("tail.").is_err());
    assert_eq!(c.num_parameters().trainable, 126);
    // Buffers are not parameters.
    let names: Vec<String> = c.named_buffers().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["offset", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"]);
    assert!(!c.named_parameters().iter().any(|(n, _)| n.contains("running")));
    // The non-persistent buffer is not saved.
    assert!(!c.state_dict().contains_key("offset"));
    let names: Vec<String> = c.named_modules().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["", "encoder", "bn", "head", "head.0", "head.1", "head.2"]);
    let kids = c.children();
    assert_eq!(kids.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["encoder", "bn", "head"]);
    assert_eq!(kids[2].1.parameters().len(), 4, "a child is a module like any other");
});

device_test!(tied_weights_appear_once_but_save_under_both_names, |dev| {
    let t = Tied::new(dev)?;
    let names: Vec<String> = t.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["a.weight", "a.bias", "b.bias"]);
    assert_eq!(t.num_parameters().total, 16 + 4 + 4);
    assert_eq!(t.state_dict().keys(), ["a.weight", "a.bias", "b.weight", "b.bias"]);
    t.a.weight.set(Tensor::ones(&[4, 4], dev)?)?;
    assert_eq!(t.b.weight.tensor().to_vec()?, vec![1.0; 16]);
});

device_test!(batchnorm_train_and_eval, |dev| {
    let bn = BatchNorm1d::new(3, dev)?;
    let xs: Vec<f32> = data(12, 5).iter().map(|v| v * 3.0 + 1.0).collect();
    let x = Tensor::from_vec(xs.clone(), &[4, 3], dev)?;
    assert!(bn.is_training());
    let y = bn.forward(&x)?;
    // f64 reference: per column, biased variance for normalising, unbiased for running_var.
    let mut want = vec![0.0; 12];
    let mut rm = vec![0.0; 3];
    let mut rv = vec![0.0; 3];
    for c in 0..3 {
        let col: Vec<f64> = (0..4).map(|r| xs[r * 3 + c] as f64).collect();
        let mean = col.iter().sum::<f64>() / 4.0;
        let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 4.0;
        for r in 0..4 {
            want[r * 3 + c] = (col[r] - mean) / (var + 1e-5).sqrt();
        }
        rm[c] = 0.1 * mean;
        rv[c] = 0.9 + 0.1 * var * 4.0 / 3.0;
    }
    assert_close(&y.to_vec()?, &want, 1e-5);
    assert_close(&bn.running_mean.tensor().to_vec()?, &rm, 1e-6);
    assert_close(&bn.running_var.tensor().to_vec()?, &rv, 1e-6);
    bn.forward(&x)?;
    assert_eq!(bn.num_batches_tracked.tensor().to_vec_i64()?, vec![2]);
    assert_eq!(bn.num_batches_tracked.dtype(), DType::I64);
    // Eval: running statistics.
    bn.eval();
    let ye = bn.forward(&x)?;
    let rm2 = f64s(&bn.running_mean.tensor().to_vec()?);
    let rv2 = f64s(&bn.running_var.tensor().to_vec()?);
    let we: Vec<f64> = (0..12).map(|i| (xs[i] as f64 - rm2[i % 3]) / (rv2[i % 3] + 1e-5).sqrt()).collect();
    assert_close(&ye.to_vec()?, &we, 1e-5);
    assert_eq!(bn.num_batches_tracked.tensor().to_vec_i64()?, vec![2], "eval does not count");
    // Gradients flow through the batch statistics.
    bn.train();
    let xg = x.set_requires_grad(true);
    bn.forward(&xg)?.mul(&xg)?.sum_all()?.backward()?;
    assert!(xg.grad().is_some() && bn.weight.grad().is_some());
    let e = bn.forward(&Tensor::ones(&[1, 3], dev)?).unwrap_err().to_string();
    assert!(e.starts_with("BatchNorm1d(3): training needs more than one value per channel"), "{e}");
    let e = bn.forward(&Tensor::ones(&[4, 5], dev)?).unwrap_err().to_string();
    assert_eq!(e, "BatchNorm1d(3): the input has shape [4, 5], expected [N, 3] or [N, 3, L]");
});

device_test!(load_state_dict_checks_everything_first, |dev| {
    let m = seq(dev)?;
    let before = m.state_dict().iter().map(|(k, t)| (k.to_string(), t.to_vec().unwrap())).collect::<Vec<_>>();
    let unchanged = |m: &Sequential| {
        for (k, v) in &before {
            assert_eq!(&m.state_dict().get(k).unwrap().to_vec().unwrap(), v, "{k} changed");
        }
    };
    // Missing and unexpected keys, all listed.
    let mut sd = load_safetensors(fixture("seq.safetensors"), dev)?;
    sd.remove("2.bias");
    sd.insert("extra.weight", Tensor::zeros(&[1], dev)?);
    match m.load_state_dict(&sd, true) {
        Err(Error::Keys { missing, unexpected }) => {
            assert_eq!(missing, ["2.bias"]);
            assert_eq!(unexpected, ["extra.weight"]);
        }
        other => panic!("expected a keys error, got {other:?}"),
    }
    unchanged(&m);
    let report = m.load_state_dict(&sd, false)?;
    assert_eq!(report.missing_keys, ["2.bias"]);
    assert_eq!(report.unexpected_keys, ["extra.weight"]);
    assert_eq!(m.state_dict().get("0.weight").unwrap().to_vec()?, sd.get("0.weight").unwrap().to_vec()?);
    // A shape mismatch names the key and both shapes; nothing changes.
    let m = seq(dev)?;
    let before2: Vec<f32> = m.state_dict().get("0.weight").unwrap().to_vec()?;
    let mut bad = load_safetensors(fixture("seq.safetensors"), dev)?;
    bad.insert("2.weight", Tensor::zeros(&[7, 3], dev)?);
    let e = m.load_state_dict(&bad, true).unwrap_err();
    assert!(
        matches!(&e, Error::KeyShape { key, expected, got, .. } if key == "2.weight" && expected == &[3, 7] && got == &[7, 3]),
        "{e}"
    );
    assert!(e.to_string().contains("2.weight"));
    assert_eq!(m.state_dict().get("0.weight").unwrap().to_vec()?, before2, "unchanged after the error");
    // A dtype mismatch (int64 where f32 is needed).
    let mut bad = load_safetensors(fixture("seq.safetensors"), dev)?;
    bad.insert("0.bias", Tensor::from_vec_i64(vec![0; 7], &[7], dev)?);
    assert!(matches!(m.load_state_dict(&bad, true), Err(Error::KeyDType { .. })));
});

device_test!(files_errors_name_the_path, |dev| {
    let dir = std::env::temp_dir().join(format!("kiln-io-test-{}-{}", std::process::id(), dev.is_gpu()));
    std::fs::create_dir_all(&dir).unwrap();
    let e = load_safetensors(dir.join("absent.safetensors"), dev).unwrap_err();
    assert!(matches!(e, Error::Io { .. }) && e.to_string().contains("absent.safetensors"), "{e}");
    let junk = dir.join("junk.safetensors");
    std::fs::write(&junk, b"definitely not safetensors").unwrap();
    let e = load_safetensors(&junk, dev).unwrap_err();
    assert!(e.to_string().contains("junk.safetensors"), "{e}");
    let e = save_safetensors(dir.join("no/such/dir/x.safetensors"), &seq(dev)?.state_dict()).unwrap_err();
    assert!(matches!(e, Error::Io { .. }) && e.to_string().contains("x.safetensors"), "{e}");
    // Saving over an existing file replaces it whole.
    let p = dir.join("m.safetensors");
    let m = seq(dev)?;
    save_safetensors(&p, &m.state_dict())?;
    save_safetensors(&p, &m.state_dict())?;
    assert_eq!(load_safetensors(&p, dev)?.len(), 4);
    std::fs::remove_dir_all(&dir).ok();
});

/// Derive features: Option and Vec fields, skipped fields, tuple structs, train/eval.
#[derive(Module)]
struct Deep {
    layers: Vec<Linear>,
    extra: Option<Parameter>,
    none: Option<Parameter>,
    #[module(skip)]
    label: String,
    mode: TrainMode,
    pair: Pair,
}

#[derive(Module)]
struct Pair(Parameter, Buffer);

device_test!(derive_handles_vec_option_skip_and_tuples, |dev| {
    let d = Deep {
        layers: vec![Linear::new(2, 2, dev)?, Linear::no_bias(2, 1, dev)?],
        extra: Some(Parameter::new(Tensor::ones(&[3], dev)?)),
        none: None,
        label: "x".into(),
        mode: TrainMode::new(),
        pair: Pair(Parameter::new(Tensor::ones(&[1], dev)?), Buffer::new(Tensor::zeros(&[2], dev)?)),
    };
    assert_eq!(d.label, "x");
    let names: Vec<String> = d.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["extra", "layers.0.weight", "layers.0.bias", "layers.1.weight", "pair.0"]);
    assert_eq!(
        d.state_dict().keys(),
        ["extra", "layers.0.weight", "layers.0.bias", "layers.1.weight", "pair.0", "pair.1"]
    );
    assert!(d.is_training());
    d.eval();
    assert!(!d.is_training() && !d.mode.get());
    // eval() reaches every descendant that has a training flag (a module with no flag in its
    // subtree, like Pair, has no mode to report and says true).
    let mut modes = Vec::new();
    d.apply(&mut |n, m| modes.push((n.to_string(), m.is_training())));
    assert_eq!(
        modes,
        [("", false), ("layers.0", false), ("layers.1", false), ("pair", true)].map(|(n, t)| (n.to_string(), t))
    );
    d.train();
    assert!(d.is_training());
});

#[test]
fn to_moves_everything_and_keeps_values_and_grads() {
    let Some(gpu) = gpu_device() else { return };
    let cpu = Device::cpu();
    let c = Custom::new(&cpu).unwrap();
    let x = Tensor::from_vec(data(30, 9), &[5, 6], &cpu).unwrap();
    c.forward(&x).unwrap().sum_all().unwrap().backward().unwrap();
    let values: Vec<Vec<f32>> = c.state_dict().iter().map(|(_, t)| t.to_vec().unwrap()).collect();
    let grads: Vec<Vec<f32>> = c.parameters().iter().map(|p| p.grad().unwrap().to_vec().unwrap()).collect();
    let handle = c.parameters()[1].clone();
    c.to(&gpu).unwrap();
    for p in c.parameters() {
        assert_eq!(p.device(), gpu);
        assert_eq!(p.grad().unwrap().device(), gpu);
    }
    for b in c.buffers() {
        assert_eq!(b.device(), gpu, "buffers move too, persistent or not");
    }
    assert_eq!(handle.device(), gpu, "every handle sees the move");
    // The forward runs on the GPU, with the same result.
    let y_gpu = c.forward(&x.to(&gpu).unwrap()).unwrap();
    c.to(&cpu).unwrap();
    let y_cpu = c.forward(&x).unwrap();
    assert_close(&y_gpu.to_vec().unwrap(), &f64s(&y_cpu.to_vec().unwrap()), 1e-5);
    let values2: Vec<Vec<f32>> = c.state_dict().iter().map(|(_, t)| t.to_vec().unwrap()).collect();
    // BatchNorm counted the two forwards above; everything else round-tripped exactly.
    for ((k, _), (a, b)) in c.state_dict().iter().zip(values.iter().zip(&values2)) {
        if !k.starts_with("bn.running") && !k.ends_with("num_batches_tracked") {
            assert_eq!(a, b, "{k}");
        }
    }
    let grads2: Vec<Vec<f32>> = c.parameters().iter().map(|p| p.grad().unwrap().to_vec().unwrap()).collect();
    assert_eq!(grads, grads2);
}

#[test]
fn a_failed_move_leaves_the_model_where_it_was() {
    let Some(gpu) = gpu_device() else { return };
    let limit = gpu.as_gpu().unwrap().limits().max_storage_buffer_binding_size;
    if limit > 512 << 20 {
        eprintln!("skipping: the adapter's binding limit ({limit} bytes) is too large to exceed cheaply");
        return;
    }
    let cpu = Device::cpu();
    #[derive(Module)]
    struct Big {
        fc: Linear,
        huge: Buffer,
    }
    let n = (limit / 4 + 1024) as usize;
    let m = Big { fc: Linear::new(3, 3, &cpu).unwrap(), huge: Buffer::new(Tensor::zeros(&[n], &cpu).unwrap()) };
    let e = m.to(&gpu).unwrap_err();
    assert!(e.to_string().contains("max_storage_buffer_binding_size"), "{e}");
    assert_eq!(m.fc.weight.device(), cpu);
    assert_eq!(m.huge.device(), cpu);
    m.fc.forward(&Tensor::ones(&[1, 3], &cpu).unwrap()).unwrap();
}

device_test!(parameters_buffers_and_layers_by_name, |dev| {
    let c = Custom::new(dev)?;
    // PyTorch's get_parameter / get_buffer: the same handles as the fields.
    let w = c.get_parameter("head.2.weight").unwrap();
    assert_eq!(w.shape(), vec![2, 4]);
    assert_eq!(w.id(), c.head.get_as::<Linear>(2).unwrap().weight.id());
    assert_eq!(c.get_parameter("scale").unwrap().id(), c.scale.id());
    assert!(c.get_parameter("head.1.weight").is_none() && c.get_parameter("encoder").is_none());
    assert_eq!(c.get_buffer("bn.running_var").unwrap().tensor().to_vec()?, vec![1.0; 8]);
    assert!(c.get_buffer("offset").is_some() && c.get_buffer("bn.weight").is_none());
    // Layers by dotted name, as trait objects or as their type (model.head[0] in PyTorch).
    assert_eq!(c.get_submodule("head").unwrap().named_parameters().len(), 4);
    assert!(c.get_submodule("").is_some() && c.get_submodule("head.5").is_none());
    let first = c.get_submodule_as::<Linear>("head.0").unwrap();
    assert_eq!(first.weight.shape(), vec![4, 8]);
    assert!(c.get_submodule_as::<ReLU>("head.1").is_some());
    assert!(c.get_submodule_as::<Linear>("head.1").is_none(), "a ReLU is not a Linear");
    assert!(c.get_submodule_as::<Sequential>("head").is_some());
    // A change through the handle is a change to the model.
    first.weight.set(Tensor::zeros(&[4, 8], dev)?)?;
    assert_eq!(c.get_parameter("head.0.weight").unwrap().tensor().to_vec()?, vec![0.0; 32]);
});

device_test!(activation_modules, |dev| {
    use kiln::nn::{GELU, Identity, LogSoftmax, Sigmoid, Softmax, Tanh};
    let xs = data(12, 3);
    let x = Tensor::from_vec(xs.clone(), &[3, 4], dev)?;
    let f64s_of = |f: &dyn Fn(f64) -> f64| xs.iter().map(|&v| f(v as f64)).collect::<Vec<f64>>();
    assert_close(&Tanh.forward(&x)?.to_vec()?, &f64s_of(&f64::tanh), 1e-6);
    assert_close(&Sigmoid.forward(&x)?.to_vec()?, &f64s_of(&|v| 1.0 / (1.0 + (-v).exp())), 1e-6);
    assert_eq!(Identity.forward(&x)?.to_vec()?, xs);
    let gelu = |v: f64| 0.5 * v * (1.0 + libm::erf(v / 2f64.sqrt()));
    assert_close(&GELU.forward(&x)?.to_vec()?, &f64s_of(&gelu), 1e-5);
    // Softmax over the last dim (-1) and the first (0): rows or columns sum to 1.
    let rows = Softmax::new(-1).forward(&x)?.to_vec()?;
    for r in 0..3 {
        let e: Vec<f64> = (0..4).map(|c| (xs[r * 4 + c] as f64).exp()).collect();
        let sum: f64 = e.iter().sum();
        assert_close(&rows[r * 4..r * 4 + 4], &e.iter().map(|v| v / sum).collect::<Vec<_>>(), 1e-6);
    }
    let cols = Softmax::new(0).forward(&x)?.sum(0, false)?.to_vec()?;
    assert_close(&cols, &[1.0; 4], 1e-6);
    let logp = LogSoftmax::new(1).forward(&x)?.exp()?.sum(1, false)?.to_vec()?;
    assert_close(&logp, &[1.0; 3], 1e-6);
    // A dim the input does not have is an error at forward, naming the op.
    assert!(Softmax::new(2).forward(&x).unwrap_err().to_string().contains("softmax"));
    // In a Sequential, with no parameters to register.
    let seq = Sequential::new().push(Tanh).push(Identity).push(Softmax::new(-1));
    assert_eq!(seq.num_parameters().total, 0);
    assert_close(&seq.forward(&x)?.sum(-1, false)?.to_vec()?, &[1.0; 3], 1e-6);
});

device_test!(layers_name_themselves_in_errors, |dev| {
    let fc = Linear::new(10, 2, dev)?;
    let e = fc.forward(&Tensor::ones(&[3, 4], dev)?).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Linear(in_features=10, out_features=2): the input (shape [3, 4]) has 4 features in its last dim, expected 10"
    );
    // Through a Sequential (nested too), the error says where the layer sits.
    let inner = Sequential::new().push(ReLU).push(Linear::new(5, 3, dev)?);
    let m = Sequential::new().push(Linear::new(4, 6, dev)?).push(inner);
    let e = m.forward(&Tensor::ones(&[2, 4], dev)?).unwrap_err();
    assert!(matches!(&e, Error::Layer { path, .. } if path == "1.1"), "{e:?}");
    assert_eq!(
        e.to_string(),
        "Linear(in_features=5, out_features=3) at \"1.1\": the input (shape [2, 6]) has 6 features in its last dim, expected 5"
    );
    // Other errors pass through a Sequential unchanged.
    let e = Sequential::new().push(Linear::new(4, 2, dev)?).forward(&Tensor::ones(&[], dev)?).unwrap_err();
    assert!(e.to_string().contains("no dims"), "{e}");
    let emb = kiln::nn::Embedding::new(5, 3, dev)?;
    let e = emb.forward(&Tensor::from_labels(&[1, 7], dev)?).unwrap_err().to_string();
    assert!(e.starts_with("Embedding(5, 3): ") && e.contains("label 7 is out of range for 5 classes"), "{e}");
});
