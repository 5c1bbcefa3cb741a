//! Adam and AdamW, PyTorch's `torch.optim.Adam` / `AdamW` (without amsgrad).

use ndarray::{ArrayD, Zip};

use super::{Optimizer, slot};
use crate::float::Float;

#[derive(Clone, Debug, Default)]
struct Moments<T: Float> {
    step: i32,
    m: Option<ArrayD<T>>,
    v: Option<ArrayD<T>>,
}

/// The shared Adam update; `decoupled` selects AdamW's weight decay.
///
/// ```text
/// Adam:  g ← g + λ·p              AdamW: p ← p·(1 − lr·λ)
/// m ← β₁·m + (1 − β₁)·g
/// v ← β₂·v + (1 − β₂)·g²
/// p ← p − lr · (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε)
/// ```
#[allow(clippy::too_many_arguments)]
fn adam_update<T: Float>(
    state: &mut Moments<T>,
    p: &mut ArrayD<T>,
    mut g: ArrayD<T>,
    lr: f64,
    (beta1, beta2): (f64, f64),
    eps: f64,
    weight_decay: f64,
    decoupled: bool,
) {
    if weight_decay != 0.0 {
        if decoupled {
            let keep = T::of(1.0 - lr * weight_decay);
            p.mapv_inplace(|p| p * keep);
        } else {
            let wd = T::of(weight_decay);
            Zip::from(&mut g).and(&*p).for_each(|g, &p| *g += wd * p);
        }
    }
    state.step += 1;
    let (b1, b2) = (T::of(beta1), T::of(beta2));
    let m = state.m.get_or_insert_with(|| ArrayD::zeros(g.raw_dim()));
    let v = state.v.get_or_insert_with(|| ArrayD::zeros(g.raw_dim()));
    Zip::from(&mut *m).and(&mut *v).and(&g).for_each(|m, v, &g| {
        *m = b1 * *m + (T::one() - b1) * g;
        *v = b2 * *v + (T::one() - b2) * g * g;
    });
    // PyTorch's arrangement: step size lr/(1−β₁ᵗ), denominator √v/√(1−β₂ᵗ) + ε.
    let step_size = T::of(lr / (1.0 - beta1.powi(state.step)));
    let root_c2 = T::of((1.0 - beta2.powi(state.step)).sqrt());
    let eps = T::of(eps);
    Zip::from(p)
        .and(&*m)
        .and(&*v)
        .for_each(|p, &m, &v| *p -= step_size * m / (v.sqrt() / root_c2 + eps));
}

/// Adam (Kingma & Ba), with L2 weight decay added to the gradient as PyTorch's `Adam` does.
#[derive(Clone, Debug)]
pub struct Adam<T: Float> {
    /// Learning rate (PyTorch's default 1e-3).
    pub lr: f64,
    /// `(β₁, β₂)`, default `(0.9, 0.999)`.
    pub betas: (f64, f64),
    /// ε, default 1e-8.
    pub eps: f64,
    /// L2 penalty added to the gradient, default 0.
    pub weight_decay: f64,
    states: Vec<Moments<T>>,
}

impl<T: Float> Adam<T> {
    /// Adam with PyTorch's defaults and learning rate `lr`.
    pub fn new(lr: f64) -> Self {
        Adam {
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            states: Vec::new(),
        }
    }

    /// Sets `(β₁, β₂)`.
    pub fn betas(mut self, beta1: f64, beta2: f64) -> Self {
        self.betas = (beta1, beta2);
        self
    }

    /// Sets ε.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// Sets the weight decay.
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }
}

impl<T: Float> Optimizer<T> for Adam<T> {
    fn update(&mut self, index: usize, p: &mut ArrayD<T>, g: ArrayD<T>) {
        let state = slot(&mut self.states, index);
        adam_update(state, p, g, self.lr, self.betas, self.eps, self.weight_decay, false);
    }
}

/// AdamW (Loshchilov & Hutter): Adam with weight decay applied to the parameter directly,
/// PyTorch's default `weight_decay = 0.01`.
#[derive(Clone, Debug)]
pub struct AdamW<T: Float> {
    /// Learning rate.
    pub lr: f64,
    /// `(β₁, β₂)`, default `(0.9, 0.999)`.
    pub betas: (f64, f64),
    /// ε, default 1e-8.
    pub eps: f64,
    /// Decoupled weight decay, default 0.01.
    pub weight_decay: f64,
    states: Vec<Moments<T>>,
}

impl<T: Float> AdamW<T> {
    /// AdamW with PyTorch's defaults and learning rate `lr`.
    pub fn new(lr: f64) -> Self {
        AdamW {
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.01,
            states: Vec::new(),
        }
    }

    /// Sets `(β₁, β₂)`.
    pub fn betas(mut self, beta1: f64, beta2: f64) -> Self {
        self.betas = (beta1, beta2);
        self
    }

    /// Sets ε.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// Sets the weight decay.
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }
}

impl<T: Float> Optimizer<T> for AdamW<T> {
    fn update(&mut self, index: usize, p: &mut ArrayD<T>, g: ArrayD<T>) {
        let state = slot(&mut self.states, index);
        adam_update(state, p, g, self.lr, self.betas, self.eps, self.weight_decay, true);
    }
}
