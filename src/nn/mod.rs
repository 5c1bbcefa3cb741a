//! Layers for training: a [`Module`] trait, [`Parameter`]s that live across steps, and
//! [`Sequential`] to stack them.
//!
//! A parameter's value lives outside any tape. Each step, a layer *binds* it to that step's tape
//! ([`Parameter::bind`], no copy); `backward` finds its gradient; an optimizer updates the value.
//!
//! ```
//! use adjoint::nn::{Conv2d, ConvTranspose2d, Module, Relu, Sequential};
//! use adjoint::ops::conv::{ConvOptions, ConvTransposeOptions};
//! use adjoint::{mse_loss, Tape};
//! use ndarray::ArrayD;
//! use rand::{rngs::StdRng, SeedableRng};
//!
//! let mut rng = StdRng::seed_from_u64(0);
//! let model = Sequential::<f32>::new()
//!     .add(Conv2d::new(1, 4, 3, ConvOptions::new().stride(2).padding(1), &mut rng)?)
//!     .add(Relu)
//!     .add(ConvTranspose2d::new(4, 1, 3, ConvTransposeOptions::new().stride(2).padding(1).output_padding(1), &mut rng)?);
//! let tape = Tape::new();
//! let x = tape.constant(ArrayD::zeros(vec![2, 1, 8, 8]));
//! let y = model.forward(x)?;
//! assert_eq!(y.shape(), vec![2, 1, 8, 8]); // the transposed conv restores the shape
//! let grads = tape.backward(mse_loss(y, x)?)?;
//! assert!(model.parameters().iter().all(|(_, p)| p.grad(&grads).is_some()));
//! # Ok::<(), adjoint::Error>(())
//! ```

mod conv;
pub mod io;
mod linear;
mod pool;

pub use conv::{Conv, Conv1d, Conv2d, Conv3d, ConvTranspose, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d};
pub use linear::Linear;
pub use pool::{AvgPool, AvgPool1d, AvgPool2d, AvgPool3d, MaxPool, MaxPool1d, MaxPool2d, MaxPool3d};

use std::cell::Cell;
use std::rc::Rc;

use ndarray::ArrayD;
use rand::{Rng, RngExt};

use crate::error::Result;
use crate::float::Float;
use crate::ops::size;
use crate::tape::{Grads, Tape, Var};

/// A trainable array that outlives tapes.
pub struct Parameter<T: Float> {
    value: Rc<ArrayD<T>>,
    /// The tape recording and node this parameter was last bound to, so that binding twice on
    /// one tape (weight sharing) gives one node whose gradient sums both uses.
    binding: Cell<Option<(u64, usize)>>,
}

impl<T: Float> Parameter<T> {
    /// A parameter holding `value`.
    pub fn new(value: ArrayD<T>) -> Self {
        Parameter {
            value: Rc::new(value),
            binding: Cell::new(None),
        }
    }

    /// The current value.
    pub fn value(&self) -> &ArrayD<T> {
        &self.value
    }

    /// Mutable access for an optimizer. Copies only if a live tape still shares the value.
    pub fn value_mut(&mut self) -> &mut ArrayD<T> {
        Rc::make_mut(&mut self.value)
    }

    /// Puts the parameter on `tape` as a leaf wanting its gradient (once per recording).
    pub fn bind<'t>(&self, tape: &'t Tape<T>) -> Var<'t, T> {
        if let Some((key, id)) = self.binding.get()
            && key == tape.key()
            && let Some(v) = tape.var_at(id)
        {
            return v;
        }
        let v = tape.param_shared(Rc::clone(&self.value));
        self.binding.set(Some((tape.key(), v.id())));
        v
    }

    /// This parameter's gradient in `grads`, if it was bound on the tape `grads` came from.
    pub fn grad<'g>(&self, grads: &'g Grads<T>) -> Option<&'g ArrayD<T>> {
        let (key, id) = self.binding.get()?;
        grads.get_id(key, id)
    }
}

/// A layer or a model: a function of one value with named parameters.
///
/// Parameter names follow PyTorch's `state_dict` (`"weight"`, `"bias"`, `"0.weight"` inside a
/// [`Sequential`]), so saved weights load into the equivalent PyTorch model.
pub trait Module<T: Float> {
    /// Records the layer's computation on `x`'s tape.
    ///
    /// # Errors
    /// If `x` has a shape the layer cannot take.
    fn forward<'t>(&self, x: Var<'t, T>) -> Result<Var<'t, T>>;

    /// The parameters with their names, in a fixed order.
    fn parameters(&self) -> Vec<(String, &Parameter<T>)> {
        Vec::new()
    }

    /// The same parameters, mutable, in the same order.
    fn parameters_mut(&mut self) -> Vec<(String, &mut Parameter<T>)> {
        Vec::new()
    }

    /// Total number of trainable numbers.
    fn parameter_count(&self) -> usize {
        self.parameters().iter().map(|(_, p)| p.value().len()).sum()
    }
}

/// PyTorch's names for a layer's weight and optional bias, in `state_dict` order.
fn weight_and_bias<'a, T: Float>(
    weight: &'a Parameter<T>,
    bias: &'a Option<Parameter<T>>,
) -> Vec<(String, &'a Parameter<T>)> {
    std::iter::once(("weight".to_string(), weight))
        .chain(bias.iter().map(|b| ("bias".to_string(), b)))
        .collect()
}

/// [`weight_and_bias`], mutable.
fn weight_and_bias_mut<'a, T: Float>(
    weight: &'a mut Parameter<T>,
    bias: &'a mut Option<Parameter<T>>,
) -> Vec<(String, &'a mut Parameter<T>)> {
    std::iter::once(("weight".to_string(), weight))
        .chain(bias.iter_mut().map(|b| ("bias".to_string(), b)))
        .collect()
}

/// Layers applied in order; parameter names are prefixed with the layer's index, as in
/// PyTorch's `nn.Sequential` (activations count as layers).
pub struct Sequential<T: Float> {
    layers: Vec<Box<dyn Module<T>>>,
}

impl<T: Float> Default for Sequential<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Float> Sequential<T> {
    /// An empty stack.
    pub fn new() -> Self {
        Sequential { layers: Vec::new() }
    }

    /// Appends a layer.
    #[allow(clippy::should_implement_trait)] // a builder step, not arithmetic
    pub fn add(mut self, layer: impl Module<T> + 'static) -> Self {
        self.layers.push(Box::new(layer));
        self
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether there are no layers.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
}

impl<T: Float> Module<T> for Sequential<T> {
    fn forward<'t>(&self, x: Var<'t, T>) -> Result<Var<'t, T>> {
        self.layers.iter().try_fold(x, |x, layer| layer.forward(x))
    }

    fn parameters(&self) -> Vec<(String, &Parameter<T>)> {
        let mut out = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            out.extend(
                layer
                    .parameters()
                    .into_iter()
                    .map(|(name, p)| (format!("{i}.{name}"), p)),
            );
        }
        out
    }

    fn parameters_mut(&mut self) -> Vec<(String, &mut Parameter<T>)> {
        let mut out = Vec::new();
        for (i, layer) in self.layers.iter_mut().enumerate() {
            out.extend(
                layer
                    .parameters_mut()
                    .into_iter()
                    .map(|(name, p)| (format!("{i}.{name}"), p)),
            );
        }
        out
    }
}

macro_rules! activation {
    ($(#[$doc:meta])* $name:ident, |$x:ident| $body:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default)]
        pub struct $name;

        impl<T: Float> Module<T> for $name {
            fn forward<'t>(&self, $x: Var<'t, T>) -> Result<Var<'t, T>> {
                $body
            }
        }
    };
}

activation!(
    /// `max(x, 0)`, as a layer.
    Relu,
    |x| x.relu()
);
activation!(
    /// The logistic function, as a layer.
    Sigmoid,
    |x| x.sigmoid()
);
activation!(
    /// `tanh`, as a layer.
    Tanh,
    |x| x.tanh()
);

/// Leaky ReLU with the given negative slope (PyTorch's default is 0.01), as a layer.
#[derive(Clone, Copy, Debug)]
pub struct LeakyRelu(pub f64);

impl<T: Float> Module<T> for LeakyRelu {
    fn forward<'t>(&self, x: Var<'t, T>) -> Result<Var<'t, T>> {
        x.leaky_relu(self.0)
    }
}

/// Uniform values in `[−bound, bound)`: PyTorch's default initialisation draws weights with
/// `kaiming_uniform_(a = √5)`, which is `bound = 1/√fan_in`, and biases with the same bound.
///
/// # Errors
/// [`crate::Error::InvalidArgument`] if `bound` is not a finite number above 0, or `shape`
/// holds more than [`crate::ops::size::MAX_ELEMENTS`]; [`crate::Error::OutOfMemory`] if the
/// machine cannot hold it.
pub fn uniform<T: Float>(shape: &[usize], bound: f64, rng: &mut impl Rng) -> Result<ArrayD<T>> {
    if !(bound.is_finite() && bound > 0.0) {
        return Err(crate::error::invalid(
            "uniform",
            "bound",
            bound,
            "must be a finite number above 0",
        ));
    }
    let len = size::elements("uniform", "shape", shape)?;
    let values = size::collect(
        "uniform",
        "shape",
        (0..len).map(|_| T::of(rng.random_range(-bound..bound))),
    )?;
    size::array(shape, values)
}

/// PyTorch's `kaiming_uniform_(a = √5)` bound, `gain·√(3/fan_in)` with `gain = √(2/(1 + a²))`:
/// it simplifies to `1/√fan_in`.
pub fn default_bound(fan_in: usize) -> f64 {
    let a2: f64 = 5.0;
    let gain = (2.0 / (1.0 + a2)).sqrt();
    gain * (3.0 / fan_in.max(1) as f64).sqrt()
}
