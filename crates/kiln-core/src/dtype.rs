//! Element types.

/// The element type of a tensor. `F32` holds values; `U32` holds class labels and indices;
/// `I64` holds counters such as BatchNorm's `num_batches_tracked` (stored, moved, saved and
/// loaded, but not computed with). F16 is planned: storage is sized in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 32-bit unsigned integer (labels, indices).
    U32,
    /// 64-bit signed integer (counters, PyTorch's int64 buffers).
    I64,
}

impl DType {
    /// Bytes per element.
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 | DType::U32 => 4,
            DType::I64 => 8,
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DType::F32 => write!(f, "f32"),
            DType::U32 => write!(f, "u32"),
            DType::I64 => write!(f, "i64"),
        }
    }
}
