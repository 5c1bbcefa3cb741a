//! The one matrix product every kernel calls, a safe face on the `gemm` crates.
//!
//! The `gemm-f32` and `gemm-f64` kernels pick their micro-kernel at run time (AVX-512 where the
//! CPU has it, AVX2/FMA or SSE otherwise), and run on the calling thread only: the conv kernels
//! parallelise over images themselves, so results never depend on how the product was split
//! between threads.

use std::any::TypeId;

use gemm_common::Parallelism;
use ndarray::{ArrayView2, ArrayViewMut2};

use crate::float::Float;

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
    let (sa, sb, sc) = (a.strides(), b.strides(), c.strides());
    let (sc0, sc1) = (sc[0], sc[1]);
    // `gemm`'s generic front would also compile its complex and half-precision kernels (about
    // half of a cold build's GEMM time); only these two are ever called.
    let (c_ptr, a_ptr, b_ptr) = (c.as_mut_ptr(), a.as_ptr(), b.as_ptr());
    // SAFETY: each pointer is the first element of a live view, and the kernel reads or writes
    // only the `[rows, cols]` cells those strides reach within it; `c` is a unique borrow, so it
    // cannot overlap `a` or `b`. The casts are between `T` and the type it was just found to be.
    unsafe {
        if TypeId::of::<T>() == TypeId::of::<f32>() {
            gemm_f32::gemm::f32::get_gemm_fn()(
                m,
                n,
                k,
                c_ptr.cast(),
                sc1,
                sc0,
                accumulate,
                a_ptr.cast(),
                sa[1],
                sa[0],
                b_ptr.cast(),
                sb[1],
                sb[0],
                1.0,
                1.0,
                false,
                false,
                false,
                Parallelism::None,
            );
        } else if TypeId::of::<T>() == TypeId::of::<f64>() {
            gemm_f64::gemm::f64::get_gemm_fn()(
                m,
                n,
                k,
                c_ptr.cast(),
                sc1,
                sc0,
                accumulate,
                a_ptr.cast(),
                sa[1],
                sa[0],
                b_ptr.cast(),
                sb[1],
                sb[0],
                1.0,
                1.0,
                false,
                false,
                false,
                Parallelism::None,
            );
        } else {
            unreachable!("Float is sealed: f32 and f64 only");
        }
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array2, ShapeBuilder};

    use super::gemm;

    fn assert_close(got: &Array2<f64>, expected: &Array2<f64>) {
        assert_eq!(got.dim(), expected.dim());
        let worst = got.iter().zip(expected).map(|(g, e)| (g - e).abs()).fold(0.0, f64::max);
        assert!(worst < 1e-12, "off by {worst}");
    }

    /// The triple loop, the independent reference.
    fn naive(a: &Array2<f64>, b: &Array2<f64>) -> Array2<f64> {
        let (m, k) = a.dim();
        let n = b.ncols();
        Array2::from_shape_fn((m, n), |(i, j)| (0..k).map(|t| a[[i, t]] * b[[t, j]]).sum())
    }

    fn filled(rows: usize, cols: usize, seed: f64, column_major: bool) -> Array2<f64> {
        let mut x = if column_major {
            Array2::zeros((rows, cols).f())
        } else {
            Array2::zeros((rows, cols))
        };
        for ((i, j), v) in x.indexed_iter_mut() {
            *v = ((i * 7 + j * 13) as f64 * seed).sin();
        }
        x
    }

    #[test]
    fn every_layout_matches_the_triple_loop() {
        for (m, k, n) in [(1, 1, 1), (3, 5, 2), (17, 9, 33), (64, 70, 5), (2, 0, 3)] {
            for layout in 0..8 {
                let a = filled(m, k, 0.3, layout & 1 != 0);
                let b = filled(k, n, 0.7, layout & 2 != 0);
                let expected = naive(&a, &b);
                let mut c = filled(m, n, 1.1, layout & 4 != 0);
                let before = c.clone();
                gemm(a.view(), b.view(), false, c.view_mut());
                assert_close(&c, &expected);
                let mut c = before.clone();
                gemm(a.view(), b.view(), true, c.view_mut());
                assert_close(&c, &(&before + &expected));
            }
        }
    }

    #[test]
    fn transposed_and_reversed_views() {
        let a = filled(6, 4, 0.5, false);
        let b = filled(6, 5, 0.9, false);
        let mut c = Array2::zeros((4, 5));
        gemm(a.t(), b.view(), false, c.view_mut());
        assert_close(&c, &naive(&a.t().to_owned(), &b));
        let flipped = a.slice(ndarray::s![..;-1, ..]);
        let mut c = Array2::zeros((4, 5));
        gemm(flipped.t(), b.slice(ndarray::s![..;-1, ..]), false, c.view_mut());
        assert_close(&c, &naive(&a.t().to_owned(), &b));
    }
}
