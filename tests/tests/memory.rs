//! Memory: graphs are freed with their tensors. In a test binary of its own, because the GPU
//! pool's counters are per device and the device is shared by every test in a process.

use kiln_tests::{device_test, tensor};

device_test!(graphs_are_freed_with_their_tensors, |dev| {
    let w = tensor(&[64, 64], 2, dev, true);
    let x = tensor(&[8, 64], 3, dev, false);
    let warm = x.matmul(&w)?.relu()?.sum_all()?;
    drop(warm);
    let before = dev.as_gpu().map(|g| g.pool_stats().live_bytes);
    for _ in 0..10_000 {
        let _y = x.matmul(&w)?.relu()?.sum_all()?;
    }
    if let Some(g) = dev.as_gpu() {
        g.synchronize()?;
        assert_eq!(Some(g.pool_stats().live_bytes), before, "live GPU bytes grew");
    }
    // A very deep graph drops without overflowing the stack.
    let mut y = x.clone().set_requires_grad(true);
    for _ in 0..100_000 {
        y = y.add_scalar(1.0)?;
    }
    drop(y);
});
