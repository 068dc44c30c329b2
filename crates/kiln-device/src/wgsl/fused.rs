//! The WGSL of fused elementwise kernels, from a typed description ([`Plan`]): the loads of a
//! chain's inputs through their index maps, one `let` per op calling the op's `ops.wgsl` function
//! (for four elements per invocation, a four-lane wrapper of it), and the stores of the results
//! still referenced; as a kernel of its own (the `fused.wgsl` template) or as the epilogue of a
//! subgroup matmul kernel ([`RowKernel::source_with`]). `fuse/` decides what a chain holds.

use crate::op::{BinaryOp, UnaryOp};
use crate::wgsl::matmul_rows::{Epilogue, RowKernel};
use crate::wgsl::ops_prelude;

/// Ops per fused kernel: one scalar slot each in `FusedParams::alpha` (28 keeps the uniform at
/// 256 bytes, one arena slot, with the column counts and channel counts of 16 inputs).
pub(crate) const MAX_NODES: usize = 28;
/// Distinct buffers one fused kernel binds at most (fewer where the device allows fewer storage
/// buffers per shader stage): one column count each in [`FusedParams::cols`].
pub(crate) const MAX_SLOTS: usize = 16;

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
    /// A vector of `dim` broadcast over the dims before and after its own, which holds runs of
    /// `inner` elements: element (i / inner) % dim (a per-channel value over [N, C, L]).
    Mid {
        /// Elements per value (the product of the dims after the vector's).
        inner: u32,
        /// The vector's length.
        dim: u32,
    },
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
            [(_, 0), (c, 1), (l, 0)] => Some(Index::Mid { inner: u32::try_from(l).ok()?, dim: u32::try_from(c).ok()? }),
            _ => None,
        }
    }

    /// Whether a chain running four elements per invocation can read the operand: its rows are
    /// whole vec4s.
    pub(crate) fn fits_four(self) -> bool {
        match self {
            Index::Row(c) | Index::Col(c) | Index::Mid { inner: c, .. } => c % 4 == 0,
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
    pub(crate) fn wgsl_fn(self) -> &'static str {
        match self {
            NodeOp::Unary(op, _) => op.wgsl_fn(),
            NodeOp::Binary(op) => op.wgsl_fn(),
            NodeOp::Head => "",
        }
    }
}

/// An operand inside a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Val {
    /// The chain's k-th external input.
    Input(usize),
    /// The result of the chain's k-th op.
    Node(usize),
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
    pub(crate) loads: Vec<(usize, usize, Index)>,
    /// (op number, op, operands) per op computed; the op number picks its scalar.
    pub(crate) ops: Vec<(usize, NodeOp, Vec<Val>)>,
    /// (slot, op number) per result stored.
    pub(crate) stores: Vec<(usize, usize)>,
}

impl Plan {
    /// What identifies the kernel's source (everything but the column counts and scalars, which
    /// travel in the uniform), as a cache key.
    pub(crate) fn key(&self) -> Vec<u32> {
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
                Index::Mid { .. } => 4,
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
    pub(crate) fn source(&self) -> String {
        if let Some(h) = self.head {
            let (prelude, body) = (self.prelude(), self.body(&|s| format!("s{s}"), ""));
            let epi = Epilogue { prelude: &prelude, slots: self.slots, four: self.four, body: &body };
            return h.source_with(Some(&epi));
        }
        let ty = self.ty();
        let mut bindings: Vec<String> = (0..self.slots)
            .map(|s| format!("@group(0) @binding({s}) var<storage, read_write> s{s}: array<{ty}>;"))
            .collect();
        bindings.push(format!("@group(0) @binding({}) var<uniform> p: Params;", self.slots));
        let body = self.body(&|s| format!("s{s}"), "    ");
        self.prelude()
            + &TEMPLATE.replacen("//@BINDINGS\n", &(bindings.join("\n") + "\n"), 1).replacen(
                "//@BODY\n",
                &(body.join("\n") + "\n"),
                1,
            )
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
            let dim = format!("p.dims[{}][{}]", j / 4, j % 4);
            let s = slot(s);
            let load = match (index, self.four) {
                (Index::Full, _) => format!("{s}[i]"),
                (Index::Row(_), _) => format!("{s}[i % {cols}]"),
                (Index::Col(_), false) => format!("{s}[i / {cols}]"),
                (Index::Col(_), true) => format!("vec4<f32>({s}[(i / {cols}) / 4u][(i / {cols}) % 4u])"),
                (Index::Mid { .. }, false) => format!("{s}[(i / {cols}) % {dim}]"),
                (Index::Mid { .. }, true) => {
                    format!("vec4<f32>({s}[((i / {cols}) % {dim}) / 4u][((i / {cols}) % {dim}) % 4u])")
                }
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

#[cfg(test)]
#[path = "fused_tests.rs"]
pub(crate) mod tests;
