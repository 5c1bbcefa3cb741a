//! Losses, and the softmax family they use. Each is written to stay finite for large logits.

use std::rc::Rc;

use ndarray::{ArrayD, AsArray, Axis, Dimension, IxDyn};

use crate::error::{Error, Result, bad_shape, invalid};
use crate::float::Float;
use crate::ops::{check_axis, contiguous, parallel, size};
use crate::tape::{Op, Var};

fn same_shape<T: Float>(op: &'static str, a: Var<'_, T>, b: Var<'_, T>) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(Error::ShapeMismatch {
            op,
            lhs: a.shape(),
            rhs: b.shape(),
            reason: "prediction and target must have the same shape".into(),
        });
    }
    Ok(())
}

/// Mean squared error `mean((pred − target)²)`, PyTorch's `MSELoss()`.
///
/// # Errors
/// [`Error::ShapeMismatch`] if the shapes differ (no silent broadcasting).
pub fn mse_loss<'t, T: Float>(pred: Var<'t, T>, target: Var<'t, T>) -> Result<Var<'t, T>> {
    same_shape("mse_loss", pred, target)?;
    let d = pred.sub(target)?;
    d.mul(d)?.mean()
}

/// Binary cross-entropy on logits, averaged: PyTorch's `BCEWithLogitsLoss()`.
///
/// Per element `(1 − t)·z − ln σ(z)` with `ln σ(z) = min(z, 0) − ln(1 + e^(−|z|))`, which
/// equals `−t·ln σ(z) − (1−t)·ln(1−σ(z))` but never overflows: PyTorch's formula, so infinite
/// logits give what PyTorch gives (`z = +∞, t = 0`: +∞; `z = −∞, t = 0`: NaN).
///
/// # Errors
/// [`Error::ShapeMismatch`] if the shapes differ.
pub fn bce_with_logits<'t, T: Float>(logits: Var<'t, T>, target: Var<'t, T>) -> Result<Var<'t, T>> {
    bce(logits, target, None)
}

/// [`bce_with_logits`] with each element's loss scaled by `weight` before the mean:
/// `mean(w ⊙ ℓ(z, t))`, PyTorch's `F.binary_cross_entropy_with_logits(z, t, weight = w)`.
/// `weight` is a constant (no gradient flows to it) that broadcasts against the logits, e.g.
/// `1 + α·t` to count the rare positive pixels of a heat map more.
///
/// # Errors
/// [`Error::ShapeMismatch`] if the logits' and target's shapes differ or `weight` does not
/// broadcast to them.
///
/// # Example
/// ```
/// use adjoint::ops::loss::bce_with_logits_weighted;
/// use adjoint::Tape;
/// use ndarray::arr1;
///
/// let tape = Tape::<f64>::new();
/// let z = tape.param(arr1(&[0.0, 0.0]).into_dyn());
/// let t = tape.constant(arr1(&[1.0, 0.0]).into_dyn());
/// // ln 2 per element; the first counts three times: (3 + 1)·ln 2 / 2.
/// let loss = bce_with_logits_weighted(z, t, &arr1(&[3.0, 1.0]).into_dyn())?;
/// assert!((loss.value()[[]] - 2.0 * 2f64.ln()).abs() < 1e-15);
/// let grads = tape.backward(loss)?;
/// assert_eq!(grads[z].as_slice().unwrap(), &[3.0 * (0.5 - 1.0) / 2.0, 0.5 / 2.0]); // w(σ(z) − t)/n
/// # Ok::<(), adjoint::Error>(())
/// ```
pub fn bce_with_logits_weighted<'t, T: Float>(
    logits: Var<'t, T>,
    target: Var<'t, T>,
    weight: &ArrayD<T>,
) -> Result<Var<'t, T>> {
    let shape = logits.shape();
    let Some(weight) = weight.broadcast(IxDyn(&shape)) else {
        return Err(Error::ShapeMismatch {
            op: "bce_with_logits_weighted",
            lhs: shape,
            rhs: weight.shape().to_vec(),
            reason: "weight does not broadcast to the logits".into(),
        });
    };
    bce(logits, target, Some(Rc::new(weight.to_owned())))
}

/// The loss of [`bce_with_logits`] and [`bce_with_logits_weighted`] (`weight` already of the
/// logits' shape).
fn bce<'t, T: Float>(logits: Var<'t, T>, target: Var<'t, T>, weight: Option<Rc<ArrayD<T>>>) -> Result<Var<'t, T>> {
    same_shape("bce_with_logits", logits, target)?;
    let (z, t) = (logits.value(), target.value());
    let n = T::of(z.len() as f64);
    let loss = |&z: &T, &t: &T| (T::one() - t) * z - (z.min(T::zero()) - (-z.abs()).exp().ln_1p());
    let total = match &weight {
        None => z
            .iter()
            .zip(t.iter())
            .map(|(z, t)| loss(z, t))
            .fold(T::zero(), |a, b| a + b),
        Some(w) => z
            .iter()
            .zip(t.iter())
            .zip(w.iter())
            .map(|((z, t), &w)| w * loss(z, t))
            .fold(T::zero(), |a, b| a + b),
    };
    let y = ArrayD::from_elem(IxDyn(&[]), total / n);
    logits.tape().record(y, &[logits, target], BceWithLogits { weight })
}

struct BceWithLogits<T: Float> {
    /// Each element's weight, of the logits' shape; `None` for all 1.
    weight: Option<Rc<ArrayD<T>>>,
}

impl<T: Float> Op<T> for BceWithLogits<T> {
    fn name(&self) -> String {
        match self.weight {
            None => "bce_with_logits".into(),
            Some(_) => "bce_with_logits_weighted".into(),
        }
    }

    /// `∂/∂z = w·(σ(z) − t)/n`, `∂/∂t = −w·z/n` (`w = 1` unweighted).
    fn backward<'t>(&self, inputs: &[Var<'t, T>], _y: Var<'t, T>, g: Var<'t, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        let (z, t) = (inputs[0], inputs[1]);
        let inv_n = 1.0 / z.value().len() as f64;
        let weighted = |v: Var<'t, T>| match &self.weight {
            Some(w) => v.mul(z.constant((**w).clone())),
            None => Ok(v),
        };
        let grad_z = z
            .requires_grad()
            .then(|| weighted(z.sigmoid()?.sub(t)?)?.mul_scalar(inv_n)?.mul(g))
            .transpose()?;
        let grad_t = t
            .requires_grad()
            .then(|| weighted(z.mul_scalar(-inv_n)?)?.mul(g))
            .transpose()?;
        Ok(vec![grad_z, grad_t])
    }
}

struct LogSoftmax {
    axis: usize,
}

impl<T: Float> Op<T> for LogSoftmax {
    fn name(&self) -> String {
        format!("log_softmax(axis={})", self.axis)
    }

    /// `y = x − logsumexp(x)`, so `∂/∂x = g − softmax(x)·Σg`, and `softmax(x) = eʸ`.
    fn backward<'t>(&self, _inputs: &[Var<'t, T>], y: Var<'t, T>, g: Var<'t, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        let total = g.sum_axes(&[self.axis], true)?;
        Ok(vec![Some(g.sub(y.exp()?.mul(total)?)?)])
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// `ln softmax(x)` along `axis`, computed as `x − max − ln Σ e^(x − max)` so it never
    /// overflows.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the axis is out of range.
    pub fn log_softmax(self, axis: usize) -> Result<Var<'t, T>> {
        check_axis("log_softmax", axis, self.ndim())?;
        let x = self.value();
        let max = x
            .fold_axis(Axis(axis), T::neg_infinity(), |&a, &b| a.max(b))
            .insert_axis(Axis(axis));
        let shifted = &*x - &max;
        let lse = shifted
            .mapv(|v| v.exp())
            .sum_axis(Axis(axis))
            .mapv(|s| s.ln())
            .insert_axis(Axis(axis));
        let y = shifted - &lse;
        self.tape().record(y, &[self], LogSoftmax { axis })
    }

    /// `softmax(x)` along `axis`: `e^(log_softmax(x))`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the axis is out of range.
    pub fn softmax(self, axis: usize) -> Result<Var<'t, T>> {
        self.log_softmax(axis)?.exp()
    }
}

/// Softmax cross-entropy of logits `[n, classes]` against target probabilities `[n, classes]`
/// (one-hot rows for hard labels), averaged over the batch: PyTorch's `CrossEntropyLoss()`.
/// For class-index targets (per pixel too), weights and `ignore_index`, see [`cross_entropy`].
///
/// # Errors
/// [`Error::BadShape`] if the logits are not 2-D, [`Error::ShapeMismatch`] if the shapes differ.
pub fn softmax_cross_entropy<'t, T: Float>(logits: Var<'t, T>, target: Var<'t, T>) -> Result<Var<'t, T>> {
    let shape = logits.shape();
    if shape.len() != 2 {
        return Err(bad_shape(
            "softmax_cross_entropy",
            "logits",
            &shape,
            "must be [n, classes]",
        ));
    }
    same_shape("softmax_cross_entropy", logits, target)?;
    // Up front: several nodes follow, and none may be recorded if this fails.
    logits.tape().check_inputs("softmax_cross_entropy", &[logits, target])?;
    let n = shape[0] as f64;
    target.mul(logits.log_softmax(1)?)?.sum()?.mul_scalar(-1.0 / n)
}

/// One-hot rows `[labels.len(), classes]` for integer class labels, as a constant.
///
/// # Errors
/// [`Error::InvalidArgument`] if a label is not below `classes`.
pub fn one_hot<'t, T: Float>(tape: &'t crate::Tape<T>, labels: &[usize], classes: usize) -> Result<Var<'t, T>> {
    let mut y = size::zeros("one_hot", "output", &[labels.len(), classes])?;
    for (i, &c) in labels.iter().enumerate() {
        if c >= classes {
            return Err(invalid(
                "one_hot",
                "labels",
                c,
                format!("must be below classes = {classes}"),
            ));
        }
        y[[i, c]] = T::one();
    }
    Ok(tape.constant(y))
}

// ---------------------------------------------------------------------------------------------
// Cross-entropy with class-index targets
// ---------------------------------------------------------------------------------------------

/// How a loss folds its per-element values into its output: PyTorch's `reduction`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// The (weighted) mean: PyTorch's `'mean'`, the default.
    #[default]
    Mean,
    /// The sum: `'sum'`.
    Sum,
    /// No reduction, one loss per element: `'none'`.
    None,
}

/// Settings of [`cross_entropy`], with PyTorch's names and defaults: no class weights,
/// `ignore_index = −100`, mean reduction, no label smoothing.
///
/// ```
/// use adjoint::ops::loss::{CrossEntropyOptions, Reduction};
/// let opts = CrossEntropyOptions::new().weight([1.0, 4.0]).ignore_index(255).reduction(Reduction::Sum);
/// assert_eq!(opts.weight, Some(vec![1.0, 4.0]));
/// assert_eq!(CrossEntropyOptions::default().ignore_index, -100);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct CrossEntropyOptions {
    /// A weight per class (`[classes]`), a constant: PyTorch refuses a gradient for it. Any
    /// values are taken, negative or non-finite too, as PyTorch takes them.
    pub weight: Option<Vec<f64>>,
    /// Targets equal to this contribute nothing, not even to the mean's denominator.
    pub ignore_index: i64,
    /// How the per-element losses are reduced.
    pub reduction: Reduction,
    /// `ε` in `[0, 1]`: the target becomes `(1 − ε)·onehot + ε/classes`. As in PyTorch, only a
    /// value above 0 smooths (0, a negative value and NaN all leave the targets as they are),
    /// and only then is a value above 1 refused.
    pub label_smoothing: f64,
}

impl Default for CrossEntropyOptions {
    fn default() -> Self {
        CrossEntropyOptions {
            weight: None,
            ignore_index: -100,
            reduction: Reduction::Mean,
            label_smoothing: 0.0,
        }
    }
}

impl CrossEntropyOptions {
    /// PyTorch's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// A weight per class.
    pub fn weight(mut self, weight: impl Into<Vec<f64>>) -> Self {
        self.weight = Some(weight.into());
        self
    }

    /// The target value that marks an element to ignore.
    pub fn ignore_index(mut self, ignore_index: i64) -> Self {
        self.ignore_index = ignore_index;
        self
    }

    /// How the per-element losses are reduced.
    pub fn reduction(mut self, reduction: Reduction) -> Self {
        self.reduction = reduction;
        self
    }

    /// Label smoothing `ε`.
    pub fn label_smoothing(mut self, label_smoothing: f64) -> Self {
        self.label_smoothing = label_smoothing;
        self
    }
}

/// The validated call, shared by the loss node and its gradient node: where each element's
/// classes lie in the flat logits, its target, and the settings as `T`.
///
/// The logits `[n, classes, d..]` are read as `[n, classes, inner]` with `inner = Π d`: element
/// `e = b·inner + s` has its class `c` at `(b·classes + c)·inner + s`.
struct CrossEntropyPlan<T> {
    classes: usize,
    inner: usize,
    /// The class axis of the logits: 0 unbatched, 1 otherwise.
    class_axis: usize,
    /// Per element: its class, or `None` where the target is `ignore_index`.
    targets: Vec<Option<usize>>,
    weight: Option<Vec<T>>,
    /// `Σ_c w_c`, the smoothing part's total weight.
    class_weight_sum: T,
    /// `Σ w[t]` over the elements not ignored: the mean's denominator.
    total_weight: T,
    /// `ε`, when above 0.
    smoothing: Option<T>,
    reduction: Reduction,
    /// The output's shape: `[]`, or the target's shape for [`Reduction::None`].
    out_shape: Vec<usize>,
}

impl<T: Float> CrossEntropyPlan<T> {
    fn w(&self, c: usize) -> T {
        self.weight.as_ref().map_or(T::one(), |w| w[c])
    }

    /// Position of element `e`'s class 0 in the flat logits; its classes follow `inner` apart.
    fn first_class(&self, e: usize) -> usize {
        (e / self.inner * self.classes) * self.inner + e % self.inner
    }
}

/// Checks the call as PyTorch does, before any work, into the plan the kernels trust.
fn cross_entropy_plan<T: Float>(
    logits: &[usize],
    target: ndarray::ArrayViewD<'_, i64>,
    opts: &CrossEntropyOptions,
) -> Result<CrossEntropyPlan<T>> {
    const OP: &str = "cross_entropy";
    if logits.is_empty() {
        return Err(bad_shape(
            OP,
            "logits",
            logits,
            "needs a class axis: [classes], [n, classes] or [n, classes, d..]",
        ));
    }
    let mismatch = |reason: String| Error::ShapeMismatch {
        op: OP,
        lhs: logits.to_vec(),
        rhs: target.shape().to_vec(),
        reason,
    };
    if target.shape() == logits {
        // PyTorch reads a target of the logits' shape as class probabilities, and refuses them
        // unless they are floating point.
        return Err(mismatch(
            "class-index targets cannot have the logits' shape (PyTorch would read them as class \
             probabilities: see softmax_cross_entropy)"
                .into(),
        ));
    }
    let smoothing = (opts.label_smoothing > 0.0).then_some(opts.label_smoothing);
    let unbatched = logits.len() == 1;
    let (class_axis, classes) = if unbatched { (0, logits[0]) } else { (1, logits[1]) };
    let out_shape = if unbatched {
        if target.ndim() != 0 {
            // PyTorch's forward also takes `[1]`, but its backward refuses it (and so does its
            // forward with label smoothing): one rule here.
            return Err(mismatch("logits [classes] take a 0-d target".into()));
        }
        Vec::new()
    } else {
        let expected: Vec<usize> = [logits[0]].into_iter().chain(logits[2..].iter().copied()).collect();
        if target.shape() != expected {
            return Err(mismatch(format!(
                "logits [n, classes, d..] take targets [n, d..] = {expected:?}"
            )));
        }
        expected
    };
    if let Some(eps) = smoothing
        && eps > 1.0
    {
        return Err(invalid(OP, "label_smoothing", eps, "must be between 0.0 and 1.0"));
    }
    let weight = match &opts.weight {
        Some(w) if w.len() != classes => {
            return Err(bad_shape(
                OP,
                "weight",
                &[w.len()],
                format!("must be defined for all {classes} classes or none"),
            ));
        }
        Some(w) => Some(w.iter().map(|&v| T::of(v)).collect::<Vec<T>>()),
        None => None,
    };
    // Not `size::elements`: an empty batch may have spatial sizes beyond its bound, and its
    // output is then as empty as the target the caller already holds.
    let inner = logits[class_axis + 1..]
        .iter()
        .try_fold(1, |a, &d| size::mul(OP, "logits", a, d))?;
    let w = |c: usize| weight.as_ref().map_or(T::one(), |w: &Vec<T>| w[c]);
    let mut targets = size::reserve(OP, "target", target.len())?;
    let mut total_weight = T::zero();
    for (e, &t) in target.iter().enumerate() {
        if t == opts.ignore_index {
            targets.push(None);
            continue;
        }
        match usize::try_from(t) {
            Ok(c) if c < classes => {
                total_weight += w(c);
                targets.push(Some(c));
            }
            _ => {
                let at = crate::ops::unravel(e, target.shape());
                let reason = format!(
                    "Target {t} (at {at:?}) is out of bounds: must lie in 0..{classes} or equal \
                     ignore_index = {}",
                    opts.ignore_index
                );
                return Err(invalid(OP, "target", t, reason));
            }
        }
    }
    // Without weights, `classes` itself: an empty batch may have 2^60 classes.
    let class_weight_sum = match &weight {
        Some(w) => w.iter().fold(T::zero(), |a, &b| a + b),
        None => T::of(classes as f64),
    };
    Ok(CrossEntropyPlan {
        classes,
        inner,
        class_axis,
        targets,
        weight,
        class_weight_sum,
        total_weight,
        smoothing: smoothing.map(T::of),
        reduction: opts.reduction,
        out_shape: if opts.reduction == Reduction::None {
            out_shape
        } else {
            Vec::new()
        },
    })
}

/// One element's log-softmax, `log p_c = (x_c − max) − log_sum` with `max` its largest logit
/// and `log_sum = ln Σ_c e^(x_c − max)`: never an `exp` of a positive value, and PyTorch's
/// order of operations, so a NaN or an infinite logit makes every `log p_c` of its element NaN
/// as in PyTorch.
#[derive(Clone, Copy)]
struct LogSoftmaxOf<T> {
    max: T,
    log_sum: T,
}

impl<T: Float> LogSoftmaxOf<T> {
    fn new(xs: impl Iterator<Item = T> + Clone) -> Self {
        let max = xs.clone().fold(T::neg_infinity(), |a, b| a.max(b));
        let log_sum = xs.map(|v| (v - max).exp()).fold(T::zero(), |a, b| a + b).ln();
        LogSoftmaxOf { max, log_sum }
    }

    /// `log p` of the class whose logit is `x`.
    fn at(self, x: T) -> T {
        (x - self.max) - self.log_sum
    }
}

/// The loss node. It keeps the plan and each element's log-softmax, which its gradient uses.
struct CrossEntropy<T> {
    plan: Rc<CrossEntropyPlan<T>>,
    lse: Rc<Vec<LogSoftmaxOf<T>>>,
}

impl<T: Float> Op<T> for CrossEntropy<T> {
    fn name(&self) -> String {
        describe_cross_entropy("cross_entropy", &self.plan)
    }

    /// `∂loss/∂x = (s·softmax(x) − q)·g`, one fused node: see [`cross_entropy`].
    fn backward<'t>(&self, inputs: &[Var<'t, T>], _y: Var<'t, T>, g: Var<'t, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        Ok(vec![Some(cross_entropy_grad(inputs[0], g, &self.plan, &self.lse)?)])
    }
}

fn describe_cross_entropy<T: Float>(name: &str, plan: &CrossEntropyPlan<T>) -> String {
    let smoothing = plan
        .smoothing
        .map_or(String::new(), |e| format!(", label_smoothing={e}"));
    let weighted = if plan.weight.is_some() { ", weighted" } else { "" };
    format!("{name}({:?}{weighted}{smoothing})", plan.reduction).to_lowercase()
}

/// Cross-entropy of logits against class indices, PyTorch's `F.cross_entropy` (and
/// `CrossEntropyLoss`) with integer targets.
///
/// For each element `e` with target `t ≠ ignore_index`, with `log p = log_softmax(x)` over the
/// class axis, class weights `w` (1 if none) and smoothing `ε`:
///
/// ```text
/// loss_e = −(1 − ε)·w_t·log p_t − (ε/C)·Σ_c w_c·log p_c        (= −Σ_c q_c·log p_c)
/// ```
///
/// and `loss_e = 0` for an ignored element. [`Reduction::Mean`] divides the sum by
/// `Σ_e w_{t_e}` over the elements not ignored (NaN when that is 0, as in PyTorch: all targets
/// ignored, or an empty batch), [`Reduction::Sum`] sums, [`Reduction::None`] returns every
/// `loss_e`.
///
/// The gradient is one fused node, `∂loss/∂x_c = (s·p_c − q_c)·g_e` with `s = Σ_c q_c`
/// (divided by the mean's denominator for `Mean`): the softmax's adjoint applied to the
/// gradient of `−Σ q·log p`. Its own gradient, for second order, is written with ordinary ops.
/// Targets carry no gradient. Non-finite logits behave as in PyTorch: a NaN or infinite logit
/// makes its element's loss NaN (and the mean with it), and its element's gradient NaN even
/// when the target is ignored (its loss is then 0).
///
/// Targets are `i64`, PyTorch's class-index type: the default `ignore_index` is −100, so they
/// must be signed, and a negative target other than `ignore_index` is refused rather than
/// wrapped.
///
/// Shapes: `logits: [n, classes, d..]` (e.g. per pixel `[n, classes, h, w]`) with
/// `target: [n, d..]`, `[n, classes]` with `[n]`, or unbatched `[classes]` with a 0-d target.
/// Output: `[]`, or the target's shape for [`Reduction::None`].
///
/// # Errors
/// As PyTorch refuses, before any work and recording nothing:
/// - [`Error::BadShape`] for 0-d logits, or a `weight` whose length is not `classes`;
/// - [`Error::ShapeMismatch`] for a target of the wrong shape (including the logits' own
///   shape, which PyTorch reads as class probabilities: use [`softmax_cross_entropy`]);
/// - [`Error::InvalidArgument`] for a target outside `0..classes` that is not `ignore_index`
///   (PyTorch's "Target N is out of bounds"), or `label_smoothing` above 1;
/// - [`Error::OutOfMemory`] if the machine lacks the memory for the output.
///
/// # Example
/// ```
/// use adjoint::{cross_entropy, Tape};
/// use adjoint::ops::loss::CrossEntropyOptions;
/// use ndarray::{arr1, arr2};
///
/// let tape = Tape::<f64>::new();
/// // Two samples, three classes; the second sample's target is ignored.
/// let x = tape.param(arr2(&[[0.0, 0.0, 0.0], [5.0, 1.0, 2.0]]).into_dyn());
/// let loss = cross_entropy(x, &arr1(&[2, -100]), &CrossEntropyOptions::new())?;
/// let ln3 = 3f64.ln();
/// assert!((loss.value()[[]] - ln3).abs() < 1e-15); // −log(1/3), the mean over one sample
/// let grads = tape.backward(loss)?;
/// let third = 1.0 / 3.0;
/// assert!((grads[x][[0, 2]] - (third - 1.0)).abs() < 1e-15); // p − onehot
/// assert_eq!(grads[x][[1, 0]], 0.0); // ignored
/// # Ok::<(), adjoint::Error>(())
/// ```
pub fn cross_entropy<'t, 'a, T: Float, D: Dimension>(
    logits: Var<'t, T>,
    target: impl AsArray<'a, i64, D>,
    opts: &CrossEntropyOptions,
) -> Result<Var<'t, T>> {
    let target = target.into().into_dyn();
    let plan = cross_entropy_plan::<T>(&logits.shape(), target, opts)?;
    let x = logits.value();
    let x = contiguous(&x);
    let (y, lse) = cross_entropy_forward(x, &plan)?;
    let y = size::array(&plan.out_shape, y)?;
    let op = CrossEntropy {
        plan: Rc::new(plan),
        lse: Rc::new(lse),
    };
    logits.tape().record(y, &[logits], op)
}

/// The loss in one pass per element: its log-sum-exp, then the target's (and, smoothing, every
/// class's) log-probability. Returns the output values and each element's log-softmax.
fn cross_entropy_forward<T: Float>(x: &[T], plan: &CrossEntropyPlan<T>) -> Result<(Vec<T>, Vec<LogSoftmaxOf<T>>)> {
    let elements = plan.targets.len();
    // Each element alone (its log-sum-exp, its target part `−w_t·log p_t` and its smoothing
    // part `−Σ_c w_c·log p_c`), over threads when there are many...
    let parts = parallel::map_indices("cross_entropy", "log-sum-exp", elements, plan.classes, |e| {
        let first = plan.first_class(e);
        let classes = (0..plan.classes).map(|c| x[first + c * plan.inner]);
        let log_softmax = LogSoftmaxOf::new(classes.clone());
        let log_p = |v: T| log_softmax.at(v);
        let (nll, smooth) = match plan.targets[e] {
            None => (T::zero(), T::zero()),
            Some(t) => {
                let nll = -log_p(x[first + t * plan.inner]) * plan.w(t);
                let smooth = match plan.smoothing {
                    Some(_) => -classes
                        .enumerate()
                        .map(|(c, v)| log_p(v) * plan.w(c))
                        .fold(T::zero(), |a, b| a + b),
                    None => T::zero(),
                };
                (nll, smooth)
            }
        };
        (log_softmax, nll, smooth)
    })?;
    // ...then summed in element order on this thread, the two parts apart, and combined as
    // PyTorch combines them.
    let per_element = plan.reduction == Reduction::None;
    let mut losses = size::reserve("cross_entropy", "output", if per_element { elements } else { 0 })?;
    let (mut nll_total, mut smooth_total) = (T::zero(), T::zero());
    for &(_, nll, smooth) in &parts {
        if per_element {
            losses.push(combine(nll, smooth, plan));
        } else {
            nll_total += nll;
            smooth_total += smooth;
        }
    }
    let lse = size::collect("cross_entropy", "log-sum-exp", parts.into_iter().map(|(lse, _, _)| lse))?;
    let y = match plan.reduction {
        Reduction::None => losses,
        Reduction::Sum => vec![combine(nll_total, smooth_total, plan)],
        Reduction::Mean => vec![combine(
            nll_total / plan.total_weight,
            smooth_total / plan.total_weight,
            plan,
        )],
    };
    Ok((y, lse))
}

/// `(1 − ε)·nll + smooth·ε/C`, or `nll` alone without smoothing (so an infinite smoothing part
/// never meets a 0 and makes a NaN PyTorch does not make).
fn combine<T: Float>(nll: T, smooth: T, plan: &CrossEntropyPlan<T>) -> T {
    match plan.smoothing {
        Some(eps) => (T::one() - eps) * nll + smooth * (eps / T::of(plan.classes as f64)),
        None => nll,
    }
}

/// The gradient node `grad_x = (s·softmax(x) − q)·g`; its inputs are `x` and `g`.
struct CrossEntropyGrad<T> {
    plan: Rc<CrossEntropyPlan<T>>,
    lse: Rc<Vec<LogSoftmaxOf<T>>>,
}

impl<T: Float> Op<T> for CrossEntropyGrad<T> {
    fn name(&self) -> String {
        describe_cross_entropy("cross_entropy_grad", &self.plan)
    }

    /// `z = (s·p − q)·k·g` (`k` the mean's `1/Σw`, else 1) is linear in `g`, so
    /// `∂/∂g = Σ_c grad_z·(s·p − q)·k`: the same node at `g = 1`, kept differentiable, summed
    /// over the classes. In `x` only `p = softmax(x)` varies, so `∂/∂x` is the softmax's adjoint
    /// `p ⊙ (a − Σ_c a·p)` of `a = grad_z·s·k·g`.
    fn backward<'t>(
        &self,
        inputs: &[Var<'t, T>],
        _y: Var<'t, T>,
        grad_z: Var<'t, T>,
    ) -> Result<Vec<Option<Var<'t, T>>>> {
        let (x, g) = (inputs[0], inputs[1]);
        let plan = &self.plan;
        let axis = plan.class_axis;
        let grad_x = if x.requires_grad() {
            let p = x.softmax(axis)?;
            let centred = grad_z.sub(grad_z.mul(p)?.sum_axes(&[axis], true)?)?;
            // `s·k` per element, as `[n, 1, d..]` (`[1]` unbatched) to broadcast over classes.
            let mean = if plan.reduction == Reduction::Mean {
                T::one() / plan.total_weight
            } else {
                T::one()
            };
            let scale = size::collect(
                "cross_entropy_grad",
                "scale",
                plan.targets.iter().map(|t| match *t {
                    Some(t) => target_total(plan, t) * mean,
                    None => T::zero(),
                }),
            )?;
            let mut kept = x.shape();
            kept[axis] = 1;
            let scale = x.constant(size::array(&kept, scale)?);
            let g = if plan.reduction == Reduction::None {
                g.reshape(&kept)?
            } else {
                g
            };
            Some(p.mul(centred)?.mul(scale)?.mul(g)?)
        } else {
            None
        };
        let grad_g = if g.requires_grad() {
            let unit = g.constant(size::filled("cross_entropy_grad", "g", &g.shape(), T::one())?);
            let per_class = grad_z.mul(cross_entropy_grad(x, unit, plan, &self.lse)?)?;
            Some(match plan.reduction {
                Reduction::None => per_class.sum_axes(&[axis], false)?.reshape(&g.shape())?,
                Reduction::Mean | Reduction::Sum => per_class.sum()?,
            })
        } else {
            None
        };
        Ok(vec![grad_x, grad_g])
    }
}

/// `s = Σ_c q_c` of an element with target `t`: `(1 − ε)·w_t + (ε/C)·Σ_c w_c`.
fn target_total<T: Float>(plan: &CrossEntropyPlan<T>, t: usize) -> T {
    match plan.smoothing {
        Some(eps) => (T::one() - eps) * plan.w(t) + eps / T::of(plan.classes as f64) * plan.class_weight_sum,
        None => plan.w(t),
    }
}

/// Records `grad_x = (s·softmax(x) − q)·g` for the loss of `plan` at `x`, in one pass per
/// element.
///
/// Written as PyTorch's rule, `G − p·Σ_c G_c` with `G = ∂loss/∂log p` (`G_c = −q_c·g`), so the
/// non-finite cases match: an ignored element has `G = 0` and gets `0 − p·0`, NaN where its
/// logits are; a mean over a zero total weight scales by `g/0`, and `0·∞` makes NaN.
fn cross_entropy_grad<'t, T: Float>(
    x: Var<'t, T>,
    g: Var<'t, T>,
    plan: &Rc<CrossEntropyPlan<T>>,
    lse: &Rc<Vec<LogSoftmaxOf<T>>>,
) -> Result<Var<'t, T>> {
    let (x_value, g_value) = (x.value(), g.value());
    let xs = contiguous(&x_value);
    let gs = contiguous(&g_value);
    let mut grad = size::zeroed("cross_entropy_grad", "output", xs.len())?;
    // Sample by sample (`classes · inner` logits each), on whichever thread takes it.
    let (shared_plan, shared_lse): (&CrossEntropyPlan<T>, &[LogSoftmaxOf<T>]) = (plan, lse);
    let block = plan.classes * plan.inner;
    parallel::for_each_chunk(&mut grad, block, |n, grad| {
        fill_cross_entropy_grad(grad, n, &xs[n * block..], gs, shared_plan, shared_lse);
    });
    let grad = size::array(&x.shape(), grad)?;
    x.tape().record(
        grad,
        &[x, g],
        CrossEntropyGrad {
            plan: Rc::clone(plan),
            lse: Rc::clone(lse),
        },
    )
}

/// The gradient of sample `n`'s elements into `grad` (its `classes · inner` values; `xs` its
/// logits onwards), for [`cross_entropy_grad`].
fn fill_cross_entropy_grad<T: Float>(
    grad: &mut [T],
    n: usize,
    xs: &[T],
    gs: &[T],
    plan: &CrossEntropyPlan<T>,
    lse: &[LogSoftmaxOf<T>],
) {
    // The upstream gradient of each element's `loss_e`.
    let scale = |e: usize| match plan.reduction {
        Reduction::None => gs[e],
        Reduction::Sum => gs[0],
        Reduction::Mean => gs[0] / plan.total_weight,
    };
    let smooth_share = plan.smoothing.map(|eps| eps / T::of(plan.classes as f64));
    let elements = n * plan.inner..(n + 1) * plan.inner;
    for (e, (log_softmax, &target)) in elements
        .clone()
        .zip(lse[elements.clone()].iter().zip(&plan.targets[elements]))
    {
        let first = plan.first_class(e) - n * plan.classes * plan.inner;
        let p = |c: usize| log_softmax.at(xs[first + c * plan.inner]).exp();
        let Some(t) = target else {
            for c in 0..plan.classes {
                grad[first + c * plan.inner] = T::zero() - p(c) * T::zero();
            }
            continue;
        };
        let ge = scale(e);
        // `G_t = −(1 − ε)·w_t·g_e` and, smoothing, `G_c −= (ε/C)·w_c·g_e` for every class.
        let on_target = plan.smoothing.map_or(ge, |eps| (T::one() - eps) * ge) * plan.w(t);
        let per_weight = smooth_share.map(|share| share * ge);
        let g_c = |c: usize| {
            let target_part = if c == t { -on_target } else { T::zero() };
            per_weight.map_or(target_part, |b| target_part - b * plan.w(c))
        };
        // Summed term by term, as PyTorch's softmax backward sums (which fixes the sign of a
        // zero gradient).
        let total = (0..plan.classes).map(g_c).fold(T::zero(), |a, b| a + b);
        for c in 0..plan.classes {
            grad[first + c * plan.inner] = g_c(c) - p(c) * total;
        }
    }
}
