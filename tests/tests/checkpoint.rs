//! Checkpoints: N steps + save + a fresh, differently seeded process state + load + N steps
//! equals 2N steps straight (model, optimizer, scheduler, data order and the RNG behind
//! dropout all resume); a checkpoint of another architecture or a missing file is an error
//! and changes nothing.

use std::sync::Mutex;

use kiln::data::{DataLoader, TensorDataset};
use kiln::nn::functional::cross_entropy;
use kiln::nn::{Dropout, Forward, Linear};
use kiln::optim::lr_scheduler::{LrScheduler, StepLR};
use kiln::optim::{Adam, AdamConfig, Optimizer};
use kiln::prelude::*;
use kiln::train::Checkpoint;
use kiln_tests::{assert_close, data, device_test, f64s};

/// kiln's RNG is process-global: these tests run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[derive(Module)]
struct Net {
    fc1: Linear,
    drop: Dropout,
    fc2: Linear,
}

impl Net {
    fn new(dev: &Device) -> Result<Net> {
        Ok(Net { fc1: Linear::new(6, 16, dev)?, drop: Dropout::new(0.3)?, fc2: Linear::new(16, 4, dev)? })
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.drop.forward(&self.fc1.forward(x)?.relu()?)?)
    }
}

fn dataset() -> TensorDataset {
    let n = 50;
    let labels: Vec<u32> = (0..n).map(|i| (i % 4) as u32).collect();
    TensorDataset::from_rows(data(n * 6, 77), 6, labels).unwrap()
}

fn epoch(
    net: &Net,
    opt: &mut dyn Optimizer,
    sched: &mut dyn LrScheduler,
    loader: &DataLoader<TensorDataset>,
) -> Result<u64> {
    let mut steps = 0;
    for (x, y) in loader.iter() {
        opt.zero_grad();
        cross_entropy(&net.forward(&x)?, &y)?.backward()?;
        opt.step()?;
        steps += 1;
    }
    sched.step(opt);
    Ok(steps)
}

device_test!(resume_equals_straight_training, |dev| {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ds = dataset();
    let cfg = AdamConfig { lr: 0.01, ..Default::default() };
    // Straight: two epochs.
    kiln::manual_seed(5);
    let a = Net::new(dev)?;
    let mut oa = Adam::new(a.named_parameters(), cfg)?;
    let mut sa = StepLR::new(&oa, 1, 0.5)?;
    let la = DataLoader::new(&ds, 8).shuffle(11).device(dev);
    epoch(&a, &mut oa, &mut sa, &la)?;
    epoch(&a, &mut oa, &mut sa, &la)?;

    // One epoch, checkpoint, then a "fresh process": new objects, another seed.
    kiln::manual_seed(5);
    let b = Net::new(dev)?;
    let mut ob = Adam::new(b.named_parameters(), cfg)?;
    let mut sb = StepLR::new(&ob, 1, 0.5)?;
    let lb = DataLoader::new(&ds, 8).shuffle(11).device(dev);
    let steps = epoch(&b, &mut ob, &mut sb, &lb)?;
    let dir = std::env::temp_dir().join(format!("kiln-ckpt-{}-{}", std::process::id(), dev.is_gpu()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("run.safetensors");
    Checkpoint::capture(&b, Some(&ob), Some(&sb), 1, steps)?.save(&path)?;
    drop((b, ob, sb, lb));

    kiln::manual_seed(999);
    let c = Net::new(dev)?;
    let mut oc = Adam::new(c.named_parameters(), cfg)?;
    let mut sc = StepLR::new(&oc, 1, 0.5)?;
    let ck = Checkpoint::load(&path, dev)?;
    assert_eq!((ck.progress.epoch, ck.progress.step), (1, steps));
    ck.restore(&c, Some(&mut oc), Some(&mut sc))?;
    assert_eq!(oc.lr(), 0.005, "the scheduler's rate is restored");
    let lc = DataLoader::new(&ds, 8).shuffle(11).device(dev);
    lc.set_epoch(ck.progress.epoch);
    epoch(&c, &mut oc, &mut sc, &lc)?;

    for ((k, x), (_, y)) in a.state_dict().iter().zip(c.state_dict().iter()) {
        let _ = k;
        assert_close(&y.to_vec()?, &f64s(&x.to_vec()?), 1e-6);
    }
    std::fs::remove_dir_all(&dir).ok();
});

device_test!(bad_checkpoints_change_nothing, |dev| {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("kiln-ckpt-bad-{}-{}", std::process::id(), dev.is_gpu()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("other.safetensors");
    // A checkpoint of a different architecture.
    #[derive(Module)]
    struct Other {
        fc1: Linear,
    }
    let other = Other { fc1: Linear::new(6, 5, dev)? };
    let oo = Adam::new(other.named_parameters(), AdamConfig::default())?;
    Checkpoint::capture(&other, Some(&oo), None, 3, 7)?.save(&path)?;
    let net = Net::new(dev)?;
    let mut opt = Adam::new(net.named_parameters(), AdamConfig::default())?;
    let before: Vec<Vec<f32>> = net.state_dict().iter().map(|(_, t)| t.to_vec().unwrap()).collect();
    let ck = Checkpoint::load(&path, dev)?;
    assert!(ck.restore(&net, Some(&mut opt), None).is_err());
    let after: Vec<Vec<f32>> = net.state_dict().iter().map(|(_, t)| t.to_vec().unwrap()).collect();
    assert_eq!(before, after, "the model is unchanged");
    // The right model with another optimizer's state: the model is put back too.
    let twin = Net::new(dev)?;
    let sgd = kiln::optim::Sgd::new(twin.named_parameters(), Default::default())?;
    Checkpoint::capture(&twin, Some(&sgd), None, 1, 1)?.save(&path)?;
    let ck = Checkpoint::load(&path, dev)?;
    assert!(ck.restore(&net, Some(&mut opt), None).is_err());
    let after: Vec<Vec<f32>> = net.state_dict().iter().map(|(_, t)| t.to_vec().unwrap()).collect();
    assert_eq!(before, after, "the model is put back when the optimizer part fails");
    // Missing file, and a plain state_dict file that is not a checkpoint.
    let e = Checkpoint::load(dir.join("absent.safetensors"), dev).unwrap_err();
    assert!(e.to_string().contains("absent.safetensors"), "{e}");
    let plain = dir.join("plain.safetensors");
    kiln::io::save_safetensors(&plain, &net.state_dict())?;
    assert!(Checkpoint::load(&plain, dev).unwrap_err().to_string().contains("not a kiln checkpoint"));
    std::fs::remove_dir_all(&dir).ok();
});

device_test!(nan_guard_stops_and_names_the_culprit, |dev| {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let net = Net::new(dev)?;
    let guard = kiln::train::NanGuard;
    let x = Tensor::from_vec(data(12, 1), &[2, 6], dev)?;
    let y = Tensor::from_labels(&[0, 3], dev)?;
    let loss = cross_entropy(&net.forward(&x)?, &y)?;
    assert!(guard.check(1, &loss, &net)?.is_finite());
    // A weight goes NaN: the next loss is NaN and the guard names the parameter.
    net.fc2.weight.set(net.fc2.weight.tensor().mul_scalar(f32::NAN)?)?;
    let loss = cross_entropy(&net.forward(&x)?, &y)?;
    let e = guard.check(7, &loss, &net).unwrap_err();
    assert!(matches!(&e, kiln::Error::NonFinite { step: 7, first, .. } if first == "parameter fc2.weight"), "{e}");
});
