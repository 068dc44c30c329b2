//! Tensor ops: shape rules, dispatch to the CPU reference kernels or to a kiln-device launcher,
//! and recording of the autograd `Op`. One file per family: elementwise (unary, binary,
//! scalar forms, masks), layout (reshape, transpose, broadcast), linalg (matmul), reduce (sum,
//! mean, max, argmax, softmax), loss (fused softmax cross-entropy), conv (convolution and
//! pooling on im2col), norm (batch normalisation as one node), join (cat, stack, narrow,
//! chunk, split, permute), index (index_select, gather, tril, triu, arange), attention (fused
//! scaled dot-product attention), recurrence (a recurrent layer's time loop as one node).

pub(crate) mod attention;
mod attention_blocked;
pub(crate) mod conv;
mod elementwise;
mod index;
mod join;
pub(crate) mod layout;
mod linalg;
mod loss;
pub(crate) mod norm;
mod recurrence;
mod reduce;

use kiln_device::GpuDevice;

use crate::device::Device;

/// The GPU device of a tensor whose storage is on the GPU.
pub(crate) fn gpu(dev: &Device) -> &GpuDevice {
    dev.as_gpu().expect("internal: GPU storage on a non-GPU device")
}

/// The GPU buffer of a tensor whose storage is on the GPU (`op` names the caller in the error).
pub(crate) fn gpu_buf(
    op: &'static str,
    t: &crate::tensor::Tensor,
) -> crate::error::Result<std::sync::Arc<kiln_device::GpuBuffer>> {
    match t.storage() {
        crate::storage::Storage::Gpu(b) => Ok(b.clone()),
        _ => Err(crate::error::Error::invalid(op, "internal: expected GPU storage")),
    }
}
