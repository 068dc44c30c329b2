//! The elementwise, optimizer and subgroup matmul kernels with vec4 storage access
//! (`KILN_WIDE=0`): on a software adapter kiln reads and writes their vec4 arrays as `vec2<u64>`
//! (`shaders::widen`), so without this binary the vec4 forms would go untested here. One test in
//! its own process, so that the variable is set before any device exists.

use kiln::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use kiln::{Device, Parameter};
use kiln_tests::elementwise_cases::{binary_cases, unary_cases};
use kiln_tests::{assert_close, f64s, gpu_device, matmul_kernel_cases, tensor};

/// Five steps of Adam (amsgrad, weight decay) and of SGD (Nesterov momentum) on a 64x20
/// parameter (the vec4 kernels) minimising sum(p^2 * c): the parameters after each.
fn steps(dev: &Device) -> Vec<Vec<f32>> {
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

#[test]
fn vec4_kernels_match_f64_and_the_cpu() {
    // SAFETY: the only test in this binary, run before any other thread reads the environment.
    unsafe { std::env::set_var("KILN_WIDE", "0") };
    let Some(dev) = gpu_device() else { return };
    unary_cases(&dev);
    binary_cases(&dev);
    matmul_kernel_cases(&dev);
    for (g, c) in steps(&dev).iter().zip(steps(&Device::cpu())) {
        assert_close(g, &f64s(&c), 1e-5);
    }
}
