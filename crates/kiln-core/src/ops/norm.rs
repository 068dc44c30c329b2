//! Batch normalisation in training mode as one autograd node. The forward reads x once for the
//! per-channel mean and variance (`norm.wgsl`, one workgroup per channel) and once more for the
//! output x * scale + shift; the backward reads the gradient and x once for the two per-channel
//! sums and once more for the input gradient, a per-channel affine map of g and x:
//! with xhat = (x - mean) * rstd over M = N * L values per channel,
//! db = sum(g), dw = sum(g * xhat) = rstd * sum(g * (x - mean)),
//! dx = w * rstd * (g - db / M - xhat * dw / M) = A g + B x + C per channel.
//! Every per-channel vector is broadcast over [N, C, L] (a fused elementwise map on the GPU).

use kiln_device::kernels;

use super::gpu;
use crate::autograd::{Op, no_grad};
use crate::cpu;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::tensor::Tensor;

/// Two per-channel vectors [1, C, 1] from the [2 * C] result of a `norm.wgsl` launch.
fn halves(t: Tensor, c: usize) -> Result<(Tensor, Tensor)> {
    Ok((t.slice_flat(0, &[1, c, 1])?, t.slice_flat(c, &[1, c, 1])?))
}

/// The mean and biased variance [1, C, 1] of x [N, C, L] over N and L.
fn channel_moments(x: &Tensor, dims: [usize; 3]) -> Result<(Tensor, Tensor)> {
    let storage = match x.storage() {
        Storage::Gpu(b) => Storage::gpu(kernels::channel_moments(gpu(x.dev()), b, dims)?),
        _ => Storage::f32_cpu(cpu::channel_moments(x.cpu_f32(), dims)),
    };
    halves(Tensor::from_parts(storage, vec![2 * dims[1]], DType::F32, x.device()), dims[1])
}

/// sum(g) and sum(g * (x - mean)) [1, C, 1] over N and L, for g and x [N, C, L], mean [1, C, 1].
fn channel_grad_sums(g: &Tensor, x: &Tensor, mean: &Tensor, dims: [usize; 3]) -> Result<(Tensor, Tensor)> {
    let storage = match (g.storage(), x.storage(), mean.storage()) {
        (Storage::Gpu(gb), Storage::Gpu(xb), Storage::Gpu(mb)) => {
            Storage::gpu(kernels::channel_grad_sums(gpu(x.dev()), gb, xb, mb, dims)?)
        }
        _ => Storage::f32_cpu(cpu::channel_grad_sums(g.cpu_f32(), x.cpu_f32(), mean.cpu_f32(), dims)),
    };
    halves(Tensor::from_parts(storage, vec![2 * dims[1]], DType::F32, x.device()), dims[1])
}

impl Tensor {
    /// Training-mode batch normalisation of x [N, C, L] (a 2-D [N, C] input is [N, C, 1]) with
    /// the batch's biased variance: returns (y, mean [C], biased variance [C]). Differentiable
    /// in x, `weight` [C] and `bias` [C], as one node.
    pub fn batch_norm_train(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f32) -> Result<(Tensor, Tensor, Tensor)> {
        let op = "batch_norm";
        for t in [x, weight, bias] {
            t.expect_dtype(op, DType::F32)?;
            x.same_device(op, t)?;
        }
        let shape = x.shape().to_vec();
        let (n, c, l) = match shape[..] {
            [n, c] => (n, c, 1),
            [n, c, l] => (n, c, l),
            _ => return Err(Error::invalid(op, format!("expects [N, C] or [N, C, L], got shape {shape:?}"))),
        };
        if weight.shape() != [c] || bias.shape() != [c] {
            return Err(Error::ShapeMismatch { op, lhs: shape.clone(), rhs: weight.shape().to_vec() });
        }
        let m = n * l;
        if m <= 1 {
            return Err(Error::invalid(op, format!("needs more than one value per channel, got shape {shape:?}")));
        }
        let x3 = x.reshape(&[n, c, l])?;
        let (y, mean, var, rstd) = no_grad(|| -> Result<_> {
            let (mean, var) = channel_moments(&x3, [n, c, l])?;
            let rstd = var.add_scalar(eps)?.sqrt()?.powf(-1.0)?;
            // y = (x - mean) * rstd * w + b = x * scale + shift.
            let scale = rstd.mul(&weight.reshape(&[1, c, 1])?)?;
            let shift = bias.reshape(&[1, c, 1])?.sub(&mean.mul(&scale)?)?;
            let y = x3.mul(&scale)?.add(&shift)?;
            Ok((y, mean, var, rstd))
        })?;
        let node = Op::BatchNorm { x: x.clone(), weight: weight.clone(), bias: bias.clone(), mean: mean.clone(), rstd };
        let y = Tensor::from_op(y.storage().clone(), shape, DType::F32, x.device(), node);
        Ok((y, mean.reshape(&[c])?, var.reshape(&[c])?))
    }

    /// The gradients (x, weight, bias) of [`Tensor::batch_norm_train`] for the output gradient
    /// `g`; `need` says which are wanted. Runs with grad mode off.
    pub(crate) fn batch_norm_backward(
        g: &Tensor,
        x: &Tensor,
        weight: &Tensor,
        mean: &Tensor,
        rstd: &Tensor,
        need: [bool; 3],
    ) -> Result<[Option<Tensor>; 3]> {
        let s = x.shape();
        let (n, c) = (s[0], s[1]);
        let l = if s.len() == 3 { s[2] } else { 1 };
        let m = (n * l) as f32;
        let (g3, x3) = (g.reshape(&[n, c, l])?, x.reshape(&[n, c, l])?);
        let (db, sum_gd) = channel_grad_sums(&g3, &x3, mean, [n, c, l])?;
        let dw = sum_gd.mul(rstd)?;
        let gx = if need[0] {
            // dx = A g + B x + C: A = w rstd, B = -A rstd dw / M, C = -A db / M - B mean.
            let a = weight.reshape(&[1, c, 1])?.mul(rstd)?;
            let b = a.mul(rstd)?.mul(&dw)?.mul_scalar(-1.0 / m)?;
            let cc = a.mul(&db)?.mul_scalar(-1.0 / m)?.sub(&b.mul(mean)?)?;
            Some(g3.mul(&a)?.add(&x3.mul(&b)?)?.add(&cc)?.reshape(s)?)
        } else {
            None
        };
        let gw = if need[1] { Some(dw.reshape(&[c])?) } else { None };
        let gb = if need[2] { Some(db.reshape(&[c])?) } else { None };
        Ok([gx, gw, gb])
    }
}

/// The rows of `x` over its trailing dims `normalized`, checked against `op`'s parameters:
/// (rows, elements per row).
fn trailing_rows(
    op: &'static str,
    x: &Tensor,
    normalized: &[usize],
    params: &[Option<&Tensor>],
) -> Result<(usize, usize)> {
    x.expect_dtype(op, DType::F32)?;
    let r = x.rank();
    if normalized.is_empty() || normalized.len() > r || x.shape()[r - normalized.len()..] != *normalized {
        return Err(Error::invalid(
            op,
            format!(
                "normalized_shape {normalized:?} must be the trailing dims of the input, got shape {:?}",
                x.shape()
            ),
        ));
    }
    for p in params.iter().flatten() {
        p.expect_dtype(op, DType::F32)?;
        x.same_device(op, p)?;
        if p.shape() != normalized {
            return Err(Error::ShapeMismatch { op, lhs: normalized.to_vec(), rhs: p.shape().to_vec() });
        }
    }
    let n: usize = normalized.iter().product();
    Ok((x.numel() / n.max(1), n))
}

/// Layer normalisation (PyTorch's `F.layer_norm`): each row of the trailing dims
/// `normalized_shape` to mean 0 and variance 1 (biased, + eps), then times `weight` and plus
/// `bias` (both shaped `normalized_shape`) where given. Differentiable in all three.
pub fn layer_norm(
    x: &Tensor,
    normalized_shape: &[usize],
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f32,
) -> Result<Tensor> {
    let (rows, n) = trailing_rows("layer_norm", x, normalized_shape, &[weight, bias])?;
    // One node over row kernels (`norm.wgsl`'s on the GPU, their mirror on the CPU); rows
    // longer than the GPU's row kernels take, and empty inputs, compose reductions (which go
    // in blocks).
    let node = match x.storage() {
        _ if rows == 0 || n == 0 => None,
        Storage::Gpu(xb) if n <= kernels::LAYER_NORM_MAX_ROW => {
            let buf = |t: Option<&Tensor>| match t.map(|t| t.storage()) {
                Some(Storage::Gpu(b)) => Some(b.clone()),
                _ => None,
            };
            let (wb, bb) = (buf(weight), buf(bias));
            let (y, stats) = kernels::layer_norm_rows(gpu(x.dev()), xb, wb.as_deref(), bb.as_deref(), [rows, n], eps)?;
            Some((Storage::gpu(y), Storage::gpu(stats)))
        }
        Storage::Cpu(_) => {
            let (w, b) = (weight.map(|w| w.cpu_f32()), bias.map(|b| b.cpu_f32()));
            let (y, stats) = cpu::layer_norm_rows(x.cpu_f32(), w, b, n, eps);
            Some((Storage::f32_cpu(y), Storage::f32_cpu(stats)))
        }
        Storage::Gpu(_) => None,
    };
    if let Some((y, stats)) = node {
        let stats = Tensor::from_parts(stats, vec![2 * rows], DType::F32, x.device());
        let node = Op::LayerNorm { x: x.clone(), weight: weight.cloned(), bias: bias.cloned(), stats, rows };
        return Ok(Tensor::from_op(y, x.shape().to_vec(), DType::F32, x.device(), node));
    }
    let x2 = x.reshape(&[rows, n])?;
    let d = x2.sub(&x2.mean(1usize, true)?)?;
    let var = d.mul(&d)?.mean(1usize, true)?;
    let mut y = d.mul(&var.add_scalar(eps)?.powf(-0.5)?)?;
    if let Some(w) = weight {
        y = y.mul(&w.reshape(&[1, n])?)?;
    }
    if let Some(b) = bias {
        y = y.add(&b.reshape(&[1, n])?)?;
    }
    y.reshape(x.shape())
}

/// RMS normalisation (PyTorch's `F.rms_norm`): each row of the trailing dims divided by
/// sqrt(mean(x^2) + eps), times `weight` where given; `eps` None is f32's machine epsilon, as
/// PyTorch. Differentiable.
pub fn rms_norm(x: &Tensor, normalized_shape: &[usize], weight: Option<&Tensor>, eps: Option<f32>) -> Result<Tensor> {
    let (rows, n) = trailing_rows("rms_norm", x, normalized_shape, &[weight])?;
    let x2 = x.reshape(&[rows, n])?;
    let ms = x2.mul(&x2)?.mean(1usize, true)?;
    let mut y = x2.mul(&ms.add_scalar(eps.unwrap_or(f32::EPSILON))?.powf(-0.5)?)?;
    if let Some(w) = weight {
        y = y.mul(&w.reshape(&[1, n])?)?;
    }
    y.reshape(x.shape())
}

impl Tensor {
    /// The gradients (x, weight, bias where present) of the layer-norm node for the output
    /// gradient `g`: dx from the row kernel, dw = sum over rows of g * xhat, db = sum of g.
    pub(crate) fn layer_norm_backward(
        g: &Tensor,
        x: &Tensor,
        weight: Option<&Tensor>,
        has_bias: bool,
        stats: &Tensor,
        rows: usize,
    ) -> Result<Vec<Option<Tensor>>> {
        let n = x.numel() / rows;
        let dx = match x.storage() {
            Storage::Cpu(_) => Storage::f32_cpu(cpu::layer_norm_rows_backward(
                g.cpu_f32(),
                x.cpu_f32(),
                weight.map(|w| w.cpu_f32()),
                stats.cpu_f32(),
                n,
            )),
            Storage::Gpu(_) => {
                let gb = |t: &Tensor| super::gpu_buf("layer_norm", t);
                let wb = weight.map(gb).transpose()?;
                let (g_b, x_b, s_b) = (gb(g)?, gb(x)?, gb(stats)?);
                Storage::gpu(kernels::layer_norm_rows_backward(
                    gpu(x.dev()),
                    &g_b,
                    &x_b,
                    wb.as_deref(),
                    &s_b,
                    [rows, n],
                )?)
            }
        };
        let mut out = vec![Some(Tensor::from_parts(dx, x.shape().to_vec(), DType::F32, x.device()))];
        let g2 = g.reshape(&[rows, n])?;
        if let Some(w) = weight {
            let (mean, rstd) = (stats.slice_flat(0, &[rows, 1])?, stats.slice_flat(rows, &[rows, 1])?);
            let xhat = x.reshape(&[rows, n])?.sub(&mean)?.mul(&rstd)?;
            out.push(Some(g2.mul(&xhat)?.sum(0usize, false)?.reshape(w.shape())?));
        }
        if has_bias {
            out.push(Some(g2.sum(0usize, false)?.reshape(&x.shape()[x.rank() - n_dims(x, n)..])?));
        }
        Ok(out)
    }
}

/// How many trailing dims of x hold `n` elements (the normalized shape's rank).
fn n_dims(x: &Tensor, n: usize) -> usize {
    let mut prod = 1;
    for (i, &d) in x.shape().iter().rev().enumerate() {
        prod *= d;
        if prod == n {
            return i + 1;
        }
    }
    x.rank()
}
