//! `RNNCell`, `LSTMCell`, `GRUCell` (PyTorch's cells): one step of the recurrences of `rnn.rs`
//! for x [B, input] and states [B, H], with parameters `weight_ih` [G*H, input], `weight_hh`
//! [G*H, H], `bias_ih`, `bias_hh` [G*H] (U(-1/sqrt(H), 1/sqrt(H))).

use kiln_core::module::VisitFn;
use kiln_core::{Device, Error, Module, Result, Tensor, TrainMode};

use crate::rnn::{Kind, Nonlinearity, Weights, in_layer, module_via};

/// The shared body of the cells.
#[derive(Debug, Clone)]
struct Cell {
    kind: Kind,
    input_size: usize,
    hidden_size: usize,
    w: Weights,
    mode: TrainMode,
}

impl Cell {
    fn new(
        kind: Kind,
        name: &'static str,
        input_size: usize,
        hidden_size: usize,
        bias: bool,
        dev: &Device,
    ) -> Result<Cell> {
        if input_size == 0 || hidden_size == 0 {
            return Err(Error::invalid(
                name,
                format!("input_size {input_size} and hidden_size {hidden_size} must be positive"),
            ));
        }
        Ok(Cell {
            kind,
            input_size,
            hidden_size,
            w: Weights::new(kind, input_size, hidden_size, bias, dev)?,
            mode: TrainMode::new(),
        })
    }

    fn describe(&self, name: &str) -> String {
        format!("{name}({}, {})", self.input_size, self.hidden_size)
    }

    /// One step from the states (zeros when None); checks the shapes.
    fn step(&self, name: &str, x: &Tensor, h: Option<&Tensor>, c: Option<&Tensor>) -> Result<(Tensor, Option<Tensor>)> {
        let s = x.shape();
        if s.len() != 2 || s[1] != self.input_size || s[0] == 0 {
            return Err(Error::layer(
                self.describe(name),
                format!("expects input [batch, {}] with batch > 0, got {s:?}", self.input_size),
            ));
        }
        let want = [s[0], self.hidden_size];
        for st in [h, c].into_iter().flatten() {
            if st.shape() != want {
                return Err(Error::layer(
                    self.describe(name),
                    format!("expects states {want:?}, got {:?}", st.shape()),
                ));
            }
        }
        let dev = x.device();
        let zeros = || Tensor::zeros(&want, &dev);
        let run = || -> Result<(Tensor, Option<Tensor>)> {
            let h = match h {
                Some(h) => h.clone(),
                None => zeros()?,
            };
            let c = match (self.kind, c) {
                (Kind::Lstm, Some(c)) => Some(c.clone()),
                (Kind::Lstm, None) => Some(zeros()?),
                _ => None,
            };
            let xp = self.w.project(x)?;
            let xp = xp.reshape(&[want[0], 1, xp.shape()[1]])?;
            let (_, h, c) = self.w.run(self.kind, &xp, &h, c.as_ref(), false)?;
            Ok((h, c))
        };
        in_layer(self.describe(name), run())
    }

    fn visit<'a>(&'a self, f: &mut VisitFn<'_, 'a>) {
        f("mode", kiln_core::module::Entry::Mode(&self.mode));
        self.w.visit("", f);
    }
}

macro_rules! cell {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name {
            cell: Cell,
        }

        impl $name {
            /// The input features.
            pub fn input_size(&self) -> usize {
                self.cell.input_size
            }

            /// The hidden features.
            pub fn hidden_size(&self) -> usize {
                self.cell.hidden_size
            }
        }

        module_via!($name, cell);
    };
}

cell!(
    /// An Elman cell (PyTorch's `nn.RNNCell`): h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh).
    RNNCell
);
cell!(
    /// An LSTM cell (PyTorch's `nn.LSTMCell`): gates i, f, g, o; returns (h', c').
    LSTMCell
);
cell!(
    /// A GRU cell (PyTorch's `nn.GRUCell`): gates r, z, n, `b_hn` inside the reset product.
    GRUCell
);

impl RNNCell {
    /// With biases and tanh.
    pub fn new(input_size: usize, hidden_size: usize, dev: &Device) -> Result<RNNCell> {
        RNNCell::with_options(input_size, hidden_size, true, Nonlinearity::Tanh, dev)
    }

    /// With or without biases, tanh or relu.
    pub fn with_options(
        input_size: usize,
        hidden_size: usize,
        bias: bool,
        nonlinearity: Nonlinearity,
        dev: &Device,
    ) -> Result<RNNCell> {
        Ok(RNNCell { cell: Cell::new(Kind::Rnn(nonlinearity), "RNNCell", input_size, hidden_size, bias, dev)? })
    }

    /// h' [B, H] from x [B, input] and h [B, H] (zeros when None).
    pub fn forward_with_state(&self, x: &Tensor, h: Option<&Tensor>) -> Result<Tensor> {
        Ok(self.cell.step("RNNCell", x, h, None)?.0)
    }
}

impl GRUCell {
    /// With biases.
    pub fn new(input_size: usize, hidden_size: usize, dev: &Device) -> Result<GRUCell> {
        Ok(GRUCell { cell: Cell::new(Kind::Gru, "GRUCell", input_size, hidden_size, true, dev)? })
    }

    /// h' [B, H] from x [B, input] and h [B, H] (zeros when None).
    pub fn forward_with_state(&self, x: &Tensor, h: Option<&Tensor>) -> Result<Tensor> {
        Ok(self.cell.step("GRUCell", x, h, None)?.0)
    }
}

impl LSTMCell {
    /// With biases.
    pub fn new(input_size: usize, hidden_size: usize, dev: &Device) -> Result<LSTMCell> {
        Ok(LSTMCell { cell: Cell::new(Kind::Lstm, "LSTMCell", input_size, hidden_size, true, dev)? })
    }

    /// (h', c') [B, H] from x [B, input] and (h, c) [B, H] (zeros when None).
    pub fn forward_with_state(&self, x: &Tensor, state: Option<(&Tensor, &Tensor)>) -> Result<(Tensor, Tensor)> {
        let (h, c) = self.cell.step("LSTMCell", x, state.map(|s| s.0), state.map(|s| s.1))?;
        Ok((h, c.expect("an LSTM step has a cell state")))
    }
}
