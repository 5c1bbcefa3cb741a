//! Batch normalisation, PyTorch's `F.batch_norm`: each channel standardised by its mean and
//! variance, then scaled and shifted.
//!
//! In training mode the statistics are the batch's own, so every output of a channel depends on
//! every input of it, and the gradient flows back through the mean and the variance: it is
//! the upstream gradient with its own mean and its component along `x̂` removed, then scaled
//! by `σ⁻¹` (the Jacobian of standardisation is `σ⁻¹` times the projection that keeps mean
//! zero and norm fixed). In eval mode the statistics are fixed numbers and the op is an affine
//! map per channel, whose backward is the same scale: `grad_x = grad_y · w · σ⁻¹`.

use ndarray::ArrayD;

use crate::error::{Result, bad_shape, invalid};
use crate::float::Float;
use crate::ops::reduce::PartialSums;
use crate::ops::{contiguous, size};
use crate::tape::{Op, Var};

const OP: &str = "batch_norm";

/// PyTorch's `running_mean` and `running_var`, each `[c]`: read in eval mode, and updated in
/// training mode as PyTorch updates them (see [`batch_norm`]).
pub struct RunningStats<'a, T: Float> {
    /// The running mean of each channel.
    pub mean: &'a mut ArrayD<T>,
    /// The running (unbiased) variance of each channel.
    pub var: &'a mut ArrayD<T>,
}

/// The settings of [`batch_norm`]: PyTorch's `training`, `momentum` and `eps`, with PyTorch's
/// defaults (`false`, 0.1, 1e-5) from [`BatchNormOptions::new`].
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNormOptions {
    /// Normalise with the batch's statistics (and update the running ones), rather than with
    /// the running statistics.
    pub training: bool,
    /// The weight of the batch's statistics in the running statistics' update, in `[0, 1]`.
    pub momentum: f64,
    /// Added to the variance before its square root, above 0.
    pub eps: f64,
}

impl Default for BatchNormOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchNormOptions {
    /// PyTorch's defaults: eval mode, momentum 0.1, eps 1e-5.
    pub fn new() -> Self {
        BatchNormOptions {
            training: false,
            momentum: 0.1,
            eps: 1e-5,
        }
    }

    /// Sets training mode (batch statistics) or eval mode (running statistics).
    pub fn training(mut self, training: bool) -> Self {
        self.training = training;
        self
    }

    /// Sets the momentum of the running statistics' update.
    pub fn momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }

    /// Sets `eps`.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// Refuses what PyTorch refuses (`eps` ≤ 0 in training), and more: PyTorch accepts
    /// `eps` = 0 in eval mode, a NaN or infinite `eps`, and any momentum, all of which make the
    /// op or its running statistics compute NaN or diverge.
    fn check(&self, op: &'static str) -> Result<()> {
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(invalid(op, "eps", self.eps, "must be a finite number above 0"));
        }
        if !(0.0..=1.0).contains(&self.momentum) {
            return Err(invalid(op, "momentum", self.momentum, "must lie in [0, 1]"));
        }
        Ok(())
    }
}

/// The axes the statistics reduce: every axis but the channels' (axis 1).
fn reduced_axes(ndim: usize) -> Vec<usize> {
    std::iter::once(0).chain(2..ndim).collect()
}

/// `[c, 1, ..]`: a per-channel array shaped to broadcast against `x: [n, c, spatial..]`.
fn channel_shape(ndim: usize, c: usize) -> Vec<usize> {
    std::iter::once(c).chain(std::iter::repeat_n(1, ndim - 2)).collect()
}

/// Everything [`batch_norm`] refuses, from the shapes of `x`, `weight`, `bias` and the running
/// statistics (`None` where not given) and the settings alone, so that a layer can ask before
/// it binds its parameters; errors name `op`. Returns `c`.
pub(crate) fn check(
    op: &'static str,
    x: &[usize],
    weight: Option<&[usize]>,
    bias: Option<&[usize]>,
    running: Option<(&[usize], &[usize])>,
    opts: &BatchNormOptions,
) -> Result<usize> {
    if x.len() < 2 {
        return Err(bad_shape(op, "x", x, "needs at least 2 axes: [n, c, spatial..]"));
    }
    // The output has x's shape; an empty x may still be too large to describe (see `size`).
    size::elements(op, "output", x)?;
    let per_channel: usize = x.iter().enumerate().filter(|&(a, _)| a != 1).map(|(_, &d)| d).product();
    // One value has variance 0 and normalises to 0 whatever it is: PyTorch refuses it.
    if opts.training && per_channel == 1 {
        return Err(bad_shape(
            op,
            "x",
            x,
            "expected more than 1 value per channel when training",
        ));
    }
    opts.check(op)?;
    let c = x[1];
    let per_channel_arrays = [("weight", weight), ("bias", bias)].into_iter().chain([
        ("running_mean", running.map(|r| r.0)),
        ("running_var", running.map(|r| r.1)),
    ]);
    for (what, shape) in per_channel_arrays {
        if let Some(shape) = shape
            && shape != [c]
        {
            return Err(bad_shape(
                op,
                what,
                shape,
                format!("must be [c] = [{c}], one value per channel of x"),
            ));
        }
    }
    if running.is_none() && !opts.training {
        return Err(invalid(
            op,
            "running_mean",
            "None",
            "must be given in eval mode (training = false)",
        ));
    }
    Ok(c)
}

/// The batch-norm node: its inputs are `x`, then `weight` and `bias` when given.
struct BatchNorm<T: Float> {
    /// Normalised with the batch's statistics (which a recorded backward recomputes as ops of
    /// `x`, to differentiate through them), rather than the running ones.
    training: bool,
    /// The per-channel `μ` and `σ⁻¹` the forward used, the batch's or the running ones.
    mean: Vec<T>,
    inv_std: Vec<T>,
    eps: f64,
    has_weight: bool,
    has_bias: bool,
}

impl<T: Float> BatchNorm<T> {
    /// `x̂ = (x − μ)·σ⁻¹` and `σ⁻¹ = (σ² + eps)^(−½)`, shaped to broadcast against `x`. With
    /// batch statistics both are recorded ops of `x`: the gradient rule written with them is
    /// then differentiable again, through the statistics.
    fn standardised<'t>(&self, x: Var<'t, T>) -> Result<(Var<'t, T>, Var<'t, T>)> {
        if self.training {
            let axes = reduced_axes(x.ndim());
            let centred = x.sub(x.mean_axes(&axes, true)?)?;
            let variance = centred.mul(centred)?.mean_axes(&axes, true)?;
            let inv_std = variance.add_scalar(self.eps)?.powf(-0.5)?;
            Ok((centred.mul(inv_std)?, inv_std))
        } else {
            // The running statistics, shaped `[c, 1, ..]` to broadcast against `x`.
            let per_channel = |values: &[T]| size::array(&channel_shape(x.ndim(), values.len()), values.to_vec());
            let inv_std = x.constant(per_channel(&self.inv_std)?);
            Ok((x.sub(x.constant(per_channel(&self.mean)?))?.mul(inv_std)?, inv_std))
        }
    }
}

impl<T: Float> BatchNorm<T> {
    /// The backward's formulas (see [`Op::backward`] below) as numbers: one pass for the
    /// per-channel sums `Σ grad_y` and `Σ grad_y·x̂`, one for `grad_x`, each split over
    /// channels or `(sample, channel)` lanes, which the threads share with no sum crossing
    /// them, so results do not depend on the thread count. Returns the gradients of `x`,
    /// `weight` and `bias` where wanted.
    #[allow(clippy::type_complexity)]
    fn gradient_values(
        &self,
        x: Var<'_, T>,
        w: Option<Var<'_, T>>,
        grad_y: Var<'_, T>,
        want_w: bool,
        want_b: bool,
    ) -> Result<(Option<ArrayD<T>>, Option<ArrayD<T>>, Option<ArrayD<T>>)> {
        use rayon::prelude::*;
        let shape = x.shape();
        let (n, c, inner) = (shape[0], shape[1], shape[2..].iter().product::<usize>());
        let (xv, gv) = (x.value(), grad_y.value());
        let (xs, gs) = (contiguous(&xv), contiguous(&gv));
        let (mean, inv_std) = (&self.mean, &self.inv_std);
        let lane = |i: usize, k: usize| (i * c + k) * inner..(i * c + k + 1) * inner;
        // Per channel: Σ g and Σ g·x̂, each in its fixed order ([`PartialSums`]). (x̂ per
        // element, not σ⁻¹ taken out of the sum: an empty batch's σ⁻¹ is NaN, and its sums
        // must be 0.)
        let (sum_g, sum_g_x_hat): (Vec<T>, Vec<T>) = (0..c)
            .into_par_iter()
            .map(|k| {
                let (mut sg, mut sgx) = (PartialSums::new(), PartialSums::new());
                let (mean, inv_std) = (mean[k], inv_std[k]);
                for i in 0..n {
                    let (x, g) = (&xs[lane(i, k)], &gs[lane(i, k)]);
                    sg.add_pairs(&mut sgx, (g, x), |g, x| (g, g * ((x - mean) * inv_std)));
                }
                (sg.total(), sgx.total())
            })
            .unzip();

        let per_channel = |values: &[T]| size::array(&[c], values.to_vec());
        let grad_w = if want_w { Some(per_channel(&sum_g_x_hat)?) } else { None };
        let grad_b = if want_b { Some(per_channel(&sum_g)?) } else { None };
        if !x.requires_grad() {
            return Ok((None, grad_w, grad_b));
        }
        let wv = w.map(|w| w.value());
        let scale: Vec<T> = match &wv {
            Some(w) => inv_std.iter().zip(w.iter()).map(|(&r, &w)| r * w).collect(),
            None => inv_std.clone(),
        };
        let m = T::of((n * inner) as f64);
        let mut grad_x = size::uninit::<T>(OP, "grad_x", xs.len())?;
        grad_x
            .par_chunks_mut(inner.max(1))
            .enumerate()
            .with_min_len(LANES_PER_TASK.div_ceil(inner.max(1)))
            .for_each(|(r, out)| {
                let k = r % c;
                let (x, g) = (&xs[r * inner..(r + 1) * inner], &gs[r * inner..(r + 1) * inner]);
                match self.training {
                    // grad_x = σ⁻¹·w·(g − mean(g) − x̂·mean(g·x̂))
                    true => {
                        let (mean_g, mean_gx) = (sum_g[k] / m, sum_g_x_hat[k] / m);
                        let (mean, inv_std, scale) = (mean[k], inv_std[k], scale[k]);
                        for ((o, &x), &g) in out.iter_mut().zip(x).zip(g) {
                            let x_hat = (x - mean) * inv_std;
                            o.write(scale * (g - mean_g - x_hat * mean_gx));
                        }
                    }
                    // grad_x = σ⁻¹·w·g
                    false => {
                        let scale = scale[k];
                        for (o, &g) in out.iter_mut().zip(g) {
                            o.write(scale * g);
                        }
                    }
                }
            });
        // SAFETY: the lanes of `inner` values cover the buffer, and each lane's loop wrote
        // every slot of it (`x`, `g` and `out` are all `inner` long).
        let grad_x = unsafe { size::assume_init(grad_x) };
        Ok((Some(size::array(&shape, grad_x)?), grad_w, grad_b))
    }
}

/// Values per rayon task in batch norm's elementwise passes: below it the work of a task is
/// smaller than the cost of handing it to another thread.
const LANES_PER_TASK: usize = 1 << 14;

impl<T: Float> Op<T> for BatchNorm<T> {
    fn name(&self) -> String {
        let mode = match self.training {
            true => "batch statistics",
            false => "running statistics",
        };
        format!("batch_norm({mode}, eps={})", self.eps)
    }

    /// With `ĝ = grad_y·w`: `grad_b = Σ grad_y`, `grad_w = Σ grad_y·x̂` (sums over all axes
    /// but the channels'), and
    /// - batch statistics: `grad_x = σ⁻¹·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))`, the two means being
    ///   the gradient's path through the batch's mean and variance;
    /// - running statistics: `grad_x = σ⁻¹·ĝ`.
    fn backward<'t>(
        &self,
        inputs: &[Var<'t, T>],
        _y: Var<'t, T>,
        grad_y: Var<'t, T>,
    ) -> Result<Vec<Option<Var<'t, T>>>> {
        let x = inputs[0];
        let w = self.has_weight.then(|| inputs[1]);
        let b = self.has_bias.then(|| inputs[inputs.len() - 1]);
        let wants = |v: Option<Var<'t, T>>| v.is_some_and(|v| v.requires_grad());
        let (grad_x, grad_w, grad_b) = if x.tape().is_recording() {
            self.gradient_ops(x, w, grad_y, wants(w), wants(b))?
        } else {
            // Nobody will differentiate these gradients: the same formulas as numbers, in two
            // passes over the data instead of a dozen ops with an array each.
            let (grad_x, grad_w, grad_b) = self.gradient_values(x, w, grad_y, wants(w), wants(b))?;
            let var = |a: Option<ArrayD<T>>| a.map(|a| x.constant(a));
            (var(grad_x), var(grad_w), var(grad_b))
        };
        Ok(std::iter::once(grad_x)
            .chain(self.has_weight.then_some(grad_w))
            .chain(self.has_bias.then_some(grad_b))
            .collect())
    }
}

impl<T: Float> BatchNorm<T> {
    /// The backward's formulas (see [`Op::backward`] above) as recorded ops, so that they can
    /// be differentiated again. Returns the gradients of `x`, `weight` and `bias` where wanted.
    #[allow(clippy::type_complexity)]
    fn gradient_ops<'t>(
        &self,
        x: Var<'t, T>,
        w: Option<Var<'t, T>>,
        grad_y: Var<'t, T>,
        want_w: bool,
        want_b: bool,
    ) -> Result<(Option<Var<'t, T>>, Option<Var<'t, T>>, Option<Var<'t, T>>)> {
        let axes = reduced_axes(x.ndim());
        let standardised = if x.requires_grad() || want_w {
            Some(self.standardised(x)?)
        } else {
            None
        };
        let grad_w = match (want_w, standardised) {
            (true, Some((x_hat, _))) => Some(grad_y.mul(x_hat)?.sum_axes(&axes, false)?),
            _ => None,
        };
        let grad_b = want_b.then(|| grad_y.sum_axes(&axes, false)).transpose()?;
        let grad_x = match (x.requires_grad(), standardised) {
            (true, Some((x_hat, inv_std))) => {
                let g = match w {
                    Some(w) => grad_y.mul(w.reshape(&channel_shape(x.ndim(), w.shape()[0]))?)?,
                    None => grad_y,
                };
                let g = if self.training {
                    let along_x_hat = x_hat.mul(g.mul(x_hat)?.mean_axes(&axes, true)?)?;
                    g.sub(g.mean_axes(&axes, true)?)?.sub(along_x_hat)?
                } else {
                    g
                };
                Some(g.mul(inv_std)?)
            }
            _ => None,
        };
        Ok((grad_x, grad_w, grad_b))
    }
}

/// Per-channel sums of `x: [n, c, inner]` (row-major): the mean, and the sum of squared
/// deviations from it (two passes, for accuracy). Each is summed in an order fixed by the
/// shape ([`PartialSums`]), so the results are the same bits on every run and thread count.
fn channel_moments<T: Float>(x: &[T], n: usize, c: usize, inner: usize) -> (Vec<T>, Vec<T>) {
    use rayon::prelude::*;
    let count = T::of((n * inner) as f64);
    let lanes = |k: usize| (0..n).map(move |i| &x[(i * c + k) * inner..(i * c + k + 1) * inner]);
    // One channel per task: each sum stays in one thread, in its one order.
    (0..c)
        .into_par_iter()
        .map(|k| {
            let mut sum = PartialSums::new();
            lanes(k).for_each(|lane| sum.add(lane, |v| v));
            let mean = sum.total() / count;
            let mut squares = PartialSums::new();
            lanes(k).for_each(|lane| squares.add(lane, |v| (v - mean) * (v - mean)));
            (mean, squares.total())
        })
        .unzip()
}

/// Batch normalisation (PyTorch's `F.batch_norm`), per channel `c`:
///
/// ```text
/// y = (x − μ_c) / √(σ²_c + eps) · w_c + b_c
/// ```
///
/// In training mode `μ_c` and `σ²_c` are the mean and the biased variance of the batch over
/// every axis but 1, and `running` (if given) is updated as PyTorch updates it:
/// `running = (1 − momentum)·running + momentum·stat`, with the unbiased variance
/// (`σ²·m/(m − 1)` for `m` values per channel) for `running.var`. It is updated whatever the
/// tape's recording state, as PyTorch updates it under `torch.no_grad()`; an empty batch
/// leaves it as it is. In eval mode `μ` and `σ²` are `running`'s, which is required.
/// `weight` and `bias` are optional (PyTorch's `affine=False` passes neither).
///
/// The gradient flows to `x`, `weight` and `bias` (not to the running statistics); in
/// training mode it flows through the batch statistics too. Gradient rules are written with
/// ops, so second derivatives work.
///
/// Shapes: `x: [n, c, spatial..]` (any number of spatial axes, none for `[n, c]`),
/// `weight`, `bias`, `running.mean`, `running.var`: `[c]` → `y`: the shape of `x`.
///
/// # Errors
/// - [`Error::BadShape`](crate::Error::BadShape) if `x` has fewer than 2 axes, if `weight`,
///   `bias` or a running statistic is not `[c]`, or in training mode if a channel has a single
///   value (`n · Π spatial = 1`), as PyTorch;
/// - [`Error::InvalidArgument`](crate::Error::InvalidArgument) if `eps` is not a finite number
///   above 0 or `momentum` not in `[0, 1]`, in eval mode without `running`, or if `x` spans
///   more than [`MAX_ELEMENTS`](crate::ops::size::MAX_ELEMENTS) (even empty, as every op);
/// - [`Error::MixedTapes`](crate::Error::MixedTapes) if the inputs live on different tapes.
///
/// Nothing is recorded and `running` is unchanged when an error is returned.
///
/// # Example
/// ```
/// use adjoint::ops::norm::{batch_norm, BatchNormOptions, RunningStats};
/// use adjoint::Tape;
/// use ndarray::{arr1, arr2};
///
/// let tape = Tape::<f64>::new();
/// let x = tape.param(arr2(&[[1.0, 10.0], [3.0, 10.0]]).into_dyn()); // [n = 2, c = 2]
/// let (mut mean, mut var) = (arr1(&[0.0, 0.0]).into_dyn(), arr1(&[1.0, 1.0]).into_dyn());
/// let running = RunningStats { mean: &mut mean, var: &mut var };
/// let y = batch_norm(x, None, None, Some(running), &BatchNormOptions::new().training(true).eps(1e-12))?;
/// // Channel 0 has mean 2 and variance 1: it becomes [−1, 1]; channel 1 is constant: 0.
/// assert!((y.value()[[0, 0]] + 1.0).abs() < 1e-9 && y.value()[[1, 1]] == 0.0);
/// // The running statistics moved a tenth of the way to the batch's (unbiased variance 2).
/// assert!((mean[0] - 0.2).abs() < 1e-15 && (var[0] - 1.1).abs() < 1e-15);
/// # Ok::<(), adjoint::Error>(())
/// ```
pub fn batch_norm<'t, T: Float>(
    x: Var<'t, T>,
    weight: Option<Var<'t, T>>,
    bias: Option<Var<'t, T>>,
    running: Option<RunningStats<'_, T>>,
    opts: &BatchNormOptions,
) -> Result<Var<'t, T>> {
    let inputs: Vec<Var<'t, T>> = [Some(x), weight, bias].into_iter().flatten().collect();
    x.tape().check_inputs(OP, &inputs)?;
    let shape = x.shape();
    let (w_shape, b_shape) = (weight.map(|w| w.shape()), bias.map(|b| b.shape()));
    let running_shapes = running.as_ref().map(|r| (r.mean.shape(), r.var.shape()));
    let c = check(OP, &shape, w_shape.as_deref(), b_shape.as_deref(), running_shapes, opts)?;

    let xv = x.value();
    let xs = contiguous(&xv);
    let (n, inner) = (shape[0], shape[2..].iter().product::<usize>());
    let per_channel = n * inner;
    let eps = T::of(opts.eps);
    let (mean, var, squares) = if opts.training {
        let (mean, squares) = channel_moments(xs, n, c, inner);
        let count = T::of(per_channel as f64);
        let var = squares.iter().map(|&s| s / count).collect::<Vec<T>>();
        (mean, var, Some(squares))
    } else {
        let r = running.as_ref().expect("checked: eval mode has running statistics");
        (r.mean.iter().copied().collect(), r.var.iter().copied().collect(), None)
    };
    let inv_std: Vec<T> = var.iter().map(|&v| T::one() / (v + eps).sqrt()).collect();

    // y = (x − μ)·(σ⁻¹·w) + b, one channel's run of `inner` values at a time.
    let (wv, bv) = (weight.map(|w| w.value()), bias.map(|b| b.value()));
    let scale: Vec<T> = match &wv {
        Some(w) => inv_std.iter().zip(w.iter()).map(|(&s, &w)| s * w).collect(),
        None => inv_std.clone(),
    };
    let shift: Vec<T> = match &bv {
        Some(b) => b.iter().copied().collect(),
        None => vec![T::zero(); c],
    };
    let mut y = size::uninit::<T>(OP, "output", xs.len())?;
    {
        use rayon::prelude::*;
        // One `(sample, channel)` lane per task, in any order: no value depends on another.
        y.par_chunks_mut(inner.max(1))
            .zip(xs.par_chunks(inner.max(1)))
            .enumerate()
            .with_min_len(LANES_PER_TASK.div_ceil(inner.max(1)))
            .for_each(|(r, (out, lane))| {
                let k = r % c;
                let (mean, scale, shift) = (mean[k], scale[k], shift[k]);
                for (o, &v) in out.iter_mut().zip(lane) {
                    o.write((v - mean) * scale + shift);
                }
            });
    }
    // SAFETY: the lanes of `inner` values cover the buffer, and each lane's loop wrote every
    // slot of it (`out` and `lane` are both `inner` long).
    let y = size::array(&shape, unsafe { size::assume_init(y) })?;

    // Only now that nothing else can fail (an error leaves them as they were); an empty batch
    // has no statistics to move towards.
    if let (Some(r), Some(squares)) = (running, &squares)
        && per_channel > 0
    {
        let (m, unbiased) = (T::of(opts.momentum), T::of(per_channel as f64 - 1.0));
        for (running, &batch) in r.mean.iter_mut().zip(&mean) {
            *running = m * batch + (T::one() - m) * *running;
        }
        for (running, &s) in r.var.iter_mut().zip(squares) {
            *running = m * (s / unbiased) + (T::one() - m) * *running;
        }
    }

    let op = BatchNorm {
        training: opts.training,
        mean,
        inv_std,
        eps: opts.eps,
        has_weight: weight.is_some(),
        has_bias: bias.is_some(),
    };
    x.tape().record(y, &inputs, op)
}
