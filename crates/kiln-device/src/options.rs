//! [`DeviceOptions`]: what a GPU device's kernels may do, chosen when the device is opened
//! ([`crate::GpuDevice::open_with`]) or changed on it ([`crate::GpuDevice::set_options`]).
//!
//! The environment only fills in the defaults, once, in [`DeviceOptions::from_env`]: `KILN_FUSE`
//! (`0` off, `all` with matmul epilogues), `KILN_MATMUL` (`tiles`, `r8`, `nn32`, `scalar4`,
//! `scalar8`), `KILN_WIDE=0`, `KILN_DUMP_WGSL=DIR`, `KILN_ATTENTION` (`fused`, `composed`). Nothing else in kiln-device reads the
//! environment, apart from wgpu's own `WGPU_BACKEND` and `WGPU_ADAPTER_NAME`.

use std::path::PathBuf;

/// Whether elementwise ops are fused into generated kernels (see `fuse/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fusion {
    /// Every op records its family's own kernel.
    Off,
    /// Chains of elementwise ops over the same elements run as one generated kernel.
    #[default]
    Elementwise,
    /// As `Elementwise`, and the ops that follow a subgroup matmul run inside its kernel (off by
    /// default: on llvmpipe it saves no measurable time and compiles a matmul per chain shape).
    WithEpilogues,
}

/// Which matmul kernels the picker may choose (`kernels/matmul.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatmulPolicy {
    /// The best kernel for the adapter and the problem.
    #[default]
    Auto,
    /// Never the software adapter's subgroup kernels: the vec4 tiles and scalar blocks real GPUs
    /// run (for comparison, and to test those kernels on a software adapter).
    Tiles,
    /// The subgroup kernels with eight rows per lane (64-row blocks) instead of four.
    Rows8,
    /// `nn` subgroup products at 32 columns per subgroup, never 64.
    Nn32,
    /// Always `matmul.wgsl`'s 4x4 scalar blocks.
    Scalar4,
    /// Always `matmul.wgsl`'s 8x8 scalar blocks.
    Scalar8,
}

/// Which form `scaled_dot_product_attention` takes on the device (`kernels::attention_form`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttentionPolicy {
    /// The fused kernels, except on a software adapter: there the composition (matmul,
    /// softmax, matmul) when the score matrix is small enough to hold, else the blocked form;
    /// both measured faster there than the fused kernels.
    #[default]
    Auto,
    /// Always the fused kernels (O(D) memory per row beyond the inputs).
    Fused,
    /// Always the blocked form: keys in blocks, each block's scores by the matmul kernels and
    /// an online softmax across blocks (O(block) memory per row).
    Blocked,
    /// Always the composition (the whole [L, S] score matrix).
    Composed,
}

/// Options of a GPU device. `Default` is kiln's choice without looking at the environment;
/// [`DeviceOptions::from_env`] is what `GpuDevice::open` uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceOptions {
    /// Elementwise fusion.
    pub fusion: Fusion,
    /// Matmul kernel choice.
    pub matmul: MatmulPolicy,
    /// On a software adapter with 64-bit integers, read and write vec4 arrays as `vec2<u64>`
    /// (`wgsl::widen`: fewer per-lane load loops on llvmpipe). Ignored on other adapters.
    pub wide: bool,
    /// Write every generated kernel's WGSL into this folder (for reading), as `<name>.wgsl`.
    pub dump_wgsl: Option<PathBuf>,
    /// Fused, blocked or composed attention.
    pub attention: AttentionPolicy,
}

impl Default for DeviceOptions {
    fn default() -> Self {
        DeviceOptions {
            fusion: Fusion::Elementwise,
            matmul: MatmulPolicy::Auto,
            wide: true,
            dump_wgsl: None,
            attention: AttentionPolicy::Auto,
        }
    }
}

impl DeviceOptions {
    /// The defaults, with the `KILN_FUSE`, `KILN_MATMUL`, `KILN_WIDE`, `KILN_DUMP_WGSL` and
    /// `KILN_ATTENTION` variables applied where set (unknown values are ignored).
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok();
        let mut o = Self::from_vars(var("KILN_FUSE"), var("KILN_MATMUL"), var("KILN_WIDE"), var("KILN_DUMP_WGSL"));
        o.attention = Self::attention_from(var("KILN_ATTENTION"));
        o
    }

    fn attention_from(v: Option<String>) -> AttentionPolicy {
        match v.as_deref() {
            Some("fused") => AttentionPolicy::Fused,
            Some("composed") => AttentionPolicy::Composed,
            Some("blocked") => AttentionPolicy::Blocked,
            _ => AttentionPolicy::Auto,
        }
    }

    /// The defaults with the first four variables' values applied.
    fn from_vars(fuse: Option<String>, matmul: Option<String>, wide: Option<String>, dump: Option<String>) -> Self {
        let mut o = DeviceOptions::default();
        match fuse.as_deref() {
            Some("0") => o.fusion = Fusion::Off,
            Some("all") => o.fusion = Fusion::WithEpilogues,
            _ => {}
        }
        o.matmul = match matmul.as_deref() {
            Some("tiles") => MatmulPolicy::Tiles,
            Some("r8") => MatmulPolicy::Rows8,
            Some("nn32") => MatmulPolicy::Nn32,
            Some("scalar4") => MatmulPolicy::Scalar4,
            Some("scalar8") => MatmulPolicy::Scalar8,
            _ => MatmulPolicy::Auto,
        };
        o.wide = wide.as_deref() != Some("0");
        o.dump_wgsl = dump.filter(|d| !d.is_empty()).map(PathBuf::from);
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_fill_in_the_defaults() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(DeviceOptions::from_vars(None, None, None, None), DeviceOptions::default());
        let o = DeviceOptions::from_vars(s("0"), s("r8"), s("0"), s("/tmp/k"));
        assert_eq!(o.fusion, Fusion::Off);
        assert_eq!(o.matmul, MatmulPolicy::Rows8);
        assert!(!o.wide);
        assert_eq!(o.dump_wgsl, Some(PathBuf::from("/tmp/k")));
        let o = DeviceOptions::from_vars(s("all"), s("tiles"), s("1"), s(""));
        assert_eq!((o.fusion, o.matmul, o.wide, o.dump_wgsl), (Fusion::WithEpilogues, MatmulPolicy::Tiles, true, None));
        assert_eq!(DeviceOptions::from_vars(s("yes"), s("fast"), None, None), DeviceOptions::default());
        assert_eq!(DeviceOptions::attention_from(s("fused")), AttentionPolicy::Fused);
        assert_eq!(DeviceOptions::attention_from(s("composed")), AttentionPolicy::Composed);
        assert_eq!(DeviceOptions::attention_from(s("blocked")), AttentionPolicy::Blocked);
        assert_eq!(DeviceOptions::attention_from(s("x")), AttentionPolicy::Auto);
    }
}
