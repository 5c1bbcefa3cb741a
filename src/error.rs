//! The one error type of the library.

use thiserror::Error;

use crate::data::DataError;

/// Everything that can go wrong when a public function is given bad input.
///
/// Every variant names the operation (`op`) that refused, and the offending values, so a
/// message reads on its own: `conv2d: invalid stride = [0, 1]: must be at least 1`.
#[derive(Debug, Error)]
pub enum Error {
    /// Two shapes that cannot be combined (broadcasting, matmul inner sizes, concat, ...).
    #[error("{op}: incompatible shapes {lhs:?} and {rhs:?}: {reason}")]
    ShapeMismatch {
        /// The refusing operation.
        op: &'static str,
        /// The first shape involved.
        lhs: Vec<usize>,
        /// The second shape involved.
        rhs: Vec<usize>,
        /// Why they do not fit.
        reason: String,
    },
    /// One input has a shape the operation cannot take (wrong rank, wrong length, ...).
    #[error("{op}: {input} has shape {shape:?}: {reason}")]
    BadShape {
        /// The refusing operation.
        op: &'static str,
        /// Which input (`"x"`, `"w"`, `"bias"`, ...).
        input: &'static str,
        /// Its shape.
        shape: Vec<usize>,
        /// What was expected.
        reason: String,
    },
    /// A setting outside its allowed range.
    #[error("{op}: invalid {param} = {value}: {reason}")]
    InvalidArgument {
        /// The refusing operation.
        op: &'static str,
        /// The parameter's name, as in PyTorch (`stride`, `padding`, `output_padding`, ...).
        param: &'static str,
        /// The value given, printed.
        value: String,
        /// The rule it breaks.
        reason: String,
    },
    /// `backward` was called on a non-scalar without a seed gradient.
    #[error("backward: the output has shape {shape:?}; a non-scalar output needs an explicit seed gradient")]
    NonScalarBackward {
        /// Shape of the output.
        shape: Vec<usize>,
    },
    /// An op was given values recorded on two different tapes (or a value of a tape other
    /// than the one it ran on).
    #[error("{op}: input {input} (%{id}) lives on another tape: every input of an op must be recorded on one tape")]
    MixedTapes {
        /// The refusing operation, with its settings.
        op: String,
        /// Which input (0 = first).
        input: usize,
        /// Its node id on its own tape.
        id: usize,
    },
    /// A gradient rule returned something `backward` cannot use: too few or too many
    /// gradients, one of the wrong shape, or one on another tape. Only a user-written [`crate::Op`]
    /// can do this; adjoint's own rules are tested not to.
    #[error("backward of {op}: {reason}")]
    BadGradientRule {
        /// The op whose rule misbehaved.
        op: String,
        /// What was wrong.
        reason: String,
    },
    /// A weights file could not be read, written or matched to a model.
    #[error("{op}: {path}: {reason}")]
    Weights {
        /// `"save"` or `"load"`.
        op: &'static str,
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// An op's result (or a buffer it needs) could not be allocated: the machine lacks the
    /// memory. Sizes above [`crate::ops::size::MAX_ELEMENTS`] are refused before trying, as
    /// [`Error::InvalidArgument`].
    #[error("{op}: cannot allocate {what} of {elements} elements ({bytes} bytes): out of memory")]
    OutOfMemory {
        /// The refusing operation.
        op: &'static str,
        /// What was being allocated (`"output"`, `"unrolled input"`, ...).
        what: &'static str,
        /// Its element count.
        elements: usize,
        /// Its size in bytes.
        bytes: usize,
    },
    /// A dataset could not be read or split.
    #[error(transparent)]
    Data(#[from] DataError),
}

/// `Result` with the library's [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shorthand for an [`Error::InvalidArgument`].
pub(crate) fn invalid(
    op: &'static str,
    param: &'static str,
    value: impl std::fmt::Debug,
    reason: impl Into<String>,
) -> Error {
    Error::InvalidArgument {
        op,
        param,
        value: format!("{value:?}"),
        reason: reason.into(),
    }
}

/// Shorthand for an [`Error::BadShape`].
pub(crate) fn bad_shape(op: &'static str, input: &'static str, shape: &[usize], reason: impl Into<String>) -> Error {
    Error::BadShape {
        op,
        input,
        shape: shape.to_vec(),
        reason: reason.into(),
    }
}
