//! `MultiheadAttention` and `TransformerEncoderLayer` with PyTorch's parameter names, shapes
//! and initialisation (batch-first: x is [B, L, E]); the attention itself is
//! `kiln::nn::functional::scaled_dot_product_attention` (fused on the GPU).

use kiln_core::functional::scaled_dot_product_attention;
use kiln_core::{Device, Error, Parameter, Result, Tensor, TrainMode};

use crate::init::{constant_, xavier_uniform_};
use crate::{Dropout, Forward, LayerNorm, Linear};

/// Multi-head attention (PyTorch's `nn.MultiheadAttention` with `batch_first=True`): the
/// queries, keys and values projected by one packed `in_proj_weight` [3E, E] (xavier-uniform)
/// and `in_proj_bias` [3E] (zeros), split into `num_heads` heads, attended, and projected by
/// `out_proj` (a Linear E -> E whose bias starts at zero). No dropout on the attention weights.
#[derive(Debug, Clone, kiln_derive::Module)]
#[module(crate = "kiln_core")]
pub struct MultiheadAttention {
    /// The packed q, k, v projections, [3E, E].
    pub in_proj_weight: Parameter,
    /// Their biases, [3E].
    pub in_proj_bias: Parameter,
    /// The output projection.
    pub out_proj: Linear,
    #[module(skip)]
    heads: usize,
    mode: TrainMode,
}

impl MultiheadAttention {
    /// `num_heads` heads over `embed_dim` (divisible by it).
    pub fn new(embed_dim: usize, num_heads: usize, dev: &Device) -> Result<MultiheadAttention> {
        if num_heads == 0 || embed_dim == 0 || embed_dim % num_heads != 0 {
            return Err(Error::invalid(
                "MultiheadAttention",
                format!("embed_dim {embed_dim} must be divisible by num_heads {num_heads}"),
            ));
        }
        let w = Parameter::new(Tensor::zeros(&[3 * embed_dim, embed_dim], dev)?);
        xavier_uniform_(&w, 1.0)?;
        let out_proj = Linear::new(embed_dim, embed_dim, dev)?;
        if let Some(b) = &out_proj.bias {
            constant_(b, 0.0)?;
        }
        Ok(MultiheadAttention {
            in_proj_weight: w,
            in_proj_bias: Parameter::new(Tensor::zeros(&[3 * embed_dim], dev)?),
            out_proj,
            heads: num_heads,
            mode: TrainMode::new(),
        })
    }

    fn name(&self) -> String {
        format!("MultiheadAttention({}, {})", self.in_proj_weight.shape()[1], self.heads)
    }

    /// Attention of `query` [B, L, E] over `key` and `value` [B, S, E]: [B, L, E].
    /// `attn_mask` is additive (-inf blocks), [L, S] or [B * num_heads, L, S] as PyTorch's;
    /// `is_causal` blocks key j for query i when j > i.
    pub fn forward_with(
        &self,
        query: &Tensor,
        key: &Tensor,
        value: &Tensor,
        attn_mask: Option<&Tensor>,
        is_causal: bool,
    ) -> Result<Tensor> {
        let e = self.in_proj_weight.shape()[1];
        let (h, hd) = (self.heads, e / self.heads);
        let name = self.name();
        for t in [query, key, value] {
            if t.rank() != 3 || t.shape()[2] != e {
                return Err(Error::layer(name, format!("inputs must be [B, L, {e}], got shape {:?}", t.shape())));
            }
        }
        let (b, l, s) = (query.shape()[0], query.shape()[1], key.shape()[1]);
        if key.shape() != value.shape() || key.shape()[0] != b {
            return Err(Error::layer(
                name,
                format!("query {:?}, key {:?} and value {:?} do not match", query.shape(), key.shape(), value.shape()),
            ));
        }
        let (w, bias) = (self.in_proj_weight.tensor(), self.in_proj_bias.tensor());
        let project = |x: &Tensor, part: usize, len: usize| -> Result<Tensor> {
            let y = Tensor::linear(x, &w.narrow(0usize, part * e, e)?, Some(&bias.narrow(0usize, part * e, e)?))?;
            y.reshape(&[b, len, h, hd])?.transpose(1usize, 2usize)
        };
        let (q, k, v) = (project(query, 0, l)?, project(key, 1, s)?, project(value, 2, s)?);
        let mask = match attn_mask {
            Some(m) if m.rank() == 3 => Some(m.reshape(&[b, h, l, s]).map_err(|_| {
                Error::layer(self.name(), format!("a 3-D mask must be [{}, {l}, {s}], got {:?}", b * h, m.shape()))
            })?),
            Some(m) => Some(m.clone()),
            None => None,
        };
        let o = scaled_dot_product_attention(&q, &k, &v, mask.as_ref(), is_causal)
            .map_err(|err| Error::layer(self.name(), err.to_string()))?;
        self.out_proj.forward(&o.transpose(1usize, 2usize)?.reshape(&[b, l, e])?)
    }
}

impl Forward for MultiheadAttention {
    /// Self-attention of x [B, L, E] without a mask.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, x, x, None, false)
    }
}

/// The feed-forward activation of a [`TransformerEncoderLayer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    /// ReLU (PyTorch's default).
    #[default]
    Relu,
    /// GELU, exact.
    Gelu,
}

/// Options of [`TransformerEncoderLayer::with_options`] (PyTorch's defaults: dropout 0.1, ReLU,
/// post-norm, eps 1e-5).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransformerOptions {
    /// Dropout after the attention, inside and after the feed-forward block.
    pub dropout: f32,
    /// The feed-forward activation.
    pub activation: Activation,
    /// LayerNorm before each block (pre-norm) instead of after the residual sum.
    pub norm_first: bool,
    /// The LayerNorms' eps.
    pub layer_norm_eps: f32,
}

impl Default for TransformerOptions {
    fn default() -> Self {
        TransformerOptions { dropout: 0.1, activation: Activation::Relu, norm_first: false, layer_norm_eps: 1e-5 }
    }
}

/// One encoder layer (PyTorch's `nn.TransformerEncoderLayer` with `batch_first=True`, names
/// `self_attn`, `linear1`, `linear2`, `norm1`, `norm2`): self-attention and a feed-forward
/// block (linear1, activation, dropout, linear2), each with a residual connection and a
/// LayerNorm, after the sum (post-norm, the default) or before the block (`norm_first`).
#[derive(Debug, Clone, kiln_derive::Module)]
#[module(crate = "kiln_core")]
pub struct TransformerEncoderLayer {
    /// The self-attention.
    pub self_attn: MultiheadAttention,
    /// d_model -> dim_feedforward.
    pub linear1: Linear,
    dropout: Dropout,
    /// dim_feedforward -> d_model.
    pub linear2: Linear,
    /// The attention block's LayerNorm.
    pub norm1: LayerNorm,
    /// The feed-forward block's LayerNorm.
    pub norm2: LayerNorm,
    dropout1: Dropout,
    dropout2: Dropout,
    #[module(skip)]
    options: TransformerOptions,
    mode: TrainMode,
}

impl TransformerEncoderLayer {
    /// PyTorch's defaults: dropout 0.1, ReLU, post-norm.
    pub fn new(d_model: usize, nhead: usize, dim_feedforward: usize, dev: &Device) -> Result<TransformerEncoderLayer> {
        TransformerEncoderLayer::with_options(d_model, nhead, dim_feedforward, TransformerOptions::default(), dev)
    }

    /// With `options`.
    pub fn with_options(
        d_model: usize,
        nhead: usize,
        dim_feedforward: usize,
        options: TransformerOptions,
        dev: &Device,
    ) -> Result<TransformerEncoderLayer> {
        let mut norm1 = LayerNorm::new(&[d_model], dev)?;
        let mut norm2 = LayerNorm::new(&[d_model], dev)?;
        norm1.eps = options.layer_norm_eps;
        norm2.eps = options.layer_norm_eps;
        Ok(TransformerEncoderLayer {
            self_attn: MultiheadAttention::new(d_model, nhead, dev)?,
            linear1: Linear::new(d_model, dim_feedforward, dev)?,
            dropout: Dropout::new(options.dropout)?,
            linear2: Linear::new(dim_feedforward, d_model, dev)?,
            norm1,
            norm2,
            dropout1: Dropout::new(options.dropout)?,
            dropout2: Dropout::new(options.dropout)?,
            options,
            mode: TrainMode::new(),
        })
    }

    /// The layer over x [B, L, d_model] with an attention mask ([L, S] additive) and/or causal
    /// masking.
    pub fn forward_with(&self, x: &Tensor, mask: Option<&Tensor>, is_causal: bool) -> Result<Tensor> {
        let sa = |x: &Tensor| -> Result<Tensor> {
            self.dropout1.forward(&self.self_attn.forward_with(x, x, x, mask, is_causal)?)
        };
        let ff = |x: &Tensor| -> Result<Tensor> {
            let h = self.linear1.forward(x)?;
            let h = match self.options.activation {
                Activation::Relu => h.relu()?,
                Activation::Gelu => h.gelu()?,
            };
            self.dropout2.forward(&self.linear2.forward(&self.dropout.forward(&h)?)?)
        };
        if self.options.norm_first {
            let x = x.add(&sa(&self.norm1.forward(x)?)?)?;
            x.add(&ff(&self.norm2.forward(&x)?)?)
        } else {
            let x = self.norm1.forward(&x.add(&sa(x)?)?)?;
            self.norm2.forward(&x.add(&ff(&x)?)?)
        }
    }
}

impl Forward for TransformerEncoderLayer {
    /// x [B, L, d_model] -> the same shape, without a mask.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, None, false)
    }
}
