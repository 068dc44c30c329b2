//! The model of the `train_lstm` example: a character-level LSTM whose hidden state lives in
//! non-persistent buffers, the stateful pattern of truncated back-propagation through time.
//!
//! The state `(h, c)` of the last chunk is kept in two [`Buffer`]s registered as fields, so it
//! moves with the model (`to(&device)`), yet it is not a parameter (never trained or counted) and
//! not persistent (never saved in a state_dict or checkpoint). Each [`CharLstm::forward_chunk`]
//! starts from the stored state and stores its final state *detached*: gradients stop at the chunk
//! boundary while the values carry on. [`CharLstm::reset_state`] starts over from zeros, for a new
//! pass over the text, another batch size (sampling one stream), or after loading a checkpoint.

use kiln::nn::{Embedding, Forward, LSTM, Linear, RnnOptions};
use kiln::prelude::*;

/// The sizes of a [`CharLstm`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CharLstmConfig {
    /// Distinct characters.
    pub vocab_size: usize,
    /// Width of the character embedding (the LSTM's input).
    pub embed: usize,
    /// The LSTM's hidden size.
    pub hidden: usize,
    /// Stacked LSTM layers.
    pub layers: usize,
}

/// Embedding → LSTM → Linear over the vocabulary, with the LSTM's state in buffers `h` and `c`
/// ([layers, batch, hidden]). State-dict names: `embed.weight`, `lstm.weight_ih_l0`, ...,
/// `head.weight`, `head.bias`; no `h`, no `c`.
#[derive(Module)]
pub struct CharLstm {
    /// Character ids to vectors.
    pub embed: Embedding,
    /// The recurrence.
    pub lstm: LSTM,
    /// Hidden states to logits.
    pub head: Linear,
    /// h_n of the last chunk (non-persistent).
    pub h: Buffer,
    /// c_n of the last chunk (non-persistent).
    pub c: Buffer,
    #[module(skip)]
    config: CharLstmConfig,
}

impl CharLstm {
    /// A model with PyTorch's default inits and a zero state for a batch of 1.
    pub fn new(config: CharLstmConfig, dev: &Device) -> Result<CharLstm> {
        let opts = RnnOptions { num_layers: config.layers, ..RnnOptions::default() };
        let zeros = || Tensor::zeros(&[config.layers, 1, config.hidden], dev);
        Ok(CharLstm {
            embed: Embedding::new(config.vocab_size, config.embed, dev)?,
            lstm: LSTM::with_options(config.embed, config.hidden, opts, dev)?,
            head: Linear::new(config.hidden, config.vocab_size, dev)?,
            h: Buffer::non_persistent(zeros()?),
            c: Buffer::non_persistent(zeros()?),
            config,
        })
    }

    /// The sizes.
    pub fn config(&self) -> CharLstmConfig {
        self.config
    }

    /// Zero state for `batch` streams, on the model's device. A different batch size replaces
    /// the buffers (as assigning `self.h = torch.zeros(...)` does in PyTorch).
    pub fn reset_state(&mut self, batch: usize) -> Result<()> {
        let dev = self.head.weight.device();
        let shape = [self.config.layers, batch, self.config.hidden];
        self.h = Buffer::non_persistent(Tensor::zeros(&shape, &dev)?);
        self.c = Buffer::non_persistent(Tensor::zeros(&shape, &dev)?);
        Ok(())
    }

    /// Logits [batch, T, vocab] for ids [batch, T], continuing from the stored state and storing
    /// the final one, detached. The batch must match the state's (see [`CharLstm::reset_state`]).
    pub fn forward_chunk(&self, ids: &Tensor) -> Result<Tensor> {
        let x = self.embed.forward(ids)?;
        let (y, (h, c)) = self.lstm.forward_with_state(&x, Some((&self.h.tensor(), &self.c.tensor())))?;
        self.h.set(h.detach())?;
        self.c.set(c.detach())?;
        self.head.forward(&y)
    }

    /// The mean cross-entropy of the next characters `targets` [batch, T] after `ids`.
    pub fn loss(&self, ids: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let logits = self.forward_chunk(ids)?;
        let n = targets.numel();
        kiln::nn::functional::cross_entropy(&logits.reshape(&[n, self.config.vocab_size])?, &targets.reshape(&[n])?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> CharLstm {
        let cfg = CharLstmConfig { vocab_size: 7, embed: 3, hidden: 4, layers: 2 };
        CharLstm::new(cfg, &Device::cpu()).unwrap()
    }

    #[test]
    fn the_state_is_a_buffer_never_saved_nor_trained() {
        let mut m = small();
        let names: Vec<String> = m.named_buffers().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["h", "c"]);
        assert!(m.named_parameters().iter().all(|(n, _)| n != "h" && n != "c"));
        let sd = m.state_dict();
        assert!(!sd.contains_key("h") && !sd.contains_key("c"));
        assert!(sd.contains_key("lstm.weight_hh_l1") && sd.contains_key("head.bias"));
        m.reset_state(3).unwrap();
        assert_eq!(m.h.shape(), [2, 3, 4]);
        // A checkpoint round trip loads strictly without the state.
        m.load_state_dict(&sd, true).unwrap();
    }

    #[test]
    fn the_state_carries_values_and_stops_gradients() {
        let mut m = small();
        m.reset_state(2).unwrap();
        let dev = Device::cpu();
        let ids = Tensor::from_labels(&[1, 2, 3, 4, 5, 6], &dev).unwrap().reshape(&[2, 3]).unwrap();
        let first = m.forward_chunk(&ids).unwrap();
        let h = m.h.tensor();
        assert!(h.is_leaf() && !h.requires_grad());
        assert!(h.to_vec().unwrap().iter().any(|&v| v != 0.0));
        // The same chunk again continues from that state: other logits than from zeros.
        let second = m.forward_chunk(&ids).unwrap();
        assert_ne!(first.to_vec().unwrap(), second.to_vec().unwrap());
        m.reset_state(2).unwrap();
        assert_eq!(m.forward_chunk(&ids).unwrap().to_vec().unwrap(), first.to_vec().unwrap());
        // Backward through a chunk reaches the parameters, and ends at the stored state.
        let loss = m.loss(&ids, &ids).unwrap();
        loss.backward().unwrap();
        assert!(m.lstm.named_parameters().iter().all(|(_, p)| p.grad().is_some()));
        // A batch that does not match the state is an error naming the shapes.
        let one = Tensor::from_labels(&[1, 2, 3], &dev).unwrap().reshape(&[1, 3]).unwrap();
        let e = m.forward_chunk(&one).expect_err("batch 1 against a state for 2").to_string();
        assert!(e.contains("[2, 2, 4]") || e.contains("[2, 1, 4]"), "{e}");
    }
}
