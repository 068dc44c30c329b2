//! Kernel launchers, one file per kernel family of `shaders/` (and `matmul.rs` for the matmul
//! kernels, generated and hand-written). Each takes pooled buffers plus plain shape parameters,
//! allocates its output from the pool and records one dispatch (elementwise launchers may join
//! the open fused chain instead). Parameters travel in `#[repr(C)]` structs that mirror the
//! `Params` struct of the family's WGSL.

use bytemuck::{Pod, Zeroable};

use crate::error::{DeviceError, DeviceResult};

/// The loop iterations one invocation may run in one dispatch, every loop of the kernel
/// counted: llvmpipe (Mesa's software rasteriser, under lavapipe) ends every loop of a shader,
/// silently, once the shader's loops have run 65535 iterations in all
/// (`LP_MAX_TGSI_LOOP_ITERATIONS` in gallivm, shared by all its loops), and a real GPU's
/// watchdog cuts long dispatches. A kernel whose loops grow with the data walks it in blocks
/// (one dispatch each), spreads it over a workgroup, or refuses past its limit with an error.
pub const LOOP_BUDGET: usize = 60_000;

mod attention;
mod binary;
mod copy;
mod im2col;
mod index;
mod loss;
pub mod matmul;
mod norm;
mod optim;
mod recurrence;
mod reduce;
mod softmax;
mod stats;
mod unary;

pub use attention::{
    ATTENTION_MAX_HEAD_DIM, AttentionDesc, AttentionForm, COMPOSED_SCORES_MAX_BYTES, attention_backward,
    attention_form, attention_forward,
};
pub use binary::binary;
pub use copy::{gather, place};
pub use im2col::{Im2colDesc, col2im, im2col, max_pool, max_pool_backward};
pub use index::index_mask;
pub use loss::{CE_MAX_CLASSES, cross_entropy_backward, cross_entropy_pick, cross_entropy_rows};
pub use matmul::{MatmulDesc, matmul, matmul_at};
pub use norm::{LAYER_NORM_MAX_ROW, channel_grad_sums, channel_moments, layer_norm_rows, layer_norm_rows_backward};
pub use optim::{OptimKernel, OptimParams, optim_flags, optim_step};
pub use recurrence::{CellKind, RecurrenceDesc, recurrence_backward, recurrence_forward};
pub use reduce::{ReduceOp, reduce};
pub use softmax::{SOFTMAX_MAX_DIM, softmax};
pub use stats::{STATS_WORDS, histogram, tensor_stats};
pub use unary::{fill, unary};

/// The most dims a broadcasting or gathering kernel indexes (after merging).
pub const MAX_DIMS: usize = 8;

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

/// The entry point for `n` elements and the invocations it needs: the vec4 form (four elements
/// per invocation) when `n % 4 == 0`, else the scalar one.
fn by_four(n: usize, scalar: &'static str, four: &'static str) -> (&'static str, usize) {
    if n % 4 == 0 { (four, n / 4) } else { (scalar, n) }
}

/// The uniform of the strided families (binary, copy).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct StridedParams {
    n: u32,
    rank: u32,
    offset: u32,
    pad0: u32,
    shape: [u32; MAX_DIMS],
    s1: [u32; MAX_DIMS],
    s2: [u32; MAX_DIMS],
}

/// The uniform of the families that view a tensor as [outer, dim, inner] (reduce, softmax, index).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct DimParams {
    outer: u32,
    dim: u32,
    inner: u32,
    n: u32,
}
