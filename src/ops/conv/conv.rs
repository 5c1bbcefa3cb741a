//! Convolution: the *gather* `y[o] = Σ_t w[t] · x[o·s + t·d − p]`, the matrix `A`.
//! Its backward is the transposed conv's forward (`Aᵀ`), in [`Conv::backward`].

use super::conv_transpose::conv_transpose_with;
use super::correlate::correlate;
use super::kernels::{self, ConvShape};
use super::options::{ConvOptions, conv_shape};
use super::{add_bias, batched_shape, check_bias, describe, with_batch_axis};
use crate::error::Result;
use crate::float::Float;
use crate::ops::{contiguous, size};
use crate::tape::{Op, Var};

/// The conv node: it keeps only its geometry; `x` and `w` are its inputs on the tape.
pub(crate) struct Conv {
    pub(crate) shape: ConvShape,
}

impl<T: Float> Op<T> for Conv {
    fn name(&self) -> String {
        describe("conv", &self.shape)
    }

    /// `y = A(w)·x`, so `grad_x = A(w)ᵀ·grad_y` — the transposed conv with the same weight and
    /// settings, sized back to `x` (PyTorch's `output_padding = (i + 2p − k_e) mod s`) — and
    /// `grad_w` correlates `x` with `grad_y`.
    fn backward<'t>(
        &self,
        inputs: &[Var<'t, T>],
        _y: Var<'t, T>,
        grad_y: Var<'t, T>,
    ) -> Result<Vec<Option<Var<'t, T>>>> {
        let (x, w) = (inputs[0], inputs[1]);
        let grad_x = x
            .requires_grad()
            .then(|| conv_transpose_with(grad_y, w, self.shape.clone()))
            .transpose()?;
        let grad_w = w
            .requires_grad()
            .then(|| correlate(x, grad_y, self.shape.clone()))
            .transpose()?;
        Ok(vec![grad_x, grad_w])
    }
}

/// Conv forward on an already validated geometry: `x: [n, c_in, big..]` → `[n, c_out, small..]`.
/// Also the backward of the transposed conv.
pub(crate) fn conv_with<'t, T: Float>(x: Var<'t, T>, w: Var<'t, T>, shape: ConvShape) -> Result<Var<'t, T>> {
    let (xv, wv) = (x.value(), w.value());
    let y = kernels::gather(&shape, contiguous(&xv), contiguous(&wv))?;
    record_conv(x, w, y, shape)
}

/// Records `y` (the gather of `x` with `w`) as the conv node.
pub(super) fn record_conv<'t, T: Float>(
    x: Var<'t, T>,
    w: Var<'t, T>,
    y: Vec<T>,
    shape: ConvShape,
) -> Result<Var<'t, T>> {
    let dims: Vec<usize> = [shape.batch, shape.c_small]
        .into_iter()
        .chain(shape.small.iter().copied())
        .collect();
    let y = size::array(&dims, y)?;
    x.tape().record(y, &[x, w], Conv { shape })
}

/// Convolution of any spatial rank (taken from `w`), PyTorch's `conv{1,2,3}d`.
///
/// ```text
/// y[n, o_c, o..] = b[o_c] + Σ_{c, t} w[o_c, c, t..] · x[n, g·(c_in/g) + c, o·s + t·d − p_before..]
/// ```
///
/// Shapes: `x: [n, c_in, i..]` (or unbatched `[c_in, i..]`), `w: [c_out, c_in/g, k..]`,
/// `b: [c_out]` → `y: [n, c_out, o..]` with `o = ⌊(i + p_b + p_a − d·(k−1) − 1)/s⌋ + 1`.
///
/// # Errors
/// Every setting PyTorch refuses, before any work: see [`ConvOptions`] and the crate's
/// [`Error`](crate::Error) variants.
///
/// # Example
/// ```
/// use adjoint::ops::conv::{conv, ConvOptions};
/// use adjoint::Tape;
/// use ndarray::ArrayD;
///
/// let tape = Tape::<f64>::new();
/// let x = tape.constant(ArrayD::from_elem(vec![1, 1, 7], 1.0));
/// let w = tape.param(ArrayD::from_shape_vec(vec![1, 1, 3], vec![1.0, 2.0, 3.0]).unwrap());
/// let y = conv(x, w, None, &ConvOptions::new().stride(2))?;
/// assert_eq!(y.shape(), vec![1, 1, 3]); // ⌊(7 − 3)/2⌋ + 1
/// assert_eq!(y.value().as_slice().unwrap(), &[6.0, 6.0, 6.0]);
/// # Ok::<(), adjoint::Error>(())
/// ```
pub fn conv<'t, T: Float>(
    x: Var<'t, T>,
    w: Var<'t, T>,
    b: Option<Var<'t, T>>,
    opts: &ConvOptions,
) -> Result<Var<'t, T>> {
    conv_named("conv", x, w, b, opts)
}

pub(super) fn conv_named<'t, T: Float>(
    op: &'static str,
    x: Var<'t, T>,
    w: Var<'t, T>,
    b: Option<Var<'t, T>>,
    opts: &ConvOptions,
) -> Result<Var<'t, T>> {
    // Up front: the op records several nodes (reshape, conv, bias), and must fail before any.
    x.tape()
        .check_inputs(op, &[Some(x), Some(w), b].into_iter().flatten().collect::<Vec<_>>())?;
    let (x_shape, unbatched) = batched_shape(op, &x.shape(), &w.shape())?;
    let shape = conv_shape(op, opts, &x_shape, &w.shape())?;
    check_bias(op, b, shape.c_small)?;
    with_batch_axis(x, &x_shape, unbatched, |x| add_bias(conv_with(x, w, shape)?, b))
}

macro_rules! conv_rank {
    ($name:ident, $rank:literal, $layout:literal) => {
        #[doc = concat!("`", stringify!($name), "`: [`conv`] with ", $layout, ".")]
        ///
        /// # Errors
        /// As [`conv`], and [`Error::BadShape`](crate::Error::BadShape) if `w` is not of this rank.
        pub fn $name<'t, T: Float>(
            x: Var<'t, T>,
            w: Var<'t, T>,
            b: Option<Var<'t, T>>,
            opts: &ConvOptions,
        ) -> Result<Var<'t, T>> {
            super::check_rank(stringify!($name), w, $rank)?;
            conv_named(stringify!($name), x, w, b, opts)
        }
    };
}

conv_rank!(conv1d, 1, "`x: [n, c_in, l]`, `w: [c_out, c_in/g, k]`");
conv_rank!(conv2d, 2, "`x: [n, c_in, h, w]`, `w: [c_out, c_in/g, k_h, k_w]`");
conv_rank!(
    conv3d,
    3,
    "`x: [n, c_in, d, h, w]`, `w: [c_out, c_in/g, k_d, k_h, k_w]`"
);
