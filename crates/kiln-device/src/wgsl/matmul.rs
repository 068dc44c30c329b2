//! The matmul kernels as typed descriptions: [`MatmulKernel`] names one kernel, and the same
//! value gives its block of C (for the launch grid), its entry point and its WGSL. The kernel
//! picker (`kernels/matmul.rs`) returns one, the generators ([`super::matmul_rows`],
//! [`super::matmul_tiles`]) write its source, and a matmul epilogue is generated from it.

use super::matmul_rows::RowKernel;
use super::matmul_tiles::TileKernel;

/// The fields of every matmul kernel's `Params` (mirrored by the launcher's `MatmulParams`):
/// C (m x n) = op(A) (m x k) * op(B) (k x n), row/column/batch strides of op(A) and op(B) in
/// floats, C's batch stride, and where A and B start (a block of the contracted dim: see
/// `MATMUL_K_BLOCK`).
pub(crate) const PARAMS_FIELDS: &str = "    m: u32,\n    n: u32,\n    k: u32,\n    a_off: u32,\n    \
    a_rs: u32,\n    a_cs: u32,\n    a_bs: u32,\n    b_off: u32,\n    b_rs: u32,\n    b_cs: u32,\n    \
    b_bs: u32,\n    pad2: u32,\n    c_bs: u32,\n    pad3: u32,\n    pad4: u32,\n    pad5: u32,\n";

/// The scalar kernels of the hand-written `matmul.wgsl` (any strides).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScalarKernel {
    /// `matmul`: 4x4 values per invocation (32x32 per workgroup).
    Block4,
    /// `matmul8`: 8x8 values per invocation (64x64 per workgroup).
    Block8,
}

/// One matmul kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatmulKernel {
    /// A subgroup kernel of software adapters (generated).
    Rows(RowKernel),
    /// A vec4 tiled kernel (generated).
    Tiles(TileKernel),
    /// A scalar kernel of `matmul.wgsl`.
    Scalar(ScalarKernel),
}

impl MatmulKernel {
    /// Rows and columns of C each workgroup computes.
    pub fn block(&self) -> (usize, usize) {
        match self {
            MatmulKernel::Rows(k) => k.block(),
            MatmulKernel::Tiles(k) => k.block(),
            MatmulKernel::Scalar(ScalarKernel::Block4) => (32, 32),
            MatmulKernel::Scalar(ScalarKernel::Block8) => (64, 64),
        }
    }

    /// The kernel's entry point.
    pub fn name(&self) -> String {
        match self {
            MatmulKernel::Rows(k) => k.name(),
            MatmulKernel::Tiles(k) => k.name(),
            MatmulKernel::Scalar(ScalarKernel::Block4) => "matmul".into(),
            MatmulKernel::Scalar(ScalarKernel::Block8) => "matmul8".into(),
        }
    }
}
