//! A two-layer MLP trained one step with matmul epilogues on (`KILN_FUSE=all`): the first
//! layer's bias add and ReLU run in its matmul, the ReLU mask of the backward pass in the matmul
//! that produces the hidden layer's gradient. Loss and every gradient must match the same model
//! on the CPU device. One test in its own process, so that the variable is set before any
//! device exists.

use kiln::nn::functional::cross_entropy;
use kiln::{Device, Tensor};
use kiln_tests::{assert_close, f64s, gpu_device, tensor};

/// Loss and gradients (w1, b1, w2, b2) of cross_entropy(linear(relu(linear(x))), labels).
fn step(dev: &Device) -> (f32, Vec<Vec<f32>>) {
    // Past the subgroup kernels' 64-row and 64-column blocks; K = 10 in the backward product.
    let x = tensor(&[70, 36], 1, dev, false);
    let params = [
        tensor(&[132, 36], 2, dev, true),
        tensor(&[132], 3, dev, true),
        tensor(&[10, 132], 4, dev, true),
        tensor(&[10], 5, dev, true),
    ];
    let labels = Tensor::from_labels(&(0..70).map(|i| i * 7 % 10).collect::<Vec<_>>(), dev).unwrap();
    let h = Tensor::linear(&x, &params[0], Some(&params[1])).unwrap().relu().unwrap();
    let loss = cross_entropy(&Tensor::linear(&h, &params[2], Some(&params[3])).unwrap(), &labels).unwrap();
    loss.backward().unwrap();
    let grads = params.iter().map(|p| p.grad().unwrap().to_vec().unwrap()).collect();
    (loss.item().unwrap(), grads)
}

#[test]
fn mlp_step_with_epilogues_matches_the_cpu() {
    // SAFETY: the only test in this binary, run before any other thread reads the environment.
    unsafe { std::env::set_var("KILN_FUSE", "all") };
    let Some(dev) = gpu_device() else { return };
    let dispatches = || dev.as_gpu().map(|g| g.dispatches()).unwrap_or(0);
    let before = dispatches();
    let (loss, grads) = step(&dev);
    let fused = dispatches() - before;
    if let Some(g) = dev.as_gpu().filter(|g| g.row_matmul()) {
        // The same step with epilogues off takes more dispatches.
        assert!(g.matmul_epilogues());
        g.set_matmul_epilogues(false);
        let before = dispatches();
        let (plain_loss, _) = step(&dev);
        assert!(dispatches() - before > fused, "{} dispatches without epilogues, {fused} with", dispatches() - before);
        assert_close(&[plain_loss], &[loss as f64], 1e-6);
    }
    let (cpu_loss, cpu_grads) = step(&Device::cpu());
    assert_close(&[loss], &[cpu_loss as f64], 1e-5);
    for (g, c) in grads.iter().zip(&cpu_grads) {
        assert_close(g, &f64s(c), 1e-4);
    }
}
