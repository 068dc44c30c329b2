//! ParameterMonitor: statistics recorded every N steps, exported as CSV and JSON, drawn as SVG
//! and PNG charts and histograms.

use kiln::inspect::GradState;
use kiln::monitor::{ParameterMonitor, write_histograms};
use kiln::nn::functional::mse_loss;
use kiln::nn::{Forward, Linear};
use kiln::optim::{Optimizer, Sgd, SgdConfig};
use kiln::prelude::*;
use kiln_tests::{data, device_test};

device_test!(monitor_records_exports_and_draws, |dev| {
    let m = Linear::new(3, 2, dev)?;
    let mut opt = Sgd::new(m.named_parameters(), SgdConfig { lr: 0.1, ..Default::default() })?;
    let x = Tensor::from_vec(data(12, 1), &[4, 3], dev)?;
    let y = Tensor::from_vec(data(8, 2), &[4, 2], dev)?;
    let mut mon = ParameterMonitor::new(5);
    let mut recorded = 0;
    for step in 1..=20u64 {
        opt.zero_grad();
        mse_loss(&m.forward(&x)?, &y)?.backward()?;
        opt.step()?;
        if mon.step(step, &m)? {
            recorded += 1;
        }
    }
    assert_eq!(recorded, 4);
    let h = mon.history();
    assert_eq!(h.len(), 8, "two parameters at steps 5, 10, 15, 20");
    assert_eq!((h[0].step, h[0].name.as_str()), (5, "weight"));
    let w = m.weight.tensor().to_vec()?;
    let last = h.iter().rev().find(|r| r.name == "weight").unwrap();
    let mean = w.iter().map(|&v| v as f64).sum::<f64>() / 6.0;
    assert!((last.value.mean - mean).abs() < 1e-6);
    assert!(matches!(last.grad, GradState::Present(_)));
    let csv = mon.to_csv();
    assert_eq!(csv.lines().count(), 9);
    assert!(csv.starts_with("step,name,mean,std") && csv.contains("\n20,bias,"));
    let json: serde_json::Value = serde_json::from_str(&mon.to_json()?).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 8);
    let dir = std::env::temp_dir().join(format!("kiln-monitor-{}-{}", std::process::id(), dev.is_gpu()));
    let files = mon.write(&dir)?;
    let hist = write_histograms(&m, &dir, 10)?;
    for f in ["history.csv", "history.json", "weight.svg", "weight.png", "bias.svg", "bias.png"] {
        assert!(files.contains(&dir.join(f)), "{f} written");
    }
    assert!(hist.contains(&dir.join("weight.hist.svg")) && hist.contains(&dir.join("weight.hist.png")));
    let svg = std::fs::read_to_string(dir.join("weight.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("grad norm"));
    let png = std::fs::read(dir.join("weight.hist.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    std::fs::remove_dir_all(&dir).ok();
});
