//! Initialisers with PyTorch's formulas (`torch.nn.init`), in place on a `Parameter`, drawn from
//! kiln's global generator (`kiln::manual_seed`). Values are generated on the host in f64 where
//! it matters (orthogonal) and uploaded once.

use kiln_core::{Error, Parameter, Result, Tensor, rng};

/// Which fan scales kaiming initialisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanMode {
    /// Preserves the forward pass's variance.
    FanIn,
    /// Preserves the backward pass's variance.
    FanOut,
}

/// The nonlinearity that follows the layer, for [`calculate_gain`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nonlinearity {
    /// Identity (also conv layers): gain 1.
    Linear,
    /// Gain 1.
    Sigmoid,
    /// Gain 5/3.
    Tanh,
    /// Gain sqrt(2).
    Relu,
    /// Gain sqrt(2 / (1 + a^2)) for negative slope a.
    LeakyRelu,
    /// Gain 3/4.
    Selu,
}

/// PyTorch's recommended gain for a nonlinearity (`param` is leaky_relu's negative slope,
/// default 0.01).
pub fn calculate_gain(nonlinearity: Nonlinearity, param: Option<f32>) -> f32 {
    match nonlinearity {
        Nonlinearity::Linear | Nonlinearity::Sigmoid => 1.0,
        Nonlinearity::Tanh => 5.0 / 3.0,
        Nonlinearity::Relu => 2f32.sqrt(),
        Nonlinearity::LeakyRelu => {
            let a = param.unwrap_or(0.01);
            (2.0 / (1.0 + a * a)).sqrt()
        }
        Nonlinearity::Selu => 0.75,
    }
}

/// (fan_in, fan_out) of a weight of shape [out, in, *receptive], as PyTorch computes them.
pub fn fans(op: &'static str, shape: &[usize]) -> Result<(usize, usize)> {
    if shape.len() < 2 {
        return Err(Error::invalid(op, format!("fan in and fan out need at least 2 dims, got shape {shape:?}")));
    }
    let receptive: usize = shape[2..].iter().product();
    Ok((shape[1] * receptive, shape[0] * receptive))
}

fn fill(p: &Parameter, values: Vec<f32>) -> Result<()> {
    p.set(Tensor::from_vec(values, &p.shape(), &p.device())?)
}

/// U(a, b).
pub fn uniform_(p: &Parameter, a: f32, b: f32) -> Result<()> {
    let v = rng::uniform_vec(p.numel()).into_iter().map(|u| a + (b - a) * u).collect();
    fill(p, v)
}

/// N(mean, std^2).
pub fn normal_(p: &Parameter, mean: f32, std: f32) -> Result<()> {
    let v = rng::normal_vec(p.numel()).into_iter().map(|z| mean + std * z).collect();
    fill(p, v)
}

/// All `value`.
pub fn constant_(p: &Parameter, value: f32) -> Result<()> {
    p.set(Tensor::full(&p.shape(), value, &p.device())?)
}

/// All zeros.
pub fn zeros_(p: &Parameter) -> Result<()> {
    constant_(p, 0.0)
}

/// All ones.
pub fn ones_(p: &Parameter) -> Result<()> {
    constant_(p, 1.0)
}

/// Glorot uniform: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)).
pub fn xavier_uniform_(p: &Parameter, gain: f32) -> Result<()> {
    let (fi, fo) = fans("xavier_uniform_", &p.shape())?;
    let a = gain * (6.0 / (fi + fo) as f32).sqrt();
    uniform_(p, -a, a)
}

/// Glorot normal: N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out)).
pub fn xavier_normal_(p: &Parameter, gain: f32) -> Result<()> {
    let (fi, fo) = fans("xavier_normal_", &p.shape())?;
    normal_(p, 0.0, gain * (2.0 / (fi + fo) as f32).sqrt())
}

fn kaiming_std(op: &'static str, p: &Parameter, a: f32, mode: FanMode, nl: Nonlinearity) -> Result<f32> {
    let (fi, fo) = fans(op, &p.shape())?;
    let fan = match mode {
        FanMode::FanIn => fi,
        FanMode::FanOut => fo,
    };
    if fan == 0 {
        return Ok(0.0);
    }
    Ok(calculate_gain(nl, Some(a)) / (fan as f32).sqrt())
}

/// He uniform: U(-b, b), b = sqrt(3) * gain / sqrt(fan); `a` is leaky_relu's slope.
pub fn kaiming_uniform_(p: &Parameter, a: f32, mode: FanMode, nonlinearity: Nonlinearity) -> Result<()> {
    let bound = 3f32.sqrt() * kaiming_std("kaiming_uniform_", p, a, mode, nonlinearity)?;
    uniform_(p, -bound, bound)
}

/// He normal: N(0, std^2), std = gain / sqrt(fan).
pub fn kaiming_normal_(p: &Parameter, a: f32, mode: FanMode, nonlinearity: Nonlinearity) -> Result<()> {
    let std = kaiming_std("kaiming_normal_", p, a, mode, nonlinearity)?;
    normal_(p, 0.0, std)
}

/// A (semi-)orthogonal matrix times `gain`: the Q of the QR decomposition of a normal matrix
/// (with R's diagonal signs folded in, as PyTorch does), for a weight viewed as
/// [shape[0], numel / shape[0]].
pub fn orthogonal_(p: &Parameter, gain: f32) -> Result<()> {
    let shape = p.shape();
    if shape.len() < 2 {
        return Err(Error::invalid("orthogonal_", format!("needs at least 2 dims, got shape {shape:?}")));
    }
    let rows = shape[0];
    let cols = p.numel() / rows.max(1);
    let z: Vec<f64> = rng::normal_vec(rows * cols).into_iter().map(|v| v as f64).collect();
    // Work on a tall matrix m x n (m >= n): the transpose when rows < cols.
    let (m, n, tall) = if rows < cols { (cols, rows, false) } else { (rows, cols, true) };
    let at = |i: usize, j: usize| if tall { z[i * cols + j] } else { z[j * cols + i] };
    // Modified Gram-Schmidt on the columns, in f64: q (m x n) with R's diagonal positive,
    // which equals Q * sign(diag(R)) of any QR.
    let mut q: Vec<Vec<f64>> = (0..n).map(|j| (0..m).map(|i| at(i, j)).collect()).collect();
    for j in 0..n {
        let (done, rest) = q.split_at_mut(j);
        let qj = &mut rest[0];
        for qk in done.iter() {
            let d: f64 = qj.iter().zip(qk).map(|(a, b)| a * b).sum();
            for (a, b) in qj.iter_mut().zip(qk) {
                *a -= d * b;
            }
        }
        let norm = q[j].iter().map(|v| v * v).sum::<f64>().sqrt();
        for v in q[j].iter_mut() {
            *v /= norm;
        }
    }
    let mut out = vec![0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            let v = if tall { q[c][r] } else { q[r][c] };
            out[r * cols + c] = (v * gain as f64) as f32;
        }
    }
    fill(p, out)
}
