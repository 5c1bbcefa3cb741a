//! Differentiable operations, one file per family. In each file an op's forward and its gradient
//! rule sit side by side, and every gradient rule is itself written with these ops.
//!
//! Every value on a tape is kept in standard (row-major, contiguous) layout, which the kernels
//! rely on.

pub mod conv;
pub mod elementwise;
mod gemm;
pub mod loss;
pub mod matmul;
pub mod norm;
mod parallel;
pub mod pool;
pub mod reduce;
pub mod shape;
pub mod size;
pub mod upsample;

use crate::error::{Error, Result};

/// The shape NumPy/PyTorch broadcasting gives two shapes: align them at the right, and on each
/// axis the sizes must agree or one of them must be 1.
///
/// # Errors
/// [`Error::ShapeMismatch`] naming `op` if some axis has two different sizes, neither of them 1.
pub fn broadcast_shape(op: &'static str, lhs: &[usize], rhs: &[usize]) -> Result<Vec<usize>> {
    let n = lhs.len().max(rhs.len());
    let at = |s: &[usize], i: usize| if i + s.len() >= n { s[i + s.len() - n] } else { 1 };
    (0..n)
        .map(|i| match (at(lhs, i), at(rhs, i)) {
            (a, b) if a == b || b == 1 => Ok(a),
            (1, b) => Ok(b),
            (a, b) => Err(Error::ShapeMismatch {
                op,
                lhs: lhs.to_vec(),
                rhs: rhs.to_vec(),
                reason: format!("axis {i} (from the right: {}) has sizes {a} and {b}", n - i),
            }),
        })
        .collect()
}

/// A tape value's elements in row-major order. Every value on a tape is kept in standard
/// layout ([`crate::Tape::record`] guarantees it), so this never fails for one.
pub(crate) fn contiguous<T: crate::float::Float>(a: &ndarray::ArrayD<T>) -> &[T] {
    a.as_slice().expect("tape values are kept in standard layout")
}

/// The row-major multi-index of flat position `i` in an array of `shape`.
pub(crate) fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for (d, &n) in shape.iter().enumerate().rev() {
        idx[d] = i % n;
        i /= n;
    }
    idx
}

/// Checks an axis index against a rank.
pub(crate) fn check_axis(op: &'static str, axis: usize, ndim: usize) -> Result<()> {
    if axis >= ndim {
        return Err(crate::error::invalid(
            op,
            "axis",
            axis,
            format!("out of range for a value with {ndim} axes"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast_shape("t", &[2, 3], &[3]).unwrap(), vec![2, 3]);
        assert_eq!(broadcast_shape("t", &[4, 1, 5], &[3, 1]).unwrap(), vec![4, 3, 5]);
        assert_eq!(broadcast_shape("t", &[], &[2]).unwrap(), vec![2]);
        assert!(broadcast_shape("t", &[2, 3], &[2]).is_err());
    }
}
