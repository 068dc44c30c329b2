//! Errors raised by the device layer.

/// What can go wrong while talking to wgpu.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeviceError {
    /// No adapter matched the request.
    #[error("{0}")]
    NoAdapter(String),
    /// `request_device` failed.
    #[error("could not open the wgpu device on {adapter}: {reason}")]
    RequestDevice {
        /// The adapter's name.
        adapter: String,
        /// wgpu's message.
        reason: String,
    },
    /// A buffer larger than the adapter allows.
    #[error("{op}: a buffer of {bytes} bytes exceeds the adapter's limit of {limit} bytes ({what})")]
    TooLarge {
        /// The operation that needed the buffer.
        op: String,
        /// Requested size.
        bytes: u64,
        /// The adapter's limit.
        limit: u64,
        /// Which limit.
        what: &'static str,
    },
    /// wgpu reported a validation or out-of-memory error, or the device was lost.
    #[error("wgpu error: {0}")]
    Wgpu(String),
    /// Mapping a buffer for read-back failed.
    #[error("read-back failed: {0}")]
    ReadBack(String),
    /// A launcher was called with inconsistent sizes (a bug in the caller).
    #[error("{op}: {msg}")]
    Launch {
        /// The kernel.
        op: &'static str,
        /// What was wrong.
        msg: String,
    },
}

/// `Result` with a [`DeviceError`].
pub type DeviceResult<T> = Result<T, DeviceError>;
