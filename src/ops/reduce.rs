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

/// Independent running sums in [`PartialSums`]: enough to keep a core's adders busy (a sum
/// with one accumulator waits an add's latency, ~4 cycles, per value) and to fill the vector
/// registers of any x86-64 CPU.
const SUM_LANES: usize = 16;

/// A sum of many values kept as [`SUM_LANES`] partial sums: the `j`-th value of each slice
/// added goes to partial sum `j mod SUM_LANES`, and [`PartialSums::total`] adds them pairwise.
/// The order depends only on the slices' lengths, never on the machine or the thread count,
/// so the bits are the same everywhere; and the sum runs at the adders' throughput instead of
/// their latency (batch norm's channel statistics: a one-accumulator loop took most of the
/// op's time). Splitting the sum also makes it more accurate than one long running sum.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PartialSums<T>([T; SUM_LANES]);

impl<T: Float> PartialSums<T> {
    /// Nothing summed yet.
    pub(crate) fn new() -> Self {
        PartialSums([T::zero(); SUM_LANES])
    }

    /// Adds `f(x)` for every `x` of `xs`.
    #[inline]
    pub(crate) fn add(&mut self, xs: &[T], f: impl Fn(T) -> T) {
        let chunks = xs.chunks_exact(SUM_LANES);
        let rest = chunks.remainder();
        for chunk in chunks {
            for (sum, &x) in self.0.iter_mut().zip(chunk) {
                *sum += f(x);
            }
        }
        for (sum, &x) in self.0.iter_mut().zip(rest) {
            *sum += f(x);
        }
    }

    /// Adds the two parts of `f(x, y)` for the pairs of `xs` and `ys` (of one length), the
    /// first to `self`, the second to `other`: two sums in one pass over the data.
    #[inline]
    pub(crate) fn add_pairs(&mut self, other: &mut Self, (xs, ys): (&[T], &[T]), f: impl Fn(T, T) -> (T, T)) {
        debug_assert_eq!(xs.len(), ys.len());
        let (a, b) = (xs.chunks_exact(SUM_LANES), ys.chunks_exact(SUM_LANES));
        let (rest_a, rest_b) = (a.remainder(), b.remainder());
        for (ca, cb) in a.zip(b) {
            for j in 0..SUM_LANES {
                let (p, q) = f(ca[j], cb[j]);
                self.0[j] += p;
                other.0[j] += q;
            }
        }
        for (j, (&x, &y)) in rest_a.iter().zip(rest_b).enumerate() {
            let (p, q) = f(x, y);
            self.0[j] += p;
            other.0[j] += q;
        }
    }

    /// The sum: the partial sums added pairwise, in a fixed order.
    pub(crate) fn total(self) -> T {
        let mut sums = self.0;
        let mut width = SUM_LANES;
        while width > 1 {
            width /= 2;
            for j in 0..width {
                let right = sums[j + width];
                sums[j] += right;
            }
        }
        sums[0]
    }
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

#[cfg(test)]
mod tests {
    use super::{PartialSums, SUM_LANES};

    /// Values whose f32 sum depends on the order of the additions, of every length around
    /// the lanes' width.
    fn values(len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 1.37e-2 + 1e3 * ((i % 3) as f32))
            .collect()
    }

    #[test]
    fn partial_sums_add_what_an_f64_loop_adds() {
        for len in [
            0,
            1,
            7,
            SUM_LANES - 1,
            SUM_LANES,
            SUM_LANES + 1,
            3 * SUM_LANES + 5,
            10_000,
        ] {
            let xs = values(len);
            let exact: f64 = xs.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
            let mut sums = PartialSums::new();
            // In two slices, as a channel's lanes come: each starts again at lane 0.
            let (a, b) = xs.split_at(len / 3);
            sums.add(a, |x| x * x);
            sums.add(b, |x| x * x);
            let got = f64::from(sums.total());
            assert!(
                (got - exact).abs() <= 1e-6 * exact.abs().max(1.0),
                "len {len}: {got} vs {exact}"
            );

            let ys: Vec<f32> = xs.iter().map(|x| x * 0.5 - 3.0).collect();
            let (mut first, mut second) = (PartialSums::new(), PartialSums::new());
            first.add_pairs(&mut second, (&xs, &ys), |x, y| (x + y, x * y));
            let want_first: f64 = xs.iter().zip(&ys).map(|(&x, &y)| f64::from(x) + f64::from(y)).sum();
            let want_second: f64 = xs.iter().zip(&ys).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum();
            for (got, want) in [(first.total(), want_first), (second.total(), want_second)] {
                let got = f64::from(got);
                assert!(
                    (got - want).abs() <= 1e-6 * want.abs().max(1.0),
                    "len {len}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn partial_sums_keep_nan_and_infinities() {
        let mut xs = values(100);
        xs[57] = f32::NAN;
        let mut sums = PartialSums::new();
        sums.add(&xs, |x| x);
        assert!(sums.total().is_nan());
        xs[57] = f32::INFINITY;
        let mut sums = PartialSums::new();
        sums.add(&xs, |x| x);
        assert_eq!(sums.total(), f32::INFINITY);
        // +∞ and −∞ in different partial sums still meet, as in one running sum: NaN.
        xs[58] = f32::NEG_INFINITY;
        let mut sums = PartialSums::new();
        sums.add(&xs, |x| x);
        assert!(sums.total().is_nan());
    }

    #[test]
    fn partial_sums_follow_the_lanes_pairwise() {
        // 1e8 (f32 spacing 8 there) swallows a lone 3 but not the 3s summed pairwise first:
        // one running sum gives 1e8, the documented order more.
        let mut xs = vec![3.0f32; SUM_LANES];
        xs[0] = 1e8;
        let mut sums = PartialSums::new();
        sums.add(&xs, |x| x);
        let mut lanes = xs.clone();
        let mut width = SUM_LANES;
        while width > 1 {
            width /= 2;
            for j in 0..width {
                lanes[j] += lanes[j + width];
            }
        }
        assert_eq!(sums.total().to_bits(), lanes[0].to_bits());
        assert_ne!(lanes[0], xs.iter().fold(0.0f32, |s, &x| s + x));
    }
}
