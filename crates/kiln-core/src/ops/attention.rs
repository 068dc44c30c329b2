//! Scaled dot-product attention (PyTorch's `F.scaled_dot_product_attention`, no dropout, scale
//! 1/sqrt(D)). Three forms (`AttentionPolicy`, `kernels::attention_form`):
//! - fused, on the GPU: one autograd node, `Op::Attention`, over kiln-device's fused kernels
//!   (`attention.wgsl`): the forward keeps an online softmax per query row and saves only the
//!   output and one log-normaliser per row; the backward recomputes the scores (one kernel for
//!   the query gradient, one for the key and value gradients), so no [L, S] matrix is ever
//!   written and memory is O(L) per head. Head dims up to 128, Dv = D.
//! - blocked, on the GPU (`attention_blocked.rs`): the same node and the same online softmax
//!   over blocks of keys whose scores the matmul kernels compute: memory O(block) per row, any
//!   head dims; the default on software adapters for score matrices past 32 MiB, and where the
//!   fused kernels do not apply.
//! - composed (the CPU; small problems on software adapters, where it is fastest): matmul,
//!   mask, softmax, matmul, differentiated by its parts.
//!
//! A row whose every key is masked gives NaN in every form, as PyTorch's math backend, and
//! sends no gradient. The additive mask receives no gradient.

use kiln_device::kernels::{self, ATTENTION_MAX_HEAD_DIM, AttentionDesc, AttentionForm};

use super::attention_blocked::Blocked;

use super::gpu;
use crate::autograd::{Op, no_grad};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::shape::{broadcast_shapes, broadcast_strides, contiguous_strides};
use crate::storage::Storage;
use crate::tensor::Tensor;

/// Attention of queries q [.., L, D] over keys k [.., S, D] and values v [.., S, Dv] (the same
/// leading dims): softmax(q k^T / sqrt(D) + attn_mask) v, [.., L, Dv]. `attn_mask` is additive
/// (-inf blocks), broadcast to [.., L, S]; `is_causal` blocks key j for query i when j > i
/// (top-left aligned when L != S, as PyTorch). Differentiable in q, k and v.
pub fn scaled_dot_product_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    attn_mask: Option<&Tensor>,
    is_causal: bool,
) -> Result<Tensor> {
    let op = "scaled_dot_product_attention";
    for t in [q, k, v].into_iter().chain(attn_mask) {
        t.expect_dtype(op, DType::F32)?;
        q.same_device(op, t)?;
    }
    let r = q.rank();
    let bad = r < 2
        || k.rank() != r
        || v.rank() != r
        || q.shape()[..r - 2] != k.shape()[..r - 2]
        || k.shape()[..r - 1] != v.shape()[..r - 1]
        || q.shape()[r - 1] != k.shape()[r - 1];
    if bad {
        return Err(Error::invalid(
            op,
            format!(
                "expects q [.., L, D], k [.., S, D], v [.., S, Dv] with the same leading dims, got {:?}, {:?}, {:?}",
                q.shape(),
                k.shape(),
                v.shape()
            ),
        ));
    }
    let (l, d, s, dv) = (q.shape()[r - 2], q.shape()[r - 1], k.shape()[r - 2], v.shape()[r - 1]);
    let batch = &q.shape()[..r - 2];
    let mut full = batch.to_vec();
    full.extend([l, s]);
    if let Some(m) = attn_mask {
        if broadcast_shapes(op, m.shape(), &full).ok().as_deref() != Some(&full[..]) {
            return Err(Error::invalid(
                op,
                format!("the mask {:?} does not broadcast to the scores {full:?}", m.shape()),
            ));
        }
    }
    let mut out_shape = q.shape().to_vec();
    out_shape[r - 1] = dv;
    if q.numel() == 0 || k.numel() == 0 || v.numel() == 0 {
        return Err(Error::invalid(op, format!("empty inputs {:?}, {:?}, {:?}", q.shape(), k.shape(), v.shape())));
    }
    let scale = 1.0 / (d as f32).sqrt();
    let bh: usize = batch.iter().product();
    let form = match q.dev().as_gpu() {
        Some(g) => match kernels::attention_form(g.options().attention, g.is_software(), bh, l, s) {
            AttentionForm::Fused if d != dv || d > ATTENTION_MAX_HEAD_DIM => AttentionForm::Blocked,
            form => form,
        },
        None => AttentionForm::Composed,
    };
    match form {
        AttentionForm::Fused => fused(q, k, v, attn_mask, is_causal, &full, scale, out_shape),
        AttentionForm::Blocked => blocked(q, k, v, attn_mask, is_causal, scale, out_shape),
        AttentionForm::Composed => composed(q, k, v, attn_mask, is_causal, [l, s], scale)?.reshape(&out_shape),
    }
}

/// The composition: scores, mask, softmax, product; rows with every key blocked give NaN and
/// no gradient.
fn composed(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    causal: bool,
    [l, s]: [usize; 2],
    scale: f32,
) -> Result<Tensor> {
    let bh: usize = q.shape()[..q.rank() - 2].iter().product();
    let (d, dv) = (q.shape()[q.rank() - 1], v.shape()[v.rank() - 1]);
    let q3 = q.reshape(&[bh, l, d])?;
    let mut scores = q3.matmul(&k.reshape(&[bh, s, d])?.transpose(1usize, 2usize)?)?.mul_scalar(scale)?;
    if let Some(m) = mask {
        let mut shape = q.shape()[..q.rank() - 2].to_vec();
        shape.extend([l, s]);
        scores = scores.reshape(&shape)?.add(m)?.reshape(&[bh, l, s])?;
    }
    if causal {
        let above = Tensor::ones(&[l, s], q.dev())?.triu(1)?;
        scores = scores.masked_fill(&above, f32::NEG_INFINITY)?;
    }
    let valid = no_grad(|| scores.max(2usize, true)?.gt_scalar(f32::NEG_INFINITY))?;
    let p = scores.keep_where(&valid)?.softmax(2usize)?.keep_where(&valid)?;
    let nan = Tensor::full(&[], f32::NAN, q.dev())?.keep_where(&valid.eq_scalar(0.0)?)?;
    p.matmul(&v.reshape(&[bh, s, dv])?)?.add(&nan)
}

/// The element strides of the mask broadcast to `full` = [..batch, L, S], as (b, h, i, j) with
/// h the last batch dim and b the ones before it merged; None if the leading dims do not merge.
fn mask_strides(mask: &Tensor, full: &[usize]) -> Option<[usize; 4]> {
    let st = broadcast_strides(mask.shape(), full);
    let n = full.len();
    let (lead, lead_st) = (&full[..n.saturating_sub(3)], &st[..n.saturating_sub(3)]);
    let h = if n >= 3 { st[n - 3] } else { 0 };
    // b walks the leading dims: all broadcast, or nested contiguously (b's stride the last one's).
    let b = if lead.iter().zip(lead_st).all(|(&sz, &s)| sz == 1 || s == 0) {
        0
    } else {
        let inner = lead_st.last().copied().unwrap_or(0);
        let merges =
            (0..lead.len().saturating_sub(1)).all(|i| lead[i] == 1 || lead_st[i] == lead_st[i + 1] * lead[i + 1]);
        if !merges || lead_st.contains(&0) {
            return None;
        }
        inner
    };
    Some([b, h, st[n - 2], st[n - 1]])
}

#[allow(clippy::too_many_arguments)]
fn fused(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    causal: bool,
    full: &[usize],
    scale: f32,
    out_shape: Vec<usize>,
) -> Result<Tensor> {
    let r = q.rank();
    let batch = &q.shape()[..r - 2];
    let heads = if batch.is_empty() { 1 } else { batch[batch.len() - 1] };
    let (l, s, d) = (q.shape()[r - 2], k.shape()[r - 2], q.shape()[r - 1]);
    // A mask whose leading dims cannot be walked by one stride is copied out in full.
    let mask = match mask {
        Some(m) if mask_strides(m, full).is_none() => Some(m.broadcast_to(full)?.detach()),
        Some(m) => Some(m.detach()),
        None => None,
    };
    let desc = AttentionDesc {
        bh: batch.iter().product(),
        heads: heads.max(1),
        l,
        s,
        d,
        scale,
        causal,
        mask_strides: mask.as_ref().map(|m| mask_strides(m, full).unwrap_or_else(|| tail4(&contiguous_strides(full)))),
    };
    let g = gpu(q.dev());
    let (qb, kb, vb) = (gpu_buf(q)?, gpu_buf(k)?, gpu_buf(v)?);
    let mb = mask.as_ref().map(gpu_buf).transpose()?;
    let (o, lse) = kernels::attention_forward(g, &qb, &kb, &vb, mb.as_deref(), &desc)?;
    let o = Storage::gpu(o);
    let saved = Tensor::from_parts(o.clone(), out_shape.clone(), DType::F32, q.device());
    let lse = Tensor::from_parts(Storage::gpu(lse), vec![desc.bh * l], DType::F32, q.device());
    let node = Op::Attention { q: q.clone(), k: k.clone(), v: v.clone(), mask, desc, out: saved, lse, blocked: false };
    Ok(Tensor::from_op(o, out_shape, DType::F32, q.device(), node))
}

/// The problem in the blocked form, from the node's inputs (any leading dims).
fn blocked_problem<'a>(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&'a Tensor>,
    causal: bool,
    scale: f32,
) -> Result<Blocked<'a>> {
    let r = q.rank();
    let batch = q.shape()[..r - 2].to_vec();
    let bh: usize = batch.iter().product();
    let three = |t: &Tensor| t.reshape(&[bh, t.shape()[r - 2], t.shape()[r - 1]]);
    Ok(Blocked { q: three(q)?, k: three(k)?, v: three(v)?, mask, batch, causal, scale })
}

/// The blocked form as one node (`Op::Attention` with `blocked`).
fn blocked(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    causal: bool,
    scale: f32,
    out_shape: Vec<usize>,
) -> Result<Tensor> {
    let mask = mask.map(|m| m.detach());
    let (o, lse) = blocked_problem(q, k, v, mask.as_ref(), causal, scale)?.forward()?;
    let r = q.rank();
    let (l, s, d) = (q.shape()[r - 2], k.shape()[r - 2], q.shape()[r - 1]);
    let bh = o.shape()[0];
    let heads = if r > 2 { q.shape()[r - 3] } else { 1 };
    let desc = AttentionDesc { bh, heads: heads.max(1), l, s, d, scale, causal, mask_strides: None };
    let saved = o.reshape(&out_shape)?;
    let node =
        Op::Attention { q: q.clone(), k: k.clone(), v: v.clone(), mask, desc, out: saved.clone(), lse, blocked: true };
    Ok(Tensor::from_op(saved.storage().clone(), out_shape, DType::F32, q.device(), node))
}

/// The GPU buffer of a tensor on the GPU.
fn gpu_buf(t: &Tensor) -> Result<std::sync::Arc<kiln_device::GpuBuffer>> {
    super::gpu_buf("scaled_dot_product_attention", t)
}

/// The last four of contiguous strides (b, h, i, j), zeros in front when there are fewer.
fn tail4(st: &[usize]) -> [usize; 4] {
    let mut out = [0; 4];
    for (o, s) in out.iter_mut().rev().zip(st.iter().rev()) {
        *o = *s;
    }
    out
}

impl Tensor {
    /// The gradients (q, k, v) of the fused attention for the output gradient `g`. Not recorded.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn attention_backward(
        g: &Tensor,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: Option<&Tensor>,
        desc: &AttentionDesc,
        out: &Tensor,
        lse: &Tensor,
        blocked: bool,
    ) -> Result<[Tensor; 3]> {
        if blocked {
            let p = blocked_problem(q, k, v, mask, desc.causal, desc.scale)?;
            let three = |t: &Tensor| t.reshape(&[desc.bh, desc.l, t.shape()[t.rank() - 1]]);
            let [dq, dk, dv] = p.backward(&three(g)?, &three(out)?, lse)?;
            return Ok([dq.reshape(q.shape())?, dk.reshape(k.shape())?, dv.reshape(v.shape())?]);
        }
        let rows = desc.bh * desc.l;
        let delta = g.mul(out)?.reshape(&[rows, desc.d])?.sum(1usize, false)?;
        let stats = Tensor::cat(&[lse, &delta], 0usize)?;
        let (qb, kb, vb, gb, sb) = (gpu_buf(q)?, gpu_buf(k)?, gpu_buf(v)?, gpu_buf(g)?, gpu_buf(&stats)?);
        let mb = mask.map(gpu_buf).transpose()?;
        let (dq, dk, dv) = kernels::attention_backward(gpu(q.dev()), &qb, &kb, &vb, mb.as_deref(), &gb, &sb, desc)?;
        let t = |b, shape: &[usize]| Tensor::from_parts(Storage::gpu(b), shape.to_vec(), DType::F32, q.device());
        Ok([t(dq, q.shape()), t(dk, k.shape()), t(dv, v.shape())])
    }
}
