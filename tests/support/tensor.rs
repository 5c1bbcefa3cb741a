//! An array in a PyTorch fixture file: its shape and its values in row-major order, as the
//! generators under `tools/` write it, non-finite values as strings (see `num.rs`). One reader
//! for the fixture tests; a test includes both files:
//!
//! ```text
//! #[path = "support/num.rs"]
//! mod num;
//! #[path = "support/tensor.rs"]
//! mod tensor;
//! ```

use ndarray::{ArrayD, IxDyn};
use serde::Deserialize;

use super::num::Num;

/// `{"shape": [..], "data": [..]}`.
#[derive(Deserialize, Clone, Debug)]
pub struct Tensor {
    /// The array's shape.
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub data: Vec<Num>,
}

impl Tensor {
    /// The values as an array.
    ///
    /// # Panics
    /// If the values do not fill the shape, or a string names no number: the fixture file is
    /// broken.
    pub fn array(&self) -> ArrayD<f64> {
        ArrayD::from_shape_vec(IxDyn(&self.shape), self.data.iter().map(Num::value).collect()).unwrap()
    }
}

/// Asserts that `actual` has `expected`'s shape and each value within `1e-10` of it, relative
/// to the larger of `|expected|` and 1 (float64 against float64: only rounding may differ).
/// `what` names the array in the message.
#[allow(dead_code)] // Not every fixture test compares whole arrays this way.
pub fn close(actual: &ArrayD<f64>, expected: &ArrayD<f64>, what: &str) {
    assert_eq!(actual.shape(), expected.shape(), "{what}: shape");
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= 1e-10 * e.abs().max(1.0),
            "{what}[{i}]: got {a:e}, PyTorch gives {e:e}"
        );
    }
}
