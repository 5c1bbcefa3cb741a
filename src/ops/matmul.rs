//! Matrix product, 2-D and batched. Its gradients are matrix products with a transpose:
//! `grad_a = grad_y · bᵀ`, `grad_b = aᵀ · grad_y`.

use ndarray::{ArrayD, ArrayView2, Ix2, IxDyn};

use crate::error::{Error, Result, bad_shape};
use crate::float::Float;
use crate::ops::gemm::gemm;
use crate::ops::unravel;
use crate::ops::{broadcast_shape, size};
use crate::tape::{Op, Var};

struct MatMul;

impl<T: Float> Op<T> for MatMul {
    fn name(&self) -> String {
        "matmul".into()
    }

    /// Batch axes may have been broadcast, so each gradient is summed back to its input's shape.
    fn backward<'t>(&self, inputs: &[Var<'t, T>], _y: Var<'t, T>, g: Var<'t, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        let (a, b) = (inputs[0], inputs[1]);
        let last = |v: Var<'t, T>| v.transpose(v.ndim() - 2, v.ndim() - 1);
        let grad_a = a
            .requires_grad()
            .then(|| g.matmul(last(b)?)?.sum_to(&a.shape()))
            .transpose()?;
        let grad_b = b
            .requires_grad()
            .then(|| last(a)?.matmul(g)?.sum_to(&b.shape()))
            .transpose()?;
        Ok(vec![grad_a, grad_b])
    }
}

/// `a: [.., m, k] · b: [.., k, n] -> [.., m, n]`, batch axes broadcast.
fn matmul_array<T: Float>(a: &ArrayD<T>, b: &ArrayD<T>) -> Result<ArrayD<T>> {
    let (ra, rb) = (a.ndim(), b.ndim());
    for (name, x) in [("a", a), ("b", b)] {
        if x.ndim() < 2 {
            return Err(bad_shape("matmul", name, x.shape(), "needs at least 2 axes"));
        }
    }
    let (m, k) = (a.shape()[ra - 2], a.shape()[ra - 1]);
    let (k2, n) = (b.shape()[rb - 2], b.shape()[rb - 1]);
    if k != k2 {
        return Err(Error::ShapeMismatch {
            op: "matmul",
            lhs: a.shape().to_vec(),
            rhs: b.shape().to_vec(),
            reason: format!("inner sizes differ: {k} and {k2}"),
        });
    }
    let batch = broadcast_shape("matmul", &a.shape()[..ra - 2], &b.shape()[..rb - 2])?;
    let with = |mut s: Vec<usize>, r: usize, c: usize| {
        s.extend([r, c]);
        s
    };
    let a = a.broadcast(IxDyn(&with(batch.clone(), m, k))).expect("checked");
    let b = b.broadcast(IxDyn(&with(batch.clone(), k, n))).expect("checked");
    let mut y = size::zeros("matmul", "output", &with(batch.clone(), m, n))?;
    let count: usize = batch.iter().product();
    // Broadcast views are not contiguous; index matrices one batch element at a time.
    let mut y3 = y.view_mut().into_shape_with_order((count, m, n)).expect("fresh array");
    for i in 0..count {
        let idx = unravel(i, &batch);
        let ai: ArrayView2<'_, T> = slice_batch(&a, &idx);
        let bi: ArrayView2<'_, T> = slice_batch(&b, &idx);
        gemm(ai, bi, false, y3.index_axis_mut(ndarray::Axis(0), i));
    }
    Ok(y)
}

fn slice_batch<'a, T: Float>(x: &ndarray::ArrayViewD<'a, T>, idx: &[usize]) -> ArrayView2<'a, T> {
    let mut v = x.clone();
    for &i in idx {
        v = v.index_axis_move(ndarray::Axis(0), i);
    }
    v.into_dimensionality::<Ix2>().expect("two axes remain")
}

impl<'t, T: Float> Var<'t, T> {
    /// Matrix product `self · other`: `[m, k] · [k, n] -> [m, n]`, or batched
    /// `[.., m, k] · [.., k, n] -> [.., m, n]` with the batch axes broadcast.
    ///
    /// # Errors
    /// [`Error::BadShape`] for a value with fewer than 2 axes, [`Error::ShapeMismatch`] if the
    /// inner sizes differ or the batch axes do not broadcast.
    pub fn matmul(self, other: Var<'t, T>) -> Result<Var<'t, T>> {
        let y = matmul_array(&self.value(), &other.value())?;
        self.tape().record(y, &[self, other], MatMul)
    }
}

/// The node of [`linear`]: inputs `x`, `w` and, if given, `b`.
struct Linear {
    has_bias: bool,
}

impl<T: Float> Op<T> for Linear {
    fn name(&self) -> String {
        format!("linear(bias={})", self.has_bias)
    }

    /// With `x` and `g` seen as matrices `[m, in]` and `[m, out]`: `grad_x = g·w`,
    /// `grad_w = gᵀ·x`, `grad_b = Σ_rows g`, written with ops so they can be differentiated
    /// again. No transpose of `w` or `x` is copied: only `g`'s, the smallest of the three.
    fn backward<'t>(&self, inputs: &[Var<'t, T>], _y: Var<'t, T>, g: Var<'t, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        let (x, w) = (inputs[0], inputs[1]);
        let (out_features, in_features) = (w.shape()[0], w.shape()[1]);
        let x_shape = x.shape();
        let rows = x_shape[..x_shape.len() - 1].iter().product::<usize>();
        let as_matrix = |v: Var<'t, T>, cols: usize| {
            if v.ndim() == 2 { Ok(v) } else { v.reshape(&[rows, cols]) }
        };
        let g2 = as_matrix(g, out_features)?;
        let grad_x = x.requires_grad().then(|| g2.matmul(w)?.reshape(&x_shape)).transpose()?;
        let grad_w = w
            .requires_grad()
            .then(|| g2.transpose(0, 1)?.matmul(as_matrix(x, in_features)?))
            .transpose()?;
        let mut grads = vec![grad_x, grad_w];
        if self.has_bias {
            let b = inputs[2];
            grads.push(b.requires_grad().then(|| g2.sum_axes(&[0], false)).transpose()?);
        }
        Ok(grads)
    }
}

/// PyTorch's `F.linear`: `y = x·wᵀ + b` over the last axis of `x`, the op behind
/// [`crate::nn::Linear`].
///
/// One matrix product on `x` and `w` as they lie (`wᵀ` is a view, never a copy) into rows
/// that already hold `b`, where `x.matmul(w.transpose(0, 1)?)?.add(b)` copies `w` transposed,
/// copies `w` and `x` transposed again in its backward, and passes over the output once more
/// for the bias (measured on the VAE of `examples/vae.rs`, 2 threads: its step 12.9 → 12.3 ms).
///
/// Shapes: `x: [.., in]` (a single vector `[in]` too), `w: [out, in]`, `b: [out]` →
/// `[.., out]`.
///
/// # Errors
/// [`Error::BadShape`] if `x` has no axis, `w` is not 2-D or `b` not `[out]`;
/// [`Error::ShapeMismatch`] if `x`'s last axis is not `in`; [`Error::MixedTapes`] if the inputs
/// live on different tapes. Nothing is recorded when an error is returned.
///
/// # Example
/// ```
/// use adjoint::ops::matmul::linear;
/// use adjoint::Tape;
/// use ndarray::{arr1, arr2};
///
/// let tape = Tape::<f64>::new();
/// let x = tape.constant(arr2(&[[1.0, 2.0], [3.0, 4.0]]).into_dyn());
/// let w = tape.param(arr2(&[[1.0, 0.0], [1.0, 1.0], [0.0, -1.0]]).into_dyn()); // [out 3, in 2]
/// let b = tape.param(arr1(&[0.5, 0.0, 1.0]).into_dyn());
/// let y = linear(x, w, Some(b))?;
/// assert_eq!(y.value().as_slice().unwrap(), &[1.5, 3.0, -1.0, 3.5, 7.0, -3.0]);
/// # Ok::<(), adjoint::Error>(())
/// ```
pub fn linear<'t, T: Float>(x: Var<'t, T>, w: Var<'t, T>, b: Option<Var<'t, T>>) -> Result<Var<'t, T>> {
    const OP: &str = "linear";
    let inputs: Vec<Var<'t, T>> = [Some(x), Some(w), b].into_iter().flatten().collect();
    x.tape().check_inputs(OP, &inputs)?;
    let (x_shape, w_shape) = (x.shape(), w.shape());
    if w_shape.len() != 2 {
        return Err(bad_shape(OP, "weight", &w_shape, "must be [out_features, in_features]"));
    }
    let (out_features, in_features) = (w_shape[0], w_shape[1]);
    let Some(&last) = x_shape.last() else {
        return Err(bad_shape(OP, "x", &x_shape, "needs at least 1 axis: [.., in_features]"));
    };
    if last != in_features {
        return Err(Error::ShapeMismatch {
            op: OP,
            lhs: x_shape,
            rhs: w_shape,
            reason: format!("x's last axis must be in_features = {in_features}"),
        });
    }
    if let Some(b) = b
        && b.shape() != [out_features]
    {
        return Err(bad_shape(
            OP,
            "bias",
            &b.shape(),
            format!("must be [out_features] = [{out_features}]"),
        ));
    }
    let rows = x_shape[..x_shape.len() - 1].iter().product::<usize>();
    let y_shape: Vec<usize> = x_shape[..x_shape.len() - 1]
        .iter()
        .copied()
        .chain([out_features])
        .collect();
    let mut y = size::zeros(OP, "output", &y_shape)?;
    let (xv, wv) = (x.value(), w.value());
    let x2 = ArrayView2::from_shape((rows, in_features), super::contiguous(&xv)).expect("x is [rows, in]");
    let w2 = ArrayView2::from_shape((out_features, in_features), super::contiguous(&wv)).expect("w is [out, in]");
    {
        let mut y2 = y
            .view_mut()
            .into_shape_with_order((rows, out_features))
            .expect("a fresh array is contiguous");
        if let Some(b) = b {
            let bv = b.value();
            for mut row in y2.rows_mut() {
                row.assign(&bv.view().into_dimensionality::<ndarray::Ix1>().expect("b is [out]"));
            }
        }
        gemm(x2, w2.t(), b.is_some(), y2);
    }
    x.tape().record(y, &inputs, Linear { has_bias: b.is_some() })
}
