//! Crash safety: a child process trains and checkpoints in a loop; the parent kills it with
//! SIGKILL at pseudo-random moments, 25 times, and checks each time that the checkpoint on disk
//! loads, restores into the model, and is one of the completed ones. Nothing half-written is
//! ever read as valid.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use kiln::nn::functional::mse_loss;
use kiln::nn::{Forward, Linear, ReLU, Sequential};
use kiln::optim::{Adam, AdamConfig, Optimizer};
use kiln::prelude::*;
use kiln::train::Checkpoint;

fn model(dev: &Device) -> Sequential {
    Sequential::new().push(Linear::new(16, 64, dev).unwrap()).push(ReLU).push(Linear::new(64, 4, dev).unwrap())
}

/// The child: train, checkpoint, log the completed step; forever (until killed).
#[test]
#[ignore = "run as a child process by checkpoints_survive_sigkill"]
fn child_trainer() {
    let Ok(dir) = std::env::var("KILN_KILL_DIR") else { return };
    let dir = PathBuf::from(dir);
    let dev = Device::cpu();
    let m = model(&dev);
    let mut opt = Adam::new(m.named_parameters(), AdamConfig::default()).unwrap();
    let x = Tensor::rand(&[32, 16], &dev).unwrap();
    let y = Tensor::rand(&[32, 4], &dev).unwrap();
    let mut log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("completed.log")).unwrap();
    for step in 1u64.. {
        opt.zero_grad();
        mse_loss(&m.forward(&x).unwrap(), &y).unwrap().backward().unwrap();
        opt.step().unwrap();
        Checkpoint::capture(&m, Some(&opt), None, 0, step).unwrap().save(dir.join("ckpt.safetensors")).unwrap();
        writeln!(log, "{step}").unwrap();
        log.flush().unwrap();
    }
}

fn last_logged(dir: &Path) -> Option<u64> {
    std::fs::read_to_string(dir.join("completed.log")).ok()?.lines().filter_map(|l| l.trim().parse().ok()).next_back()
}

#[test]
fn checkpoints_survive_sigkill() {
    let dir = std::env::temp_dir().join(format!("kiln-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let exe = std::env::current_exe().unwrap();
    let dev = Device::cpu();
    let mut rng = 0x2545F4914F6CDD1Du64;
    let mut survived = 0;
    for round in 0..25 {
        let mut child = Command::new(&exe)
            .args(["--ignored", "--exact", "child_trainer", "--nocapture"])
            .env("KILN_KILL_DIR", &dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(150 + rng % 400));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let logged = last_logged(&dir);
        let path = dir.join("ckpt.safetensors");
        if !path.exists() {
            assert!(logged.is_none(), "round {round}: a step was logged but no checkpoint exists");
            continue;
        }
        let ck = Checkpoint::load(&path, &dev).unwrap_or_else(|e| panic!("round {round}: checkpoint unreadable: {e}"));
        let step = ck.progress.step;
        // The file is the last completed save: the one logged, or one saved just before the kill
        // landed between the rename and the log line.
        let l = logged.unwrap_or(0);
        assert!(step == l || step == l + 1, "round {round}: checkpoint step {step}, last logged {l}");
        let m = model(&dev);
        let mut opt = Adam::new(m.named_parameters(), AdamConfig::default()).unwrap();
        ck.restore(&m, Some(&mut opt), None).unwrap();
        assert!(m.state_dict().iter().all(|(_, t)| t.to_vec().unwrap().iter().all(|v| v.is_finite())));
        survived += 1;
        // The next child starts its own run from step 1: clear the state for a fresh sequence.
        std::fs::remove_file(&path).unwrap();
        std::fs::remove_file(dir.join("completed.log")).ok();
    }
    assert!(survived >= 20, "only {survived} rounds had a checkpoint to check");
    eprintln!("kills survived: {survived} of 25");
    std::fs::remove_dir_all(&dir).ok();
}
