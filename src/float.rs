//! The element type: `f32` for training, `f64` for gradient checks.

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, MulAssign, SubAssign};

use ndarray::{LinalgScalar, ScalarOperand};

/// A floating-point element type the tape can differentiate.
///
/// Implemented for `f32` (fast training) and `f64` (finite-difference checks). Everything in
/// adjoint is generic over it, so the same model code runs in either precision.
pub trait Float:
    num_traits::Float
    + LinalgScalar
    + ScalarOperand
    + Debug
    + Display
    + Default
    + Send
    + Sync
    + AddAssign
    + SubAssign
    + MulAssign
    + Sum
    + 'static
{
    /// The type's name, for printing (`"f32"` or `"f64"`).
    const NAME: &'static str;

    /// Converts an `f64` constant (rounding for `f32`).
    fn of(v: f64) -> Self;

    /// Widens to `f64` for reporting and checking.
    fn to_f64(self) -> f64;
}

impl Float for f32 {
    const NAME: &'static str = "f32";
    fn of(v: f64) -> Self {
        v as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Float for f64 {
    const NAME: &'static str = "f64";
    fn of(v: f64) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
}

/// For the unit tests: the worst difference between `got` and the reference `expected`, taken
/// in the same order, relative to the reference's largest entry (or 1, if all are smaller).
#[cfg(test)]
pub(crate) fn relative_error<'a, T: Float, E>(got: impl IntoIterator<Item = &'a T>, expected: E) -> f64
where
    E: IntoIterator<Item = &'a f64>,
    E::IntoIter: Clone,
{
    let expected = expected.into_iter();
    let scale = expected.clone().fold(1.0, |m: f64, e| m.max(e.abs()));
    let worst = got
        .into_iter()
        .zip(expected)
        .map(|(g, e)| (Float::to_f64(*g) - e).abs())
        .fold(0.0, f64::max);
    worst / scale
}
