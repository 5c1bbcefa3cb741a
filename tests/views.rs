//! The checkerboard coverage counts against hand computations.

use adjoint::ops::conv::views::{Upsampling, coverage};
use ndarray::{Array1, Array2};

/// A 2-D count map is the outer product of its 1-D counts: the axes are independent.
fn outer(a: &[f64]) -> Array2<f64> {
    let v = Array1::from(a.to_vec());
    let col = v.clone().insert_axis(ndarray::Axis(1));
    let row = v.insert_axis(ndarray::Axis(0));
    col.dot(&row)
}

#[test]
fn kernel_3_stride_2_overlaps_every_other_cell() {
    // Two inputs, kernel 3, stride 2: input 0 writes cells 0–2, input 1 writes cells 2–4.
    let c = coverage(2, 3, 2, 1, Upsampling::Transposed).unwrap();
    assert_eq!(c.counts, outer(&[1.0, 1.0, 2.0, 1.0, 1.0]));
}

#[test]
fn kernel_4_stride_2_covers_evenly_inside() {
    // Three inputs, kernel 4, stride 2: writes 0–3, 2–5, 4–7.
    let c = coverage(3, 4, 2, 1, Upsampling::Transposed).unwrap();
    assert_eq!(c.counts, outer(&[1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 1.0, 1.0]));
    assert_eq!(c.interior_ratio, 1.0);
}

#[test]
fn resize_then_conv_is_even_inside() {
    // Nearest ×2 of two ones gives four ones; a 3-tap 'same' conv sums 2, 3, 3, 2 of them.
    let c = coverage(2, 3, 2, 1, Upsampling::ResizeConv).unwrap();
    assert_eq!(c.counts, outer(&[2.0, 3.0, 3.0, 2.0]));
    let deep = coverage(6, 3, 2, 3, Upsampling::ResizeConv).unwrap();
    assert_eq!(deep.interior_ratio, 1.0);
}

#[test]
fn stacking_makes_uneven_coverage_worse() {
    let ratios: Vec<f64> = (1..=3)
        .map(|layers| {
            coverage(6, 3, 2, layers, Upsampling::Transposed)
                .unwrap()
                .interior_ratio
        })
        .collect();
    assert_eq!(ratios[0], 4.0);
    assert!(ratios[1] > ratios[0] && ratios[2] > ratios[1], "{ratios:?}");
}

#[test]
fn zero_settings_are_errors() {
    assert!(coverage(0, 3, 2, 1, Upsampling::Transposed).is_err());
    assert!(coverage(4, 3, 0, 1, Upsampling::ResizeConv).is_err());
    assert!(coverage(4, 3, 2, 0, Upsampling::Transposed).is_err());
}

/// The smallest horizontal period of the counts away from the borders (a `margin` wide): the
/// least `p` with `counts[y][x] = counts[y][x + p]` over the interior.
fn interior_period(c: &adjoint::ops::conv::views::Coverage, margin: usize) -> usize {
    let n = c.counts.nrows();
    let inner = margin..n - margin;
    (1..inner.len() / 2)
        .find(|&p| {
            inner
                .clone()
                .all(|y| (inner.start..inner.end - p).all(|x| c.counts[[y, x]] == c.counts[[y, x + p]]))
        })
        .expect("a period shorter than half the interior")
}

/// The guide's checkerboard section: with stride 2 the pattern's period doubles with each
/// stacked layer (2, 4, 8 pixels) for k = 3 as well as for k = 5, and k = 4 is flat.
#[test]
fn checkerboard_periods_double_with_each_layer() {
    for k in [3, 5] {
        for (layers, period) in [(1, 2), (2, 4), (3, 8)] {
            let c = coverage(24, k, 2, layers, Upsampling::Transposed).unwrap();
            // The border effects reach (k − 1)·(1 + 2 + … + 2^(layers−1)) pixels in.
            let margin = (k - 1) * ((1 << layers) - 1);
            assert_eq!(interior_period(&c, margin), period, "k {k}, {layers} layers");
        }
    }
    for layers in 1..=3 {
        let c = coverage(24, 4, 2, layers, Upsampling::Transposed).unwrap();
        assert_eq!(interior_period(&c, 3 * ((1 << layers) - 1)), 1, "k 4, {layers} layers");
    }
}
