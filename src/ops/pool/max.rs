//! Max pooling: the gather `y[o] = x[m(o)]` of each window's arg-max `m(o)`. Its backward is
//! the gather's transpose, the scatter that routes `grad_y[o]` to `m(o)`; the backward of that
//! scatter is the gather again. Both record the arg-max found by the forward, so second order
//! works.

use std::rc::Rc;

use super::kernels::{self, Windows};
use super::{PoolOptions, Pooling, pool_rank, pool_shape};
use crate::error::Result;
use crate::float::Float;
use crate::ops::{contiguous, size};
use crate::tape::{Op, Var};

/// Where each output cell took its value from, found by the forward.
struct Route {
    /// Per output cell, the flat index in `x` of its window's arg-max (or `NO_INPUT`).
    argmax: Vec<usize>,
    x: Vec<usize>,
    y: Vec<usize>,
    /// Input and output cells per plane: the arg-max of a window lies in its own plane.
    plane: (usize, usize),
    /// The op and its settings, for printing.
    op: &'static str,
    settings: String,
}

/// `y = x[m]`: max-pool with its arg-max fixed, a linear map of `x`.
struct Gather(Rc<Route>);

/// `grad_x[m(o)] += grad_y[o]`: the transpose of [`Gather`].
struct Scatter(Rc<Route>);

impl<T: Float> Op<T> for Gather {
    fn name(&self) -> String {
        format!("{}({})", self.0.op, self.0.settings)
    }

    /// The gather's matrix has one 1 per row, at column `m(o)`; its transpose scatters: each
    /// window's gradient goes to the one cell that won it.
    fn backward<'t>(&self, _: &[Var<'t, T>], _y: Var<'t, T>, grad_y: Var<'t, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        Ok(vec![Some(scatter(grad_y, &self.0)?)])
    }
}

impl<T: Float> Op<T> for Scatter {
    fn name(&self) -> String {
        format!("{}_backward({})", self.0.op, self.0.settings)
    }

    /// The transpose of the scatter is the gather by the same arg-max.
    fn backward<'t>(&self, _: &[Var<'t, T>], _y: Var<'t, T>, grad: Var<'t, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        Ok(vec![Some(gather(grad, &self.0)?)])
    }
}

/// `v[m]` as a recorded op: `v` of `x`'s shape → `y`'s shape.
fn gather<'t, T: Float>(v: Var<'t, T>, route: &Rc<Route>) -> Result<Var<'t, T>> {
    let values = kernels::gather(route.op, &route.argmax, contiguous(&v.value()))?;
    v.tape()
        .record(size::array(&route.y, values)?, &[v], Gather(Rc::clone(route)))
}

/// `g` scattered to the arg-max as a recorded op: `g` of `y`'s shape → `x`'s shape.
fn scatter<'t, T: Float>(g: Var<'t, T>, route: &Rc<Route>) -> Result<Var<'t, T>> {
    let len = route.x.iter().product();
    let values = kernels::scatter(route.op, &route.argmax, contiguous(&g.value()), route.plane, len)?;
    g.tape()
        .record(size::array(&route.x, values)?, &[g], Scatter(Rc::clone(route)))
}

/// Max pooling over the spatial axes of `x: [n, c, i..]`, 1 to 3 of them (PyTorch's
/// `max_pool{1,2,3}d`): each output cell is the largest input cell of its window.
///
/// ```text
/// y[n, c, o..] = max_t x[n, c, o·s + t·d − p..]      (padding is −∞: never chosen)
/// ```
///
/// As in PyTorch, a window holding NaN gives NaN, and a tie goes to the window's first maximum
/// in row-major order; the gradient goes to exactly that one cell (to the last NaN, if several).
/// A window of −∞ picks its first input cell.
///
/// Shapes: `x: [n, c, i..]` → `y: [n, c, o..]` with `o = ⌊(i + 2p − d·(k − 1) − 1)/s⌋ + 1`, or
/// with `ceil_mode` PyTorch's rounding up (see
/// [`AxisGeometry::pool_output_size`](crate::ops::conv::AxisGeometry::pool_output_size)).
/// The rank-specific [`max_pool1d`], [`max_pool2d`], [`max_pool3d`] also take an unbatched
/// `[c, i..]`.
///
/// # Errors
/// Every setting PyTorch refuses, before anything is recorded:
/// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a kernel size, stride or
/// dilation of 0, a per-axis setting of the wrong length, padding above half the kernel size,
/// or an avg-pool setting (`divisor_override`, `count_include_pad = false`);
/// [`Error::BadShape`](crate::Error::BadShape) for an `x` of the wrong rank, with an empty
/// channel or spatial axis, or too small for one window; an output above
/// [`MAX_ELEMENTS`](crate::ops::size::MAX_ELEMENTS) is refused too.
///
/// # Example
/// ```
/// use adjoint::ops::pool::{max_pool, PoolOptions};
/// use adjoint::Tape;
/// use ndarray::{ArrayD, IxDyn};
///
/// let tape = Tape::<f64>::new();
/// let x = tape.param(ArrayD::from_shape_vec(IxDyn(&[1, 1, 2, 4]), vec![
///     1.0, 5.0, 2.0, 2.0,
///     3.0, 4.0, 0.0, 1.0,
/// ]).unwrap());
/// let y = max_pool(x, &PoolOptions::new(2))?;
/// assert_eq!(y.value().as_slice().unwrap(), &[5.0, 2.0]);
/// let grads = tape.backward(y.sum()?)?;
/// // The tie 2, 2 goes to the first: one cell per window receives the gradient.
/// assert_eq!(grads[x].as_slice().unwrap(), &[0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
/// # Ok::<(), adjoint::Error>(())
/// ```
pub fn max_pool<'t, T: Float>(x: Var<'t, T>, opts: &PoolOptions) -> Result<Var<'t, T>> {
    named("max_pool", None, x, opts)
}

fn named<'t, T: Float>(op: &'static str, rank: Option<usize>, x: Var<'t, T>, opts: &PoolOptions) -> Result<Var<'t, T>> {
    let shape = pool_shape(op, Pooling::Max, rank, &x.shape(), opts)?;
    let windows = Windows::new(&shape)?;
    let (y, argmax) = kernels::max_pool(op, &windows, contiguous(&x.value()))?;
    let y = size::array(&shape.y, y)?;
    let route = Route {
        argmax,
        settings: shape.settings(),
        plane: (windows.in_len, windows.out_len),
        x: shape.x,
        y: shape.y,
        op,
    };
    x.tape().record(y, &[x], Gather(Rc::new(route)))
}

pool_rank!(max_pool1d, max_pool, 1, "`x: [n, c, l]`", "2 or 3");
pool_rank!(max_pool2d, max_pool, 2, "`x: [n, c, h, w]`", "3 or 4");
pool_rank!(max_pool3d, max_pool, 3, "`x: [n, c, d, h, w]`", "4 or 5");
