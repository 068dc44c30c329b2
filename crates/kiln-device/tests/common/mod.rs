//! Helpers shared by the device tests that need a device of their own.

#![allow(dead_code)]

use kiln_device::kernels::{self, BinaryOp};
use kiln_device::{GpuBuffer, GpuDevice, wgpu};

/// A device of its own (not the process-wide one other tests share), so that its dispatch
/// counter counts only this test's work.
pub fn private_device() -> Option<GpuDevice> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle().with_env());
    let adapter = pollster::block_on(instance.request_adapter(&Default::default()));
    let adapter = match adapter {
        Ok(a) => a,
        Err(e) if std::env::var("KILN_REQUIRE_GPU").as_deref() != Ok("1") => {
            eprintln!("skipping: {e}");
            return None;
        }
        Err(e) => panic!("KILN_REQUIRE_GPU=1 but {e}"),
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        // Subgroups and 64-bit integers where the adapter has them, as kiln's own device asks (the
        // software adapter's matmul kernels need them).
        required_features: adapter.features() & (wgpu::Features::SUBGROUP | wgpu::Features::SHADER_INT64),
        required_limits: adapter.limits(),
        ..Default::default()
    }))
    .unwrap();
    Some(GpuDevice::from_wgpu(device, queue))
}

pub fn upload(d: &GpuDevice, v: &[f32]) -> GpuBuffer {
    d.upload(bytemuck::cast_slice(v), "test").unwrap()
}

pub fn f32s(d: &GpuDevice, b: &GpuBuffer, n: usize) -> Vec<f32> {
    bytemuck::cast_slice(&d.read(b, n as u64 * 4).unwrap()).to_vec()
}

pub fn add(d: &GpuDevice, a: &GpuBuffer, b: &GpuBuffer, n: usize) -> GpuBuffer {
    kernels::binary(d, BinaryOp::Add, a, b, &[n], &[1], &[1]).unwrap()
}

pub fn close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((*g as f64 - w).abs() <= 1e-5 * w.abs().max(1.0), "{what}: element {i}: got {g}, want {w}");
    }
}

pub fn ramp(n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|i| ((i * 37 % 101) as f32 / 101.0 - 0.5) * scale).collect()
}
