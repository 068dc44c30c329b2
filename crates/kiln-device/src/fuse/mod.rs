//! Elementwise fusion: a chain of unary, scalar and binary ops over the same elements runs as
//! one generated kernel instead of one dispatch per op.
//!
//! [`crate::kernels::unary`], [`crate::kernels::binary`] and [`crate::kernels::fill`] allocate
//! their output as always, but hand the op to [`Batch::elementwise`] instead of recording it. The op joins the open *chain* when it has the chain's element count and its operands are
//! the chain's own results, or other buffers read through a simple index map ([`Index`]: the
//! whole array, a broadcast row or column, a scalar). Anything else that touches the batch (any
//! other dispatch, a copy, an upload through the encoder, a read-back, a submit) first *closes*
//! the chain: its one dispatch is recorded then, so recording order, the only ordering the batch
//! relies on, is what it would have been without fusion.
//!
//! At close, a result whose [`GpuBuffer`] has been dropped is not stored (and an op nobody reads
//! is not computed); each surviving result is stored to its own buffer. A chain of one op records
//! that op's own kernel. A longer one gets a kernel generated (`wgsl::fused`) from
//! `shaders/fused.wgsl` with the op definitions of `shaders/ops.wgsl`, so fused and unfused
//! results are computed by the same WGSL.
//! Pipelines are cached by the chain's structure, and the ops' scalars and column counts travel
//! in the uniform, so a training loop compiles each chain shape once.
//!
//! Why it pays: on a software adapter each dispatch costs a thread hand-off of 10-50 us whatever
//! it computes; on a real GPU each costs a launch and a round trip of every intermediate through
//! memory. [`crate::Fusion::Off`] turns fusion off; [`crate::Fusion::WithEpilogues`] also runs
//! the ops that follow a matmul in the matmul's kernel (`epilogue.rs`, off by default).
//!
//! [`Batch`] owns the recorder and the open chain: its only way to the recorder closes the chain
//! first, so no path can record out of order.

use std::sync::{Arc, Weak};

use bytemuck::{Pod, Zeroable};

use crate::context::Context;
use crate::error::DeviceResult;
use crate::options::Fusion;
use crate::pool::{GpuBuffer, PoolInner};
use crate::recorder::{Launch, Recorder, grid_threads};
use crate::wgsl::fused::{Index, MAX_NODES, MAX_SLOTS, NodeOp, Plan, Val};

mod epilogue;
pub(crate) use epilogue::Head;

/// Chains of fewer elements run one element per invocation even when four would fit: there the
/// dispatch, not the loads, is the cost, and the one-element kernel compiles in about a quarter
/// of the time (PERFORMANCE.md, "small chains").
const FOUR_MIN: usize = 16384;

/// Makes an op's own [`Launch`], given its output buffer (the last binding), when it is needed:
/// the op is not fused, or its chain closes with it alone (so a fused op never builds its own
/// pipeline).
pub(crate) type LaunchFn = Box<dyn FnOnce(&Context, wgpu::Buffer) -> DeviceResult<Launch> + Send>;

/// An elementwise op offered for fusion: its operands with their index maps, over `n` elements.
pub(crate) struct Fusable<'a> {
    pub(crate) op: NodeOp,
    pub(crate) args: &'a [(&'a GpuBuffer, Index)],
    pub(crate) n: usize,
}

struct Input {
    buf: wgpu::Buffer,
    index: Index,
}

struct Node {
    op: NodeOp,
    args: Vec<Val>,
    out: wgpu::Buffer,
    /// Alive while the op's output [`GpuBuffer`] is.
    alive: Weak<()>,
}

/// The open chain of a pending batch.
pub(crate) struct Chain {
    n: usize,
    /// Four elements per invocation (n % 4 == 0 and every broadcast row a whole number of vec4s).
    four: bool,
    inputs: Vec<Input>,
    nodes: Vec<Node>,
    /// The first op's own launch, used when the chain closes with one op.
    first: LaunchFn,
    /// The matmul whose product is op 0, when the chain runs as that matmul's epilogue.
    pub(crate) head: Option<Head>,
}

/// The uniform of a fused kernel (mirrors `Params` in `fused.wgsl`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct FusedParams {
    n: u32,
    pad: [u32; 3],
    cols: [u32; MAX_SLOTS],
    dims: [u32; MAX_SLOTS],
    alpha: [f32; MAX_NODES],
}

/// A generated kernel, ready to record.
struct Kernel {
    plan: Plan,
    slots: Vec<wgpu::Buffer>,
    params: FusedParams,
    threads: usize,
}

impl Chain {
    fn new(f: &Fusable, first: LaunchFn) -> Chain {
        Chain {
            n: f.n,
            four: f.n % 4 == 0 && f.n >= FOUR_MIN && f.args.iter().all(|(_, ix)| ix.fits_four()),
            inputs: Vec::new(),
            nodes: Vec::new(),
            first,
            head: None,
        }
    }

    /// A chain whose op 0 is the product of the matmul `head`, written to `out` (`n` elements;
    /// `four` when the matmul kernel stores by vec4).
    pub(crate) fn with_head(head: Head, first: LaunchFn, n: usize, four: bool, out: &mut GpuBuffer) -> Chain {
        let node = Node { op: NodeOp::Head, args: Vec::new(), out: out.raw().clone(), alive: out.mark() };
        Chain { n, four, inputs: Vec::new(), nodes: vec![node], first, head: Some(head) }
    }

    /// Whether the chain reads `buf` (as an input, or as its matmul head's operand): a buffer
    /// one of its ops must not write.
    fn reads(&self, buf: &wgpu::Buffer) -> bool {
        self.inputs.iter().any(|x| x.buf == *buf) || self.head.as_ref().is_some_and(|h| h.a == *buf || h.b == *buf)
    }

    /// The op whose output `buf` is, if it is one of this chain's.
    fn node_of(&self, buf: &GpuBuffer) -> Option<usize> {
        let token = buf.token()?;
        self.nodes.iter().rposition(|n| std::ptr::eq(n.alive.as_ptr(), Arc::as_ptr(token)))
    }

    /// Appends the op writing `out` when it fits in this chain; false (and no change) otherwise.
    fn push(&mut self, f: &Fusable, out: &mut GpuBuffer, max_slots: usize) -> bool {
        if f.n != self.n || self.nodes.len() >= MAX_NODES || (self.four && !f.args.iter().all(|(_, ix)| ix.fits_four()))
        {
            return false;
        }
        if self.head.is_some() && !f.args.iter().any(|(b, _)| self.node_of(b).is_some()) {
            // A matmul's epilogue holds only what is computed from its product.
            return false;
        }
        let mut fresh: Vec<Input> = Vec::new();
        let mut args = Vec::with_capacity(f.args.len());
        for &(buf, index) in f.args {
            if let Some(k) = self.node_of(buf) {
                if index != Index::Full {
                    return false;
                }
                args.push(Val::Node(k));
                continue;
            }
            let raw = buf.raw();
            let at = self.inputs.iter().chain(&fresh).position(|x| x.buf == *raw && x.index == index);
            args.push(Val::Input(at.unwrap_or_else(|| {
                fresh.push(Input { buf: raw.clone(), index });
                self.inputs.len() + fresh.len() - 1
            })));
        }
        let mut bound: Vec<&wgpu::Buffer> = self.inputs.iter().chain(&fresh).map(|x| &x.buf).collect();
        bound.extend(self.nodes.iter().filter(|n| n.alive.strong_count() > 0).map(|n| &n.out));
        bound.push(out.raw());
        let mut distinct: Vec<&wgpu::Buffer> = Vec::with_capacity(bound.len());
        for b in bound {
            if !distinct.contains(&b) {
                distinct.push(b);
            }
        }
        // A matmul epilogue also binds A, B and the product's own buffer (at fixed slots).
        let fixed = if self.head.is_some() { 3 } else { 0 };
        if distinct.len() + fixed > max_slots {
            return false;
        }
        self.inputs.extend(fresh);
        self.nodes.push(Node { op: f.op, args, out: out.raw().clone(), alive: out.mark() });
        true
    }

    /// The kernel computing every op a live result depends on and storing the live results;
    /// `None` when no result is live.
    fn kernel(&self, live: &[bool]) -> Option<Kernel> {
        if !live.contains(&true) {
            return None;
        }
        let mut needed = live.to_vec();
        for k in (0..self.nodes.len()).rev() {
            if needed[k] {
                for a in &self.nodes[k].args {
                    if let Val::Node(j) = *a {
                        needed[j] = true;
                    }
                }
            }
        }
        let mut used = vec![false; self.inputs.len()];
        for node in self.nodes.iter().zip(&needed).filter(|(_, n)| **n).map(|(node, _)| node) {
            for a in &node.args {
                if let Val::Input(j) = *a {
                    used[j] = true;
                }
            }
        }
        // One binding per distinct buffer (an input read through two index maps is bound once).
        // Outputs never share a buffer with an input: see `GpuDevice::elementwise`.
        // A matmul epilogue binds A, B and the product first, as the matmul kernel does; other
        // buffers get slots of their own even where they are A or B (bound twice).
        let mut slots: Vec<wgpu::Buffer> = match &self.head {
            Some(h) => vec![h.a.clone(), h.b.clone(), self.nodes[0].out.clone()],
            None => Vec::new(),
        };
        let fixed = slots.len();
        let mut slot_of = |b: &wgpu::Buffer| match slots.iter().skip(fixed).position(|s| s == b) {
            Some(s) => fixed + s,
            None => {
                slots.push(b.clone());
                slots.len() - 1
            }
        };
        let threads = if self.four { self.n / 4 } else { self.n };
        let mut params = FusedParams { n: threads as u32, ..FusedParams::zeroed() };
        let mut plan = Plan {
            four: self.four,
            head: self.head.as_ref().map(|h| h.kernel),
            slots: 0,
            loads: Vec::new(),
            ops: Vec::new(),
            stores: Vec::new(),
        };
        for (j, input) in self.inputs.iter().enumerate().filter(|(j, _)| used[*j]) {
            match input.index {
                Index::Row(c) | Index::Col(c) => params.cols[j] = if self.four { c / 4 } else { c },
                Index::Mid { inner, dim } => {
                    params.cols[j] = if self.four { inner / 4 } else { inner };
                    params.dims[j] = dim;
                }
                Index::Full | Index::Scalar => {}
            }
            plan.loads.push((j, slot_of(&input.buf), input.index));
        }
        for (k, node) in self.nodes.iter().enumerate().filter(|(k, _)| needed[*k]) {
            if let NodeOp::Unary(_, alpha) = node.op {
                params.alpha[k] = alpha;
            }
            plan.ops.push((k, node.op, node.args.clone()));
        }
        // A matmul head's product is stored by the matmul itself.
        for (k, node) in self.nodes.iter().enumerate().filter(|(k, _)| live[*k] && !(*k == 0 && fixed > 0)) {
            plan.stores.push((slot_of(&node.out), k));
        }
        plan.slots = slots.len();
        Some(Kernel { plan, slots, params, threads })
    }
}

/// A device's pending work: the recorder and the open chain. The only way to the recorder is
/// [`Batch::recorder`], which records the open chain first, so that everything is recorded in the
/// order it was asked for.
#[derive(Default)]
pub(crate) struct Batch {
    rec: Recorder,
    chain: Option<Chain>,
}

impl Batch {
    /// The recorder, after the open chain (if any) has been recorded.
    pub(crate) fn recorder(&mut self, cx: &Context) -> DeviceResult<&mut Recorder> {
        if let Some(chain) = self.chain.take() {
            chain.close(cx, &mut self.rec)?;
        }
        Ok(&mut self.rec)
    }

    /// Records an elementwise op's `launch`, or, when it is `fusable`, adds it to the open chain
    /// (whose dispatch is recorded when the chain closes).
    pub(crate) fn elementwise(
        &mut self,
        cx: &Context,
        pool: &Arc<PoolInner>,
        launch: LaunchFn,
        fusable: Option<Fusable>,
        out: &mut GpuBuffer,
    ) -> DeviceResult<()> {
        let Some(f) = fusable.filter(|f| cx.fusion() != Fusion::Off && f.n > 0) else {
            let l = launch(cx, out.raw().clone())?;
            return self.recorder(cx)?.launch(cx, l);
        };
        let max_slots = (cx.limits.max_storage_buffers_per_shader_stage as usize).min(MAX_SLOTS);
        if let Some(chain) = self.chain.as_ref()
            && chain.reads(out.raw())
        {
            // The pool handed back the buffer of an input the chain has not read yet (its
            // tensor was dropped): take another, so that a chain's kernel never writes a buffer
            // it reads and its shape (hence its cached pipeline) does not depend on pool order.
            let mut other = pool.alloc(&cx.device, &cx.limits, out.bucket_bytes(), "fused")?;
            std::mem::swap(out, &mut other);
        }
        if let Some(chain) = self.chain.as_mut()
            && chain.push(&f, out, max_slots)
        {
            return Ok(());
        }
        self.recorder(cx)?; // closes the open chain
        let mut chain = Chain::new(&f, launch);
        if chain.push(&f, out, max_slots) {
            self.chain = Some(chain);
            return Ok(());
        }
        // Not even alone (more operands than bindings): record it unfused.
        let l = (chain.first)(cx, out.raw().clone())?;
        self.rec.launch(cx, l)
    }

    /// Records a matmul's `launch` (writing `out`, `n` elements), or, when epilogues are on and
    /// `head` is given, opens a chain whose op 0 is its product, so that the elementwise ops
    /// that follow run in its kernel (see `epilogue.rs`).
    pub(crate) fn matmul(
        &mut self,
        cx: &Context,
        launch: LaunchFn,
        head: Option<Head>,
        n: usize,
        out: &mut GpuBuffer,
    ) -> DeviceResult<()> {
        self.recorder(cx)?; // closes the open chain
        match head {
            Some(head) if cx.fusion() == Fusion::WithEpilogues => {
                let four = head.four;
                self.chain = Some(Chain::with_head(head, launch, n, four, out));
                Ok(())
            }
            _ => {
                let l = launch(cx, out.raw().clone())?;
                self.rec.launch(cx, l)
            }
        }
    }
}

impl Chain {
    /// Records the chain's dispatch, if any of its results is still referenced.
    fn close(self, cx: &Context, rec: &mut Recorder) -> DeviceResult<()> {
        let live: Vec<bool> = self.nodes.iter().map(|n| n.alive.strong_count() > 0).collect();
        // One op, or a matmul whose epilogue results are all dropped: the op's own kernel.
        if self.nodes.len() == 1 || (self.head.is_some() && !live[1..].contains(&true)) {
            if !live[0] {
                return Ok(());
            }
            let l = (self.first)(cx, self.nodes[0].out.clone())?;
            return rec.launch(cx, l);
        }
        let Some(k) = self.kernel(&live) else {
            return Ok(());
        };
        let bufs: Vec<&wgpu::Buffer> = k.slots.iter().collect();
        // As the device compiles it: widened on a software adapter with 64-bit integers.
        let source = || {
            let s = k.plan.source();
            Ok(if cx.wide() { crate::wgsl::widen(&s) } else { s })
        };
        let layout = (0, k.slots.len() as u32);
        if let Some(h) = &self.head {
            // The matmul's uniform, then the chain's column counts and scalars.
            let mut params = h.params.clone();
            params.extend_from_slice(&bytemuck::bytes_of(&k.params)[16..]);
            let pipe = cx.generated_pipeline(&k.plan.key(), source, &h.kernel.name(), layout)?;
            return rec.record(cx, &pipe, &bufs, &params, h.groups);
        }
        let pipe = cx.generated_pipeline(&k.plan.key(), source, "fused", layout)?;
        rec.record(cx, &pipe, &bufs, bytemuck::bytes_of(&k.params), grid_threads(cx, k.threads)?)
    }
}
