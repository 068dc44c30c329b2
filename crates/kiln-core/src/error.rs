//! `kiln::Error`: every fallible call names the operation and the offending shapes, dims,
//! dtypes or devices.

use crate::dtype::DType;

/// The error type of every fallible kiln call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// Two shapes that had to agree (or broadcast) did not.
    #[error("{op}: shape mismatch: {lhs:?} vs {rhs:?}")]
    ShapeMismatch {
        /// The operation.
        op: &'static str,
        /// The first shape.
        lhs: Vec<usize>,
        /// The second shape.
        rhs: Vec<usize>,
    },
    /// A dim index outside the tensor's rank.
    #[error("{op}: dim {dim} is out of range for a tensor of shape {shape:?}")]
    DimOutOfRange {
        /// The operation.
        op: &'static str,
        /// The dim asked for (negative dims count from the end).
        dim: i64,
        /// The tensor's shape.
        shape: Vec<usize>,
    },
    /// The data does not fill the shape.
    #[error("{op}: {len} values cannot fill shape {shape:?} ({numel} elements)")]
    DataLength {
        /// The operation.
        op: &'static str,
        /// Values given.
        len: usize,
        /// The shape asked for.
        shape: Vec<usize>,
        /// Its element count.
        numel: usize,
    },
    /// A tensor of the wrong dtype.
    #[error("{op}: expected a {expected:?} tensor, got {got:?} (shape {shape:?}){}", dtype_hint(*expected))]
    DType {
        /// The operation.
        op: &'static str,
        /// What the op needs.
        expected: DType,
        /// What it got.
        got: DType,
        /// The tensor's shape.
        shape: Vec<usize>,
    },
    /// Tensors on two devices in one op (kiln never copies implicitly).
    #[error("{op}: tensors are on different devices: {lhs} and {rhs}; move one with .to(&device)")]
    DeviceMismatch {
        /// The operation.
        op: &'static str,
        /// The first device.
        lhs: String,
        /// The second device.
        rhs: String,
    },
    /// `backward()` was called where it cannot run.
    #[error("backward: {0}")]
    Backward(String),
    /// Any other invalid argument.
    #[error("{op}: {msg}")]
    Invalid {
        /// The operation.
        op: &'static str,
        /// What was wrong.
        msg: String,
    },
    /// `load_state_dict(strict = true)` found keys missing from, or unexpected in, the file.
    #[error("load_state_dict: missing keys {missing:?}; unexpected keys {unexpected:?}")]
    Keys {
        /// Keys the model has and the state_dict lacks.
        missing: Vec<String>,
        /// Keys the state_dict has and the model lacks.
        unexpected: Vec<String>,
    },
    /// A state_dict entry whose shape differs from the model's.
    #[error("{op}: key {key:?} has shape {got:?} but the model's is {expected:?}")]
    KeyShape {
        /// The operation.
        op: &'static str,
        /// The key.
        key: String,
        /// The model's shape.
        expected: Vec<usize>,
        /// The state_dict's shape.
        got: Vec<usize>,
    },
    /// A state_dict entry whose dtype cannot be loaded into the model's.
    #[error("{op}: key {key:?} has dtype {got} but the model's is {expected}")]
    KeyDType {
        /// The operation.
        op: &'static str,
        /// The key.
        key: String,
        /// The model's dtype.
        expected: DType,
        /// The state_dict's dtype (as the file names it).
        got: String,
    },
    /// Reading or writing a file failed, or the file is not what it should be.
    #[error("{op}: {path}: {msg}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The file.
        path: String,
        /// What went wrong.
        msg: String,
    },
    /// Anomaly detection found a NaN or infinity.
    #[error("anomaly: the {phase} of {op} produced a NaN or infinite value")]
    Anomaly {
        /// The op (e.g. "log", "matmul").
        op: String,
        /// "forward" or "backward".
        phase: &'static str,
    },
    /// Training produced a NaN or infinite loss (raised by the NaN guard).
    #[error("non-finite training: at step {step} the loss is {loss}; first non-finite: {first}")]
    NonFinite {
        /// The step at which it was noticed.
        step: u64,
        /// The loss value.
        loss: f32,
        /// The first parameter (or gradient) that is not finite, or "loss only".
        first: String,
    },
    /// A layer refused its input: `layer` names it with its sizes (e.g. `Linear(in_features=10,
    /// out_features=2)`), `path` is where it sits when reached through a container (e.g. "3"
    /// in a `Sequential`, "0.1" nested; empty otherwise), `msg` what was wrong and expected.
    #[error("{layer}{}: {msg}", if path.is_empty() { String::new() } else { format!(" at {path:?}") })]
    Layer {
        /// The layer's type and sizes.
        layer: String,
        /// Its dotted path below the container that reported it.
        path: String,
        /// What was wrong.
        msg: String,
    },
    /// The GPU layer failed (no adapter, a buffer too large, a wgpu error).
    #[error(transparent)]
    Device(#[from] kiln_device::DeviceError),
}

/// `Result<T, kiln::Error>`.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An [`Error::Layer`] for `layer` (no path yet: containers add it).
    pub fn layer(layer: impl Into<String>, msg: impl Into<String>) -> Error {
        Error::Layer { layer: layer.into(), path: String::new(), msg: msg.into() }
    }

    /// This error as raised by a child named `name` of a container: a layer error's path gets
    /// the name in front; other errors are returned as they are.
    pub fn in_child(self, name: &str) -> Error {
        match self {
            Error::Layer { layer, path, msg } => {
                let path = if path.is_empty() { name.to_string() } else { format!("{name}.{path}") };
                Error::Layer { layer, path, msg }
            }
            e => e,
        }
    }

    /// An [`Error::Invalid`] for `op`.
    pub fn invalid(op: &'static str, msg: impl Into<String>) -> Error {
        Error::Invalid { op, msg: msg.into() }
    }
}

/// How to make a tensor of `expected`, for [`Error::DType`]'s message.
fn dtype_hint(expected: DType) -> &'static str {
    match expected {
        DType::U32 => "; make class labels with Tensor::from_labels, or convert with .to_dtype(DType::U32)",
        DType::F32 => "; convert with .to_dtype(DType::F32)",
        DType::I64 => "; convert with .to_dtype(DType::I64)",
    }
}
