//! The subgroup matmul kernels with eight rows per lane (`KILN_MATMUL=r8`): the defaults take
//! four, so without this binary the 64-row kernels would go untested. One test in its own
//! process, so that the variable is set before any device exists.

use kiln_tests::{gpu_device, matmul_kernel_cases};

#[test]
fn eight_row_kernels_match_f64() {
    // SAFETY: the only test in this binary, run before any other thread reads the environment.
    unsafe { std::env::set_var("KILN_MATMUL", "r8") };
    let Some(dev) = gpu_device() else { return };
    matmul_kernel_cases(&dev);
}
