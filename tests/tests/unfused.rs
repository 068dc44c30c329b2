//! The elementwise cases with fusion off (`KILN_FUSE=0`): on the GPU device fusion sends nearly
//! every elementwise op through generated kernels, so without this binary the families' own
//! kernels (`unary`, `binary`, `binary2d`, `binary2d4`, their vec4 forms) would go untested. One
//! test in its own process, so that the variable is set before any device exists.

use kiln_tests::elementwise_cases::{binary_cases, unary_cases};
use kiln_tests::gpu_device;

#[test]
fn unfused_elementwise_kernels_match_f64() {
    // SAFETY: the only test in this binary, run before any other thread reads the environment.
    unsafe { std::env::set_var("KILN_FUSE", "0") };
    let Some(dev) = gpu_device() else { return };
    let before = dev.as_gpu().map(|g| g.dispatches()).unwrap_or(0);
    unary_cases(&dev);
    binary_cases(&dev);
    // Unfused, every op is its own dispatch (over a thousand of them).
    let used = dev.as_gpu().map(|g| g.dispatches()).unwrap_or(0) - before;
    assert!(used > 1000, "{used} dispatches");
}
