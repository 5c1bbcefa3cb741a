//! Average pooling, the linear map `y = A·x` with `A[o, i] = 1/D(o)` for each input cell `i`
//! of window `o`. Its backward is `Aᵀ`, the scatter-average spreading each `grad_y[o]/D(o)`
//! evenly back over its window, and the backward of that is `A` again: each op's gradient rule
//! calls the other.

use std::rc::Rc;

use super::kernels::{self, Windows};
use super::{Divisor, PoolOptions, PoolShape, Pooling, divisor, pool_rank, pool_shape};
use crate::error::Result;
use crate::float::Float;
use crate::ops::contiguous;
use crate::ops::size;
use crate::tape::{Op, Var};

/// A validated average pooling with its windows, shared by both directions.
struct Plan {
    shape: PoolShape,
    windows: Windows,
    divisor: Divisor,
}

/// `y = A·x`.
struct AvgPool(Rc<Plan>);

/// `grad_x = Aᵀ·grad_y`.
struct AvgPoolTranspose(Rc<Plan>);

impl<T: Float> Op<T> for AvgPool {
    fn name(&self) -> String {
        format!("{}({})", self.0.shape.op, self.0.shape.settings())
    }

    /// `y = A·x`, so `grad_x = Aᵀ·grad_y`.
    fn backward<'t>(&self, _: &[Var<'t, T>], _y: Var<'t, T>, grad_y: Var<'t, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        Ok(vec![Some(transpose(grad_y, &self.0)?)])
    }
}

impl<T: Float> Op<T> for AvgPoolTranspose {
    fn name(&self) -> String {
        format!("{}_backward({})", self.0.shape.op, self.0.shape.settings())
    }

    /// `z = Aᵀ·g`, so `grad_g = A·grad_z`: the average pooling itself.
    fn backward<'t>(&self, _: &[Var<'t, T>], _y: Var<'t, T>, grad: Var<'t, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        Ok(vec![Some(forward(grad, &self.0)?)])
    }
}

/// `A·x` recorded: `x` of the input's shape → the output's.
fn forward<'t, T: Float>(x: Var<'t, T>, plan: &Rc<Plan>) -> Result<Var<'t, T>> {
    let y = kernels::avg_pool(plan.shape.op, &plan.windows, plan.divisor, contiguous(&x.value()))?;
    x.tape()
        .record(size::array(&plan.shape.y, y)?, &[x], AvgPool(Rc::clone(plan)))
}

/// `Aᵀ·g` recorded: `g` of the output's shape → the input's.
fn transpose<'t, T: Float>(g: Var<'t, T>, plan: &Rc<Plan>) -> Result<Var<'t, T>> {
    let values = kernels::avg_pool_transpose(plan.shape.op, &plan.windows, plan.divisor, contiguous(&g.value()))?;
    g.tape().record(
        size::array(&plan.shape.x, values)?,
        &[g],
        AvgPoolTranspose(Rc::clone(plan)),
    )
}

/// Average pooling over the spatial axes of `x: [n, c, i..]`, 1 to 3 of them (PyTorch's
/// `avg_pool{1,2,3}d`): each output cell is the mean of its window.
///
/// ```text
/// y[n, c, o..] = Σ_t x[n, c, o·s + t − p..] / D(o)      (padding is 0)
/// ```
///
/// `D(o)` is, as in PyTorch: `divisor_override` if given; otherwise the window's cells in the
/// input and its padding (`count_include_pad`, the default; a ceil-mode window's cells past the
/// padding do not count), or in the input alone. NaN and ±∞ propagate as in any sum.
///
/// Shapes: `x: [n, c, i..]` → `y: [n, c, o..]` with `o = ⌊(i + 2p − k)/s⌋ + 1`, or with
/// `ceil_mode` PyTorch's rounding up (see
/// [`AxisGeometry::pool_output_size`](crate::ops::conv::AxisGeometry::pool_output_size)).
/// The rank-specific [`avg_pool1d`], [`avg_pool2d`], [`avg_pool3d`] also take an unbatched
/// `[c, i..]`.
///
/// # Errors
/// Every setting PyTorch refuses, before anything is recorded:
/// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a kernel size or stride of 0,
/// a `divisor_override` of 0, a per-axis setting of the wrong length, padding above half the
/// kernel size, or a dilation other than 1 (PyTorch's average has none);
/// [`Error::BadShape`](crate::Error::BadShape) for an `x` of the wrong rank, with an empty
/// channel or spatial axis, or too small for one window; an output above
/// [`MAX_ELEMENTS`](crate::ops::size::MAX_ELEMENTS) is refused too.
///
/// # Example
/// ```
/// use adjoint::ops::pool::{avg_pool, PoolOptions};
/// use adjoint::Tape;
/// use ndarray::{ArrayD, IxDyn};
///
/// let tape = Tape::<f64>::new();
/// let x = tape.param(ArrayD::from_shape_vec(IxDyn(&[1, 1, 4]), vec![1.0, 2.0, 3.0, 6.0]).unwrap());
/// // Windows [p, 1], [2, 3], [6, p] over one cell of padding on each side:
/// let counted = avg_pool(x, &PoolOptions::new(2).padding(1))?;
/// assert_eq!(counted.value().as_slice().unwrap(), &[0.5, 2.5, 3.0]);
/// let y = avg_pool(x, &PoolOptions::new(2).padding(1).count_include_pad(false))?;
/// assert_eq!(y.value().as_slice().unwrap(), &[1.0, 2.5, 6.0]);
/// let grads = tape.backward(y.sum()?)?;
/// assert_eq!(grads[x].as_slice().unwrap(), &[1.0, 0.5, 0.5, 1.0]);
/// # Ok::<(), adjoint::Error>(())
/// ```
pub fn avg_pool<'t, T: Float>(x: Var<'t, T>, opts: &PoolOptions) -> Result<Var<'t, T>> {
    named("avg_pool", None, x, opts)
}

fn named<'t, T: Float>(op: &'static str, rank: Option<usize>, x: Var<'t, T>, opts: &PoolOptions) -> Result<Var<'t, T>> {
    let divisor = divisor(opts);
    let shape = pool_shape(op, Pooling::Avg(divisor), rank, &x.shape(), opts)?;
    let windows = Windows::new(&shape)?;
    let plan = Rc::new(Plan {
        shape,
        windows,
        divisor,
    });
    forward(x, &plan)
}

pool_rank!(avg_pool1d, avg_pool, 1, "`x: [n, c, l]`", "2 or 3");
pool_rank!(avg_pool2d, avg_pool, 2, "`x: [n, c, h, w]`", "3 or 4");
pool_rank!(avg_pool3d, avg_pool, 3, "`x: [n, c, d, h, w]`", "4 or 5");
