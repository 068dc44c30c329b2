//! Gradient clipping (`torch.nn.utils.clip_grad_norm_`, `clip_grad_value_`), on the device.

use kiln_core::{Error, Parameter, Result, Tensor, no_grad};

/// Scales all gradients so that their global L2 norm is at most `max_norm`, as PyTorch does
/// (coefficient max_norm / (norm + 1e-6), clamped to 1). Returns the norm before clipping.
/// Parameters without a gradient are skipped. The norm is computed on the device; reading it
/// back for the return value is the one synchronisation.
pub fn clip_grad_norm_(params: &[Parameter], max_norm: f32) -> Result<f32> {
    if !(max_norm >= 0.0) {
        return Err(Error::invalid("clip_grad_norm_", format!("max_norm must be >= 0, got {max_norm}")));
    }
    no_grad(|| {
        let grads: Vec<(&Parameter, Tensor)> = params.iter().filter_map(|p| p.grad().map(|g| (p, g))).collect();
        let Some((_, first)) = grads.first() else { return Ok(0.0) };
        let dev = first.device();
        let mut sq = Tensor::zeros(&[], &dev)?;
        for (_, g) in &grads {
            if g.device() != dev {
                return Err(Error::DeviceMismatch { op: "clip_grad_norm_", lhs: dev.name(), rhs: g.device().name() });
            }
            sq = sq.add(&g.mul(g)?.sum_all()?)?;
        }
        let norm = sq.sqrt()?;
        // coef = min(max_norm / (norm + 1e-6), 1), kept on the device.
        let coef = norm.add_scalar(1e-6)?.powf(-1.0)?.mul_scalar(max_norm)?.minimum(&Tensor::ones(&[], &dev)?)?;
        for (p, g) in &grads {
            p.set_grad(Some(g.mul(&coef)?));
        }
        norm.item()
    })
}

/// Clamps every gradient element to [-clip_value, clip_value].
pub fn clip_grad_value_(params: &[Parameter], clip_value: f32) -> Result<()> {
    if !(clip_value >= 0.0) {
        return Err(Error::invalid("clip_grad_value_", format!("clip_value must be >= 0, got {clip_value}")));
    }
    no_grad(|| {
        for p in params {
            if let Some(g) = p.grad() {
                let dev = g.device();
                let lo = Tensor::full(&[], -clip_value, &dev)?;
                let hi = Tensor::full(&[], clip_value, &dev)?;
                p.set_grad(Some(g.maximum(&lo)?.minimum(&hi)?));
            }
        }
        Ok(())
    })
}
