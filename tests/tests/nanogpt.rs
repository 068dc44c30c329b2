//! examples/gpt against nanoGPT (fixtures made by tests/fixtures/make_nanogpt_fixture.py): a
//! state_dict saved by nanoGPT's GPT loads strictly, with its tied head, and gives the same
//! logits and loss on both devices; kiln's saved file has nanoGPT's keys and loads back into it
//! (`--check`); training moves the one tied Parameter.

use std::path::PathBuf;

use kiln::io::{load_safetensors, save_safetensors};
use kiln::prelude::*;
use kiln_examples::gpt::{Gpt, GptConfig};
use kiln_tests::{assert_close, device_test, f64s, fixture, json_list};

fn config(tag: &str) -> GptConfig {
    let bias = tag == "bias";
    GptConfig {
        block_size: 16,
        vocab_size: 11,
        n_layer: 2,
        n_head: if bias { 4 } else { 2 },
        n_embd: 16,
        dropout: 0.0,
        bias,
    }
}

device_test!(nanogpt_state_dicts_load_and_match, |dev| {
    for tag in ["nobias", "bias"] {
        let m = Gpt::new(config(tag), dev)?;
        let sd = load_safetensors(fixture(&format!("nanogpt_{tag}.safetensors")), dev)?;
        let report = m.load_state_dict(&sd, true)?;
        assert!(report.missing_keys.is_empty() && report.unexpected_keys.is_empty(), "{report:?}");
        let io = load_safetensors(fixture(&format!("nanogpt_{tag}_io.safetensors")), dev)?;
        assert_eq!(m.state_dict().keys(), json_list(&io.metadata()["state_dict_keys"]), "{tag}: keys");
        // One Parameter under two names.
        assert_eq!(m.lm_head.weight.id(), m.transformer.wte.weight.id());
        m.eval();
        let (idx, tgt) = (io.get("idx").unwrap(), io.get("targets").unwrap());
        let logits = no_grad(|| m.logits(idx))?;
        assert_close(&logits.to_vec()?, &f64s(&io.get("logits").unwrap().to_vec()?), 1e-4);
        let loss = no_grad(|| m.loss(idx, tgt))?;
        assert_close(&loss.to_vec()?, &f64s(&io.get("loss").unwrap().to_vec()?), 1e-5);
    }
});

#[test]
fn kiln_saves_nanogpt_loadable_files() {
    let dev = Device::cpu();
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/kiln-fixtures");
    std::fs::create_dir_all(&out).unwrap();
    for tag in ["nobias", "bias"] {
        let m = Gpt::new(config(tag), &dev).unwrap();
        let torch = load_safetensors(fixture(&format!("nanogpt_{tag}.safetensors")), &dev).unwrap();
        m.load_state_dict(&torch, true).unwrap();
        let path = out.join(format!("nanogpt_{tag}.kiln.safetensors"));
        save_safetensors(&path, &m.state_dict()).unwrap();
        let back = load_safetensors(&path, &dev).unwrap();
        assert_eq!(back.keys(), torch.keys(), "{tag}");
        for (k, t) in torch.iter() {
            assert_eq!(back.get(k).unwrap().to_vec().unwrap(), t.to_vec().unwrap(), "{tag}: {k}");
        }
    }
}

device_test!(tied_head_trains_as_one_parameter, |dev| {
    use kiln::optim::{AdamConfig, AdamW, Optimizer};
    let m = Gpt::new(config("nobias"), dev)?;
    let names: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"transformer.wte.weight".to_string()) && !names.contains(&"lm_head.weight".to_string()));
    assert!(m.state_dict().keys().contains(&"lm_head.weight".to_string()));
    let mut opt = AdamW::new(m.named_parameters(), AdamConfig { lr: 1e-2, ..AdamConfig::adamw() })?;
    let idx = Tensor::from_labels(&[1, 2, 3, 4, 5, 6], dev)?.reshape(&[2, 3])?;
    let tgt = Tensor::from_labels(&[2, 3, 4, 5, 6, 7], dev)?.reshape(&[2, 3])?;
    let before = m.lm_head.weight.tensor().to_vec()?;
    let l0 = m.loss(&idx, &tgt)?.item()?;
    for _ in 0..20 {
        opt.zero_grad();
        m.loss(&idx, &tgt)?.backward()?;
        opt.step()?;
    }
    assert!(m.loss(&idx, &tgt)?.item()? < l0 * 0.8);
    let after = m.lm_head.weight.tensor().to_vec()?;
    assert_ne!(before, after);
    assert_eq!(after, m.transformer.wte.weight.tensor().to_vec()?);
    let e = m.logits(&Tensor::from_labels(&[0; 17], dev)?.reshape(&[1, 17])?).unwrap_err().to_string();
    assert!(e.contains("T <= 16") && e.contains("[1, 17]"), "{e}");
});
