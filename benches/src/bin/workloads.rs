//! The workload binary: `workloads <matmul|mlp_step|small_ops|digits|cnn_step|gpt_step|lstm_step|attention|all> [--device gpu|cpu|software]
//! [--sizes 256,512,1024] [--batch 256] [--steps 30]`.
//! Prints one `workload=... impl=kiln-... key=value` line per measurement.

use kiln::Device;

fn main() {
    let mut which = "all".to_string();
    let mut device = "gpu".to_string();
    let mut sizes = vec![256usize, 512, 1024];
    let mut batch = 256usize;
    let mut steps = 30usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--device" => device = args.next().unwrap_or_default(),
            "--sizes" => {
                sizes = args.next().unwrap_or_default().split(',').filter_map(|s| s.trim().parse().ok()).collect()
            }
            "--batch" => batch = args.next().and_then(|v| v.parse().ok()).unwrap_or(batch),
            "--steps" => steps = args.next().and_then(|v| v.parse().ok()).unwrap_or(steps),
            w => which = w.to_string(),
        }
    }
    let dev = match device.as_str() {
        "cpu" => Ok(Device::cpu()),
        "software" => Device::software(),
        "gpu" => Device::gpu(),
        other => {
            eprintln!("unknown device {other:?}: use gpu, cpu or software");
            std::process::exit(2);
        }
    };
    let dev = dev.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(1);
    });
    eprintln!("device: {}", dev.name());
    let run = |name: &str| -> kiln::Result<Vec<String>> {
        match name {
            "matmul" => kiln_benches::matmul(&dev, &sizes),
            "small_ops" => kiln_benches::small_ops(&dev),
            "mlp_step" => kiln_benches::mlp_step(&dev, batch, steps),
            "cnn_step" => kiln_benches::cnn_step(&dev, steps.min(10)),
            "gpt_step" => kiln_benches::gpt_step(&dev, steps.min(10)),
            "lstm_step" => kiln_benches::lstm_step(&dev, steps.min(10)),
            "cnn_parts" => kiln_benches::cnn_parts(&dev),
            "digits" => kiln_benches::digits(&dev),
            "mlp_shapes" => kiln_benches::mlp_shapes(&dev),
            "memory" => kiln_benches::memory(&dev, batch, steps),
            "cnn_memory" => kiln_benches::cnn_memory(&dev, steps),
            "attention" => kiln_benches::attention(&dev),
            _ => unreachable!(),
        }
    };
    let names: Vec<&str> = match which.as_str() {
        "all" => vec!["matmul", "mlp_step", "small_ops", "digits", "cnn_step", "gpt_step", "lstm_step"],
        "gpt_step" | "gpt" => vec!["gpt_step"],
        "cnn_step" | "cnn" => vec!["cnn_step"],
        "lstm_step" | "lstm" => vec!["lstm_step"],
        "cnn_parts" => vec!["cnn_parts"],
        "matmul" => vec!["matmul"],
        "mlp_step" | "mlp" => vec!["mlp_step"],
        "small_ops" | "ops" => vec!["small_ops"],
        "digits" => vec!["digits"],
        "mlp_shapes" => vec!["mlp_shapes"],
        "memory" => vec!["memory"],
        "cnn_memory" => vec!["cnn_memory"],
        "attention" => vec!["attention"],
        other => {
            eprintln!(
                "unknown workload {other:?}: use matmul, mlp_step, small_ops, digits, cnn_step, gpt_step, lstm_step, attention or all"
            );
            std::process::exit(2);
        }
    };
    for n in names {
        match run(n) {
            Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
            Err(e) => {
                eprintln!("error in {n}: {e}");
                std::process::exit(1);
            }
        }
    }
}
