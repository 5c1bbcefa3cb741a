//! Batch-norm layers, PyTorch's `nn.BatchNorm{1,2,3}d`: an optional per-channel weight and
//! bias, running statistics kept as buffers, and a `forward` that calls
//! [`batch_norm`](crate::ops::norm::batch_norm) in the layer's mode.

use std::cell::RefCell;

use ndarray::ArrayD;

use super::{Buffer, BufferMut, Module, Parameter};
use crate::error::{Result, bad_shape, invalid};
use crate::float::Float;
use crate::ops::norm::{BatchNormOptions, RunningStats, batch_norm, check};
use crate::ops::size;
use crate::tape::Var;

/// The settings of a batch-norm layer, with PyTorch's defaults from [`BatchNormConfig::new`]:
/// `eps = 1e-5`, `momentum = Some(0.1)`, `affine = true`, `track_running_stats = true`.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNormConfig {
    /// Added to the variance before its square root, above 0.
    pub eps: f64,
    /// The weight of each batch's statistics in the running ones, in `[0, 1]`; `None` for
    /// PyTorch's cumulative average (the weight of batch `t` is `1/t`, so the running
    /// statistics are the plain mean of every batch's).
    pub momentum: Option<f64>,
    /// A learnt `weight` (ones) and `bias` (zeros) per channel.
    pub affine: bool,
    /// Keep running statistics for eval mode; without them the layer always normalises with
    /// the batch's statistics, as PyTorch does.
    pub track_running_stats: bool,
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchNormConfig {
    /// PyTorch's defaults.
    pub fn new() -> Self {
        BatchNormConfig {
            eps: 1e-5,
            momentum: Some(0.1),
            affine: true,
            track_running_stats: true,
        }
    }

    /// Sets `eps`.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// Sets the momentum (`None`: cumulative average).
    pub fn momentum(mut self, momentum: Option<f64>) -> Self {
        self.momentum = momentum;
        self
    }

    /// Sets whether the layer has a weight and a bias.
    pub fn affine(mut self, affine: bool) -> Self {
        self.affine = affine;
        self
    }

    /// Sets whether the layer keeps running statistics.
    pub fn track_running_stats(mut self, track: bool) -> Self {
        self.track_running_stats = track;
        self
    }
}

/// PyTorch's three buffers.
struct Running<T: Float> {
    mean: ArrayD<T>,
    var: ArrayD<T>,
    num_batches_tracked: i64,
}

/// Batch normalisation over the channels (axis 1) of `x`, PyTorch's `nn.BatchNorm{1,2,3}d`;
/// made by [`BatchNorm1d::new`], [`BatchNorm2d::new`] or [`BatchNorm3d::new`].
///
/// `y = (x − μ) / √(σ² + eps) · weight + bias` per channel. In training mode (the default) `μ`
/// and `σ²` are the batch's, and each forward moves the running statistics towards them:
/// `running = (1 − momentum)·running + momentum·stat`, with the unbiased variance for
/// `running_var`, and counts the batch in `num_batches_tracked`. In eval mode ([`Module::eval`])
/// `μ` and `σ²` are the running statistics, which stay as they are. A training-mode forward
/// updates them even inside [`Tape::no_grad`](crate::Tape::no_grad), as PyTorch updates them
/// under `torch.no_grad()`: the mode decides, not gradient recording.
///
/// Shapes: `x: [n, c, spatial..]` → `y` of the same shape; `weight`, `bias` and the running
/// statistics `[c]`. Parameters `weight`, `bias` and buffers `running_mean`, `running_var`,
/// `num_batches_tracked` carry PyTorch's `state_dict` names and are saved by [`super::io`].
///
/// # Example
/// ```
/// use adjoint::nn::{BatchNorm1d, BatchNormConfig, Buffer, Module};
/// use adjoint::Tape;
/// use ndarray::arr2;
///
/// let mut layer = BatchNorm1d::new::<f64>(2, BatchNormConfig::new())?;
/// let tape = Tape::new();
/// let x = tape.constant(arr2(&[[1.0, -4.0], [3.0, 4.0]]).into_dyn());
/// let y = layer.forward(x)?; // training mode: each column becomes [−1, 1] (nearly: eps)
/// assert!((y.value()[[0, 0]] + 1.0).abs() < 1e-5 && (y.value()[[1, 1]] - 1.0).abs() < 1e-5);
/// assert_eq!(layer.buffers()[2], ("num_batches_tracked".to_string(), Buffer::Count(1)));
///
/// layer.eval(); // now the running statistics normalise: mean 0.1·[2, 0], variance 0.9 + 0.1·[2, 32]
/// let y = layer.forward(x)?;
/// assert!((y.value()[[0, 0]] - (1.0 - 0.2) / (1.1f64 + 1e-5).sqrt()).abs() < 1e-12);
/// assert_eq!(layer.buffers()[2].1, Buffer::Count(1)); // eval mode counts nothing
/// # Ok::<(), adjoint::Error>(())
/// ```
pub struct BatchNorm<T: Float> {
    /// `[c]`, ones at first; `None` without `affine`.
    pub weight: Option<Parameter<T>>,
    /// `[c]`, zeros at first; `None` without `affine`.
    pub bias: Option<Parameter<T>>,
    /// `None` without `track_running_stats`.
    ///
    /// A `RefCell`, because PyTorch's layer updates these buffers in `forward`, and `forward`
    /// takes `&self` here: the model stays shared while a tape borrows its parameters (and
    /// [`Parameter`] binds itself through a `Cell` for the same reason). The mutable borrow
    /// lives only inside `forward`, around the op, which runs no code that could reach this
    /// layer again, so it is never contended; everywhere else (`buffers_mut`, loading weights)
    /// `&mut self` reaches the values with no run-time check at all. The cell makes the layer
    /// `!Sync`, as `Parameter` already makes every layer.
    running: Option<RefCell<Running<T>>>,
    num_features: usize,
    config: BatchNormConfig,
    training: bool,
    /// `"BatchNorm2d"`, for errors.
    name: &'static str,
    /// The ranks of `x` it takes: `[2, 3]` for `BatchNorm1d`, `[4]` for `BatchNorm2d`, ...
    ranks: &'static [usize],
}

impl<T: Float> BatchNorm<T> {
    fn new(name: &'static str, ranks: &'static [usize], num_features: usize, config: BatchNormConfig) -> Result<Self> {
        if num_features == 0 {
            return Err(invalid(name, "num_features", num_features, "must be at least 1"));
        }
        if !(config.eps.is_finite() && config.eps > 0.0) {
            return Err(invalid(name, "eps", config.eps, "must be a finite number above 0"));
        }
        if let Some(m) = config.momentum
            && !(0.0..=1.0).contains(&m)
        {
            return Err(invalid(
                name,
                "momentum",
                m,
                "must lie in [0, 1], or be None for a cumulative average",
            ));
        }
        let c = [num_features];
        let ones = || size::filled(name, "num_features", &c, T::one());
        let (weight, bias) = if config.affine {
            (
                Some(Parameter::new(ones()?)),
                Some(Parameter::new(size::zeros(name, "num_features", &c)?)),
            )
        } else {
            (None, None)
        };
        let running = if config.track_running_stats {
            Some(RefCell::new(Running {
                mean: size::zeros(name, "num_features", &c)?,
                var: ones()?,
                num_batches_tracked: 0,
            }))
        } else {
            None
        };
        Ok(BatchNorm {
            weight,
            bias,
            running,
            num_features,
            config,
            training: true,
            name,
            ranks,
        })
    }

    /// The number of channels, `c`.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// The settings it was made with.
    pub fn config(&self) -> &BatchNormConfig {
        &self.config
    }

    /// Refuses what PyTorch's layer refuses (and what the op would), before anything is
    /// bound or recorded: `running` is the layer's borrowed running statistics, if it keeps
    /// them.
    fn check_input(&self, shape: &[usize], running: Option<&Running<T>>, opts: &BatchNormOptions) -> Result<()> {
        if !self.ranks.contains(&shape.len()) {
            let expected: Vec<String> = self.ranks.iter().map(|r| format!("{r}D")).collect();
            return Err(bad_shape(
                self.name,
                "x",
                shape,
                format!("expected {} input (got {}D input)", expected.join(" or "), shape.len()),
            ));
        }
        // PyTorch lets a layer without weight or running statistics take any channel count;
        // a layer is made for `num_features` channels, so other counts are refused always.
        if shape[1] != self.num_features {
            return Err(bad_shape(
                self.name,
                "x",
                shape,
                format!(
                    "has {} channels, the layer num_features = {}",
                    shape[1], self.num_features
                ),
            ));
        }
        let weight = self.weight.as_ref().map(|w| w.value().shape());
        let bias = self.bias.as_ref().map(|b| b.value().shape());
        let running = running.map(|r| (r.mean.shape(), r.var.shape()));
        check(self.name, shape, weight, bias, running, opts).map(|_| ())
    }
}

impl<T: Float> Module<T> for BatchNorm<T> {
    fn forward<'t>(&self, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let mut running = self.running.as_ref().map(RefCell::borrow_mut);
        // The count this batch makes. Counted only once the batch is accepted (PyTorch counts
        // a batch it then refuses).
        let count = match &running {
            Some(r) if self.training => Some(r.num_batches_tracked.checked_add(1).ok_or_else(|| {
                invalid(
                    self.name,
                    "num_batches_tracked",
                    r.num_batches_tracked,
                    "cannot count another batch",
                )
            })?),
            _ => None,
        };
        let momentum = match (self.config.momentum, count) {
            (Some(m), _) => m,
            (None, Some(count)) => 1.0 / count as f64,
            // Not updating: unused, as in PyTorch.
            (None, None) => 0.0,
        };
        // PyTorch's `bn_training`: without running statistics there is only the batch's.
        let opts = BatchNormOptions::new()
            .training(self.training || running.is_none())
            .momentum(momentum)
            .eps(self.config.eps);
        self.check_input(&x.shape(), running.as_deref(), &opts)?;
        let tape = x.tape();
        let weight = self.weight.as_ref().map(|w| w.bind(tape));
        let bias = self.bias.as_ref().map(|b| b.bind(tape));
        let stats = running.as_deref_mut().map(|r| RunningStats {
            mean: &mut r.mean,
            var: &mut r.var,
        });
        let y = batch_norm(x, weight, bias, stats, &opts)?;
        if let (Some(r), Some(count)) = (running.as_deref_mut(), count) {
            r.num_batches_tracked = count;
        }
        Ok(y)
    }

    fn parameters(&self) -> Vec<(String, &Parameter<T>)> {
        let weight = self.weight.iter().map(|w| ("weight".to_string(), w));
        weight
            .chain(self.bias.iter().map(|b| ("bias".to_string(), b)))
            .collect()
    }

    fn parameters_mut(&mut self) -> Vec<(String, &mut Parameter<T>)> {
        let weight = self.weight.iter_mut().map(|w| ("weight".to_string(), w));
        weight
            .chain(self.bias.iter_mut().map(|b| ("bias".to_string(), b)))
            .collect()
    }

    fn buffers(&self) -> Vec<(String, Buffer<T>)> {
        let Some(running) = &self.running else {
            return Vec::new();
        };
        let running = running.borrow();
        vec![
            ("running_mean".into(), Buffer::Float(running.mean.clone())),
            ("running_var".into(), Buffer::Float(running.var.clone())),
            ("num_batches_tracked".into(), Buffer::Count(running.num_batches_tracked)),
        ]
    }

    fn buffers_mut(&mut self) -> Vec<(String, BufferMut<'_, T>)> {
        let Some(running) = &mut self.running else {
            return Vec::new();
        };
        let running = running.get_mut();
        vec![
            ("running_mean".into(), BufferMut::Float(&mut running.mean)),
            ("running_var".into(), BufferMut::Float(&mut running.var)),
            (
                "num_batches_tracked".into(),
                BufferMut::Count(&mut running.num_batches_tracked),
            ),
        ]
    }

    fn set_training(&mut self, training: bool) {
        self.training = training;
    }

    fn is_training(&self) -> bool {
        self.training
    }
}

macro_rules! ranked {
    ($name:ident, $ranks:expr, $layout:literal) => {
        #[doc = concat!("PyTorch's `nn.", stringify!($name), "`: a [`BatchNorm`] of `x: ", $layout, "`.")]
        pub struct $name;

        impl $name {
            #[doc = concat!("A new `", stringify!($name), "(num_features, ..)` layer in training mode, with PyTorch's initial values.")]
            ///
            /// # Errors
            /// [`crate::Error::InvalidArgument`] if `num_features` is 0 or too large to allocate
            /// (PyTorch accepts 0), `eps` is not a finite number above 0, or `momentum` is not
            /// in `[0, 1]` (PyTorch accepts any `eps` and `momentum` here, and refuses a
            /// non-positive `eps` only when the layer runs).
            #[allow(clippy::new_ret_no_self)] // the accepted ranks are all this type adds
            pub fn new<T: Float>(num_features: usize, config: BatchNormConfig) -> Result<BatchNorm<T>> {
                BatchNorm::new(stringify!($name), &$ranks, num_features, config)
            }
        }
    };
}

ranked!(BatchNorm1d, [2, 3], "[n, c]` or `[n, c, l]");
ranked!(BatchNorm2d, [4], "[n, c, h, w]");
ranked!(BatchNorm3d, [5], "[n, c, d, h, w]");
