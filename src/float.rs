//! The element type: `f32` for training, `f64` for gradient checks.

use std::cell::RefCell;
use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, MulAssign, SubAssign};
use std::thread::LocalKey;

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

    /// This thread's pool of scratch buffers for this type (see [`with_scratch`]).
    #[doc(hidden)]
    fn scratch_pool() -> &'static LocalKey<RefCell<Vec<Vec<Self>>>>;
}

thread_local! {
    static SCRATCH_F32: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
    static SCRATCH_F64: RefCell<Vec<Vec<f64>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on a scratch buffer of `len` elements borrowed from this thread's pool, so hot loops
/// (the conv kernels' unrolled matrices) reuse memory instead of allocating, zeroing and
/// faulting in fresh pages on every call. The contents are arbitrary on entry: `f` must write
/// before it reads.
pub(crate) fn with_scratch<T: Float, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    let mut buffer = T::scratch_pool()
        .with(|pool| pool.borrow_mut().pop())
        .unwrap_or_default();
    if buffer.len() < len {
        buffer.resize(len, T::zero());
    }
    let result = f(&mut buffer[..len]);
    T::scratch_pool().with(|pool| pool.borrow_mut().push(buffer));
    result
}

impl Float for f32 {
    const NAME: &'static str = "f32";
    fn of(v: f64) -> Self {
        v as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn scratch_pool() -> &'static LocalKey<RefCell<Vec<Vec<Self>>>> {
        &SCRATCH_F32
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
    fn scratch_pool() -> &'static LocalKey<RefCell<Vec<Vec<Self>>>> {
        &SCRATCH_F64
    }
}
