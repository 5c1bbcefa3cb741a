//! An array in a PyTorch fixture file: its shape and its values in row-major order, as the
//! generators under `tools/` write it. One reader for the fixture tests
//! (`#[path = "support/tensor.rs"] mod tensor;`).

use ndarray::{ArrayD, IxDyn};
use serde::Deserialize;

/// `{"shape": [..], "data": [..]}`.
#[derive(Deserialize, Clone, Debug)]
pub struct Tensor {
    /// The array's shape.
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub data: Vec<f64>,
}

impl Tensor {
    /// The values as an array.
    ///
    /// # Panics
    /// If the values do not fill the shape: the fixture file is broken.
    pub fn array(&self) -> ArrayD<f64> {
        ArrayD::from_shape_vec(IxDyn(&self.shape), self.data.clone()).unwrap()
    }
}
