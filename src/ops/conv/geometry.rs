//! All size arithmetic of the conv family, in one place — and of pooling, which slides the same
//! windows ([`AxisGeometry::pool_output_size`], [`AxisGeometry::input_taps`]).
//!
//! Per spatial axis, with input size `i`, kernel `k`, stride `s`, dilation `d`, padding
//! `p_b` (before) and `p_a` (after), the effective kernel is `k_e = d·(k − 1) + 1` and
//!
//! ```text
//! conv:            o = ⌊(i + p_b + p_a − k_e) / s⌋ + 1
//! transposed conv: i = (o − 1)·s + k_e − p_b − p_a + op        (op = output_padding)
//! ```
//!
//! The floor makes the conv many-to-one: the `s` sizes `i, i+1, …, i+s−1` starting at the
//! smallest one give the same `o`. `a = (i + p_b + p_a − k_e) mod s`
//! ([`AxisGeometry::past_last_window`]) counts the cells at the end of the *padded* input past
//! the last window — padding cells when `p_a ≥ a`, input cells only beyond the padding; a
//! transposed conv with `op = a` returns exactly size `i`. That is how the backward of a conv
//! gets its input's size back.
//!
//! Which *input* cells the conv never reads is a different question: with padding the trailing
//! cells are padding, and with dilation (or a stride longer than the effective kernel) input
//! cells can fall between taps anywhere. [`AxisGeometry::unread_inputs`] lists them — the zero
//! columns of the conv's matrix `A` — and [`AxisGeometry::unread_cells`] every cell of the
//! padded input no tap lands on.
//!
//! Every formula is computed exactly (in `u128`): a size that does not fit comes back as
//! `None`, never wrapped, and the ops refuse it with an error naming the setting. Extents are
//! further bounded by [`MAX_EXTENT`], and element counts by [`crate::ops::size::MAX_ELEMENTS`].

use std::ops::{Range, RangeInclusive};

/// The largest extent adjoint indexes along one axis, padding included: `2⁶³ − 1`, PyTorch's
/// limit too (its sizes are `int64`). Every position `o·s + t·d` of the index map is below
/// the padded extent, so with this bound none of the kernels' index arithmetic can wrap.
pub const MAX_EXTENT: usize = isize::MAX as usize;

/// The most cell-and-tap steps [`AxisGeometry::unread_cells`] and
/// [`AxisGeometry::unread_inputs`] take (2^26, well under a second): they walk every cell, for
/// the small axes of the teaching views, and answer `None` beyond it instead of running for
/// hours on a huge size.
pub const MAX_UNREAD_WALK: usize = 1 << 26;

/// One spatial axis of a convolution, described as the conv sees it (input → output).
/// The transposed conv with the same settings maps the other way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AxisGeometry {
    /// Kernel size `k`.
    pub kernel: usize,
    /// Stride `s ≥ 1`.
    pub stride: usize,
    /// Dilation `d ≥ 1`: kernel taps are `d` cells apart.
    pub dilation: usize,
    /// Zeros added before the input (top/left).
    pub pad_before: usize,
    /// Zeros added after the input (bottom/right).
    pub pad_after: usize,
}

impl AxisGeometry {
    /// An axis with symmetric padding `p`.
    pub fn new(kernel: usize, stride: usize, padding: usize, dilation: usize) -> Self {
        AxisGeometry {
            kernel,
            stride,
            dilation,
            pad_before: padding,
            pad_after: padding,
        }
    }

    /// The span the kernel covers: `k_e = d·(k − 1) + 1`, saturating at `usize::MAX` (a span
    /// no input holds, which every method here then treats as "does not fit").
    pub fn effective_kernel(&self) -> usize {
        usize::try_from(self.span()).unwrap_or(usize::MAX)
    }

    /// `k_e` exactly: every sum and product below is of two `usize`s at most three deep, so
    /// `u128` holds it; what does not fit `usize` at the end is `None`, never a wrapped size.
    pub(crate) fn span(&self) -> u128 {
        wide(self.dilation) * wide(self.kernel.max(1) - 1) + 1
    }

    /// The padded input size `i + p_b + p_a`, exactly.
    fn padded(&self, i: usize) -> u128 {
        wide(i) + wide(self.pad_before) + wide(self.pad_after)
    }

    /// The padded input size `i + p_b + p_a`, if it is at most [`MAX_EXTENT`].
    pub fn padded_size(&self, i: usize) -> Option<usize> {
        narrow(self.padded(i)).filter(|&n| n <= MAX_EXTENT)
    }

    /// A transposed conv's output before cropping, `(o − 1)·s + k_e + op`, if `o ≥ 1` and it
    /// is at most [`MAX_EXTENT`].
    pub fn full_transpose_size(&self, o: usize, output_padding: usize) -> Option<usize> {
        narrow(self.full_transpose(o, output_padding)?).filter(|&n| n <= MAX_EXTENT)
    }

    /// Conv output size `⌊(i + p_b + p_a − k_e)/s⌋ + 1`, or `None` when the padded input is
    /// smaller than the effective kernel (or the stride is 0, or the size exceeds `usize`).
    pub fn conv_output_size(&self, i: usize) -> Option<usize> {
        self.windows_in(self.padded(i)).and_then(narrow)
    }

    /// How many windows of span `k_e`, `s` apart, fit in `extent` cells: `⌊(extent − k_e)/s⌋ + 1`,
    /// or `None` if not one does (or the stride is 0).
    fn windows_in(&self, extent: u128) -> Option<u128> {
        let k_e = self.span();
        (extent >= k_e && self.stride > 0).then(|| (extent - k_e) / wide(self.stride) + 1)
    }

    /// Pooling output size, PyTorch's `pooling_output_shape`. Without `ceil_mode` it is the
    /// conv's, `⌊(i + p_b + p_a − k_e)/s⌋ + 1`. With it, `⌈(i + p_b + p_a − k_e)/s⌉ + 1`: the
    /// floor formula over `s − 1` more cells after the padding, so a last, partial window may
    /// hang over the end — but it is dropped again if it would start past the input and the
    /// padding before it (`(o − 1)·s ≥ i + p_b`), as every window must start on the input or
    /// its left padding. `None` if no window fits (or the stride is 0, or the size exceeds
    /// `usize`).
    pub fn pool_output_size(&self, i: usize, ceil_mode: bool) -> Option<usize> {
        let overhang = if ceil_mode {
            wide(self.stride.checked_sub(1)?)
        } else {
            0
        };
        let o = self.windows_in(self.padded(i) + overhang)?;
        let last_start = (o - 1) * wide(self.stride);
        let o = if ceil_mode && last_start >= wide(i) + wide(self.pad_before) {
            o - 1
        } else {
            o
        };
        narrow(o).filter(|&o| o >= 1)
    }

    /// The taps of output cell `o` that land in the input, `0 ≤ o·s + t·d − p_b < i`: the index
    /// map of [`source`](Self::source) solved for `t`. A range, since taps are evenly spaced;
    /// empty when the window sees only padding (or its input cells fall between dilated taps).
    pub fn input_taps(&self, o: usize, i: usize) -> Range<usize> {
        let first = self.taps_before(o, wide(self.pad_before));
        let end = self.taps_before(o, wide(self.pad_before) + wide(i));
        first..end.max(first)
    }

    /// The taps of output cell `o` inside the padded input, `o·s + t·d < i + p_b + p_a`: what an
    /// average counting the padding divides by (PyTorch's `pool_size`). Fewer than `k` only for
    /// a ceil-mode window hanging over the end, whose cells past the padding do not count.
    pub fn padded_taps(&self, o: usize, i: usize) -> usize {
        self.taps_before(o, self.padded(i))
    }

    /// The number of taps `t < k` with `o·s + t·d < limit`, positions counted on the padded
    /// axis: `⌈(limit − o·s)/d⌉`, at most `k`.
    fn taps_before(&self, o: usize, limit: u128) -> usize {
        let room = limit.saturating_sub(wide(o) * wide(self.stride));
        let fit = room.div_ceil(wide(self.dilation.max(1)));
        // At most `k`, so it fits.
        fit.min(wide(self.kernel)) as usize
    }

    /// The full output of a transposed conv before any cropping, `(o − 1)·s + k_e + op`,
    /// exactly; `None` for `o = 0` or beyond `u128`.
    fn full_transpose(&self, o: usize, output_padding: usize) -> Option<u128> {
        wide(o.checked_sub(1)?)
            .checked_mul(wide(self.stride))?
            .checked_add(self.span())?
            .checked_add(wide(output_padding))
    }

    /// Transposed conv output size `(o − 1)·s + k_e − p_b − p_a + op`, or `None` if it is
    /// below 1, `o` is 0, or it exceeds `usize`.
    pub fn conv_transpose_output_size(&self, o: usize, output_padding: usize) -> Option<usize> {
        let full = self.full_transpose(o, output_padding)?;
        let cropped = wide(self.pad_before) + wide(self.pad_after);
        full.checked_sub(cropped).filter(|&n| n >= 1).and_then(narrow)
    }

    /// `a = (i + p_b + p_a − k_e) mod s`: the number of cells at the end of the *padded* input
    /// past the end of the last window, and the output padding that makes the transposed conv
    /// return exactly `i`. `None` if the conv is not defined for `i`.
    ///
    /// These cells are padding first (the last `p_a` cells of the padded input), input only
    /// when `a > p_a`. And they are not all the cells the conv never reads: with dilation, or a
    /// stride longer than the effective kernel, cells between taps are skipped too. For those,
    /// see [`unread_cells`](Self::unread_cells) (padding and input) and
    /// [`unread_inputs`](Self::unread_inputs) (input only).
    ///
    /// ```
    /// use adjoint::ops::conv::AxisGeometry;
    /// // i = 6, k = 3, s = 2, p = 1: windows over padded cells 0..3, 2..5, 4..7 of 8, so the
    /// // last cell, 7, is past the last window — and it is padding: every input cell is read.
    /// let g = AxisGeometry::new(3, 2, 1, 1);
    /// assert_eq!(g.past_last_window(6), Some(1));
    /// assert_eq!(g.unread_cells(6), Some(vec![7]));
    /// assert_eq!(g.unread_inputs(6), Some(vec![]));
    /// ```
    pub fn past_last_window(&self, i: usize) -> Option<usize> {
        self.conv_output_size(i)?;
        narrow((self.padded(i) - self.span()) % wide(self.stride))
    }

    /// Every cell of the padded input (positions `0 .. i + p_b + p_a`, the input at
    /// `p_b .. p_b + i`) that no tap of any window lands on, ascending. Its trailing run is the
    /// [`past_last_window`](Self::past_last_window) cells; the rest fall between taps. `None`
    /// if the conv is not defined for `i` or the padded input exceeds [`MAX_EXTENT`].
    ///
    /// Walks every cell and tap, `O((i + p_b + p_a)·k)`: meant for the small axes of the
    /// teaching views, and `None` (rather than a walk of hours) when that product exceeds
    /// [`MAX_UNREAD_WALK`].
    pub fn unread_cells(&self, i: usize) -> Option<Vec<usize>> {
        let o = self.conv_output_size(i)?;
        let padded = self.padded_size(i)?;
        self.walk_allowed(padded)?;
        Some((0..padded).filter(|&q| !self.is_read(wide(q), o)).collect())
    }

    /// The input cells `j` (`0 ≤ j < i`) that no tap of any window reads: the zero columns of
    /// the conv's matrix `A` (for a kernel with no zero tap), whose entries of `∂L/∂x` are
    /// always 0. `None` if the conv is not defined for `i`.
    ///
    /// Walks every input cell and tap, `O(i·k)`: meant for the small axes of the teaching views,
    /// and `None` (rather than a walk of hours) when that product exceeds [`MAX_UNREAD_WALK`].
    ///
    /// ```
    /// use adjoint::ops::conv::AxisGeometry;
    /// // i = 8, k = 4, s = 3, p = 1, d = 2: taps at padded cells 0 2 4 6 and 3 5 7 9, so input
    /// // cells 0 and 7 (padded 1 and 8) are never read, although no cell is past the last window.
    /// let g = AxisGeometry::new(4, 3, 1, 2);
    /// assert_eq!(g.past_last_window(8), Some(0));
    /// assert_eq!(g.unread_inputs(8), Some(vec![0, 7]));
    /// ```
    pub fn unread_inputs(&self, i: usize) -> Option<Vec<usize>> {
        let o = self.conv_output_size(i)?;
        self.walk_allowed(i)?;
        let before = self.pad_before;
        Some((0..i).filter(|&j| !self.is_read(wide(j) + wide(before), o)).collect())
    }

    /// `Some(())` if walking `cells` cells and every tap stays within [`MAX_UNREAD_WALK`] steps.
    fn walk_allowed(&self, cells: usize) -> Option<()> {
        (wide(cells) * wide(self.kernel) <= wide(MAX_UNREAD_WALK)).then_some(())
    }

    /// Whether some tap `t < k` of some window `w < o` lands on padded position `q`:
    /// `q = w·s + t·d`.
    fn is_read(&self, q: u128, o: usize) -> bool {
        let (s, d) = (wide(self.stride.max(1)), wide(self.dilation.max(1)));
        let taps = (q / d + 1).min(wide(self.kernel));
        (0..taps).any(|t| {
            let start = q - t * d;
            start.is_multiple_of(s) && start / s < wide(o)
        })
    }

    /// Every input size the conv maps to output size `o` (the many-to-one relation): `s`
    /// consecutive sizes, fewer if the smallest would be below 1. `None` if there are none,
    /// or if the largest exceeds `usize`.
    pub fn conv_input_sizes(&self, o: usize) -> Option<RangeInclusive<usize>> {
        let smallest = self.conv_transpose_output_size(o, 0);
        let largest = self.conv_transpose_output_size(o, self.stride.checked_sub(1)?)?;
        Some(smallest.unwrap_or(1)..=largest)
    }

    /// The shared index map of conv and transposed conv: output cell `o` and kernel tap `t`
    /// meet input cell `o·s + t·d − p_b`, or the padding (`None`).
    pub fn source(&self, o: usize, t: usize, i: usize) -> Option<usize> {
        let reach = wide(o) * wide(self.stride) + wide(t) * wide(self.dilation);
        let pos = reach.checked_sub(wide(self.pad_before))?;
        (pos < wide(i)).then_some(pos as usize)
    }
}

/// A `usize` in the type all size arithmetic here is done in.
fn wide(v: usize) -> u128 {
    v as u128
}

/// Back to `usize`, if it fits.
fn narrow(v: u128) -> Option<usize> {
    usize::try_from(v).ok()
}

/// The TensorFlow helpers below are plain formulas; a kernel, stride or dilation of 0 (which
/// no conv has, and which the ops refuse before using them) is read as 1 so they never panic.
/// Each returns `None` where a size would exceed `usize`.
fn tf_effective_kernel(kernel: usize, dilation: usize) -> u128 {
    AxisGeometry::new(kernel, 1, 0, dilation.max(1)).span()
}

/// TensorFlow's `SAME` for a conv: output `⌈i/s⌉`; the total padding
/// `max((o − 1)·s + k_e − i, 0)` is split with the smaller half before.
/// Returns `(o, pad_before, pad_after)`.
pub fn tf_same(i: usize, kernel: usize, stride: usize, dilation: usize) -> Option<(usize, usize, usize)> {
    let (k_e, stride) = (tf_effective_kernel(kernel, dilation), stride.max(1));
    let o = i.div_ceil(stride);
    let total = (wide(o.saturating_sub(1)) * wide(stride) + k_e).saturating_sub(wide(i));
    Some((o, narrow(total / 2)?, narrow(total - total / 2)?))
}

/// TensorFlow's `VALID` for a conv: no padding, output `⌈(i − k_e + 1)/s⌉` (0 if the kernel
/// does not fit).
pub fn tf_valid(i: usize, kernel: usize, stride: usize, dilation: usize) -> usize {
    let k_e = tf_effective_kernel(kernel, dilation);
    let o = (wide(i) + 1).saturating_sub(k_e).div_ceil(wide(stride.max(1)));
    // At most `i`, so it fits.
    o as usize
}

/// The default output size of a TensorFlow/Keras transposed conv with no explicit output
/// shape: `SAME` gives `i·s`, `VALID` gives `i·s + max(k_e − s, 0)`.
pub fn tf_transpose_default_size(same: bool, i: usize, kernel: usize, stride: usize, dilation: usize) -> Option<usize> {
    let k_e = tf_effective_kernel(kernel, dilation);
    let stretched = wide(i) * wide(stride);
    narrow(if same {
        stretched
    } else {
        stretched.checked_add(k_e.saturating_sub(wide(stride)))?
    })
}

/// The explicit output sizes a TensorFlow transposed conv accepts: those the forward conv with
/// the same mode maps back to `i`. `SAME`: `[(i−1)s + 1, i·s]`; `VALID`:
/// `[(i−1)s + k_e, (i−1)s + k_e + s − 1]`.
pub fn tf_transpose_sizes(
    same: bool,
    i: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
) -> Option<RangeInclusive<usize>> {
    let k_e = tf_effective_kernel(kernel, dilation);
    let (base, s) = (wide(i.saturating_sub(1)) * wide(stride), wide(stride));
    let (lo, hi) = if same {
        (base + 1, wide(i) * s)
    } else {
        (
            base.checked_add(k_e)?,
            base.checked_add(k_e)?.checked_add(s.saturating_sub(1))?,
        )
    };
    Some(narrow(lo)?..=narrow(hi)?)
}

/// For a TensorFlow transposed conv of input size `i` and chosen output size `n`, the padding
/// and output padding in adjoint's terms: the padding of the forward conv that maps `n` to
/// `i`, and `op = n − ((i − 1)·s + k_e − p_b − p_a)`. Returns `(axis, output_padding)`.
pub fn tf_transpose_axis(
    same: bool,
    i: usize,
    n: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
) -> Option<(AxisGeometry, usize)> {
    let (pad_before, pad_after) = if same {
        let (_, b, a) = tf_same(n, kernel, stride, dilation)?;
        (b, a)
    } else {
        (0, 0)
    };
    let axis = AxisGeometry {
        kernel,
        stride,
        dilation,
        pad_before,
        pad_after,
    };
    // Saturates at 0 for an `n` outside `tf_transpose_sizes`, which callers check first.
    let reached = wide(i.saturating_sub(1)) * wide(stride) + axis.span();
    let op = axis.padded(n).saturating_sub(reached);
    Some((axis, narrow(op)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_size_in_the_run_maps_to_the_same_output_and_back() {
        for k in 1..5 {
            for s in 1..4 {
                for p in 0..3 {
                    for d in 1..3 {
                        let ax = AxisGeometry::new(k, s, p, d);
                        for i in 1..20 {
                            let Some(o) = ax.conv_output_size(i) else { continue };
                            let a = ax.past_last_window(i).unwrap();
                            assert_eq!(ax.conv_transpose_output_size(o, a), Some(i));
                            assert!(ax.conv_input_sizes(o).unwrap().contains(&i));
                            for j in ax.conv_input_sizes(o).unwrap() {
                                assert_eq!(ax.conv_output_size(j), Some(o), "k{k} s{s} p{p} d{d} i{i} j{j}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn pool_output_sizes_follow_pytorch() {
        // Floor mode is the conv's size.
        let ax = AxisGeometry::new(2, 2, 0, 1);
        assert_eq!(ax.pool_output_size(5, false), Some(2));
        // Ceil mode: a last window over [4, 6) hangs over the end of 5 cells.
        assert_eq!(ax.pool_output_size(5, true), Some(3));
        // ... but one that would start past the input and its left padding is dropped:
        // i = 6, k = 2, s = 2, p = 1 gives ⌈6/2⌉ + 1 = 4 windows starting at −1, 1, 3, 5 — kept;
        // i = 5, k = 3, s = 3, p = 1 gives ⌈4/3⌉ + 1 = 3 windows starting at −1, 2, 5 — and 5 is
        // past the input (5 ≥ i), so 2 (PyTorch: avg_pool1d(arange(5), 3, 3, 1, ceil_mode=True)
        // has 2 values).
        assert_eq!(AxisGeometry::new(2, 2, 1, 1).pool_output_size(6, true), Some(4));
        assert_eq!(AxisGeometry::new(3, 3, 1, 1).pool_output_size(5, true), Some(2));
        // Ceil mode takes a kernel longer than the padded input, if s − 1 cells make it fit
        // (max_pool1d(randn(1, 1, 1), 3, stride=3, ceil_mode=True) has one value) ...
        assert_eq!(AxisGeometry::new(3, 3, 0, 1).pool_output_size(1, true), Some(1));
        assert_eq!(AxisGeometry::new(3, 3, 0, 1).pool_output_size(1, false), None);
        // ... but not if they don't (stride 2: "Invalid computed output size: 0").
        assert_eq!(AxisGeometry::new(3, 2, 0, 1).pool_output_size(1, true), None);
        // Stride 0 and sizes beyond usize are `None`, not a panic or a wrap.
        assert_eq!(AxisGeometry::new(2, 0, 0, 1).pool_output_size(5, true), None);
        assert_eq!(
            AxisGeometry::new(2, usize::MAX, 0, 1).pool_output_size(5, true),
            Some(1)
        );
        assert_eq!(
            AxisGeometry::new(1, 1, usize::MAX / 2, 1).pool_output_size(usize::MAX, true),
            None
        );
    }

    #[test]
    fn pool_output_size_is_the_brute_force_count_of_windows() {
        // A window o (starting at o·s on the padded axis) exists if it fits in the padded input,
        // or — in ceil mode — if it starts before i + p_b and its end would only need the
        // s − 1 extra cells; the windows are a prefix 0..o.
        for k in 1..5 {
            for s in 1..4 {
                for d in 1..3 {
                    for p in 0..=k / 2 {
                        let ax = AxisGeometry::new(k, s, p, d);
                        let k_e = d * (k - 1) + 1;
                        for i in 1..12 {
                            for ceil in [false, true] {
                                let reach = i + 2 * p + if ceil { s - 1 } else { 0 };
                                let count = (0..)
                                    .take_while(|o| {
                                        let start = o * s;
                                        start + k_e <= reach && (!ceil || start < i + p)
                                    })
                                    .count();
                                let want = (count > 0).then_some(count);
                                assert_eq!(
                                    ax.pool_output_size(i, ceil),
                                    want,
                                    "k{k} s{s} d{d} p{p} i{i} ceil {ceil}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn input_and_padded_taps_agree_with_the_index_map() {
        for k in 1..5 {
            for s in 1..4 {
                for d in 1..4 {
                    for (p_b, p_a) in [(0, 0), (1, 1), (2, 1), (0, 3)] {
                        let ax = AxisGeometry {
                            kernel: k,
                            stride: s,
                            dilation: d,
                            pad_before: p_b,
                            pad_after: p_a,
                        };
                        for i in 1..9 {
                            for o in 0..8 {
                                let inside: Vec<usize> = (0..k).filter(|&t| ax.source(o, t, i).is_some()).collect();
                                let taps: Vec<usize> = ax.input_taps(o, i).collect();
                                assert_eq!(taps, inside, "k{k} s{s} d{d} p{p_b},{p_a} i{i} o{o}");
                                let padded = (0..k).filter(|&t| o * s + t * d < i + p_b + p_a).count();
                                assert_eq!(ax.padded_taps(o, i), padded);
                            }
                        }
                    }
                }
            }
        }
        // A kernel of 2^62 taps: counted, never walked.
        let huge = AxisGeometry::new(1 << 62, 1, 1 << 61, 1);
        assert_eq!(huge.input_taps(3, 5), (1 << 61) - 3..(1 << 61) + 2);
        assert_eq!(huge.padded_taps(3, 5), 1 << 62);
        // Taps at padded positions 0 and 3 around an input of 2 at [1, 3): none lands in it.
        assert!(AxisGeometry::new(2, 1, 1, 3).input_taps(0, 2).is_empty());
    }

    #[test]
    fn tf_same_and_valid_follow_tensorflow() {
        // SAME: 5 with stride 2 → 3, total padding (3−1)·2 + 3 − 5 = 2, split 1/1.
        assert_eq!(tf_same(5, 3, 2, 1), Some((3, 1, 1)));
        // Even total split with the extra cell after: 6, k 4, s 2 → 3, total 2+... = (2·2+4−6)=2.
        assert_eq!(tf_same(6, 4, 2, 1), Some((3, 1, 1)));
        assert_eq!(tf_same(6, 3, 2, 1), Some((3, 0, 1)));
        assert_eq!(tf_valid(5, 3, 2, 1), 2);
        assert_eq!(tf_valid(2, 3, 1, 1), 0);
        assert_eq!(tf_transpose_default_size(true, 3, 3, 2, 1), Some(6));
        assert_eq!(tf_transpose_default_size(false, 3, 3, 2, 1), Some(7));
        for same in [true, false] {
            for n in tf_transpose_sizes(same, 3, 3, 2, 1).unwrap() {
                let (ax, op) = tf_transpose_axis(same, 3, n, 3, 2, 1).unwrap();
                assert_eq!(ax.conv_output_size(n), Some(3));
                assert_eq!(ax.conv_transpose_output_size(3, op), Some(n));
            }
        }
    }
}
