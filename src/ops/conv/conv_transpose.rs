//! Transposed convolution: the *scatter* `y[o·s + t·d − p] += w[t] · x[o]`, the matrix `Aᵀ`.
//! Its backward is the conv's forward (`A`), in [`ConvTranspose::backward`].

use super::conv::conv_with;
use super::correlate::{conv_and_correlate, correlate};
use super::kernels::{self, ConvShape};
use super::options::{ConvTransposeOptions, conv_transpose_shape};
use super::{add_bias, batched_shape, check_bias, describe, with_batch_axis};
use crate::error::Result;
use crate::float::Float;
use crate::ops::contiguous;
use crate::ops::size;
use crate::tape::{Op, Var};

/// The transposed-conv node.
pub(crate) struct ConvTranspose {
    pub(crate) shape: ConvShape,
}

impl<T: Float> Op<T> for ConvTranspose {
    fn name(&self) -> String {
        describe("conv_transpose", &self.shape)
    }

    /// `y = A(w)ᵀ·x`, so `grad_x = A(w)·grad_y` — the conv with the same weight and settings —
    /// and `grad_w` is the same correlation as the conv's, with `grad_y` on the conv's input
    /// side and `x` on its output side. Both read `grad_y` through the same unrolled matrix,
    /// so when both are wanted they share it (measured ~15% of a small autoencoder's step).
    fn backward<'t>(
        &self,
        inputs: &[Var<'t, T>],
        _y: Var<'t, T>,
        grad_y: Var<'t, T>,
    ) -> Result<Vec<Option<Var<'t, T>>>> {
        let (x, w) = (inputs[0], inputs[1]);
        if x.requires_grad() && w.requires_grad() {
            // Both at once: the same two ops, sharing their unroll of `grad_y`.
            let (grad_x, grad_w) = conv_and_correlate(grad_y, w, x, self.shape.clone())?;
            return Ok(vec![Some(grad_x), Some(grad_w)]);
        }
        let grad_x = x
            .requires_grad()
            .then(|| conv_with(grad_y, w, self.shape.clone()))
            .transpose()?;
        let grad_w = w
            .requires_grad()
            .then(|| correlate(grad_y, x, self.shape.clone()))
            .transpose()?;
        Ok(vec![grad_x, grad_w])
    }
}

/// Transposed-conv forward on a validated geometry: `x: [n, c_in, small..]` →
/// `[n, c_out, big..]`. Also the backward of the conv.
pub(crate) fn conv_transpose_with<'t, T: Float>(x: Var<'t, T>, w: Var<'t, T>, shape: ConvShape) -> Result<Var<'t, T>> {
    let (xv, wv) = (x.value(), w.value());
    let y = kernels::scatter(&shape, contiguous(&xv), contiguous(&wv))?;
    let dims: Vec<usize> = [shape.batch, shape.c_big]
        .into_iter()
        .chain(shape.big.iter().copied())
        .collect();
    let y = size::array(&dims, y)?;
    x.tape().record(y, &[x, w], ConvTranspose { shape })
}

/// Transposed convolution of any spatial rank (taken from `w`), PyTorch's
/// `conv_transpose{1,2,3}d`: the adjoint of [`conv`](super::conv) with the same weight and
/// settings.
///
/// ```text
/// y[n, g·(c_out/g) + c, o·s + t·d − p_before..] += x[n, i_c, o..] · w[i_c, c, t..]   (+ b)
/// ```
///
/// Shapes: `x: [n, c_in, i..]` (or unbatched), `w: [c_in, c_out/g, k..]`, `b: [c_out]` →
/// `y: [n, c_out, o..]` with `o = (i − 1)·s − p_b − p_a + d·(k − 1) + output_padding + 1`,
/// or the size TensorFlow's `SAME`/`VALID` or an explicit `output_size` gives.
///
/// # Errors
/// Every setting PyTorch refuses, before any work: see [`ConvTransposeOptions`].
///
/// # Example
/// ```
/// use adjoint::ops::conv::{conv_transpose, ConvTransposeOptions};
/// use adjoint::Tape;
/// use ndarray::ArrayD;
///
/// let tape = Tape::<f64>::new();
/// let x = tape.constant(ArrayD::from_elem(vec![1, 1, 3], 1.0));
/// let w = tape.param(ArrayD::from_shape_vec(vec![1, 1, 3], vec![1.0, 2.0, 3.0]).unwrap());
/// let y = conv_transpose(x, w, None, &ConvTransposeOptions::new().stride(2))?;
/// // The shape of a 7-long input comes back; the values are the kernel's overlapping copies.
/// assert_eq!(y.value().as_slice().unwrap(), &[1.0, 2.0, 4.0, 2.0, 4.0, 2.0, 3.0]);
/// # Ok::<(), adjoint::Error>(())
/// ```
pub fn conv_transpose<'t, T: Float>(
    x: Var<'t, T>,
    w: Var<'t, T>,
    b: Option<Var<'t, T>>,
    opts: &ConvTransposeOptions,
) -> Result<Var<'t, T>> {
    conv_transpose_named("conv_transpose", x, w, b, opts)
}

fn conv_transpose_named<'t, T: Float>(
    op: &'static str,
    x: Var<'t, T>,
    w: Var<'t, T>,
    b: Option<Var<'t, T>>,
    opts: &ConvTransposeOptions,
) -> Result<Var<'t, T>> {
    // Up front: the op records several nodes (reshape, conv, bias), and must fail before any.
    x.tape()
        .check_inputs(op, &[Some(x), Some(w), b].into_iter().flatten().collect::<Vec<_>>())?;
    let (x_shape, unbatched) = batched_shape(op, &x.shape(), &w.shape())?;
    let shape = conv_transpose_shape(op, opts, unbatched, &x_shape, &w.shape())?;
    check_bias(op, b, shape.c_big)?;
    with_batch_axis(x, &x_shape, unbatched, |x| {
        add_bias(conv_transpose_with(x, w, shape)?, b)
    })
}

macro_rules! conv_transpose_rank {
    ($name:ident, $rank:literal, $layout:literal) => {
        #[doc = concat!("`", stringify!($name), "`: [`conv_transpose`] with ", $layout, ".")]
        ///
        /// # Errors
        /// As [`conv_transpose`], and [`Error::BadShape`](crate::Error::BadShape) if `w` is not
        /// of this rank.
        pub fn $name<'t, T: Float>(
            x: Var<'t, T>,
            w: Var<'t, T>,
            b: Option<Var<'t, T>>,
            opts: &ConvTransposeOptions,
        ) -> Result<Var<'t, T>> {
            super::check_rank(stringify!($name), w, $rank)?;
            conv_transpose_named(stringify!($name), x, w, b, opts)
        }
    };
}

conv_transpose_rank!(conv_transpose1d, 1, "`x: [n, c_in, l]`, `w: [c_in, c_out/g, k]`");
conv_transpose_rank!(
    conv_transpose2d,
    2,
    "`x: [n, c_in, h, w]`, `w: [c_in, c_out/g, k_h, k_w]`"
);
conv_transpose_rank!(
    conv_transpose3d,
    3,
    "`x: [n, c_in, d, h, w]`, `w: [c_in, c_out/g, k_d, k_h, k_w]`"
);
