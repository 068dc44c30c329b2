//! Launchers of `attention.wgsl`: fused scaled dot-product attention, forward (output and
//! per-row log-normaliser) and backward (query gradient; key and value gradients), one
//! invocation per row, O(D) memory per row.

use bytemuck::{Pod, Zeroable};

use super::{LOOP_BUDGET, u32_of};
use crate::context::PipelineEntry;
use crate::device::GpuDevice;
use crate::error::{DeviceError, DeviceResult};
use crate::options::AttentionPolicy;
use crate::pool::GpuBuffer;
use crate::recorder::grid;
use crate::wgsl::Family;

/// Under [`AttentionPolicy::Auto`] on a software adapter, score matrices up to this many bytes
/// take the composition (the fastest form there) and larger ones the blocked form.
pub const COMPOSED_SCORES_MAX_BYTES: usize = 32 << 20;

/// The forms of attention (see kiln-core's `scaled_dot_product_attention`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionForm {
    /// The fused kernels of `attention.wgsl`.
    Fused,
    /// Keys in blocks: each block's scores by matmul, an online softmax across blocks.
    Blocked,
    /// The whole score matrix.
    Composed,
}

/// The form attention over `bh` heads of `l` queries and `s` keys takes under `policy` on an
/// adapter that is (`software`) or is not a software one: a pure function. On llvmpipe the
/// fused kernels' per-row key reads are per-lane gathers, and the matmul kernels that the
/// composed and blocked forms use are several times faster.
pub fn attention_form(policy: AttentionPolicy, software: bool, bh: usize, l: usize, s: usize) -> AttentionForm {
    match policy {
        AttentionPolicy::Fused => AttentionForm::Fused,
        AttentionPolicy::Blocked => AttentionForm::Blocked,
        AttentionPolicy::Composed => AttentionForm::Composed,
        AttentionPolicy::Auto if !software => AttentionForm::Fused,
        AttentionPolicy::Auto => {
            if bh.saturating_mul(l).saturating_mul(s).saturating_mul(4) > COMPOSED_SCORES_MAX_BYTES {
                AttentionForm::Blocked
            } else {
                AttentionForm::Composed
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_composes_or_blocks_on_software_adapters_only() {
        use AttentionForm as F;
        use AttentionPolicy::*;
        assert_eq!(attention_form(Auto, false, 48, 64, 64), F::Fused);
        assert_eq!(attention_form(Auto, true, 48, 64, 64), F::Composed);
        assert_eq!(attention_form(Auto, true, 4, 1024, 1024), F::Composed); // 16 MiB of scores
        assert_eq!(attention_form(Auto, true, 4, 4096, 4096), F::Blocked); // 256 MiB
        assert_eq!(attention_form(Fused, true, 1, 1, 1), F::Fused);
        assert_eq!(attention_form(Blocked, false, 1, 1, 1), F::Blocked);
        assert_eq!(attention_form(Composed, false, 4, 4096, 4096), F::Composed);
    }

    #[test]
    fn blocks_cover_the_range_within_the_loop_budget() {
        assert_eq!(blocks(0, 10, 0), vec![(0, 0)]);
        assert_eq!(blocks(5, LOOP_BUDGET, 0), vec![(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]);
        let b = blocks(4096, 193, 384);
        assert_eq!(b.first(), Some(&(0, 308)));
        assert_eq!(b.last().map(|x| x.1), Some(4096));
        assert!(b.windows(2).all(|w| w[0].1 == w[1].0) && b.iter().all(|&(x, y)| 384 + 193 * (y - x) <= LOOP_BUDGET));
    }
}

/// The largest head dim the fused kernels take.
pub const ATTENTION_MAX_HEAD_DIM: usize = 128;

/// The shape of one attention problem: q [bh, l, d], k and v [bh, s, d], `heads` dividing bh
/// (for the mask's strides), and how scores are scaled and masked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionDesc {
    /// Batch times heads.
    pub bh: usize,
    /// Heads (bh = batch * heads).
    pub heads: usize,
    /// Query rows.
    pub l: usize,
    /// Key rows.
    pub s: usize,
    /// Head dim (at most [`ATTENTION_MAX_HEAD_DIM`]).
    pub d: usize,
    /// Multiplies q . k.
    pub scale: f32,
    /// Blocks key j for query i when j > i.
    pub causal: bool,
    /// The additive mask's element strides for (batch, head, i, j), when there is one.
    pub mask_strides: Option<[usize; 4]>,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct AttentionParams {
    rows: u32,
    heads: u32,
    l: u32,
    s: u32,
    d: u32,
    has_mask: u32,
    causal: u32,
    scale: f32,
    m: [u32; 4],
    j0: u32,
    j1: u32,
    first: u32,
    last: u32,
}

/// The blocks [j0, j1) of `n` with at most `fixed + per * len <= LOOP_BUDGET` iterations each
/// (at least one item per block; one empty block when `n` is 0).
fn blocks(n: usize, per: usize, fixed: usize) -> Vec<(usize, usize)> {
    let len = (LOOP_BUDGET.saturating_sub(fixed) / per.max(1)).max(1);
    if n == 0 {
        return vec![(0, 0)];
    }
    (0..n.div_ceil(len)).map(|b| (b * len, ((b + 1) * len).min(n))).collect()
}

/// Records one dispatch per block with the block's range and first/last flags in the params.
fn record_blocks(
    dev: &GpuDevice,
    pipe: &PipelineEntry,
    bufs: &[&wgpu::Buffer],
    base: AttentionParams,
    blocks: &[(usize, usize)],
    groups: [u32; 3],
) -> DeviceResult<()> {
    for (b, &(j0, j1)) in blocks.iter().enumerate() {
        let p = AttentionParams {
            j0: j0 as u32,
            j1: j1 as u32,
            first: (b == 0) as u32,
            last: (b + 1 == blocks.len()) as u32,
            ..base
        };
        dev.record(pipe, bufs, bytemuck::bytes_of(&p), groups)?;
    }
    Ok(())
}

fn params(op: &'static str, a: &AttentionDesc, rows: usize) -> DeviceResult<AttentionParams> {
    if a.d == 0 || a.d > ATTENTION_MAX_HEAD_DIM || a.heads == 0 || a.bh % a.heads != 0 {
        return Err(DeviceError::Launch { op, msg: format!("unsupported problem {a:?}") });
    }
    u32_of(op, a.bh * a.l.max(a.s) * a.d)?;
    let m = a.mask_strides.unwrap_or([0; 4]);
    Ok(AttentionParams {
        rows: u32_of(op, rows)?,
        heads: u32_of(op, a.heads)?,
        l: u32_of(op, a.l)?,
        s: u32_of(op, a.s)?,
        d: u32_of(op, a.d)?,
        has_mask: a.mask_strides.is_some() as u32,
        causal: a.causal as u32,
        scale: a.scale,
        m: [u32_of(op, m[0])?, u32_of(op, m[1])?, u32_of(op, m[2])?, u32_of(op, m[3])?],
        j0: 0,
        j1: 0,
        first: 1,
        last: 1,
    })
}

/// Output [bh, l, d] and the rows' log-normalisers [bh * l] (+inf for a row with every key
/// blocked, whose output is NaN).
pub fn attention_forward(
    dev: &GpuDevice,
    q: &GpuBuffer,
    k: &GpuBuffer,
    v: &GpuBuffer,
    mask: Option<&GpuBuffer>,
    a: &AttentionDesc,
) -> DeviceResult<(GpuBuffer, GpuBuffer)> {
    let rows = a.bh * a.l;
    let p = params("attention", a, rows)?;
    let o = dev.alloc((rows * a.d).max(1) as u64 * 4, "attention")?;
    // lse, and the running sums between blocks after it.
    let lse = dev.alloc(2 * rows.max(1) as u64 * 4, "attention")?;
    let cx = dev.cx();
    let m = mask.map(|b| b.raw()).unwrap_or(cx.dummy(0));
    let bufs = [q.raw(), k.raw(), v.raw(), m, cx.dummy(0), cx.dummy(0), o.raw(), lse.raw()];
    let pipe = cx.pipeline(Family::Attention, "attn_fwd", &[])?;
    let d = a.d;
    record_blocks(dev, &pipe, &bufs, p, &blocks(a.s, 2 * d + 1, 3 * d), grid(cx, rows.div_ceil(64))?)?;
    Ok((o, lse))
}

/// The gradients (dq, dk, dv) for the output gradient `dout` [bh, l, d], given `stats`
/// [2 * bh * l]: the forward's log-normalisers, then delta = rowsum(dout * o).
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    dev: &GpuDevice,
    q: &GpuBuffer,
    k: &GpuBuffer,
    v: &GpuBuffer,
    mask: Option<&GpuBuffer>,
    dout: &GpuBuffer,
    stats: &GpuBuffer,
    a: &AttentionDesc,
) -> DeviceResult<(GpuBuffer, GpuBuffer, GpuBuffer)> {
    let (qrows, krows) = (a.bh * a.l, a.bh * a.s);
    let pq = params("attention_backward", a, qrows)?;
    let pk = params("attention_backward", a, krows)?;
    let dq = dev.alloc((qrows * a.d).max(1) as u64 * 4, "attention_backward")?;
    let dk = dev.alloc((krows * a.d).max(1) as u64 * 4, "attention_backward")?;
    let dv = dev.alloc((krows * a.d).max(1) as u64 * 4, "attention_backward")?;
    let cx = dev.cx();
    let m = mask.map(|b| b.raw()).unwrap_or(cx.dummy(0));
    let ro = [q.raw(), k.raw(), v.raw(), m, dout.raw(), stats.raw()];
    let pipe = cx.pipeline(Family::Attention, "attn_bwd_q", &[])?;
    let bufs: Vec<&wgpu::Buffer> = ro.iter().copied().chain([dq.raw(), cx.dummy(1)]).collect();
    let (per, fixed) = (3 * a.d + 1, 6 * a.d);
    record_blocks(dev, &pipe, &bufs, pq, &blocks(a.s, per, fixed), grid(cx, qrows.div_ceil(64))?)?;
    let pipe = cx.pipeline(Family::Attention, "attn_bwd_kv", &[])?;
    let bufs: Vec<&wgpu::Buffer> = ro.iter().copied().chain([dk.raw(), dv.raw()]).collect();
    record_blocks(dev, &pipe, &bufs, pk, &blocks(a.l, per, fixed), grid(cx, krows.div_ceil(64))?)?;
    Ok((dq, dk, dv))
}
