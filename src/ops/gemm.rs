//! The one matrix product every kernel calls, a safe face on the `gemm` crates.
//!
//! For `f32` the `gemm-f32` crate picks its micro-kernel at run time (AVX-512 where the CPU has
//! it, AVX2/FMA or SSE otherwise). The product runs on the calling thread: the conv kernels
//! parallelise over images themselves. A batch of one image has nothing to split, so its kernel
//! runs inside [`across_threads`], where each product is split over rayon's threads by blocks
//! of output columns; every output value is still summed over `k` in the same order, so the
//! bits do not depend on the number of threads (`tests/threads.rs`).

use std::any::TypeId;
use std::cell::Cell;

use gemm_common::Parallelism;
use ndarray::{ArrayView2, ArrayViewMut2, Axis};

use crate::float::Float;

thread_local! {
    /// Whether this thread's products may use all of rayon's threads (see [`across_threads`]).
    static ACROSS_THREADS: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with every f32 product it makes split over rayon's threads: for work on one image,
/// which the kernels cannot split by image.
pub(crate) fn across_threads<R>(f: impl FnOnce() -> R) -> R {
    let before = ACROSS_THREADS.with(|flag| flag.replace(true));
    let result = f();
    ACROSS_THREADS.with(|flag| flag.set(before));
    result
}

/// `c = a · b`, or `c += a · b` if `accumulate`. Any strides (transposed views are free).
///
/// The caller guarantees `a: [m, k]`, `b: [k, n]`, `c: [m, n]`; sizes come from shapes already
/// checked, so a mismatch is a bug in adjoint, not a user error.
pub(crate) fn gemm<T: Float>(
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    accumulate: bool,
    mut c: ArrayViewMut2<'_, T>,
) {
    let ((m, k), (k2, n)) = (a.dim(), b.dim());
    assert!(
        k == k2 && c.dim() == (m, n),
        "gemm sizes: [{m}, {k}]·[{k2}, {n}] into {:?}",
        c.dim()
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(T::zero());
        }
        return;
    }
    if TypeId::of::<T>() != TypeId::of::<f32>() {
        // f64 serves the gradient checks, on small shapes: ndarray's own product is fast enough
        // there, and a second AVX-512 GEMM would add a quarter to a cold build's GEMM time.
        let beta = if accumulate { T::one() } else { T::zero() };
        ndarray::linalg::general_mat_mul(T::one(), &a, &b, beta, &mut c);
        return;
    }
    // The micro-kernels write a column-major destination fastest, and take non-negative strides
    // (what the `gemm` crate's generic front arranges too): a row-major `c` is computed as
    // `cᵀ = bᵀ · aᵀ`, and reversed axes are walked forwards.
    let (mut a, mut b, mut c) = if c.strides()[1].abs() < c.strides()[0].abs() {
        (b.reversed_axes(), a.reversed_axes(), c.reversed_axes())
    } else {
        (a, b, c)
    };
    if c.strides()[0] < 0 {
        c.invert_axis(Axis(0));
        a.invert_axis(Axis(0));
    }
    if c.strides()[1] < 0 {
        c.invert_axis(Axis(1));
        b.invert_axis(Axis(1));
    }
    if a.strides()[1] < 0 {
        a.invert_axis(Axis(1));
        b.invert_axis(Axis(0));
    }
    let (m, n, k) = (a.nrows(), b.ncols(), a.ncols());
    let (sa, sb) = (a.strides(), b.strides());
    let (sc0, sc1) = (c.strides()[0], c.strides()[1]);
    // SAFETY: T is f32 (checked above), so the casts are to its own type. Each pointer is the
    // first element of a live view, and the kernel reads or writes only the `[rows, cols]` cells
    // those strides reach within it; `c` is a unique borrow, so it cannot overlap `a` or `b`.
    unsafe {
        gemm_f32::gemm::f32::get_gemm_fn()(
            m,
            n,
            k,
            c.as_mut_ptr().cast(),
            sc1,
            sc0,
            accumulate,
            a.as_ptr().cast(),
            sa[1],
            sa[0],
            b.as_ptr().cast(),
            sb[1],
            sb[0],
            1.0,
            1.0,
            false,
            false,
            false,
            if ACROSS_THREADS.with(Cell::get) {
                Parallelism::Rayon(0)
            } else {
                Parallelism::None
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array2, ShapeBuilder};

    use super::gemm;
    use crate::Float;
    use crate::float::relative_error;

    /// Worst difference from the reference, relative to the largest reference entry.
    fn assert_close<T: Float>(got: &Array2<T>, expected: &Array2<f64>, tolerance: f64) {
        assert_eq!(got.dim(), expected.dim());
        let worst = relative_error(got, expected);
        assert!(worst <= tolerance, "{}: off by {worst} (relative)", T::NAME);
    }

    /// The triple loop in f64, the independent reference.
    fn naive<T: Float>(a: &Array2<T>, b: &Array2<T>) -> Array2<f64> {
        let (m, k) = a.dim();
        let n = b.ncols();
        Array2::from_shape_fn((m, n), |(i, j)| {
            (0..k)
                .map(|t| Float::to_f64(a[[i, t]]) * Float::to_f64(b[[t, j]]))
                .sum()
        })
    }

    fn filled<T: Float>(rows: usize, cols: usize, seed: f64, column_major: bool) -> Array2<T> {
        let mut x = if column_major {
            Array2::zeros((rows, cols).f())
        } else {
            Array2::zeros((rows, cols))
        };
        for ((i, j), v) in x.indexed_iter_mut() {
            *v = T::of(((i * 7 + j * 13) as f64 * seed).sin());
        }
        x
    }

    fn every_layout<T: Float>(tolerance: f64) {
        // Sizes below, at and past the micro-kernels' tiles, and an empty inner dimension.
        for (m, k, n) in [(1, 1, 1), (3, 5, 2), (17, 9, 33), (64, 70, 5), (2, 0, 3), (50, 300, 70)] {
            for layout in 0..8 {
                let a = filled::<T>(m, k, 0.3, layout & 1 != 0);
                let b = filled::<T>(k, n, 0.7, layout & 2 != 0);
                let expected = naive(&a, &b);
                // `c` starts as NaN: overwriting must not read it.
                let mut c = if layout & 4 != 0 {
                    Array2::from_elem((m, n).f(), T::nan())
                } else {
                    Array2::from_elem((m, n), T::nan())
                };
                gemm(a.view(), b.view(), false, c.view_mut());
                assert_close(&c, &expected, tolerance);
                let before = filled::<T>(m, n, 1.1, layout & 4 != 0);
                let mut c = before.clone();
                gemm(a.view(), b.view(), true, c.view_mut());
                assert_close(&c, &(before.mapv(|v| Float::to_f64(v)) + &expected), tolerance);
            }
        }
    }

    #[test]
    fn every_layout_matches_the_triple_loop() {
        every_layout::<f32>(1e-5);
        every_layout::<f64>(1e-12);
    }

    fn transposed_and_reversed<T: Float>(tolerance: f64) {
        let a = filled::<T>(6, 4, 0.5, false);
        let b = filled::<T>(6, 5, 0.9, false);
        let expected = naive(&a.t().to_owned(), &b);
        let mut c = Array2::zeros((4, 5));
        gemm(a.t(), b.view(), false, c.view_mut());
        assert_close(&c, &expected, tolerance);
        let flipped = a.slice(ndarray::s![..;-1, ..]);
        let mut c = Array2::zeros((4, 5));
        gemm(flipped.t(), b.slice(ndarray::s![..;-1, ..]), false, c.view_mut());
        assert_close(&c, &expected, tolerance);
        // A destination walked backwards along both axes, row-major and column-major.
        for column_major in [false, true] {
            let mut c = filled::<T>(4, 5, 0.2, column_major);
            let before = c.clone();
            gemm(a.t(), b.view(), true, c.slice_mut(ndarray::s![..;-1, ..;-1]));
            let mut want = expected.clone();
            want.invert_axis(ndarray::Axis(0));
            want.invert_axis(ndarray::Axis(1));
            assert_close(&c, &(before.mapv(|v| Float::to_f64(v)) + want), tolerance);
        }
    }

    #[test]
    fn transposed_and_reversed_views() {
        transposed_and_reversed::<f32>(1e-5);
        transposed_and_reversed::<f64>(1e-12);
    }
}
