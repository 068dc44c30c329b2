//! Launchers of `attention.wgsl`: fused scaled dot-product attention, forward (output and
//! per-row log-normaliser) and backward (query gradient; key and value gradients), one
//! invocation per row, O(D) memory per row.

use bytemuck::{Pod, Zeroable};

use super::u32_of;
use crate::device::GpuDevice;
use crate::error::{DeviceError, DeviceResult};
use crate::options::AttentionPolicy;
use crate::pool::GpuBuffer;
use crate::recorder::grid;
use crate::wgsl::Family;

/// Under [`AttentionPolicy::Auto`] on a software adapter, score matrices up to this many bytes
/// take the composition: on llvmpipe it is faster at every size measured (the fused kernels'
/// per-row key reads are per-lane gathers there), and memory decides only beyond.
pub const COMPOSED_SCORES_MAX_BYTES: usize = 32 << 20;

/// Whether attention over `bh` heads of `l` queries and `s` keys runs the fused kernels under
/// `policy` on an adapter that is (`software`) or is not a software one: a pure function.
pub fn fused_attention(policy: AttentionPolicy, software: bool, bh: usize, l: usize, s: usize) -> bool {
    match policy {
        AttentionPolicy::Fused => true,
        AttentionPolicy::Composed => false,
        AttentionPolicy::Auto => {
            !software || bh.saturating_mul(l).saturating_mul(s).saturating_mul(4) > COMPOSED_SCORES_MAX_BYTES
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_composes_small_problems_on_software_adapters_only() {
        use AttentionPolicy::*;
        assert!(fused_attention(Auto, false, 48, 64, 64));
        assert!(!fused_attention(Auto, true, 48, 64, 64));
        assert!(!fused_attention(Auto, true, 4, 1024, 1024)); // 16 MiB of scores
        assert!(fused_attention(Auto, true, 4, 4096, 4096)); // 256 MiB
        assert!(fused_attention(Fused, true, 1, 1, 1) && !fused_attention(Composed, false, 4, 4096, 4096));
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
    let lse = dev.alloc(rows.max(1) as u64 * 4, "attention")?;
    let cx = dev.cx();
    let m = mask.map(|b| b.raw()).unwrap_or(cx.dummy(0));
    let bufs = [q.raw(), k.raw(), v.raw(), m, cx.dummy(0), cx.dummy(0), o.raw(), lse.raw()];
    let pipe = cx.pipeline(Family::Attention, "attn_fwd", &[])?;
    dev.record(&pipe, &bufs, bytemuck::bytes_of(&p), grid(cx, rows.div_ceil(64))?)?;
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
    dev.record(&pipe, &bufs, bytemuck::bytes_of(&pq), grid(cx, qrows.div_ceil(64))?)?;
    let pipe = cx.pipeline(Family::Attention, "attn_bwd_kv", &[])?;
    let bufs: Vec<&wgpu::Buffer> = ro.iter().copied().chain([dk.raw(), dv.raw()]).collect();
    dev.record(&pipe, &bufs, bytemuck::bytes_of(&pk), grid(cx, krows.div_ceil(64))?)?;
    Ok((dq, dk, dv))
}
