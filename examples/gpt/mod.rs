//! A GPT with nanoGPT's module names, shapes and initialisation (Karpathy's nanoGPT `model.py`:
//! `transformer.wte`, `transformer.wpe`, `transformer.h.N.{ln_1, attn.c_attn, attn.c_proj, ln_2,
//! mlp.c_fc, mlp.c_proj}`, `transformer.ln_f`, `lm_head` tied to `wte`), written with kiln's
//! layers: a state_dict saved by nanoGPT's `GPT` (`safetensors.torch.save_file(model.state_dict())`)
//! loads into it strictly, and its saved file loads back into nanoGPT. Copy this file into a
//! project to use it. Attention is `scaled_dot_product_attention` with `is_causal` (fused on the
//! GPU); dropout applies to the embeddings and residual branches (not inside the attention).

use kiln::nn::functional::{cross_entropy, scaled_dot_product_attention};
use kiln::nn::init::normal_;
use kiln::nn::{Dropout, Embedding, Forward, LayerNorm, Linear};
use kiln::prelude::*;
use kiln::{Device, Error, Result, Tensor};

/// nanoGPT's `GPTConfig`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GptConfig {
    /// Longest sequence (positions).
    pub block_size: usize,
    /// Tokens.
    pub vocab_size: usize,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Attention heads.
    pub n_head: usize,
    /// Embedding width.
    pub n_embd: usize,
    /// Dropout on the embeddings and residual branches.
    pub dropout: f32,
    /// Biases in the Linears and LayerNorms.
    pub bias: bool,
}

impl GptConfig {
    /// nanoGPT's small CPU configuration for shakespeare_char: 4 layers, 4 heads, 128 wide,
    /// block 64, no biases, no dropout.
    pub fn small(vocab_size: usize) -> GptConfig {
        GptConfig { block_size: 64, vocab_size, n_layer: 4, n_head: 4, n_embd: 128, dropout: 0.0, bias: false }
    }
}

fn linear(i: usize, o: usize, bias: bool, dev: &Device) -> Result<Linear> {
    if bias { Linear::new(i, o, dev) } else { Linear::no_bias(i, o, dev) }
}

fn layer_norm(c: usize, bias: bool, dev: &Device) -> Result<LayerNorm> {
    if bias { LayerNorm::new(&[c], dev) } else { LayerNorm::no_bias(&[c], dev) }
}

/// Causal self-attention with one packed q, k, v projection (`c_attn`) and an output
/// projection (`c_proj`).
#[derive(Module)]
pub struct CausalSelfAttention {
    /// n_embd -> 3 n_embd.
    pub c_attn: Linear,
    /// n_embd -> n_embd.
    pub c_proj: Linear,
    resid_dropout: Dropout,
    #[module(skip)]
    n_head: usize,
}

impl Forward for CausalSelfAttention {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, c) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        let h = self.n_head;
        let qkv = self.c_attn.forward(x)?.chunk(3, 2usize)?;
        let heads = |z: &Tensor| z.reshape(&[b, t, h, c / h])?.transpose(1usize, 2usize);
        let y = scaled_dot_product_attention(&heads(&qkv[0])?, &heads(&qkv[1])?, &heads(&qkv[2])?, None, true)?;
        self.resid_dropout.forward(&self.c_proj.forward(&y.transpose(1usize, 2usize)?.reshape(&[b, t, c])?)?)
    }
}

/// The feed-forward block: `c_fc` (4x wider), exact GELU, `c_proj`.
#[derive(Module)]
pub struct Mlp {
    /// n_embd -> 4 n_embd.
    pub c_fc: Linear,
    /// 4 n_embd -> n_embd.
    pub c_proj: Linear,
    dropout: Dropout,
}

impl Forward for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.dropout.forward(&self.c_proj.forward(&self.c_fc.forward(x)?.gelu()?)?)
    }
}

/// A pre-LayerNorm block: x + attn(ln_1(x)), then x + mlp(ln_2(x)).
#[derive(Module)]
pub struct Block {
    /// Before the attention.
    pub ln_1: LayerNorm,
    /// The attention.
    pub attn: CausalSelfAttention,
    /// Before the MLP.
    pub ln_2: LayerNorm,
    /// The MLP.
    pub mlp: Mlp,
}

impl Forward for Block {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.add(&self.attn.forward(&self.ln_1.forward(x)?)?)?;
        x.add(&self.mlp.forward(&self.ln_2.forward(&x)?)?)
    }
}

/// nanoGPT's `transformer` ModuleDict.
#[derive(Module)]
pub struct Transformer {
    /// Token embeddings [vocab, n_embd] (the same Parameter as `lm_head.weight`).
    pub wte: Embedding,
    /// Position embeddings [block_size, n_embd].
    pub wpe: Embedding,
    drop: Dropout,
    /// The blocks ("h.0", "h.1", ...).
    pub h: Vec<Block>,
    /// The final LayerNorm.
    pub ln_f: LayerNorm,
}

/// nanoGPT's `GPT`.
#[derive(Module)]
pub struct Gpt {
    /// Embeddings, blocks, final norm.
    pub transformer: Transformer,
    /// n_embd -> vocab, no bias, its weight tied to `transformer.wte.weight`.
    pub lm_head: Linear,
    #[module(skip)]
    config: GptConfig,
}

impl Gpt {
    /// A model with nanoGPT's initialisation: every Linear and Embedding weight N(0, 0.02), the
    /// two output projections of each block N(0, 0.02 / sqrt(2 n_layer)), biases 0, LayerNorms 1.
    pub fn new(config: GptConfig, dev: &Device) -> Result<Gpt> {
        let c = config.n_embd;
        if config.n_head == 0 || !c.is_multiple_of(config.n_head) {
            return Err(Error::invalid("Gpt", format!("n_embd {c} must be divisible by n_head {}", config.n_head)));
        }
        let (bias, p) = (config.bias, config.dropout);
        let block = || -> Result<Block> {
            Ok(Block {
                ln_1: layer_norm(c, bias, dev)?,
                attn: CausalSelfAttention {
                    c_attn: linear(c, 3 * c, bias, dev)?,
                    c_proj: linear(c, c, bias, dev)?,
                    resid_dropout: Dropout::new(p)?,
                    n_head: config.n_head,
                },
                ln_2: layer_norm(c, bias, dev)?,
                mlp: Mlp {
                    c_fc: linear(c, 4 * c, bias, dev)?,
                    c_proj: linear(4 * c, c, bias, dev)?,
                    dropout: Dropout::new(p)?,
                },
            })
        };
        let transformer = Transformer {
            wte: Embedding::new(config.vocab_size, c, dev)?,
            wpe: Embedding::new(config.block_size, c, dev)?,
            drop: Dropout::new(p)?,
            h: (0..config.n_layer).map(|_| block()).collect::<Result<_>>()?,
            ln_f: layer_norm(c, bias, dev)?,
        };
        let mut lm_head = Linear::no_bias(c, config.vocab_size, dev)?;
        lm_head.weight = transformer.wte.weight.clone();
        let gpt = Gpt { transformer, lm_head, config };
        let proj_std = 0.02 / (2.0 * config.n_layer as f32).sqrt();
        for (name, p) in gpt.named_parameters() {
            if p.shape().len() >= 2 {
                normal_(&p, 0.0, if name.ends_with("c_proj.weight") { proj_std } else { 0.02 })?;
            } else if name.ends_with("bias") {
                p.set(Tensor::zeros(&p.shape(), dev)?)?;
            }
        }
        Ok(gpt)
    }

    /// The configuration.
    pub fn config(&self) -> GptConfig {
        self.config
    }

    /// Logits [B, T, vocab] for token ids `idx` [B, T] (U32, T <= block_size).
    pub fn logits(&self, idx: &Tensor) -> Result<Tensor> {
        let t = idx.shape().get(1).copied().unwrap_or(0);
        if idx.rank() != 2 || t == 0 || t > self.config.block_size {
            return Err(Error::invalid(
                "Gpt",
                format!("ids must be [B, T] with 0 < T <= {}, got shape {:?}", self.config.block_size, idx.shape()),
            ));
        }
        let pos = Tensor::from_labels(&(0..t as u32).collect::<Vec<_>>(), &idx.device())?;
        let tr = &self.transformer;
        let mut x = tr.drop.forward(&tr.wte.forward(idx)?.add(&tr.wpe.forward(&pos)?)?)?;
        for block in &tr.h {
            x = block.forward(&x)?;
        }
        self.lm_head.forward(&tr.ln_f.forward(&x)?)
    }

    /// The mean cross-entropy of the next-token predictions for `idx` against `targets` [B, T].
    pub fn loss(&self, idx: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let logits = self.logits(idx)?;
        let (b, t, v) = (logits.shape()[0], logits.shape()[1], logits.shape()[2]);
        cross_entropy(&logits.reshape(&[b * t, v])?, &targets.reshape(&[b * t])?)
    }
}
