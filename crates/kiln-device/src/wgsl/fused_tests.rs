//! Unit tests of the fused kernels' text: generated kernels validate, op functions match the
//! family kernels, preludes hold their helpers, index maps from strides.

use super::*;
use crate::wgsl::ops_function;

/// Parses and validates `src` with naga under `caps` (subgroup operations allowed where `caps`
/// has SUBGROUP), panicking with `what` and naga's report.
fn validate(src: &str, caps: naga::valid::Capabilities, what: &str) {
    let module = naga::front::wgsl::parse_str(src).unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(src)));
    let mut v = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps);
    if caps.contains(naga::valid::Capabilities::SUBGROUP) {
        v.subgroup_stages(naga::valid::ShaderStages::COMPUTE)
            .subgroup_operations(naga::valid::SubgroupOperationSet::all());
    }
    v.validate(&module).unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(src)));
}

/// Plans that cover the generator: every unary op then fill, and every binary op against each
/// kind of input, over every index map, in both widths (also translated by
/// `translate_tests.rs`).
pub(crate) fn sample_plans() -> Vec<(String, Plan)> {
    let mut unaries = Vec::new();
    let mut prev = Val::Input(0);
    for (k, op) in UnaryOp::ALL.into_iter().filter(|o| *o != UnaryOp::Fill).enumerate() {
        unaries.push((k, NodeOp::Unary(op, 0.5), vec![prev]));
        prev = Val::Node(k);
    }
    unaries.push((unaries.len(), NodeOp::Unary(UnaryOp::Fill, 2.0), vec![]));
    let mut binaries = Vec::new();
    prev = Val::Input(0);
    for (k, op) in BinaryOp::ALL.into_iter().enumerate() {
        binaries.push((k, NodeOp::Binary(op), vec![prev, Val::Input(1 + k % 4)]));
        prev = Val::Node(k);
    }
    let mut out = Vec::new();
    for (name, ops) in [("unary", unaries), ("binary", binaries)] {
        assert!(ops.len() <= MAX_NODES);
        let last = ops.len() - 1;
        for four in [false, true] {
            let plan = Plan {
                four,
                head: None,
                slots: 7,
                loads: vec![
                    (0, 0, Index::Full),
                    (1, 1, Index::Row(8)),
                    (2, 2, Index::Col(8)),
                    (3, 3, Index::Scalar),
                    (4, 4, Index::Mid { inner: 8, dim: 3 }),
                ],
                ops: ops.clone(),
                stores: vec![(5, last - 1), (6, last)],
            };
            out.push((format!("fused {name} chain{}", if four { " (vec4)" } else { "" }), plan));
        }
    }
    out
}

/// A matmul epilogue with every kind of input on `head`, in both widths.
pub(crate) fn sample_epilogues(head: RowKernel) -> [Plan; 2] {
    let ops = vec![
        (0, NodeOp::Head, vec![]),
        (1, NodeOp::Binary(BinaryOp::Add), vec![Val::Node(0), Val::Input(0)]),
        (2, NodeOp::Unary(UnaryOp::Relu, 0.0), vec![Val::Node(1)]),
        (3, NodeOp::Binary(BinaryOp::ReluBackward), vec![Val::Node(2), Val::Input(1)]),
        (4, NodeOp::Binary(BinaryOp::Mul), vec![Val::Node(3), Val::Input(2)]),
        (5, NodeOp::Binary(BinaryOp::Sub), vec![Val::Node(4), Val::Input(3)]),
    ];
    [false, true].map(|four| Plan {
        four,
        head: Some(head),
        slots: 9,
        loads: vec![(0, 3, Index::Row(8)), (1, 4, Index::Full), (2, 5, Index::Col(8)), (3, 6, Index::Scalar)],
        ops: ops.clone(),
        stores: vec![(7, 5), (8, 2)],
    })
}

/// Generated kernels parse and validate with naga, in both widths, with every index map,
/// every op and an op without operands (fill).
#[test]
fn generated_kernels_validate() {
    for (what, plan) in sample_plans() {
        let src = plan.source();
        validate(&src, naga::valid::Capabilities::empty(), &what);
        assert!(src.contains("fn fused(") && !src.contains("//@"), "{src}");
        // As a software adapter compiles it (vec4 arrays as vec2<u64>).
        let wide = crate::wgsl::widen(&src);
        validate(&wide, naga::valid::Capabilities::SHADER_INT64, &format!("widened {what}"));
        assert_eq!(wide.contains("pack4("), plan.four, "{wide}");
    }
}

/// Matmul epilogues parse and validate for every subgroup kernel the picker can choose, in both
/// widths, with every kind of input.
#[test]
fn epilogue_kernels_validate() {
    let heads: Vec<RowKernel> = crate::kernels::matmul::reachable_kernels()
        .into_iter()
        .filter_map(|k| match k {
            crate::wgsl::matmul::MatmulKernel::Rows(k) => Some(k),
            _ => None,
        })
        .collect();
    assert!(heads.len() >= 10, "{heads:?}");
    for &h in &heads {
        for plan in sample_epilogues(h) {
            let src = plan.source();
            validate(&src, naga::valid::Capabilities::all(), &format!("{h:?}"));
            assert_eq!(src.matches("@compute").count(), 1);
            assert_eq!(src.matches(&format!("fn {}(", h.name())).count(), 1);
            assert_eq!(src.matches("let v0 = v;").count(), 1, "the chain once, after the stores");
            validate(&crate::wgsl::widen(&src), naga::valid::Capabilities::all(), &format!("widened {h:?}"));
        }
    }
    let keys: Vec<Vec<u32>> = heads
        .iter()
        .map(|&h| Plan { four: false, head: Some(h), slots: 3, loads: vec![], ops: vec![], stores: vec![] }.key())
        .collect();
    assert!(keys.iter().enumerate().all(|(i, k)| !keys[..i].contains(k)), "one cache key per kernel");
}

/// Each op's function is defined in ops.wgsl (with the signature the fused kernels call) and is
/// what the generated switch of the family kernels calls for the op's number, so fused and
/// unfused launches compute the same thing.
#[test]
fn op_functions_match_the_switches() {
    let ops = crate::wgsl::OPS;
    let switches = crate::wgsl::op_switches();
    for op in UnaryOp::ALL {
        let f = op.wgsl_fn();
        assert!(ops.contains(&format!("fn {f}(v: f32, a: f32) -> f32")), "{op:?}");
        assert!(switches.contains(&format!("case {}u: {{ return {f}(v, a); }}", op as u32)), "{op:?}");
    }
    for op in BinaryOp::ALL {
        let f = op.wgsl_fn();
        assert!(ops.contains(&format!("fn {f}(u: f32, v: f32) -> f32")), "{op:?}");
        assert!(switches.contains(&format!("case {}u: {{ return {f}(u, v); }}", op as u32)), "{op:?}");
    }
}

#[test]
fn prelude_holds_the_functions_and_their_helpers() {
    let p = ops_prelude(&["u_pow_scalar", "b_add", "u_tanh", "u_pow_scalar"]);
    assert_eq!(p.matches("fn ").count(), 5, "{p}");
    for f in ["fn powf(", "fn tanh_(", "fn u_pow_scalar(", "fn b_add(", "fn u_tanh("] {
        assert_eq!(p.matches(f).count(), 1, "{f} in {p}");
    }
    assert!(p.find("fn powf(").unwrap() < p.find("fn u_pow_scalar(").unwrap());
    assert!(p.find("fn tanh_(").unwrap() < p.find("fn u_tanh(").unwrap());
    assert!(ops_function("powf").unwrap().ends_with("}\n") && ops_function("nothing").is_none());
}

#[test]
fn index_maps_from_strides() {
    assert_eq!(Index::of(&[5], &[1]), Some(Index::Full));
    assert_eq!(Index::of(&[5], &[0]), Some(Index::Scalar));
    assert_eq!(Index::of(&[3, 4], &[4, 1]), Some(Index::Full));
    assert_eq!(Index::of(&[3, 4], &[0, 1]), Some(Index::Row(4)));
    assert_eq!(Index::of(&[3, 4], &[1, 0]), Some(Index::Col(4)));
    assert_eq!(Index::of(&[3, 4], &[0, 0]), Some(Index::Scalar));
    assert_eq!(Index::of(&[1, 3, 1, 4], &[9, 4, 7, 1]), Some(Index::Full));
    assert_eq!(Index::of(&[3, 4], &[1, 3]), None, "a transposed operand");
    assert_eq!(Index::of(&[2, 3, 4], &[0, 4, 1]), None, "a broadcast over two dims");
    assert_eq!(Index::of(&[2, 3, 4], &[0, 1, 0]), Some(Index::Mid { inner: 4, dim: 3 }), "per channel");
    assert_eq!(Index::of(&[2, 3, 1, 4], &[0, 1, 9, 0]), Some(Index::Mid { inner: 4, dim: 3 }));
    assert!(Index::Mid { inner: 8, dim: 3 }.fits_four() && !Index::Mid { inner: 6, dim: 4 }.fits_four());
    assert!(Index::Row(8).fits_four() && !Index::Col(6).fits_four());
}
