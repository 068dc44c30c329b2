//! The blocked form of scaled dot-product attention (`AttentionForm::Blocked`): the scores in
//! tiles of [`ROW_BLOCK`] query rows by [`KEY_BLOCK`] keys, each tile computed by the matmul
//! kernels, masked and folded into its rows' running softmax (maximum m, sum l and
//! unnormalised output, rescaled as each block of keys raises m: flash attention's online
//! softmax, a block of keys at a time instead of one key). The forward saves the output and
//! one log-normaliser per row; the backward recomputes each tile's probabilities from them.
//! So no more than one tile of scores (and its gradients) is alive at a time, whatever L and
//! S; under the causal mask the tiles above the diagonal are skipped. On a software adapter
//! this is as fast as the whole-matrix composition and several times faster than the fused
//! kernels (whose per-row loops llvmpipe runs as per-lane gathers). Transposed operands are
//! read in place (`matmul_t`), never copied. Every op here runs without recording (the node is `Op::Attention`; its backward is [`Blocked::backward`]).

use crate::autograd::no_grad;
use crate::error::Result;
use crate::tensor::Tensor;

/// Keys per block.
pub(crate) const KEY_BLOCK: usize = 256;

/// Query rows per block: every tile of scores is [BH, ROW_BLOCK, KEY_BLOCK] (2 MiB for 8 heads)
/// or smaller at the edges, so the pool reuses the same few buffer sizes throughout, and the
/// causal mask skips the tiles above the diagonal. 256 measured faster than 512 and 1024 at
/// L = 1024 on llvmpipe (PERFORMANCE.md).
pub(crate) const ROW_BLOCK: usize = 256;

/// One attention problem in the blocked form: q [BH, L, D], k [BH, S, D], v [BH, S, Dv]
/// contiguous, the additive mask as given (broadcast to [..batch, L, S]), `batch` the leading
/// dims whose product is BH.
pub(crate) struct Blocked<'a> {
    pub(crate) q: Tensor,
    pub(crate) k: Tensor,
    pub(crate) v: Tensor,
    pub(crate) mask: Option<&'a Tensor>,
    pub(crate) batch: Vec<usize>,
    pub(crate) causal: bool,
    pub(crate) scale: f32,
}

impl Blocked<'_> {
    fn dims(&self) -> (usize, usize, usize) {
        (self.q.shape()[0], self.q.shape()[1], self.k.shape()[1])
    }

    /// The blocks [start, start + len) of `n` in steps of `step`.
    fn spans(n: usize, step: usize) -> impl Iterator<Item = (usize, usize)> {
        (0..n).step_by(step).map(move |a| (a, step.min(n - a)))
    }

    /// The key blocks that rows [r0, r0 + rn) see (under the causal mask, key j is seen by rows
    /// i >= j only, so blocks starting past the last row are skipped).
    fn key_blocks(&self, r0: usize, rn: usize) -> impl Iterator<Item = (usize, usize)> {
        let causal = self.causal;
        Self::spans(self.dims().2, KEY_BLOCK).filter(move |&(j0, _)| !causal || j0 < r0 + rn)
    }

    /// The masked scores of query rows [r0, r0 + rn) and keys [j0, j0 + n): [BH, rn, n], -inf
    /// where blocked.
    fn scores(&self, (r0, rn): (usize, usize), (j0, n): (usize, usize)) -> Result<Tensor> {
        let bh = self.dims().0;
        let kb = self.k.narrow(1usize, j0, n)?;
        let mut sc = Tensor::matmul_t(&self.q.narrow(1usize, r0, rn)?, false, &kb, true)?.mul_scalar(self.scale)?;
        if let Some(m) = self.mask {
            let r = m.rank();
            let mut mb = if m.shape()[r - 1] == 1 { m.clone() } else { m.narrow(r - 1, j0, n)? };
            if r >= 2 && m.shape()[r - 2] != 1 {
                mb = mb.narrow(r - 2, r0, rn)?;
            }
            let mut shape = self.batch.clone();
            shape.extend([rn, n]);
            sc = sc.reshape(&shape)?.add(&mb)?.reshape(&[bh, rn, n])?;
        }
        if self.causal && j0 + n > r0 + 1 {
            // Key j0 + c is blocked for query r0 + i when j0 + c > r0 + i.
            let dev = self.q.dev();
            let cols = Tensor::arange(n, dev)?.add_scalar(j0 as f32)?.reshape(&[1, n])?;
            let rows = Tensor::arange(rn, dev)?.add_scalar(r0 as f32)?.reshape(&[rn, 1])?;
            sc = sc.masked_fill(&cols.gt(&rows)?, f32::NEG_INFINITY)?;
        }
        Ok(sc)
    }

    /// The output [BH, L, Dv] (NaN on rows with every key blocked) and the rows' log-normalisers
    /// [BH, L, 1] (+inf on those rows, so that they send no gradient).
    pub(crate) fn forward(&self) -> Result<(Tensor, Tensor)> {
        no_grad(|| {
            let (bh, l, _) = self.dims();
            let dv = self.v.shape()[2];
            let dev = self.q.dev();
            let (mut outs, mut lses) = (Vec::new(), Vec::new());
            for rows in Self::spans(l, ROW_BLOCK) {
                let mut m = Tensor::full(&[bh, rows.1, 1], f32::NEG_INFINITY, dev)?;
                let mut sum = Tensor::zeros(&[bh, rows.1, 1], dev)?;
                let mut acc = Tensor::zeros(&[bh, rows.1, dv], dev)?;
                for keys in self.key_blocks(rows.0, rows.1) {
                    let sc = self.scores(rows, keys)?;
                    let m1 = m.maximum(&sc.max(2usize, true)?)?;
                    // Rows with no key yet keep m = -inf: subtract 0 there (every term is 0).
                    let base = m1.keep_where(&m1.gt_scalar(f32::NEG_INFINITY)?)?;
                    let p = sc.sub(&base)?.exp()?;
                    let corr = m.sub(&base)?.exp()?;
                    sum = sum.mul(&corr)?.add(&p.sum(2usize, true)?)?;
                    acc = acc.mul(&corr)?.add(&p.matmul(&self.v.narrow(1usize, keys.0, keys.1)?)?)?;
                    m = m1;
                }
                let seen = sum.gt_scalar(0.0)?;
                lses.push(m.add(&sum.log()?)?.where_(&seen, &Tensor::full(&[], f32::INFINITY, dev)?)?);
                outs.push(acc.div(&sum)?);
            }
            Ok((cat(&outs)?, cat(&lses)?))
        })
    }

    /// The gradients (dq, dk, dv), shaped as q, k, v here, for the output gradient `g` [BH, L,
    /// Dv] given the forward's output and log-normalisers.
    pub(crate) fn backward(&self, g: &Tensor, out: &Tensor, lse: &Tensor) -> Result<[Tensor; 3]> {
        no_grad(|| {
            let (bh, l, s) = self.dims();
            let (d, dv) = (self.q.shape()[2], self.v.shape()[2]);
            let dev = self.q.dev();
            // delta = rowsum(g * o), 0 on rows that took no key (their o is NaN).
            let delta = g.mul(out)?.sum(2usize, true)?.keep_where(&lse.lt_scalar(f32::INFINITY)?)?;
            let mut dks: Vec<Tensor> =
                Self::spans(s, KEY_BLOCK).map(|(_, n)| Tensor::zeros(&[bh, n, d], dev)).collect::<Result<_>>()?;
            let mut dvs: Vec<Tensor> =
                Self::spans(s, KEY_BLOCK).map(|(_, n)| Tensor::zeros(&[bh, n, dv], dev)).collect::<Result<_>>()?;
            let mut dqs = Vec::new();
            for rows in Self::spans(l, ROW_BLOCK) {
                let at = |t: &Tensor| t.narrow(1usize, rows.0, rows.1);
                let (q0, g0, lse0, delta0) = (at(&self.q)?, at(g)?, at(lse)?, at(&delta)?);
                let mut dq = Tensor::zeros(&[bh, rows.1, d], dev)?;
                for (b, keys) in self.key_blocks(rows.0, rows.1).enumerate() {
                    let p = self.scores(rows, keys)?.sub(&lse0)?.exp()?;
                    let (kb, vb) = (self.k.narrow(1usize, keys.0, keys.1)?, self.v.narrow(1usize, keys.0, keys.1)?);
                    dvs[b] = dvs[b].add(&Tensor::matmul_t(&p, true, &g0, false)?)?;
                    let dp = Tensor::matmul_t(&g0, false, &vb, true)?;
                    let ds = p.mul(&dp.sub(&delta0)?)?.mul_scalar(self.scale)?;
                    dq = dq.add(&ds.matmul(&kb)?)?;
                    dks[b] = dks[b].add(&Tensor::matmul_t(&ds, true, &q0, false)?)?;
                }
                dqs.push(dq);
            }
            Ok([cat(&dqs)?, cat(&dks)?, cat(&dvs)?])
        })
    }
}

/// Blocks joined along dim 1 (one block as it is).
fn cat(parts: &[Tensor]) -> Result<Tensor> {
    if parts.len() == 1 { Ok(parts[0].clone()) } else { Tensor::cat(&parts.iter().collect::<Vec<_>>(), 1usize) }
}
