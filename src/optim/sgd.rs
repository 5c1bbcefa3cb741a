//! Stochastic gradient descent, PyTorch's `torch.optim.SGD`.

use ndarray::{ArrayD, Zip};

use super::{Optimizer, slot};
use crate::float::Float;

/// SGD with optional momentum, dampening, Nesterov momentum and (L2) weight decay:
///
/// ```text
/// g ← g + λ·p
/// b ← μ·b + (1 − τ)·g          (b = g on the first step)
/// g ← g + μ·b if nesterov, else b
/// p ← p − lr·g
/// ```
#[derive(Clone, Debug)]
pub struct Sgd<T: Float> {
    /// Learning rate.
    pub lr: f64,
    /// Momentum μ (0 disables it).
    pub momentum: f64,
    /// Dampening τ of the momentum.
    pub dampening: f64,
    /// L2 penalty λ added to the gradient.
    pub weight_decay: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    buffers: Vec<Option<ArrayD<T>>>,
}

impl<T: Float> Sgd<T> {
    /// Plain SGD with learning rate `lr`.
    pub fn new(lr: f64) -> Self {
        Sgd {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            buffers: Vec::new(),
        }
    }

    /// Sets the momentum.
    pub fn momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }

    /// Sets the dampening.
    pub fn dampening(mut self, dampening: f64) -> Self {
        self.dampening = dampening;
        self
    }

    /// Sets the weight decay.
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    /// Switches Nesterov momentum on or off.
    pub fn nesterov(mut self, nesterov: bool) -> Self {
        self.nesterov = nesterov;
        self
    }
}

impl<T: Float> Optimizer<T> for Sgd<T> {
    fn update(&mut self, index: usize, p: &mut ArrayD<T>, mut g: ArrayD<T>) {
        let (lr, mu, wd) = (T::of(self.lr), T::of(self.momentum), T::of(self.weight_decay));
        if self.weight_decay != 0.0 {
            Zip::from(&mut g).and(&*p).for_each(|g, &p| *g += wd * p);
        }
        if self.momentum != 0.0 {
            let keep = T::of(1.0 - self.dampening);
            let buffer = slot(&mut self.buffers, index);
            let b = match buffer {
                Some(b) => {
                    Zip::from(&mut *b).and(&g).for_each(|b, &g| *b = mu * *b + keep * g);
                    b
                }
                None => buffer.insert(g.clone()),
            };
            if self.nesterov {
                Zip::from(&mut g).and(&*b).for_each(|g, &b| *g += mu * b);
            } else {
                g.assign(b);
            }
        }
        Zip::from(p).and(&g).for_each(|p, &g| *p -= lr * g);
    }
}
