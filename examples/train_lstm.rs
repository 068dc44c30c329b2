//! A character-level LSTM on the bundled Shakespeare text (data/shakespeare.txt.gz, split 90/10),
//! trained by truncated back-propagation through time: the training text is cut into `--batch`
//! contiguous streams read side by side in chunks of `--seq` characters; the LSTM's state carries
//! from chunk to chunk in the model's non-persistent buffers (`examples/src/char_lstm.rs`),
//! detached at each boundary, and is reset at the start of each pass over the text.
//!
//! ```text
//! cargo run --release -p kiln-examples --example train_lstm -- \
//!     [--device cpu|gpu|software] [--iters N] [--seed S] [--eval-interval N]
//!     [--checkpoint PATH] [--resume] [--sample-len N] [--temperature T] [--top-k K]
//!     [--batch B] [--seq T]
//! ```
//!
//! Defaults: 1000 iterations, 32 streams, chunks of 64, an evaluation every 250 iterations. The
//! command line, the loop and its ending are `examples/src/lm_train.rs`, shared with `train_gpt`.
//!
//! The model: an embedding of 64, a 2-layer LSTM of 256, a linear head; AdamW (lr 2e-3, PyTorch's
//! defaults otherwise), gradients clipped at norm 1. The validation loss is the mean cross-entropy
//! over the whole validation text, read as `--batch` streams with the state carried (the training
//! state is put aside and restored around it), every `--eval-interval` iterations and at the end;
//! a checkpoint (model and optimizer, no state: it is not persistent) is written at each
//! evaluation, and `--resume` continues from it at the same place in the text with a fresh state.
//! It ends with a text sample and the line `val_loss=<x> seconds=<y> device=<name>`.

use kiln::optim::{AdamConfig, AdamW};
use kiln::prelude::*;
use kiln::train::Checkpoint;
use kiln_examples::char_lstm::{CharLstm, CharLstmConfig};
use kiln_examples::lm_train::{LmArgs, LmTraining, optimize, resume, train};
use kiln_examples::text::{Rng, draw, load_text, shakespeare_path};

/// A text read as `batch` contiguous streams, side by side, in chunks of `seq`.
struct Streams<'a> {
    data: &'a [u32],
    batch: usize,
    seq: usize,
    /// Characters per stream.
    len: usize,
}

impl<'a> Streams<'a> {
    fn new(data: &'a [u32], batch: usize, seq: usize) -> std::result::Result<Streams<'a>, String> {
        let len = data.len() / batch;
        if len < seq + 1 {
            return Err(format!("{} characters are too few for {batch} streams of chunks of {seq}", data.len()));
        }
        Ok(Streams { data, batch, seq, len })
    }

    /// Chunks per pass over the text.
    fn chunks(&self) -> usize {
        (self.len - 1) / self.seq
    }

    /// Chunk `k`: inputs and next-character targets, [batch, seq] each.
    fn chunk(&self, k: usize, dev: &Device) -> Result<(Tensor, Tensor)> {
        let (mut x, mut y) = (Vec::with_capacity(self.batch * self.seq), Vec::with_capacity(self.batch * self.seq));
        for b in 0..self.batch {
            let at = b * self.len + k * self.seq;
            x.extend_from_slice(&self.data[at..at + self.seq]);
            y.extend_from_slice(&self.data[at + 1..at + self.seq + 1]);
        }
        let shape = [self.batch, self.seq];
        Ok((Tensor::from_labels(&x, dev)?.reshape(&shape)?, Tensor::from_labels(&y, dev)?.reshape(&shape)?))
    }
}

/// The mean loss over every chunk of `val`, in eval mode without gradients, from a zero state;
/// the training state is put aside and restored. The losses are summed on the device and read
/// back once.
fn estimate_loss(model: &mut CharLstm, val: &Streams, dev: &Device) -> Result<f32> {
    let saved = (model.h.clone(), model.c.clone());
    model.eval();
    model.reset_state(val.batch)?;
    let m = &*model;
    let total = no_grad(|| -> Result<Tensor> {
        let mut total = Tensor::zeros(&[], dev)?;
        for k in 0..val.chunks() {
            let (x, y) = val.chunk(k, dev)?;
            total = total.add(&m.loss(&x, &y)?)?;
        }
        Ok(total)
    })?;
    (model.h, model.c) = saved;
    model.train();
    Ok(total.item()? / val.chunks() as f32)
}

/// The model, its optimizer and the text, as the shared loop drives them.
struct Run<'a> {
    model: CharLstm,
    opt: AdamW,
    params: Vec<Parameter>,
    train: Streams<'a>,
    val: Streams<'a>,
    chars: &'a [char],
    rng: Rng,
    dev: Device,
}

impl LmTraining for Run<'_> {
    /// The next chunk in order; the state starts from zeros at the start of each pass.
    fn step(&mut self, it: u64) -> Result<Tensor> {
        let k = it as usize % self.train.chunks();
        if k == 0 {
            self.model.reset_state(self.train.batch)?;
        }
        let (x, y) = self.train.chunk(k, &self.dev)?;
        optimize(&self.model.loss(&x, &y)?, &mut self.opt, &self.params)
    }

    fn evaluate(&mut self) -> Result<f32> {
        estimate_loss(&mut self.model, &self.val, &self.dev)
    }

    fn checkpoint(&self, step: u64) -> Result<Checkpoint> {
        Checkpoint::capture(&self.model, Some(&self.opt), None, 0, step)
    }

    /// `len` characters after a newline, one step at a time from a fresh state for one stream,
    /// each drawn from the last logits / temperature among the `top_k` most likely.
    fn sample(&mut self, len: usize, temperature: f32, top_k: usize) -> Result<String> {
        self.model.eval();
        self.model.reset_state(1)?;
        let mut id = self.chars.binary_search(&'\n').unwrap_or(0) as u32;
        let mut out = String::new();
        for _ in 0..len {
            let x = Tensor::from_labels(&[id], &self.dev)?.reshape(&[1, 1])?;
            let logits = no_grad(|| self.model.forward_chunk(&x))?.to_vec()?;
            id = draw(&logits, temperature, top_k, &mut self.rng) as u32;
            out.push(self.chars[id as usize]);
        }
        Ok(out)
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let defaults = LmArgs { iters: 1000, eval_interval: 250, batch: 32, ..LmArgs::defaults("train_lstm") };
    let Some(args) = defaults.parse("train_lstm", &["--batch", "--seq"], std::env::args().skip(1))? else {
        return Ok(());
    };
    let dev = args.device();
    kiln::manual_seed(args.seed);
    let (chars, ids) = load_text(&shakespeare_path())?;
    let split = ids.len() * 9 / 10;
    let train_text = Streams::new(&ids[..split], args.batch, args.seq)?;
    let val = Streams::new(&ids[split..], args.batch, args.seq)?;
    let cfg = CharLstmConfig { vocab_size: chars.len(), embed: 64, hidden: 256, layers: 2 };
    let mut model = CharLstm::new(cfg, &dev)?;
    println!(
        "kiln train_lstm: {} characters ({} train / {} val), vocabulary {}, {} parameters, \
         {} streams x chunks of {}, device: {}",
        ids.len(),
        split,
        ids.len() - split,
        chars.len(),
        model.num_parameters().total,
        args.batch,
        args.seq,
        dev.name()
    );
    let mut opt = AdamW::new(model.named_parameters(), AdamConfig { lr: 2e-3, ..AdamConfig::adamw() })?;
    // The state is not in the checkpoint (not persistent): a resumed run starts it from zeros.
    let start = resume(&args, &model, &mut opt, &dev)?;
    model.reset_state(args.batch)?;
    model.train();
    let params = model.parameters();
    let rng = Rng(args.draw_seed(0));
    let mut run = Run { model, opt, params, train: train_text, val, chars: &chars, rng, dev: dev.clone() };
    train(&args, start, &mut run, &dev)
}
