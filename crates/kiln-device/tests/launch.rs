//! Launcher smoke tests on a real adapter (skipped without one unless KILN_REQUIRE_GPU=1).

mod common;

use common::{f32s, private_device_with, shared_device as dev};
use kiln_device::kernels::{self, MatmulDesc, ReduceOp};
use kiln_device::op::{BinaryOp, UnaryOp};
use kiln_device::{AdapterChoice, DeviceOptions, GpuDevice};

#[test]
fn same_adapter_same_device() {
    let Some(a) = dev() else { return };
    let b = GpuDevice::open(AdapterChoice::Best).unwrap();
    assert_eq!(a, b);
}

#[test]
fn unary_binary_matmul_reduce_roundtrip() {
    let Some(d) = dev() else { return };
    let x: Vec<f32> = (0..1000).map(|i| i as f32 * 0.01 - 3.0).collect();
    let bx = d.upload(bytemuck::cast_slice(&x), "t").unwrap();
    let y = kernels::unary(&d, UnaryOp::Exp, 0.0, &bx, x.len()).unwrap();
    let got = f32s(&d, &y, x.len());
    for (g, v) in got.iter().zip(&x) {
        assert!((g - v.exp()).abs() <= 1e-5 * v.exp().max(1.0), "{g} vs {}", v.exp());
    }
    // broadcast add of a [1000] row onto itself as [1, 1000] + [1000, 1] would be big; use [2, 500] + [500]
    let z = kernels::binary(&d, BinaryOp::Sub, &bx, &bx, &[2, 500], &[500, 1], &[0, 1]).unwrap();
    let got = f32s(&d, &z, 1000);
    for i in 0..1000 {
        assert_eq!(got[i], x[i] - x[i % 500]);
    }
    // 3x5 @ 5x2
    let a: Vec<f32> = (0..15).map(|i| i as f32).collect();
    let b: Vec<f32> = (0..10).map(|i| (i as f32) * 0.5).collect();
    let ba = d.upload(bytemuck::cast_slice(&a), "t").unwrap();
    let bb = d.upload(bytemuck::cast_slice(&b), "t").unwrap();
    let desc = MatmulDesc { m: 3, n: 2, k: 5, batch: 1, a_rs: 5, a_cs: 1, a_bs: 0, b_rs: 2, b_cs: 1, b_bs: 0 };
    let c = f32s(&d, &kernels::matmul(&d, &ba, &bb, &desc).unwrap(), 6);
    for i in 0..3 {
        for j in 0..2 {
            let want: f32 = (0..5).map(|k| a[i * 5 + k] * b[k * 2 + j]).sum();
            assert_eq!(c[i * 2 + j], want);
        }
    }
    let (s, _) = kernels::reduce(&d, ReduceOp::Sum, &bx, 1, 1000, 1).unwrap();
    let want: f64 = x.iter().map(|v| *v as f64).sum();
    assert!((f32s(&d, &s, 1)[0] as f64 - want).abs() < 1e-3);
    let (m, i) = kernels::reduce(&d, ReduceOp::Max, &bx, 2, 500, 1).unwrap();
    assert_eq!(f32s(&d, &m, 2), vec![x[499], x[999]]);
    let idx: Vec<u32> = bytemuck::cast_slice(&d.read(&i.unwrap(), 8).unwrap()).to_vec();
    assert_eq!(idx, vec![499, 499]);
}

/// The adapter an application would take: the default one, else the fallback (software) one.
fn app_adapter() -> kiln_device::wgpu::Adapter {
    use kiln_device::wgpu;
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
        .or_else(|_| {
            pollster::block_on(
                instance.request_adapter(&wgpu::RequestAdapterOptions {
                    force_fallback_adapter: true,
                    ..Default::default()
                }),
            )
        })
        .unwrap()
}

/// A wgpu device of the test's own (so that no other test's submit sees its errors).
fn own_device() -> GpuDevice {
    use kiln_device::wgpu;
    let adapter = app_adapter();
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default())).unwrap();
    GpuDevice::from_wgpu(device, queue)
}

/// A device opened on the same adapter with and without the features the software adapter's
/// kernels need (SUBGROUP, SHADER_INT64): without them it takes the plain kernels, and both give
/// the products and elementwise results of the host, on shapes the subgroup kernels would take.
#[test]
fn a_device_without_subgroups_or_int64_takes_the_plain_kernels() {
    use kiln_device::wgpu;
    if dev().is_none() {
        return;
    }
    let adapter = app_adapter();
    let wanted = wgpu::Features::SUBGROUP | wgpu::Features::SHADER_INT64;
    let open = |features| {
        let desc = wgpu::DeviceDescriptor { required_features: features, ..Default::default() };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc)).unwrap();
        GpuDevice::from_wgpu(device, queue)
    };
    let full = open(adapter.features() & wanted);
    let bare = open(wgpu::Features::empty());
    assert!(!bare.row_matmul() && !bare.wide_arrays());
    let software = adapter.get_info().device_type == wgpu::DeviceType::Cpu;
    if software && adapter.features().contains(wanted) {
        assert!(full.row_matmul() && full.wide_arrays(), "lavapipe runs the subgroup and wide kernels");
    }
    let (m, n, k) = (70, 100, 37);
    let a: Vec<f32> = (0..m * k).map(|i| ((i * 37) % 101) as f32 * 0.02 - 1.0).collect();
    let b: Vec<f32> = (0..k * n).map(|i| ((i * 53) % 97) as f32 * 0.02 - 1.0).collect();
    let want: Vec<f64> =
        (0..m * n).map(|ij| (0..k).map(|p| a[ij / n * k + p] as f64 * b[p * n + ij % n] as f64).sum()).collect();
    for d in [&full, &bare] {
        let ba = d.upload(bytemuck::cast_slice(&a), "a").unwrap();
        let bb = d.upload(bytemuck::cast_slice(&b), "b").unwrap();
        let c = kernels::matmul(d, &ba, &bb, &MatmulDesc::plain(m, n, k, false, false)).unwrap();
        common::close(&f32s(d, &c, m * n), &want, "matmul");
        let y = kernels::unary(d, UnaryOp::Neg, 0.0, &ba, m * k).unwrap();
        assert_eq!(f32s(d, &y, m * k), a.iter().map(|v| -v).collect::<Vec<_>>());
    }
}

#[test]
fn wgpu_validation_errors_become_errors() {
    let Some(shared) = dev() else { return };
    // A device of its own (so that no other test's submit sees this test's error).
    use kiln_device::wgpu;
    let d = own_device();
    assert_ne!(d, shared);
    // An invalid buffer (MAP_READ with STORAGE) is a validation error outside any error scope:
    // the uncaptured-error handler keeps it and the next synchronize returns it.
    let _bad = d.wgpu_device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("invalid on purpose"),
        size: 16,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let e = d.synchronize().unwrap_err();
    assert!(matches!(e, kiln_device::DeviceError::Wgpu(_)), "{e}");
    // The error is reported once; the device keeps working.
    d.synchronize().unwrap();
    let x = d.upload(bytemuck::cast_slice(&[1.0f32, 2.0]), "t").unwrap();
    let y = kernels::unary(&d, UnaryOp::Neg, 0.0, &x, 2).unwrap();
    assert_eq!(f32s(&d, &y, 2), vec![-1.0, -2.0]);
}

#[test]
fn a_lost_device_gives_errors_not_aborts() {
    if dev().is_none() {
        return;
    }
    let d = own_device();
    let x = d.upload(bytemuck::cast_slice(&[1.0f32, 2.0]), "t").unwrap();
    d.synchronize().unwrap();
    d.wgpu_device().destroy(); // the device is lost
    let r = kernels::unary(&d, UnaryOp::Exp, 0.0, &x, 2).and_then(|y| d.read(&y, 8));
    assert!(r.is_err(), "work on a lost device must fail");
    assert!(d.synchronize().is_err() || d.read(&x, 8).is_err());
}

/// `dump_wgsl` writes every generated kernel the device compiles (a matmul, a fused chain) into
/// the folder, one entry point each.
#[test]
fn generated_kernels_are_dumped_for_reading() {
    let dir = std::env::temp_dir().join(format!("kiln-dump-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let Some(d) = private_device_with(DeviceOptions { dump_wgsl: Some(dir.clone()), ..Default::default() }) else {
        return;
    };
    let x = d.upload(bytemuck::cast_slice(&vec![0.5f32; 64 * 64]), "t").unwrap();
    let desc = MatmulDesc::plain(64, 64, 64, false, false);
    let y = kernels::matmul(&d, &x, &x, &desc).unwrap();
    let z = kernels::unary(&d, UnaryOp::Exp, 0.0, &y, 64 * 64).unwrap();
    let w = kernels::binary(&d, BinaryOp::Mul, &z, &x, &[64 * 64], &[1], &[1]).unwrap();
    let (got, want) = (f32s(&d, &w, 1)[0], (16.0f32).exp() * 0.5);
    assert!((got - want).abs() <= 1e-5 * want, "{got} vs {want}");
    let files: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap()).collect();
    // The matmul (generated on every adapter: subgroup kernels or vec4 tiles) and the fused chain.
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files.iter().all(|f| f.matches("@compute").count() == 1));
    assert!(files.iter().any(|f| f.contains("fn fused(")));
    let _ = std::fs::remove_dir_all(&dir);
}
