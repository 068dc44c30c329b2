//! Elementwise fusion: a chain of unary, scalar and binary ops over the same elements runs as
//! one generated kernel instead of one dispatch per op.
//!
//! [`crate::kernels::unary`], [`crate::kernels::binary`] and [`crate::kernels::fill`] allocate
//! their output as always, but hand the op to [`GpuDevice::elementwise`] instead of recording
//! it. The op joins the open *chain* when it has the chain's element count and its operands are
//! the chain's own results, or other buffers read through a simple index map ([`Index`]: the
//! whole array, a broadcast row or column, a scalar). Anything else that touches the batch (any
//! other dispatch, a copy, an upload through the encoder, a read-back, a submit) first *closes*
//! the chain: its one dispatch is recorded then, so recording order, the only ordering the batch
//! relies on, is what it would have been without fusion.
//!
//! At close, a result whose [`GpuBuffer`] has been dropped is not stored (and an op nobody reads
//! is not computed); each surviving result is stored to its own buffer. A chain of one op records
//! that op's own kernel. A longer one gets a kernel generated from `shaders/fused.wgsl` with the op
//! definitions of `shaders/ops.wgsl`, so fused and unfused results are computed by the same WGSL.
//! Pipelines are cached by the chain's structure, and the ops' scalars and column counts travel
//! in the uniform, so a training loop compiles each chain shape once.
//!
//! Why it pays: on a software adapter each dispatch costs a thread hand-off of 10-50 us whatever
//! it computes; on a real GPU each costs a launch and a round trip of every intermediate through
//! memory. [`crate::Fusion::Off`] turns fusion off; [`crate::Fusion::WithEpilogues`] also runs
//! the ops that follow a matmul in the matmul's kernel (`epilogue.rs`, off by default).

use std::sync::{Arc, Weak};

use bytemuck::{Pod, Zeroable};

use crate::batch::Pending;
use crate::context::{GpuDevice, PipelineEntry};
use crate::epilogue::Head;
use crate::error::DeviceResult;
use crate::kernels::grid_threads;
use crate::op::{BinaryOp, UnaryOp};
use crate::options::Fusion;
use crate::pool::GpuBuffer;
use crate::wgsl::matmul_rows::{Epilogue, RowKernel};
use crate::wgsl::ops_prelude;

/// Ops per fused kernel: one scalar slot each in [`FusedParams::alpha`].
const MAX_NODES: usize = 32;
/// Distinct buffers one fused kernel binds at most (fewer where the device allows fewer storage
/// buffers per shader stage): one column count each in [`FusedParams::cols`].
const MAX_SLOTS: usize = 16;

/// Chains of fewer elements run one element per invocation even when four would fit: there the
/// dispatch, not the loads, is the cost, and the one-element kernel compiles in about a quarter
/// of the time (small_ops, 1024 elements: 4.3-5.0 against 5.3-7.1 us/op in paired runs).
const FOUR_MIN: usize = 16384;

/// The kernel template: `//@BINDINGS` and `//@BODY` are replaced.
const TEMPLATE: &str = include_str!("../../shaders/fused.wgsl");

/// How an operand's elements line up with the elements of the op's (contiguous) output, viewed
/// as rows of `cols` elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Index {
    /// Element i.
    Full,
    /// A row of `cols` elements broadcast down the rows: element i % cols.
    Row(u32),
    /// A column broadcast along rows of `cols` elements: element i / cols.
    Col(u32),
    /// Element 0 everywhere.
    Scalar,
}

impl Index {
    /// The index map of an operand read with element `strides` into an output of `shape`, when
    /// it is one of the four; dims of size 1 are ignored.
    pub(crate) fn of(shape: &[usize], strides: &[usize]) -> Option<Index> {
        let dims: Vec<(usize, usize)> =
            shape.iter().zip(strides).filter(|(d, _)| **d != 1).map(|(d, s)| (*d, *s)).collect();
        if dims.iter().all(|&(_, s)| s == 0) {
            return Some(Index::Scalar);
        }
        let mut expect = 1;
        let contiguous = dims.iter().rev().all(|&(d, s)| {
            let ok = s == expect;
            expect *= d;
            ok
        });
        if contiguous {
            return Some(Index::Full);
        }
        match dims[..] {
            [(_, 0), (c, 1)] => u32::try_from(c).ok().map(Index::Row),
            [(_, 1), (c, 0)] => u32::try_from(c).ok().map(Index::Col),
            _ => None,
        }
    }

    /// Whether a chain running four elements per invocation can read the operand: its rows are
    /// whole vec4s.
    fn fits_four(self) -> bool {
        match self {
            Index::Row(c) | Index::Col(c) => c % 4 == 0,
            Index::Full | Index::Scalar => true,
        }
    }
}

/// An op a chain can hold.
#[derive(Debug, Clone, Copy)]
pub(crate) enum NodeOp {
    /// A unary op with its scalar (`Fill` takes no operand).
    Unary(UnaryOp, f32),
    /// A binary op of two operands.
    Binary(BinaryOp),
    /// The product of the chain's matmul head (see `epilogue.rs`), as the matmul kernel stored
    /// it.
    Head,
}

impl NodeOp {
    /// The op's function in `ops.wgsl`.
    fn wgsl_fn(self) -> &'static str {
        match self {
            NodeOp::Unary(op, _) => op.wgsl_fn(),
            NodeOp::Binary(op) => op.wgsl_fn(),
            NodeOp::Head => "",
        }
    }
}

/// A launch exactly as an op's own kernel records it.
pub(crate) struct Launch {
    pub(crate) pipe: Arc<PipelineEntry>,
    pub(crate) bufs: Vec<wgpu::Buffer>,
    pub(crate) params: Vec<u8>,
    pub(crate) groups: [u32; 3],
}

/// Makes an op's own [`Launch`], given its output buffer (the last binding), when it is needed:
/// the op is not fused, or its chain closes with it alone (so a fused op never builds its own
/// pipeline).
pub(crate) type LaunchFn = Box<dyn FnOnce(&GpuDevice, wgpu::Buffer) -> DeviceResult<Launch> + Send>;

/// An elementwise op offered for fusion: its operands with their index maps, over `n` elements.
pub(crate) struct Fusable<'a> {
    pub(crate) op: NodeOp,
    pub(crate) args: &'a [(&'a GpuBuffer, Index)],
    pub(crate) n: usize,
}

/// An operand inside a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Val {
    /// The chain's k-th external input.
    Input(usize),
    /// The result of the chain's k-th op.
    Node(usize),
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
            if let Index::Row(c) | Index::Col(c) = input.index {
                params.cols[j] = if self.four { c / 4 } else { c };
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

/// What a fused kernel computes, apart from the buffers it binds.
pub(crate) struct Plan {
    /// Four elements per invocation.
    pub(crate) four: bool,
    /// The matmul kernel the chain runs at the end of, if any.
    pub(crate) head: Option<RowKernel>,
    /// Storage bindings (then the uniform).
    pub(crate) slots: usize,
    /// (input number, slot, index map) per input read; the input number picks its column count.
    loads: Vec<(usize, usize, Index)>,
    /// (op number, op, operands) per op computed; the op number picks its scalar.
    ops: Vec<(usize, NodeOp, Vec<Val>)>,
    /// (slot, op number) per result stored.
    stores: Vec<(usize, usize)>,
}

impl Plan {
    /// What identifies the kernel's source (everything but the column counts and scalars, which
    /// travel in the uniform), as a cache key.
    fn key(&self) -> Vec<u32> {
        let mut key = vec![self.four as u32, self.slots as u32];
        if let Some(h) = self.head {
            key.extend([u32::MAX - 2, h.form as u32, h.rows as u32, h.tiles as u32]);
        }
        for &(j, s, index) in &self.loads {
            let tag = match index {
                Index::Full => 0,
                Index::Row(_) => 1,
                Index::Col(_) => 2,
                Index::Scalar => 3,
            };
            key.extend([j as u32, s as u32, tag]);
        }
        let val = |v: &Val| match *v {
            Val::Input(j) => j as u32,
            Val::Node(k) => (1 << 16) | k as u32,
        };
        for (k, op, args) in &self.ops {
            let code = match *op {
                NodeOp::Unary(op, _) => (1 << 8) | op as u32,
                NodeOp::Binary(op) => (2 << 8) | op as u32,
                NodeOp::Head => 3 << 8,
            };
            key.extend([u32::MAX, *k as u32, code]);
            key.extend(args.iter().map(val));
        }
        for &(s, k) in &self.stores {
            key.extend([u32::MAX - 1, s as u32, k as u32]);
        }
        key
    }

    /// The element type of the kernel's arrays.
    pub(crate) fn ty(&self) -> &'static str {
        if self.four { "vec4<f32>" } else { "f32" }
    }

    /// The kernel's WGSL: `fused.wgsl` with its bindings and body filled in, or for a matmul
    /// epilogue the matmul kernel with the chain in its stores (`epilogue.rs`).
    fn source(&self) -> DeviceResult<String> {
        if let Some(h) = self.head {
            let (prelude, body) = (self.prelude(), self.body(&|s| format!("s{s}"), ""));
            let epi = Epilogue { prelude: &prelude, slots: self.slots, four: self.four, body: &body };
            return Ok(h.source_with(Some(&epi)));
        }
        let ty = self.ty();
        let mut bindings: Vec<String> = (0..self.slots)
            .map(|s| format!("@group(0) @binding({s}) var<storage, read_write> s{s}: array<{ty}>;"))
            .collect();
        bindings.push(format!("@group(0) @binding({}) var<uniform> p: Params;", self.slots));
        let body = self.body(&|s| format!("s{s}"), "    ");
        Ok(self.prelude()
            + &TEMPLATE.replacen("//@BINDINGS\n", &(bindings.join("\n") + "\n"), 1).replacen(
                "//@BODY\n",
                &(body.join("\n") + "\n"),
                1,
            ))
    }

    /// The chain's lines for element (or vec4) `i`, each indented by `indent`: the loads of its
    /// inputs (slot s is the array `slot(s)`), one `let` per op (a matmul head's value is `v`),
    /// and the stores of the live results.
    pub(crate) fn body(&self, slot: &dyn Fn(usize) -> String, indent: &str) -> Vec<String> {
        let ty = self.ty();
        let name = |v: &Val| match *v {
            Val::Input(j) => format!("x{j}"),
            Val::Node(k) => format!("v{k}"),
        };
        let mut body: Vec<String> = Vec::new();
        for &(j, s, index) in &self.loads {
            let cols = format!("p.cols[{}][{}]", j / 4, j % 4);
            let s = slot(s);
            let load = match (index, self.four) {
                (Index::Full, _) => format!("{s}[i]"),
                (Index::Row(_), _) => format!("{s}[i % {cols}]"),
                (Index::Col(_), false) => format!("{s}[i / {cols}]"),
                (Index::Col(_), true) => format!("vec4<f32>({s}[(i / {cols}) / 4u][(i / {cols}) % 4u])"),
                (Index::Scalar, false) => format!("{s}[0]"),
                (Index::Scalar, true) => format!("vec4<f32>({s}[0].x)"),
            };
            body.push(format!("{indent}let x{j} = {load};"));
        }
        // The op's function, or for four elements its four-lane wrapper (`<f>_4`, defined once
        // in the prelude: one call per op keeps long chains quick to compile).
        let suffix = if self.four { "_4" } else { "" };
        for (k, op, args) in &self.ops {
            let f = op.wgsl_fn();
            let expr = match op {
                NodeOp::Unary(..) => {
                    let x = args.first().map(name).unwrap_or_else(|| format!("{ty}(0.0)"));
                    format!("{f}{suffix}({x}, p.alpha[{}][{}])", k / 4, k % 4)
                }
                NodeOp::Binary(_) => format!("{f}{suffix}({}, {})", name(&args[0]), name(&args[1])),
                NodeOp::Head => "v".to_string(),
            };
            body.push(format!("{indent}let v{k} = {expr};"));
        }
        for &(s, k) in &self.stores {
            body.push(format!("{indent}{}[i] = v{k};", slot(s)));
        }
        body
    }

    /// The `ops.wgsl` functions the chain calls, with their helpers, and for four elements per
    /// invocation their four-lane wrappers.
    pub(crate) fn prelude(&self) -> String {
        let mut used: Vec<&str> = self.ops.iter().map(|(_, op, _)| op.wgsl_fn()).filter(|f| !f.is_empty()).collect();
        used.sort();
        used.dedup();
        let mut prelude = ops_prelude(&used);
        if self.four {
            for f in &used {
                // u_* take (v, alpha): alpha is the same for the four lanes; b_* take (u, v).
                let (second, lanes) = if f.starts_with("u_") {
                    ("f32", ["x", "y", "z", "w"].map(|l| format!("{f}(a.{l}, b)")))
                } else {
                    ("vec4<f32>", ["x", "y", "z", "w"].map(|l| format!("{f}(a.{l}, b.{l})")))
                };
                prelude.push_str(&format!(
                    "fn {f}_4(a: vec4<f32>, b: {second}) -> vec4<f32> {{ return vec4<f32>({}); }}\n",
                    lanes.join(", ")
                ));
            }
        }
        prelude
    }
}

impl GpuDevice {
    /// Records an elementwise op's `launch`, or, when it is `fusable`, adds it to the open chain
    /// (whose dispatch is recorded when the chain closes).
    pub(crate) fn elementwise(
        &self,
        launch: LaunchFn,
        fusable: Option<Fusable>,
        out: &mut GpuBuffer,
    ) -> DeviceResult<()> {
        let mut p = self.inner.pending.lock().unwrap();
        let Some(f) = fusable.filter(|f| self.fusion() != Fusion::Off && f.n > 0) else {
            self.close_chain(&mut p)?;
            return self.record_launch(&mut p, launch(self, out.raw().clone())?);
        };
        let max_slots = (self.limits().max_storage_buffers_per_shader_stage as usize).min(MAX_SLOTS);
        if let Some(chain) = p.chain.as_ref()
            && chain.reads(out.raw())
        {
            // The pool handed back the buffer of an input the chain has not read yet (its
            // tensor was dropped): take another, so that a chain's kernel never writes a buffer
            // it reads and its shape (hence its cached pipeline) does not depend on pool order.
            let mut other = self.alloc(out.bucket_bytes(), "fused")?;
            std::mem::swap(out, &mut other);
        }
        if let Some(chain) = p.chain.as_mut()
            && chain.push(&f, out, max_slots)
        {
            return Ok(());
        }
        self.close_chain(&mut p)?;
        let mut chain = Chain::new(&f, launch);
        if chain.push(&f, out, max_slots) {
            p.chain = Some(chain);
            return Ok(());
        }
        // Not even alone (more operands than bindings): record it unfused.
        self.record_launch(&mut p, (chain.first)(self, out.raw().clone())?)
    }

    /// A generated kernel's source as this device compiles it (`shaders::widen` on a software
    /// adapter with 64-bit integers).
    fn widened(&self, source: DeviceResult<String>) -> DeviceResult<String> {
        source.map(|s| if self.wide() { crate::wgsl::widen(&s) } else { s })
    }

    /// Records an op's own launch (the batch locked, any open chain closed).
    pub(crate) fn record_launch(&self, p: &mut Pending, l: Launch) -> DeviceResult<()> {
        let bufs: Vec<&wgpu::Buffer> = l.bufs.iter().collect();
        self.record_locked(p, &l.pipe, &bufs, &l.params, l.groups)
    }

    /// Records the open chain's dispatch, if a chain is open and any of its results is still
    /// referenced. Called before anything else is recorded into, or submitted from, the batch.
    pub(crate) fn close_chain(&self, p: &mut Pending) -> DeviceResult<()> {
        let Some(chain) = p.chain.take() else {
            return Ok(());
        };
        let live: Vec<bool> = chain.nodes.iter().map(|n| n.alive.strong_count() > 0).collect();
        // One op, or a matmul whose epilogue results are all dropped: the op's own kernel.
        if chain.nodes.len() == 1 || (chain.head.is_some() && !live[1..].contains(&true)) {
            if !live[0] {
                return Ok(());
            }
            let l = (chain.first)(self, chain.nodes[0].out.clone())?;
            return self.record_launch(p, l);
        }
        let Some(k) = chain.kernel(&live) else {
            return Ok(());
        };
        let bufs: Vec<&wgpu::Buffer> = k.slots.iter().collect();
        if let Some(h) = &chain.head {
            // The matmul's uniform, then the chain's column counts and scalars.
            let mut params = h.params.clone();
            params.extend_from_slice(&bytemuck::bytes_of(&k.params)[16..]);
            let name = h.kernel.name();
            let pipe = self.generated_pipeline(
                &k.plan.key(),
                || self.widened(k.plan.source()),
                &name,
                (0, k.slots.len() as u32),
            )?;
            return self.record_locked(p, &pipe, &bufs, &params, h.groups);
        }
        let pipe = self.generated_pipeline(
            &k.plan.key(),
            || self.widened(k.plan.source()),
            "fused",
            (0, k.slots.len() as u32),
        )?;
        self.record_locked(p, &pipe, &bufs, bytemuck::bytes_of(&k.params), grid_threads(self, k.threads)?)
    }
}

#[cfg(test)]
mod tests;
