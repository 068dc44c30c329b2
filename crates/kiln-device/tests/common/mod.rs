//! Helpers shared by the device tests that need a device of their own.

#![allow(dead_code)]

use kiln_device::kernels;
use kiln_device::op::BinaryOp;
use kiln_device::{AdapterChoice, DeviceOptions, DeviceResult, GpuBuffer, GpuDevice};

/// A device of its own with the default options (not the process-wide one other tests share,
/// and not what the environment chooses), so that its dispatch counter counts only this test's
/// work.
pub fn private_device() -> Option<GpuDevice> {
    private_device_with(DeviceOptions::default())
}

/// A device of its own with `options`; `None` (with a note) without an adapter, unless
/// `KILN_REQUIRE_GPU=1`.
pub fn private_device_with(options: DeviceOptions) -> Option<GpuDevice> {
    or_skip(GpuDevice::open_with(AdapterChoice::Best, options))
}

/// The process-wide device (`GpuDevice::open`), or `None` as for [`private_device_with`].
pub fn shared_device() -> Option<GpuDevice> {
    or_skip(GpuDevice::open(AdapterChoice::Best))
}

fn or_skip(found: DeviceResult<GpuDevice>) -> Option<GpuDevice> {
    match found {
        Ok(d) => Some(d),
        Err(e) if std::env::var("KILN_REQUIRE_GPU").as_deref() != Ok("1") => {
            eprintln!("skipping: {e}");
            None
        }
        Err(e) => panic!("KILN_REQUIRE_GPU=1 but {e}"),
    }
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
