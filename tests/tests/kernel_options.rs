//! The kernels that the default options of the software adapter never choose, each run on a GPU
//! device of its own opened with the options that choose them (`Device::gpu_with`), forward and
//! backward against float64 (and the CPU): the families' own elementwise kernels (fusion off),
//! the vec4 forms of the software adapter's wide kernels (`wide: false`), the tiled and scalar
//! matmuls real GPUs run (`MatmulPolicy::Tiles`), the 64-row subgroup kernels
//! (`MatmulPolicy::Rows8`), and matmul epilogues (`Fusion::WithEpilogues`).

use kiln::nn::functional::cross_entropy;
use kiln::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use kiln::{Device, DeviceOptions, Fusion, MatmulPolicy, Parameter, Tensor};
use kiln_tests::elementwise_cases::{binary_cases, unary_cases};
use kiln_tests::{assert_close, check_matmul, f64s, gpu_device_with, matmul_kernel_cases, tensor};

fn with(f: impl FnOnce(&mut DeviceOptions)) -> Option<Device> {
    let mut o = DeviceOptions::default();
    f(&mut o);
    gpu_device_with(o)
}

fn dispatches(dev: &Device) -> u64 {
    dev.as_gpu().map(|g| g.dispatches()).unwrap_or(0)
}

/// Fusion off: on the GPU device fusion sends nearly every elementwise op through generated
/// kernels, so the families' own kernels (`unary`, `binary`, `binary2d`, `binary2d4`, their vec4
/// forms) are reached only here.
#[test]
fn unfused_elementwise_kernels_match_f64() {
    let Some(dev) = with(|o| o.fusion = Fusion::Off) else { return };
    unary_cases(&dev);
    binary_cases(&dev);
    // Unfused, every op is its own dispatch (over a thousand of them).
    assert!(dispatches(&dev) > 1000, "{} dispatches", dispatches(&dev));
}

/// The tiled (vec4 and scalar) matmul kernels: on a software adapter the subgroup kernels take
/// every product they can.
#[test]
fn tiled_kernels_match_f64() {
    let Some(dev) = with(|o| o.matmul = MatmulPolicy::Tiles) else { return };
    matmul_kernel_cases(&dev);
    for (m, k, n) in [(65, 129, 33), (33, 64, 65), (7, 1000, 5)] {
        check_matmul(&dev, &[m, k], &[k, n], 1e-5);
    }
    check_matmul(&dev, &[3, 40, 32], &[3, 32, 36], 1e-5);
}

/// The subgroup kernels with eight rows per lane (the defaults take four).
#[test]
fn eight_row_kernels_match_f64() {
    let Some(dev) = with(|o| o.matmul = MatmulPolicy::Rows8) else { return };
    matmul_kernel_cases(&dev);
}

/// Five steps of Adam (amsgrad, weight decay) and of SGD (Nesterov momentum) on a 64x20
/// parameter (the vec4 kernels) minimising sum(p^2 * c): the parameters after each.
fn optimizer_steps(dev: &Device) -> Vec<Vec<f32>> {
    let c = tensor(&[64, 20], 7, dev, false);
    let mut out = Vec::new();
    for adam in [true, false] {
        let p = Parameter::new(tensor(&[64, 20], 8, dev, false));
        let ps = vec![("p".to_string(), p.clone())];
        let mut opt: Box<dyn Optimizer> = if adam {
            Box::new(
                Adam::new(ps, AdamConfig { lr: 0.01, weight_decay: 0.1, amsgrad: true, ..Default::default() }).unwrap(),
            )
        } else {
            Box::new(Sgd::new(ps, SgdConfig { lr: 0.05, momentum: 0.9, nesterov: true, ..Default::default() }).unwrap())
        };
        for _ in 0..5 {
            opt.zero_grad();
            let t = p.tensor();
            t.mul(&t).unwrap().mul(&c).unwrap().sum_all().unwrap().backward().unwrap();
            opt.step().unwrap();
        }
        out.push(p.tensor().to_vec().unwrap());
    }
    out
}

/// The elementwise, optimizer and subgroup matmul kernels with vec4 storage access: on a
/// software adapter kiln reads and writes their vec4 arrays as `vec2<u64>` (`wgsl::widen`).
#[test]
fn vec4_kernels_match_f64_and_the_cpu() {
    let Some(dev) = with(|o| o.wide = false) else { return };
    unary_cases(&dev);
    binary_cases(&dev);
    matmul_kernel_cases(&dev);
    for (g, c) in optimizer_steps(&dev).iter().zip(optimizer_steps(&Device::cpu())) {
        assert_close(g, &f64s(&c), 1e-5);
    }
}

/// Loss and gradients (w1, b1, w2, b2) of cross_entropy(linear(relu(linear(x))), labels).
fn mlp_step(dev: &Device) -> (f32, Vec<Vec<f32>>) {
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

/// A two-layer MLP trained one step with matmul epilogues on: the first layer's bias add and
/// ReLU run in its matmul, the ReLU mask of the backward pass in the matmul that produces the
/// hidden layer's gradient. Loss and every gradient match the same model on the CPU device.
#[test]
fn mlp_step_with_epilogues_matches_the_cpu() {
    let Some(dev) = with(|o| o.fusion = Fusion::WithEpilogues) else { return };
    let before = dispatches(&dev);
    let (loss, grads) = mlp_step(&dev);
    let fused = dispatches(&dev) - before;
    if let Some(g) = dev.as_gpu().filter(|g| g.row_matmul()) {
        // The same step with epilogues off takes more dispatches.
        assert!(g.matmul_epilogues());
        g.set_matmul_epilogues(false);
        let before = dispatches(&dev);
        let (plain_loss, _) = mlp_step(&dev);
        let plain = dispatches(&dev) - before;
        assert!(plain > fused, "{plain} dispatches without epilogues, {fused} with");
        assert_close(&[plain_loss], &[loss as f64], 1e-6);
    }
    let (cpu_loss, cpu_grads) = mlp_step(&Device::cpu());
    assert_close(&[loss], &[cpu_loss as f64], 1e-5);
    for (g, c) in grads.iter().zip(&cpu_grads) {
        assert_close(g, &f64s(c), 1e-4);
    }
}
