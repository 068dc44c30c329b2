//! Memory: graphs are freed with their tensors, and the GPU pool reaches a steady state. In a test binary of its own, because the GPU
//! pool's counters are per device and the device is shared by every test in a process.

use std::sync::Mutex;

use kiln::Tensor;
use kiln_tests::{data, device_test, gpu_device, tensor};

/// The tests here measure the shared device's pool: they run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

device_test!(graphs_are_freed_with_their_tensors, |dev| {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
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

#[test]
fn the_pool_reaches_a_steady_state() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(dev) = gpu_device() else { return };
    let g = dev.as_gpu().unwrap().clone();
    let w = Tensor::from_vec(data(64 * 64, 1), &[64, 64], &dev).unwrap().set_requires_grad(true);
    let x = Tensor::from_vec(data(16 * 64, 2), &[16, 64], &dev).unwrap();
    let step = || {
        let loss = x.matmul(&w).unwrap().relu().unwrap().mean_all().unwrap();
        loss.backward().unwrap();
        w.zero_grad();
    };
    for _ in 0..5 {
        step();
    }
    g.synchronize().unwrap();
    let created = g.pool_stats().created;
    for _ in 0..200 {
        step();
    }
    g.synchronize().unwrap();
    // Uploads (data, the loss seed) and outputs reuse pooled buffers: nothing new is created.
    let grown = g.pool_stats().created - created;
    assert_eq!(grown, 0, "the pool created {grown} new buffers in 200 identical steps");
    // New data each step (as a data loader uploads batches) reuses buffers too.
    let created = g.pool_stats().created;
    for i in 0..50 {
        let xb = Tensor::from_vec(data(16 * 64, 100 + i), &[16, 64], &dev).unwrap();
        let loss = xb.matmul(&w).unwrap().relu().unwrap().mean_all().unwrap();
        loss.backward().unwrap();
        w.zero_grad();
    }
    g.synchronize().unwrap();
    assert!(g.pool_stats().created - created <= 2, "{:?}", g.pool_stats());
}
