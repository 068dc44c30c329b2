//! Recurrent layers with PyTorch's names, gate order and init: `RNN` (tanh or relu), `LSTM`
//! (gates i, f, g, o), `GRU` (gates r, z, n, with `b_hn` inside the reset product), multi-layer,
//! bidirectional, dropout between layers in training mode, batch-first input [B, T, input].
//! Parameters `weight_ih_l{k}` [G*H, in], `weight_hh_l{k}` [G*H, H], `bias_ih_l{k}`,
//! `bias_hh_l{k}` [G*H] (`_reverse` for the backward direction), all U(-1/sqrt(H), 1/sqrt(H)).
//!
//! Each layer and direction projects its whole input sequence in one matmul (x W_ih^T + b_ih
//! for every step), then runs the time loop as one autograd node (`Tensor::recurrence`): per
//! step one matmul (h W_hh^T) and one pass of the gate arithmetic, forward and backward; the
//! hidden weights' gradients are one product over all steps. Gradients reach the inputs, the
//! initial states and every parameter. The cells (`LSTMCell`, `GRUCell`, `RNNCell`) are the
//! same loop over one step.

use kiln_core::kiln_device::kernels::CellKind;
use kiln_core::module::{Entry, VisitFn};
use kiln_core::{Device, Error, Module, Parameter, Result, Tensor, TrainMode};

use crate::Forward;
use crate::init;

/// The activation of [`RNN`] and [`RNNCell`] (PyTorch's `nonlinearity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Nonlinearity {
    /// tanh (the default).
    #[default]
    Tanh,
    /// ReLU.
    Relu,
}

/// The options of [`RNN`], [`LSTM`] and [`GRU`] (PyTorch's constructor arguments; batch-first
/// always). `nonlinearity` applies to [`RNN`] only.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RnnOptions {
    /// Stacked layers (1).
    pub num_layers: usize,
    /// Whether the layers have `bias_ih` and `bias_hh` (true).
    pub bias: bool,
    /// A second direction per layer, over the reversed sequence (false).
    pub bidirectional: bool,
    /// Dropout on each layer's output but the last, in training mode (0).
    pub dropout: f32,
    /// [`RNN`]'s activation (tanh).
    pub nonlinearity: Nonlinearity,
}

impl Default for RnnOptions {
    fn default() -> RnnOptions {
        RnnOptions { num_layers: 1, bias: true, bidirectional: false, dropout: 0.0, nonlinearity: Nonlinearity::Tanh }
    }
}

/// Which recurrence: the cell arithmetic and the number of gates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Rnn(Nonlinearity),
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

    fn name(self) -> &'static str {
        match self {
            Kind::Rnn(_) => "RNN",
            Kind::Lstm => "LSTM",
            Kind::Gru => "GRU",
        }
    }
}

/// The weights of one layer and direction, or of a cell.
#[derive(Debug, Clone)]
pub(crate) struct Weights {
    pub(crate) w_ih: Parameter,
    pub(crate) w_hh: Parameter,
    pub(crate) b_ih: Option<Parameter>,
    pub(crate) b_hh: Option<Parameter>,
}

impl Weights {
    /// PyTorch's init: every tensor U(-1/sqrt(H), 1/sqrt(H)).
    pub(crate) fn new(kind: Kind, input: usize, hidden: usize, bias: bool, dev: &Device) -> Result<Weights> {
        let g = kind.gates() * hidden;
        let bound = 1.0 / (hidden as f32).sqrt();
        let make = |shape: &[usize]| -> Result<Parameter> {
            let p = Parameter::new(Tensor::zeros(shape, dev)?);
            init::uniform_(&p, -bound, bound)?;
            Ok(p)
        };
        let (b_ih, b_hh) = if bias { (Some(make(&[g])?), Some(make(&[g])?)) } else { (None, None) };
        Ok(Weights { w_ih: make(&[g, input])?, w_hh: make(&[g, hidden])?, b_ih, b_hh })
    }

    /// Reports the four tensors as `weight_ih{sfx}`, `weight_hh{sfx}`, `bias_ih{sfx}`,
    /// `bias_hh{sfx}` (PyTorch's order).
    pub(crate) fn visit<'a>(&'a self, sfx: &str, f: &mut VisitFn<'_, 'a>) {
        f(&format!("weight_ih{sfx}"), Entry::Param(&self.w_ih));
        f(&format!("weight_hh{sfx}"), Entry::Param(&self.w_hh));
        if let Some(b) = &self.b_ih {
            f(&format!("bias_ih{sfx}"), Entry::Param(b));
        }
        if let Some(b) = &self.b_hh {
            f(&format!("bias_hh{sfx}"), Entry::Param(b));
        }
    }

    /// x W_ih^T + b_ih for x [.., in].
    pub(crate) fn project(&self, x: &Tensor) -> Result<Tensor> {
        Tensor::linear(x, &self.w_ih.tensor(), self.b_ih.as_ref().map(|b| b.tensor()).as_ref())
    }

    /// The time loop over the projections `xp` [B, T, G*H] from `h0` (and `c0` for an LSTM)
    /// [B, H], walked from the end when `reverse`: the outputs [B, T, H] and the final h (and c)
    /// [B, H]. One autograd node (`Tensor::recurrence`): per step a matmul and one kernel.
    pub(crate) fn run(
        &self,
        kind: Kind,
        xp: &Tensor,
        h0: &Tensor,
        c0: Option<&Tensor>,
        reverse: bool,
    ) -> Result<(Tensor, Tensor, Option<Tensor>)> {
        let cell = match kind {
            Kind::Rnn(Nonlinearity::Tanh) => CellKind::RnnTanh,
            Kind::Rnn(Nonlinearity::Relu) => CellKind::RnnRelu,
            Kind::Lstm => CellKind::Lstm,
            Kind::Gru => CellKind::Gru,
        };
        let b_hh = self.b_hh.as_ref().map(|b| b.tensor());
        let out = Tensor::recurrence(xp, h0, c0, &self.w_hh.tensor(), b_hh.as_ref(), cell, reverse)?;
        let (b, t, hid) = (xp.shape()[0], xp.shape()[1], h0.shape()[1]);
        let last = out.narrow(1usize, if reverse { 0 } else { t - 1 }, 1)?.reshape(&[b, out.shape()[2]])?;
        if kind == Kind::Lstm {
            Ok((out.narrow(2usize, 0, hid)?, last.narrow(1usize, 0, hid)?, Some(last.narrow(1usize, hid, hid)?)))
        } else {
            Ok((out, last, None))
        }
    }
}

/// `result`, its error (unless already a layer's) as one of the layer `desc`.
pub(crate) fn in_layer<T>(desc: String, result: Result<T>) -> Result<T> {
    result.map_err(|e| match e {
        Error::Layer { .. } => e,
        other => Error::layer(desc, other.to_string()),
    })
}

/// The shared body of [`RNN`], [`LSTM`] and [`GRU`].
#[derive(Debug, Clone)]
struct Stack {
    kind: Kind,
    input_size: usize,
    hidden_size: usize,
    opts: RnnOptions,
    /// Per layer, per direction: the weights and their name suffix (`_l0`, `_l0_reverse`).
    layers: Vec<(String, Weights)>,
    mode: TrainMode,
}

impl Stack {
    fn new(kind: Kind, input_size: usize, hidden_size: usize, opts: RnnOptions, dev: &Device) -> Result<Stack> {
        let name = kind.name();
        if input_size == 0 || hidden_size == 0 || opts.num_layers == 0 {
            return Err(Error::invalid(
                name,
                format!(
                    "input_size {input_size}, hidden_size {hidden_size} and num_layers {} must be positive",
                    opts.num_layers
                ),
            ));
        }
        if !(0.0..=1.0).contains(&opts.dropout) {
            return Err(Error::invalid(name, format!("dropout must be in [0, 1], got {}", opts.dropout)));
        }
        let dirs = if opts.bidirectional { 2 } else { 1 };
        let mut layers = Vec::new();
        for k in 0..opts.num_layers {
            let input = if k == 0 { input_size } else { dirs * hidden_size };
            for d in 0..dirs {
                let sfx = if d == 0 { format!("_l{k}") } else { format!("_l{k}_reverse") };
                layers.push((sfx, Weights::new(kind, input, hidden_size, opts.bias, dev)?));
            }
        }
        Ok(Stack { kind, input_size, hidden_size, opts, layers, mode: TrainMode::new() })
    }

    fn dirs(&self) -> usize {
        if self.opts.bidirectional { 2 } else { 1 }
    }

    /// "LSTM(3, 4, num_layers=2)" for errors.
    fn describe(&self) -> String {
        format!("{}({}, {}, num_layers={})", self.kind.name(), self.input_size, self.hidden_size, self.opts.num_layers)
    }

    /// Checks x [B, T, input] and a state's shape [D*L, B, H]; returns (B, T).
    fn check(&self, x: &Tensor, states: &[Option<&Tensor>]) -> Result<(usize, usize)> {
        let s = x.shape();
        if s.len() != 3 || s[2] != self.input_size || s[0] == 0 || s[1] == 0 {
            return Err(Error::layer(
                self.describe(),
                format!("expects input [batch, time, {}] with batch and time > 0, got {s:?}", self.input_size),
            ));
        }
        let want = [self.dirs() * self.opts.num_layers, s[0], self.hidden_size];
        for st in states.iter().flatten() {
            if st.shape() != want {
                return Err(Error::layer(
                    self.describe(),
                    format!("expects initial states {want:?} for input {s:?}, got {:?}", st.shape()),
                ));
            }
            if st.device() != x.device() {
                return Err(Error::layer(self.describe(), "the initial state is on another device than the input"));
            }
        }
        Ok((s[0], s[1]))
    }

    /// The output sequence [B, T, D*H] and the final (h, c) per layer and direction, stacked
    /// [D*L, B, H] (c for an LSTM only).
    fn run(&self, x: &Tensor, h0: Option<&Tensor>, c0: Option<&Tensor>) -> Result<(Tensor, Tensor, Option<Tensor>)> {
        let (b, _) = self.check(x, &[h0, c0])?;
        let run = || -> Result<(Tensor, Tensor, Option<Tensor>)> {
            let dev = x.device();
            let hid = self.hidden_size;
            let lstm = self.kind == Kind::Lstm;
            let initial = |s: Option<&Tensor>, i: usize| -> Result<Tensor> {
                match s {
                    Some(s) => s.narrow(0usize, i, 1)?.reshape(&[b, hid]),
                    None => Tensor::zeros(&[b, hid], &dev),
                }
            };
            let mut input = x.clone();
            let (mut hn, mut cn) = (Vec::new(), Vec::new());
            for k in 0..self.opts.num_layers {
                let mut outs = Vec::new();
                for d in 0..self.dirs() {
                    let i = k * self.dirs() + d;
                    let w = &self.layers[i].1;
                    let xp = w.project(&input)?; // [B, T, G*H]: every step's input projection at once
                    let h = initial(h0, i)?;
                    let c = if lstm { Some(initial(c0, i)?) } else { None };
                    let (y, h, c) = w.run(self.kind, &xp, &h, c.as_ref(), d == 1)?;
                    outs.push(y);
                    hn.push(h);
                    cn.extend(c);
                }
                input = if outs.len() == 1 { outs.remove(0) } else { Tensor::cat(&[&outs[0], &outs[1]], 2usize)? };
                if k + 1 < self.opts.num_layers {
                    input = crate::dropout::dropout(&input, self.opts.dropout, self.mode.get())?;
                }
            }
            let h_n = Tensor::stack(&hn.iter().collect::<Vec<_>>(), 0usize)?;
            let c_n = if lstm { Some(Tensor::stack(&cn.iter().collect::<Vec<_>>(), 0usize)?) } else { None };
            Ok((input, h_n, c_n))
        };
        in_layer(self.describe(), run())
    }

    fn visit<'a>(&'a self, f: &mut VisitFn<'_, 'a>) {
        f("mode", Entry::Mode(&self.mode));
        for (sfx, w) in &self.layers {
            w.visit(sfx, f);
        }
    }
}

/// `Module` for a layer whose members its field `$field` reports (it has a `visit`).
macro_rules! module_via {
    ($name:ident, $field:ident) => {
        impl Module for $name {
            fn visit<'a>(&'a self, f: &mut VisitFn<'_, 'a>) {
                self.$field.visit(f)
            }

            fn as_dyn(&self) -> &dyn Module {
                self
            }

            fn as_any(&self) -> Option<&dyn std::any::Any> {
                Some(self)
            }
        }
    };
}
pub(crate) use module_via;

macro_rules! recurrent_layer {
    ($(#[$doc:meta])* $name:ident, $kind:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name {
            inner: Stack,
        }

        impl $name {
            /// One layer with the default options.
            pub fn new(input_size: usize, hidden_size: usize, dev: &Device) -> Result<$name> {
                $name::with_options(input_size, hidden_size, RnnOptions::default(), dev)
            }

            /// With `options` (layers, bias, direction, dropout).
            pub fn with_options(input_size: usize, hidden_size: usize, options: RnnOptions, dev: &Device) -> Result<$name> {
                let kind: fn(RnnOptions) -> Kind = $kind;
                Ok($name { inner: Stack::new(kind(options), input_size, hidden_size, options, dev)? })
            }

            /// The input features.
            pub fn input_size(&self) -> usize {
                self.inner.input_size
            }

            /// The hidden features (per direction).
            pub fn hidden_size(&self) -> usize {
                self.inner.hidden_size
            }

            /// The options it was built with.
            pub fn options(&self) -> RnnOptions {
                self.inner.opts
            }
        }

        module_via!($name, inner);
    };
}

recurrent_layer!(
    /// An Elman RNN (PyTorch's `nn.RNN`, batch-first): h_t = act(x_t W_ih^T + b_ih + h_{t-1}
    /// W_hh^T + b_hh) with act tanh (or relu: `RnnOptions::nonlinearity`).
    RNN,
    |o| Kind::Rnn(o.nonlinearity)
);
recurrent_layer!(
    /// A long short-term memory layer (PyTorch's `nn.LSTM`, batch-first): gates i, f, g, o in
    /// that order in the weights' rows; c_t = f * c_{t-1} + i * g, h_t = o * tanh(c_t).
    LSTM,
    |_| Kind::Lstm
);
recurrent_layer!(
    /// A gated recurrent unit layer (PyTorch's `nn.GRU`, batch-first): gates r, z, n in that
    /// order; n = tanh(x W_in + b_in + r * (h W_hn + b_hn)), h_t = (1 - z) * n + z * h_{t-1}.
    GRU,
    |_| Kind::Gru
);

impl RNN {
    /// The output sequence [B, T, D*H] and the final hidden state [D*num_layers, B, H], from
    /// `h0` (same shape; zeros when None).
    pub fn forward_with_state(&self, x: &Tensor, h0: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let (y, h, _) = self.inner.run(x, h0, None)?;
        Ok((y, h))
    }
}

impl GRU {
    /// The output sequence [B, T, D*H] and the final hidden state [D*num_layers, B, H], from
    /// `h0` (same shape; zeros when None).
    pub fn forward_with_state(&self, x: &Tensor, h0: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let (y, h, _) = self.inner.run(x, h0, None)?;
        Ok((y, h))
    }
}

impl LSTM {
    /// The output sequence [B, T, D*H] and the final (h_n, c_n), each [D*num_layers, B, H],
    /// from `state` = (h0, c0) of the same shapes (zeros when None).
    pub fn forward_with_state(
        &self,
        x: &Tensor,
        state: Option<(&Tensor, &Tensor)>,
    ) -> Result<(Tensor, (Tensor, Tensor))> {
        let (y, h, c) = self.inner.run(x, state.map(|s| s.0), state.map(|s| s.1))?;
        Ok((y, (h, c.expect("an LSTM has a cell state"))))
    }
}

impl Forward for RNN {
    /// The output sequence from a zero state.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward_with_state(x, None)?.0)
    }
}

impl Forward for GRU {
    /// The output sequence from a zero state.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward_with_state(x, None)?.0)
    }
}

impl Forward for LSTM {
    /// The output sequence from a zero state.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward_with_state(x, None)?.0)
    }
}
