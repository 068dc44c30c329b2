//! Tensor statistics for inspection and monitoring, computed where the tensors live: on the GPU
//! one small kernel per tensor writes into one shared buffer, and the whole set costs a single
//! read-back. Statistics cover the finite elements; NaNs and infinities are counted apart.

use kiln_device::kernels::{self, STATS_WORDS};

use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::tensor::Tensor;

/// Summary statistics of one tensor. `mean`, `std` (unbiased; NaN for fewer than two finite
/// elements, as PyTorch), `min`, `max` and `norm` (L2) are over the finite elements;
/// `zero_fraction` is over all elements.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TensorStats {
    /// Elements.
    pub numel: usize,
    /// Finite elements.
    pub finite: usize,
    /// Mean of the finite elements.
    pub mean: f64,
    /// Unbiased standard deviation of the finite elements.
    pub std: f64,
    /// Smallest finite element.
    pub min: f64,
    /// Largest finite element.
    pub max: f64,
    /// L2 norm of the finite elements.
    pub norm: f64,
    /// Fraction of elements equal to zero.
    pub zero_fraction: f64,
    /// NaN elements.
    pub nan: usize,
    /// Infinite elements.
    pub inf: usize,
}

impl std::fmt::Display for TensorStats {
    /// `mean 1.000e-2  std 4.560e-1  min -1.200e0  max 1.300e0  norm 4.560e0  zeros 0.0%`, then
    /// the NaN and Inf counts when there are any.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "mean {:.3e}  std {:.3e}  min {:.3e}  max {:.3e}  norm {:.3e}  zeros {:.1}%",
            self.mean,
            self.std,
            self.min,
            self.max,
            self.norm,
            self.zero_fraction * 100.0
        )?;
        if !self.is_finite() {
            write!(f, "  NaN {}  Inf {}", self.nan, self.inf)?;
        }
        Ok(())
    }
}

impl TensorStats {
    /// True when there is no NaN or infinity.
    pub fn is_finite(&self) -> bool {
        self.nan == 0 && self.inf == 0
    }

    #[allow(clippy::too_many_arguments)]
    fn from_parts(
        numel: usize,
        n: f64,
        mean: f64,
        m2: f64,
        min: f64,
        max: f64,
        sq: f64,
        zeros: usize,
        nan: usize,
        inf: usize,
    ) -> TensorStats {
        let finite = n as usize;
        let nan_if = |c: bool, v: f64| if c { f64::NAN } else { v };
        TensorStats {
            numel,
            finite,
            mean: nan_if(finite == 0, mean),
            std: nan_if(finite < 2, (m2 / (n - 1.0)).max(0.0).sqrt()),
            min: nan_if(finite == 0, min),
            max: nan_if(finite == 0, max),
            norm: sq.sqrt(),
            zero_fraction: if numel == 0 { 0.0 } else { zeros as f64 / numel as f64 },
            nan,
            inf,
        }
    }

    /// Statistics of host values, in f64.
    pub fn of_values(v: &[f32]) -> TensorStats {
        let (mut n, mut mean, mut m2, mut sq) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        let (mut mn, mut mx) = (f64::INFINITY, f64::NEG_INFINITY);
        let (mut zeros, mut nan, mut inf) = (0, 0, 0);
        for &x in v {
            if x.is_nan() {
                nan += 1;
                continue;
            }
            if x.is_infinite() {
                inf += 1;
                continue;
            }
            if x == 0.0 {
                zeros += 1;
            }
            let x = x as f64;
            n += 1.0;
            let d = x - mean;
            mean += d / n;
            m2 += d * (x - mean);
            mn = mn.min(x);
            mx = mx.max(x);
            sq += x * x;
        }
        TensorStats::from_parts(v.len(), n, mean, m2, mn, mx, sq, zeros, nan, inf)
    }
}

/// Statistics of every tensor, in order. GPU tensors of one device are measured by one kernel
/// each into a shared buffer and read back once; CPU tensors on the host.
pub fn tensor_stats(tensors: &[Tensor]) -> Result<Vec<TensorStats>> {
    let mut out: Vec<Option<TensorStats>> = vec![None; tensors.len()];
    // Group the GPU F32 tensors by device.
    let mut groups: Vec<(Device, Vec<usize>)> = Vec::new();
    for (i, t) in tensors.iter().enumerate() {
        match (t.storage(), t.dtype()) {
            (Storage::Gpu(_), DType::F32) if t.numel() > 0 => match groups.iter_mut().find(|(d, _)| d == t.dev()) {
                Some((_, v)) => v.push(i),
                None => groups.push((t.device(), vec![i])),
            },
            _ => out[i] = Some(TensorStats::of_values(&t.to_vec()?)),
        }
    }
    for (dev, idx) in groups {
        let g = dev.as_gpu().expect("gpu group");
        let buf = g.alloc((idx.len() * STATS_WORDS * 4) as u64, "tensor_stats")?;
        for (slot, &i) in idx.iter().enumerate() {
            let Storage::Gpu(b) = tensors[i].storage() else { unreachable!() };
            kernels::tensor_stats(g, b, tensors[i].numel(), &buf, slot)?;
        }
        let words: Vec<u32> = bytemuck::pod_collect_to_vec(&g.read(&buf, (idx.len() * STATS_WORDS * 4) as u64)?);
        for (slot, &i) in idx.iter().enumerate() {
            let w = &words[slot * STATS_WORDS..];
            let f = |k: usize| f32::from_bits(w[k]) as f64;
            out[i] = Some(TensorStats::from_parts(
                tensors[i].numel(),
                f(0),
                f(1),
                f(2),
                f(3),
                f(4),
                f(5),
                w[6] as usize,
                w[7] as usize,
                w[8] as usize,
            ));
        }
    }
    Ok(out.into_iter().map(|s| s.expect("every tensor measured")).collect())
}

/// Counts of the finite elements of an F32 tensor in `bins` equal bins over [lo, hi] (values
/// outside are not counted; `hi` falls in the last bin), computed on the tensor's device.
pub fn histogram(t: &Tensor, bins: usize, lo: f32, hi: f32) -> Result<Vec<u32>> {
    t.expect_dtype("histogram", DType::F32)?;
    if bins == 0 || lo.is_nan() || hi.is_nan() || lo > hi {
        return Err(Error::invalid(
            "histogram",
            format!("need bins > 0 and lo <= hi, got {bins} bins over [{lo}, {hi}]"),
        ));
    }
    match t.storage() {
        Storage::Gpu(b) if t.numel() > 0 => {
            let g = t.dev().as_gpu().expect("gpu tensor");
            let counts = kernels::histogram(g, b, t.numel(), bins, lo, hi)?;
            Ok(bytemuck::pod_collect_to_vec(&g.read(&counts, (bins * 4) as u64)?))
        }
        _ => {
            let mut h = vec![0u32; bins];
            for v in t.to_vec()? {
                if v.is_finite() && v >= lo && v <= hi {
                    let b = if hi > lo {
                        (((v - lo) / (hi - lo) * bins as f32).floor() as usize).min(bins - 1)
                    } else {
                        bins - 1
                    };
                    h[b] += 1;
                }
            }
            Ok(h)
        }
    }
}
