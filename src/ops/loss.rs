//! Losses, and the softmax family they use. Each is written to stay finite for large logits.

use ndarray::{ArrayD, Axis, IxDyn};

use crate::error::{Error, Result, bad_shape, invalid};
use crate::float::Float;
use crate::ops::{check_axis, size};
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
    same_shape("bce_with_logits", logits, target)?;
    let (z, t) = (logits.value(), target.value());
    let n = T::of(z.len() as f64);
    let total = z
        .iter()
        .zip(t.iter())
        .map(|(&z, &t)| (T::one() - t) * z - (z.min(T::zero()) - (-z.abs()).exp().ln_1p()))
        .fold(T::zero(), |a, b| a + b);
    let y = ArrayD::from_elem(IxDyn(&[]), total / n);
    logits.tape().record(y, &[logits, target], BceWithLogits)
}

struct BceWithLogits;

impl<T: Float> Op<T> for BceWithLogits {
    fn name(&self) -> String {
        "bce_with_logits".into()
    }

    /// `∂/∂z = (σ(z) − t)/n`, `∂/∂t = −z/n`.
    fn backward<'t>(&self, inputs: &[Var<'t, T>], _y: Var<'t, T>, g: Var<'t, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        let (z, t) = (inputs[0], inputs[1]);
        let inv_n = 1.0 / z.value().len() as f64;
        let grad_z = z
            .requires_grad()
            .then(|| z.sigmoid()?.sub(t)?.mul_scalar(inv_n)?.mul(g))
            .transpose()?;
        let grad_t = t.requires_grad().then(|| z.mul_scalar(-inv_n)?.mul(g)).transpose()?;
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
