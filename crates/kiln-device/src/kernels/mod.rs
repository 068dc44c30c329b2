//! Kernel launchers, one group per kernel family. Each takes pooled buffers plus plain shape
//! parameters, allocates its output from the pool and records one dispatch. Parameters travel
//! in `#[repr(C)]` structs that mirror the `Params` struct of the family's WGSL file.

use bytemuck::{Pod, Zeroable};

use crate::context::GpuDevice;
use crate::error::{DeviceError, DeviceResult};
use crate::fuse::{Fusable, Index, Launch, NodeOp};
use crate::op::{BinaryOp, UnaryOp};
use crate::pool::GpuBuffer;
use crate::wgsl::Family;

pub mod matmul;
pub use matmul::{MatmulDesc, matmul};

/// The most dims a broadcasting or gathering kernel indexes (after merging).
pub const MAX_DIMS: usize = 8;

/// A 1-D launch of `n` invocations in workgroups of 256, split over a 2-D grid past 65535 groups.
fn grid(dev: &GpuDevice, groups: usize) -> DeviceResult<[u32; 3]> {
    let max = dev.limits().max_compute_workgroups_per_dimension.max(1) as usize;
    if groups <= max {
        return Ok([groups as u32, 1, 1]);
    }
    let y = groups.div_ceil(max);
    if y > max {
        return Err(DeviceError::Launch { op: "grid", msg: format!("{groups} workgroups exceed {max}^2") });
    }
    Ok([max as u32, y as u32, 1])
}

pub(crate) fn grid_threads(dev: &GpuDevice, n: usize) -> DeviceResult<[u32; 3]> {
    grid(dev, n.div_ceil(256))
}

/// A 2-D launch for [rows, cols]: x over the columns (256 per workgroup), y (and z past the
/// per-dimension limit) over the rows. `None` when it does not fit.
fn grid_rows(dev: &GpuDevice, rows: usize, cols: usize) -> Option<[u32; 3]> {
    let max = dev.limits().max_compute_workgroups_per_dimension.max(1) as usize;
    let gx = cols.div_ceil(256);
    let (gy, gz) = if rows <= max { (rows, 1) } else { (max, rows.div_ceil(max)) };
    (gx <= max && gz <= max && rows > 0 && cols > 0).then_some([gx as u32, gy as u32, gz as u32])
}

fn u32_of(op: &'static str, v: usize) -> DeviceResult<u32> {
    u32::try_from(v).map_err(|_| DeviceError::Launch { op, msg: format!("{v} does not fit in u32 indexing") })
}

fn pack_dims(op: &'static str, v: &[usize]) -> DeviceResult<[u32; MAX_DIMS]> {
    if v.len() > MAX_DIMS {
        return Err(DeviceError::Launch { op, msg: format!("rank {} exceeds {MAX_DIMS}", v.len()) });
    }
    let mut out = [0u32; MAX_DIMS];
    for (o, &x) in out.iter_mut().zip(v) {
        *o = u32_of(op, x)?;
    }
    Ok(out)
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct UnaryParams {
    n: u32,
    pad0: u32,
    alpha: f32,
    pad1: u32,
}

/// y = op(x) over `n` f32 elements.
///
/// Like every elementwise launcher, this may join the open fused chain (see `fuse/`) instead
/// of recording its own dispatch.
pub fn unary(dev: &GpuDevice, op: UnaryOp, alpha: f32, x: &GpuBuffer, n: usize) -> DeviceResult<GpuBuffer> {
    unary_or_fill(dev, op, alpha, Some(x), n)
}

/// A new buffer of `n` f32 elements, all `value` (one dispatch, no upload).
pub fn fill(dev: &GpuDevice, value: f32, n: usize) -> DeviceResult<GpuBuffer> {
    unary_or_fill(dev, UnaryOp::Fill, value, None, n)
}

/// `unary`, or with no input, `fill` (whose kernel does not read its input binding).
fn unary_or_fill(dev: &GpuDevice, op: UnaryOp, alpha: f32, x: Option<&GpuBuffer>, n: usize) -> DeviceResult<GpuBuffer> {
    let name = if x.is_none() { "fill" } else { "unary" };
    let op = if x.is_none() { UnaryOp::Fill } else { op };
    let mut out = dev.alloc(n as u64 * 4, name)?;
    let (entry, threads) = by_four(n, "unary", "unary4");
    let params = UnaryParams { n: u32_of(name, n)?, pad0: 0, alpha, pad1: 0 };
    let groups = grid_threads(dev, threads)?;
    let xb = x.map_or(dev.dummy(), GpuBuffer::raw).clone();
    let launch = Box::new(move |dev: &GpuDevice, out: wgpu::Buffer| {
        let pipe = dev.pipeline(Family::Unary, entry, &[("OP", op as u32)])?;
        Ok(Launch { pipe, bufs: vec![xb, out], params: bytemuck::bytes_of(&params).to_vec(), groups })
    });
    let args: Vec<(&GpuBuffer, Index)> = x.map(|x| (x, Index::Full)).into_iter().collect();
    dev.elementwise(launch, Some(Fusable { op: NodeOp::Unary(op, alpha), args: &args, n }), &mut out)?;
    Ok(out)
}

/// The entry point for `n` elements and the invocations it needs: the vec4 form (four elements
/// per invocation) when `n % 4 == 0`, else the scalar one.
fn by_four(n: usize, scalar: &'static str, four: &'static str) -> (&'static str, usize) {
    if n % 4 == 0 { (four, n / 4) } else { (scalar, n) }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct StridedParams {
    n: u32,
    rank: u32,
    offset: u32,
    pad0: u32,
    shape: [u32; MAX_DIMS],
    s1: [u32; MAX_DIMS],
    s2: [u32; MAX_DIMS],
}

/// out = op(a, b) with broadcasting: `shape` is the (contiguous) output shape, `sa` and `sb`
/// the element strides of a and b per output dim (0 on broadcast dims).
pub fn binary(
    dev: &GpuDevice,
    op: BinaryOp,
    a: &GpuBuffer,
    b: &GpuBuffer,
    shape: &[usize],
    sa: &[usize],
    sb: &[usize],
) -> DeviceResult<GpuBuffer> {
    let n: usize = shape.iter().product();
    // How each operand lines up with the output, for fusion (before the views below rename them).
    let index = (Index::of(shape, sa), Index::of(shape, sb));
    let mut out = dev.alloc(n as u64 * 4, "binary")?;
    // Four columns per invocation where every operand's columns are contiguous (stride 1, rows
    // 4-aligned) or broadcast (stride 0); one dim counts as a single row.
    let vec_ok = |s: &[usize; 2]| s[1] == 0 || (s[1] == 1 && s[0] % 4 == 0);
    let view4 = match shape.len() {
        1 => Some(([1, shape[0]], [0, sa[0]], [0, sb[0]])),
        2 => Some(([shape[0], shape[1]], [sa[0], sa[1]], [sb[0], sb[1]])),
        _ => None,
    }
    .filter(|(sh, a4, b4)| sh[1] % 4 == 0 && vec_ok(a4) && vec_ok(b4));
    // The 2-D launches give every row its own workgroup(s); for narrow rows that is many nearly
    // empty workgroups, each with its own start-up cost on a software adapter ([256, 10]: 256
    // workgroups, 0.34 ms), so rows narrower than a quarter of a workgroup take the 1-D kernel.
    let wide = |cols: usize, rows: usize| rows == 1 || cols >= 64;
    let g4 =
        view4.as_ref().filter(|(sh, ..)| wide(sh[1] / 4, sh[0])).and_then(|(sh, ..)| grid_rows(dev, sh[0], sh[1] / 4));
    let two = if g4.is_none() && shape.len() == 2 && wide(shape[1], shape[0]) {
        grid_rows(dev, shape[0], shape[1])
    } else {
        None
    };
    let (entry, dims, sa, sb): (_, &[usize], &[usize], &[usize]) = match (&g4, &view4, &two) {
        (Some(_), Some((sh, a4, b4)), _) => ("binary2d4", sh, a4, b4),
        (_, _, Some(_)) => ("binary2d", shape, sa, sb),
        _ => ("binary", shape, sa, sb),
    };
    let params = StridedParams {
        n: u32_of("binary", n)?,
        rank: dims.len() as u32,
        offset: 0,
        pad0: 0,
        shape: pack_dims("binary", dims)?,
        s1: pack_dims("binary", sa)?,
        s2: pack_dims("binary", sb)?,
    };
    let groups = match g4.or(two) {
        Some(g) => g,
        None => grid_threads(dev, n)?,
    };
    let (ra, rb) = (a.raw().clone(), b.raw().clone());
    let launch = Box::new(move |dev: &GpuDevice, out: wgpu::Buffer| {
        let pipe = dev.pipeline(Family::Binary, entry, &[("OP", op as u32)])?;
        Ok(Launch { pipe, bufs: vec![ra, rb, out], params: bytemuck::bytes_of(&params).to_vec(), groups })
    });
    let fusable = match index {
        (Some(ia), Some(ib)) => Some(Fusable { op: NodeOp::Binary(op), args: &[(a, ia), (b, ib)], n }),
        _ => None,
    };
    dev.elementwise(launch, fusable, &mut out)?;
    Ok(out)
}

/// Gathers the strided view (`shape`, element `strides`, element `offset`) of `src` into a new
/// contiguous buffer. Works on any 32-bit element type.
pub fn gather(
    dev: &GpuDevice,
    src: &GpuBuffer,
    shape: &[usize],
    strides: &[usize],
    offset: usize,
) -> DeviceResult<GpuBuffer> {
    let n: usize = shape.iter().product();
    let out = dev.alloc(n as u64 * 4, "gather")?;
    let two = if shape.len() == 2 { grid_rows(dev, shape[0], shape[1]) } else { None };
    let pipe = dev.pipeline(Family::Copy, if two.is_some() { "gather2d" } else { "gather" }, &[])?;
    let params = StridedParams {
        n: u32_of("gather", n)?,
        rank: shape.len() as u32,
        offset: u32_of("gather", offset)?,
        pad0: 0,
        shape: pack_dims("gather", shape)?,
        s1: pack_dims("gather", strides)?,
        s2: [0; MAX_DIMS],
    };
    // The copy family's Params has no third array; the extra bytes are ignored by the shader.
    let groups = match two {
        Some(g) => g,
        None => grid_threads(dev, n)?,
    };
    dev.record(&pipe, &[src.raw(), out.raw()], bytemuck::bytes_of(&params), groups)?;
    Ok(out)
}

/// Which reduction [`reduce`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    /// Sum over the dim.
    Sum,
    /// Maximum over the dim, with the index of its first occurrence.
    Max,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct DimParams {
    outer: u32,
    dim: u32,
    inner: u32,
    n: u32,
}

/// Reduces x viewed as [outer, dim, inner] over `dim`. Returns the values (outer*inner f32) and,
/// for [`ReduceOp::Max`], the indices (outer*inner u32).
pub fn reduce(
    dev: &GpuDevice,
    op: ReduceOp,
    x: &GpuBuffer,
    outer: usize,
    dim: usize,
    inner: usize,
) -> DeviceResult<(GpuBuffer, Option<GpuBuffer>)> {
    let n_out = outer * inner;
    let out = dev.alloc(n_out as u64 * 4, "reduce")?;
    let idx = match op {
        ReduceOp::Max => Some(dev.alloc(n_out as u64 * 4, "reduce")?),
        ReduceOp::Sum => None,
    };
    if dim == 0 {
        return Err(DeviceError::Launch { op: "reduce", msg: "empty reduction dim".into() });
    }
    let params = DimParams {
        outer: u32_of("reduce", outer)?,
        dim: u32_of("reduce", dim)?,
        inner: u32_of("reduce", inner)?,
        n: u32_of("reduce", n_out)?,
    };
    // Long reductions get a workgroup each (parallel and accurate); many short ones a thread each.
    let wide = dim >= 2048 || (n_out < 256 && dim >= 64);
    let (entry, groups) = match (op, wide) {
        (ReduceOp::Sum, false) if inner % 4 == 0 => ("sum_rows4", grid(dev, (n_out / 4).div_ceil(64))?),
        (ReduceOp::Sum, false) => ("sum_rows", grid_threads(dev, n_out)?),
        (ReduceOp::Max, false) => ("max_rows", grid_threads(dev, n_out)?),
        (ReduceOp::Sum, true) => ("sum_wg", grid(dev, n_out)?),
        (ReduceOp::Max, true) => ("max_wg", grid(dev, n_out)?),
    };
    let pipe = dev.pipeline(Family::Reduce, entry, &[])?;
    let idx_raw = idx.as_ref().map(|b| b.raw()).unwrap_or(dev.dummy());
    dev.record(&pipe, &[x.raw(), out.raw(), idx_raw], bytemuck::bytes_of(&params), groups)?;
    Ok((out, idx))
}

/// softmax (or log_softmax when `log`) of x viewed as [outer, dim, inner] along `dim`.
pub fn softmax(
    dev: &GpuDevice,
    x: &GpuBuffer,
    outer: usize,
    dim: usize,
    inner: usize,
    log: bool,
) -> DeviceResult<GpuBuffer> {
    let out = dev.alloc((outer * dim * inner) as u64 * 4, "softmax")?;
    let rows = outer * inner;
    let params = DimParams {
        outer: u32_of("softmax", outer)?,
        dim: u32_of("softmax", dim)?,
        inner: u32_of("softmax", inner)?,
        n: u32_of("softmax", rows)?,
    };
    let pipe = dev.pipeline(Family::Softmax, "softmax", &[("LOG", log as u32)])?;
    dev.record(&pipe, &[x.raw(), out.raw()], bytemuck::bytes_of(&params), grid_threads(dev, rows)?)?;
    Ok(out)
}

/// out[o, d, i] = (idx[o * inner + i] == d) as f32, for out of shape [outer, dim, inner].
pub fn index_mask(dev: &GpuDevice, idx: &GpuBuffer, outer: usize, dim: usize, inner: usize) -> DeviceResult<GpuBuffer> {
    let n = outer * dim * inner;
    let out = dev.alloc(n as u64 * 4, "index_mask")?;
    let params = DimParams {
        outer: u32_of("index_mask", n)?,
        dim: u32_of("index_mask", dim)?,
        inner: u32_of("index_mask", inner.max(1))?,
        n: 0,
    };
    let pipe = dev.pipeline(Family::Index, "index_mask", &[])?;
    dev.record(&pipe, &[idx.raw(), out.raw()], bytemuck::bytes_of(&params), grid_threads(dev, n)?)?;
    Ok(out)
}

/// The fused optimizer updates of `optim.wgsl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptimKernel {
    /// SGD with optional momentum, dampening, Nesterov and weight decay.
    Sgd,
    /// Adam, or AdamW with the `DECOUPLED` flag; optional amsgrad.
    Adam,
}

/// Flags of [`OptimParams::flags`].
pub mod optim_flags {
    /// Nesterov momentum (SGD).
    pub const NESTEROV: u32 = 1;
    /// The first step: the momentum buffer starts as the gradient (SGD).
    pub const FIRST_STEP: u32 = 2;
    /// Keep the maximum of exp_avg_sq (Adam).
    pub const AMSGRAD: u32 = 4;
    /// Decoupled weight decay (AdamW).
    pub const DECOUPLED: u32 = 8;
    /// Momentum is on (SGD).
    pub const MOMENTUM: u32 = 16;
    /// Maximise instead of minimise.
    pub const MAXIMIZE: u32 = 32;
}

/// The scalars of one optimizer update, mirroring `Params` in `optim.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct OptimParams {
    /// Element count (set by the launcher).
    pub n: u32,
    /// [`optim_flags`].
    pub flags: u32,
    /// Padding.
    pub pad0: [u32; 2],
    /// Learning rate.
    pub lr: f32,
    /// Weight decay.
    pub wd: f32,
    /// SGD momentum.
    pub momentum: f32,
    /// SGD dampening.
    pub dampening: f32,
    /// 1 - beta1 (computed in f64 on the host).
    pub one_minus_beta1: f32,
    /// beta2.
    pub beta2: f32,
    /// 1 - beta2.
    pub one_minus_beta2: f32,
    /// Adam's eps.
    pub eps: f32,
    /// lr / (1 - beta1^t).
    pub step_size: f32,
    /// sqrt(1 - beta2^t).
    pub bc2_sqrt: f32,
    /// 1 - lr * wd (AdamW).
    pub decay: f32,
    /// Padding.
    pub pad1: f32,
}

/// One fused optimizer update of `n` elements: returns the new parameter buffer; the state
/// buffers `s` (momentum; or exp_avg, exp_avg_sq, max_exp_avg_sq) are updated in place, and a
/// `None` state is not touched.
pub fn optim_step(
    dev: &GpuDevice,
    kernel: OptimKernel,
    p: &GpuBuffer,
    g: &GpuBuffer,
    s: [Option<&GpuBuffer>; 3],
    mut params: OptimParams,
    n: usize,
) -> DeviceResult<GpuBuffer> {
    let out = dev.alloc(n as u64 * 4, "optimizer step")?;
    params.n = u32_of("optimizer step", n)?;
    let (entry, threads) = match kernel {
        OptimKernel::Sgd => by_four(n, "sgd", "sgd4"),
        OptimKernel::Adam => by_four(n, "adam", "adam4"),
    };
    let pipe = dev.pipeline(Family::Optim, entry, &[])?;
    let st: Vec<&wgpu::Buffer> =
        s.iter().enumerate().map(|(i, b)| b.map(|b| b.raw()).unwrap_or(dev.dummy_n(i))).collect();
    dev.record(
        &pipe,
        &[p.raw(), g.raw(), out.raw(), st[0], st[1], st[2]],
        bytemuck::bytes_of(&params),
        grid_threads(dev, threads)?,
    )?;
    Ok(out)
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct LossParams {
    rows: u32,
    classes: u32,
    ignore: u32,
    has_ignore: u32,
}

fn loss_params(rows: usize, classes: usize, ignore: Option<u32>) -> DeviceResult<LossParams> {
    Ok(LossParams {
        rows: u32_of("cross_entropy", rows)?,
        classes: u32_of("cross_entropy", classes)?,
        ignore: ignore.unwrap_or(0),
        has_ignore: ignore.is_some() as u32,
    })
}

/// Fused softmax cross-entropy per row: returns (loss `[rows]`, logsumexp `[rows]`) for logits
/// `x` `[rows, classes]` and U32 `labels` `[rows]`; ignored rows give 0, out-of-range labels NaN.
pub fn cross_entropy_rows(
    dev: &GpuDevice,
    x: &GpuBuffer,
    labels: &GpuBuffer,
    rows: usize,
    classes: usize,
    ignore: Option<u32>,
) -> DeviceResult<(GpuBuffer, GpuBuffer)> {
    let loss = dev.alloc(rows as u64 * 4, "cross_entropy")?;
    let lse = dev.alloc(rows as u64 * 4, "cross_entropy")?;
    let params = loss_params(rows, classes, ignore)?;
    let pipe = dev.pipeline(Family::Loss, "ce_rows", &[])?;
    let bufs = [x.raw(), labels.raw(), dev.dummy_n(0), dev.dummy_n(1), loss.raw(), lse.raw()];
    dev.record(&pipe, &bufs, bytemuck::bytes_of(&params), grid_threads(dev, rows)?)?;
    Ok((loss, lse))
}

/// Backward of [`cross_entropy_rows`]: dx `[rows, classes]` = (softmax(x) - onehot) * `g[row]`.
#[allow(clippy::too_many_arguments)]
pub fn cross_entropy_backward(
    dev: &GpuDevice,
    x: &GpuBuffer,
    labels: &GpuBuffer,
    lse: &GpuBuffer,
    g: &GpuBuffer,
    rows: usize,
    classes: usize,
    ignore: Option<u32>,
) -> DeviceResult<GpuBuffer> {
    let n = rows * classes;
    let dx = dev.alloc(n as u64 * 4, "cross_entropy backward")?;
    let params = loss_params(rows, classes, ignore)?;
    let pipe = dev.pipeline(Family::Loss, "ce_backward", &[])?;
    let bufs = [x.raw(), labels.raw(), lse.raw(), g.raw(), dx.raw(), dev.dummy_n(0)];
    dev.record(&pipe, &bufs, bytemuck::bytes_of(&params), grid_threads(dev, n)?)?;
    Ok(dx)
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct StatsParams {
    n: u32,
    slot: u32,
    bins: u32,
    pad0: u32,
    lo: f32,
    hi: f32,
    pad1: [f32; 2],
}

/// Words per tensor in a statistics buffer (see `stats.wgsl`).
pub const STATS_WORDS: usize = 12;

/// Records the statistics of `n` f32 elements of `x` into `out` at `slot` (12 words per slot:
/// n_finite, mean, M2, min, max, sum of squares as f32 bits, then zero/NaN/Inf counts). Many
/// tensors can share one `out`, read back once.
pub fn tensor_stats(dev: &GpuDevice, x: &GpuBuffer, n: usize, out: &GpuBuffer, slot: usize) -> DeviceResult<()> {
    let params = StatsParams {
        n: u32_of("stats", n)?,
        slot: u32_of("stats", slot)?,
        bins: 0,
        pad0: 0,
        lo: 0.0,
        hi: 0.0,
        pad1: [0.0; 2],
    };
    let pipe = dev.pipeline(Family::Stats, "stats", &[])?;
    dev.record(&pipe, &[x.raw(), out.raw()], bytemuck::bytes_of(&params), [1, 1, 1])
}

/// A histogram of the finite elements of `x` in `bins` equal bins over [lo, hi].
pub fn histogram(dev: &GpuDevice, x: &GpuBuffer, n: usize, bins: usize, lo: f32, hi: f32) -> DeviceResult<GpuBuffer> {
    if bins == 0 {
        return Err(DeviceError::Launch { op: "histogram", msg: "at least one bin".into() });
    }
    let counts = dev.upload(&vec![0u8; bins * 4], "histogram")?;
    let params = StatsParams {
        n: u32_of("histogram", n)?,
        slot: 0,
        bins: u32_of("histogram", bins)?,
        pad0: 0,
        lo,
        hi,
        pad1: [0.0; 2],
    };
    let pipe = dev.pipeline(Family::Stats, "histogram", &[])?;
    dev.record(&pipe, &[x.raw(), counts.raw()], bytemuck::bytes_of(&params), grid_threads(dev, n)?)?;
    Ok(counts)
}
