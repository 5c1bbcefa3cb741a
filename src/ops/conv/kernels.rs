//! Tape-free array code for the conv family: one index map, three kernels.
//!
//! Everything is described from the conv's side. The *big* side is the conv's input
//! `[n, c_big, big..]`, the *small* side its output `[n, c_small, small..]`, and the weight is
//! `[c_small, c_big/g, k..]` — which is both conv's `[c_out, c_in/g, k..]` and transposed conv's
//! `[c_in, c_out/g, k..]`: the two ops share one weight layout because they share one matrix.
//!
//! ```text
//! gather    (conv forward,            big → small):  small[o] = Σ_t w[t] · big[o·s + t·d − p]
//! scatter   (transposed conv forward, small → big):  big[o·s + t·d − p] += w[t] · small[o]
//! correlate (both weight gradients):                 w[t] = Σ_o small[o] · big[o·s + t·d − p]
//! ```
//!
//! Each runs per image and group as a matrix product with the unrolled big side
//! (`cols: [c_big/g · taps, positions]`, "im2col"): gather is `w · cols`, scatter is
//! `wᵀ · small` folded back by "col2im", correlate is `small · colsᵀ`.
//!
//! A kernel that covers its whole unpadded input has one position: the conv is a dense layer
//! (an autoencoder's bottleneck, a classifier's head), `cols` is the big side itself, and the
//! products read and write the arrays in place instead.
//!
//! A first axis whose stride is below its kernel (a "same" 3×3 conv, the bulk of most vision
//! models; a 4×4 stride-2 upsampling) needs only part of the unroll: [`shifts`] unrolls the
//! other axes, once per phase of the stride, and slides along the first.

use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};

use self::shifts::Shifts;
use super::geometry::AxisGeometry;
use crate::error::Result;
use crate::float::Float;
use crate::ops::gemm::gemm;
use crate::ops::size;
use crate::ops::unravel;

mod shifts;

/// Sizes of one conv as the kernels need them.
#[derive(Clone, Debug)]
pub(crate) struct ConvShape {
    pub batch: usize,
    pub c_big: usize,
    pub c_small: usize,
    pub groups: usize,
    pub big: Vec<usize>,
    pub small: Vec<usize>,
    pub axes: Vec<AxisGeometry>,
}

impl ConvShape {
    fn big_len(&self) -> usize {
        self.big.iter().product()
    }
    fn small_len(&self) -> usize {
        self.small.iter().product()
    }
    fn taps(&self) -> usize {
        self.axes.iter().map(|a| a.kernel).product()
    }
    /// No image, or no channel: every kernel's answer is all zeros (an empty output, or a
    /// weight gradient summed over nothing), and there is nothing to unroll.
    fn is_empty(&self) -> bool {
        self.batch == 0 || self.c_big == 0 || self.c_small == 0
    }
}

/// One row of `cols` restricted to one (channel-free) tap and one position of the leading
/// axes: `o_last` consecutive output positions. `base` is the big-side offset of the leading
/// axes, `None` if they fall in the padding (the whole row is then zero). Stored tap by tap.
struct Segment {
    first_position: usize,
    base: Option<usize>,
    last_tap: usize,
}

/// Along the last axis the source `o·s + t·d − p` is affine in `o`: positions `lo..hi` read
/// `src_lo, src_lo + s, ...`; the rest fall in the padding.
#[derive(Clone, Copy)]
struct Run {
    lo: usize,
    hi: usize,
    src_lo: usize,
}

/// The index map `(tap, position) → big-side cell` of [`AxisGeometry::source`], unrolled once
/// per call and shared by all images, groups and channels.
struct IndexMap {
    segments: Vec<Segment>,
    /// For narrow rows only: per tap, each position's big-side cell ([`PADDING`] if none).
    /// Segments of a few values cost more in bookkeeping than in copying; a flat gather
    /// through this table has none (measured: the unroll was ~a quarter of a small
    /// autoencoder's training step, over rows 7 wide).
    cells: Option<Vec<u32>>,
    /// With `cells`: the positions in the padding, tap by tap (`padding[padding_at[t]..
    /// padding_at[t + 1]]` for tap `t`), which the unroll zeroes after copying the rest.
    padding: Vec<u32>,
    padding_at: Vec<usize>,
    /// Per tap of the last axis, its run of valid positions.
    runs: Vec<Run>,
    /// One position, and the kernel covers the whole unpadded input tap by tap: the conv is a
    /// dense layer, and the unrolled big side is the big side itself (see [`Blocks::unrolled`]).
    identity: bool,
    stride: usize,
    /// The last axis has stride 2 and no dilation: see [`IndexMap::pairs_with_next`].
    stride_two: bool,
    last_kernel: usize,
    width: usize,
    taps: usize,
    big_len: usize,
}

impl IndexMap {
    fn new(shape: &ConvShape) -> Self {
        let r = shape.axes.len();
        let (lead_axes, last_axis) = shape.axes.split_at(r - 1);
        let last_axis = last_axis[0];
        let (o_last, i_last) = (shape.small[r - 1], shape.big[r - 1]);
        let runs = (0..last_axis.kernel)
            .map(|t| {
                let valid: Vec<usize> = (0..o_last)
                    .filter(|&o| last_axis.source(o, t, i_last).is_some())
                    .collect();
                match (valid.first(), valid.last()) {
                    (Some(&lo), Some(&hi)) => Run {
                        lo,
                        hi: hi + 1,
                        src_lo: last_axis.source(lo, t, i_last).expect("valid"),
                    },
                    _ => Run {
                        lo: 0,
                        hi: 0,
                        src_lo: 0,
                    },
                }
            })
            .collect();
        // Row-major strides of the big side's spatial axes.
        let mut strides = vec![1; r];
        for a in (0..r - 1).rev() {
            strides[a] = strides[a + 1] * shape.big[a + 1];
        }
        let lead_positions: usize = shape.small[..r - 1].iter().product();
        let mut segments = Vec::with_capacity(shape.taps() * lead_positions);
        let kernel: Vec<usize> = shape.axes.iter().map(|a| a.kernel).collect();
        for tap in 0..shape.taps() {
            let tap_idx = unravel(tap, &kernel);
            for lead in 0..lead_positions {
                let pos_idx = unravel(lead, &shape.small[..r - 1]);
                let base = lead_axes.iter().enumerate().try_fold(0, |acc, (a, ax)| {
                    ax.source(pos_idx[a], tap_idx[a], shape.big[a])
                        .map(|s| acc + s * strides[a])
                });
                segments.push(Segment {
                    first_position: lead * o_last,
                    base,
                    last_tap: tap_idx[r - 1],
                });
            }
        }
        let mut map = IndexMap {
            segments,
            cells: None,
            padding: Vec::new(),
            padding_at: Vec::new(),
            identity: false,
            runs,
            stride: last_axis.stride,
            stride_two: last_axis.stride == 2 && last_axis.dilation == 1,
            last_kernel: last_axis.kernel,
            width: o_last,
            taps: shape.taps(),
            big_len: shape.big_len(),
        };
        if map.width < NARROW_ROWS && u32::try_from(map.big_len).is_ok() {
            let cells = map.cell_table();
            map.identity = map.small_len() == 1
                && map.taps == map.big_len
                && cells.iter().enumerate().all(|(t, &cell)| cell as usize == t);
            let l = map.small_len();
            let mut padding_at = vec![0];
            let mut padding = Vec::new();
            for tap_cells in cells.chunks(l.max(1)).take(map.taps) {
                padding.extend((0..l as u32).filter(|&p| tap_cells[p as usize] == PADDING));
                padding_at.push(padding.len());
            }
            padding_at.resize(map.taps + 1, padding.len());
            (map.padding, map.padding_at) = (padding, padding_at);
            map.cells = Some(cells);
        }
        map
    }

    /// The same map on the segment path only, whatever the row width.
    #[cfg(test)]
    fn without_cells(shape: &ConvShape) -> Self {
        IndexMap {
            cells: None,
            identity: false,
            ..IndexMap::new(shape)
        }
    }

    /// The segments flattened: `cells[t·L + p]`, the big-side cell position `p` reads at tap `t`.
    fn cell_table(&self) -> Vec<u32> {
        let l = self.small_len();
        let mut cells = vec![PADDING; self.taps * l];
        for tap in 0..self.taps {
            for s in self.tap_segments(tap) {
                let Some(base) = s.base else { continue };
                let Run { lo, hi, src_lo } = self.runs[s.last_tap];
                let row = &mut cells[tap * l + s.first_position..][..self.width];
                for (k, cell) in row.iter_mut().enumerate().take(hi).skip(lo) {
                    *cell = (base + src_lo + (k - lo) * self.stride) as u32;
                }
            }
        }
        cells
    }

    /// im2col of several images side by side: `cols[c·taps + t, j·L + p] = image_j[c,
    /// source(t, p)]`, zero in the padding. Writes each element of `cols` once, so it may hold
    /// garbage on entry. Each row is written front to back (images inner, channels outer), so
    /// the stores stream and the images' planes are re-read from cache for every tap.
    fn unroll<T: Float>(&self, images: &[&[T]], cols: &mut [T]) {
        let Some(first) = images.first() else { return };
        let (l, channels) = (self.small_len(), first.len() / self.big_len);
        let row_len = images.len() * l;
        for c in 0..channels {
            let mut tap = 0;
            while tap < self.taps {
                let both = self.pairs_with_next(tap);
                let rows = &mut cols[(c * self.taps + tap) * row_len..][..row_len * if both { 2 } else { 1 }];
                let (row, next) = rows.split_at_mut(row_len);
                for (j, (image, out)) in images.iter().zip(row.chunks_exact_mut(l)).enumerate() {
                    let plane = &image[c * self.big_len..][..self.big_len];
                    if let Some(cells) = &self.cells {
                        let padding = &self.padding[self.padding_at[tap]..self.padding_at[tap + 1]];
                        gather_cells(plane, &cells[tap * l..][..l], padding, out);
                    } else if both {
                        self.unroll_pair(plane, tap, out, &mut next[j * l..][..l]);
                    } else {
                        for s in self.tap_segments(tap) {
                            self.unroll_segment(plane, s, &mut out[s.first_position..][..self.width]);
                        }
                    }
                }
                tap += if both { 2 } else { 1 };
            }
        }
    }

    /// Two taps at once (see [`Self::pairs_with_next`]), the adjoint of [`Self::fold_pair`]:
    /// where both are in range, each row of the plane is read once, front to back, its cells
    /// going alternately to `a` and `b`.
    fn unroll_pair<T: Float>(&self, plane: &[T], tap: usize, a: &mut [T], b: &mut [T]) {
        for (sa, sb) in self.tap_segments(tap).iter().zip(self.tap_segments(tap + 1)) {
            debug_assert_eq!(sa.base, sb.base);
            let (a, b) = (
                &mut a[sa.first_position..][..self.width],
                &mut b[sb.first_position..][..self.width],
            );
            let Some(base) = sa.base else {
                a.fill(T::zero());
                b.fill(T::zero());
                continue;
            };
            let (ra, rb) = (self.runs[sa.last_tap], self.runs[sb.last_tap]);
            let (lo, hi) = (ra.lo.max(rb.lo), ra.hi.min(rb.hi));
            for (run, to) in [(ra, &mut *a), (rb, &mut *b)] {
                for o in (0..self.width).filter(|o| !(lo..hi).contains(o)) {
                    to[o] = if (run.lo..run.hi).contains(&o) {
                        plane[base + run.src_lo + (o - run.lo) * 2]
                    } else {
                        T::zero()
                    };
                }
            }
            if hi > lo {
                let src = &plane[base + ra.src_lo + (lo - ra.lo) * 2..][..2 * (hi - lo)];
                for (cells, (x, y)) in src.chunks_exact(2).zip(a[lo..hi].iter_mut().zip(&mut b[lo..hi])) {
                    *x = cells[0];
                    *y = cells[1];
                }
            }
        }
    }

    /// One segment: `width` consecutive positions of one tap.
    #[inline]
    fn unroll_segment<T: Float>(&self, plane: &[T], s: &Segment, dst: &mut [T]) {
        let Some(base) = s.base else {
            dst.fill(T::zero());
            return;
        };
        let Run { lo, hi, src_lo } = self.runs[s.last_tap];
        // Short rows are the common case: plain loops beat calls to memset/memcpy here.
        for d in &mut dst[..lo] {
            *d = T::zero();
        }
        if hi > lo {
            let src = &plane[base + src_lo..][..(hi - lo - 1) * self.stride + 1];
            copy_strided(&mut dst[lo..hi], src, self.stride);
        }
        for d in &mut dst[hi.max(lo)..] {
            *d = T::zero();
        }
    }

    /// col2im, the adjoint of `unroll`: `image_j[c, source(t, p)] += cols[c·taps + t, j·L + p]`,
    /// reading each row of `cols` front to back.
    fn fold<T: Float>(&self, cols: &[T], images: &mut [&mut [T]]) {
        let Some(first) = images.first() else { return };
        let (l, channels) = (self.small_len(), first.len() / self.big_len);
        let row_len = images.len() * l;
        for c in 0..channels {
            let mut tap = 0;
            while tap < self.taps {
                let both = self.pairs_with_next(tap);
                let rows = &cols[(c * self.taps + tap) * row_len..];
                for (j, image) in images.iter_mut().enumerate() {
                    let plane = &mut image[c * self.big_len..][..self.big_len];
                    let from = &rows[j * l..][..l];
                    if let Some(cells) = &self.cells {
                        // Within one tap no two positions share a cell, so this order is the
                        // segments' order: the same sums, bit for bit.
                        for (&cell, &v) in cells[tap * l..][..l].iter().zip(from) {
                            if let Some(d) = plane.get_mut(cell as usize) {
                                *d += v;
                            }
                        }
                    } else if both {
                        self.fold_pair(plane, tap, from, &rows[row_len + j * l..][..l]);
                    } else {
                        self.fold_tap(plane, tap, from);
                    }
                }
                tap += if both { 2 } else { 1 };
            }
        }
    }

    /// Whether, on the segment path, `tap` and `tap + 1` differ only in the last axis, by one,
    /// on a stride-2, undilated last axis: they then add into alternate cells of the same rows,
    /// and [`Self::fold_pair`] folds both at once.
    fn pairs_with_next(&self, tap: usize) -> bool {
        let last = tap % self.last_kernel;
        self.cells.is_none() && self.stride_two && last.is_multiple_of(2) && last + 1 < self.last_kernel
    }

    /// One tap's row of `cols` (one image) added into its plane, segment by segment.
    fn fold_tap<T: Float>(&self, plane: &mut [T], tap: usize, from: &[T]) {
        for s in self.tap_segments(tap) {
            let Some(base) = s.base else { continue };
            let Run { lo, hi, src_lo } = self.runs[s.last_tap];
            if hi <= lo {
                continue;
            }
            let from = &from[s.first_position + lo..s.first_position + hi];
            add_strided(
                &mut plane[base + src_lo..][..(hi - lo - 1) * self.stride + 1],
                from,
                self.stride,
            );
        }
    }

    /// Two taps at once (see [`Self::pairs_with_next`]): position `o` of `a` adds into cell
    /// `2o + e` of a row and of `b` into `2o + e + 1`, so where both are in range the row is
    /// written front to back, each cell once, instead of every other cell in two passes
    /// (measured on W6, a 4×4 stride-2 transposed conv: the fold took a third of the forward).
    /// A cell gets at most one of the two and the taps still go in order, so the sums are
    /// those of [`Self::fold_tap`] twice, bit for bit.
    fn fold_pair<T: Float>(&self, plane: &mut [T], tap: usize, a: &[T], b: &[T]) {
        for (sa, sb) in self.tap_segments(tap).iter().zip(self.tap_segments(tap + 1)) {
            // Same leading taps, so the same leading cells.
            debug_assert_eq!(sa.base, sb.base);
            let Some(base) = sa.base else { continue };
            let (ra, rb) = (self.runs[sa.last_tap], self.runs[sb.last_tap]);
            let (a, b) = (
                &a[sa.first_position..][..self.width],
                &b[sb.first_position..][..self.width],
            );
            let (lo, hi) = (ra.lo.max(rb.lo), ra.hi.min(rb.hi));
            for (run, from) in [(ra, a), (rb, b)] {
                for o in (run.lo..run.hi).filter(|o| !(lo..hi).contains(o)) {
                    plane[base + run.src_lo + (o - run.lo) * 2] += from[o];
                }
            }
            if hi > lo {
                let dst = &mut plane[base + ra.src_lo + (lo - ra.lo) * 2..][..2 * (hi - lo)];
                for (cells, (x, y)) in dst.chunks_exact_mut(2).zip(a[lo..hi].iter().zip(&b[lo..hi])) {
                    cells[0] += *x;
                    cells[1] += *y;
                }
            }
        }
    }

    /// The segments of one tap, in position order.
    #[inline]
    fn tap_segments(&self, tap: usize) -> &[Segment] {
        let per_tap = self.segments.len() / self.taps;
        &self.segments[tap * per_tap..][..per_tap]
    }

    /// Positions of the small side, `L`.
    fn small_len(&self) -> usize {
        self.segments.len() / self.taps * self.width
    }
}

/// Rows narrower than this are unrolled through [`IndexMap::cell_table`].
const NARROW_ROWS: usize = 16;

/// The cell of a position in the padding: no plane is this long.
const PADDING: u32 = u32::MAX;

/// `out[p] = plane[cells[p]]`, and zero at the `padding` positions (whose cells are
/// [`PADDING`]). Branch-free: every cell is clamped into the plane and read, and the few
/// positions in the padding are zeroed after (measured on W2, a 3x3 stride-2 conv over 14×14
/// planes: ~11 instructions per value with a branch on `get` per cell, half of its forward).
fn gather_cells<T: Float>(plane: &[T], cells: &[u32], padding: &[u32], out: &mut [T]) {
    let Some(last) = plane.len().checked_sub(1) else {
        out.fill(T::zero());
        return;
    };
    for (d, &cell) in out.iter_mut().zip(cells) {
        *d = plane[(cell as usize).min(last)];
    }
    for &p in padding {
        out[p as usize] = T::zero();
    }
}

/// `dst[k] = src[k·stride]`, where `src` holds exactly `(dst.len() − 1)·stride + 1` values.
/// The unroll's inner loop; measured on rows of 7–28 values, plain indexing and (for stride 2)
/// pairs beat `step_by` by 1.4–4x.
fn copy_strided<T: Float>(dst: &mut [T], src: &[T], stride: usize) {
    let n = dst.len();
    match stride {
        1 => dst.copy_from_slice(src),
        2 if n >= 12 => {
            for (d, pair) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *d = pair[0];
            }
            dst[n - 1] = src[2 * (n - 1)];
        }
        _ => {
            for (k, d) in dst.iter_mut().enumerate() {
                *d = src[k * stride];
            }
        }
    }
}

/// `dst[k·stride] += src[k]`, where `dst` holds exactly `(src.len() − 1)·stride + 1` values: the
/// fold's inner loop for taps that are not paired, written like [`copy_strided`].
fn add_strided<T: Float>(dst: &mut [T], src: &[T], stride: usize) {
    let n = src.len();
    match stride {
        1 => dst.iter_mut().zip(src).for_each(|(d, v)| *d += *v),
        2 if n >= 12 => {
            for (pair, v) in dst.chunks_exact_mut(2).zip(src) {
                pair[0] += *v;
            }
            dst[2 * (n - 1)] += src[n - 1];
        }
        _ => {
            for (k, v) in src.iter().enumerate() {
                dst[k * stride] += *v;
            }
        }
    }
}

/// Splits the batch into [`pieces`] runs of consecutive images, run over rayon's threads when
/// the work is worth a thread and in order otherwise; `out` (`per_image` values per image) is
/// split alike, so each piece writes its own images in place. The pieces depend only on the
/// batch size and the work, never on the machine, so results are the same bit for bit on any
/// number of threads. Returns the pieces' results in order.
fn split_batch<T: Send, R: Send>(
    out: &mut [T],
    per_image: usize,
    flops: usize,
    f: impl Fn(std::ops::Range<usize>, &mut [T]) -> R + Sync,
) -> Vec<R> {
    let batch = out.len().checked_div(per_image).unwrap_or(0);
    let threads = rayon::current_num_threads() > 1;
    if batch < 2 {
        // One image: its matrix products are split instead, when the work is worth it.
        return vec![if threads && flops >= PARALLEL_FLOPS {
            crate::ops::gemm::across_threads(|| f(0..batch, out))
        } else {
            f(0..batch, out)
        }];
    }
    let n = pieces(batch, flops);
    let mut rest = out;
    let mut work = Vec::with_capacity(n);
    for i in 0..n {
        let images = i * batch / n..(i + 1) * batch / n;
        let (piece, tail) = rest.split_at_mut(images.len() * per_image);
        rest = tail;
        work.push((images, piece));
    }
    if n == 1 || !threads {
        return work.into_iter().map(|(images, piece)| f(images, piece)).collect();
    }
    // The calling thread takes the first piece itself and the pool the others. (`rayon::join`
    // from a thread outside the pool would ship every piece to the pool and wait: one more
    // hand-off per call, measured ~10% of a training step.)
    let mut results: Vec<Option<R>> = (0..n).map(|_| None).collect();
    let (first_result, other_results) = results.split_first_mut().expect("n ≥ 2");
    let mut work = work.into_iter();
    let (first_images, first_piece) = work.next().expect("n ≥ 2");
    let f = &f;
    rayon::in_place_scope(|scope| {
        for ((images, piece), result) in work.zip(other_results) {
            scope.spawn(move |_| *result = Some(f(images, piece)));
        }
        *first_result = Some(f(first_images, first_piece));
    });
    results
        .into_iter()
        .map(|r| r.expect("the scope waits for every piece"))
        .collect()
}

/// [`split_batch`] over a fresh output of `shape.batch` images, `per_image` values each: each
/// piece is cleared by the thread that computes it, just before it does, while still in its
/// cache. (A separate clearing pass cost a hand-off to the pool and a pass over memory: on W1,
/// 64 small images, a fifth of the forward.) Returns the output and the pieces' results.
fn split_output<T: Float, R: Send>(
    op: &'static str,
    shape: &ConvShape,
    per_image: usize,
    f: impl Fn(std::ops::Range<usize>, &mut [T]) -> R + Sync,
) -> Result<(Vec<T>, Vec<R>)> {
    let len = size::mul(op, "output", shape.batch, per_image)?;
    let mut out = size::uninit(op, "output", len)?;
    let results = split_batch(&mut out, per_image, shape.flops(), |images, piece| {
        f(images, size::zero_fill(piece))
    });
    // SAFETY: `split_batch` hands every value of `out` (whole images) to one piece, and
    // `zero_fill` writes all of a piece before `f` sees it.
    Ok((unsafe { size::assume_init(out) }, results))
}

/// How many pieces [`split_batch`] cuts a batch into: one per [`PIECE_FLOPS`] multiply-adds,
/// at most one per image and at most [`MAX_PIECES`]. More pieces than two let a free core take
/// over the work of a busy one (this machine is shared) and use the cores of larger machines.
fn pieces(batch: usize, flops: usize) -> usize {
    flops.div_ceil(PIECE_FLOPS).clamp(1, batch.min(MAX_PIECES))
}

/// Multiply-adds per piece of a batch; below twice this a conv runs as one piece.
const PIECE_FLOPS: usize = 1 << 20;

/// At most this many pieces: each piece of a weight gradient holds a weight-sized partial sum.
const MAX_PIECES: usize = 8;

/// Below this many multiply-adds a batch of one runs its products on one thread.
const PARALLEL_FLOPS: usize = 1 << 22;

fn matrix<T: Float>(data: &[T], rows: usize, cols: usize) -> ArrayView2<'_, T> {
    ArrayView2::from_shape((rows, cols), data).expect("sizes come from ConvShape")
}

fn matrix_mut<T: Float>(data: &mut [T], rows: usize, cols: usize) -> ArrayViewMut2<'_, T> {
    ArrayViewMut2::from_shape((rows, cols), data).expect("sizes come from ConvShape")
}

/// Where each image's group lives in the flat arrays, and the matrix sizes per group.
struct Blocks {
    groups: usize,
    big_g: usize,
    small_g: usize,
    big_len: usize,
    small_len: usize,
    taps: usize,
}

impl Blocks {
    fn new(shape: &ConvShape) -> Self {
        Blocks {
            groups: shape.groups,
            big_g: shape.c_big / shape.groups,
            small_g: shape.c_small / shape.groups,
            big_len: shape.big_len(),
            small_len: shape.small_len(),
            taps: shape.taps(),
        }
    }

    /// Image `n`, group `g` of the big side: `[big_g, big..]`.
    fn big(&self, n: usize, g: usize) -> std::ops::Range<usize> {
        let start = ((n * self.groups + g) * self.big_g) * self.big_len;
        start..start + self.big_g * self.big_len
    }

    /// Image `n`, group `g` of the small side: `[small_g, small..]`.
    fn small(&self, n: usize, g: usize) -> std::ops::Range<usize> {
        let start = ((n * self.groups + g) * self.small_g) * self.small_len;
        start..start + self.small_g * self.small_len
    }

    /// Group `g` of the weight: `[small_g, big_g·taps]`.
    fn weight(&self, g: usize) -> std::ops::Range<usize> {
        let len = self.small_g * self.big_g * self.taps;
        g * len..(g + 1) * len
    }

    /// Rows of the unrolled big side, `big_g·taps`.
    fn unrolled_rows(&self) -> usize {
        self.big_g * self.taps
    }

    /// im2col of images `first..first + m`, group `g`, side by side: `[big_g·taps, m·L]`,
    /// written into `cols`; or, for a dense layer ([`IndexMap::identity`]), a view of `big`
    /// itself, each image's group a column, with no copy.
    fn unrolled<'a, T: Float>(
        &self,
        map: &IndexMap,
        big: &'a [T],
        (first, m, g): (usize, usize, usize),
        cols: &'a mut [T],
    ) -> ArrayView2<'a, T> {
        if map.identity {
            let per_image = self.groups * self.big_g * self.big_len;
            let (at, end) = (self.big(first, g).start, self.big(first + m - 1, g).end);
            return ArrayView2::from_shape((self.unrolled_rows(), m).strides((1, per_image)), &big[at..end])
                .expect("sizes come from ConvShape");
        }
        let images: Vec<&[T]> = (first..first + m).map(|n| &big[self.big(n, g)]).collect();
        map.unroll(&images, cols);
        matrix(cols, self.unrolled_rows(), m * self.small_len)
    }

    /// The small side of images `first..first + m`, group `g`, as a matrix `[small_g, m·L]`, the
    /// images side by side as the matrix products want them: copied into `rows`, or for one image
    /// its group itself, which is that matrix already (W5's images are one per product; not
    /// copying them measured ~2% of its forward and backward).
    fn small_rows<'a, T: Float>(
        &self,
        small: &'a [T],
        (first, m, g): (usize, usize, usize),
        rows: &'a mut [T],
    ) -> ArrayView2<'a, T> {
        let l = self.small_len;
        if m == 1 {
            return matrix(&small[self.small(first, g)], self.small_g, l);
        }
        for j in 0..m {
            let image = &small[self.small(first + j, g)];
            for o in 0..self.small_g {
                rows[(o * m + j) * l..][..l].copy_from_slice(&image[o * l..][..l]);
            }
        }
        matrix(rows, self.small_g, m * l)
    }

    /// `small[images 0..m, group g] = w_g · cols`: for one image straight into its group, else
    /// through `rows` (see [`Blocks::small_rows`]).
    fn product_to_small<T: Float>(
        &self,
        (w_g, cols): (ArrayView2<'_, T>, ArrayView2<'_, T>),
        (m, g): (usize, usize),
        rows: &mut [T],
        small: &mut [T],
    ) {
        if m == 1 {
            gemm(
                w_g,
                cols,
                false,
                matrix_mut(&mut small[self.small(0, g)], self.small_g, self.small_len),
            );
            return;
        }
        gemm(w_g, cols, false, matrix_mut(rows, self.small_g, m * self.small_len));
        self.rows_to_small(rows, (m, g), small);
    }

    /// The inverse of [`Blocks::small_rows`]' copy, into images `0..m` of `small`.
    fn rows_to_small<T: Float>(&self, rows: &[T], (m, g): (usize, usize), small: &mut [T]) {
        let l = self.small_len;
        for j in 0..m {
            let image = &mut small[self.small(j, g)];
            for o in 0..self.small_g {
                image[o * l..][..l].copy_from_slice(&rows[(o * m + j) * l..][..l]);
            }
        }
    }
}

impl ConvShape {
    /// Multiply-adds of one of the three kernels (they all do the same count).
    fn flops(&self) -> usize {
        // Saturating: only compared with a threshold, and a product of validated sizes can
        // still exceed `usize` for an op too large to finish anyway.
        [self.c_small, self.small_len(), self.c_big / self.groups, self.taps()]
            .into_iter()
            .fold(self.batch, usize::saturating_mul)
    }

    /// Images per matrix product: enough that its long side has a few thousand columns (tiny
    /// products waste most of their time packing), and at least one.
    fn chunk(&self) -> usize {
        (4096 / self.small_len().max(1)).clamp(1, self.batch.max(1))
    }
}

/// Buffers for the unrolled big side and the small side's rows, kept per thread between calls:
/// allocating them fresh each call zeroed megabytes that the kernels overwrite anyway (a
/// memset measured at ~12% of a small autoencoder's training step). Each thread keeps one pair
/// per element type, as large as the largest conv it has run.
struct Scratch<T> {
    cols: Vec<T>,
    rows: Vec<T>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<Box<dyn std::any::Any>>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl<T: Float> Scratch<T> {
    /// This thread's pair, taken out of its slot (a nested call would find none and allocate).
    ///
    /// # Errors
    /// [`crate::Error::OutOfMemory`] if a buffer must grow and cannot.
    fn take(cols: usize, rows: usize) -> Result<Self> {
        let found = SCRATCH.with(|slots| {
            let mut slots = slots.borrow_mut();
            let at = slots.iter().position(|b| b.is::<Scratch<T>>())?;
            slots.swap_remove(at).downcast::<Scratch<T>>().ok()
        });
        let mut scratch = found.map_or_else(
            || Scratch {
                cols: Vec::new(),
                rows: Vec::new(),
            },
            |b| *b,
        );
        // Contents are arbitrary: every kernel writes a buffer before reading it. Growing drops
        // the old buffer rather than copying it.
        for (buffer, len) in [(&mut scratch.cols, cols), (&mut scratch.rows, rows)] {
            if buffer.len() < len {
                *buffer = Vec::new();
                *buffer = size::zeroed("conv", "unrolled input", len)?;
            }
        }
        Ok(scratch)
    }

    fn give_back(self) {
        SCRATCH.with(|slots| slots.borrow_mut().push(Box::new(self)));
    }
}

/// For each chunk of `images` and each group, runs `f((first image, chunk length, group))`,
/// with this thread's scratch buffers for the unrolled big side and the small side's rows.
fn for_chunks<T: Float>(
    shape: &ConvShape,
    b: &Blocks,
    images: std::ops::Range<usize>,
    mut f: impl FnMut((usize, usize, usize), &mut [T], &mut [T]),
) -> Result<()> {
    let chunk = shape.chunk();
    let width = size::mul("conv", "unrolled input", chunk, b.small_len)?;
    let cols = size::mul("conv", "unrolled input", b.unrolled_rows(), width)?;
    let mut scratch = Scratch::<T>::take(cols, b.small_g * width)?;
    let mut first = images.start;
    while first < images.end {
        let m = chunk.min(images.end - first);
        for g in 0..shape.groups {
            let width = m * b.small_len;
            f(
                (first, m, g),
                &mut scratch.cols[..b.unrolled_rows() * width],
                &mut scratch.rows[..b.small_g * width],
            );
        }
        first += m;
    }
    scratch.give_back();
    Ok(())
}

/// Runs every piece's result through `?`: the first error wins.
fn all_ok<R>(pieces: Vec<Result<R>>) -> Result<Vec<R>> {
    pieces.into_iter().collect()
}

/// Conv forward. `big: [n, c_big, big..]`, `w: [c_small, c_big/g, k..]` → `[n, c_small, small..]`.
///
/// # Errors
/// [`crate::Error::OutOfMemory`] if the output or the scratch buffers cannot be allocated.
pub(crate) fn gather<T: Float>(shape: &ConvShape, big: &[T], w: &[T]) -> Result<Vec<T>> {
    if shape.is_empty() {
        return size::zeroed("conv", "output", shape.batch * shape.c_small * shape.small_len());
    }
    match Shifts::new(shape) {
        Some(shifts) => shifts.gather(shape, big, w),
        None => gather_unrolled(shape, big, w),
    }
}

/// [`gather`] through the full unroll.
fn gather_unrolled<T: Float>(shape: &ConvShape, big: &[T], w: &[T]) -> Result<Vec<T>> {
    let (map, b) = (IndexMap::new(shape), Blocks::new(shape));
    let per_image = shape.c_small * b.small_len;
    let (small, pieces) = split_output("conv", shape, per_image, |images, out| {
        let start = images.start;
        for_chunks(shape, &b, images, |(first, m, g), cols, rows| {
            let cols_m = b.unrolled(&map, big, (first, m, g), cols);
            let w_g = matrix(&w[b.weight(g)], b.small_g, b.unrolled_rows());
            b.product_to_small((w_g, cols_m), (m, g), rows, &mut out[(first - start) * per_image..]);
        })
    })?;
    all_ok(pieces)?;
    Ok(small)
}

/// Transposed conv forward. `small: [n, c_small, small..]`, `w: [c_small, c_big/g, k..]` →
/// `[n, c_big, big..]`.
///
/// # Errors
/// As [`gather`].
pub(crate) fn scatter<T: Float>(shape: &ConvShape, small: &[T], w: &[T]) -> Result<Vec<T>> {
    if shape.is_empty() {
        return size::zeroed("conv_transpose", "output", shape.batch * shape.c_big * shape.big_len());
    }
    match Shifts::new(shape) {
        Some(shifts) => shifts.scatter(shape, small, w),
        None => scatter_unrolled(shape, small, w),
    }
}

/// [`scatter`] through the full unroll.
fn scatter_unrolled<T: Float>(shape: &ConvShape, small: &[T], w: &[T]) -> Result<Vec<T>> {
    let (map, b) = (IndexMap::new(shape), Blocks::new(shape));
    let per_image = shape.c_big * b.big_len;
    // Each piece's zeros are written (not calloc'd) by the thread that uses them: pages from
    // calloc would be first *read* by `fold`'s `+=`, mapping the shared zero page, and then
    // copied on write, each copy flushing the TLB of the other thread too (measured: a quarter
    // of W5's backward).
    let (big, pieces) = split_output("conv_transpose", shape, per_image, |images, out| {
        let start = images.start;
        for_chunks(shape, &b, images, |(first, m, g), cols, rows| {
            let width = m * b.small_len;
            let small_m = b.small_rows(small, (first, m, g), rows);
            let w_g = matrix(&w[b.weight(g)], b.small_g, b.unrolled_rows());
            if map.identity {
                // col2im would copy each value to its own cell: the product writes there itself.
                let (at, end) = (b.big(first - start, g).start, b.big(first - start + m - 1, g).end);
                let y = ArrayViewMut2::from_shape((b.unrolled_rows(), m).strides((1, per_image)), &mut out[at..end])
                    .expect("sizes come from ConvShape");
                gemm(w_g.t(), small_m, false, y);
                return;
            }
            gemm(w_g.t(), small_m, false, matrix_mut(cols, b.unrolled_rows(), width));
            // Group `g` of each image of the chunk, disjoint slices of `out`.
            let per_group = b.big_g * b.big_len;
            let mut images: Vec<&mut [T]> = out[(first - start) * per_image..]
                .chunks_exact_mut(per_image)
                .take(m)
                .map(|image| &mut image[g * per_group..][..per_group])
                .collect();
            map.fold(cols, &mut images);
        })
    })?;
    all_ok(pieces)?;
    Ok(big)
}

/// The weight gradient of both ops. `big: [n, c_big, big..]`, `small: [n, c_small, small..]` →
/// `[c_small, c_big/g, k..]`, summed over the batch (per piece of the batch, then the pieces in order).
///
/// # Errors
/// As [`gather`].
pub(crate) fn correlate<T: Float>(shape: &ConvShape, big: &[T], small: &[T]) -> Result<Vec<T>> {
    if shape.is_empty() {
        return size::zeroed(
            "conv",
            "weight gradient",
            shape.c_small * shape.c_big / shape.groups * shape.taps(),
        );
    }
    match Shifts::new(shape) {
        Some(shifts) => shifts.correlate(shape, big, small),
        None => correlate_unrolled(shape, big, small),
    }
}

/// [`correlate`] through the full unroll.
fn correlate_unrolled<T: Float>(shape: &ConvShape, big: &[T], small: &[T]) -> Result<Vec<T>> {
    let (map, b) = (IndexMap::new(shape), Blocks::new(shape));
    let len = shape.c_small * b.unrolled_rows();
    // One weight-sized partial sum per piece of the batch, added in a fixed order. Each group's
    // block is accumulated column-major (`[c_big/g·taps, c_small/g]` in memory): the product's
    // long side then runs along the result's rows, which the GEMM measured ~1.5x faster at.
    let mut images = vec![(); shape.batch];
    let parts = split_batch(&mut images, 1, shape.flops(), |images, _| {
        let mut w_t = size::zeroed("conv", "weight gradient", len)?;
        for_chunks(shape, &b, images, |(first, m, g), cols, rows| {
            let cols_m = b.unrolled(&map, big, (first, m, g), cols);
            let small_m = b.small_rows(small, (first, m, g), rows);
            let w_g = ArrayViewMut2::from_shape((b.small_g, b.unrolled_rows()).f(), &mut w_t[b.weight(g)])
                .expect("sizes come from ConvShape");
            gemm(small_m, cols_m.t(), true, w_g);
        })?;
        Ok(w_t)
    });
    weight_from_parts(shape, &b, all_ok(parts)?)
}

/// Sums the per-piece weight gradients in a fixed order and lays each group's block out
/// row-major, `[c_small/g, c_big/g·taps]`.
fn weight_from_parts<T: Float>(shape: &ConvShape, b: &Blocks, parts: Vec<Vec<T>>) -> Result<Vec<T>> {
    let len = shape.c_small * b.unrolled_rows();
    let w_t = sum_parts(parts, len)?;
    let mut w = size::zeroed("conv", "weight gradient", len)?;
    for g in 0..shape.groups {
        let from = ArrayView2::from_shape((b.small_g, b.unrolled_rows()).f(), &w_t[b.weight(g)])
            .expect("sizes come from ConvShape");
        matrix_mut(&mut w[b.weight(g)], b.small_g, b.unrolled_rows()).assign(&from);
    }
    Ok(w)
}

/// The per-piece weight gradients (`len` values each) summed in a fixed order, so the bits do
/// not depend on which thread finished first.
fn sum_parts<T: Float>(parts: Vec<Vec<T>>, len: usize) -> Result<Vec<T>> {
    let mut parts = parts.into_iter();
    let mut sum = match parts.next() {
        Some(first) => first,
        None => size::zeroed("conv", "weight gradient", len)?,
    };
    for part in parts {
        sum.iter_mut().zip(part).for_each(|(a, b)| *a += b);
    }
    Ok(sum)
}

/// [`gather`]`(big, w)` and [`correlate`]`(big, small)` from one unroll of `big`: the
/// transposed conv's backward needs both, on the same `big` (its upstream gradient). Same
/// pieces, chunks and order of sums as the two kernels run apart, so the same bits.
///
/// # Errors
/// As [`gather`].
pub(crate) fn gather_and_correlate<T: Float>(
    shape: &ConvShape,
    big: &[T],
    w: &[T],
    small: &[T],
) -> Result<(Vec<T>, Vec<T>)> {
    if shape.is_empty() {
        return Ok((gather(shape, big, w)?, correlate(shape, big, small)?));
    }
    if let Some(shifts) = Shifts::new(shape) {
        return shifts.gather_and_correlate(shape, big, w, small);
    }
    let (map, b) = (IndexMap::new(shape), Blocks::new(shape));
    let per_image = shape.c_small * b.small_len;
    let len = shape.c_small * b.unrolled_rows();
    let (gathered, parts) = split_output("conv", shape, per_image, |images, out| {
        let start = images.start;
        let mut w_t = size::zeroed("conv", "weight gradient", len)?;
        for_chunks(shape, &b, images, |(first, m, g), cols, rows| {
            let cols_m = b.unrolled(&map, big, (first, m, g), cols);
            let w_g = matrix(&w[b.weight(g)], b.small_g, b.unrolled_rows());
            b.product_to_small((w_g, cols_m), (m, g), rows, &mut out[(first - start) * per_image..]);
            // `rows` is free again: now the small side, for the correlation.
            let small_m = b.small_rows(small, (first, m, g), rows);
            let grad_g = ArrayViewMut2::from_shape((b.small_g, b.unrolled_rows()).f(), &mut w_t[b.weight(g)])
                .expect("sizes come from ConvShape");
            gemm(small_m, cols_m.t(), true, grad_g);
        })?;
        Ok(w_t)
    })?;
    let grad_w = weight_from_parts(shape, &b, all_ok(parts)?)?;
    Ok((gathered, grad_w))
}

#[cfg(test)]
mod tests {
    use super::{ConvShape, IndexMap};
    use crate::ops::conv::geometry::AxisGeometry;

    /// Distinct values whose sums round, so a changed order of additions would show.
    pub(super) fn values(n: usize, salt: usize) -> Vec<f64> {
        (0..n)
            .map(|i| (((i * 7919 + salt * 104_729) % 1000) as f64 - 500.0) * 0.0137)
            .collect()
    }

    /// The shared unroll changes nothing: bit for bit what the two kernels give apart, with
    /// groups, odd batches, and shapes large enough to split the batch over two threads.
    #[test]
    fn gather_and_correlate_equal_the_two_kernels() {
        use super::{correlate, gather, gather_and_correlate};
        // (batch, c_big, c_small, groups, big spatial, kernel, stride, padding)
        for &(batch, c_big, c_small, groups, side, k, s, p) in &[
            (1, 2, 3, 1, 5, 3, 1, 1),
            (3, 4, 6, 2, 9, 3, 2, 1),
            (5, 3, 2, 1, 20, 4, 2, 1),
            (8, 16, 16, 1, 24, 3, 1, 1),
            (7, 6, 9, 3, 17, 2, 3, 0),
        ] {
            let axes = vec![AxisGeometry::new(k, s, p, 1); 2];
            let o = axes[0].conv_output_size(side).expect("valid case");
            let shape = ConvShape {
                batch,
                c_big,
                c_small,
                groups,
                big: vec![side, side],
                small: vec![o, o],
                axes,
            };
            let big = values(batch * c_big * side * side, 1);
            let small = values(batch * c_small * o * o, 2);
            let w = values(c_small * (c_big / groups) * k * k, 3);
            let (gathered, correlated) = gather_and_correlate(&shape, &big, &w, &small).unwrap();
            assert_eq!(
                gathered,
                gather(&shape, &big, &w).unwrap(),
                "gather, batch {batch} side {side}"
            );
            assert_eq!(
                correlated,
                correlate(&shape, &big, &small).unwrap(),
                "correlate, batch {batch} side {side}"
            );
        }
    }

    /// The cell-table path (narrow rows) and the segment path (wide rows) must unroll and fold
    /// identically, bit for bit, on every geometry: the suite's small shapes mostly take the
    /// first, the large benchmarks the second.
    #[test]
    fn cell_table_and_segments_agree() {
        // (big spatial sizes, per-axis (kernel, stride, padding, dilation), channels)
        type Case<'a> = (&'a [usize], &'a [(usize, usize, usize, usize)], usize);
        let cases: &[Case] = &[
            (&[9], &[(3, 1, 0, 1)], 2),
            (&[11], &[(3, 2, 1, 1)], 1),
            (&[40], &[(5, 2, 2, 1)], 2),
            (&[40], &[(3, 1, 4, 3)], 1),
            (&[7, 7], &[(3, 2, 1, 1), (3, 2, 1, 1)], 3),
            (&[7, 7], &[(7, 1, 0, 1), (7, 1, 0, 1)], 2),
            (&[6, 35], &[(2, 1, 0, 2), (4, 3, 2, 1)], 2),
            (&[20, 20], &[(3, 1, 1, 1), (3, 1, 1, 1)], 1),
            (&[4, 5, 18], &[(2, 1, 1, 1), (3, 2, 0, 1), (3, 1, 2, 2)], 2),
            // Stride-2 last axes, whose neighbouring taps are unrolled and folded in pairs.
            (&[6, 12], &[(4, 2, 1, 1), (4, 2, 1, 1)], 2),
            (&[5, 13], &[(3, 2, 1, 1), (5, 2, 3, 1)], 1),
            (&[30], &[(6, 2, 4, 1)], 2),
            (&[31], &[(2, 2, 0, 2)], 1),
        ];
        for &(big, geometry, channels) in cases {
            let axes: Vec<AxisGeometry> = geometry
                .iter()
                .map(|&(k, s, p, d)| AxisGeometry::new(k, s, p, d))
                .collect();
            let small: Vec<usize> = axes
                .iter()
                .zip(big)
                .map(|(a, &i)| a.conv_output_size(i).expect("valid case"))
                .collect();
            let shape = ConvShape {
                batch: 3,
                c_big: channels,
                c_small: 1,
                groups: 1,
                big: big.to_vec(),
                small,
                axes,
            };
            let (cells, segments) = (IndexMap::new(&shape), IndexMap::without_cells(&shape));
            let (big_len, l, taps) = (shape.big_len(), shape.small_len(), shape.taps());
            let images: Vec<Vec<f64>> = (0..shape.batch).map(|j| values(channels * big_len, j)).collect();
            let views: Vec<&[f64]> = images.iter().map(Vec::as_slice).collect();
            let n_cols = channels * taps * shape.batch * l;
            let (mut a, mut b) = (vec![f64::NAN; n_cols], vec![f64::NAN; n_cols]);
            cells.unroll(&views, &mut a);
            segments.unroll(&views, &mut b);
            assert_eq!(a, b, "unroll differs on {big:?} {geometry:?}");
            assert!(
                a.iter().all(|v| v.is_finite()),
                "unroll left a cell unwritten on {big:?}"
            );

            let cols = values(n_cols, 99);
            let mut a: Vec<Vec<f64>> = images.clone();
            let mut b: Vec<Vec<f64>> = images.clone();
            cells.fold(&cols, &mut a.iter_mut().map(Vec::as_mut_slice).collect::<Vec<_>>());
            segments.fold(&cols, &mut b.iter_mut().map(Vec::as_mut_slice).collect::<Vec<_>>());
            assert_eq!(a, b, "fold differs on {big:?} {geometry:?}");
            assert_ne!(a, images, "fold added nothing on {big:?}");
        }
        assert!(
            IndexMap::new(&ConvShape {
                batch: 1,
                c_big: 1,
                c_small: 1,
                groups: 1,
                big: vec![7],
                small: vec![5],
                axes: vec![AxisGeometry::new(3, 1, 0, 1)],
            })
            .cells
            .is_some()
        );
    }
}
