//! Helpers shared by kiln's examples: the bundled digits data set and the `--device` argument,
//! the nanoGPT-compatible GPT of `examples/gpt/` (as `kiln_examples::gpt`), the text helpers of
//! the language-model examples (`text`), their command line and training loop (`lm_train`) and
//! the stateful `char_lstm` model of `train_lstm`.

use std::path::{Path, PathBuf};

use kiln::data::{Dataset, TensorDataset, permutation, read_csv};

pub mod char_lstm;
#[path = "../gpt/mod.rs"]
pub mod gpt;
pub mod lm_train;
pub mod text;

/// Where the bundled file lives in the repository.
pub fn default_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/digits.csv.gz")
}

/// The digits as (train, test) datasets: pixels scaled to [0, 1] (divided by 16), labels
/// 0..9, split 80/20 by a permutation seeded with `seed`.
pub fn digits(path: &Path, seed: u64) -> kiln::Result<(TensorDataset, TensorDataset)> {
    let mut csv = read_csv(path, false)?;
    if csv.cols != 65 {
        return Err(kiln::Error::Io {
            op: "digits",
            path: path.display().to_string(),
            msg: format!("expected 65 columns (64 pixels and a label), found {}", csv.cols),
        });
    }
    for r in 0..csv.rows {
        for v in &mut csv.values[r * 65..r * 65 + 64] {
            *v /= 16.0;
        }
    }
    let all = csv.into_dataset(64)?;
    let order = permutation(all.len(), seed ^ 0x5eed);
    let n_train = all.len() * 4 / 5;
    Ok((all.subset(&order[..n_train])?, all.subset(&order[n_train..])?))
}

/// The device a `--device cpu|gpu|software` argument names.
pub fn device_arg(name: &str) -> Result<kiln::Device, String> {
    match name {
        "cpu" => Ok(kiln::Device::cpu()),
        "gpu" => kiln::Device::gpu().map_err(|e| e.to_string()),
        "software" => kiln::Device::software().map_err(|e| e.to_string()),
        other => Err(format!("unknown device {other:?} (cpu, gpu or software)")),
    }
}

#[cfg(test)]
mod tests {
    use kiln::data::Dataset;

    #[test]
    fn bundled_digits_load_and_split() {
        let (train, test) = super::digits(&super::default_path(), 0).unwrap();
        assert_eq!((train.len(), test.len()), (1437, 360));
        let b = train.get_batch(&(0..train.len()).collect::<Vec<_>>()).unwrap();
        assert!(b.x.iter().all(|&v| (0.0..=1.0).contains(&v)));
        let kiln::data::Targets::Labels(l) = b.y else { panic!("labels") };
        for c in 0..10 {
            let n = l.iter().filter(|&&x| x == c).count();
            assert!((120..=165).contains(&n), "class {c}: {n}");
        }
    }
}
