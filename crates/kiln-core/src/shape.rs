//! Shape arithmetic: strides, NumPy broadcasting, dim resolution (negative dims count from the
//! end, as in PyTorch) and merging of dims that need no index arithmetic.

use crate::error::{Error, Result};

/// A dim argument: `usize` or a signed integer, where -1 is the last dim (as in PyTorch).
pub trait Dim: Copy {
    /// The dim as an index into a shape of `rank` dims (0-d tensors accept 0 and -1).
    fn resolve(self, op: &'static str, shape: &[usize]) -> Result<usize>;
}

fn resolve_i64(d: i64, op: &'static str, shape: &[usize]) -> Result<usize> {
    let rank = shape.len().max(1) as i64;
    let r = if d < 0 { d + rank } else { d };
    if r < 0 || r >= rank {
        return Err(Error::DimOutOfRange { op, dim: d, shape: shape.to_vec() });
    }
    Ok(r as usize)
}

impl Dim for usize {
    fn resolve(self, op: &'static str, shape: &[usize]) -> Result<usize> {
        resolve_i64(i64::try_from(self).unwrap_or(i64::MAX), op, shape)
    }
}
impl Dim for i32 {
    fn resolve(self, op: &'static str, shape: &[usize]) -> Result<usize> {
        resolve_i64(self as i64, op, shape)
    }
}
impl Dim for i64 {
    fn resolve(self, op: &'static str, shape: &[usize]) -> Result<usize> {
        resolve_i64(self, op, shape)
    }
}
impl Dim for isize {
    fn resolve(self, op: &'static str, shape: &[usize]) -> Result<usize> {
        resolve_i64(self as i64, op, shape)
    }
}

/// Row-major (contiguous) strides in elements.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

/// The element count of a shape, or an error if it overflows.
pub fn checked_numel(op: &'static str, shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::invalid(op, format!("shape {shape:?} has more elements than fit in usize")))
}

/// The broadcast shape of two shapes (NumPy rules), or a shape-mismatch error.
pub fn broadcast_shapes(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n { a[i + a.len() - n] } else { 1 };
        let db = if i + b.len() >= n { b[i + b.len() - n] } else { 1 };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(Error::ShapeMismatch { op, lhs: a.to_vec(), rhs: b.to_vec() });
            }
        };
    }
    Ok(out)
}

/// Strides that read a contiguous tensor of `shape` as if it had `out` shape (right-aligned,
/// 0 on broadcast dims). `shape` must broadcast to `out`.
pub fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let cs = contiguous_strides(shape);
    let off = out.len() - shape.len();
    (0..out.len()).map(|i| if i < off || shape[i - off] == 1 { 0 } else { cs[i - off] }).collect()
}

/// Merges adjacent dims that every stride set walks contiguously and drops size-1 dims, so
/// kernels index as few dims as possible. Returns the merged shape and stride sets.
pub fn merge_dims(shape: &[usize], strides: &[Vec<usize>]) -> (Vec<usize>, Vec<Vec<usize>>) {
    let mut ms: Vec<usize> = Vec::new();
    let mut mst: Vec<Vec<usize>> = vec![Vec::new(); strides.len()];
    for d in 0..shape.len() {
        if shape[d] == 1 {
            continue;
        }
        if !ms.is_empty() {
            let mergeable = strides.iter().zip(&mst).all(|(s, m)| *m.last().unwrap() == s[d] * shape[d]);
            if mergeable {
                let l = ms.len() - 1;
                ms[l] *= shape[d];
                for (m, s) in mst.iter_mut().zip(strides) {
                    *m.last_mut().unwrap() = s[d];
                }
                continue;
            }
        }
        ms.push(shape[d]);
        for (m, s) in mst.iter_mut().zip(strides) {
            m.push(s[d]);
        }
    }
    if ms.is_empty() {
        ms.push(1);
        for m in mst.iter_mut() {
            m.push(0);
        }
    }
    (ms, mst)
}

/// `shape` viewed as [outer, shape[dim], inner].
pub fn split_at_dim(shape: &[usize], dim: usize) -> (usize, usize, usize) {
    if shape.is_empty() {
        return (1, 1, 1);
    }
    let outer = shape[..dim].iter().product();
    let inner = shape[dim + 1..].iter().product();
    (outer, shape[dim], inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast_shapes("t", &[3, 1, 5], &[4, 1]).unwrap(), vec![3, 4, 5]);
        assert_eq!(broadcast_shapes("t", &[], &[2, 3]).unwrap(), vec![2, 3]);
        assert!(broadcast_shapes("t", &[3], &[4]).is_err());
        assert_eq!(broadcast_strides(&[4, 1], &[3, 4, 5]), vec![0, 1, 0]);
    }

    #[test]
    fn merging_collapses_contiguous_runs() {
        let (s, st) = merge_dims(&[2, 3, 4], &[vec![12, 4, 1], vec![12, 4, 1]]);
        assert_eq!(s, vec![24]);
        assert_eq!(st, vec![vec![1], vec![1]]);
        let (s, st) = merge_dims(&[2, 3, 4], &[vec![12, 4, 1], vec![0, 0, 1]]);
        assert_eq!(s, vec![6, 4]);
        assert_eq!(st, vec![vec![4, 1], vec![0, 1]]);
        let (s, _) = merge_dims(&[1, 1], &[vec![0, 0]]);
        assert_eq!(s, vec![1]);
    }

    #[test]
    fn negative_dims_count_from_the_end() {
        assert_eq!((-1i32).resolve("t", &[2, 3]).unwrap(), 1);
        assert_eq!(0usize.resolve("t", &[]).unwrap(), 0);
        assert!(2usize.resolve("t", &[2, 3]).is_err());
        assert!((-3i32).resolve("t", &[2, 3]).is_err());
    }
}
