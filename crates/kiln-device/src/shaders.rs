//! The WGSL sources, one per kernel family, compiled into the crate from `shaders/`.

/// A kernel family: one `.wgsl` file with one binding layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `unary.wgsl`: y = f(x), scalar forms included.
    Unary,
    /// `binary.wgsl`: broadcasting binary ops and comparisons.
    Binary,
    /// `matmul.wgsl`: batched matmul with strided (transposable) operands.
    Matmul,
    /// `matmul_vec4.wgsl`: matmul for operands with a contiguous, 4-aligned contracted dim.
    MatmulVec4,
    /// `matmul_rows.wgsl`: matmul whose invocations own rows and share columns (uniform B loads).
    MatmulRows,
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
}

impl Family {
    /// Every family, for validation tests.
    pub const ALL: [Family; 12] = [
        Family::Unary,
        Family::Binary,
        Family::Matmul,
        Family::MatmulVec4,
        Family::MatmulRows,
        Family::Reduce,
        Family::Softmax,
        Family::Copy,
        Family::Index,
        Family::Optim,
        Family::Loss,
        Family::Stats,
    ];

    /// The WGSL source text.
    pub fn source(self) -> &'static str {
        match self {
            Family::Unary => {
                concat!(include_str!("../../../shaders/ops.wgsl"), include_str!("../../../shaders/unary.wgsl"))
            }
            Family::Binary => {
                concat!(include_str!("../../../shaders/ops.wgsl"), include_str!("../../../shaders/binary.wgsl"))
            }
            Family::Matmul => include_str!("../../../shaders/matmul.wgsl"),
            Family::MatmulVec4 => include_str!("../../../shaders/matmul_vec4.wgsl"),
            Family::MatmulRows => include_str!("../../../shaders/matmul_rows.wgsl"),
            Family::Reduce => include_str!("../../../shaders/reduce.wgsl"),
            Family::Softmax => include_str!("../../../shaders/softmax.wgsl"),
            Family::Copy => include_str!("../../../shaders/copy.wgsl"),
            Family::Index => include_str!("../../../shaders/index.wgsl"),
            Family::Optim => include_str!("../../../shaders/optim.wgsl"),
            Family::Loss => include_str!("../../../shaders/loss.wgsl"),
            Family::Stats => include_str!("../../../shaders/stats.wgsl"),
        }
    }

    /// The file name under `shaders/`.
    pub fn file(self) -> &'static str {
        match self {
            Family::Unary => "unary.wgsl",
            Family::Binary => "binary.wgsl",
            Family::Matmul => "matmul.wgsl",
            Family::MatmulVec4 => "matmul_vec4.wgsl",
            Family::MatmulRows => "matmul_rows.wgsl",
            Family::Reduce => "reduce.wgsl",
            Family::Softmax => "softmax.wgsl",
            Family::Copy => "copy.wgsl",
            Family::Index => "index.wgsl",
            Family::Optim => "optim.wgsl",
            Family::Loss => "loss.wgsl",
            Family::Stats => "stats.wgsl",
        }
    }

    /// Storage bindings: (read-only, read-write). Read-only ones come first, then read-write,
    /// then one uniform with the kernel's parameters.
    pub fn bindings(self) -> (u32, u32) {
        match self {
            Family::Unary | Family::Softmax | Family::Copy | Family::Index | Family::Stats => (1, 1),
            Family::Binary | Family::Matmul | Family::MatmulVec4 | Family::MatmulRows => (2, 1),
            Family::Reduce => (1, 2),
            Family::Optim => (2, 4),
            Family::Loss => (4, 2),
        }
    }
}

/// Unpacks four floats from two 64-bit words, and packs them back (see [`widen`]).
const WIDE_HELPERS: [(&str, &str); 2] = [
    (
        "fn w4(",
        "fn w4(x: vec2<u64>) -> vec4<f32> {\n    return vec4<f32>(\n        bitcast<f32>(u32(x.x & 0xfffffffflu)),\n        \
         bitcast<f32>(u32(x.x >> 32u)),\n        bitcast<f32>(u32(x.y & 0xfffffffflu)),\n        \
         bitcast<f32>(u32(x.y >> 32u)),\n    );\n}\n",
    ),
    (
        "fn pack4(",
        "fn pack4(v: vec4<f32>) -> vec2<u64> {\n    return vec2<u64>(\n        \
         u64(bitcast<u32>(v.x)) | (u64(bitcast<u32>(v.y)) << 32u),\n        \
         u64(bitcast<u32>(v.z)) | (u64(bitcast<u32>(v.w)) << 32u),\n    );\n}\n",
    ),
];

/// `src` with every storage array of `vec4<f32>` read and written as `vec2<u64>`: a read
/// `x[e]` becomes `w4(x[e])`, a statement `x[e] = v;` becomes `x[e] = pack4(v);`, and the two
/// helpers are added. On llvmpipe a storage access is a loop over the lanes per component, and
/// a 64-bit component carries two floats, so this halves the loop iterations per float (see
/// PERFORMANCE.md). Needs `SHADER_INT64`. Every access of such an array must be an index
/// expression `x[...]`, and a write a statement of its own line (true of kiln's kernels).
pub(crate) fn widen(src: &str) -> String {
    let names: Vec<&str> = src
        .lines()
        .filter(|l| l.contains("var<storage") && l.trim_end().ends_with(": array<vec4<f32>>;"))
        .filter_map(|l| l.rsplit_once(": array<vec4<f32>>;")?.0.rsplit(' ').next())
        .collect();
    if names.is_empty() {
        return src.to_string();
    }
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    // Wraps each `name[...]` of `text` in w4( ).
    let reads = |text: &str| -> String {
        let mut out = String::with_capacity(text.len() + 16);
        let mut rest = text;
        'scan: while !rest.is_empty() {
            for n in &names {
                let prev_ok = out.chars().last().is_none_or(|c| !is_ident(c));
                if prev_ok && rest.starts_with(n) && rest[n.len()..].starts_with('[') {
                    let mut depth = 0;
                    for (j, c) in rest.char_indices().skip(n.len()) {
                        depth += match c {
                            '[' => 1,
                            ']' => -1,
                            _ => 0,
                        };
                        if depth == 0 {
                            out.push_str(&format!("w4({})", &rest[..=j]));
                            rest = &rest[j + 1..];
                            continue 'scan;
                        }
                    }
                }
            }
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
        out
    };
    let mut out = String::new();
    for (marker, text) in WIDE_HELPERS {
        if !src.contains(marker) {
            out.push_str(text);
        }
    }
    for line in src.lines() {
        let body = line.trim_start();
        let indent = &line[..line.len() - body.len()];
        let write = names.iter().find(|n| body.starts_with(&format!("{n}["))).and_then(|_| {
            let eq = body.find("] = ")?;
            let end = body.rfind(';')?;
            Some((&body[..eq + 1], &body[eq + 4..end], &body[end..]))
        });
        if line.contains("var<storage") && line.trim_end().ends_with(": array<vec4<f32>>;") {
            out.push_str(&line.replace(": array<vec4<f32>>;", ": array<vec2<u64>>;"));
        } else if let Some((target, value, tail)) = write {
            out.push_str(&format!("{indent}{target} = pack4({}){tail}", reads(value)));
        } else {
            out.push_str(&reads(line));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::Family;

    /// Every shader parses and validates with naga, so a broken WGSL file fails `cargo test`.
    #[test]
    fn every_shader_parses_and_validates() {
        for fam in Family::ALL {
            let module = naga::front::wgsl::parse_str(fam.source())
                .unwrap_or_else(|e| panic!("{}: {}", fam.file(), e.emit_to_string(fam.source())));
            // Subgroup operations are allowed: the device requests them where the adapter has them,
            // and only `matmul_rows.wgsl` uses them (selected only on such devices).
            let mut v = naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                naga::valid::Capabilities::SUBGROUP | naga::valid::Capabilities::SHADER_INT64,
            );
            v.subgroup_stages(naga::valid::ShaderStages::COMPUTE)
                .subgroup_operations(naga::valid::SubgroupOperationSet::all());
            v.validate(&module).unwrap_or_else(|e| panic!("{}: {}", fam.file(), e.emit_to_string(fam.source())));
            // Binding numbers follow the family's declared layout (a binding may have a second,
            // vec4 view for other entry points).
            let (ro, rw) = fam.bindings();
            let mut seen: Vec<u32> =
                module.global_variables.iter().filter_map(|(_, g)| g.binding.as_ref().map(|b| b.binding)).collect();
            seen.sort();
            seen.dedup();
            assert_eq!(seen, (0..ro + rw + 1).collect::<Vec<_>>(), "{}", fam.file());
            // And as a software adapter compiles it, vec4 arrays widened.
            let wide = super::widen(fam.source());
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
        let w = super::widen(src);
        assert!(w.contains("var<storage, read> x4: array<vec2<u64>>;"), "{w}");
        assert!(w.contains("var<storage, read_write> y: array<f32>;"), "{w}");
        assert!(w.contains("    y4[i] = pack4(w4(x4[i]) + vec4<f32>(w4(x4[i / 4u])[i % 4u]));"), "{w}");
        assert!(w.contains("    y[i] = 1.0;") && w.contains("let xx4 = 2;"), "{w}");
        assert_eq!(w.matches("fn w4(").count(), 1);
        assert_eq!(super::widen("fn g() {}\n"), "fn g() {}\n", "nothing to widen");
    }
}
