//! WGSL text: the hand-written kernel families (one `.wgsl` file each under the crate's
//! `shaders/`, also reachable as the workspace's top-level `shaders/`), the elementwise op
//! definitions they share with generated kernels, and the generators of kernels that vary by
//! tile shape ([`matmul`], [`matmul_rows`], [`matmul_tiles`]). This layer writes text and knows
//! nothing of devices, buffers or fusion; `widen` rewrites kiln's vec4 arrays for software
//! adapters.

pub(crate) mod fused;
pub mod matmul;
pub mod matmul_rows;
pub mod matmul_tiles;
#[cfg(test)]
mod translate_tests;
pub(crate) mod widen;

pub(crate) use widen::widen;

use std::borrow::Cow;
use std::fmt::Write;

use crate::op::{BinaryOp, UnaryOp};

/// `unary_f(op, v, a)` and `binary_f(op, u, v)`, a `switch` over the op table's numbers calling
/// each op's `ops.wgsl` function, their four-lane forms `unary4_f` and `binary4_f`, and
/// `OP_FILL`: for the kernels that take the op as an override constant. Generated from the op
/// table, so no op can be missing (an op number without a case would have run the `default`).
/// The fused kernels call the functions directly: a switch inlined per call makes a long chain
/// slow to compile.
pub(crate) fn op_switches() -> String {
    let mut o = String::from("\nfn unary_f(op: u32, v: f32, a: f32) -> f32 {\n    switch op {\n");
    for op in UnaryOp::ALL {
        writeln!(o, "        case {}u: {{ return {}(v, a); }}", op as u32, op.wgsl_fn()).unwrap();
    }
    o.push_str("        default: { return bitcast<f32>(0x7fc00000u); }\n    }\n}\n\n");
    o.push_str("fn binary_f(op: u32, u: f32, v: f32) -> f32 {\n    switch op {\n");
    for op in BinaryOp::ALL {
        writeln!(o, "        case {}u: {{ return {}(u, v); }}", op as u32, op.wgsl_fn()).unwrap();
    }
    o.push_str("        default: { return bitcast<f32>(0x7fc00000u); }\n    }\n}\n\n");
    writeln!(o, "const OP_FILL: u32 = {}u;\n", UnaryOp::Fill as u32).unwrap();
    o.push_str(
        "fn unary4_f(op: u32, v: vec4<f32>, a: f32) -> vec4<f32> {\n    \
         return vec4<f32>(unary_f(op, v.x, a), unary_f(op, v.y, a), unary_f(op, v.z, a), unary_f(op, v.w, a));\n}\n\n\
         fn binary4_f(op: u32, u: vec4<f32>, v: vec4<f32>) -> vec4<f32> {\n    \
         return vec4<f32>(binary_f(op, u.x, v.x), binary_f(op, u.y, v.y), binary_f(op, u.z, v.z), binary_f(op, u.w, v.w));\n}\n\n",
    );
    o
}

/// The elementwise op definitions (`ops.wgsl`): one function per op, shared by the unary and
/// binary families and by generated kernels.
pub(crate) const OPS: &str = include_str!("../../shaders/ops.wgsl");

/// The text of function `name` in `ops.wgsl` (from `fn name(` to its closing brace: the end of
/// the line for a one-line function, else the next line that is just `}`).
pub(crate) fn ops_function(name: &str) -> Option<&'static str> {
    let start = OPS.find(&format!("\nfn {name}("))? + 1;
    let rest = &OPS[start..];
    let line = rest.split_inclusive('\n').next()?;
    let len = if line.trim_end().ends_with('}') { line.len() } else { rest.find("\n}\n")? + 3 };
    Some(&rest[..len])
}

/// The definitions of the `ops.wgsl` functions `names`, each after the helpers it calls.
pub(crate) fn ops_prelude(names: &[&str]) -> String {
    fn add(name: &str, out: &mut Vec<&'static str>) {
        let Some(text) = ops_function(name) else { return };
        if out.contains(&text) {
            return;
        }
        let body = &text[text.find('{').unwrap_or(0)..];
        for helper in OPS.lines().filter_map(|l| l.strip_prefix("fn ")).filter_map(|l| l.split('(').next()) {
            if helper != name && body.contains(&format!("{helper}(")) {
                add(helper, out);
            }
        }
        out.push(text);
    }
    let mut out = Vec::new();
    for n in names {
        add(n, &mut out);
    }
    out.concat()
}

/// A kernel family: one `.wgsl` file with one binding layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `unary.wgsl`: y = f(x), scalar forms included.
    Unary,
    /// `binary.wgsl`: broadcasting binary ops and comparisons.
    Binary,
    /// `matmul.wgsl`: batched matmul with strided (transposable) operands.
    Matmul,
    /// `reduce.wgsl`: sum and max (with index) along a dim.
    Reduce,
    /// `softmax.wgsl`: softmax and log_softmax along a dim.
    Softmax,
    /// `copy.wgsl`: strided gather into a contiguous array.
    Copy,
    /// `index.wgsl`: indices to 0/1 masks.
    Index,
    /// `optim.wgsl`: fused optimizer updates (SGD, Adam/AdamW).
    Optim,
    /// `loss.wgsl`: fused softmax cross-entropy, forward and backward.
    Loss,
    /// `stats.wgsl`: per-tensor statistics and histograms.
    Stats,
    /// `im2col.wgsl`: convolution and pooling windows as matrix columns, and back.
    Im2col,
    /// `pool.wgsl`: max pooling with its arg-max, and its backward.
    Pool,
    /// `norm.wgsl`: per-channel sums for batch normalisation, layer normalisation by rows.
    Norm,
    /// `attention.wgsl`: fused scaled dot-product attention, forward and backward.
    Attention,
    /// `recurrence.wgsl`: one step of an RNN, LSTM or GRU cell, forward and backward.
    Recurrence,
}

impl Family {
    /// Every family, for validation tests.
    pub const ALL: [Family; 15] = [
        Family::Recurrence,
        Family::Attention,
        Family::Norm,
        Family::Im2col,
        Family::Pool,
        Family::Unary,
        Family::Binary,
        Family::Matmul,
        Family::Reduce,
        Family::Softmax,
        Family::Copy,
        Family::Index,
        Family::Optim,
        Family::Loss,
        Family::Stats,
    ];

    /// The WGSL source text.
    pub fn source(self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Family::Unary => {
                return Cow::Owned(OPS.to_string() + &op_switches() + include_str!("../../shaders/unary.wgsl"));
            }
            Family::Binary => {
                return Cow::Owned(OPS.to_string() + &op_switches() + include_str!("../../shaders/binary.wgsl"));
            }
            Family::Recurrence => return Cow::Owned(OPS.to_string() + include_str!("../../shaders/recurrence.wgsl")),
            Family::Matmul => include_str!("../../shaders/matmul.wgsl"),
            Family::Reduce => include_str!("../../shaders/reduce.wgsl"),
            Family::Softmax => include_str!("../../shaders/softmax.wgsl"),
            Family::Copy => include_str!("../../shaders/copy.wgsl"),
            Family::Index => include_str!("../../shaders/index.wgsl"),
            Family::Optim => include_str!("../../shaders/optim.wgsl"),
            Family::Loss => include_str!("../../shaders/loss.wgsl"),
            Family::Stats => include_str!("../../shaders/stats.wgsl"),
            Family::Norm => include_str!("../../shaders/norm.wgsl"),
            Family::Attention => include_str!("../../shaders/attention.wgsl"),
            Family::Im2col => {
                concat!(include_str!("../../shaders/window.wgsl"), include_str!("../../shaders/im2col.wgsl"))
            }
            Family::Pool => concat!(include_str!("../../shaders/window.wgsl"), include_str!("../../shaders/pool.wgsl")),
        })
    }

    /// The file name under `shaders/`.
    pub fn file(self) -> &'static str {
        match self {
            Family::Unary => "unary.wgsl",
            Family::Binary => "binary.wgsl",
            Family::Matmul => "matmul.wgsl",
            Family::Reduce => "reduce.wgsl",
            Family::Softmax => "softmax.wgsl",
            Family::Copy => "copy.wgsl",
            Family::Index => "index.wgsl",
            Family::Optim => "optim.wgsl",
            Family::Loss => "loss.wgsl",
            Family::Stats => "stats.wgsl",
            Family::Norm => "norm.wgsl",
            Family::Attention => "attention.wgsl",
            Family::Recurrence => "recurrence.wgsl",
            Family::Im2col => "im2col.wgsl",
            Family::Pool => "pool.wgsl",
        }
    }

    /// Storage bindings: (read-only, read-write). Read-only ones come first, then read-write,
    /// then one uniform with the kernel's parameters.
    pub fn bindings(self) -> (u32, u32) {
        match self {
            Family::Unary | Family::Softmax | Family::Copy | Family::Index | Family::Stats | Family::Im2col => (1, 1),
            Family::Binary | Family::Matmul => (2, 1),
            Family::Pool => (2, 2),
            Family::Reduce => (1, 2),
            Family::Optim => (2, 4),
            Family::Norm => (3, 2),
            Family::Attention => (6, 2),
            Family::Loss => (4, 2),
            Family::Recurrence => (4, 3),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Family;

    /// Every shader parses and validates with naga, so a broken WGSL file fails `cargo test`.
    #[test]
    fn every_shader_parses_and_validates() {
        for fam in Family::ALL {
            let source = fam.source();
            let module = naga::front::wgsl::parse_str(&source)
                .unwrap_or_else(|e| panic!("{}: {}", fam.file(), e.emit_to_string(&source)));
            // Subgroup operations are allowed: the device requests them where the adapter has them,
            // and only `matmul_rows.wgsl` uses them (selected only on such devices).
            let mut v = naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                naga::valid::Capabilities::SUBGROUP | naga::valid::Capabilities::SHADER_INT64,
            );
            v.subgroup_stages(naga::valid::ShaderStages::COMPUTE)
                .subgroup_operations(naga::valid::SubgroupOperationSet::all());
            v.validate(&module).unwrap_or_else(|e| panic!("{}: {}", fam.file(), e.emit_to_string(&source)));
            // Binding numbers follow the family's declared layout (a binding may have a second,
            // vec4 view for other entry points).
            let (ro, rw) = fam.bindings();
            let mut seen: Vec<u32> =
                module.global_variables.iter().filter_map(|(_, g)| g.binding.as_ref().map(|b| b.binding)).collect();
            seen.sort();
            seen.dedup();
            assert_eq!(seen, (0..ro + rw + 1).collect::<Vec<_>>(), "{}", fam.file());
            // And as a software adapter compiles it, vec4 arrays widened.
            let wide = super::widen::widen(&source);
            let module = naga::front::wgsl::parse_str(&wide)
                .unwrap_or_else(|e| panic!("widened {}: {}", fam.file(), e.emit_to_string(&wide)));
            v.validate(&module).unwrap_or_else(|e| panic!("widened {}: {}", fam.file(), e.emit_to_string(&wide)));
        }
    }

    #[test]
    fn widen_rewrites_vec4_accesses_only() {
        let src = "@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;\n\
                   @group(0) @binding(1) var<storage, read_write> y4: array<vec4<f32>>;\n\
                   @group(0) @binding(1) var<storage, read_write> y: array<f32>;\n\
                   fn f(i: u32) {\n    y4[i] = x4[i] + vec4<f32>(x4[i / 4u][i % 4u]);\n    y[i] = 1.0;\n    let xx4 = 2;\n}\n";
        let w = super::widen::widen(src);
        assert!(w.contains("var<storage, read> x4: array<vec2<u64>>;"), "{w}");
        assert!(w.contains("var<storage, read_write> y: array<f32>;"), "{w}");
        assert!(w.contains("    y4[i] = pack4(w4(x4[i]) + vec4<f32>(w4(x4[i / 4u])[i % 4u]));"), "{w}");
        assert!(w.contains("    y[i] = 1.0;") && w.contains("let xx4 = 2;"), "{w}");
        assert_eq!(w.matches("fn w4(").count(), 1);
        assert_eq!(super::widen::widen("fn g() {}\n"), "fn g() {}\n", "nothing to widen");
    }
}
