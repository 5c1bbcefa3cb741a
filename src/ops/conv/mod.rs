//! Convolution and transposed convolution: each one's backward is the other's forward.
//!
//! A conv is a matrix product `y = A·x`, each row of `A` one position of the sliding kernel; a
//! transposed conv is `y = Aᵀ·x` with the same weight. Since `y = A·x` gives `∂L/∂x = Aᵀ·∂L/∂y`:
//!
//! | op | forward | gradient for `x` | gradient for `w` |
//! |---|---|---|---|
//! | [`conv`] ([`conv.rs`](conv::conv)) | gather: `y[o] += x[o·s + t·d − p]·w[t]` | `conv_transpose(grad_y, w)` | `correlate(x, grad_y)` |
//! | [`conv_transpose`] | scatter: `y[o·s + t·d − p] += x[o]·w[t]` | `conv(grad_y, w)` | `correlate(grad_y, x)` |
//! | `correlate(big, small)` | `w[t] = Σ_o small[o]·big[o·s + t·d − p]` | `conv_transpose(small, G)` | `conv(big, G)` |
//!
//! The files mirror the table: `conv.rs` and `conv_transpose.rs` side by side, each one's
//! `backward` calling the other's forward; `correlate.rs` serves both weight gradients;
//! `kernels.rs` holds the one index map and the three array kernels; `geometry.rs` owns all size
//! arithmetic; `options.rs` the settings and their validation; [`views`] the teaching views
//! (the dense matrix `A` and the zero-insertion recipe).
//!
//! Weight layouts follow PyTorch: conv `[c_out, c_in/g, k..]`, transposed conv
//! `[c_in, c_out/g, k..]`. They are the same array seen from the two ends of one matrix.

#[allow(clippy::module_inception)] // conv.rs beside conv_transpose.rs is the point of the layout
mod conv;
mod conv_transpose;
mod correlate;
pub mod geometry;
mod kernels;
mod options;
pub mod views;

pub use conv::{conv, conv1d, conv2d, conv3d};
pub use conv_transpose::{conv_transpose, conv_transpose1d, conv_transpose2d, conv_transpose3d};
pub use geometry::AxisGeometry;
pub use options::{ConvOptions, ConvTransposeOptions, Padding, PerAxis, TransposePadding};

use kernels::ConvShape;

use crate::error::{Result, bad_shape};
use crate::float::Float;
use crate::tape::{Op, Var};

/// `"conv2d(s=[2, 2], p=[(1, 1), (1, 1)], d=[1, 1], g=1)"`, for printing the tape.
fn describe(op: &str, shape: &ConvShape) -> String {
    let s: Vec<usize> = shape.axes.iter().map(|a| a.stride).collect();
    let p: Vec<(usize, usize)> = shape.axes.iter().map(|a| (a.pad_before, a.pad_after)).collect();
    let d: Vec<usize> = shape.axes.iter().map(|a| a.dilation).collect();
    format!(
        "{op}{}d(s={s:?}, p={p:?}, d={d:?}, g={})",
        shape.axes.len(),
        shape.groups
    )
}

fn check_rank<T: Float>(op: &'static str, w: Var<'_, T>, rank: usize) -> Result<()> {
    let shape = w.shape();
    if shape.len() != rank + 2 {
        return Err(bad_shape(
            op,
            "w",
            &shape,
            format!("needs {} axes [c, c/groups, {rank} kernel sizes]", rank + 2),
        ));
    }
    Ok(())
}

/// `x`'s shape with a batch axis: PyTorch accepts an unbatched `[c, spatial..]`. Returns the
/// batched shape and whether `x` lacked the axis. Only shapes: nothing is recorded before every
/// setting has been checked.
fn batched_shape(op: &'static str, xs: &[usize], ws: &[usize]) -> Result<(Vec<usize>, bool)> {
    let xs = xs.to_vec();
    if ws.len() >= 3 && xs.len() + 1 == ws.len() {
        return Ok((std::iter::once(1).chain(xs).collect(), true));
    }
    if ws.len() >= 3 && xs.len() != ws.len() {
        return Err(bad_shape(
            op,
            "x",
            &xs,
            format!(
                "needs {} axes [n, c, spatial..] or {} unbatched, to match w {ws:?}",
                ws.len(),
                ws.len() - 1
            ),
        ));
    }
    Ok((xs, false))
}

/// The shape [`conv`] gives for inputs of shapes `x` and `w`, without computing anything: every
/// check the op makes, with the same errors. Useful to size a model, or to check settings
/// (a user interface, a fuzzer) without allocating the output.
///
/// # Errors
/// As [`conv`].
///
/// # Example
/// ```
/// use adjoint::ops::conv::{conv_output_shape, ConvOptions};
/// let opts = ConvOptions::new().stride(2).padding(1);
/// assert_eq!(conv_output_shape(&[8, 1, 28, 28], &[16, 1, 3, 3], &opts)?, vec![8, 16, 14, 14]);
/// assert_eq!(conv_output_shape(&[1, 28, 28], &[16, 1, 3, 3], &opts)?, vec![16, 14, 14]);
/// assert!(conv_output_shape(&[8, 1, 28, 28], &[16, 1, 3, 3], &opts.padding(usize::MAX)).is_err());
/// # Ok::<(), adjoint::Error>(())
/// ```
pub fn conv_output_shape(x: &[usize], w: &[usize], opts: &ConvOptions) -> Result<Vec<usize>> {
    let (batched, unbatched) = batched_shape("conv", x, w)?;
    let shape = options::conv_shape("conv", opts, &batched, w)?;
    Ok(output_dims(shape.batch, shape.c_small, &shape.small, unbatched))
}

/// The shape [`conv_transpose`] gives for inputs of shapes `x` and `w`, without computing
/// anything, as [`conv_output_shape`].
///
/// # Errors
/// As [`conv_transpose`].
///
/// # Example
/// ```
/// use adjoint::ops::conv::{conv_transpose_output_shape, ConvTransposeOptions};
/// let opts = ConvTransposeOptions::new().stride(2).padding(1).output_padding(1);
/// assert_eq!(conv_transpose_output_shape(&[8, 16, 7, 7], &[16, 1, 3, 3], &opts)?, vec![8, 1, 14, 14]);
/// # Ok::<(), adjoint::Error>(())
/// ```
pub fn conv_transpose_output_shape(x: &[usize], w: &[usize], opts: &ConvTransposeOptions) -> Result<Vec<usize>> {
    let (batched, unbatched) = batched_shape("conv_transpose", x, w)?;
    let shape = options::conv_transpose_shape("conv_transpose", opts, unbatched, &batched, w)?;
    Ok(output_dims(shape.batch, shape.c_big, &shape.big, unbatched))
}

/// `[n, c, spatial..]`, without `n` for an unbatched input.
fn output_dims(n: usize, c: usize, spatial: &[usize], unbatched: bool) -> Vec<usize> {
    let lead = if unbatched { vec![c] } else { vec![n, c] };
    lead.into_iter().chain(spatial.iter().copied()).collect()
}

/// Records `run` on `x` with a batch axis, adding it first and removing it after if `x` came
/// unbatched. Call only once everything is validated.
fn with_batch_axis<'t, T: Float>(
    x: Var<'t, T>,
    batched: &[usize],
    unbatched: bool,
    run: impl FnOnce(Var<'t, T>) -> Result<Var<'t, T>>,
) -> Result<Var<'t, T>> {
    if !unbatched {
        return run(x);
    }
    let y = run(x.reshape(batched)?)?;
    y.reshape(&y.shape()[1..])
}

/// Refuses a bias that is not `[c_out]`, before any work is recorded.
fn check_bias<T: Float>(op: &'static str, b: Option<Var<'_, T>>, c_out: usize) -> Result<()> {
    match b {
        Some(b) if b.shape() != [c_out] => Err(bad_shape(
            op,
            "bias",
            &b.shape(),
            format!("must be [c_out] = [{c_out}]"),
        )),
        _ => Ok(()),
    }
}

/// `y + b` with `b: [c]` broadcast over `y: [n, c, spatial..]`.
fn add_bias<'t, T: Float>(y: Var<'t, T>, b: Option<Var<'t, T>>) -> Result<Var<'t, T>> {
    let Some(b) = b else { return Ok(y) };
    let (yv, bv) = (y.value(), b.value());
    let shape = yv.shape();
    let plane: usize = shape[2..].iter().product();
    let channels = shape[1];
    // One pass over contiguous planes, where broadcasting `add` walked `y` as a strided view
    // (measured ~10% of a small autoencoder's training step), split over threads by plane,
    // each value written once (a copy of `y` then an add in place was two passes over
    // activations that no cache holds: 7 of a U-Net step's 91 ms).
    let ys = super::contiguous(&yv);
    let mut out = super::size::uninit::<T>("conv", "output", ys.len())?;
    let biases: Vec<T> = bv.iter().copied().collect();
    super::parallel::for_each_chunk(&mut out, plane, |i, piece| {
        let bias = biases[i % channels];
        for (o, &v) in piece.iter_mut().zip(&ys[i * plane..]) {
            o.write(v + bias);
        }
    });
    // SAFETY: the pieces cover `out`, and piece `i` is `ys[i·plane..]` written with its bias,
    // slot by slot to its end (`ys` and `out` have the same length).
    let out = unsafe { super::size::assume_init(out) };
    let out = ndarray::ArrayD::from_shape_vec(yv.raw_dim(), out).expect("same size as y");
    y.tape().record(out, &[y, b], ChannelBias)
}

/// The bias add of conv layers: `y[n, c, ..] + b[c]`.
struct ChannelBias;

impl<T: Float> Op<T> for ChannelBias {
    fn name(&self) -> String {
        "channel_bias".into()
    }

    /// The sum is linear: `y` passes the gradient through, `b` sums it over all but the channel
    /// axis.
    fn backward<'t>(&self, inputs: &[Var<'t, T>], _y: Var<'t, T>, g: Var<'t, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        let (y, b) = (inputs[0], inputs[1]);
        let others: Vec<usize> = (0..g.ndim()).filter(|&a| a != 1).collect();
        Ok(vec![
            y.requires_grad().then_some(g),
            b.requires_grad().then(|| g.sum_axes(&others, false)).transpose()?,
        ])
    }
}
