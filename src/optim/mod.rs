//! Optimizers with PyTorch's update rules: [`Sgd`] (momentum, Nesterov, weight decay),
//! [`Adam`] and [`AdamW`].

mod adam;
mod sgd;

pub use adam::{Adam, AdamW};
pub use sgd::Sgd;

use ndarray::ArrayD;

use crate::float::Float;
use crate::nn::Module;
use crate::tape::Grads;

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
