//! Element types.

/// The element type of a tensor. `F32` holds values; `U32` holds class labels and indices.
/// (F16 is planned: the storage layer already keys buffers by byte size.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 32-bit unsigned integer (labels, indices).
    U32,
}

impl DType {
    /// Bytes per element.
    pub fn size_in_bytes(self) -> usize {
        4
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DType::F32 => write!(f, "f32"),
            DType::U32 => write!(f, "u32"),
        }
    }
}
