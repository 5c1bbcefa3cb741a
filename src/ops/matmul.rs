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
