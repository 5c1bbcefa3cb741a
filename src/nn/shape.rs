//! Layers that only reshape: the seam between a convolutional stack and a dense one (an
//! encoder's `Flatten` before its `Linear`, a decoder's `Unflatten` after it).

use crate::error::{Result, invalid};
use crate::float::Float;
use crate::tape::Var;

use super::Module;

/// PyTorch's `nn.Flatten()`: merges every axis after the batch axis, `[n, c, h, w] → [n, c·h·w]`.
///
/// PyTorch's `start_dim`/`end_dim` are fixed at their defaults (1 and −1); for other ranges call
/// [`Var::flatten`] directly.
#[derive(Clone, Copy, Debug, Default)]
pub struct Flatten;

impl<T: Float> Module<T> for Flatten {
    fn forward<'t>(&self, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let rank = x.shape().len();
        if rank < 2 {
            return Err(invalid(
                "Flatten",
                "input rank",
                rank,
                "must be at least 2 (a batch axis and at least one more)",
            ));
        }
        x.flatten(1, rank - 1)
    }
}

/// PyTorch's `nn.Unflatten(1, sizes)`: splits the axis after the batch axis into `sizes`,
/// `[n, c·h·w] → [n, c, h, w]`.
#[derive(Clone, Debug)]
pub struct Unflatten {
    sizes: Vec<usize>,
}

impl Unflatten {
    /// Splits axis 1 into `sizes` (at least one size, none of them 0).
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] if `sizes` is empty or holds a 0.
    pub fn new(sizes: &[usize]) -> Result<Self> {
        if sizes.is_empty() || sizes.contains(&0) {
            return Err(invalid(
                "Unflatten",
                "sizes",
                format!("{sizes:?}"),
                "must hold at least one size, none of them 0",
            ));
        }
        Ok(Unflatten { sizes: sizes.to_vec() })
    }

    /// The sizes axis 1 is split into.
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }
}

impl<T: Float> Module<T> for Unflatten {
    fn forward<'t>(&self, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let shape = x.shape();
        // Compared as a checked product, so sizes whose product wraps cannot match by accident.
        let product = self.sizes.iter().try_fold(1usize, |acc, &s| acc.checked_mul(s));
        if shape.len() != 2 || product != Some(shape[1]) {
            return Err(invalid(
                "Unflatten",
                "input shape",
                format!("{shape:?}"),
                format!(
                    "must be [n, {}] to split into {:?}",
                    self.sizes.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("·"),
                    self.sizes
                ),
            ));
        }
        let new: Vec<usize> = [shape[0]].into_iter().chain(self.sizes.iter().copied()).collect();
        x.reshape(&new)
    }
}
