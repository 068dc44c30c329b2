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
        }
    }
}
