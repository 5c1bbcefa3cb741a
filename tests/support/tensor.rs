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
