//! Ops that move elements without changing them: reshape, permute, concat, slice.
//! Their gradients move the gradient back the same way.

use ndarray::{Axis, IxDyn};

use crate::error::{Error, Result, bad_shape, invalid};
use crate::float::Float;
use crate::ops::parallel::for_each_chunk;
use crate::ops::{check_axis, contiguous, size};
use crate::tape::{Op, Var};

struct Reshape;

impl<T: Float> Op<T> for Reshape {
    fn name(&self) -> String {
        "reshape".into()
    }

    fn backward<'t>(&self, inputs: &[Var<'t, T>], _y: Var<'t, T>, g: Var<'t, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        Ok(vec![Some(g.reshape(&inputs[0].shape())?)])
    }
}

/// The row-major `[cols, rows]` transpose of the row-major `[rows, cols]` matrix `x`, copied
/// in square tiles so that both the reads and the writes stay within a few cache lines (every
/// matmul's backward transposes two matrices; copied in output order, through ndarray's
/// strided iterator, they were 3% of the VAE's training step).
fn transposed<T: Float>(x: &[T], rows: usize, cols: usize) -> Result<Vec<T>> {
    const TILE: usize = 32;
    let mut out = size::zeroed("permute", "output", x.len())?;
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    out[c * rows + r] = x[r * cols + c];
                }
            }
        }
    }
    Ok(out)
}

struct Permute {
    axes: Vec<usize>,
}

impl<T: Float> Op<T> for Permute {
    fn name(&self) -> String {
        format!("permute({:?})", self.axes)
    }

    /// The gradient goes back through the inverse permutation.
    fn backward<'t>(&self, _inputs: &[Var<'t, T>], _y: Var<'t, T>, g: Var<'t, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        let mut inverse = vec![0; self.axes.len()];
        for (i, &a) in self.axes.iter().enumerate() {
            inverse[a] = i;
        }
        Ok(vec![Some(g.permute(&inverse)?)])
    }
}

struct Concat {
    axis: usize,
}

impl<T: Float> Op<T> for Concat {
    fn name(&self) -> String {
        format!("concat(axis={})", self.axis)
    }

    /// Each input gets back its own stretch of the gradient.
    fn backward<'t>(&self, inputs: &[Var<'t, T>], _y: Var<'t, T>, g: Var<'t, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        let mut start = 0;
        inputs
            .iter()
            .map(|x| {
                let n = x.shape()[self.axis];
                start += n;
                x.requires_grad()
                    .then(|| g.slice(self.axis, start - n, start))
                    .transpose()
            })
            .collect()
    }
}

struct SliceOp {
    axis: usize,
    start: usize,
    end: usize,
}

impl<T: Float> Op<T> for SliceOp {
    fn name(&self) -> String {
        format!("slice(axis={}, {}..{})", self.axis, self.start, self.end)
    }

    /// Elements outside the slice did not reach the output: their gradient is zero.
    fn backward<'t>(&self, inputs: &[Var<'t, T>], _y: Var<'t, T>, g: Var<'t, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        let size = inputs[0].shape()[self.axis];
        Ok(vec![Some(g.pad_axis(self.axis, self.start, size - self.end)?)])
    }
}

/// Zero padding along one axis: the adjoint of slicing.
struct PadAxis {
    axis: usize,
    before: usize,
    after: usize,
}

impl<T: Float> Op<T> for PadAxis {
    fn name(&self) -> String {
        format!("pad_axis(axis={}, {}, {})", self.axis, self.before, self.after)
    }

    fn backward<'t>(&self, inputs: &[Var<'t, T>], _y: Var<'t, T>, g: Var<'t, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        let n = inputs[0].shape()[self.axis];
        Ok(vec![Some(g.slice(self.axis, self.before, self.before + n)?)])
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// The same elements in row-major order, with a new shape of the same size.
    ///
    /// # Errors
    /// [`Error::BadShape`] if the element counts differ.
    pub fn reshape(self, shape: &[usize]) -> Result<Var<'t, T>> {
        let from = self.shape();
        if from == shape {
            return Ok(self);
        }
        // Checked: a product that wraps could otherwise equal the input's count by accident.
        if size::elements("reshape", "shape", shape)? != from.iter().product::<usize>() {
            return Err(bad_shape(
                "reshape",
                "x",
                &from,
                format!("cannot hold the same elements as shape {shape:?}"),
            ));
        }
        let x = self.value();
        // One copy of the row-major slice (through a dynamic-rank iterator it cost ~10x more
        // per value: 6% of the VAE's training step).
        let xs = contiguous(&x);
        let mut values = size::reserve("reshape", "output", xs.len())?;
        values.extend_from_slice(xs);
        let y = size::array(shape, values)?;
        self.tape().record(y, &[self], Reshape)
    }

    /// Reorders the axes: output axis `i` is input axis `axes[i]` (PyTorch's `permute`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `axes` is not a permutation of `0..ndim`.
    pub fn permute(self, axes: &[usize]) -> Result<Var<'t, T>> {
        let n = self.ndim();
        let mut seen = vec![false; n];
        if axes.len() != n || axes.iter().any(|&a| a >= n || std::mem::replace(&mut seen[a], true)) {
            return Err(invalid(
                "permute",
                "axes",
                axes,
                format!("must be a permutation of 0..{n}"),
            ));
        }
        let x = self.value();
        let y = if axes == [1, 0] {
            let (rows, cols) = (x.shape()[0], x.shape()[1]);
            size::array(&[cols, rows], transposed(contiguous(&x), rows, cols)?)?
        } else {
            x.view().permuted_axes(IxDyn(axes)).as_standard_layout().into_owned()
        };
        self.tape().record(y, &[self], Permute { axes: axes.to_vec() })
    }

    /// Swaps two axes (for a matrix, the transpose).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if an axis is out of range.
    pub fn transpose(self, a: usize, b: usize) -> Result<Var<'t, T>> {
        let n = self.ndim();
        check_axis("transpose", a, n)?;
        check_axis("transpose", b, n)?;
        let mut axes: Vec<usize> = (0..n).collect();
        axes.swap(a, b);
        self.permute(&axes)
    }

    /// Merges axes `start..=end` into one (PyTorch's `flatten(start_dim, end_dim)`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `start > end` or `end` is out of range.
    pub fn flatten(self, start: usize, end: usize) -> Result<Var<'t, T>> {
        let shape = self.shape();
        check_axis("flatten", end, shape.len())?;
        if start > end {
            return Err(invalid(
                "flatten",
                "start",
                start,
                format!("must not exceed end = {end}"),
            ));
        }
        let merged: usize = shape[start..=end].iter().product();
        let new: Vec<usize> = shape[..start]
            .iter()
            .copied()
            .chain([merged])
            .chain(shape[end + 1..].iter().copied())
            .collect();
        self.reshape(&new)
    }

    /// Elements `start..end` along `axis`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the axis or the range is out of bounds.
    pub fn slice(self, axis: usize, start: usize, end: usize) -> Result<Var<'t, T>> {
        let shape = self.shape();
        check_axis("slice", axis, shape.len())?;
        if start > end || end > shape[axis] {
            return Err(invalid(
                "slice",
                "range",
                start..end,
                format!("must lie within 0..{} of axis {axis}", shape[axis]),
            ));
        }
        let (outer, inner) = around(&shape, axis);
        let (n, m) = (shape[axis] * inner, (end - start) * inner);
        let value = self.value();
        let xs = contiguous(&value);
        // Each outer index's stretch `start..end` is one contiguous copy.
        let stretch = Stretch {
            from: xs,
            step: n,
            offset: start * inner,
            len: m,
        };
        let y = gathered("slice", outer * m, m, &[stretch])?;
        let mut new = shape;
        new[axis] = end - start;
        self.tape()
            .record(size::array(&new, y)?, &[self], SliceOp { axis, start, end })
    }

    /// Adds `before` and `after` zeros along `axis`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the axis is out of range.
    pub fn pad_axis(self, axis: usize, before: usize, after: usize) -> Result<Var<'t, T>> {
        let mut shape = self.shape();
        check_axis("pad_axis", axis, shape.len())?;
        let n = shape[axis];
        shape[axis] =
            size::add("pad_axis", "before", n, before).and_then(|m| size::add("pad_axis", "after", m, after))?;
        let len = size::elements("pad_axis", "output", &shape)?;
        let (outer, inner) = around(&shape, axis);
        let (m, padded) = (n * inner, shape[axis] * inner);
        let value = self.value();
        let xs = contiguous(&value);
        let mut y = size::zeroed("pad_axis", "output", len)?;
        for_each_chunk(&mut y, padded, |o, piece| {
            piece[before * inner..before * inner + m].copy_from_slice(&xs[o * m..(o + 1) * m]);
        });
        debug_assert_eq!(outer * padded, len);
        self.tape()
            .record(size::array(&shape, y)?, &[self], PadAxis { axis, before, after })
    }
}

/// One input's part of each chunk of a [`gathered`] output: for chunk `o`, the `len` values of
/// `from` starting at `o·step + offset`.
struct Stretch<'a, T> {
    from: &'a [T],
    step: usize,
    offset: usize,
    len: usize,
}

/// A fresh output of `len` values in chunks of `chunk`, chunk `o` being the stretches' parts one
/// after the other (which must fill it exactly): concat and slice. Written once, never cleared
/// first (a clearing pass was a third of a concat's memory traffic), over threads when long.
fn gathered<T: Float>(op: &'static str, len: usize, chunk: usize, stretches: &[Stretch<'_, T>]) -> Result<Vec<T>> {
    assert_eq!(
        stretches.iter().map(|s| s.len).sum::<usize>(),
        chunk,
        "{op}: the stretches fill each chunk"
    );
    assert!(len.is_multiple_of(chunk), "{op}: whole chunks");
    let mut y = size::uninit(op, "output", len)?;
    for_each_chunk(&mut y, chunk, |o, piece| {
        let mut at = 0;
        for s in stretches {
            let from = &s.from[o * s.step + s.offset..][..s.len];
            for (slot, &v) in piece[at..at + s.len].iter_mut().zip(from) {
                slot.write(v);
            }
            at += s.len;
        }
    });
    // SAFETY: `y` is whole chunks (asserted), every chunk is one piece of `for_each_chunk`, and
    // each piece is written from its first slot to its last: the stretches' lengths add up to
    // `chunk` (asserted), and each `zip` writes all `s.len` slots since `from` is that long.
    Ok(unsafe { size::assume_init(y) })
}

/// The products of the axes before and after `axis`: a contiguous array seen as
/// `[outer, shape[axis], inner]`.
fn around(shape: &[usize], axis: usize) -> (usize, usize) {
    (shape[..axis].iter().product(), shape[axis + 1..].iter().product())
}

/// Joins values along `axis`; all other axes must agree.
///
/// # Errors
/// [`Error::InvalidArgument`] for an empty list or an axis out of range,
/// [`Error::ShapeMismatch`] if two inputs differ off the axis.
pub fn concat<'t, T: Float>(xs: &[Var<'t, T>], axis: usize) -> Result<Var<'t, T>> {
    let Some(first) = xs.first() else {
        return Err(invalid("concat", "xs", "[]", "needs at least one value"));
    };
    let shape0 = first.shape();
    check_axis("concat", axis, shape0.len())?;
    for x in &xs[1..] {
        let shape = x.shape();
        let agrees = shape.len() == shape0.len()
            && shape
                .iter()
                .zip(&shape0)
                .enumerate()
                .all(|(i, (a, b))| i == axis || a == b);
        if !agrees {
            return Err(Error::ShapeMismatch {
                op: "concat",
                lhs: shape0,
                rhs: shape,
                reason: format!("all axes but {axis} must agree"),
            });
        }
    }
    let values: Vec<_> = xs.iter().map(|x| x.value()).collect();
    let mut shape = shape0;
    shape[axis] = values[1..]
        .iter()
        .try_fold(shape[axis], |n, v| size::add("concat", "xs", n, v.len_of(Axis(axis))))?;
    let len = size::elements("concat", "output", &shape)?;
    let (outer, inner) = around(&shape, axis);
    // Per outer index, each input contributes one contiguous stretch of `n_k · inner` values.
    let stretches: Vec<Stretch<'_, T>> = values
        .iter()
        .map(|v| {
            let m = v.len_of(Axis(axis)) * inner;
            Stretch {
                from: contiguous(v),
                step: m,
                offset: 0,
                len: m,
            }
        })
        .collect();
    debug_assert_eq!(outer * shape[axis] * inner, len);
    let y = gathered("concat", len, shape[axis] * inner, &stretches)?;
    first.tape().record(size::array(&shape, y)?, xs, Concat { axis })
}
