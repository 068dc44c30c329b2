//! Pruning: l1_unstructured / global / threshold masks, PyTorch's names while pruned (the
//! fixture's pruned state_dict loads and matches), zeros kept through 100 optimizer steps,
//! remove, sparsity.

use std::path::PathBuf;

use kiln::io::{load_safetensors, save_safetensors};
use kiln::nn::functional::mse_loss;
use kiln::nn::prune::{self, Amount};
use kiln::nn::{Forward, Linear, ReLU, Sequential};
use kiln::optim::{AdamConfig, AdamW, Optimizer};
use kiln::prelude::*;
use kiln_tests::{assert_close, data, device_test, f64s, fixture, json_list};

fn seq(dev: &Device) -> Sequential {
    Sequential::new().push(Linear::new(5, 7, dev).unwrap()).push(ReLU).push(Linear::new(7, 3, dev).unwrap())
}

device_test!(l1_unstructured_uses_pytorch_names_and_loads_its_files, |dev| {
    let m = seq(dev);
    let w = m.parameters()[0].tensor().to_vec()?;
    prune::l1_unstructured(&m, "0.weight", Amount::Fraction(0.4))?;
    // round(0.4 * 35) = 14 smallest magnitudes are zero, the rest unchanged.
    // (While pruned, the weight is listed as 0.weight_orig after 0.bias, as in PyTorch.)
    let pruned = prune::find(&m, "0.weight")?.tensor().to_vec()?;
    let mut order: Vec<usize> = (0..35).collect();
    order.sort_by(|&a, &b| w[a].abs().total_cmp(&w[b].abs()));
    for (rank, &i) in order.iter().enumerate() {
        assert_eq!(pruned[i], if rank < 14 { 0.0 } else { w[i] }, "element {i}");
    }
    // PyTorch's names and order while pruned.
    let io = load_safetensors(fixture("pruned_io.safetensors"), dev)?;
    let names: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, json_list(&io.metadata()["named_parameters"]));
    assert_eq!(m.state_dict().keys(), json_list(&io.metadata()["state_dict_keys"]));
    // PyTorch's pruned state_dict loads (weight = weight_orig * weight_mask) and matches.
    m.load_state_dict(&load_safetensors(fixture("pruned.safetensors"), dev)?, true)?;
    let y = no_grad(|| m.forward(io.get("input").unwrap()))?;
    assert_close(&y.to_vec()?, &f64s(&io.get("output").unwrap().to_vec()?), 1e-5);
    let mask = m.named_buffers()[0].1.tensor().to_vec()?;
    assert_eq!(mask.iter().filter(|&&v| v == 0.0).count(), 14);
    // What kiln saves has the same keys, so it loads into the pruned PyTorch model.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/kiln-fixtures");
    std::fs::create_dir_all(&dir).unwrap();
    if !dev.is_gpu() {
        save_safetensors(dir.join("pruned.kiln.safetensors"), &m.state_dict())?;
    }
    // remove: permanent zeros, plain names.
    prune::remove(&m, "0.weight")?;
    assert_eq!(m.state_dict().keys(), ["0.weight", "0.bias", "2.weight", "2.bias"]);
    assert_eq!(prune::find(&m, "0.weight")?.tensor().to_vec()?.iter().filter(|&&v| v == 0.0).count(), 14);
    assert!(prune::remove(&m, "0.weight").is_err());
    assert!(prune::l1_unstructured(&m, "nope", Amount::Count(1)).is_err());
    assert!(prune::l1_unstructured(&m, "0.weight", Amount::Fraction(1.5)).is_err());
});

device_test!(pruned_weights_stay_zero_through_training, |dev| {
    let m = seq(dev);
    prune::l1_unstructured(&m, "0.weight", Amount::Fraction(0.5))?;
    prune::l1_unstructured(&m, "2.weight", Amount::Count(5))?;
    let names = ["0.weight", "2.weight"];
    let zeros_before: Vec<Vec<bool>> = names
        .iter()
        .map(|n| prune::find(&m, n).unwrap().tensor().to_vec().unwrap().iter().map(|v| *v == 0.0).collect())
        .collect();
    // AdamW with weight decay would move every weight; the masks keep the pruned ones at zero.
    let mut opt = AdamW::new(m.named_parameters(), AdamConfig { lr: 0.01, ..AdamConfig::adamw() })?;
    let x = Tensor::from_vec(data(40, 1), &[8, 5], dev)?;
    let y = Tensor::from_vec(data(24, 2), &[8, 3], dev)?;
    for _ in 0..100 {
        opt.zero_grad();
        mse_loss(&m.forward(&x)?, &y)?.backward()?;
        opt.step()?;
    }
    for (k, n) in names.iter().enumerate() {
        let v = prune::find(&m, n)?.tensor().to_vec()?;
        for (j, z) in zeros_before[k].iter().enumerate() {
            if *z {
                assert_eq!(v[j], 0.0, "parameter {n} element {j} came back");
            } else {
                assert_ne!(v[j], 0.0);
            }
        }
    }
    let s = prune::sparsity(&m)?;
    assert_eq!(s.zeros, 18 + 5);
    assert_eq!(s.total, 35 + 7 + 21 + 3);
    assert!(s.to_string().contains("global: 23/66"));
    // Pruning again prunes among what is left (PyTorch's container semantics).
    prune::l1_unstructured(&m, "2.weight", Amount::Fraction(0.5))?;
    let sp = prune::sparsity(&m)?;
    let w2 = sp.per_parameter.iter().find(|(n, _, _)| n == "2.weight_orig").unwrap();
    assert_eq!(w2.1, 5 + 8);
    // Masks move with the model.
    assert_eq!(m.named_buffers().len(), 2);
});

device_test!(global_and_threshold_pruning, |dev| {
    let a = Parameter::new(Tensor::from_vec(vec![0.1, -5.0, 0.3, 2.0], &[2, 2], dev)?);
    let b = Parameter::new(Tensor::from_vec(vec![-0.2, 0.05, 4.0], &[3], dev)?);
    prune::global_unstructured(&[a.clone(), b.clone()], Amount::Count(3))?;
    assert_eq!(a.tensor().to_vec()?, vec![0.0, -5.0, 0.3, 2.0]);
    assert_eq!(b.tensor().to_vec()?, vec![0.0, 0.0, 4.0]);
    let l = Linear::new(4, 4, dev)?;
    l.weight.set(Tensor::from_vec((0..16).map(|i| i as f32 / 10.0 - 0.8).collect(), &[4, 4], dev)?)?;
    prune::threshold(&l, "weight", 0.25)?;
    let v = l.weight.tensor().to_vec()?;
    assert_eq!(v.iter().filter(|&&x| x == 0.0).count(), 5, "{v:?}");
    assert_eq!(l.state_dict().keys(), ["bias", "weight_orig", "weight_mask"]);
});

// Optimizer state follows its Parameters through pruning's rename (`w` -> `w_orig`): a model
// pruned after its optimizer was built checkpoints and restores into a model pruned before its
// optimizer was built (and back), and both then train to the same parameters.
device_test!(pruning_after_the_optimizer_keeps_checkpoints_restorable, |dev| {
    use kiln::train::Checkpoint;
    let x = Tensor::from_vec(data(40, 11), &[8, 5], dev)?;
    let y = Tensor::from_vec(data(24, 12), &[8, 3], dev)?;
    let step = |m: &Sequential, opt: &mut AdamW| -> Result<()> {
        opt.zero_grad();
        mse_loss(&m.forward(&x)?, &y)?.backward()?;
        opt.step()
    };
    kiln::manual_seed(5);
    let a = seq(dev);
    let mut opt_a = AdamW::new(a.named_parameters(), AdamConfig { lr: 0.01, ..Default::default() })?;
    for _ in 0..3 {
        step(&a, &mut opt_a)?;
    }
    // Pruned after its optimizer was built: the optimizer still holds "0.weight".
    prune::l1_unstructured(&a, "0.weight", Amount::Fraction(0.3))?;
    step(&a, &mut opt_a)?;
    let ckpt = Checkpoint::capture(&a, Some(&opt_a), None, 0, 4)?;
    assert!(ckpt.optimizer.as_ref().unwrap().keys().iter().any(|k| k.starts_with("state.0.weight_orig.")));
    let path =
        std::env::temp_dir().join(format!("kiln-prune-ckpt-{}-{}.safetensors", std::process::id(), dev.is_gpu()));
    ckpt.save(&path)?;
    // A fresh model pruned before its optimizer was built ("0.weight_orig") restores it.
    let b = seq(dev);
    prune::l1_unstructured(&b, "0.weight", Amount::Fraction(0.3))?;
    let mut opt_b = AdamW::new(b.named_parameters(), AdamConfig { lr: 0.01, ..Default::default() })?;
    Checkpoint::load(&path, dev)?.restore(&b, Some(&mut opt_b), None)?;
    // And back: b's checkpoint restores into a model pruned after its optimizer was built.
    let c = seq(dev);
    let mut opt_c = AdamW::new(c.named_parameters(), AdamConfig { lr: 0.01, ..Default::default() })?;
    prune::l1_unstructured(&c, "0.weight", Amount::Fraction(0.3))?;
    Checkpoint::capture(&b, Some(&opt_b), None, 0, 4)?.restore(&c, Some(&mut opt_c), None)?;
    for _ in 0..5 {
        step(&a, &mut opt_a)?;
        step(&b, &mut opt_b)?;
        step(&c, &mut opt_c)?;
    }
    for ((pa, pb), pc) in a.parameters().iter().zip(b.parameters()).zip(c.parameters()) {
        let va = pa.tensor().to_vec()?;
        assert_eq!(va, pb.tensor().to_vec()?, "restored into a model pruned before its optimizer");
        assert_eq!(va, pc.tensor().to_vec()?, "restored into a model pruned after its optimizer");
    }
    let _ = std::fs::remove_file(&path);
});
