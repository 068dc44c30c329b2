//! `BatchNorm1d`: batch statistics in training mode (updating the running statistics), running
//! statistics in evaluation mode, as `torch.nn.BatchNorm1d`.

use std::sync::Mutex;

use kiln_core::{Buffer, Device, Error, Parameter, Result, Tensor, TrainMode, no_grad};

use crate::Forward;

/// Batch normalisation over [N, C] or [N, C, L] inputs, per channel C. Parameters `weight`
/// (ones) and `bias` (zeros); persistent buffers `running_mean` (zeros), `running_var` (ones)
/// and `num_batches_tracked` (an int64 scalar, saved and loaded as int64 like PyTorch's).
#[derive(kiln_derive::Module)]
#[module(crate = "kiln_core")]
pub struct BatchNorm1d {
    /// Scale, [C].
    pub weight: Parameter,
    /// Shift, [C].
    pub bias: Parameter,
    /// Running mean, [C].
    pub running_mean: Buffer,
    /// Running (unbiased) variance, [C].
    pub running_var: Buffer,
    /// Number of training batches seen (int64, 0-d).
    pub num_batches_tracked: Buffer,
    mode: TrainMode,
    #[module(skip)]
    eps: f32,
    #[module(skip)]
    momentum: f32,
    /// The counter tensor last written here and its value, so that counting needs no
    /// read-back unless the buffer was replaced (loaded or moved) since.
    #[module(skip)]
    tracked: Mutex<Option<(Tensor, i64)>>,
}

impl std::fmt::Debug for BatchNorm1d {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BatchNorm1d({}, eps={}, momentum={})", self.num_features(), self.eps, self.momentum)
    }
}

impl BatchNorm1d {
    /// PyTorch's defaults: eps 1e-5, momentum 0.1.
    pub fn new(num_features: usize, dev: &Device) -> Result<BatchNorm1d> {
        BatchNorm1d::with_options(num_features, 1e-5, 0.1, dev)
    }

    /// With explicit eps and momentum.
    pub fn with_options(num_features: usize, eps: f32, momentum: f32, dev: &Device) -> Result<BatchNorm1d> {
        Ok(BatchNorm1d {
            weight: Parameter::new(Tensor::ones(&[num_features], dev)?),
            bias: Parameter::new(Tensor::zeros(&[num_features], dev)?),
            running_mean: Buffer::new(Tensor::zeros(&[num_features], dev)?),
            running_var: Buffer::new(Tensor::ones(&[num_features], dev)?),
            num_batches_tracked: Buffer::new(Tensor::from_vec_i64(vec![0], &[], dev)?),
            mode: TrainMode::new(),
            eps,
            momentum,
            tracked: Mutex::new(None),
        })
    }

    /// C.
    pub fn num_features(&self) -> usize {
        self.weight.shape()[0]
    }

    fn count_batch(&self) -> Result<()> {
        let cur = self.num_batches_tracked.tensor();
        let mut tr = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        let v = match &*tr {
            Some((t, v)) if Tensor::ptr_eq(t, &cur) => *v,
            _ => cur.to_vec_i64()?[0],
        };
        self.num_batches_tracked.set(Tensor::from_vec_i64(vec![v + 1], &[], &cur.device())?)?;
        *tr = Some((self.num_batches_tracked.tensor(), v + 1));
        Ok(())
    }
}

impl Forward for BatchNorm1d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c = self.num_features();
        let ok = matches!(x.rank(), 2 | 3) && x.shape()[1] == c;
        if !ok {
            return Err(Error::layer(
                format!("BatchNorm1d({c})"),
                format!("the input has shape {:?}, expected [N, {c}] or [N, {c}, L]", x.shape()),
            ));
        }
        let three = x.rank() == 3;
        let cshape: Vec<usize> = if three { vec![1, c, 1] } else { vec![1, c] };
        if self.mode.get() {
            let n = x.numel() / c;
            if n <= 1 {
                return Err(Error::layer(
                    format!("BatchNorm1d({c})"),
                    format!("training needs more than one value per channel, got input shape {:?}", x.shape()),
                ));
            }
            // One autograd node with a closed-form backward (kiln-core's ops/norm.rs).
            let (y, mean, var) = Tensor::batch_norm_train(x, &self.weight.tensor(), &self.bias.tensor(), self.eps)?;
            let m = self.momentum;
            no_grad(|| -> Result<()> {
                let rm = self.running_mean.tensor().mul_scalar(1.0 - m)?.add(&mean.mul_scalar(m)?)?;
                let unbiased = var.mul_scalar(n as f32 / (n as f32 - 1.0))?;
                let rv = self.running_var.tensor().mul_scalar(1.0 - m)?.add(&unbiased.mul_scalar(m)?)?;
                self.running_mean.set(rm)?;
                self.running_var.set(rv)?;
                self.count_batch()
            })?;
            return Ok(y);
        }
        let (mean, var) = (self.running_mean.tensor().reshape(&cshape)?, self.running_var.tensor().reshape(&cshape)?);
        let xhat = x.sub(&mean)?.div(&var.add_scalar(self.eps)?.sqrt()?)?;
        xhat.mul(&self.weight.tensor().reshape(&cshape)?)?.add(&self.bias.tensor().reshape(&cshape)?)
    }
}

/// Batch normalisation over [N, C, H, W] inputs, per channel C (PyTorch's `nn.BatchNorm2d`): the
/// same parameters, buffers, names and behaviour as [`BatchNorm1d`] (whose fields it derefs to:
/// `bn.weight`), over the N * H * W values of each channel.
pub struct BatchNorm2d(BatchNorm1d);

impl BatchNorm2d {
    /// PyTorch's defaults: eps 1e-5, momentum 0.1.
    pub fn new(num_features: usize, dev: &Device) -> Result<BatchNorm2d> {
        Ok(BatchNorm2d(BatchNorm1d::new(num_features, dev)?))
    }

    /// With explicit eps and momentum.
    pub fn with_options(num_features: usize, eps: f32, momentum: f32, dev: &Device) -> Result<BatchNorm2d> {
        Ok(BatchNorm2d(BatchNorm1d::with_options(num_features, eps, momentum, dev)?))
    }
}

impl std::ops::Deref for BatchNorm2d {
    type Target = BatchNorm1d;
    fn deref(&self) -> &BatchNorm1d {
        &self.0
    }
}

impl std::fmt::Debug for BatchNorm2d {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BatchNorm2d({}, eps={}, momentum={})", self.num_features(), self.0.eps, self.0.momentum)
    }
}

impl kiln_core::Module for BatchNorm2d {
    fn visit<'a>(&'a self, f: &mut kiln_core::module::VisitFn<'_, 'a>) {
        self.0.visit(f)
    }

    fn as_dyn(&self) -> &dyn kiln_core::Module {
        self
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

impl Forward for BatchNorm2d {
    /// [N, C, H, W] -> the same shape, normalised per channel.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c = self.num_features();
        let layer = || format!("BatchNorm2d({c})");
        if x.rank() != 4 || x.shape()[1] != c {
            return Err(Error::layer(layer(), format!("the input has shape {:?}, expected [N, {c}, H, W]", x.shape())));
        }
        let s = x.shape().to_vec();
        let y = self.0.forward(&x.reshape(&[s[0], c, s[2] * s[3]])?).map_err(|e| match e {
            Error::Layer { msg, path, .. } => Error::Layer { layer: layer(), path, msg },
            e => e,
        })?;
        y.reshape(&s)
    }
}
