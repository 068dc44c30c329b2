//! Reverse-mode autograd: the one `Op` enum that records what backward needs, all backward
//! rules (one arm per primitive), the backward walk, and grad mode (`no_grad`).
//!
//! The graph is define-by-run: each result tensor that needs gradients owns its `Op`, which owns
//! its inputs. Nothing global records anything, so the graph lives exactly as long as the
//! tensors that reference it. `backward()` orders the graph topologically from the loss, walks it
//! in reverse, and accumulates (`+=`) into the gradient slots of leaves.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};

use kiln_device::kernels::Im2colDesc;
use kiln_device::op::{BinaryOp, UnaryOp};

use crate::error::{Error, Result};
use crate::shape::split_at_dim;
use crate::tensor::Tensor;

/// What an op recorded for its backward rule. Composite ops (mean, cross-entropy, linear ...)
/// are built from these primitives and need no entry of their own.
pub(crate) enum Op {
    /// y = f(x) (alpha is the scalar of the scalar forms).
    Unary { x: Tensor, op: UnaryOp, alpha: f32 },
    /// y = f(a, b) with broadcasting.
    Binary { a: Tensor, b: Tensor, op: BinaryOp },
    /// y = op(a) @ op(b) (2-D, or batched with a possibly broadcast batch), where op transposes
    /// the last two dims when `ta`/`tb` is set (read through strides, never copied).
    Matmul { a: Tensor, b: Tensor, ta: bool, tb: bool },
    /// y = x with dims d0 and d1 swapped.
    Transpose { x: Tensor, d0: usize, d1: usize },
    /// y = x with its dims reordered (y dim i is x dim perm[i]).
    Permute { x: Tensor, perm: Vec<usize> },
    /// y = elements start.. of x along `dim` (y's size there is the slice's length).
    Narrow { x: Tensor, dim: usize, start: usize },
    /// y = the xs joined along `dim`, of lengths `lens` there.
    Cat { xs: Vec<Tensor>, dim: usize, lens: Vec<usize> },
    /// y = the fused or blocked scaled dot-product attention of q, k, v (GPU), with the output
    /// and the rows' log-normalisers saved for the backward (which recomputes the scores).
    Attention {
        q: Tensor,
        k: Tensor,
        v: Tensor,
        mask: Option<Tensor>,
        desc: kiln_device::kernels::AttentionDesc,
        out: Tensor,
        lse: Tensor,
        /// The blocked form's node (`ops/attention_blocked.rs`), not the fused kernels'.
        blocked: bool,
    },
    /// y = layer normalisation of x over rows of its trailing dims (GPU), times weight, plus
    /// bias; `stats` holds the rows' means then 1 / std.
    LayerNorm { x: Tensor, weight: Option<Tensor>, bias: Option<Tensor>, stats: Tensor, rows: usize },
    /// y = x with another shape (same storage).
    Reshape { x: Tensor },
    /// y = x expanded to a larger shape.
    BroadcastTo { x: Tensor },
    /// y = sum of x over `dim`.
    Sum { x: Tensor, dim: usize, keepdim: bool },
    /// y = max of x over `dim`; idx holds the argmax (U32).
    Max { x: Tensor, dim: usize, keepdim: bool, idx: Tensor },
    /// y = softmax(x) along `dim`.
    Softmax { x: Tensor, dim: usize },
    /// y = log_softmax(x) along `dim`.
    LogSoftmax { x: Tensor, dim: usize },
    /// y = x copied to another device.
    ToDevice { x: Tensor },
    /// y = the sliding windows of x [b, c, h, w] as columns [c, kh, kw, b, oh, ow] (padding
    /// reads a constant): convolution and pooling are built on it.
    Im2col { x: Tensor, desc: Im2colDesc },
    /// y = batch normalisation of x [N, C, (L)] with the batch's statistics (mean, rstd saved as
    /// [1, C, 1]), scaled by weight and shifted by bias: one node, a closed-form backward.
    BatchNorm { x: Tensor, weight: Tensor, bias: Tensor, mean: Tensor, rstd: Tensor },
    /// y = the maximum of each window of x [b, c, h, w]; idx (U32) the flat index in x of each
    /// window's first maximum.
    MaxPool { x: Tensor, idx: Tensor, desc: Im2colDesc },
    /// y[r] = logsumexp(x[r]) - x[r, labels[r]] (0 for ignored rows), fused; lse saved.
    CrossEntropyRows { x: Tensor, labels: Tensor, lse: Tensor, ignore: Option<u32> },
    /// y = the outputs (and LSTM cell states) of a recurrent layer's time loop in one direction
    /// from the input projections xp, the initial states and the hidden weights
    /// (`ops/recurrence.rs`); the states and gate values of every step saved.
    Recurrence {
        xp: Tensor,
        h0: Tensor,
        c0: Option<Tensor>,
        w_hh: Tensor,
        b_hh: Option<Tensor>,
        desc: kiln_device::kernels::RecurrenceDesc,
        states: Tensor,
        aux: Tensor,
    },
}

impl Op {
    /// The op's name, for messages ("exp", "matmul", "add", ...).
    pub(crate) fn name(&self) -> String {
        let lower = |d: String| d.to_lowercase();
        match self {
            Op::Unary { op, .. } => lower(format!("{op:?}")),
            Op::Binary { op, .. } => lower(format!("{op:?}")),
            Op::Matmul { .. } => "matmul".into(),
            Op::Transpose { .. } => "transpose".into(),
            Op::Reshape { .. } => "reshape".into(),
            Op::Permute { .. } => "permute".into(),
            Op::Narrow { .. } => "narrow".into(),
            Op::Cat { .. } => "cat".into(),
            Op::Attention { .. } => "scaled_dot_product_attention".into(),
            Op::LayerNorm { .. } => "layer_norm".into(),
            Op::BroadcastTo { .. } => "broadcast_to".into(),
            Op::Sum { .. } => "sum".into(),
            Op::Max { .. } => "max".into(),
            Op::Softmax { .. } => "softmax".into(),
            Op::LogSoftmax { .. } => "log_softmax".into(),
            Op::ToDevice { .. } => "to".into(),
            Op::CrossEntropyRows { .. } => "cross_entropy".into(),
            Op::Im2col { .. } => "im2col".into(),
            Op::MaxPool { .. } => "max_pool2d".into(),
            Op::BatchNorm { .. } => "batch_norm".into(),
            Op::Recurrence { .. } => "recurrence".into(),
        }
    }

    /// The inputs gradients flow to, in the order `backward` returns them.
    pub(crate) fn inputs(&self) -> Vec<&Tensor> {
        match self {
            Op::BatchNorm { x, weight, bias, .. } => vec![x, weight, bias],
            Op::Binary { a, b, .. } | Op::Matmul { a, b, .. } => vec![a, b],
            Op::Cat { xs, .. } => xs.iter().collect(),
            Op::Attention { q, k, v, .. } => vec![q, k, v],
            Op::LayerNorm { x, weight, bias, .. } => std::iter::once(x).chain(weight).chain(bias).collect(),
            Op::Recurrence { xp, h0, c0, w_hh, b_hh, .. } => {
                [Some(xp), Some(h0), c0.as_ref(), Some(w_hh), b_hh.as_ref()].into_iter().flatten().collect()
            }
            Op::Unary { x, .. }
            | Op::Permute { x, .. }
            | Op::Narrow { x, .. }
            | Op::Transpose { x, .. }
            | Op::Reshape { x }
            | Op::BroadcastTo { x }
            | Op::Sum { x, .. }
            | Op::Max { x, .. }
            | Op::Softmax { x, .. }
            | Op::LogSoftmax { x, .. }
            | Op::CrossEntropyRows { x, .. }
            | Op::Im2col { x, .. }
            | Op::MaxPool { x, .. }
            | Op::ToDevice { x } => vec![x],
        }
    }

    /// Every tensor the op holds (for unlinking the graph on drop).
    pub(crate) fn into_inputs(self) -> Vec<Tensor> {
        match self {
            Op::BatchNorm { x, weight, bias, mean, rstd } => vec![x, weight, bias, mean, rstd],
            Op::Binary { a, b, .. } | Op::Matmul { a, b, .. } => vec![a, b],
            Op::Max { x, idx, .. } | Op::MaxPool { x, idx, .. } => vec![x, idx],
            Op::CrossEntropyRows { x, labels, lse, .. } => vec![x, labels, lse],
            Op::Cat { xs, .. } => xs,
            Op::LayerNorm { x, weight, bias, stats, .. } => {
                std::iter::once(x).chain(weight).chain(bias).chain(std::iter::once(stats)).collect()
            }
            Op::Attention { q, k, v, mask, out, lse, .. } => {
                let mut all = vec![q, k, v, out, lse];
                all.extend(mask);
                all
            }
            Op::Recurrence { xp, h0, c0, w_hh, b_hh, states, aux, .. } => {
                [Some(xp), Some(h0), c0, Some(w_hh), b_hh, Some(states), Some(aux)].into_iter().flatten().collect()
            }
            Op::Unary { x, .. }
            | Op::Permute { x, .. }
            | Op::Narrow { x, .. }
            | Op::Transpose { x, .. }
            | Op::Reshape { x }
            | Op::BroadcastTo { x }
            | Op::Sum { x, .. }
            | Op::Softmax { x, .. }
            | Op::LogSoftmax { x, .. }
            | Op::Im2col { x, .. }
            | Op::ToDevice { x } => vec![x],
        }
    }

    /// The gradients of the inputs given the output `out` (detached) and its gradient `g`.
    /// Runs with grad mode off. `None` means no gradient flows to that input. `needs[i]` says
    /// whether input i requires grad: a two-input op skips the other input's gradient (for a
    /// matmul whose input is data, that is a whole product per step).
    fn backward(&self, out: &Tensor, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let need = |i: usize| needs.get(i).copied().unwrap_or(true);
        Ok(match self {
            // Elementwise ops: the derivatives of the op table (kiln-device's `op.rs`).
            Op::Unary { x, op, alpha } => vec![unary_grad(*op, g, x, out, *alpha)?],
            Op::Binary { a, b, op } => {
                let grad = |i: usize| -> Result<Option<Tensor>> {
                    if !need(i) {
                        return Ok(None);
                    }
                    let gi = binary_grad(*op, i, g, a, b)?;
                    gi.map(|gi| gi.sum_to_shape(if i == 0 { a.shape() } else { b.shape() })).transpose()
                };
                vec![grad(0)?, grad(1)?]
            }
            Op::Matmul { a, b, ta, tb } => {
                // C = op(A) op(B): dop(A) = G op(B)^T, dop(B) = op(A)^T G; a transposed operand
                // takes the transpose of that. All reads are strided: no transpose is copied.
                let ga = match (need(0), *ta) {
                    (false, _) => None,
                    (true, true) => Some(Tensor::matmul_t(b, *tb, g, true)?),
                    (true, false) => Some(Tensor::matmul_t(g, false, b, !*tb)?),
                };
                let gb = match (need(1), *tb) {
                    (false, _) => None,
                    (true, true) => Some(Tensor::matmul_t(g, true, a, *ta)?),
                    (true, false) => Some(Tensor::matmul_t(a, !*ta, g, false)?),
                };
                vec![
                    ga.map(|t| t.sum_to_shape(a.shape())).transpose()?,
                    gb.map(|t| t.sum_to_shape(b.shape())).transpose()?,
                ]
            }
            Op::Transpose { d0, d1, .. } => vec![Some(g.transpose(*d0, *d1)?)],
            Op::Reshape { x } => vec![Some(g.reshape(x.shape())?)],
            Op::Permute { perm, .. } => {
                let mut inv = vec![0; perm.len()];
                for (i, &p) in perm.iter().enumerate() {
                    inv[p] = i;
                }
                vec![Some(g.permute(&inv)?)]
            }
            Op::Narrow { x, dim, start } => vec![Some(g.unnarrow(x.shape(), *dim, *start)?)],
            Op::LayerNorm { x, weight, bias, stats, rows } => {
                Tensor::layer_norm_backward(g, x, weight.as_ref(), bias.is_some(), stats, *rows)?
            }
            Op::Attention { q, k, v, mask, desc, out, lse, blocked } => {
                let [dq, dk, dv] = Tensor::attention_backward(g, q, k, v, mask.as_ref(), desc, out, lse, *blocked)?;
                vec![Some(dq), Some(dk), Some(dv)]
            }
            Op::Recurrence { w_hh, b_hh, desc, states, aux, .. } => {
                Tensor::recurrence_backward(g, w_hh, states, aux, desc, b_hh.is_some())?
            }
            Op::Cat { dim, lens, .. } => {
                let mut start = 0;
                let mut out = Vec::with_capacity(lens.len());
                for (i, &len) in lens.iter().enumerate() {
                    out.push(if need(i) { Some(g.narrow(*dim, start, len)?) } else { None });
                    start += len;
                }
                out
            }
            Op::BroadcastTo { x } => vec![Some(g.sum_to_shape(x.shape())?)],
            Op::Sum { x, dim, keepdim } => {
                let g = if *keepdim || x.rank() == 0 { g.clone() } else { g.unsqueeze(*dim)? };
                vec![Some(g.broadcast_to(x.shape())?)]
            }
            Op::Max { x, dim, keepdim, idx } => {
                let g = if *keepdim || x.rank() == 0 { g.clone() } else { g.unsqueeze(*dim)? };
                let (outer, d, inner) = split_at_dim(x.shape(), *dim);
                let mask = Tensor::index_mask(idx, outer, d, inner)?.reshape(x.shape())?;
                vec![Some(mask.mul(&g)?)]
            }
            Op::Softmax { dim, .. } => {
                // dx = y * (g - sum(g * y))
                let s = g.mul(out)?.sum(*dim, true)?;
                vec![Some(out.mul(&g.sub(&s)?)?)]
            }
            Op::LogSoftmax { dim, .. } => {
                // dx = g - exp(y) * sum(g)
                let s = g.sum(*dim, true)?;
                vec![Some(g.sub(&out.exp()?.mul(&s)?)?)]
            }
            Op::ToDevice { x } => vec![Some(g.to(x.dev())?)],
            // The windows' gradients summed back into the elements they read.
            Op::Im2col { x, desc } => vec![Some(g.col2im(desc)?.reshape(x.shape())?)],
            Op::BatchNorm { x, weight, mean, rstd, .. } => {
                Tensor::batch_norm_backward(g, x, weight, mean, rstd, [need(0), need(1), need(2)])?.into()
            }
            // Each window's gradient to its arg-max.
            Op::MaxPool { x, idx, desc } => vec![Some(g.max_pool_backward(idx, desc)?.reshape(x.shape())?)],
            Op::CrossEntropyRows { x, labels, lse, ignore } => {
                vec![Some(Tensor::cross_entropy_backward(x, labels, lse, g, *ignore)?)]
            }
        })
    }
}

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
    static ANOMALY: Cell<bool> = const { Cell::new(false) };
    /// Inside `backward()`: the ops that backward rules run are checked as gradients instead.
    static IN_BACKWARD: Cell<bool> = const { Cell::new(false) };
    static FIRST_ANOMALY: std::cell::RefCell<Option<(String, &'static str)>> = const { std::cell::RefCell::new(None) };
}

/// Whether anomaly detection is on (on this thread).
pub fn is_anomaly_enabled() -> bool {
    ANOMALY.with(|a| a.get())
}

/// True when every element of an F32 tensor is finite (a read-back on the GPU).
fn all_finite(t: &Tensor) -> bool {
    t.to_vec().map(|v| v.iter().all(|x| x.is_finite())).unwrap_or(true)
}

/// Called for every recorded op result while anomaly detection is on.
pub(crate) fn check_forward(op: &Op, out: &Tensor) {
    if IN_BACKWARD.with(|b| b.get()) || FIRST_ANOMALY.with(|f| f.borrow().is_some()) || all_finite(out) {
        return;
    }
    FIRST_ANOMALY.with(|f| *f.borrow_mut() = Some((op.name(), "forward")));
}

/// Runs `f` with anomaly detection on (like `torch.autograd.detect_anomaly`): every op result
/// and every gradient is checked for NaN/Inf (one read-back each, so this is a debugging
/// mode). Returns an [`Error::Anomaly`] naming the first op whose forward or backward produced
/// one.
pub fn detect_anomaly<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    let prev = ANOMALY.with(|a| a.replace(true));
    FIRST_ANOMALY.with(|s| s.borrow_mut().take());
    let r = f();
    ANOMALY.with(|a| a.set(prev));
    match FIRST_ANOMALY.with(|s| s.borrow_mut().take()) {
        Some((op, phase)) => Err(Error::Anomaly { op, phase }),
        None => r,
    }
}

/// Whether ops record the graph on this thread.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// While alive, nothing on this thread is recorded for autograd (like `torch.no_grad()`).
pub struct NoGradGuard {
    prev: bool,
}

impl NoGradGuard {
    /// Turns recording off until the guard drops.
    #[allow(clippy::new_without_default)]
    pub fn new() -> NoGradGuard {
        let prev = GRAD_ENABLED.with(|g| g.replace(false));
        NoGradGuard { prev }
    }
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.prev));
    }
}

/// Runs `f` with autograd recording off.
pub fn no_grad<T>(f: impl FnOnce() -> T) -> T {
    let _g = NoGradGuard::new();
    f()
}

/// Tensors of the graph below `root` that require grad, inputs before the ops that use them.
fn topo_order(root: &Tensor) -> Vec<Tensor> {
    let mut order = Vec::new();
    let mut visited = HashSet::new();
    let mut stack = vec![(root.clone(), false)];
    while let Some((t, expanded)) = stack.pop() {
        if expanded {
            order.push(t);
            continue;
        }
        if !visited.insert(t.id()) {
            continue;
        }
        stack.push((t.clone(), true));
        if let Some(op) = &t.inner.grad_fn {
            for inp in op.inputs() {
                if inp.requires_grad() && !visited.contains(&inp.id()) {
                    stack.push((inp.clone(), false));
                }
            }
        }
    }
    order
}

impl Tensor {
    /// Computes the gradient of this one-element tensor with respect to every leaf that
    /// requires grad, accumulating into their `.grad()`.
    pub fn backward(&self) -> Result<()> {
        if self.numel() != 1 {
            return Err(Error::Backward(format!(
                "called on a tensor of shape {:?}; backward() needs a one-element tensor (reduce it with sum_all() or mean_all())",
                self.shape()
            )));
        }
        if !self.requires_grad() {
            return Err(Error::Backward(
                "the tensor does not require grad: no input had requires_grad set, or it was computed under no_grad"
                    .into(),
            ));
        }
        let _guard = NoGradGuard::new();
        struct InBackward(bool);
        impl Drop for InBackward {
            fn drop(&mut self) {
                IN_BACKWARD.with(|b| b.set(self.0));
            }
        }
        let _in_backward = InBackward(IN_BACKWARD.with(|b| b.replace(true)));
        let order = topo_order(self);
        let mut grads: HashMap<usize, Tensor> = HashMap::new();
        grads.insert(self.id(), Tensor::ones(self.shape(), self.dev())?);
        for t in order.iter().rev() {
            let Some(g) = grads.remove(&t.id()) else {
                continue;
            };
            if let Some(slot) = &t.inner.grad_slot {
                slot.accumulate(g)?;
                continue;
            }
            let Some(op) = &t.inner.grad_fn else { continue };
            let needs: Vec<bool> = op.inputs().iter().map(|x| x.requires_grad()).collect();
            let gs = op.backward(&t.detach(), &g, &needs)?;
            for (inp, gi) in op.inputs().into_iter().zip(gs) {
                let Some(gi) = gi else { continue };
                if is_anomaly_enabled() && !all_finite(&gi) {
                    return Err(Error::Anomaly { op: op.name(), phase: "backward" });
                }
                if !inp.requires_grad() {
                    continue;
                }
                debug_assert_eq!(gi.shape(), inp.shape(), "gradient shape of {op_name}", op_name = "op");
                let acc = match grads.remove(&inp.id()) {
                    Some(prev) => prev.add(&gi)?,
                    None => gi,
                };
                grads.insert(inp.id(), acc);
            }
        }
        Ok(())
    }
}

/// `unary_grad(op, g, x, y, alpha)`: the gradient of a unary op's input from the op table's
/// derivative (`None` for ops without one: masks and fills, whose results never require grad).
macro_rules! unary_grads {
    ($($(#[$doc:meta])* $name:ident : $wgsl:literal, $cpu:expr, [$($method:tt)*], [$($grad:expr)?];)*) => {
        fn unary_grad(op: UnaryOp, g: &Tensor, x: &Tensor, y: &Tensor, alpha: f32) -> Result<Option<Tensor>> {
            match op {
                $(UnaryOp::$name => {
                    $(
                        let d: fn(&Tensor, &Tensor, &Tensor, f32) -> Result<Tensor> = $grad;
                        return d(g, x, y, alpha).map(Some);
                    )?
                    #[allow(unreachable_code)]
                    Ok(None)
                })*
            }
        }
    };
}

/// `binary_grad(op, i, g, a, b)`: the gradient of input `i` of a binary op (in the output's
/// shape) from the op table's derivatives; `None` for ops without them.
macro_rules! binary_grads {
    ($($(#[$doc:meta])* $name:ident : $wgsl:literal, $cpu:expr, [$($method:tt)*], [$($ga:expr, $gb:expr)?];)*) => {
        fn binary_grad(op: BinaryOp, i: usize, g: &Tensor, a: &Tensor, b: &Tensor) -> Result<Option<Tensor>> {
            match op {
                $(BinaryOp::$name => {
                    $(
                        let d: [fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>; 2] = [$ga, $gb];
                        return d[i](g, a, b).map(Some);
                    )?
                    #[allow(unreachable_code)]
                    Ok(None)
                })*
            }
        }
    };
}

kiln_device::unary_ops!(unary_grads);
kiln_device::binary_ops!(binary_grads);
