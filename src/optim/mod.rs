//! Optimizers with PyTorch's update rules: [`Sgd`] (momentum, Nesterov, weight decay),
//! [`Adam`] and [`AdamW`]; and [`cosine_annealing`], a learning-rate schedule (each
//! optimizer's `lr` is a public field, set before a step).

mod adam;
mod sgd;

pub use adam::{Adam, AdamW};
pub use sgd::Sgd;

use ndarray::ArrayD;

use crate::float::Float;
use crate::nn::Module;
use crate::tape::Grads;

/// The learning rate at step `step` of `total` on a cosine from `base` down to `min`:
/// `min + (base − min)·(1 + cos(π·step/total))/2`, PyTorch's `CosineAnnealingLR(T_max =
/// total, eta_min = min)` stepped once per optimizer step. It starts at `base`, halves the way
/// at `total/2` and reaches `min` at `total` (and stays there after, where PyTorch's would
/// climb back up its cosine).
///
/// A short run ends better with it than with a constant rate: the large early steps travel,
/// the small late ones settle, and the last weights are not one noisy step away from a good
/// point.
///
/// # Example
/// ```
/// use adjoint::optim::cosine_annealing;
///
/// assert_eq!(cosine_annealing(1e-3, 0.0, 0, 100), 1e-3);
/// assert!((cosine_annealing(1e-3, 0.0, 50, 100) - 5e-4).abs() < 1e-15);
/// assert_eq!(cosine_annealing(1e-3, 0.0, 100, 100), 0.0);
/// assert_eq!(cosine_annealing(1e-3, 0.0, 250, 100), 0.0);
/// ```
pub fn cosine_annealing(base: f64, min: f64, step: usize, total: usize) -> f64 {
    if step >= total {
        return min;
    }
    let progress = step as f64 / total as f64;
    min + (base - min) * (1.0 + (std::f64::consts::PI * progress).cos()) / 2.0
}

/// Updates a model's parameters from their gradients.
pub trait Optimizer<T: Float> {
    /// One update of every parameter of `model` that has a gradient in `grads`; parameters
    /// without one (not used in the loss) are left alone, as in PyTorch.
    fn step(&mut self, model: &mut impl Module<T>, grads: &Grads<T>) {
        for (i, (_, p)) in model.parameters_mut().into_iter().enumerate() {
            let Some(g) = p.grad(grads).cloned() else { continue };
            self.update(i, p.value_mut(), g);
        }
    }

    /// Updates parameter number `index` (its position in `parameters_mut`, which keys the
    /// optimizer's state) given its gradient.
    fn update(&mut self, index: usize, value: &mut ArrayD<T>, grad: ArrayD<T>);
}

/// The per-parameter state slot `index`, created on first use.
fn slot<S: Default>(states: &mut Vec<S>, index: usize) -> &mut S {
    if states.len() <= index {
        states.resize_with(index + 1, S::default);
    }
    &mut states[index]
}
