//! Matmul epilogues: the elementwise ops that follow a matmul (a linear layer's bias add and
//! ReLU, the ReLU mask applied to the gradient a backward matmul produces) run inside the
//! matmul kernel instead of as a kernel of their own.
//!
//! [`crate::kernels::matmul()`] hands a product computed by a subgroup kernel
//! ([`RowKernel`]) to [`super::Batch::matmul`], which opens a fusion chain whose op 0 is the
//! product. Elementwise ops that read a result of that chain join it as they join
//! any chain; ops that do not, close it. When the chain closes with ops beyond the product, it
//! is recorded as one generated kernel: the subgroup kernel with a loop over the block of C it
//! has just stored, in which the chain runs (`RowKernel::source_with`). Otherwise the plain
//! matmul is recorded (or nothing, if its product was dropped unread).
//!
//! What it saves, per fused op: one dispatch and one pass over the product through memory. The
//! tiled kernels of real GPUs are not fused. Off by default (`Fusion::WithEpilogues` turns it
//! on): on llvmpipe the saving is within the noise of a training step, and every chain shape
//! compiles a copy of its matmul kernel (PERFORMANCE.md).

use crate::wgsl::matmul_rows::RowKernel;

/// A matmul launch that a chain can take over: its kernel, operands, uniform and grid.
pub(crate) struct Head {
    /// The subgroup kernel.
    pub(crate) kernel: RowKernel,
    /// Operand A (binding 0).
    pub(crate) a: wgpu::Buffer,
    /// Operand B (binding 1).
    pub(crate) b: wgpu::Buffer,
    /// The matmul's uniform (`Params` of the kernel, 64 bytes).
    pub(crate) params: Vec<u8>,
    /// Workgroups in x, y, z.
    pub(crate) groups: [u32; 3],
    /// N % 4 == 0: the epilogue runs four elements per step (rows are whole vec4s).
    pub(crate) four: bool,
}
