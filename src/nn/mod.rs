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
mod norm;
mod pool;
mod shape;
mod upsample;

pub use conv::{Conv, Conv1d, Conv2d, Conv3d, ConvTranspose, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d};
pub use linear::Linear;
pub use norm::{BatchNorm, BatchNorm1d, BatchNorm2d, BatchNorm3d, BatchNormConfig};
pub use pool::{AvgPool, AvgPool1d, AvgPool2d, AvgPool3d, MaxPool, MaxPool1d, MaxPool2d, MaxPool3d};
pub use shape::{Flatten, Unflatten};
pub use upsample::Upsample;

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

/// A module's state that is saved with its parameters but not trained: PyTorch's buffers, such
/// as a batch norm's `running_mean`, `running_var` and `num_batches_tracked`.
#[derive(Clone, Debug, PartialEq)]
pub enum Buffer<T: Float> {
    /// Values of the model's element type, saved as its parameters are (`F32` or `F64`).
    Float(ArrayD<T>),
    /// A count, saved as PyTorch saves `num_batches_tracked`: a 0-d `int64` tensor (`I64`).
    Count(i64),
}

/// Write access to a [`Buffer`] in its module, for loading weights.
#[derive(Debug)]
pub enum BufferMut<'a, T: Float> {
    /// Values of the model's element type.
    Float(&'a mut ArrayD<T>),
    /// A count.
    Count(&'a mut i64),
}

/// A layer or a model: a function of one value with named parameters and buffers, and a
/// training / eval mode.
///
/// Names follow PyTorch's `state_dict` (`"weight"`, `"bias"`, `"running_mean"`, `"0.weight"`
/// inside a [`Sequential`]), so saved weights load into the equivalent PyTorch model.
///
/// Every method but `forward` has a default for a layer without that feature: no parameters,
/// no buffers, and a mode it ignores (its forward is the same in both). A module holding other
/// modules forwards each call to them, as [`Sequential`] does.
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

    /// The buffers with their names, as copies (a layer may update its buffers inside
    /// `forward`, which takes `&self`, so it cannot lend them out), in a fixed order.
    fn buffers(&self) -> Vec<(String, Buffer<T>)> {
        Vec::new()
    }

    /// The same buffers, writable, in the same order.
    fn buffers_mut(&mut self) -> Vec<(String, BufferMut<'_, T>)> {
        Vec::new()
    }

    /// The names PyTorch's `state_dict()` lists, in its order: each module's parameters, then
    /// its buffers, modules in the order they were added. (A safetensors file is keyed by name,
    /// so the order shows only in listings and in which bad value an error reports first.)
    fn state_dict_keys(&self) -> Vec<String> {
        let parameters = self.parameters().into_iter().map(|(name, _)| name);
        parameters
            .chain(self.buffers().into_iter().map(|(name, _)| name))
            .collect()
    }

    /// Sets training mode (`true`) or eval mode (`false`), PyTorch's `module.train(mode)`: a
    /// batch norm normalises with the batch's statistics in training mode and with its running
    /// statistics in eval mode. A layer without a mode ignores it.
    fn set_training(&mut self, training: bool) {
        let _ = training;
    }

    /// Whether the module is in training mode. A layer without a mode keeps no flag and
    /// answers `true`, PyTorch's default for a new module; ask its container instead.
    fn is_training(&self) -> bool {
        true
    }

    /// Training mode: `set_training(true)` (PyTorch's `model.train()`).
    fn train(&mut self) {
        self.set_training(true);
    }

    /// Eval mode: `set_training(false)` (PyTorch's `model.eval()`).
    fn eval(&mut self) {
        self.set_training(false);
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

/// Layers applied in order; parameter and buffer names are prefixed with the layer's index, as
/// in PyTorch's `nn.Sequential` (activations count as layers). Its mode is its own flag, and
/// setting it sets every layer's.
pub struct Sequential<T: Float> {
    layers: Vec<Box<dyn Module<T>>>,
    training: bool,
}

impl<T: Float> Default for Sequential<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Float> Sequential<T> {
    /// An empty stack, in training mode.
    pub fn new() -> Self {
        Sequential {
            layers: Vec::new(),
            training: true,
        }
    }

    /// Appends a layer, as it is: like PyTorch's `append`, this does not change its mode.
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

/// Each layer's entries with its index prefixed to their names: `"weight"` of layer 0 is
/// `"0.weight"`.
fn prefixed<E>(per_layer: impl Iterator<Item = Vec<(String, E)>>) -> Vec<(String, E)> {
    per_layer
        .enumerate()
        .flat_map(|(i, entries)| entries.into_iter().map(move |(name, e)| (format!("{i}.{name}"), e)))
        .collect()
}

impl<T: Float> Module<T> for Sequential<T> {
    fn forward<'t>(&self, x: Var<'t, T>) -> Result<Var<'t, T>> {
        self.layers.iter().try_fold(x, |x, layer| layer.forward(x))
    }

    fn parameters(&self) -> Vec<(String, &Parameter<T>)> {
        prefixed(self.layers.iter().map(|layer| layer.parameters()))
    }

    fn parameters_mut(&mut self) -> Vec<(String, &mut Parameter<T>)> {
        prefixed(self.layers.iter_mut().map(|layer| layer.parameters_mut()))
    }

    fn buffers(&self) -> Vec<(String, Buffer<T>)> {
        prefixed(self.layers.iter().map(|layer| layer.buffers()))
    }

    fn buffers_mut(&mut self) -> Vec<(String, BufferMut<'_, T>)> {
        prefixed(self.layers.iter_mut().map(|layer| layer.buffers_mut()))
    }

    /// Layer by layer, so that each layer's buffers follow its own parameters.
    fn state_dict_keys(&self) -> Vec<String> {
        let per_layer = self.layers.iter().enumerate();
        per_layer
            .flat_map(|(i, layer)| layer.state_dict_keys().into_iter().map(move |k| format!("{i}.{k}")))
            .collect()
    }

    fn set_training(&mut self, training: bool) {
        self.training = training;
        for layer in &mut self.layers {
            layer.set_training(training);
        }
    }

    fn is_training(&self) -> bool {
        self.training
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
    let ok = bound.is_finite() && bound > 0.0;
    random_array(
        ("uniform", "bound", bound, "must be a finite number above 0"),
        ok,
        shape,
        || rng.random_range(-bound..bound),
    )
}

/// Normal values with mean 0 and standard deviation `std`, drawn by Box–Muller from `rng`: the
/// noise of a VAE's reparameterisation (`z = μ + σ·ε`) and a GAN's latent codes. The same `rng`
/// state gives the same values; they are not PyTorch's `randn` stream.
///
/// # Errors
/// [`crate::Error::InvalidArgument`] if `std` is not a finite number ≥ 0, or `shape` holds more
/// than [`crate::ops::size::MAX_ELEMENTS`]; [`crate::Error::OutOfMemory`] if the machine cannot
/// hold it.
pub fn normal<T: Float>(shape: &[usize], std: f64, rng: &mut impl Rng) -> Result<ArrayD<T>> {
    let ok = std.is_finite() && std >= 0.0;
    random_array(
        ("normal", "std", std, "must be a finite number ≥ 0"),
        ok,
        shape,
        || {
            // 1 − u lies in (0, 1], so the logarithm is finite.
            let u1: f64 = 1.0 - rng.random::<f64>();
            let u2: f64 = rng.random::<f64>();
            std * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        },
    )
}

/// An array of `shape` filled by `draw` in row-major order, after the one setting a random
/// initialiser takes is checked (`ok`, else the error `setting` describes).
fn random_array<T: Float>(
    (op, parameter, value, rule): (&'static str, &'static str, f64, &'static str),
    ok: bool,
    shape: &[usize],
    mut draw: impl FnMut() -> f64,
) -> Result<ArrayD<T>> {
    if !ok {
        return Err(crate::error::invalid(op, parameter, value, rule));
    }
    let len = size::elements(op, "shape", shape)?;
    let values = size::collect(op, "shape", (0..len).map(|_| T::of(draw())))?;
    size::array(shape, values)
}

/// PyTorch's `kaiming_uniform_(a = √5)` bound, `gain·√(3/fan_in)` with `gain = √(2/(1 + a²))`:
/// it simplifies to `1/√fan_in`.
pub fn default_bound(fan_in: usize) -> f64 {
    let a2: f64 = 5.0;
    let gain = (2.0 / (1.0 + a2)).sqrt();
    gain * (3.0 / fan_in.max(1) as f64).sqrt()
}
