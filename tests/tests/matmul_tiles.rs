//! The tiled (vec4 and scalar) matmul kernels on the GPU device, with the subgroup kernels
//! turned off (`KILN_MATMUL=tiles`): on a software adapter the subgroup kernels take every
//! product they can, so without this binary the kernels real GPUs run would go untested here.
//! One test in its own process, so that the variable is set before any device exists.

use kiln_tests::{check_matmul, gpu_device, matmul_kernel_cases};

#[test]
fn tiled_kernels_match_f64() {
    // SAFETY: the only test in this binary, run before any other thread reads the environment.
    unsafe { std::env::set_var("KILN_MATMUL", "tiles") };
    let Some(dev) = gpu_device() else { return };
    matmul_kernel_cases(&dev);
    for (m, k, n) in [(65, 129, 33), (33, 64, 65), (7, 1000, 5)] {
        check_matmul(&dev, &[m, k], &[k, n], 1e-5);
    }
    check_matmul(&dev, &[3, 40, 32], &[3, 32, 36], 1e-5);
}
