//! Tape-free array code of pooling: the window each output cell reads, and the loops over them.
//!
//! Every input is seen as `x: [planes, i_d, i_h, i_w]` and every output as
//! `y: [planes, o_d, o_h, o_w]`, both contiguous: the leading axes (batch, channel) make one
//! axis of independent planes, and a 1-D or 2-D pooling gets leading spatial axes of size 1
//! with one-tap windows. One loop nest then serves every rank; a window's taps are walked
//! only where they land in the input, so padding costs nothing and a huge kernel is counted,
//! never walked.

use super::{Divisor, PoolShape};
use crate::error::Result;
use crate::float::Float;
use crate::ops::conv::AxisGeometry;
use crate::ops::parallel::{PARALLEL_ELEMENTS, for_each_chunk, for_each_chunk_pair};
use crate::ops::size;

/// The arg-max of a window with no input cell in it (see the module docs of `pool`): its
/// gradient goes nowhere.
pub(super) const NO_INPUT: usize = usize::MAX;

/// Where one output cell's window meets the input along one axis.
#[derive(Clone, Copy, Debug)]
struct Span {
    /// Input index of the first tap that lands in the input (meaningless if `taps` is 0).
    first: usize,
    /// Taps landing in the input, `dilation` apart.
    taps: usize,
    /// Taps landing in the input or its padding: PyTorch's `pool_size` along this axis.
    padded: usize,
}

/// The window of a size-1 axis added to make every pooling three-dimensional.
const ONE_TAP: Span = Span {
    first: 0,
    taps: 1,
    padded: 1,
};

/// The windows of every output cell, axis by axis, and the plane sizes.
pub(super) struct Windows {
    /// Per axis `[d, h, w]`, one span per output index.
    spans: [Vec<Span>; 3],
    /// Per axis, the step between taps (the dilation).
    step: [usize; 3],
    /// Input sizes `[i_d, i_h, i_w]`.
    input: [usize; 3],
    /// Number of planes.
    pub(super) planes: usize,
    /// Input cells per plane.
    pub(super) in_len: usize,
    /// Output cells per plane.
    pub(super) out_len: usize,
    /// Whether this is the 2×2, stride-2 max-pool of every U-Net, with every window whole.
    pairs: bool,
}

impl Windows {
    /// The windows of a validated pooling.
    ///
    /// # Errors
    /// [`crate::Error::OutOfMemory`] if the tables cannot be allocated (they are as long as
    /// the output's axes).
    pub(super) fn new(shape: &PoolShape) -> Result<Self> {
        let rank = shape.rank();
        let mut spans = [vec![ONE_TAP], vec![ONE_TAP], vec![ONE_TAP]];
        let (mut step, mut input) = ([1; 3], [1; 3]);
        for (a, ax) in shape.axes.iter().enumerate() {
            let (i, o) = (shape.input()[a], shape.output()[a]);
            let slot = 3 - rank + a;
            spans[slot] = size::collect(shape.op, "windows", (0..o).map(|o| span(ax, o, i)))?;
            step[slot] = ax.dilation;
            input[slot] = i;
        }
        let output = spans.each_ref().map(Vec::len);
        let whole_pairs = |a: usize| {
            shape.axes[a] == AxisGeometry::new(2, 2, 0, 1) && output[3 - rank + a] * 2 <= input[3 - rank + a]
        };
        Ok(Windows {
            pairs: rank == 2 && whole_pairs(0) && whole_pairs(1),
            step,
            input,
            planes: shape.planes(),
            in_len: input.iter().product(),
            out_len: output.iter().product(),
            spans,
        })
    }

    /// Calls `f(o, cell)` for each output cell `o` of a plane, in row-major order.
    #[inline(always)]
    fn walk(&self, mut f: impl FnMut(usize, Cell<'_>)) {
        let mut o = 0;
        for &d in &self.spans[0] {
            for &h in &self.spans[1] {
                for &w in &self.spans[2] {
                    f(
                        o,
                        Cell {
                            spans: [d, h, w],
                            of: self,
                        },
                    );
                    o += 1;
                }
            }
        }
    }
}

/// Output cell `o`'s window along one axis: `o·s + t·d − p` for the taps `t` landing in the
/// input (see [`AxisGeometry::input_taps`]).
fn span(ax: &AxisGeometry, o: usize, i: usize) -> Span {
    let taps = ax.input_taps(o, i);
    Span {
        first: ax.source(o, taps.start, i).unwrap_or(0),
        taps: taps.len(),
        padded: ax.padded_taps(o, i),
    }
}

/// One output cell's window.
#[derive(Clone, Copy)]
struct Cell<'a> {
    spans: [Span; 3],
    of: &'a Windows,
}

impl Cell<'_> {
    /// Calls `f(j)` for the offset `j` in the plane of each input cell in the window, in
    /// row-major order (PyTorch's, which decides ties).
    #[inline(always)]
    fn for_each_tap(&self, mut f: impl FnMut(usize)) {
        let [d, h, w] = self.spans;
        let [_, i_h, i_w] = self.of.input;
        let [s_d, s_h, s_w] = self.of.step;
        for a in 0..d.taps {
            let z = d.first + a * s_d;
            for b in 0..h.taps {
                let row = (z * i_h + h.first + b * s_h) * i_w + w.first;
                for c in 0..w.taps {
                    f(row + c * s_w);
                }
            }
        }
    }

    /// The offset of the window's first input cell, if it has any.
    fn first(&self) -> Option<usize> {
        let [d, h, w] = self.spans;
        let [_, i_h, i_w] = self.of.input;
        (d.taps > 0 && h.taps > 0 && w.taps > 0).then(|| (d.first * i_h + h.first) * i_w + w.first)
    }

    /// What the window's sum is divided by. A product of per-axis counts, taken in floating
    /// point: with a huge kernel over huge padding it exceeds `usize`, where PyTorch's `int64`
    /// would wrap.
    fn divisor<T: Float>(&self, divisor: Divisor) -> T {
        let [d, h, w] = self.spans;
        let product = |a: usize, b: usize, c: usize| T::of(a as f64 * b as f64 * c as f64);
        match divisor {
            Divisor::Fixed(n) => T::of(n as f64),
            Divisor::Padded => product(d.padded, h.padded, w.padded),
            Divisor::Input => product(d.taps, h.taps, w.taps),
        }
    }
}

/// Max-pool forward: `y: [planes, o..]`, each window's maximum, and `argmax` (the same shape):
/// its flat index in `x`.
///
/// The winner is PyTorch's: the first maximum in the window's row-major order, except that a
/// NaN beats everything, and a later NaN an earlier one (the rule `v > best || v is NaN`,
/// starting from `−∞` at the window's first input cell, so a window of `−∞` picks its first
/// cell). Padding is never a candidate. A window with no input cell gives `−∞` and
/// [`NO_INPUT`].
pub(super) fn max_pool<T: Float>(op: &'static str, windows: &Windows, x: &[T]) -> Result<(Vec<T>, Vec<usize>)> {
    let len = windows.planes * windows.out_len;
    let mut y = size::zeroed(op, "output", len)?;
    let mut argmax = size::reserve(op, "arg-max indices", len)?;
    argmax.resize(len, NO_INPUT);
    // Plane by plane, each on whichever thread takes it: a plane's cells depend on it alone.
    for_each_chunk_pair(&mut y, windows.out_len, &mut argmax, windows.out_len, |p, yp, ap| {
        let base = p * windows.in_len;
        let xp = &x[base..base + windows.in_len];
        if windows.pairs {
            max_pool_pairs(windows, xp, base, yp, ap);
            return;
        }
        windows.walk(|o, cell| {
            let Some(first) = cell.first() else {
                yp[o] = T::neg_infinity();
                return;
            };
            let (mut best, mut at) = (T::neg_infinity(), first);
            cell.for_each_tap(|j| {
                let v = xp[j];
                if v > best || v.is_nan() {
                    best = v;
                    at = j;
                }
            });
            yp[o] = best;
            ap[o] = base + at;
        });
    });
    Ok((y, argmax))
}

/// [`max_pool`] of one plane `xp` (at `base` in `x`) for 2×2 windows, stride 2, no padding or
/// dilation, every window whole: two rows at a time, two cells from each, with the same rule.
fn max_pool_pairs<T: Float>(windows: &Windows, xp: &[T], base: usize, yp: &mut [T], ap: &mut [usize]) {
    let i_w = windows.input[2];
    let (o_h, o_w) = (windows.spans[1].len(), windows.spans[2].len());
    for r in 0..o_h {
        let top = 2 * r * i_w;
        let (upper, lower) = (&xp[top..top + i_w], &xp[top + i_w..top + 2 * i_w]);
        let at = base + top;
        let (y_row, a_row) = (&mut yp[r * o_w..(r + 1) * o_w], &mut ap[r * o_w..(r + 1) * o_w]);
        for (c, ((u, l), (y, a))) in upper
            .chunks_exact(2)
            .zip(lower.chunks_exact(2))
            .zip(y_row.iter_mut().zip(a_row.iter_mut()))
            .enumerate()
        {
            // Candidates in window order: the first (from −∞ it always wins, ties and NaN
            // alike), then the other three.
            let (mut best, mut k) = (u[0], 0);
            for (v, offset) in [(u[1], 1), (l[0], i_w), (l[1], i_w + 1)] {
                if v > best || v.is_nan() {
                    best = v;
                    k = offset;
                }
            }
            *y = best;
            *a = at + 2 * c + k;
        }
    }
}

/// `out[o] = v[argmax[o]]` (0 where [`NO_INPUT`]): the gather of max-pool with its arg-max fixed.
pub(super) fn gather<T: Float>(op: &'static str, argmax: &[usize], v: &[T]) -> Result<Vec<T>> {
    let mut out = size::zeroed(op, "output", argmax.len())?;
    for_each_chunk(&mut out, PARALLEL_ELEMENTS / 4, |i, piece| {
        let from = &argmax[i * (PARALLEL_ELEMENTS / 4)..];
        for (o, &j) in piece.iter_mut().zip(from) {
            if j != NO_INPUT {
                *o = v[j];
            }
        }
    });
    Ok(out)
}

/// `out[argmax[o]] += g[o]` into `planes · in_len` zeros (skipping [`NO_INPUT`]): the gather's
/// transpose, which routes each window's gradient to its arg-max. Every window's arg-max lies
/// in its own plane (`out_len` windows a plane), so the planes are summed apart, each in
/// window order.
pub(super) fn scatter<T: Float>(
    op: &'static str,
    argmax: &[usize],
    g: &[T],
    (in_len, out_len): (usize, usize),
    len: usize,
) -> Result<Vec<T>> {
    let mut out = size::zeroed(op, "gradient", len)?;
    for_each_chunk(&mut out, in_len, |p, plane| {
        let base = p * in_len;
        let windows = p * out_len..(p + 1) * out_len;
        for (&j, &g) in argmax[windows.clone()].iter().zip(&g[windows]) {
            if j != NO_INPUT {
                plane[j - base] += g;
            }
        }
    });
    Ok(out)
}

/// Average-pool forward, `y = A·x`: each window's sum over its input cells, divided.
/// `x: [planes, i..]` → `[planes, o..]`.
pub(super) fn avg_pool<T: Float>(op: &'static str, windows: &Windows, divisor: Divisor, x: &[T]) -> Result<Vec<T>> {
    let mut y = size::zeroed(op, "output", windows.planes * windows.out_len)?;
    for_each_chunk(&mut y, windows.out_len, |p, yp| {
        let xp = &x[p * windows.in_len..(p + 1) * windows.in_len];
        windows.walk(|o, cell| {
            let mut sum = T::zero();
            cell.for_each_tap(|j| sum += xp[j]);
            yp[o] = sum / cell.divisor(divisor);
        });
    });
    Ok(y)
}

/// Its transpose, `Aᵀ·g`: each output cell's value, divided, added to every input cell of its
/// window. `g: [planes, o..]` → `[planes, i..]`.
pub(super) fn avg_pool_transpose<T: Float>(
    op: &'static str,
    windows: &Windows,
    divisor: Divisor,
    g: &[T],
) -> Result<Vec<T>> {
    let mut out = size::zeroed(op, "gradient", windows.planes * windows.in_len)?;
    for_each_chunk(&mut out, windows.in_len, |p, xp| {
        let gp = &g[p * windows.out_len..(p + 1) * windows.out_len];
        windows.walk(|o, cell| {
            let share = gp[o] / cell.divisor(divisor);
            cell.for_each_tap(|j| xp[j] += share);
        });
    });
    Ok(out)
}
