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
