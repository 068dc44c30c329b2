//! RNN, LSTM and GRU (multi-layer, bidirectional, with and without biases) and their cells on
//! both devices against a float64 reference written here from PyTorch's equations: outputs,
//! final states, and the gradients of the input, the initial states and every parameter
//! (against central differences of the reference). Names follow PyTorch's state_dict.

use kiln::nn::{GRU, GRUCell, LSTM, LSTMCell, Nonlinearity, RNN, RNNCell, RnnOptions};
use kiln::{Module, Tensor};
use kiln_tests::{assert_close, check_gradients, data, device_test, f64s, fixture, json_list, tensor};

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Rnn(bool), // relu?
    Lstm,
    Gru,
}

impl Kind {
    fn gates(self) -> usize {
        match self {
            Kind::Rnn(_) => 1,
            Kind::Lstm => 4,
            Kind::Gru => 3,
        }
    }
}

fn sig(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// W x (+ b) for W [rows, cols] row-major.
fn affine(w: &[f64], x: &[f64], b: Option<&[f64]>) -> Vec<f64> {
    let cols = x.len();
    (0..w.len() / cols)
        .map(|r| (0..cols).map(|c| w[r * cols + c] * x[c]).sum::<f64>() + b.map_or(0.0, |b| b[r]))
        .collect()
}

/// One step in f64: (h', c') from x, h, c with the weights [w_ih, w_hh, (b_ih, b_hh)].
fn cell(kind: Kind, w: &[&[f64]], x: &[f64], h: &[f64], c: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let hid = h.len();
    let (bi, bh) = if w.len() == 4 { (Some(w[2]), Some(w[3])) } else { (None, None) };
    let xp = affine(w[0], x, bi);
    let hp = affine(w[1], h, bh);
    match kind {
        Kind::Rnn(relu) => {
            let v = (0..hid).map(|j| xp[j] + hp[j]);
            (if relu { v.map(|a| a.max(0.0)).collect() } else { v.map(f64::tanh).collect() }, vec![])
        }
        Kind::Lstm => {
            let g = |k: usize, j: usize| xp[k * hid + j] + hp[k * hid + j];
            let c1: Vec<f64> = (0..hid).map(|j| sig(g(1, j)) * c[j] + sig(g(0, j)) * g(2, j).tanh()).collect();
            ((0..hid).map(|j| sig(g(3, j)) * c1[j].tanh()).collect(), c1)
        }
        Kind::Gru => {
            let r = |j: usize| sig(xp[j] + hp[j]);
            let z = |j: usize| sig(xp[hid + j] + hp[hid + j]);
            let n = |j: usize| (xp[2 * hid + j] + r(j) * hp[2 * hid + j]).tanh();
            ((0..hid).map(|j| (1.0 - z(j)) * n(j) + z(j) * h[j]).collect(), vec![])
        }
    }
}

struct Cfg {
    kind: Kind,
    b: usize,
    t: usize,
    input: usize,
    hidden: usize,
    layers: usize,
    dirs: usize,
    bias: bool,
}

/// The stack in f64: y [B, T, D*H], h_n and c_n [D*L, B, H] from x, h0, c0 and the parameters
/// in state_dict order.
fn stack(c: &Cfg, x: &[f64], h0: &[f64], c0: &[f64], params: &[Vec<f64>]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let per = if c.bias { 4 } else { 2 };
    let hid = c.hidden;
    let mut input = x.to_vec();
    let mut width = c.input;
    let (mut hn, mut cn) = (vec![0.0; c.dirs * c.layers * c.b * hid], vec![0.0; c.dirs * c.layers * c.b * hid]);
    for l in 0..c.layers {
        let mut out = vec![0.0; c.b * c.t * c.dirs * hid];
        for d in 0..c.dirs {
            let i = l * c.dirs + d;
            let w: Vec<&[f64]> = params[i * per..(i + 1) * per].iter().map(|v| v.as_slice()).collect();
            for bi in 0..c.b {
                let off = (i * c.b + bi) * hid;
                let (mut h, mut cc) = (h0[off..off + hid].to_vec(), c0[off..off + hid].to_vec());
                let steps: Vec<usize> = if d == 0 { (0..c.t).collect() } else { (0..c.t).rev().collect() };
                for s in steps {
                    let xs = &input[(bi * c.t + s) * width..(bi * c.t + s + 1) * width];
                    let (h1, c1) = cell(c.kind, &w, xs, &h, &cc);
                    h = h1;
                    if c.kind == Kind::Lstm {
                        cc = c1;
                    }
                    let o = (bi * c.t + s) * c.dirs * hid + d * hid;
                    out[o..o + hid].copy_from_slice(&h);
                }
                hn[off..off + hid].copy_from_slice(&h);
                cn[off..off + hid].copy_from_slice(&cc);
            }
        }
        input = out;
        width = c.dirs * hid;
    }
    (input, hn, cn)
}

enum Layer {
    R(RNN),
    G(GRU),
    L(LSTM),
}

impl Layer {
    /// The layer of `c` on `dev`.
    fn new(c: &Cfg, dev: &kiln::Device) -> kiln::Result<Layer> {
        let opts = RnnOptions {
            num_layers: c.layers,
            bias: c.bias,
            bidirectional: c.dirs == 2,
            nonlinearity: if c.kind == Kind::Rnn(true) { Nonlinearity::Relu } else { Nonlinearity::Tanh },
            ..RnnOptions::default()
        };
        Ok(match c.kind {
            Kind::Rnn(_) => Layer::R(RNN::with_options(c.input, c.hidden, opts, dev)?),
            Kind::Gru => Layer::G(GRU::with_options(c.input, c.hidden, opts, dev)?),
            Kind::Lstm => Layer::L(LSTM::with_options(c.input, c.hidden, opts, dev)?),
        })
    }

    fn module(&self) -> &dyn Module {
        match self {
            Layer::R(m) => m,
            Layer::G(m) => m,
            Layer::L(m) => m,
        }
    }

    /// (output, h_n, c_n) from x, h0 and (LSTM) c0.
    fn run(&self, x: &Tensor, h0: &Tensor, c0: &Tensor) -> kiln::Result<(Tensor, Tensor, Option<Tensor>)> {
        Ok(match self {
            Layer::R(m) => {
                let (y, h) = m.forward_with_state(x, Some(h0))?;
                (y, h, None)
            }
            Layer::G(m) => {
                let (y, h) = m.forward_with_state(x, Some(h0))?;
                (y, h, None)
            }
            Layer::L(m) => {
                let (y, (h, c)) = m.forward_with_state(x, Some((h0, c0)))?;
                (y, h, Some(c))
            }
        })
    }
}

/// Runs the layer of `c` on `dev` and checks outputs, states and gradients against f64.
fn check(dev: &kiln::Device, c: &Cfg) -> kiln::Result<()> {
    let layer = Layer::new(c, dev)?;
    let module = layer.module();
    // PyTorch's names and order, and its init bound.
    let names: Vec<String> = module.named_parameters().into_iter().map(|(n, _)| n).collect();
    let mut want = Vec::new();
    for l in 0..c.layers {
        for sfx in ["", "_reverse"].iter().take(c.dirs) {
            for w in ["weight_ih", "weight_hh", "bias_ih", "bias_hh"].iter().take(if c.bias { 4 } else { 2 }) {
                want.push(format!("{w}_l{l}{sfx}"));
            }
        }
    }
    assert_eq!(names, want);
    let params: Vec<Tensor> = module.parameters().iter().map(|p| p.tensor()).collect();
    let bound = 1.0 / (c.hidden as f32).sqrt();
    for p in &params {
        assert!(p.to_vec()?.iter().all(|v| v.abs() <= bound));
        assert_eq!(p.shape()[0], c.kind.gates() * c.hidden);
    }
    let states = [c.dirs * c.layers, c.b, c.hidden];
    let x = tensor(&[c.b, c.t, c.input], 1, dev, true);
    let h0 = tensor(&states, 2, dev, true);
    let c0 = tensor(&states, 3, dev, true);
    let n_y = c.b * c.t * c.dirs * c.hidden;
    let n_s = states.iter().product::<usize>();
    let (wy, wh, wc) = (f64s(&data(n_y, 4)), f64s(&data(n_s, 5)), f64s(&data(n_s, 6)));
    let run = |ins: &[Tensor]| layer.run(&ins[0], &ins[1], &ins[2]);
    let mut inputs = vec![x, h0, c0];
    inputs.extend(params);
    let vals: Vec<Vec<f64>> = inputs.iter().map(|t| f64s(&t.to_vec().unwrap())).collect();
    let (y, hn, cn) = run(&inputs)?;
    let (ry, rh, rc) = stack(c, &vals[0], &vals[1], &vals[2], &vals[3..]);
    assert_eq!(y.shape(), &[c.b, c.t, c.dirs * c.hidden][..]);
    assert_eq!(hn.shape(), &states[..]);
    assert_close(&y.to_vec()?, &ry, 1e-5);
    assert_close(&hn.to_vec()?, &rh, 1e-5);
    if let Some(cn) = &cn {
        assert_close(&cn.to_vec()?, &rc, 1e-5);
    }
    // Gradients of sum(y wy) + sum(h_n wh) (+ sum(c_n wc)) for x, h0, c0 (LSTM) and every
    // parameter, against central differences of the f64 reference.
    let lstm_kind = c.kind == Kind::Lstm;
    let mut grads_of: Vec<Tensor> = inputs.clone();
    if !lstm_kind {
        grads_of.remove(2);
    }
    let weights = |v: &[f64], w: &[f64]| v.iter().zip(w).map(|(a, b)| a * b).sum::<f64>();
    check_gradients(
        &grads_of,
        |ins| {
            let mut all = ins.to_vec();
            if !lstm_kind {
                all.insert(2, inputs[2].clone());
            }
            let (y, h, cc) = run(&all)?;
            let wt = |n: usize, s: u64, t: &Tensor| Tensor::from_vec(data(n, s), t.shape(), &t.device());
            let mut loss = y.mul(&wt(n_y, 4, &y)?)?.sum_all()?.add(&h.mul(&wt(n_s, 5, &h)?)?.sum_all()?)?;
            if let Some(cc) = cc {
                loss = loss.add(&cc.mul(&wt(n_s, 6, &cc)?)?.sum_all()?)?;
            }
            Ok(loss)
        },
        |v| {
            let mut all = v.to_vec();
            if !lstm_kind {
                all.insert(2, vals[2].clone());
            }
            let (y, h, cc) = stack(c, &all[0], &all[1], &all[2], &all[3..]);
            weights(&y, &wy) + weights(&h, &wh) + if lstm_kind { weights(&cc, &wc) } else { 0.0 }
        },
        2e-3,
    );
    Ok(())
}

device_test!(recurrent_layers_match_f64_forward_and_backward, |dev| {
    let cfg = |kind, layers, dirs, bias| Cfg { kind, b: 2, t: 3, input: 3, hidden: 4, layers, dirs, bias };
    for c in [
        cfg(Kind::Lstm, 1, 1, true),
        cfg(Kind::Lstm, 2, 2, true),
        cfg(Kind::Gru, 2, 2, true),
        cfg(Kind::Gru, 1, 1, false),
        cfg(Kind::Rnn(false), 2, 1, true),
        cfg(Kind::Rnn(true), 1, 2, false),
    ] {
        check(dev, &c)?;
    }
});

device_test!(cells_match_f64_and_their_layers, |dev| {
    let (b, input, hid) = (3, 5, 4);
    let x = tensor(&[b, input], 7, dev, false);
    let h = tensor(&[b, hid], 8, dev, false);
    let cc = tensor(&[b, hid], 9, dev, false);
    let (xv, hv, cv) = (f64s(&x.to_vec()?), f64s(&h.to_vec()?), f64s(&cc.to_vec()?));
    let rows = |v: &[f64], i: usize, n: usize| v[i * n..(i + 1) * n].to_vec();
    let expect = |m: &dyn Module, kind: Kind| -> (Vec<f64>, Vec<f64>) {
        let names: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]);
        let ws: Vec<Vec<f64>> = m.parameters().iter().map(|p| f64s(&p.tensor().to_vec().unwrap())).collect();
        let w: Vec<&[f64]> = ws.iter().map(|v| v.as_slice()).collect();
        let (mut hs, mut cs) = (Vec::new(), Vec::new());
        for i in 0..b {
            let (h1, c1) = cell(kind, &w, &rows(&xv, i, input), &rows(&hv, i, hid), &rows(&cv, i, hid));
            hs.extend(h1);
            cs.extend(c1);
        }
        (hs, cs)
    };
    let lstm = LSTMCell::new(input, hid, dev)?;
    let (h1, c1) = lstm.forward_with_state(&x, Some((&h, &cc)))?;
    let (wh, wc) = expect(&lstm, Kind::Lstm);
    assert_close(&h1.to_vec()?, &wh, 1e-5);
    assert_close(&c1.to_vec()?, &wc, 1e-5);
    let gru = GRUCell::new(input, hid, dev)?;
    assert_close(&gru.forward_with_state(&x, Some(&h))?.to_vec()?, &expect(&gru, Kind::Gru).0, 1e-5);
    let rnn = RNNCell::new(input, hid, dev)?;
    assert_close(&rnn.forward_with_state(&x, Some(&h))?.to_vec()?, &expect(&rnn, Kind::Rnn(false)).0, 1e-5);
    // No state: zeros.
    let zero = Tensor::zeros(&[b, hid], dev)?;
    assert_close(
        &gru.forward_with_state(&x, None)?.to_vec()?,
        &f64s(&gru.forward_with_state(&x, Some(&zero))?.to_vec()?),
        0.0,
    );
});

/// A batch past the kernels' tiles with a hidden size that is a multiple of 4, so the GPU's
/// vectorised matmul reads the previous state at an offset inside the state buffer: outputs
/// against f64 on both devices, and the GPU's gradients against the CPU's (which the small
/// cases above check against central differences) for the same weights and inputs.
#[test]
fn wide_batches_match_f64_and_the_cpu() -> kiln::Result<()> {
    let Some(gpu) = kiln_tests::gpu_device() else { return Ok(()) };
    let cpu = kiln::Device::cpu();
    for (kind, layers, dirs) in [(Kind::Lstm, 2, 2), (Kind::Gru, 1, 2), (Kind::Rnn(false), 2, 1)] {
        let c = Cfg { kind, b: 33, t: 5, input: 7, hidden: 12, layers, dirs, bias: true };
        let layer = Layer::new(&c, &cpu)?;
        let states = [c.dirs * c.layers, c.b, c.hidden];
        let cpu_in = [
            tensor(&[c.b, c.t, c.input], 11, &cpu, true),
            tensor(&states, 12, &cpu, true),
            tensor(&states, 13, &cpu, true),
        ];
        let vals: Vec<Vec<f64>> = cpu_in.iter().map(|t| f64s(&t.to_vec().unwrap())).collect();
        let params: Vec<Vec<f64>> =
            layer.module().parameters().iter().map(|p| f64s(&p.tensor().to_vec().unwrap())).collect();
        let (ry, rh, rc) = stack(&c, &vals[0], &vals[1], &vals[2], &params);
        // Forward and backward of sum(y wy) + sum(h wh) (+ sum(c wc)) on one device; returns
        // the outputs and the gradients of the inputs and the parameters.
        let pass = |ins: &[Tensor]| -> kiln::Result<Vec<Vec<f32>>> {
            let (y, h, cc) = layer.run(&ins[0], &ins[1], &ins[2])?;
            assert_close(&y.to_vec()?, &ry, 1e-5);
            assert_close(&h.to_vec()?, &rh, 1e-5);
            let wt = |s: u64, t: &Tensor| Tensor::from_vec(data(t.numel(), s), t.shape(), &t.device());
            let mut loss = y.mul(&wt(14, &y)?)?.sum_all()?.add(&h.mul(&wt(15, &h)?)?.sum_all()?)?;
            if let Some(cc) = cc {
                assert_close(&cc.to_vec()?, &rc, 1e-5);
                loss = loss.add(&cc.mul(&wt(16, &cc)?)?.sum_all()?)?;
            }
            loss.backward()?;
            let mut grads: Vec<Tensor> = ins
                .iter()
                .take(if kind == Kind::Lstm { 3 } else { 2 })
                .map(|t| t.grad().expect("an input gradient"))
                .collect();
            grads.extend(layer.module().parameters().iter().map(|p| p.grad().expect("a parameter gradient")));
            grads.iter().map(|g| g.to_vec()).collect()
        };
        let on_cpu = pass(&cpu_in)?;
        layer.module().zero_grad();
        layer.module().to(&gpu)?;
        let gpu_in: Vec<Tensor> = cpu_in
            .iter()
            .map(|t| t.detach().to(&gpu).map(|t| t.set_requires_grad(true)))
            .collect::<kiln::Result<_>>()?;
        let on_gpu = pass(&gpu_in)?;
        assert_eq!(on_cpu.len(), on_gpu.len());
        for (g, want) in on_gpu.iter().zip(&on_cpu) {
            assert_close(g, &f64s(want), 1e-4);
        }
    }
    Ok(())
}

device_test!(recurrent_layers_refuse_bad_input, |dev| {
    let lstm = LSTM::with_options(3, 4, RnnOptions { num_layers: 2, ..RnnOptions::default() }, dev)?;
    let msg = |r: kiln::Result<(Tensor, (Tensor, Tensor))>| r.expect_err("an error").to_string();
    // Wrong rank, wrong features, zero-length sequence, a state of the wrong shape.
    for (x, why) in [
        (Tensor::zeros(&[2, 3], dev)?, "[2, 3]"),
        (Tensor::zeros(&[2, 5, 4], dev)?, "[2, 5, 4]"),
        (Tensor::zeros(&[2, 0, 3], dev)?, "[2, 0, 3]"),
    ] {
        let m = msg(lstm.forward_with_state(&x, None));
        assert!(m.contains("LSTM(3, 4, num_layers=2)") && m.contains(why), "{m}");
    }
    let x = Tensor::zeros(&[2, 5, 3], dev)?;
    let bad = Tensor::zeros(&[1, 2, 4], dev)?;
    let m = msg(lstm.forward_with_state(&x, Some((&bad, &bad))));
    assert!(m.contains("[2, 2, 4]") && m.contains("[1, 2, 4]"), "{m}");
    assert!(GRU::with_options(3, 0, RnnOptions::default(), dev).is_err());
    assert!(RNN::with_options(3, 4, RnnOptions { dropout: 1.5, ..RnnOptions::default() }, dev).is_err());
    let cell = LSTMCell::new(3, 4, dev)?;
    let m = cell.forward_with_state(&Tensor::zeros(&[2, 4], dev)?, None).expect_err("an error").to_string();
    assert!(m.contains("LSTMCell(3, 4)") && m.contains("[2, 4]"), "{m}");
});

/// A fixture model of tests/fixtures/make_rnn_fixtures.py.
enum Fixture {
    Layer(Layer),
    Lc(LSTMCell),
    Gc(GRUCell),
    Rc(RNNCell),
}

impl Fixture {
    /// The script's `models()`, one for one.
    fn new(name: &str, dev: &kiln::Device) -> kiln::Result<Fixture> {
        let o = RnnOptions::default();
        Ok(match name {
            "lstm" => Fixture::Layer(Layer::L(LSTM::with_options(
                5,
                6,
                RnnOptions { num_layers: 2, bidirectional: true, ..o },
                dev,
            )?)),
            "gru" => Fixture::Layer(Layer::G(GRU::with_options(4, 5, RnnOptions { num_layers: 2, ..o }, dev)?)),
            "rnn" => Fixture::Layer(Layer::R(RNN::with_options(
                3,
                4,
                RnnOptions { nonlinearity: Nonlinearity::Relu, bias: false, bidirectional: true, ..o },
                dev,
            )?)),
            "lstm_cell" => Fixture::Lc(LSTMCell::new(4, 5, dev)?),
            "gru_cell" => Fixture::Gc(GRUCell::new(4, 5, dev)?),
            _ => Fixture::Rc(RNNCell::new(4, 5, dev)?),
        })
    }

    fn module(&self) -> &dyn Module {
        match self {
            Fixture::Layer(l) => l.module(),
            Fixture::Lc(m) => m,
            Fixture::Gc(m) => m,
            Fixture::Rc(m) => m,
        }
    }

    /// (output, h_n, c_n): a cell's output is its new hidden state.
    fn run(&self, x: &Tensor, h0: &Tensor, c0: Option<&Tensor>) -> kiln::Result<(Tensor, Tensor, Option<Tensor>)> {
        Ok(match self {
            Fixture::Layer(l) => l.run(x, h0, c0.unwrap_or(h0))?,
            Fixture::Lc(m) => {
                let (h, c) = m.forward_with_state(x, Some((h0, c0.expect("c0"))))?;
                (h.clone(), h, Some(c))
            }
            Fixture::Gc(m) => {
                let h = m.forward_with_state(x, Some(h0))?;
                (h.clone(), h, None)
            }
            Fixture::Rc(m) => {
                let h = m.forward_with_state(x, Some(h0))?;
                (h.clone(), h, None)
            }
        })
    }
}

const FIXTURES: [&str; 6] = ["lstm", "gru", "rnn", "lstm_cell", "gru_cell", "rnn_cell"];

device_test!(pytorch_recurrent_fixtures_load_and_match_forward_and_backward, |dev| {
    use kiln::io::load_safetensors;
    for name in FIXTURES {
        let m = Fixture::new(name, dev)?;
        let sd = load_safetensors(fixture(&format!("rnn_{name}.safetensors")), dev)?;
        let io = load_safetensors(fixture(&format!("rnn_{name}_io.safetensors")), dev)?;
        let report = m.module().load_state_dict(&sd, true)?;
        assert!(report.missing_keys.is_empty() && report.unexpected_keys.is_empty(), "{name}");
        let names: Vec<String> = m.module().named_parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, json_list(&io.metadata()["named_parameters"]), "{name}");
        let get = |k: &str| io.get(k).unwrap_or_else(|| panic!("{name}: no {k}")).clone();
        let want = |k: &str| f64s(&get(k).to_vec().unwrap());
        let x = get("input").set_requires_grad(true);
        let h0 = get("h0").set_requires_grad(true);
        let c0 = io.get("c0").map(|c| c.set_requires_grad(true));
        let (y, h, c) = m.run(&x, &h0, c0.as_ref())?;
        assert_close(&y.to_vec()?, &want("output"), 1e-5);
        assert_close(&h.to_vec()?, &want("h_n"), 1e-5);
        let mut loss = y.mul(&get("w_output"))?.sum_all()?;
        if let Some(w) = io.get("w_h") {
            loss = loss.add(&h.mul(w)?.sum_all()?)?;
        }
        if let Some(c) = &c {
            assert_close(&c.to_vec()?, &want("c_n"), 1e-5);
            loss = loss.add(&c.mul(&get("w_c"))?.sum_all()?)?;
        }
        loss.backward()?;
        assert_close(&x.grad().expect("grad of input").to_vec()?, &want("grad:input"), 1e-4);
        assert_close(&h0.grad().expect("grad of h0").to_vec()?, &want("grad:h0"), 1e-4);
        if let Some(c0) = &c0 {
            assert_close(&c0.grad().expect("grad of c0").to_vec()?, &want("grad:c0"), 1e-4);
        }
        for (n, p) in m.module().named_parameters() {
            let g = p.grad().unwrap_or_else(|| panic!("{name}: no gradient for {n}"));
            assert_close(&g.to_vec()?, &want(&format!("grad:{n}")), 1e-4);
        }
    }
});

/// Writes kiln-initialised state_dicts and kiln's outputs on the fixtures' inputs for
/// `make_rnn_fixtures.py --check`; checks here that they hold PyTorch's keys and shapes.
#[test]
fn kiln_recurrent_files_load_into_pytorch() {
    use kiln::io::{load_safetensors, save_safetensors};
    let dev = kiln::Device::cpu();
    let out = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/kiln-fixtures");
    std::fs::create_dir_all(&out).unwrap();
    for name in FIXTURES {
        let m = Fixture::new(name, &dev).unwrap();
        let torch = load_safetensors(fixture(&format!("rnn_{name}.safetensors")), &dev).unwrap();
        let sd = m.module().state_dict();
        let (mut a, mut b) = (sd.keys(), torch.keys());
        a.sort();
        b.sort();
        assert_eq!(a, b, "{name}");
        for (k, t) in torch.iter() {
            assert_eq!(sd.get(k).unwrap().shape(), t.shape(), "{name}: {k}");
        }
        save_safetensors(out.join(format!("rnn_{name}.kiln.safetensors")), &sd).unwrap();
        let io = load_safetensors(fixture(&format!("rnn_{name}_io.safetensors")), &dev).unwrap();
        let (y, h, c) = m.run(io.get("input").unwrap(), io.get("h0").unwrap(), io.get("c0")).unwrap();
        let mut kio = kiln::StateDict::new();
        for k in ["input", "h0", "c0"] {
            if let Some(t) = io.get(k) {
                kio.insert(k, t.clone());
            }
        }
        kio.insert("output", y);
        kio.insert("h_n", h);
        if let Some(c) = c {
            kio.insert("c_n", c);
        }
        save_safetensors(out.join(format!("rnn_{name}.kiln_io.safetensors")), &kio).unwrap();
    }
}
