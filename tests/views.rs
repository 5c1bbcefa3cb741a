//! The teaching views against independent computations: the checkerboard coverage counts
//! against hand values, the scatter view's stamps against the library's transposed conv run on
//! one input cell at a time, and the strided conv's input gradient against counting loops.

mod common;

use adjoint::Tape;
use adjoint::ops::conv::views::{Upsampling, conv_transpose_stamps, coverage, input_gradient_counts};
use adjoint::ops::conv::{ConvTransposeOptions, conv_transpose};
use common::{cases, random};
use ndarray::{Array1, Array2, ArrayD, IxDyn};
use rand::SeedableRng;
use rand::rngs::StdRng;

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

/// A one-pixel input under three kernel-3 stride-2 layers: an output of 15 (8 for
/// resize-conv) with a border margin of 14 on each side leaves no interior. The ratio says
/// there is nothing to compare, where it used to slice past the map's end and panic, and the
/// counts are still every path (transposed: the input's one cell times 9 taps per layer).
#[test]
fn margins_wider_than_the_map_leave_no_interior() {
    for how in [Upsampling::Transposed, Upsampling::ResizeConv] {
        let c = coverage(1, 3, 2, 3, how).unwrap();
        assert!(c.interior_ratio.is_nan(), "{how:?}: {}", c.interior_ratio);
    }
    let c = coverage(1, 3, 2, 3, Upsampling::Transposed).unwrap();
    assert_eq!(c.counts.dim(), (15, 15));
    assert_eq!(c.counts.sum(), 9f64.powi(3));
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

/// The library's transposed conv of one image.
fn transposed(x: &ArrayD<f64>, w: &ArrayD<f64>, opts: &ConvTransposeOptions) -> ArrayD<f64> {
    let tape = Tape::new();
    (*conv_transpose(tape.constant(x.clone()), tape.constant(w.clone()), None, opts)
        .unwrap()
        .value())
    .clone()
}

fn max_diff(a: &ArrayD<f64>, b: &ArrayD<f64>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// Each stamp is the transposed conv of its input cell alone (every other cell zeroed), and
/// the stamps added up are the transposed conv: over 1-D, 2-D and 3-D settings with channels,
/// groups, padding that crops, output padding and dilation.
#[test]
fn stamps_are_the_transposed_conv_of_one_cell_each_and_add_up_to_it() {
    let mut rng = StdRng::seed_from_u64(17);
    let mut checked = 0;
    for rank in 1..=3 {
        for mut case in cases(rank, 12) {
            case.batch = 1;
            let (x, w) = (random(&case.y_shape(), &mut rng), random(&case.w_shape(), &mut rng));
            let opts = case.transpose_options();
            let scatter = conv_transpose_stamps(&x, &w, &opts).unwrap();
            let whole = transposed(&x, &w, &opts);
            assert_eq!(whole.shape()[1..], scatter.output[..], "{case:?}");
            assert!(
                max_diff(&scatter.partial_sum(scatter.stamps.len()), &whole) < 1e-12,
                "{case:?}"
            );
            assert_eq!(scatter.stamps.len(), x.len(), "{case:?}");
            // One cell at a time, for the first few cells.
            for stamp in scatter.stamps.iter().take(4) {
                let mut alone = ArrayD::zeros(x.raw_dim());
                let mut index = vec![0];
                index.extend(&stamp.input);
                alone[IxDyn(&index)] = x[IxDyn(&index)];
                let single = conv_transpose_stamps(&alone, &w, &opts).unwrap();
                let mut drawn = ArrayD::zeros(whole.raw_dim());
                for tap in &stamp.taps {
                    if let Some(at) = single.output_index(tap) {
                        drawn[IxDyn(&at)] += tap.value;
                    }
                }
                assert!(
                    max_diff(&drawn, &transposed(&alone, &w, &opts)) < 1e-12,
                    "{case:?} {stamp:?}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 30, "only {checked} cases");
}

/// A hand example: x = [1, 10] with w = [1, 2, 3], stride 2, padding 1: the stamps [1, 2, 3]
/// and [10, 20, 30] start at 0·2 − 1 = −1 and 1·2 − 1 = 1; tap 0 of the first is cropped.
#[test]
fn stamps_by_hand() {
    let x = ArrayD::from_shape_vec(vec![1, 1, 2], vec![1.0, 10.0]).unwrap();
    let w = ArrayD::from_shape_vec(vec![1, 1, 3], vec![1.0, 2.0, 3.0]).unwrap();
    let scatter = conv_transpose_stamps(&x, &w, &ConvTransposeOptions::new().stride(2).padding(1)).unwrap();
    assert_eq!(scatter.output, vec![1, 3]);
    let at: Vec<Vec<isize>> = scatter
        .stamps
        .iter()
        .flat_map(|s| s.taps.iter().map(|t| t.at[0]))
        .map(|a| vec![a])
        .collect();
    assert_eq!(at, vec![vec![-1], vec![0], vec![1], vec![1], vec![2], vec![3]]);
    let values: Vec<f64> = scatter
        .stamps
        .iter()
        .flat_map(|s| s.taps.iter().map(|t| t.value))
        .collect();
    assert_eq!(values, vec![1.0, 2.0, 3.0, 10.0, 20.0, 30.0]);
    assert_eq!(scatter.output_index(&scatter.stamps[0].taps[0]), None);
    assert_eq!(scatter.partial_sum(1).as_slice().unwrap(), &[2.0, 3.0, 0.0]);
    assert_eq!(scatter.partial_sum(2).as_slice().unwrap(), &[2.0, 13.0, 20.0]);
    // Two images are refused: the stamps are of one.
    let two = ArrayD::zeros(IxDyn(&[2, 1, 2]));
    assert!(conv_transpose_stamps(&two, &w, &ConvTransposeOptions::new()).is_err());
}

/// How many (output pixel, tap) paths through a stack of strided convs with all-ones kernels
/// read each input pixel, by plain loops: the top layer's pixels count 1 each, and each layer
/// down adds a pixel's count to every input pixel its window covers.
fn paths_by_loops(size: usize, k: usize, s: usize, layers: usize) -> Array2<f64> {
    let mut counts = Array2::<f64>::ones((size, size));
    for _ in 0..layers {
        let n = (counts.nrows() - 1) * s + k;
        let mut below = Array2::<f64>::zeros((n, n));
        for ((r, c), &v) in counts.indexed_iter() {
            for tr in 0..k {
                for tc in 0..k {
                    below[[r * s + tr, c * s + tc]] += v;
                }
            }
        }
        counts = below;
    }
    counts
}

/// Distill's point, from the tape: the input gradient of a strided conv with all-ones kernel
/// and upstream gradient counts the overlaps, and is the transposed conv's coverage map.
#[test]
fn a_strided_convs_input_gradient_is_the_checkerboard_of_its_transpose() {
    for (k, s) in [(3, 2), (4, 2), (5, 2), (3, 3)] {
        for layers in 1..=3 {
            let grad = input_gradient_counts(5, k, s, layers).unwrap();
            assert_eq!(grad, paths_by_loops(5, k, s, layers), "k {k} s {s}, {layers} layers");
            let cover = coverage(5, k, s, layers, Upsampling::Transposed).unwrap();
            assert_eq!(grad, cover.counts, "k {k} s {s}, {layers} layers");
        }
    }
    // k = 3, s = 2, one layer: rows and columns alternate 1 and 2 paths.
    let grad = input_gradient_counts(2, 3, 2, 1).unwrap();
    assert_eq!(grad, outer(&[1.0, 1.0, 2.0, 1.0, 1.0]));
    assert!(input_gradient_counts(4, 0, 2, 1).is_err());
    assert!(input_gradient_counts(4, 3, 2, 0).is_err());
}

/// The guide, `docs/guide.md`.
fn guide() -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/guide.md")).unwrap()
}

/// The whole numbers in `text`, in order.
fn numbers(text: &str) -> Vec<usize> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|t| !t.is_empty())
        .map(|t| t.parse().unwrap())
        .collect()
}

/// Section 2's worked example: `A` of kernel [1, 2, 3], stride 2, on x = [1..7], from the dense
/// matrix; and section 6's table of max/min ratios, from `coverage` on a 16×16 input.
#[test]
fn the_guides_numbers_are_the_librarys() {
    use adjoint::ops::conv::ConvOptions;
    use adjoint::ops::conv::views::conv_matrix;
    let guide = guide();
    let w = ArrayD::from_shape_vec(vec![1, 1, 3], vec![1.0, 2.0, 3.0]).unwrap();
    let a = conv_matrix(&w, &[1, 7], &ConvOptions::new().stride(2)).unwrap();
    let x = Array1::from_iter((1..=7).map(f64::from));
    let y = a.dot(&x);
    let back = a.t().dot(&y);
    let list = |v: &Array1<f64>| v.iter().map(|v| format!("{v}")).collect::<Vec<_>>().join(", ");
    assert!(guide.contains(&format!("`y = A x =\n[{}]`", list(&y))), "y = {y}");
    assert!(guide.contains(&format!("`Aᵀ y = [{}]`", list(&back))), "Aᵀ y = {back}");

    let at = guide
        .find("max/min of the coverage counts away from the borders")
        .unwrap();
    let mut rows = 0;
    for line in guide[at..].lines().skip(3).take_while(|l| !l.starts_with("```")) {
        let fields: Vec<&str> = line.split_whitespace().filter(|f| *f != "|").collect();
        let (k, s): (usize, usize) = (fields[0].parse().unwrap(), fields[1].parse().unwrap());
        assert_eq!(fields[2].parse::<usize>().unwrap(), k % s, "{line}");
        for (j, how) in [Upsampling::Transposed, Upsampling::ResizeConv].into_iter().enumerate() {
            for layers in 1..=3 {
                let ratio = coverage(16, k, s, layers, how).unwrap().interior_ratio;
                assert_eq!(
                    fields[3 + 3 * j + layers - 1],
                    format!("{ratio:.2}"),
                    "{line}: {how:?}, {layers} layers"
                );
            }
        }
        rows += 1;
    }
    assert_eq!(rows, 5);
}

/// Section 4's table of TensorFlow sizes, for k = 3, s = 2, from `geometry`'s TF rules.
#[test]
fn the_guides_tensorflow_table_is_the_librarys() {
    use adjoint::ops::conv::geometry::{tf_same, tf_transpose_default_size, tf_transpose_sizes, tf_valid};
    let guide = guide();
    let row = |name: &str| -> Vec<Vec<usize>> {
        let line = guide
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("| {name} |")))
            .unwrap();
        line.split('|')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .skip(1)
            .map(numbers)
            .collect()
    };
    for i in [7, 8] {
        let cells = row(&format!("conv of {i} cells"));
        // VALID: ⌈(i − k_e + 1)/s⌉ = o.
        assert_eq!(cells[0], [i - 2, 2, tf_valid(i, 3, 2, 1)], "VALID {i}");
        // SAME: ⌈i/s⌉ = o, padding total: before, after.
        let (o, before, after) = tf_same(i, 3, 2, 1).unwrap();
        assert_eq!(cells[1], [i, 2, o, before + after, before, after], "SAME {i}");
    }
    let defaults = row("transposed conv of 3 cells, by default");
    assert_eq!(
        defaults[0].last(),
        tf_transpose_default_size(false, 3, 3, 2, 1).as_ref()
    );
    assert_eq!(defaults[1].last(), tf_transpose_default_size(true, 3, 3, 2, 1).as_ref());
    let allowed = row("transposed conv of 3 cells, output shapes allowed");
    for (cell, same) in allowed.iter().zip([false, true]) {
        let range = tf_transpose_sizes(same, 3, 3, 2, 1).unwrap();
        assert_eq!(*cell, range.collect::<Vec<_>>(), "same = {same}");
    }
}
