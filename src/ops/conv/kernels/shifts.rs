//! The three kernels again, sliding along the first axis instead of unrolling it.
//!
//! At output row `o0`, tap `t0` of the first axis reads the big side's row `o0·s + t0·d − p`.
//! With stride 1 that is the row tap 0 reads, `t0·d` rows on: the unrolled big side of tap
//! `t0` is that of tap 0 moved by `t0·d` rows of positions, so only the other axes' taps need
//! unrolling — the im2col of the same conv with the first axis' kernel cut to one tap, over
//! `small[0] + (k0 − 1)·d` rows (the *partial* unroll `U`, `[c_big/g · taps/k0, positions]`).
//! Each kernel then runs one product per first-axis tap, on a view of `U` shifted to its rows:
//!
//! ```text
//! gather    small      = Σ_t0 w_t0 · shifted(U, t0)
//! scatter   shifted(U, t0) += w_t0ᵀ · small, then U folded   (col2im of the partial unroll)
//! correlate w_t0       = small · shifted(U, t0)ᵀ
//! ```
//!
//! With stride `s > 1` the taps fall into *phases*: writing `t0·d = q·s + φ`, tap `t0` reads
//! row `(o0 + q)·s + φ − p`, so the taps of one phase `φ` share a partial unroll over every
//! `s`-th row from `φ − p`, `q` rows apart. A 3×3 kernel of stride 1 is unrolled a third as
//! much, a 4×4 kernel of stride 2 (an upsampling transposed conv) half as much. The products
//! are as many multiply-adds as before, in `k0` products `k0` times less deep. Measured against
//! the full unroll: W5 (3×3, stride 1) fwd+bwd −8%, W6 (4×4, stride 2, transposed) −12%.

use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder, s};

use super::{Blocks, ConvShape, IndexMap, Scratch, all_ok, matrix, matrix_mut, split_batch, split_output, sum_parts};
use crate::error::Result;
use crate::float::Float;
use crate::ops::conv::geometry::AxisGeometry;
use crate::ops::gemm::gemm;
use crate::ops::size;

/// Below this many rows per product (`c_big/g · taps/k0`) the `k0` shallow products cost more
/// than the unrolling they save.
const MIN_ROWS: usize = 16;

/// Each image is its own set of products here; below this many positions an image is too
/// small a product, and the full unroll puts several images side by side instead.
const MIN_POSITIONS: usize = 256;

/// The first-axis taps with one `t0·d mod s`, and the partial unroll they share.
struct Phase {
    map: IndexMap,
    /// Positions of its partial unroll.
    len: usize,
    /// Its taps `t0`, each with the position its view starts at.
    taps: Vec<(usize, usize)>,
}

/// How one conv runs here: its phases, and the sizes of their partial unrolls.
pub(super) struct Shifts {
    phases: Vec<Phase>,
    /// Taps of the first axis, `k0`.
    k0: usize,
    /// Rows of each partial unroll per group: `c_big/g · taps/k0`.
    rows: usize,
    /// Positions of the longest partial unroll.
    len: usize,
}

impl Shifts {
    /// The plan for `shape`, if its first axis has fewer phases than taps (stride 1 and more
    /// than one tap, say) and its products are large enough (see [`MIN_ROWS`],
    /// [`MIN_POSITIONS`]); `None` otherwise.
    pub(super) fn new(shape: &ConvShape) -> Option<Self> {
        let first = *shape.axes.first()?;
        let (k0, s, d) = (first.kernel, first.stride, first.dilation);
        let phases = (0..k0).map(|t| t * d % s).collect::<std::collections::BTreeSet<_>>();
        let small_len = shape.small_len();
        if shape.axes.len() < 2 || phases.len() >= k0 || small_len < MIN_POSITIONS {
            return None;
        }
        let rows = shape.c_big / shape.groups * (shape.taps() / k0);
        if rows < MIN_ROWS {
            return None;
        }
        let row = small_len / shape.small[0];
        // Per phase: `c` rows (of padding) in front where `φ > p` would otherwise need a
        // negative padding, and the rows its taps reach past the output's, `max t0·d/s + c`.
        // Row `r` of the phase's partial unroll is big row `(r − c)·s + φ − p`.
        let plans: Vec<(usize, usize, usize)> = phases
            .into_iter()
            .map(|phi| {
                let c = phi.saturating_sub(first.pad_before).div_ceil(s);
                let reach = (0..k0)
                    .filter(|t| t * d % s == phi)
                    .map(|t| t * d / s)
                    .max()
                    .unwrap_or(0);
                (phi, c, reach + c)
            })
            .collect();
        // Each phase's unroll spans the output's rows plus that reach: with a large dilation the
        // reach dwarfs the output (rows of padding no window needs), and the full unroll, `k0`
        // rows per output row, copies less.
        let spans = plans.iter().map(|&(_, _, extra)| shape.small[0].saturating_add(extra));
        if spans.fold(0usize, usize::saturating_add) >= k0.saturating_mul(shape.small[0]) {
            return None;
        }
        let phases: Vec<Phase> = plans
            .into_iter()
            .map(|(phi, c, extra)| {
                let taps: Vec<(usize, usize)> = (0..k0)
                    .filter(|t| t * d % s == phi)
                    .map(|t| (t, (t * d / s + c) * row))
                    .collect();
                let mut partial = shape.clone();
                partial.axes[0] = AxisGeometry {
                    kernel: 1,
                    dilation: 1,
                    pad_before: first.pad_before + c * s - phi,
                    ..first
                };
                partial.small[0] = shape.small[0] + extra;
                Phase {
                    map: IndexMap::new(&partial),
                    len: partial.small_len(),
                    taps,
                }
            })
            .collect();
        let len = phases.iter().map(|p| p.len).max().unwrap_or(0);
        Some(Shifts { len, phases, k0, rows })
    }

    /// The weight regrouped by first-axis tap: `[g][t0][c_small/g, c_big/g · taps/k0]`, each
    /// block the matrix of one product.
    fn weight_by_tap<T: Float>(&self, b: &Blocks, w: &[T]) -> Result<Vec<T>> {
        let rest = self.rows / b.big_g;
        let mut by_tap = size::reserve("conv", "weight by tap", w.len())?;
        for g in 0..b.groups {
            for t0 in 0..self.k0 {
                for o in 0..b.small_g {
                    for c in 0..b.big_g {
                        let at = (((g * b.small_g + o) * b.big_g + c) * self.k0 + t0) * rest;
                        by_tap.extend_from_slice(&w[at..at + rest]);
                    }
                }
            }
        }
        Ok(by_tap)
    }

    /// Block `(g, t0)` of [`Shifts::weight_by_tap`].
    fn tap_weight<'a, T: Float>(&self, b: &Blocks, by_tap: &'a [T], (g, t0): (usize, usize)) -> ArrayView2<'a, T> {
        let len = b.small_g * self.rows;
        matrix(&by_tap[(g * self.k0 + t0) * len..][..len], b.small_g, self.rows)
    }

    /// The `L` columns of `u` from position `at` on: one tap's view of its phase's unroll.
    fn shifted<'a, T: Float>(u: ArrayView2<'a, T>, at: usize, l: usize) -> ArrayView2<'a, T> {
        u.slice_move(s![.., at..at + l])
    }

    /// The partial unroll of one image's group for `phase`, into `cols`.
    fn unrolled<'a, T: Float>(&self, phase: &Phase, image: &[T], cols: &'a mut [T]) -> ArrayView2<'a, T> {
        let cols = &mut cols[..self.rows * phase.len];
        phase.map.unroll(&[image], cols);
        matrix(cols, self.rows, phase.len)
    }

    /// Conv forward, as [`super::gather`].
    pub(super) fn gather<T: Float>(&self, shape: &ConvShape, big: &[T], w: &[T]) -> Result<Vec<T>> {
        let b = Blocks::new(shape);
        let by_tap = self.weight_by_tap(&b, w)?;
        let per_image = shape.c_small * b.small_len;
        let (small, pieces) = split_output("conv", shape, per_image, |images, out| {
            let mut scratch = Scratch::<T>::take(self.rows * self.len, 0)?;
            for (j, n) in images.enumerate() {
                for g in 0..shape.groups {
                    let mut y = matrix_mut(&mut out[b.small(j, g)], b.small_g, b.small_len);
                    for (p, phase) in self.phases.iter().enumerate() {
                        let u = self.unrolled(phase, &big[b.big(n, g)], &mut scratch.cols);
                        self.product_to_small(&b, (&by_tap, phase, u), (g, p > 0), y.view_mut());
                    }
                }
            }
            scratch.give_back();
            Ok(())
        })?;
        all_ok(pieces)?;
        Ok(small)
    }

    /// `y (+)= Σ_t0 w_t0 · shifted(u, t0)` over the taps of `phase`: the first product of
    /// the first phase writes, every other adds.
    fn product_to_small<T: Float>(
        &self,
        b: &Blocks,
        (by_tap, phase, u): (&[T], &Phase, ArrayView2<'_, T>),
        (g, accumulate): (usize, bool),
        mut y: ArrayViewMut2<'_, T>,
    ) {
        for (i, &(t0, at)) in phase.taps.iter().enumerate() {
            let w_t0 = self.tap_weight(b, by_tap, (g, t0));
            gemm(
                w_t0,
                Self::shifted(u, at, b.small_len),
                accumulate || i > 0,
                y.view_mut(),
            );
        }
    }

    /// Transposed conv forward, as [`super::scatter`].
    pub(super) fn scatter<T: Float>(&self, shape: &ConvShape, small: &[T], w: &[T]) -> Result<Vec<T>> {
        let b = Blocks::new(shape);
        let by_tap = self.weight_by_tap(&b, w)?;
        let (per_image, per_group, l) = (shape.c_big * b.big_len, b.big_g * b.big_len, b.small_len);
        // Fresh pages faulted in by writing, as in `super::scatter`.
        let (big, pieces) = split_output("conv_transpose", shape, per_image, |images, out| {
            let mut scratch = Scratch::<T>::take(self.rows * self.len, 0)?;
            for (j, n) in images.enumerate() {
                for g in 0..shape.groups {
                    let small_g = matrix(&small[b.small(n, g)], b.small_g, l);
                    for phase in &self.phases {
                        let cols = &mut scratch.cols[..self.rows * phase.len];
                        let mut u = matrix_mut(cols, self.rows, phase.len);
                        // The phase's first tap writes its `L` columns and the others add,
                        // so the columns after them start at zero. (Any before them are rows
                        // above the big side, which the fold never reads.)
                        u.slice_mut(s![.., phase.taps[0].1 + l..]).fill(T::zero());
                        for (i, &(t0, at)) in phase.taps.iter().enumerate() {
                            let w_t0 = self.tap_weight(&b, &by_tap, (g, t0));
                            gemm(w_t0.t(), small_g, i > 0, u.slice_mut(s![.., at..at + l]));
                        }
                        let image = &mut out[j * per_image + g * per_group..][..per_group];
                        phase.map.fold(cols, &mut [image]);
                    }
                }
            }
            scratch.give_back();
            Ok(())
        })?;
        all_ok(pieces)?;
        Ok(big)
    }

    /// One image's share of the weight gradient over the taps of `phase`: block `(g, t0)` of
    /// `part` (column-major, as in [`super::correlate`]) `+= small_g · shifted(u, t0)ᵀ`.
    fn correlate_image<T: Float>(
        &self,
        b: &Blocks,
        (small_g, phase, u): (ArrayView2<'_, T>, &Phase, ArrayView2<'_, T>),
        g: usize,
        part: &mut [T],
    ) {
        let len = b.small_g * self.rows;
        for &(t0, at) in &phase.taps {
            let block = &mut part[(g * self.k0 + t0) * len..][..len];
            let grad = ArrayViewMut2::from_shape((b.small_g, self.rows).f(), block).expect("sizes come from ConvShape");
            gemm(small_g, Self::shifted(u, at, b.small_len).t(), true, grad);
        }
    }

    /// The weight gradient, as [`super::correlate`].
    pub(super) fn correlate<T: Float>(&self, shape: &ConvShape, big: &[T], small: &[T]) -> Result<Vec<T>> {
        let b = Blocks::new(shape);
        let len = shape.c_small * b.unrolled_rows();
        let mut images = vec![(); shape.batch];
        let parts = split_batch(&mut images, 1, shape.flops(), |images, _| {
            let mut part = size::zeroed("conv", "weight gradient", len)?;
            let mut scratch = Scratch::<T>::take(self.rows * self.len, 0)?;
            for n in images {
                for g in 0..shape.groups {
                    let small_g = matrix(&small[b.small(n, g)], b.small_g, b.small_len);
                    for phase in &self.phases {
                        let u = self.unrolled(phase, &big[b.big(n, g)], &mut scratch.cols);
                        self.correlate_image(&b, (small_g, phase, u), g, &mut part);
                    }
                }
            }
            scratch.give_back();
            Ok(part)
        });
        self.weight_from_parts(&b, len, all_ok(parts)?)
    }

    /// As [`super::gather_and_correlate`]: one partial unroll per image and phase for both.
    pub(super) fn gather_and_correlate<T: Float>(
        &self,
        shape: &ConvShape,
        big: &[T],
        w: &[T],
        small: &[T],
    ) -> Result<(Vec<T>, Vec<T>)> {
        let b = Blocks::new(shape);
        let by_tap = self.weight_by_tap(&b, w)?;
        let per_image = shape.c_small * b.small_len;
        let len = shape.c_small * b.unrolled_rows();
        let (gathered, parts) = split_output("conv", shape, per_image, |images, out| {
            let mut part = size::zeroed("conv", "weight gradient", len)?;
            let mut scratch = Scratch::<T>::take(self.rows * self.len, 0)?;
            for (j, n) in images.enumerate() {
                for g in 0..shape.groups {
                    let mut y = matrix_mut(&mut out[b.small(j, g)], b.small_g, b.small_len);
                    let small_g = matrix(&small[b.small(n, g)], b.small_g, b.small_len);
                    for (p, phase) in self.phases.iter().enumerate() {
                        let u = self.unrolled(phase, &big[b.big(n, g)], &mut scratch.cols);
                        self.product_to_small(&b, (&by_tap, phase, u), (g, p > 0), y.view_mut());
                        self.correlate_image(&b, (small_g, phase, u), g, &mut part);
                    }
                }
            }
            scratch.give_back();
            Ok(part)
        })?;
        let grad_w = self.weight_from_parts(&b, len, all_ok(parts)?)?;
        Ok((gathered, grad_w))
    }

    /// Sums the per-piece gradients in a fixed order and puts each tap's block back in the
    /// weight's layout, `[c_small, c_big/g, k..]`.
    fn weight_from_parts<T: Float>(&self, b: &Blocks, len: usize, parts: Vec<Vec<T>>) -> Result<Vec<T>> {
        let sum = sum_parts(parts, len)?;
        let rest = self.rows / b.big_g;
        let mut w = size::zeroed("conv", "weight gradient", len)?;
        for g in 0..b.groups {
            for t0 in 0..self.k0 {
                for c in 0..b.big_g {
                    for t in 0..rest {
                        let from = ((g * self.k0 + t0) * self.rows + c * rest + t) * b.small_g;
                        for o in 0..b.small_g {
                            w[(((g * b.small_g + o) * b.big_g + c) * self.k0 + t0) * rest + t] = sum[from + o];
                        }
                    }
                }
            }
        }
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::Shifts;
    use crate::float::{Float, relative_error};
    use crate::ops::conv::geometry::AxisGeometry;
    use crate::ops::conv::kernels::tests::values;
    use crate::ops::conv::kernels::{ConvShape, correlate_unrolled, gather_unrolled, scatter_unrolled};

    /// Worst difference from the reference, relative to its largest entry, at most `tolerance`.
    fn assert_close<T: Float>(got: &[T], expected: &[f64], tolerance: f64, what: &str) {
        assert_eq!(got.len(), expected.len(), "{what}");
        let worst = relative_error(got, expected);
        assert!(worst <= tolerance, "{what}: off by {worst} (relative)");
    }

    /// The three shifted kernels on `T` values against the full unroll on the same values in
    /// `f64`.
    fn check<T: Float>(
        shifts: &Shifts,
        shape: &ConvShape,
        (big, small, w): (&[T], &[T], &[T]),
        tolerance: f64,
        what: &str,
    ) {
        let wide = |v: &[T]| v.iter().map(|&x| Float::to_f64(x)).collect::<Vec<f64>>();
        let (big_64, small_64, w_64) = (wide(big), wide(small), wide(w));
        let name = T::NAME;
        assert_close(
            &shifts.gather(shape, big, w).unwrap(),
            &gather_unrolled(shape, &big_64, &w_64).unwrap(),
            tolerance,
            &format!("{name} gather, {what}"),
        );
        assert_close(
            &shifts.scatter(shape, small, w).unwrap(),
            &scatter_unrolled(shape, &small_64, &w_64).unwrap(),
            tolerance,
            &format!("{name} scatter, {what}"),
        );
        assert_close(
            &shifts.correlate(shape, big, small).unwrap(),
            &correlate_unrolled(shape, &big_64, &small_64).unwrap(),
            tolerance,
            &format!("{name} correlate, {what}"),
        );
    }

    /// The shifted kernels compute what the full unroll computes (in another order of sums):
    /// dilated and even first-axis kernels, padding beyond the taps' reach, groups, a 3-D
    /// conv, a batch large enough for two threads, a transposed conv's output padding (a
    /// small side shorter than the big side implies), and strides 2 and 3 — with phases
    /// whose first row would need a negative padding, and a dilation that puts every tap in
    /// one phase. In `f64` (ndarray's product) and in `f32` (gemm-f32's micro-kernels, which
    /// here read shifted, strided views).
    #[test]
    fn shifts_equal_the_full_unroll() {
        // (batch, c_big, c_small, groups, per-axis (big size, kernel, stride, padding, dilation), output padding of axis 0)
        type Case<'a> = (
            usize,
            usize,
            usize,
            usize,
            &'a [(usize, usize, usize, usize, usize)],
            usize,
        );
        let cases: &[Case] = &[
            (2, 6, 3, 1, &[(16, 3, 1, 1, 1), (16, 3, 1, 1, 1)], 0),
            (1, 8, 2, 1, &[(20, 3, 1, 2, 2), (30, 2, 2, 0, 1)], 1),
            (3, 8, 4, 2, &[(17, 4, 1, 1, 1), (16, 5, 1, 2, 1)], 0),
            (1, 8, 2, 1, &[(14, 3, 1, 3, 1), (16, 2, 1, 0, 1)], 0),
            (2, 2, 3, 1, &[(5, 2, 1, 1, 1), (8, 3, 1, 1, 1), (8, 3, 1, 1, 1)], 0),
            (8, 16, 16, 1, &[(24, 3, 1, 1, 1), (24, 3, 1, 1, 1)], 0),
            (2, 4, 3, 1, &[(32, 4, 2, 1, 1), (32, 4, 2, 1, 1)], 0),
            (1, 8, 2, 1, &[(33, 3, 2, 0, 1), (34, 2, 1, 0, 1)], 0),
            (1, 8, 2, 1, &[(34, 4, 2, 0, 1), (34, 2, 1, 0, 1)], 1),
            (2, 16, 2, 2, &[(48, 5, 3, 2, 1), (18, 2, 1, 0, 1)], 0),
            (1, 8, 2, 1, &[(40, 3, 2, 2, 2), (16, 2, 1, 0, 1)], 1),
        ];
        for &(batch, c_big, c_small, groups, axes, output_padding) in cases {
            let geometry: Vec<AxisGeometry> = axes
                .iter()
                .map(|&(_, k, s, p, d)| AxisGeometry::new(k, s, p, d))
                .collect();
            let big: Vec<usize> = axes.iter().map(|a| a.0).collect();
            let mut small: Vec<usize> = geometry
                .iter()
                .zip(&big)
                .map(|(a, &i)| a.conv_output_size(i).expect("valid case"))
                .collect();
            small[0] -= output_padding;
            let shape = ConvShape {
                batch,
                c_big,
                c_small,
                groups,
                big,
                small,
                axes: geometry,
            };
            let what = format!("{axes:?} batch {batch} groups {groups}");
            let shifts = Shifts::new(&shape).unwrap_or_else(|| panic!("{what}: not a shifted case"));
            let big = values(batch * c_big * shape.big_len(), 1);
            let small = values(batch * c_small * shape.small_len(), 2);
            let w = values(c_small * (c_big / groups) * shape.taps(), 3);
            check(&shifts, &shape, (&big, &small, &w), 1e-12, &what);
            let (gathered, both) = shifts.gather_and_correlate(&shape, &big, &w, &small).unwrap();
            assert_eq!(
                gathered,
                shifts.gather(&shape, &big, &w).unwrap(),
                "gather of both, {what}"
            );
            assert_eq!(
                both,
                shifts.correlate(&shape, &big, &small).unwrap(),
                "correlate of both, {what}"
            );
            let narrow = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
            check(
                &shifts,
                &shape,
                (&narrow(&big), &narrow(&small), &narrow(&w)),
                1e-5,
                &what,
            );
        }
    }

    /// TensorFlow's `SAME` pads unevenly (the larger half after): the partial unroll keeps the
    /// first axis' padding before, and its length comes from the small side, not the padding
    /// after.
    #[test]
    fn shifts_with_uneven_padding_equal_the_full_unroll() {
        let uneven = |k, s, before, after| AxisGeometry {
            kernel: k,
            stride: s,
            dilation: 1,
            pad_before: before,
            pad_after: after,
        };
        for axes in [
            vec![uneven(4, 1, 1, 2), uneven(2, 1, 0, 1)],
            vec![uneven(4, 2, 1, 2), uneven(3, 1, 1, 1)],
            vec![uneven(3, 2, 0, 1), uneven(3, 1, 1, 1)],
        ] {
            let big = vec![32, 24];
            let small: Vec<usize> = axes
                .iter()
                .zip(&big)
                .map(|(a, &i)| a.conv_output_size(i).expect("valid case"))
                .collect();
            let shape = ConvShape {
                batch: 2,
                c_big: 8,
                c_small: 3,
                groups: 1,
                big,
                small,
                axes,
            };
            let what = format!("{:?}", shape.axes);
            let shifts = Shifts::new(&shape).unwrap_or_else(|| panic!("{what}: not a shifted case"));
            let big = values(2 * 8 * shape.big_len(), 4);
            let small = values(2 * 3 * shape.small_len(), 5);
            let w = values(3 * 8 * shape.taps(), 6);
            check(&shifts, &shape, (&big, &small, &w), 1e-12, &what);
        }
    }

    /// First axes whose taps are each their own phase (one tap, or a stride as large as the
    /// kernel), 1-D convs and small products keep the full unroll.
    #[test]
    fn only_first_axes_with_shared_phases_and_large_products_shift() {
        let shape = |c_big, axes: &[(usize, usize, usize)]| {
            let axes: Vec<AxisGeometry> = axes.iter().map(|&(k, s, p)| AxisGeometry::new(k, s, p, 1)).collect();
            let big = vec![32; axes.len()];
            let small = axes.iter().map(|a| a.conv_output_size(32).expect("valid")).collect();
            ConvShape {
                batch: 1,
                c_big,
                c_small: 1,
                groups: 1,
                big,
                small,
                axes,
            }
        };
        assert!(Shifts::new(&shape(8, &[(3, 1, 1), (3, 1, 1)])).is_some());
        assert!(Shifts::new(&shape(8, &[(3, 1, 1), (3, 2, 1)])).is_some());
        assert!(
            Shifts::new(&shape(8, &[(3, 2, 1), (3, 1, 1)])).is_some(),
            "stride 2, two phases"
        );
        assert!(
            Shifts::new(&shape(8, &[(2, 2, 0), (3, 1, 1)])).is_none(),
            "stride = kernel"
        );
        assert!(Shifts::new(&shape(8, &[(1, 1, 0), (3, 1, 1)])).is_none(), "one tap");
        assert!(Shifts::new(&shape(64, &[(3, 1, 1)])).is_none(), "1-D");
        assert!(Shifts::new(&shape(4, &[(3, 1, 1), (3, 1, 1)])).is_none(), "12 rows");
        assert!(
            Shifts::new(&shape(8, &[(3, 1, 1), (3, 5, 1)])).is_none(),
            "224 positions"
        );
    }
}
