//! CPU reference kernels. They mirror the WGSL kernels op for op (elementwise ops through the op
//! table's scalar functions, one loop per op), so the two devices agree; sums
//! accumulate in f64.

use std::mem::MaybeUninit;

use kiln_device::kernels::{Im2colDesc, MatmulDesc};
use kiln_device::op::{BinaryOp, UnaryOp};

/// Expands the op tables into `unary` and `binary`: one loop per op, so each op's scalar
/// function is inlined into its own loop (which the compiler vectorises) instead of matching on
/// the op at every element.
macro_rules! cpu_unary {
    ($($(#[$doc:meta])* $name:ident : $wgsl:literal, $cpu:expr, [$($rest:tt)*], [$($grad:tt)*];)*) => {
        pub(crate) fn unary(op: UnaryOp, alpha: f32, x: &[f32]) -> Vec<f32> {
            match op {
                $(UnaryOp::$name => unary_with(x, alpha, $cpu),)*
            }
        }
    };
}
kiln_device::unary_ops!(cpu_unary);

macro_rules! cpu_binary {
    ($($(#[$doc:meta])* $name:ident : $wgsl:literal, $cpu:expr, [$($rest:tt)*], [$($grad:tt)*];)*) => {
        /// `op` with broadcasting over `shape`, a and b read through strides `sa` and `sb`.
        pub(crate) fn binary(op: BinaryOp, a: &[f32], b: &[f32], shape: &[usize], sa: &[usize], sb: &[usize]) -> Vec<f32> {
            match op {
                $(BinaryOp::$name => binary_with(a, b, shape, sa, sb, $cpu),)*
            }
        }
    };
}
kiln_device::binary_ops!(cpu_binary);

#[inline(always)]
fn unary_with(x: &[f32], alpha: f32, f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    par_rows(&mut out.spare_capacity_mut()[..x.len()], 1, |r0, block| {
        for (d, &v) in block.iter_mut().zip(&x[r0..]) {
            d.write(f(v, alpha));
        }
    });
    // SAFETY: par_rows handed every element of the x.len() to one block, which wrote it.
    unsafe { out.set_len(x.len()) };
    out
}

/// Visits the element offsets of a strided view in row-major order of `shape`.
fn for_each_offset(shape: &[usize], strides: &[&[usize]], f: impl FnMut(&[usize])) {
    for_each_offset_in(shape, strides, 0, shape.iter().product(), f)
}

/// [`for_each_offset`] for positions `start..start + count` of the row-major order only.
fn for_each_offset_in(shape: &[usize], strides: &[&[usize]], start: usize, count: usize, mut f: impl FnMut(&[usize])) {
    let rank = shape.len();
    let mut idx = vec![0usize; rank];
    let mut offs = vec![0usize; strides.len()];
    let mut rest = start;
    for d in (0..rank).rev() {
        idx[d] = rest % shape[d].max(1);
        rest /= shape[d].max(1);
        for (o, s) in offs.iter_mut().zip(strides) {
            *o += idx[d] * s[d];
        }
    }
    for _ in 0..count {
        f(&offs);
        for d in (0..rank).rev() {
            idx[d] += 1;
            for (o, s) in offs.iter_mut().zip(strides) {
                *o += s[d];
            }
            if idx[d] < shape[d] {
                break;
            }
            for (o, s) in offs.iter_mut().zip(strides) {
                *o -= s[d] * shape[d];
            }
            idx[d] = 0;
        }
    }
}

/// Elements from which an elementwise op splits its output over the cores (a thread's start
/// costs about as much as this many simple elementwise steps).
const PAR_ELEMENTS: usize = 1 << 17;

/// Calls `f(first_row, rows)` on blocks of whole rows of `out` (rows of `len`), on this thread
/// alone for small outputs, else one block per core on scoped threads.
fn par_rows<T: Send>(out: &mut [T], len: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let rows = out.len() / len.max(1);
    let parts = (out.len() / PAR_ELEMENTS).clamp(1, cpu_threads()).min(rows.max(1));
    if parts == 1 {
        return f(0, out);
    }
    let per = rows.div_ceil(parts);
    let jobs: Vec<(usize, &mut [T])> = out.chunks_mut(per * len).enumerate().map(|(i, c)| (i * per, c)).collect();
    run_parts(jobs, |(r0, block)| f(r0, block));
}

/// A binary op `f` with broadcasting: the leading dims walked by offsets, the last dim as a
/// row loop whose contiguous and broadcast cases are plain slice loops.
#[inline(always)]
fn binary_with(
    a: &[f32],
    b: &[f32],
    shape: &[usize],
    sa: &[usize],
    sb: &[usize],
    f: impl Fn(f32, f32) -> f32 + Sync,
) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let Some(r) = shape.len().checked_sub(1) else {
        return vec![f(a[0], b[0])];
    };
    let mut out = Vec::with_capacity(n);
    if n == 0 {
        return out;
    }
    let (len, ia, ib) = (shape[r], sa[r], sb[r]);
    // Written in place, row by row (no zeroing pass first), in blocks of rows over the cores for
    // large outputs: every one of the n elements is written, one row of `len` per offset of the
    // leading dims.
    par_rows(&mut out.spare_capacity_mut()[..n], len, |r0, block| {
        let count = block.len() / len;
        let mut rows = block.chunks_exact_mut(len);
        for_each_offset_in(&shape[..r], &[&sa[..r], &sb[..r]], r0, count, |o| {
            let (oa, ob) = (o[0], o[1]);
            let row = rows.next().expect("one row per offset");
            match (ia, ib) {
                (1, 1) => {
                    for ((d, &x), &y) in row.iter_mut().zip(&a[oa..oa + len]).zip(&b[ob..ob + len]) {
                        d.write(f(x, y));
                    }
                }
                (1, 0) => {
                    let y = b[ob];
                    for (d, &x) in row.iter_mut().zip(&a[oa..oa + len]) {
                        d.write(f(x, y));
                    }
                }
                (0, 1) => {
                    let x = a[oa];
                    for (d, &y) in row.iter_mut().zip(&b[ob..ob + len]) {
                        d.write(f(x, y));
                    }
                }
                _ => {
                    for (i, d) in row.iter_mut().enumerate() {
                        d.write(f(a[oa + i * ia], b[ob + i * ib]));
                    }
                }
            }
        });
        assert!(rows.next().is_none(), "binary wrote every row of its block");
    });
    // SAFETY: par_rows handed every row of the n elements to one block, whose rows were all
    // written (checked).
    unsafe { out.set_len(n) };
    out
}

/// The strided view (`shape`, `strides`, `offset`) of `src`, contiguous; the last dim as a row
/// loop (a slice copy where it is contiguous).
pub(crate) fn gather<T: Copy>(src: &[T], shape: &[usize], strides: &[usize], offset: usize) -> Vec<T> {
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n);
    let Some(r) = shape.len().checked_sub(1) else {
        out.push(src[offset]);
        return out;
    };
    if n == 0 {
        return out;
    }
    let (len, step) = (shape[r], strides[r]);
    for_each_offset(&shape[..r], &[&strides[..r]], |o| {
        let start = offset + o[0];
        if step == 1 {
            out.extend_from_slice(&src[start..start + len]);
        } else {
            out.extend((0..len).map(|i| src[start + i * step]));
        }
    });
    out
}

pub(crate) fn matmul(a: &[f32], b: &[f32], d: &MatmulDesc) -> Vec<f32> {
    let total = d.batch * d.m * d.n;
    if total == 0 || d.k == 0 {
        return vec![0f32; total];
    }
    // C is written by sgemm with beta = 0, which writes every element without reading any
    // ("if beta is zero, C does not need to be initialized"): no zeroing pass first.
    let mut c: Vec<f32> = Vec::with_capacity(total);
    // The unsafe call below reads through raw strides: a view that does not fit its slice would
    // be undefined behaviour, so it is an internal error (a bug in the caller's shape logic).
    let last_a = (d.batch - 1) * d.a_bs + (d.m - 1) * d.a_rs + (d.k - 1) * d.a_cs;
    let last_b = (d.batch - 1) * d.b_bs + (d.k - 1) * d.b_rs + (d.n - 1) * d.b_cs;
    assert!(
        last_a < a.len() && last_b < b.len(),
        "matmul views past their data: {d:?}, {} and {} elements",
        a.len(),
        b.len()
    );
    // Large products are split over the machine's cores: C in blocks of rows (whole matrices
    // when the batch has at least as many as there are parts), the blocks in `parts` groups of
    // consecutive ones. Each block is one sgemm, which sums every element's terms in the same
    // order as one call over the whole matrix would: the results do not depend on the split.
    let parts = (d.batch * d.m * d.n * d.k / MATMUL_PART_WORK).clamp(1, cpu_threads());
    let rows = (d.batch * d.m).div_ceil(parts).min(d.m);
    let mut blocks = Vec::new();
    for (z, pc) in c.spare_capacity_mut()[..total].chunks_exact_mut(d.m * d.n).enumerate() {
        for (i, block) in pc.chunks_mut(rows * d.n).enumerate() {
            blocks.push((z, i * rows, block));
        }
    }
    let per = blocks.len().div_ceil(parts);
    let mut groups: Vec<Vec<_>> = Vec::new();
    for (i, block) in blocks.into_iter().enumerate() {
        if i % per == 0 {
            groups.push(Vec::new());
        }
        groups.last_mut().expect("a group was pushed at i = 0").push(block);
    }
    run_parts(groups, |group| {
        for (z, r0, block) in group {
            sgemm_rows(a, b, d, z, r0, block);
        }
    });
    // SAFETY: every element of the `total` was written by one sgemm above (the matrices, or
    // their row blocks, cover it exactly).
    unsafe { c.set_len(total) };
    c
}

/// Multiply-adds below which a product is not split over threads (a thread's start costs
/// about as much as this much work).
const MATMUL_PART_WORK: usize = 1 << 21;

/// Threads the CPU device's large products use: the machine's cores (at most 16).
fn cpu_threads() -> usize {
    #[cfg(test)]
    if let Some(n) = tests::THREADS.get() {
        return n;
    }
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()).min(16))
}

/// Runs `f` on each job, the first on this thread and the others on scoped threads.
fn run_parts<J: Send>(jobs: Vec<J>, f: impl Fn(J) + Sync) {
    let f = &f;
    std::thread::scope(|s| {
        let mut jobs = jobs.into_iter();
        let first = jobs.next();
        for job in jobs {
            s.spawn(move || f(job));
        }
        if let Some(job) = first {
            f(job);
        }
    });
}

/// C rows r0.. of batch entry z (`pc`, whole rows of n) = A rows r0.. times B, one sgemm.
fn sgemm_rows(a: &[f32], b: &[f32], d: &MatmulDesc, z: usize, r0: usize, pc: &mut [MaybeUninit<f32>]) {
    let m = pc.len() / d.n;
    let pa = &a[z * d.a_bs + r0 * d.a_rs..];
    let pb = &b[z * d.b_bs..];
    // SAFETY: the strides describe views inside `a` and `b` (the largest index of each was
    // checked by the caller; rows r0..r0 + m are inside the m rows checked) and `pc` is m*n
    // contiguous, written (not read) by sgemm with beta = 0.
    unsafe {
        matrixmultiply::sgemm(
            m,
            d.k,
            d.n,
            1.0,
            pa.as_ptr(),
            d.a_rs as isize,
            d.a_cs as isize,
            pb.as_ptr(),
            d.b_rs as isize,
            d.b_cs as isize,
            0.0,
            pc.as_mut_ptr().cast::<f32>(),
            d.n as isize,
            1,
        );
    }
}

/// Sums `x` viewed as [outer, dim, inner] over `dim`, in f64, each sum in order of `dim`. Rows
/// of `inner` are added whole into a row of sums (reading down a column of a wide matrix would
/// miss the cache at every element).
pub(crate) fn sum_dim(x: &[f32], outer: usize, dim: usize, inner: usize) -> Vec<f32> {
    let mut out = vec![0f32; outer * inner];
    if out.is_empty() {
        return out;
    }
    if inner == 1 {
        for (o, row) in out.iter_mut().zip(x.chunks_exact(dim.max(1))) {
            *o = row.iter().map(|&v| v as f64).sum::<f64>() as f32;
        }
        return out;
    }
    let mut acc = vec![0f64; inner];
    for (o, sums) in out.chunks_exact_mut(inner).enumerate() {
        acc.fill(0.0);
        for row in x[o * dim * inner..(o + 1) * dim * inner].chunks_exact(inner) {
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += v as f64;
            }
        }
        for (s, a) in sums.iter_mut().zip(&acc) {
            *s = *a as f32;
        }
    }
    out
}

pub(crate) fn max_dim(x: &[f32], outer: usize, dim: usize, inner: usize) -> (Vec<f32>, Vec<u32>) {
    let mut vals = vec![0f32; outer * inner];
    let mut idx = vec![0u32; outer * inner];
    for o in 0..outer {
        for i in 0..inner {
            let base = o * dim * inner + i;
            let (mut best, mut bi) = (x[base], 0usize);
            for d in 1..dim {
                let v = x[base + d * inner];
                // NaN is the maximum (the first NaN), as in PyTorch and the GPU's kernels.
                if v > best || (v.is_nan() && !best.is_nan()) {
                    best = v;
                    bi = d;
                }
            }
            vals[o * inner + i] = best;
            idx[o * inner + i] = bi as u32;
        }
    }
    (vals, idx)
}

pub(crate) fn softmax(x: &[f32], outer: usize, dim: usize, inner: usize, log: bool) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    for o in 0..outer {
        for i in 0..inner {
            let base = o * dim * inner + i;
            let at = |d: usize| base + d * inner;
            let m = (0..dim).map(|d| x[at(d)]).fold(f32::NEG_INFINITY, f32::max);
            // The sum in f64: a row of millions of f32 terms would lose digits.
            let s = (0..dim).map(|d| (x[at(d)] - m).exp() as f64).sum::<f64>();
            let (s, lse) = (s as f32, m + s.ln() as f32);
            for d in 0..dim {
                y[at(d)] = if log { x[at(d)] - lse } else { (x[at(d)] - m).exp() / s };
            }
        }
    }
    y
}

pub(crate) fn index_mask(idx: &[u32], outer: usize, dim: usize, inner: usize) -> Vec<f32> {
    let mut out = vec![0f32; outer * dim * inner];
    for o in 0..outer {
        for i in 0..inner {
            let d = idx[o * inner + i] as usize;
            if d < dim {
                out[(o * dim + d) * inner + i] = 1.0;
            }
        }
    }
    out
}

/// Layer normalisation of x viewed as [rows, n] (as `layer_norm` in norm.wgsl): the output,
/// times `w` and plus `b` where given, and the rows' statistics (the means, then 1 / std).
pub(crate) fn layer_norm_rows(
    x: &[f32],
    w: Option<&[f32]>,
    b: Option<&[f32]>,
    n: usize,
    eps: f32,
) -> (Vec<f32>, Vec<f32>) {
    let rows = x.len() / n;
    let mut y = vec![0f32; x.len()];
    let mut stats = vec![0f32; 2 * rows];
    for (r, (xr, yr)) in x.chunks_exact(n).zip(y.chunks_exact_mut(n)).enumerate() {
        let mean = (xr.iter().map(|&v| v as f64).sum::<f64>() / n as f64) as f32;
        let var = xr.iter().map(|&v| ((v - mean) as f64).powi(2)).sum::<f64>() / n as f64;
        let rstd = 1.0 / (var as f32 + eps).sqrt();
        for (j, (d, &v)) in yr.iter_mut().zip(xr).enumerate() {
            *d = (v - mean) * rstd * w.map_or(1.0, |w| w[j]) + b.map_or(0.0, |b| b[j]);
        }
        (stats[r], stats[rows + r]) = (mean, rstd);
    }
    (y, stats)
}

/// The input gradient of [`layer_norm_rows`] (as `layer_norm_backward` in norm.wgsl):
/// dx = rstd (gw - mean(gw) - xhat mean(gw xhat)) per row, gw = g w.
pub(crate) fn layer_norm_rows_backward(g: &[f32], x: &[f32], w: Option<&[f32]>, stats: &[f32], n: usize) -> Vec<f32> {
    let rows = x.len() / n;
    let mut dx = vec![0f32; x.len()];
    let mut gw = vec![0f32; n];
    for (r, ((gr, xr), dr)) in g.chunks_exact(n).zip(x.chunks_exact(n)).zip(dx.chunks_exact_mut(n)).enumerate() {
        let (mean, rstd) = (stats[r], stats[rows + r]);
        for (j, d) in gw.iter_mut().enumerate() {
            *d = gr[j] * w.map_or(1.0, |w| w[j]);
        }
        let (mut a, mut b) = (0f64, 0f64);
        for (&gv, &xv) in gw.iter().zip(xr) {
            a += gv as f64;
            b += (gv * (xv - mean) * rstd) as f64;
        }
        let (ma, mb) = ((a / n as f64) as f32, (b / n as f64) as f32);
        for ((d, &gv), &xv) in dr.iter_mut().zip(&gw).zip(xr) {
            *d = rstd * (gv - ma - (xv - mean) * rstd * mb);
        }
    }
    dx
}

/// Fused cross-entropy rows (as `ce_rows` in loss.wgsl): (loss, logsumexp) per row.
pub(crate) fn ce_rows(x: &[f32], labels: &[u32], classes: usize, ignore: Option<u32>) -> (Vec<f32>, Vec<f32>) {
    let rows = labels.len();
    let mut loss = vec![0f32; rows];
    let mut lse = vec![0f32; rows];
    for r in 0..rows {
        let row = &x[r * classes..(r + 1) * classes];
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let s = row.iter().map(|v| (v - m).exp() as f64).sum::<f64>();
        lse[r] = m + s.ln() as f32;
        let l = labels[r];
        loss[r] = if Some(l) == ignore {
            0.0
        } else if l as usize >= classes {
            f32::NAN
        } else {
            lse[r] - row[l as usize]
        };
    }
    (loss, lse)
}

/// Backward of [`ce_rows`]: (softmax - onehot) * g[row], 0 on ignored rows.
pub(crate) fn ce_backward(
    x: &[f32],
    labels: &[u32],
    lse: &[f32],
    g: &[f32],
    classes: usize,
    ignore: Option<u32>,
) -> Vec<f32> {
    let mut dx = vec![0f32; x.len()];
    for (r, &l) in labels.iter().enumerate() {
        if Some(l) == ignore {
            continue;
        }
        for c in 0..classes {
            let i = r * classes + c;
            let onehot = if c as u32 == l { 1.0 } else { 0.0 };
            dx[i] = ((x[i] - lse[r]).exp() - onehot) * g[r];
        }
    }
    dx
}

/// The columns [c, kh, kw, b, oh, ow] of x [b, c, h, w] (as `im2col.wgsl`); positions outside x
/// read `pad`.
pub(crate) fn im2col(x: &[f32], d: &Im2colDesc, pad: f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(d.cols_len());
    for c in 0..d.c {
        for ky in 0..d.kh {
            for kx in 0..d.kw {
                for b in 0..d.b {
                    let plane = &x[(b * d.c + c) * d.h * d.w..][..d.h * d.w];
                    for oy in 0..d.oh {
                        let iy = (oy * d.sh + ky * d.dh).checked_sub(d.ph).filter(|&y| y < d.h);
                        for ox in 0..d.ow {
                            let ix = (ox * d.sw + kx * d.dw).checked_sub(d.pw).filter(|&v| v < d.w);
                            out.push(match (iy, ix) {
                                (Some(y), Some(v)) => plane[y * d.w + v],
                                _ => pad,
                            });
                        }
                    }
                }
            }
        }
    }
    out
}

/// im2col's adjoint: every column value added into the x element it read (f64 sums).
pub(crate) fn col2im(g: &[f32], d: &Im2colDesc) -> Vec<f32> {
    let mut acc = vec![0f64; d.input_len()];
    let mut i = 0;
    for c in 0..d.c {
        for ky in 0..d.kh {
            for kx in 0..d.kw {
                for b in 0..d.b {
                    for oy in 0..d.oh {
                        let iy = (oy * d.sh + ky * d.dh).checked_sub(d.ph).filter(|&y| y < d.h);
                        for ox in 0..d.ow {
                            let ix = (ox * d.sw + kx * d.dw).checked_sub(d.pw).filter(|&v| v < d.w);
                            if let (Some(y), Some(v)) = (iy, ix) {
                                acc[((b * d.c + c) * d.h + y) * d.w + v] += g[i] as f64;
                            }
                            i += 1;
                        }
                    }
                }
            }
        }
    }
    acc.into_iter().map(|v| v as f32).collect()
}

/// Max pooling (as `pool.wgsl`): the values [b, c, oh, ow] and the flat index in x of each
/// window's first maximum (a NaN wins and stays).
pub(crate) fn max_pool(x: &[f32], d: &Im2colDesc) -> (Vec<f32>, Vec<u32>) {
    let n = d.b * d.c * d.oh * d.ow;
    let (mut vals, mut idx) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for plane in 0..d.b * d.c {
        let base = plane * d.h * d.w;
        for oy in 0..d.oh {
            for ox in 0..d.ow {
                let (mut best, mut at, mut found) = (f32::NEG_INFINITY, base, false);
                for ky in 0..d.kh {
                    let Some(iy) = (oy * d.sh + ky * d.dh).checked_sub(d.ph).filter(|&y| y < d.h) else { continue };
                    for kx in 0..d.kw {
                        let Some(ix) = (ox * d.sw + kx * d.dw).checked_sub(d.pw).filter(|&v| v < d.w) else {
                            continue;
                        };
                        let e = base + iy * d.w + ix;
                        let v = x[e];
                        if !found || v > best || (v.is_nan() && !best.is_nan()) {
                            (best, at) = (v, e);
                        }
                        found = true;
                    }
                }
                vals.push(best);
                idx.push(at as u32);
            }
        }
    }
    (vals, idx)
}

/// Backward of [`max_pool`]: each window's gradient added to its arg-max.
pub(crate) fn max_pool_backward(g: &[f32], idx: &[u32], d: &Im2colDesc) -> Vec<f32> {
    let mut dx = vec![0f32; d.input_len()];
    for (gi, &i) in g.iter().zip(idx) {
        dx[i as usize] += gi;
    }
    dx
}

/// Per-channel mean and biased variance of x viewed as [n, c, l] (`norm.wgsl`'s mode 0): the c
/// means, then the c variances; two passes in f64.
pub(crate) fn channel_moments(x: &[f32], [n, c, l]: [usize; 3]) -> Vec<f32> {
    let m = (n * l) as f64;
    let mut out = vec![0f32; 2 * c];
    for ch in 0..c {
        let rows = || (0..n).flat_map(move |i| x[(i * c + ch) * l..(i * c + ch + 1) * l].iter());
        let mean = rows().map(|&v| v as f64).sum::<f64>() / m;
        let var = rows().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / m;
        out[ch] = mean as f32;
        out[c + ch] = var as f32;
    }
    out
}

/// For g and x viewed as [n, c, l]: sum(g) per channel, then sum(g * (x - mean)) per channel
/// (`norm.wgsl`'s mode 1), in f64.
pub(crate) fn channel_grad_sums(g: &[f32], x: &[f32], mean: &[f32], [n, c, l]: [usize; 3]) -> Vec<f32> {
    let mut out = vec![0f32; 2 * c];
    for ch in 0..c {
        let (mut a, mut b) = (0f64, 0f64);
        for i in 0..n {
            let r = (i * c + ch) * l..(i * c + ch + 1) * l;
            for (&gv, &xv) in g[r.clone()].iter().zip(&x[r]) {
                a += gv as f64;
                b += gv as f64 * (xv - mean[ch]) as f64;
            }
        }
        out[ch] = a as f32;
        out[c + ch] = b as f32;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// This test thread's stand-in for the machine's core count (CI may have one core).
        pub(super) static THREADS: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
    }

    /// Large outputs go in blocks of rows over the cores: every broadcast form of the row loop
    /// (both rows, a broadcast value on either side, strided) gives what one naive loop over
    /// the indices gives, across block boundaries that fall inside the leading dims.
    #[test]
    fn split_elementwise_matches_a_naive_loop() {
        // 411K elements in three blocks of rows (as on a 3-core machine), whose boundaries fall
        // inside dim 1.
        THREADS.set(Some(3));
        let (d2, d3) = (1031, 19);
        let shape = [3, 7, d2, d3];
        let n: usize = shape.iter().product();
        assert_eq!(n / PAR_ELEMENTS, 3);
        let a: Vec<f32> = (0..n).map(|i| (i % 97) as f32 * 0.5 - 7.0).collect();
        let b: Vec<f32> = (0..3 * d2 * d3).map(|i| (i % 13) as f32 + 1.0).collect();
        let contiguous = [7 * d2 * d3, d2 * d3, d3, 1];
        // b broadcast over dim 1 (stride 0): rows contiguous, a broadcast value along the rows,
        // transposed (strided rows).
        let b_cases: [[usize; 4]; 3] = [[d2 * d3, 0, d3, 1], [d2 * d3, 0, 1, 0], [d2 * d3, 0, 1, d2]];
        for sb in b_cases {
            for (sa, swap) in [(contiguous, false), (contiguous, true)] {
                let (x, y, sx, sy) = if swap { (&b, &a, &sb, &sa) } else { (&a, &b, &sa, &sb) };
                let got = binary(BinaryOp::Sub, x, y, &shape, sx, sy);
                let mut want = Vec::with_capacity(n);
                for i in 0..shape[0] {
                    for j in 0..shape[1] {
                        for k in 0..shape[2] {
                            for l in 0..shape[3] {
                                let at = |s: &[usize; 4]| i * s[0] + j * s[1] + k * s[2] + l * s[3];
                                want.push(x[at(sx)] - y[at(sy)]);
                            }
                        }
                    }
                }
                assert_eq!(got, want, "b strides {sb:?}, swapped {swap}");
            }
        }
        let got = unary(UnaryOp::MulScalar, 3.0, &a);
        assert_eq!(got, a.iter().map(|v| v * 3.0).collect::<Vec<_>>());
    }

    /// Products split over threads (by rows, or by batch entries) give exactly the unsplit
    /// results: each element's terms are summed in the same order.
    #[test]
    fn split_matmul_matches_one_thread_exactly() {
        let (m, k, n) = (301, 67, 257);
        let a: Vec<f32> = (0..3 * m * k).map(|i| ((i * 7919) % 1000) as f32 / 999.0 - 0.5).collect();
        let b: Vec<f32> = (0..3 * k * n).map(|i| ((i * 104_729) % 1000) as f32 / 999.0 - 0.5).collect();
        // One product (split by rows), three (split by batch entries), two sharing one A (by
        // rows across both); B read transposed.
        for (batch, a_bs, b_bs) in [(1, 0, 0), (3, m * k, k * n), (2, 0, k * n)] {
            let d = MatmulDesc { m, n, k, batch, a_rs: k, a_cs: 1, a_bs, b_rs: 1, b_cs: k, b_bs };
            assert!(batch * m * n * k / MATMUL_PART_WORK >= 2);
            THREADS.set(Some(1));
            let one = matmul(&a, &b, &d);
            THREADS.set(Some(3));
            assert_eq!(matmul(&a, &b, &d), one, "batch {batch}");
            // And against f64, so that both are right.
            for (i, &c) in one.iter().enumerate().step_by(977) {
                let (z, r, col) = (i / (m * n), i / n % m, i % n);
                let want: f64 = (0..k).map(|t| a[z * a_bs + r * k + t] as f64 * b[z * b_bs + col * k + t] as f64).sum();
                assert!((c as f64 - want).abs() < 1e-4, "{c} vs {want}");
            }
        }
    }
}
