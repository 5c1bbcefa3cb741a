//! More ways to see the same linear maps, for teaching and for testing the fast kernels.
//!
//! 1. **The matrix.** [`conv_matrix`] builds the dense `A` with `vec(y) = A·vec(x)` for one
//!    image, straight from the gather formula; [`conv_transpose_matrix`] is `Aᵀ`.
//! 2. **Zero insertion.** [`conv_transpose_by_zero_insertion`] computes a transposed conv as an
//!    ordinary stride-1 conv: insert `s − 1` zeros between input cells, pad each side with
//!    `d·(k − 1) − p` zeros (cropping if negative) plus `output_padding` at the end, and convolve
//!    with the kernel flipped in space and its two channel axes swapped.
//!
//! 3. **Scatter.** [`conv_transpose_stamps`] lists, per input cell of a transposed conv, the
//!    copy of the kernel it stamps into the output, scaled by its value: the stamps summed are
//!    the output, and where they overlap they add (the picture in d2l's chapter).
//!
//! The fast path the ops run (`kernels.rs`) is one more; tests check that all of them agree.
//! [`coverage`] and [`input_gradient_counts`] count how evenly a stack of upsampling layers
//! covers its output, and show the same count in the gradient of a strided conv.

use ndarray::{Array2, ArrayD, Axis, Dimension, IxDyn, Slice};

use super::conv;
use super::kernels::ConvShape;
use super::options::{ConvOptions, ConvTransposeOptions, conv_shape, conv_transpose_shape};
use crate::error::{Result, bad_shape};
use crate::float::Float;
use crate::ops::{size, unravel};
use crate::tape::Tape;

/// The dense matrix `A` of a conv on one image of shape `input = [c_in, i..]`:
/// `vec(conv(x, w)) = A · vec(x)`, rows indexed by output cells `[c_out, o..]`, columns by input
/// cells `[c_in, i..]`, both row-major.
///
/// Each row is one position of the kernel; with stride 1 the rows are shifted copies of one
/// another (a banded, constant-diagonal matrix).
///
/// # Errors
/// As [`conv`] for `x` of shape `[1, ..input]`.
///
/// # Example
/// ```
/// use adjoint::ops::conv::{views::conv_matrix, ConvOptions};
/// use ndarray::{arr2, ArrayD};
///
/// // x = [a..g], kernel w = [w0, w1, w2] = [1, 2, 3], stride 2: rows [w0 w1 w2 0 0 0 0],
/// // [0 0 w0 w1 w2 0 0], ...
/// let w = ArrayD::from_shape_vec(vec![1, 1, 3], vec![1.0, 2.0, 3.0]).unwrap();
/// let a = conv_matrix(&w, &[1, 7], &ConvOptions::new().stride(2))?;
/// assert_eq!(a, arr2(&[[1.0, 2.0, 3.0, 0.0, 0.0, 0.0, 0.0],
///                      [0.0, 0.0, 1.0, 2.0, 3.0, 0.0, 0.0],
///                      [0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0]]));
/// # Ok::<(), adjoint::Error>(())
/// ```
pub fn conv_matrix<T: Float>(w: &ArrayD<T>, input: &[usize], opts: &ConvOptions) -> Result<Array2<T>> {
    let shape = conv_shape("conv_matrix", opts, &with_batch(input), w.shape())?;
    dense("conv_matrix", &shape, w)
}

/// The dense matrix of a transposed conv on one image of shape `input = [c_in, i..]`: the
/// transpose of the matrix of the conv it is the adjoint of.
///
/// # Errors
/// As [`conv_transpose`](super::conv_transpose) for `x` of shape `[1, ..input]`.
pub fn conv_transpose_matrix<T: Float>(
    w: &ArrayD<T>,
    input: &[usize],
    opts: &ConvTransposeOptions,
) -> Result<Array2<T>> {
    let shape = conv_transpose_shape("conv_transpose_matrix", opts, false, &with_batch(input), w.shape())?;
    Ok(dense("conv_transpose_matrix", &shape, w)?
        .reversed_axes()
        .as_standard_layout()
        .into_owned())
}

fn with_batch(input: &[usize]) -> Vec<usize> {
    std::iter::once(1).chain(input.iter().copied()).collect()
}

/// `A[(o_c, o), (c, i)] = Σ w[o_c, c − group start, t]` over taps `t` with `i = o·s + t·d − p`,
/// by plain loops: the reference the fast kernels are tested against.
fn dense<T: Float>(op: &'static str, shape: &ConvShape, w: &ArrayD<T>) -> Result<Array2<T>> {
    // The output and the input were checked one by one; their product is the matrix.
    let (big_len, small_len) = (
        shape.big.iter().product::<usize>(),
        shape.small.iter().product::<usize>(),
    );
    let (rows, cols) = (shape.c_small * small_len, shape.c_big * big_len);
    let len = size::elements(op, "matrix", &[rows, cols])?;
    let mut a = Array2::from_shape_vec((rows, cols), size::zeroed(op, "matrix", len)?)
        .map_err(|e| crate::error::invalid(op, "matrix", (rows, cols), e.to_string()))?;
    let (big_g, small_g) = (shape.c_big / shape.groups, shape.c_small / shape.groups);
    let kernel: Vec<usize> = shape.axes.iter().map(|a| a.kernel).collect();
    for oc in 0..shape.c_small {
        let group = oc / small_g;
        for o in 0..small_len {
            let o_idx = unravel(o, &shape.small);
            for c in 0..big_g {
                for (t_idx, &wv) in w.index_axis(Axis(0), oc).index_axis(Axis(0), c).indexed_iter() {
                    let t_idx = t_idx.slice();
                    debug_assert_eq!(t_idx.len(), kernel.len());
                    let mut col = 0;
                    let mut inside = true;
                    for (ax, ((&oa, &ta), &ia)) in shape.axes.iter().zip(o_idx.iter().zip(t_idx).zip(&shape.big)) {
                        match ax.source(oa, ta, ia) {
                            Some(s) => col = col * ia + s,
                            None => inside = false,
                        }
                    }
                    if inside {
                        a[[oc * small_len + o, (group * big_g + c) * big_len + col]] += wv;
                    }
                }
            }
        }
    }
    Ok(a)
}

/// The intermediate arrays of the zero-insertion recipe, to look at step by step.
#[derive(Clone, Debug)]
pub struct ZeroInsertion<T: Float> {
    /// `x` with `s − 1` zeros inserted between neighbouring cells of each spatial axis.
    pub stretched: ArrayD<T>,
    /// `stretched` with `d·(k − 1) − p_b` cells before and `d·(k − 1) − p_a + output_padding`
    /// after on each axis: zeros if positive, cropped if negative.
    pub padded: ArrayD<T>,
    /// The kernel flipped along every spatial axis, with its channel axes swapped per group:
    /// `[c_out, c_in/g, k..]`, a conv weight.
    pub flipped_w: ArrayD<T>,
    /// The stride-1 conv of `padded` with `flipped_w` (dilation kept): the transposed conv.
    pub y: ArrayD<T>,
}

/// A transposed conv computed the long way, as a stride-1 conv on a zero-stretched, padded
/// input with a flipped kernel.
///
/// Shapes: `x: [n, c_in, i..]`, `w: [c_in, c_out/g, k..]` (as [`conv_transpose`](super::conv_transpose)).
///
/// # Errors
/// As [`conv_transpose`](super::conv_transpose).
///
/// # Example
/// ```
/// use adjoint::ops::conv::{views::conv_transpose_by_zero_insertion, ConvTransposeOptions};
/// use ndarray::ArrayD;
///
/// let x = ArrayD::from_shape_vec(vec![1, 1, 3], vec![1.0, 10.0, 100.0]).unwrap();
/// let w = ArrayD::from_shape_vec(vec![1, 1, 3], vec![1.0, 2.0, 3.0]).unwrap();
/// let steps = conv_transpose_by_zero_insertion(&x, &w, &ConvTransposeOptions::new().stride(2))?;
/// assert_eq!(steps.stretched.as_slice().unwrap(), &[1.0, 0.0, 10.0, 0.0, 100.0]);
/// assert_eq!(steps.flipped_w.as_slice().unwrap(), &[3.0, 2.0, 1.0]);
/// assert_eq!(steps.y.as_slice().unwrap(), &[1.0, 2.0, 13.0, 20.0, 130.0, 200.0, 300.0]);
/// # Ok::<(), adjoint::Error>(())
/// ```
pub fn conv_transpose_by_zero_insertion<T: Float>(
    x: &ArrayD<T>,
    w: &ArrayD<T>,
    opts: &ConvTransposeOptions,
) -> Result<ZeroInsertion<T>> {
    let op = "conv_transpose_by_zero_insertion";
    if x.ndim() != w.ndim() {
        return Err(bad_shape(
            op,
            "x",
            x.shape(),
            format!("needs {} axes [n, c, spatial..]", w.ndim()),
        ));
    }
    let shape = conv_transpose_shape(op, opts, false, x.shape(), w.shape())?;
    // Both intermediate arrays are sized first: with a large stride or dilation they can be far
    // larger than the output (mostly inserted zeros or padding), and are then refused.
    let mut stretched_dims = x.shape().to_vec();
    let mut padded_dims = x.shape().to_vec();
    // Per axis, the zeros (or, if negative, the cropping) before and after the stretched input.
    let mut pads = Vec::with_capacity(shape.axes.len());
    for (a, ax) in shape.axes.iter().enumerate() {
        // Validated: every extent here is at most MAX_EXTENT < 2^63, so i128 holds any sum.
        let stretched = (x.shape()[a + 2] as i128 - 1) * ax.stride as i128 + 1;
        let reach = ax.effective_kernel() as i128 - 1;
        let before = reach - ax.pad_before as i128;
        // The output size decides the end: whatever op the settings imply (explicit or TF's).
        let padded = shape.big[a] as i128 + reach;
        let after = padded - before - stretched;
        stretched_dims[a + 2] = usize::try_from(stretched).unwrap_or(usize::MAX);
        padded_dims[a + 2] = usize::try_from(padded).unwrap_or(usize::MAX);
        pads.push((before, after));
    }
    size::elements(op, "stretched input", &stretched_dims)?;
    size::elements(op, "padded input", &padded_dims)?;
    let mut stretched = x.clone();
    for (a, ax) in shape.axes.iter().enumerate() {
        let axis = Axis(a + 2);
        let mut dims = stretched.shape().to_vec();
        dims[a + 2] = stretched_dims[a + 2];
        let mut wider = size::zeros(op, "stretched input", &dims)?;
        wider
            .slice_axis_mut(axis, Slice::new(0, None, ax.stride as isize))
            .assign(&stretched);
        stretched = wider;
    }
    let mut padded = stretched.clone();
    for (a, &(before, after)) in pads.iter().enumerate() {
        padded = pad_or_crop(op, &padded, a + 2, before, after)?;
    }
    let flipped_w = flip_and_swap(w, shape.groups);
    let tape = Tape::new();
    let y = conv(
        tape.constant(padded.clone()),
        tape.constant(flipped_w.clone()),
        None,
        &ConvOptions::new()
            .dilation(shape.axes.iter().map(|a| a.dilation).collect::<Vec<_>>())
            .groups(shape.groups),
    )?;
    let y = (*y.value()).clone();
    Ok(ZeroInsertion {
        stretched,
        padded,
        flipped_w,
        y,
    })
}

/// Zeros (positive counts) or cropping (negative counts) at both ends of `axis`. Cropping may
/// eat into the other side's zeros: the result has `n + before + after` cells, and input cell
/// `j` lands at `j + before` when that is inside.
fn pad_or_crop<T: Float>(op: &'static str, x: &ArrayD<T>, axis: usize, before: i128, after: i128) -> Result<ArrayD<T>> {
    let n = x.len_of(Axis(axis)) as i128;
    let mut dims = x.shape().to_vec();
    // The caller checked the padded size (`n + before + after`, at most MAX_EXTENT).
    dims[axis] = (n + before + after).max(0) as usize;
    let mut y = size::zeros(op, "padded input", &dims)?;
    let (first, last) = ((-before).max(0), n.min(n + after));
    if first < last {
        let at = |v: i128| v as isize;
        y.slice_axis_mut(Axis(axis), Slice::from(at(first + before)..at(last + before)))
            .assign(&x.slice_axis(Axis(axis), Slice::from(at(first)..at(last))));
    }
    Ok(y)
}

/// `[c_in, c_out/g, k..]` → `[c_out, c_in/g, k..]`, flipped along every spatial axis.
fn flip_and_swap<T: Float>(w: &ArrayD<T>, groups: usize) -> ArrayD<T> {
    let (c_in, c_out_g) = (w.shape()[0], w.shape()[1]);
    let c_in_g = c_in / groups;
    let mut flipped = w.clone();
    for a in 2..w.ndim() {
        flipped.invert_axis(Axis(a));
    }
    let mut dims = w.shape().to_vec();
    dims[0] = c_out_g * groups;
    dims[1] = c_in_g;
    let mut out = ArrayD::zeros(IxDyn(&dims));
    for g in 0..groups {
        for ci in 0..c_in_g {
            for co in 0..c_out_g {
                out.index_axis_mut(Axis(0), g * c_out_g + co)
                    .index_axis_mut(Axis(0), ci)
                    .assign(&flipped.index_axis(Axis(0), g * c_in_g + ci).index_axis(Axis(0), co));
            }
        }
    }
    out
}

/// One tap of a [`Stamp`]: where the scaled kernel tap lands, and what it adds there.
#[derive(Clone, Debug, PartialEq)]
pub struct StampTap<T: Float> {
    /// The kernel tap `[t..]`, one index per spatial axis.
    pub tap: Vec<usize>,
    /// The output channel it adds to.
    pub c_out: usize,
    /// Its position in the output, `i·s + t·d − p_before` per axis: outside `0..o` on some axis
    /// when the transposed conv's padding crops it away (it then adds nothing).
    pub at: Vec<isize>,
    /// `x[c_in, i..] · w[c_in, c_out − group start, t..]`.
    pub value: T,
}

/// What one input cell of a transposed conv writes: the kernel scaled by the cell's value,
/// placed at `i·s − p_before` (the scatter formula `y[i·s + t·d − p] += x[i]·w[t]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Stamp<T: Float> {
    /// The input cell `[c_in, i..]`.
    pub input: Vec<usize>,
    /// Every tap of every output channel of its group, in `[c_out, t..]` row-major order.
    pub taps: Vec<StampTap<T>>,
}

/// A transposed conv as a scatter: one [`Stamp`] per input cell, and the output's shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Scatter<T: Float> {
    /// The output of one image, `[c_out, o..]`.
    pub output: Vec<usize>,
    /// One stamp per input cell `[c_in, i..]`, row-major.
    pub stamps: Vec<Stamp<T>>,
}

impl<T: Float> Scatter<T> {
    /// The first `n` stamps added up, as the output `[1, c_out, o..]` (taps cropped away add
    /// nothing): after every stamp, the transposed conv's output.
    pub fn partial_sum(&self, n: usize) -> ArrayD<T> {
        let dims: Vec<usize> = std::iter::once(1).chain(self.output.iter().copied()).collect();
        let mut y = ArrayD::zeros(IxDyn(&dims));
        for stamp in self.stamps.iter().take(n) {
            for tap in &stamp.taps {
                if let Some(index) = self.output_index(tap) {
                    y[IxDyn(&index)] += tap.value;
                }
            }
        }
        y
    }

    /// `[0, c_out, at..]` when the tap lands inside the output, `None` when it is cropped.
    pub fn output_index(&self, tap: &StampTap<T>) -> Option<Vec<usize>> {
        let mut index = vec![0, tap.c_out];
        for (&at, &o) in tap.at.iter().zip(&self.output[1..]) {
            index.push(usize::try_from(at).ok().filter(|&a| a < o)?);
        }
        Some(index)
    }
}

/// A transposed conv of one image written out as a scatter: each input cell stamps a copy of
/// the kernel, scaled by its value, into the output, and the stamps add where they overlap.
///
/// Formula: input cell `i` adds `x[i]·w[t]` to output cell `i·s + t·d − p` for every tap `t`
/// (per axis; `p` is the padding before), the columns of `Aᵀ` read one at a time.
///
/// Shapes: `x: [1, c_in, i..]`, `w: [c_in, c_out/g, k..]` (as
/// [`conv_transpose`](super::conv_transpose)); [`Scatter::output`] is `[c_out, o..]`.
///
/// # Errors
/// As [`conv_transpose`](super::conv_transpose); also [`crate::Error::BadShape`] if `x` holds
/// more than one image (the stamps are of one image), and the size errors of a list of
/// `c_in · i.. · c_out/g · k..` taps too large to hold.
///
/// # Example
/// ```
/// use adjoint::ops::conv::{views::conv_transpose_stamps, ConvTransposeOptions};
/// use ndarray::ArrayD;
///
/// // x = [1, 10], w = [1, 2, 3], stride 2: the stamps [1, 2, 3] at 0 and [10, 20, 30] at 2
/// // overlap in cell 2, where they add: 3 + 10.
/// let x = ArrayD::from_shape_vec(vec![1, 1, 2], vec![1.0, 10.0]).unwrap();
/// let w = ArrayD::from_shape_vec(vec![1, 1, 3], vec![1.0, 2.0, 3.0]).unwrap();
/// let scatter = conv_transpose_stamps(&x, &w, &ConvTransposeOptions::new().stride(2))?;
/// assert_eq!(scatter.stamps[1].taps[0].at, vec![2]);
/// assert_eq!(scatter.partial_sum(2).as_slice().unwrap(), &[1.0, 2.0, 13.0, 20.0, 30.0]);
/// # Ok::<(), adjoint::Error>(())
/// ```
pub fn conv_transpose_stamps<T: Float>(
    x: &ArrayD<T>,
    w: &ArrayD<T>,
    opts: &ConvTransposeOptions,
) -> Result<Scatter<T>> {
    let op = "conv_transpose_stamps";
    if x.ndim() != w.ndim() || x.shape().first() != Some(&1) {
        return Err(bad_shape(
            op,
            "x",
            x.shape(),
            format!("needs one image, [1, c_in, spatial..] with {} axes", w.ndim()),
        ));
    }
    let shape = conv_transpose_shape(op, opts, false, x.shape(), w.shape())?;
    let (c_in, c_out) = (shape.c_small, shape.c_big);
    let (in_g, out_g) = (c_in / shape.groups, c_out / shape.groups);
    let kernel: Vec<usize> = shape.axes.iter().map(|a| a.kernel).collect();
    let taps = kernel.iter().product::<usize>();
    let cells = shape.small.iter().product::<usize>();
    // The whole list is sized first, so that a huge one is refused instead of allocated.
    size::elements(op, "stamps", &[c_in, cells, out_g, taps])?;
    let mut stamps = Vec::with_capacity(c_in * cells);
    for c in 0..c_in {
        let group = c / in_g;
        for cell in 0..cells {
            let i_idx = unravel(cell, &shape.small);
            let mut input = vec![0, c];
            input.extend(&i_idx);
            let xv = x[IxDyn(&input)];
            let mut stamp_taps = Vec::with_capacity(out_g * taps);
            for co in 0..out_g {
                for t in 0..taps {
                    let tap = unravel(t, &kernel);
                    let at = shape
                        .axes
                        .iter()
                        .zip(i_idx.iter().zip(&tap))
                        .map(|(ax, (&i, &t))| (i * ax.stride + t * ax.dilation) as isize - ax.pad_before as isize)
                        .collect();
                    let mut w_idx = vec![c, co];
                    w_idx.extend(&tap);
                    stamp_taps.push(StampTap {
                        tap,
                        c_out: group * out_g + co,
                        at,
                        value: xv * w[IxDyn(&w_idx)],
                    });
                }
            }
            input.remove(0);
            stamps.push(Stamp {
                input,
                taps: stamp_taps,
            });
        }
    }
    let mut output = vec![c_out];
    output.extend(&shape.big);
    Ok(Scatter { output, stamps })
}

/// The gradient, with respect to its input, of the sum of a stack of `layers` strided convs
/// with all-ones `kernel × kernel` kernels, computed by the tape (`Tape::backward`): Distill's
/// point that a strided conv's input gradient is a transposed conv, so it carries the same
/// uneven-overlap checkerboard as [`coverage`] with [`Upsampling::Transposed`].
///
/// The input is sized so that the stack's output is `size × size`: each layer's input is
/// `(o − 1)·s + k` for an output of `o`, the transposed conv's output size. With `L = Σ y` the
/// upstream gradient is all ones, and `∂L/∂x` at a pixel counts the (output pixel, tap) paths
/// through the stack that read it.
///
/// Shapes: returns `[n, n]`, `n` the input side.
///
/// # Errors
/// As [`coverage`].
///
/// # Example
/// ```
/// use adjoint::ops::conv::views::{coverage, input_gradient_counts, Upsampling};
/// let grad = input_gradient_counts(4, 3, 2, 1)?;
/// assert_eq!(grad, coverage(4, 3, 2, 1, Upsampling::Transposed)?.counts);
/// # Ok::<(), adjoint::Error>(())
/// ```
pub fn input_gradient_counts(size: usize, kernel: usize, stride: usize, layers: usize) -> Result<Array2<f64>> {
    let op = "input_gradient_counts";
    check_counts_settings(op, size, kernel, stride, layers)?;
    let mut side = size;
    for _ in 0..layers {
        side = size::add(op, "kernel", size::mul(op, "stride", side - 1, stride)?, kernel)?;
        size::elements(op, "input", &[side, side])?;
    }
    size::elements(op, "kernel", &[kernel, kernel])?;
    let tape = Tape::<f64>::new();
    let x = tape.param(size::filled(op, "input", &[1, 1, side, side], 0.0)?);
    let ones = tape.constant(size::filled(op, "kernel", &[1, 1, kernel, kernel], 1.0)?);
    let mut y = x;
    for _ in 0..layers {
        y = conv(y, ones, None, &ConvOptions::new().stride(stride))?;
    }
    let grads = tape.backward(y.sum()?)?;
    let g = &grads[x];
    Ok(Array2::from_shape_vec((side, side), g.iter().copied().collect()).expect("one image, one channel"))
}

/// Refuses a zero size, kernel, stride or layer count, naming it.
fn check_counts_settings(op: &'static str, size: usize, kernel: usize, stride: usize, layers: usize) -> Result<()> {
    for (param, value) in [
        ("size", size),
        ("kernel", kernel),
        ("stride", stride),
        ("layers", layers),
    ] {
        if value == 0 {
            return Err(crate::error::invalid(op, param, value, "must be at least 1"));
        }
    }
    Ok(())
}

/// How often each output pixel is written, for the checkerboard discussion (Odena, Dumoulin &
/// Olah, 2016): a stack of `layers` upsampling steps on a `size × size` input of ones, with
/// all-ones kernels, so every pixel's value is its number of (input pixel, kernel tap) paths.
#[derive(Clone, Debug)]
pub struct Coverage {
    /// The counts, one per output pixel.
    pub counts: Array2<f64>,
    /// `max / min` of the counts away from the borders (a margin of
    /// `(k − 1)·(1 + s + … + s^(layers−1))` pixels, where border effects live): 1 means even.
    /// NaN when the margins leave no interior (a small input under several layers).
    pub interior_ratio: f64,
}

/// How to upsample by `stride` in [`coverage`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upsampling {
    /// A transposed conv with a `kernel × kernel` kernel and this stride: uneven (a
    /// checkerboard) unless `kernel` is a multiple of `stride`.
    Transposed,
    /// Nearest-neighbour resize by `stride` — itself a transposed conv with a `stride × stride`
    /// kernel of ones — then a stride-1 conv with a `kernel × kernel` kernel and `'same'`
    /// padding: even.
    ResizeConv,
}

/// Counts how often each output pixel is covered after `layers` upsampling steps.
///
/// # Errors
/// [`crate::Error::InvalidArgument`] if a size, the kernel, the stride or `layers` is 0.
///
/// # Example
/// ```
/// use adjoint::ops::conv::views::{coverage, Upsampling};
/// // kernel 3, stride 2: rows and columns alternate 1 and 2 paths, so pixels see 1, 2 or 4.
/// let c = coverage(4, 3, 2, 1, Upsampling::Transposed)?;
/// assert_eq!(c.interior_ratio, 4.0);
/// let even = coverage(4, 4, 2, 1, Upsampling::Transposed)?;
/// assert_eq!(even.interior_ratio, 1.0);
/// # Ok::<(), adjoint::Error>(())
/// ```
pub fn coverage(size: usize, kernel: usize, stride: usize, layers: usize, how: Upsampling) -> Result<Coverage> {
    let op = "coverage";
    check_counts_settings(op, size, kernel, stride, layers)?;
    // Every size up front, checked: the kernels, and the image after each layer.
    let (mut side, mut margin, mut reach) = (size, 0usize, 1usize);
    for _ in 0..layers {
        side = match how {
            Upsampling::Transposed => size::add(op, "kernel", size::mul(op, "stride", side - 1, stride)?, kernel)?,
            Upsampling::ResizeConv => size::mul(op, "stride", side, stride)?,
        };
        size::elements(op, "output", &[side, side])?;
        margin = size::add(op, "kernel", margin, size::mul(op, "kernel", kernel - 1, reach)?)?;
        reach = reach.saturating_mul(stride);
    }
    size::elements(op, "kernel", &[kernel, kernel])?;
    size::elements(op, "stride", &[stride, stride])?;
    let tape = Tape::<f64>::new();
    let ones = |k: usize| -> Result<_> { Ok(tape.constant(size::filled(op, "kernel", &[1, 1, k, k], 1.0)?)) };
    let mut x = tape.constant(size::filled(op, "input", &[1, 1, size, size], 1.0)?);
    for _ in 0..layers {
        x = match how {
            Upsampling::Transposed => {
                super::conv_transpose(x, ones(kernel)?, None, &ConvTransposeOptions::new().stride(stride))?
            }
            Upsampling::ResizeConv => {
                let resized =
                    super::conv_transpose(x, ones(stride)?, None, &ConvTransposeOptions::new().stride(stride))?;
                conv(resized, ones(kernel)?, None, &ConvOptions::new().same())?
            }
        };
    }
    let value = x.value();
    let side = value.shape()[2];
    let counts = Array2::from_shape_vec((side, side), value.iter().copied().collect()).expect("one image, one channel");
    // A margin of half the side or more leaves no interior (a small input under many layers):
    // an empty range, not a slice past its end.
    let (start, end) = (margin.min(side), side.saturating_sub(margin).max(margin.min(side)));
    let inner = counts.slice(ndarray::s![start..end, start..end]);
    let (lo, hi) = inner
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let interior_ratio = if inner.is_empty() { f64::NAN } else { hi / lo };
    Ok(Coverage { counts, interior_ratio })
}
