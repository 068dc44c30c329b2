//! `Embedding`: a lookup table of vectors indexed by U32 ids, as `torch.nn.Embedding`.

use kiln_core::{Device, Error, Parameter, Result, Tensor, TrainMode};

use crate::Forward;
use crate::init;

/// `weight` [num_embeddings, embedding_dim], initialised N(0, 1) as PyTorch's. The lookup is a
/// one-hot matrix product, so its gradient accumulates into the rows that were used (and is
/// exact for repeated ids).
#[derive(Debug, Clone, kiln_derive::Module)]
#[module(crate = "kiln_core")]
pub struct Embedding {
    /// [num_embeddings, embedding_dim]
    pub weight: Parameter,
    mode: TrainMode,
}

impl Embedding {
    /// A table of `num_embeddings` vectors of size `embedding_dim`.
    pub fn new(num_embeddings: usize, embedding_dim: usize, dev: &Device) -> Result<Embedding> {
        let weight = Parameter::new(Tensor::zeros(&[num_embeddings, embedding_dim], dev)?);
        init::normal_(&weight, 0.0, 1.0)?;
        Ok(Embedding { weight, mode: TrainMode::new() })
    }
}

impl Forward for Embedding {
    /// Looks up U32 ids of any shape; the result has the ids' shape plus `embedding_dim`.
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let shape = self.weight.shape();
        let (num, dim) = (shape[0], shape[1]);
        let n = ids.numel();
        let onehot = Tensor::one_hot(&ids.reshape(&[n])?, num)
            .map_err(|e| Error::layer(format!("Embedding({num}, {dim})"), e.to_string()))?;
        let out = onehot.matmul(&self.weight.tensor())?;
        let mut out_shape = ids.shape().to_vec();
        out_shape.push(dim);
        out.reshape(&out_shape)
    }
}
