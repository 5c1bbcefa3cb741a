//! Sums and means, and the pair that moves gradients across broadcasting:
//! `sum_to` (whose gradient is `broadcast_to`) and `broadcast_to` (whose gradient is `sum_to`).

use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn};

use crate::error::{Error, Result, invalid};
use crate::float::Float;
use crate::ops::{broadcast_shape, check_axis, size};
use crate::tape::{Op, Var};

/// Sum over `axes` (sorted, distinct), keeping them as size-1 axes or dropping them.
struct Sum {
    axes: Vec<usize>,
    keepdims: bool,
}

impl<T: Float> Op<T> for Sum {
    fn name(&self) -> String {
        format!("sum(axes={:?}, keepdims={})", self.axes, self.keepdims)
    }

    /// Every summed element received the same upstream gradient: put the summed axes back as
    /// size 1, then broadcast.
    fn backward<'t>(&self, inputs: &[Var<'t, T>], _y: Var<'t, T>, g: Var<'t, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        let x_shape = inputs[0].shape();
        let kept: Vec<usize> = x_shape
            .iter()
            .enumerate()
            .map(|(i, &n)| if self.axes.contains(&i) { 1 } else { n })
            .collect();
        Ok(vec![Some(g.reshape(&kept)?.broadcast_to(&x_shape)?)])
    }
}

/// Sums a broadcast gradient back to `shape` (the shape before broadcasting).
struct SumTo;

impl<T: Float> Op<T> for SumTo {
    fn name(&self) -> String {
        "sum_to".into()
    }

    fn backward<'t>(&self, inputs: &[Var<'t, T>], _y: Var<'t, T>, g: Var<'t, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        Ok(vec![Some(g.broadcast_to(&inputs[0].shape())?)])
    }
}

struct BroadcastTo;

impl<T: Float> Op<T> for BroadcastTo {
    fn name(&self) -> String {
        "broadcast_to".into()
    }

    fn backward<'t>(&self, inputs: &[Var<'t, T>], _y: Var<'t, T>, g: Var<'t, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        Ok(vec![Some(g.sum_to(&inputs[0].shape())?)])
    }
}

/// Sorts and checks reduction axes.
fn reduction_axes(op: &'static str, axes: &[usize], ndim: usize) -> Result<Vec<usize>> {
    let mut sorted = axes.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != axes.len() {
        return Err(invalid(op, "axes", axes, "an axis is repeated"));
    }
    for &a in &sorted {
        check_axis(op, a, ndim)?;
    }
    Ok(sorted)
}

fn sum_axes_array<T: Float>(x: &ArrayD<T>, axes: &[usize], keepdims: bool) -> ArrayD<T> {
    // Neighbouring axes that are all summed, or all kept, are one axis to the sum when `x` is
    // contiguous: a conv bias's gradient, the sum over `[n, h, w]` of `[n, c, h, w]`, then runs
    // along lanes of `h·w` values rather than `w` (measured: ~5% of a small autoencoder's
    // training step went to sums over lanes of 7–28 values).
    let summed = |a: usize| axes.contains(&a);
    let mut merged: Vec<(usize, bool)> = Vec::with_capacity(x.ndim());
    for (a, &len) in x.shape().iter().enumerate() {
        match merged.last_mut() {
            Some((run, s)) if *s == summed(a) => *run *= len,
            _ => merged.push((len, summed(a))),
        }
    }
    let y = match x.as_slice() {
        Some(flat) if merged.len() < x.ndim() => {
            let shape: Vec<usize> = merged.iter().map(|&(len, _)| len).collect();
            let view = ArrayViewD::from_shape(shape, flat).expect("same elements, merged axes");
            sum_each(view, &(0..merged.len()).filter(|&a| merged[a].1).collect::<Vec<_>>())
        }
        _ => sum_each(x.view(), axes),
    };
    let shape: Vec<usize> = (0..x.ndim())
        .filter_map(|a| {
            if summed(a) {
                keepdims.then_some(1)
            } else {
                Some(x.shape()[a])
            }
        })
        .collect();
    let y = if y.is_standard_layout() {
        y
    } else {
        y.as_standard_layout().into_owned()
    };
    y.into_shape_with_order(shape).expect("the kept axes' sizes")
}

/// Sums `x` over `axes` (ascending), innermost first: each step reads the previous, smaller
/// result, never a copy of `x`.
fn sum_each<T: Float>(x: ArrayViewD<'_, T>, axes: &[usize]) -> ArrayD<T> {
    let mut y: Option<ArrayD<T>> = None;
    for &a in axes.iter().rev() {
        y = Some(match &y {
            Some(y) => y.sum_axis(Axis(a)),
            None => x.sum_axis(Axis(a)),
        });
    }
    y.unwrap_or_else(|| x.to_owned())
}

impl<'t, T: Float> Var<'t, T> {
    /// Sum of all elements, as a 0-d value (shape `[]`).
    pub fn sum(self) -> Result<Var<'t, T>> {
        let axes: Vec<usize> = (0..self.ndim()).collect();
        self.sum_axes(&axes, false)
    }

    /// Sum over the given axes; with `keepdims` they stay as size-1 axes.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if an axis is out of range or repeated.
    pub fn sum_axes(self, axes: &[usize], keepdims: bool) -> Result<Var<'t, T>> {
        let axes = reduction_axes("sum", axes, self.ndim())?;
        let y = sum_axes_array(&self.value(), &axes, keepdims);
        self.tape().record(y, &[self], Sum { axes, keepdims })
    }

    /// Mean of all elements, as a 0-d value. The mean of nothing is NaN, as in PyTorch.
    pub fn mean(self) -> Result<Var<'t, T>> {
        let axes: Vec<usize> = (0..self.ndim()).collect();
        self.mean_axes(&axes, false)
    }

    /// Mean over the given axes; with `keepdims` they stay as size-1 axes.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if an axis is out of range or repeated.
    pub fn mean_axes(self, axes: &[usize], keepdims: bool) -> Result<Var<'t, T>> {
        let shape = self.shape();
        let axes = reduction_axes("mean", axes, shape.len())?;
        let count: usize = axes.iter().map(|&a| shape[a]).product();
        self.sum_axes(&axes, keepdims)?.mul_scalar(1.0 / count as f64)
    }

    /// Sums a value down to `shape`, undoing a broadcast from `shape` to this value's shape
    /// (leading axes are summed away, size-1 axes summed with their size kept).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if this shape is not a broadcast of `shape`.
    pub fn sum_to(self, shape: &[usize]) -> Result<Var<'t, T>> {
        let from = self.shape();
        if from == shape {
            return Ok(self);
        }
        if broadcast_shape("sum_to", &from, shape)? != from {
            return Err(Error::ShapeMismatch {
                op: "sum_to",
                lhs: from,
                rhs: shape.to_vec(),
                reason: "the target shape does not broadcast to the value's shape".into(),
            });
        }
        let lead = from.len() - shape.len();
        let x = self.value();
        let mut y = sum_axes_array(&x, &(0..lead).collect::<Vec<_>>(), false);
        for (a, &n) in shape.iter().enumerate() {
            if n == 1 && y.shape()[a] != 1 {
                y = y.sum_axis(Axis(a)).insert_axis(Axis(a));
            }
        }
        self.tape().record(y, &[self], SumTo)
    }

    /// Repeats the value along size-1 (and new leading) axes to reach `shape`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the value's shape does not broadcast to `shape`.
    pub fn broadcast_to(self, shape: &[usize]) -> Result<Var<'t, T>> {
        let from = self.shape();
        if from == shape {
            return Ok(self);
        }
        // A broadcast can be far larger than its input: its size is checked and reserved first.
        let mut y = size::zeros("broadcast_to", "shape", shape)?;
        let x = self.value();
        let Some(view) = x.broadcast(IxDyn(shape)) else {
            return Err(Error::ShapeMismatch {
                op: "broadcast_to",
                lhs: from,
                rhs: shape.to_vec(),
                reason: "the value's shape does not broadcast to the target shape".into(),
            });
        };
        y.assign(&view);
        self.tape().record(y, &[self], BroadcastTo)
    }
}
