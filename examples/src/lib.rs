//! Helpers shared by kiln's examples: the bundled digits data set.

use std::io::Read;
use std::path::{Path, PathBuf};

/// The digits data: `x` is n x 64 pixel values in 0..=16, `y` the labels 0..=9.
pub struct Digits {
    /// Pixels, row-major, 64 per sample.
    pub x: Vec<f32>,
    /// Labels.
    pub y: Vec<u32>,
}

impl Digits {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
}

/// Where the bundled file lives in the repository.
pub fn default_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/digits.csv.gz")
}

/// Reads `digits.csv.gz` (64 pixel columns, then the label).
pub fn load_digits(path: &Path) -> Result<Digits, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(file).read_to_string(&mut text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut d = Digits { x: Vec::new(), y: Vec::new() };
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let vals: Vec<&str> = line.split(',').collect();
        if vals.len() != 65 {
            return Err(format!("{}: line {}: expected 65 columns, found {}", path.display(), i + 1, vals.len()));
        }
        for v in &vals[..64] {
            d.x.push(v.trim().parse::<f32>().map_err(|e| format!("{}: line {}: {e}", path.display(), i + 1))?);
        }
        let label: u32 = vals[64].trim().parse().map_err(|e| format!("{}: line {}: {e}", path.display(), i + 1))?;
        if label > 9 {
            return Err(format!("{}: line {}: label {label} is not a digit", path.display(), i + 1));
        }
        d.y.push(label);
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn bundled_digits_load() {
        let d = super::load_digits(&super::default_path()).unwrap();
        assert_eq!(d.len(), 1797);
        assert_eq!(d.x.len(), 1797 * 64);
        assert!(d.x.iter().all(|&v| (0.0..=16.0).contains(&v)));
        for c in 0..10 {
            let n = d.y.iter().filter(|&&l| l == c).count();
            assert!((170..=190).contains(&n), "class {c}: {n}");
        }
    }
}
