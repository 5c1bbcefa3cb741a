//! The fully connected layer.

use rand::Rng;

use super::{Module, Parameter, default_bound, uniform};
use crate::error::{Result, bad_shape};
use crate::float::Float;
use crate::tape::Var;

/// `y = x·Wᵀ + b`, PyTorch's `nn.Linear`: `x: [.., in]`, `weight: [out, in]`, `bias: [out]`.
pub struct Linear<T: Float> {
    /// `[out, in]`.
    pub weight: Parameter<T>,
    /// `[out]`, if any.
    pub bias: Option<Parameter<T>>,
}

impl<T: Float> Linear<T> {
    /// A layer with PyTorch's default initialisation (uniform, bound `1/√in`).
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] if a size is 0.
    pub fn new(in_features: usize, out_features: usize, bias: bool, rng: &mut impl Rng) -> Result<Self> {
        if in_features == 0 || out_features == 0 {
            return Err(crate::error::invalid(
                "Linear",
                "features",
                (in_features, out_features),
                "must be at least 1",
            ));
        }
        let bound = default_bound(in_features);
        Ok(Linear {
            weight: Parameter::new(uniform(&[out_features, in_features], bound, rng)?),
            bias: bias
                .then(|| uniform(&[out_features], bound, rng).map(Parameter::new))
                .transpose()?,
        })
    }
}

impl<T: Float> Module<T> for Linear<T> {
    fn forward<'t>(&self, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let w = self.weight.bind(x.tape());
        let shape = x.shape();
        let in_features = w.shape()[1];
        if shape.last() != Some(&in_features) {
            return Err(bad_shape(
                "Linear",
                "x",
                &shape,
                format!("last axis must be in_features = {in_features}"),
            ));
        }
        // A single vector `[in]` is one row, as in PyTorch.
        let bias = self.bias.as_ref().map(|b| b.bind(x.tape()));
        crate::ops::matmul::linear(x, w, bias)
    }

    fn parameters(&self) -> Vec<(String, &Parameter<T>)> {
        super::weight_and_bias(&self.weight, &self.bias)
    }

    fn parameters_mut(&mut self) -> Vec<(String, &mut Parameter<T>)> {
        super::weight_and_bias_mut(&mut self.weight, &mut self.bias)
    }
}
