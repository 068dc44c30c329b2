//! Embedding kiln in an application that already has a wgpu device: the application opens its
//! own instance, adapter, device and queue; hands clones of them to kiln with
//! `Device::from_wgpu`; trains a small model there; and reads a trained parameter back through
//! its own queue and buffers, as a renderer would use it.
//!
//! ```text
//! cargo run --release --example embed_wgpu
//! ```

use kiln::RawStorage;
use kiln::kiln_device::wgpu;
use kiln::nn::functional::mse_loss;
use kiln::nn::{Forward, Linear};
use kiln::optim::{Adam, AdamConfig, Optimizer};
use kiln::prelude::*;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> std::result::Result<(), Box<dyn std::error::Error>> {
    // The application's own GPU setup.
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle().with_env());
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
            .or_else(|_| {
                pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
                    force_fallback_adapter: true,
                    ..Default::default()
                }))
            })
            .map_err(|e| format!("no adapter: {e} ({})", kiln::kiln_device::INSTALL_HINT))?;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default()))?;
    println!("application device: {}", adapter.get_info().name);

    // kiln trains on it: fit y = 3 x0 - 2 x1 + 0.5.
    let dev = Device::from_wgpu(device.clone(), queue.clone());
    kiln::manual_seed(0);
    let model = Linear::new(2, 1, &dev)?;
    let mut opt = Adam::new(model.named_parameters(), AdamConfig { lr: 0.05, ..Default::default() })?;
    let x = Tensor::randn(&[256, 2], &dev)?;
    let w_true = Tensor::from_vec(vec![3.0, -2.0], &[2, 1], &dev)?;
    let y = x.matmul(&w_true)?.add_scalar(0.5)?;
    for step in 1..=300 {
        opt.zero_grad();
        let loss = mse_loss(&model.forward(&x)?, &y)?;
        loss.backward()?;
        opt.step()?;
        if step % 100 == 0 {
            println!("step {step:3}  loss {:.6}", loss.item()?);
        }
    }
    dev.synchronize()?; // kiln's queued work is submitted and done

    // The application reads the trained weight with its own encoder, queue and buffer.
    let weight = model.weight.tensor();
    let RawStorage::Gpu(buf) = weight.raw_storage() else { return Err("the weight is not on the GPU".into()) };
    let bytes = (weight.numel() * 4) as u64;
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("app read-back"),
        size: bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = device.create_command_encoder(&Default::default());
    enc.copy_buffer_to_buffer(buf.raw(), 0, &staging, 0, bytes);
    queue.submit([enc.finish()]);
    staging.map_async(wgpu::MapMode::Read, .., |r| r.expect("map"));
    device.poll(wgpu::PollType::wait_indefinitely())?;
    let app_view: Vec<f32> = bytemuck_cast(&staging.get_mapped_range(..)?);
    println!("weight read by the application: {app_view:?}");
    println!("weight read by kiln:            {:?}", weight.to_vec()?);
    println!("bias: {:?}", model.bias.as_ref().map(|b| b.tensor().to_vec()).transpose()?);
    if (app_view[0] - 3.0).abs() > 0.05 || (app_view[1] + 2.0).abs() > 0.05 {
        return Err(format!("the fit did not converge: {app_view:?}").into());
    }
    Ok(())
}

fn bytemuck_cast(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}
