//! The three kernels again, for a stride-1 first axis: by shifts instead of a full unroll.
//!
//! At output row `o0`, tap `t0` of the first axis reads the big side's row `o0 + t0·d0 − p0`.
//! So the unrolled big side of tap `t0` is that of tap 0 moved by `t0·d0` rows of positions,
//! and only the other axes' taps need unrolling: the im2col of the same conv with the first
//! axis' kernel cut to one tap, over `small[0] + (k0 − 1)·d0` rows (the *partial* unroll,
//! `[c_big/g · taps/k0, positions]`). Each kernel then runs one product per first-axis tap, on
//! a view of the partial unroll `t0·d0` rows in:
//!
//! ```text
//! gather    small      = Σ_t0 w_t0 · shifted(U, t0)
//! scatter   shifted(U, t0) += w_t0ᵀ · small, then U folded   (col2im of the partial unroll)
//! correlate w_t0       = small · shifted(U, t0)ᵀ
//! ```
//!
//! For a 3×3 kernel that is a third of the unrolling and folding. The products are as many
//! multiply-adds as before, in `k0` products `k0` times less deep.

use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder, s};

use super::{Blocks, ConvShape, IndexMap, Scratch, matrix, matrix_mut, split_batch};
use crate::float::Float;
use crate::ops::conv::geometry::AxisGeometry;
use crate::ops::gemm::gemm;

/// Below this many rows per product (`c_big/g · taps/k0`) the `k0` shallow products cost more
/// than the unrolling they save.
const MIN_ROWS: usize = 16;

/// Each image is its own set of products here; below this many positions an image is too
/// small a product, and the full unroll puts several images side by side instead.
const MIN_POSITIONS: usize = 256;

/// A conv whose first axis has stride 1, as the kernels of this module see it.
pub(super) struct Shifts {
    /// The index map of the partial unroll.
    map: IndexMap,
    /// Taps of the first axis, `k0`.
    k0: usize,
    /// Positions between the views of neighbouring first-axis taps: `d0` rows.
    step: usize,
    /// Rows of the partial unroll per group: `c_big/g · taps/k0`.
    rows: usize,
    /// Positions of the partial unroll: `small[0] + (k0 − 1)·d0` rows.
    len: usize,
}

impl Shifts {
    /// The plan for `shape`, if its first axis has stride 1, more than one tap, and products
    /// large enough (see [`MIN_ROWS`], [`MIN_POSITIONS`]); `None` otherwise.
    pub(super) fn new(shape: &ConvShape) -> Option<Self> {
        let first = *shape.axes.first()?;
        let (k0, small_len) = (first.kernel, shape.small_len());
        if shape.axes.len() < 2 || first.stride != 1 || k0 < 2 || small_len < MIN_POSITIONS {
            return None;
        }
        let rows = shape.c_big / shape.groups * (shape.taps() / k0);
        if rows < MIN_ROWS {
            return None;
        }
        let mut partial = shape.clone();
        partial.axes[0] = AxisGeometry {
            kernel: 1,
            dilation: 1,
            ..first
        };
        partial.small[0] = shape.small[0] + (k0 - 1) * first.dilation;
        let row = small_len / shape.small[0];
        Some(Shifts {
            map: IndexMap::new(&partial),
            k0,
            step: first.dilation * row,
            rows,
            len: partial.small_len(),
        })
    }

    /// The weight regrouped by first-axis tap: `[g][t0][c_small/g, c_big/g · taps/k0]`, each
    /// block the matrix of one product.
    fn weight_by_tap<T: Float>(&self, b: &Blocks, w: &[T]) -> Vec<T> {
        let rest = self.rows / b.big_g;
        let mut by_tap = Vec::with_capacity(w.len());
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
        by_tap
    }

    /// Block `(g, t0)` of [`Shifts::weight_by_tap`].
    fn tap_weight<'a, T: Float>(&self, b: &Blocks, by_tap: &'a [T], (g, t0): (usize, usize)) -> ArrayView2<'a, T> {
        let len = b.small_g * self.rows;
        matrix(&by_tap[(g * self.k0 + t0) * len..][..len], b.small_g, self.rows)
    }

    /// The columns of first-axis tap `t0`: `L` positions, `t0·d0` rows in.
    fn shifted<'a, T: Float>(&self, u: ArrayView2<'a, T>, t0: usize, l: usize) -> ArrayView2<'a, T> {
        u.slice_move(s![.., t0 * self.step..t0 * self.step + l])
    }

    /// The partial unroll of one image's group into `cols`.
    fn unrolled<'a, T: Float>(&self, image: &[T], cols: &'a mut [T]) -> ArrayView2<'a, T> {
        let cols = &mut cols[..self.rows * self.len];
        self.map.unroll(&[image], cols);
        matrix(cols, self.rows, self.len)
    }

    /// Conv forward, as [`super::gather`].
    pub(super) fn gather<T: Float>(&self, shape: &ConvShape, big: &[T], w: &[T]) -> Vec<T> {
        let b = Blocks::new(shape);
        let by_tap = self.weight_by_tap(&b, w);
        let per_image = shape.c_small * b.small_len;
        let mut small = vec![T::zero(); shape.batch * per_image];
        split_batch(&mut small, per_image, shape.flops(), |images, out| {
            let mut scratch = Scratch::<T>::take(self.rows * self.len, 0);
            for (j, n) in images.enumerate() {
                for g in 0..shape.groups {
                    let u = self.unrolled(&big[b.big(n, g)], &mut scratch.cols);
                    self.product_to_small(&b, (&by_tap, u), g, &mut out[b.small(j, g)]);
                }
            }
            scratch.give_back();
        });
        small
    }

    /// `small_g = Σ_t0 w_t0 · shifted(u, t0)`, the first product writing, the others adding.
    fn product_to_small<T: Float>(
        &self,
        b: &Blocks,
        (by_tap, u): (&[T], ArrayView2<'_, T>),
        g: usize,
        small_g: &mut [T],
    ) {
        let mut y = matrix_mut(small_g, b.small_g, b.small_len);
        for t0 in 0..self.k0 {
            let w_t0 = self.tap_weight(b, by_tap, (g, t0));
            gemm(w_t0, self.shifted(u, t0, b.small_len), t0 > 0, y.view_mut());
        }
    }

    /// Transposed conv forward, as [`super::scatter`].
    pub(super) fn scatter<T: Float>(&self, shape: &ConvShape, small: &[T], w: &[T]) -> Vec<T> {
        let b = Blocks::new(shape);
        let by_tap = self.weight_by_tap(&b, w);
        let (per_image, per_group, l) = (shape.c_big * b.big_len, b.big_g * b.big_len, b.small_len);
        let mut big = vec![T::zero(); shape.batch * per_image];
        split_batch(&mut big, per_image, shape.flops(), |images, out| {
            // Fresh pages faulted in by writing, as in `super::scatter`.
            out.fill(T::zero());
            let mut scratch = Scratch::<T>::take(self.rows * self.len, 0);
            for (j, n) in images.enumerate() {
                for g in 0..shape.groups {
                    let small_g = matrix(&small[b.small(n, g)], b.small_g, l);
                    let cols = &mut scratch.cols[..self.rows * self.len];
                    let mut u = matrix_mut(cols, self.rows, self.len);
                    // Tap 0 writes the first `L` columns; the rest are only ever added to.
                    u.slice_mut(s![.., l..]).fill(T::zero());
                    for t0 in 0..self.k0 {
                        let w_t0 = self.tap_weight(&b, &by_tap, (g, t0));
                        let at = t0 * self.step;
                        gemm(w_t0.t(), small_g, t0 > 0, u.slice_mut(s![.., at..at + l]));
                    }
                    let image = &mut out[j * per_image + g * per_group..][..per_group];
                    self.map.fold(cols, &mut [image]);
                }
            }
            scratch.give_back();
        });
        big
    }

    /// One image's share of the weight gradient: block `(g, t0)` of `part` (column-major, as in
    /// [`super::correlate`]) `+= small_g · shifted(u, t0)ᵀ`.
    fn correlate_image<T: Float>(
        &self,
        b: &Blocks,
        (small_g, u): (ArrayView2<'_, T>, ArrayView2<'_, T>),
        g: usize,
        part: &mut [T],
    ) {
        let len = b.small_g * self.rows;
        for t0 in 0..self.k0 {
            let block = &mut part[(g * self.k0 + t0) * len..][..len];
            let grad = ArrayViewMut2::from_shape((b.small_g, self.rows).f(), block).expect("sizes come from ConvShape");
            gemm(small_g, self.shifted(u, t0, b.small_len).t(), true, grad);
        }
    }

    /// The weight gradient, as [`super::correlate`].
    pub(super) fn correlate<T: Float>(&self, shape: &ConvShape, big: &[T], small: &[T]) -> Vec<T> {
        let b = Blocks::new(shape);
        let len = shape.c_small * b.unrolled_rows();
        let mut images = vec![(); shape.batch];
        let parts = split_batch(&mut images, 1, shape.flops(), |images, _| {
            let mut part = vec![T::zero(); len];
            let mut scratch = Scratch::<T>::take(self.rows * self.len, 0);
            for n in images {
                for g in 0..shape.groups {
                    let u = self.unrolled(&big[b.big(n, g)], &mut scratch.cols);
                    let small_g = matrix(&small[b.small(n, g)], b.small_g, b.small_len);
                    self.correlate_image(&b, (small_g, u), g, &mut part);
                }
            }
            scratch.give_back();
            part
        });
        self.weight_from_parts(&b, len, parts)
    }

    /// As [`super::gather_and_correlate`]: one partial unroll per image for both.
    pub(super) fn gather_and_correlate<T: Float>(
        &self,
        shape: &ConvShape,
        big: &[T],
        w: &[T],
        small: &[T],
    ) -> (Vec<T>, Vec<T>) {
        let b = Blocks::new(shape);
        let by_tap = self.weight_by_tap(&b, w);
        let per_image = shape.c_small * b.small_len;
        let len = shape.c_small * b.unrolled_rows();
        let mut gathered = vec![T::zero(); shape.batch * per_image];
        let parts = split_batch(&mut gathered, per_image, shape.flops(), |images, out| {
            let mut part = vec![T::zero(); len];
            let mut scratch = Scratch::<T>::take(self.rows * self.len, 0);
            for (j, n) in images.enumerate() {
                for g in 0..shape.groups {
                    let u = self.unrolled(&big[b.big(n, g)], &mut scratch.cols);
                    self.product_to_small(&b, (&by_tap, u), g, &mut out[b.small(j, g)]);
                    let small_g = matrix(&small[b.small(n, g)], b.small_g, b.small_len);
                    self.correlate_image(&b, (small_g, u), g, &mut part);
                }
            }
            scratch.give_back();
            part
        });
        (gathered, self.weight_from_parts(&b, len, parts))
    }

    /// Sums the per-half gradients in a fixed order and puts each tap's block back in the
    /// weight's layout, `[c_small, c_big/g, k..]`.
    fn weight_from_parts<T: Float>(&self, b: &Blocks, len: usize, parts: Vec<Vec<T>>) -> Vec<T> {
        let mut parts = parts.into_iter();
        let mut sum = parts.next().unwrap_or_else(|| vec![T::zero(); len]);
        for part in parts {
            sum.iter_mut().zip(part).for_each(|(a, b)| *a += b);
        }
        let rest = self.rows / b.big_g;
        let mut w = vec![T::zero(); len];
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
        w
    }
}

#[cfg(test)]
mod tests {
    use super::Shifts;
    use crate::ops::conv::geometry::AxisGeometry;
    use crate::ops::conv::kernels::tests::values;
    use crate::ops::conv::kernels::{ConvShape, correlate_unrolled, gather_unrolled, scatter_unrolled};

    fn assert_close(got: &[f64], expected: &[f64], what: &str) {
        assert_eq!(got.len(), expected.len(), "{what}");
        let scale = expected.iter().fold(1.0, |m: f64, e| m.max(e.abs()));
        let worst = got.iter().zip(expected).map(|(g, e)| (g - e).abs()).fold(0.0, f64::max);
        assert!(worst <= 1e-12 * scale, "{what}: off by {worst}");
    }

    /// The shifted kernels compute what the full unroll computes (in another order of sums):
    /// dilated and even first-axis kernels, padding beyond the taps' reach, groups, a 3-D
    /// conv, a batch large enough for two threads, and a transposed conv's output padding
    /// (a small side shorter than the big side implies).
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
            assert_close(
                &shifts.gather(&shape, &big, &w),
                &gather_unrolled(&shape, &big, &w),
                &format!("gather, {what}"),
            );
            assert_close(
                &shifts.scatter(&shape, &small, &w),
                &scatter_unrolled(&shape, &small, &w),
                &format!("scatter, {what}"),
            );
            let correlated = correlate_unrolled(&shape, &big, &small);
            assert_close(
                &shifts.correlate(&shape, &big, &small),
                &correlated,
                &format!("correlate, {what}"),
            );
            let (gathered, both) = shifts.gather_and_correlate(&shape, &big, &w, &small);
            assert_eq!(gathered, shifts.gather(&shape, &big, &w), "gather of both, {what}");
            assert_eq!(
                both,
                shifts.correlate(&shape, &big, &small),
                "correlate of both, {what}"
            );
        }
    }

    /// Strided or single-tap first axes, 1-D convs and small products keep the full unroll.
    #[test]
    fn only_stride_one_first_axes_with_large_products_shift() {
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
            Shifts::new(&shape(8, &[(3, 2, 1), (3, 1, 1)])).is_none(),
            "strided first axis"
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
