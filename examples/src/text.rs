//! Helpers of the character-level language-model examples (`train_gpt`, `train_lstm`): the
//! bundled Shakespeare text as ids, a small seeded generator for batch and sampling draws, and
//! one draw from a row of logits with a temperature and top-k.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Where the bundled text lives in the repository (gzip, 1.1 MB uncompressed).
pub fn shakespeare_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/shakespeare.txt.gz")
}

/// xorshift64*: the examples' own batch and sampling draws, reproducible from a seed.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// The gzip text at `path`, its sorted distinct characters (the vocabulary) and the text as ids
/// into that vocabulary.
pub fn load_text(path: &Path) -> Result<(Vec<char>, Vec<u32>), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(file).read_to_string(&mut text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut chars: Vec<char> = text.chars().collect();
    chars.sort_unstable();
    chars.dedup();
    let ids = text.chars().map(|c| chars.binary_search(&c).unwrap_or(0) as u32).collect();
    Ok((chars, ids))
}

/// One index drawn from the softmax of `logits / temperature`, restricted to the `top_k` largest
/// logits (at least one).
pub fn draw(logits: &[f32], temperature: f32, top_k: usize, rng: &mut Rng) -> usize {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    let keep = &order[..top_k.clamp(1, logits.len())];
    let top = logits[keep[0]];
    let weights: Vec<f32> = keep.iter().map(|&i| ((logits[i] - top) / temperature).exp()).collect();
    let mut r = rng.unit() * weights.iter().sum::<f32>();
    for (&i, &w) in keep.iter().zip(&weights) {
        if r < w {
            return i;
        }
        r -= w;
    }
    keep[keep.len() - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_stay_in_the_top_k_and_follow_the_weights() {
        let mut rng = Rng(42);
        let logits = [0.0, 3.0, 1.0, 2.9, -5.0];
        let mut counts = [0usize; 5];
        for _ in 0..4000 {
            counts[draw(&logits, 1.0, 2, &mut rng)] += 1;
        }
        assert_eq!((counts[0], counts[2], counts[4]), (0, 0, 0));
        // e^3 : e^2.9 = 0.525 : 0.475.
        let share = counts[1] as f64 / 4000.0;
        assert!((share - 0.525).abs() < 0.03, "{share}");
        // A tiny temperature is the argmax.
        assert_eq!(draw(&logits, 1e-3, 5, &mut rng), 1);
    }

    #[test]
    fn bundled_text_loads() {
        let (chars, ids) = load_text(&shakespeare_path()).unwrap();
        assert_eq!(chars.len(), 76);
        assert!(ids.len() > 1_000_000 && ids.iter().all(|&i| (i as usize) < chars.len()));
    }
}
