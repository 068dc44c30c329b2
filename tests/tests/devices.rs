//! Device selection and GPU execution details: an application's own wgpu device, the error (with
//! the install hint) when no adapter matches, `KILN_DEVICE`, 2-D launch grids past 65,535
//! workgroups. Tests that need a changed
//! environment run this test binary again as a child process.

use std::process::Command;

use kiln::kiln_device::wgpu;
use kiln::{Device, Error, Tensor};
use kiln_tests::{data, gpu_device};

/// Runs the ignored `child` test of this binary with extra environment; returns its output.
fn run_child(mode: &str, env: &[(&str, &str)]) -> String {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args(["--ignored", "--exact", "child", "--nocapture"]).env("KILN_TEST_CHILD", mode);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "child {mode} failed:\n{text}");
    text
}

#[test]
#[ignore = "run as a child process by the tests below"]
fn child() {
    match std::env::var("KILN_TEST_CHILD").as_deref() {
        Ok("no-adapter") => {
            let e = Device::gpu().unwrap_err();
            assert!(matches!(e, Error::Device(_)));
            println!("GPU-ERROR: {e}");
            // best() falls back to the CPU.
            assert_eq!(Device::best(), Device::cpu());
        }
        Ok("best-cpu") => assert_eq!(Device::best(), Device::cpu()),
        Ok("best-software") => {
            let d = Device::best();
            println!("BEST: {}", d.name());
            assert!(d.is_gpu() && d.name().ends_with(", software]"));
        }
        Ok("best-default") => {
            // A hardware GPU if there is one, else the CPU: never a software adapter unasked.
            let d = Device::best();
            println!("BEST: {}", d.name());
            assert!(!d.name().ends_with(", software]"), "{}", d.name());
            assert_eq!(Device::best(), d, "the same device again");
        }
        other => panic!("unknown child mode {other:?}"),
    }
}

#[test]
fn no_adapter_is_an_error_with_the_install_hint() {
    let out = run_child("no-adapter", &[("WGPU_ADAPTER_NAME", "no-such-adapter-anywhere"), ("KILN_DEVICE", "")]);
    assert!(out.contains("GPU-ERROR: no wgpu adapter found"), "{out}");
    assert!(out.contains("mesa-vulkan-drivers"), "{out}");
    assert!(out.contains("falling back to the CPU device"), "{out}");
}

#[test]
fn kiln_device_variable_chooses_the_device() {
    run_child("best-cpu", &[("KILN_DEVICE", "cpu")]);
    if gpu_device().is_some() {
        let out = run_child("best-software", &[("KILN_DEVICE", "software")]);
        assert!(out.contains("BEST: "), "{out}");
    }
}

/// Unset (or unknown), `KILN_DEVICE` leaves the choice to `best()`: a hardware adapter, else the
/// CPU device, never a software adapter; the choice and its reason are said once.
#[test]
fn best_prefers_the_cpu_device_to_a_software_adapter() {
    for value in ["", "tpu"] {
        let out = run_child("best-default", &[("KILN_DEVICE", value)]);
        assert_eq!(out.matches("kiln: Device::best() chose").count(), 1, "{out}");
        let software_only = kiln::kiln_device::adapter_reports().iter().all(|r| r.summary.device_type == "software");
        if software_only {
            assert!(out.contains("chose cpu: ") && out.contains("no hardware GPU adapter found"), "{out}");
            assert!(out.contains("KILN_DEVICE=software"), "{out}");
        }
        if value == "tpu" {
            assert!(out.contains("KILN_DEVICE=\"tpu\" is not cpu, gpu or software"), "{out}");
        }
    }
}

#[test]
fn an_application_wgpu_device_trains_too() {
    let Some(kiln_gpu) = gpu_device() else { return };
    // The application opens its own instance, adapter and device.
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter =
        pollster_block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
            .or_else(|_| {
                pollster_block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
                    force_fallback_adapter: true,
                    ..Default::default()
                }))
            })
            .expect("an adapter");
    let (device, queue) = pollster_block_on(adapter.request_device(&wgpu::DeviceDescriptor::default())).unwrap();
    let dev = Device::from_wgpu(device, queue);
    assert!(dev.is_gpu());
    assert_ne!(dev, kiln_gpu);
    let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2], &dev).unwrap().set_requires_grad(true);
    let y = x.matmul(&x).unwrap().sum_all().unwrap();
    y.backward().unwrap();
    assert_eq!(y.item().unwrap(), 54.0);
    assert_eq!(x.grad().unwrap().to_vec().unwrap(), vec![7.0, 11.0, 9.0, 13.0]);
    // Its tensors are not the kiln device's tensors.
    let other = Tensor::ones(&[2, 2], &kiln_gpu).unwrap();
    assert!(matches!(x.add(&other), Err(Error::DeviceMismatch { .. })));
}

/// A tiny executor for the one future above (kiln itself uses pollster internally).
fn pollster_block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Thread(std::thread::Thread);
    impl Wake for Thread {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Thread(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        match f.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park(),
        }
    }
}

#[test]
fn launches_past_65535_workgroups_use_a_2d_grid() {
    let Some(dev) = gpu_device() else { return };
    // 65,535 workgroups of 256 invocations cover 16,776,960 elements; go past that.
    let n = 65_535 * 256 + 1000;
    let xs = data(n, 3);
    let x = Tensor::from_vec(xs.clone(), &[n], &dev).unwrap();
    let y = x.mul_scalar(2.0).unwrap().add(&x).unwrap().to_vec().unwrap();
    for i in [0, 1, 65_535 * 256 - 1, 65_535 * 256, n - 1] {
        assert_eq!(y[i], xs[i] * 2.0 + xs[i], "element {i}");
    }
    // Every element, cheaply: the sum.
    let want: f64 = xs.iter().map(|&v| 3.0 * v as f64).sum();
    let got: f64 = y.iter().map(|&v| v as f64).sum();
    assert!((got - want).abs() < 1e-2, "{got} vs {want}");
}

/// `WGPU_BACKEND` naming one backend (CI's second pass sets `gl`) puts the GPU tests on it: the
/// device says so in its name, "<adapter> [<Backend>, <type>]".
#[test]
fn wgpu_backend_decides_the_backend() {
    let Ok(want) = std::env::var("WGPU_BACKEND") else { return };
    let backend = match want.to_lowercase().as_str() {
        "gl" => "Gl",
        "vulkan" => "Vulkan",
        "metal" => "Metal",
        "dx12" => "Dx12",
        _ => return, // a list or an alias: any of several
    };
    let Some(dev) = gpu_device() else { return };
    assert!(dev.name().contains(&format!("[{backend}, ")), "WGPU_BACKEND={want} but {}", dev.name());
}
