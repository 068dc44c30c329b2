//! The global random generator behind `randn`, `rand` and the initialisers, seeded by
//! [`manual_seed`]. xoshiro256** seeded through SplitMix64; normals by Box-Muller.

use std::sync::Mutex;

struct Xoshiro([u64; 4]);

impl Xoshiro {
    fn seeded(seed: u64) -> Xoshiro {
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9E3779B97F4A7C15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D049BB133111EB);
            x ^ (x >> 31)
        };
        Xoshiro([next(), next(), next(), next()])
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 24 random bits (every value exactly representable in f32).
    fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// Uniform in [0, 1) as f64 with 53 random bits.
    fn uniform64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

static RNG: Mutex<Option<Xoshiro>> = Mutex::new(None);

fn with_rng<T>(f: impl FnOnce(&mut Xoshiro) -> T) -> T {
    let mut g = RNG.lock().unwrap();
    f(g.get_or_insert_with(|| Xoshiro::seeded(0x6b696c6e)))
}

/// Seeds kiln's global random generator (like `torch.manual_seed`).
pub fn manual_seed(seed: u64) {
    *RNG.lock().unwrap() = Some(Xoshiro::seeded(seed));
}

/// The generator's state, for checkpoints (restore it with [`set_state`]).
pub fn state() -> [u64; 4] {
    with_rng(|r| r.0)
}

/// Restores a state from [`state`] (an all-zero state, which xoshiro cannot leave, reseeds).
pub fn set_state(s: [u64; 4]) {
    *RNG.lock().unwrap() = Some(if s == [0; 4] { Xoshiro::seeded(0) } else { Xoshiro(s) });
}

/// `n` samples uniform in [0, 1).
pub fn uniform_vec(n: usize) -> Vec<f32> {
    with_rng(|r| (0..n).map(|_| r.uniform()).collect())
}

/// `n` samples from N(0, 1).
pub fn normal_vec(n: usize) -> Vec<f32> {
    with_rng(|r| {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            // Box-Muller on (0, 1]: 1 - u avoids ln(0).
            let u1 = 1.0 - r.uniform64();
            let u2 = r.uniform64();
            let rad = (-2.0 * u1.ln()).sqrt();
            let th = 2.0 * std::f64::consts::PI * u2;
            out.push((rad * th.cos()) as f32);
            if out.len() < n {
                out.push((rad * th.sin()) as f32);
            }
        }
        out
    })
}

/// A random u64 (for shuffles and seeds derived from the global generator).
pub fn next_u64() -> u64 {
    with_rng(|r| r.next_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_samples_have_unit_moments_and_seeding_repeats() {
        manual_seed(7);
        let a = normal_vec(200_000);
        manual_seed(7);
        let b = normal_vec(200_000);
        assert_eq!(a, b);
        let n = a.len() as f64;
        let mean = a.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = a.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.01, "{mean}");
        assert!((var - 1.0).abs() < 0.02, "{var}");
        let u = uniform_vec(100_000);
        assert!(u.iter().all(|&x| (0.0..1.0).contains(&x)));
        let um = u.iter().map(|&x| x as f64).sum::<f64>() / u.len() as f64;
        assert!((um - 0.5).abs() < 0.01);
    }
}
