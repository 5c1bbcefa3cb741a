//! The conv pair over the table of geometries: finite-difference gradients, the adjoint
//! identity, and the three views of the transposed conv agreeing.

mod common;

use adjoint::Tape;
use adjoint::gradcheck::{GradcheckOptions, gradcheck, gradgradcheck};
use adjoint::ops::conv::views::{conv_matrix, conv_transpose_by_zero_insertion, conv_transpose_matrix};
use adjoint::ops::conv::{ConvOptions, ConvTransposeOptions, conv, conv_transpose, conv_transpose2d, conv2d};
use common::{Case, cases, dot, random};
use ndarray::{Array1, ArrayD, Axis, IxDyn, arr2};
use rand::SeedableRng;
use rand::rngs::StdRng;

const CASES_2D: usize = 40;
const CASES_3D: usize = 12;

fn all_cases() -> Vec<Case> {
    [cases(1, 0), cases(2, CASES_2D), cases(3, CASES_3D)].concat()
}

fn check_gradients(case: &Case, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (x, w) = (random(&case.x_shape(), &mut rng), random(&case.w_shape(), &mut rng));
    let opts = GradcheckOptions {
        seed,
        ..Default::default()
    };
    let conv_opts = case.conv_options();
    let b = random(&[case.c_out], &mut rng);
    let report = gradcheck(
        |_, v| conv(v[0], v[1], Some(v[2]), &conv_opts),
        &[x, w.clone(), b],
        &opts,
    )
    .unwrap();
    assert!(report.passed, "conv {case:?}: {report}");

    // The transposed conv maps the conv's output side back, with the case's output padding.
    let t_opts = case.transpose_options();
    let x_t = random(&case.y_shape(), &mut rng);
    let b_t = random(&[case.c_in], &mut rng);
    let report = gradcheck(
        |_, v| conv_transpose(v[0], v[1], Some(v[2]), &t_opts),
        &[x_t, w, b_t],
        &opts,
    )
    .unwrap();
    assert!(report.passed, "conv_transpose {case:?}: {report}");
}

#[test]
fn gradcheck_conv_and_conv_transpose_1d() {
    for (n, case) in cases(1, 0).iter().enumerate() {
        check_gradients(case, n as u64);
    }
}

#[test]
fn gradcheck_conv_and_conv_transpose_2d() {
    for (n, case) in cases(2, CASES_2D).iter().enumerate() {
        check_gradients(case, n as u64);
    }
}

#[test]
fn gradcheck_conv_and_conv_transpose_3d() {
    for (n, case) in cases(3, CASES_3D).iter().enumerate() {
        check_gradients(case, n as u64);
    }
}

/// ⟨conv(x), y⟩ = ⟨x, conv_transpose(y)⟩: what "transpose" means, checked directly.
#[test]
fn adjoint_identity_over_the_grid() {
    let mut rng = StdRng::seed_from_u64(7);
    for case in all_cases() {
        let tape = Tape::<f64>::new();
        let x = random(&case.x_shape(), &mut rng);
        let y = random(&case.y_shape(), &mut rng);
        let w = tape.constant(random(&case.w_shape(), &mut rng));
        let ax = conv(tape.constant(x.clone()), w, None, &case.conv_options())
            .unwrap()
            .value();
        let aty = conv_transpose(tape.constant(y.clone()), w, None, &case.adjoint_options())
            .unwrap()
            .value();
        assert_eq!(aty.shape(), x.shape(), "{case:?}");
        let (lhs, rhs) = (dot(&ax, &y), dot(&x, &aty));
        assert!(
            (lhs - rhs).abs() <= 1e-12 * lhs.abs().max(1.0),
            "{case:?}: {lhs} vs {rhs}"
        );
    }
}

/// Matrix, zero insertion and the fast kernels give the same numbers, image by image.
#[test]
fn three_views_agree_over_the_grid() {
    let mut rng = StdRng::seed_from_u64(11);
    for case in all_cases() {
        check_views(&case, &mut rng);
    }
}

/// The fast conv against `A·x` and the fast transposed conv against `Aᵀ·y` and the
/// zero-insertion recipe, image by image, with `A` the dense matrix.
fn check_views(case: &Case, rng: &mut StdRng) {
    let tape = Tape::<f64>::new();
    let w = random(&case.w_shape(), rng);
    let x = random(&case.x_shape(), rng);
    let x_t = random(&case.y_shape(), rng);
    let w_var = tape.constant(w.clone());

    let fast_conv = conv(tape.constant(x.clone()), w_var, None, &case.conv_options())
        .unwrap()
        .value();
    let fast_t = conv_transpose(tape.constant(x_t.clone()), w_var, None, &case.transpose_options())
        .unwrap()
        .value();
    let steps = conv_transpose_by_zero_insertion(&x_t, &w, &case.transpose_options()).unwrap();
    assert_close(&steps.y, &fast_t, &format!("zero insertion vs fast {case:?}"));

    let a = conv_matrix(&w, &case.x_shape()[1..], &case.conv_options()).unwrap();
    let a_t = conv_transpose_matrix(&w, &case.y_shape()[1..], &case.transpose_options()).unwrap();
    for n in 0..case.batch {
        let flat = |v: &ArrayD<f64>| Array1::from_iter(v.index_axis(Axis(0), n).iter().copied());
        assert_close(
            &a.dot(&flat(&x)).into_dyn(),
            &flat(&fast_conv).into_dyn(),
            &format!("A·x vs fast conv {case:?}"),
        );
        assert_close(
            &a_t.dot(&flat(&x_t)).into_dyn(),
            &flat(&fast_t).into_dyn(),
            &format!("Aᵀ·y vs fast transposed conv {case:?}"),
        );
    }
    // With the adjoint's output padding the transposed matrix is literally Aᵀ.
    let exact = conv_transpose_matrix(&w, &case.y_shape()[1..], &case.adjoint_options()).unwrap();
    assert_eq!(exact, a.t(), "{case:?}");
}

/// An axis of input size `i`: kernel, stride, padding, dilation, output padding.
fn axis(i: usize, k: usize, s: usize, p: usize, d: usize, output_padding: usize) -> common::Axis {
    common::Axis {
        i,
        geometry: adjoint::ops::conv::AxisGeometry::new(k, s, p, d),
        output_padding,
    }
}

fn case(batch: usize, c_in: usize, c_out: usize, groups: usize, axes: Vec<common::Axis>) -> Case {
    Case {
        batch,
        c_in,
        c_out,
        groups,
        axes,
    }
}

/// The grid's outputs are narrow (the kernels index them through a cell table); rows of 16
/// outputs or more take the segment path, which on a stride-2, undilated last axis unrolls and
/// folds two taps at a time. Dense matrix and finite differences on such rows: odd and even
/// kernels, padding wider than some taps reach, output padding, and dilation (unpaired).
#[test]
fn wide_rows_agree_with_the_dense_matrix_and_finite_differences() {
    let cases = [
        case(2, 2, 3, 1, vec![axis(5, 4, 2, 1, 1, 0), axis(34, 4, 2, 1, 1, 0)]),
        case(1, 2, 2, 2, vec![axis(4, 3, 2, 1, 1, 1), axis(33, 3, 2, 1, 1, 0)]),
        case(1, 1, 2, 1, vec![axis(40, 6, 2, 4, 1, 1)]),
        case(2, 3, 1, 1, vec![axis(3, 2, 1, 0, 1, 0), axis(36, 2, 2, 0, 1, 1)]),
        case(1, 2, 1, 1, vec![axis(41, 3, 2, 1, 2, 0)]),
        case(
            1,
            1,
            1,
            1,
            vec![axis(3, 3, 1, 1, 1, 0), axis(4, 5, 1, 2, 1, 0), axis(38, 5, 2, 2, 1, 1)],
        ),
    ];
    let mut rng = StdRng::seed_from_u64(23);
    for (n, case) in cases.iter().enumerate() {
        let wide = case.y_shape().last().copied().unwrap_or(0);
        assert!(wide >= 16, "{case:?}: output rows of {wide} are not wide");
        check_views(case, &mut rng);
        check_gradients(case, 100 + n as u64);
    }
}

/// A first axis whose stride is below its kernel, with products of at least 256 positions and
/// 16 rows, takes the shifted kernels (one product per first-axis tap on a shifted partial
/// unroll, one partial unroll per phase of the stride). Dense matrix and finite differences on
/// such convs: dilated and even first-axis kernels, padding beyond the taps' reach, groups,
/// output padding (dilation allows it at stride 1), 3-D, and strides 2 and 3 (phases needing a
/// row in front, a dilation putting all taps in one phase).
#[test]
fn shifted_first_axes_agree_with_the_dense_matrix_and_finite_differences() {
    let cases = [
        case(2, 6, 3, 1, vec![axis(16, 3, 1, 1, 1, 0), axis(16, 3, 1, 1, 1, 0)]),
        case(1, 4, 2, 1, vec![axis(20, 3, 1, 2, 2, 1), axis(30, 4, 2, 0, 1, 0)]),
        case(1, 8, 4, 2, vec![axis(17, 4, 1, 1, 1, 0), axis(16, 5, 1, 2, 1, 0)]),
        case(1, 8, 2, 1, vec![axis(14, 3, 1, 3, 1, 0), axis(16, 2, 1, 0, 1, 0)]),
        case(
            1,
            2,
            3,
            1,
            vec![axis(5, 2, 1, 1, 1, 0), axis(8, 3, 1, 1, 1, 0), axis(8, 3, 1, 1, 1, 0)],
        ),
        case(1, 4, 2, 1, vec![axis(32, 4, 2, 1, 1, 0), axis(32, 4, 2, 1, 1, 0)]),
        case(1, 4, 2, 1, vec![axis(34, 4, 2, 0, 1, 1), axis(20, 4, 1, 0, 1, 0)]),
        case(1, 4, 2, 2, vec![axis(22, 5, 3, 2, 1, 2), axis(40, 8, 1, 0, 1, 0)]),
        case(1, 4, 2, 1, vec![axis(40, 3, 2, 2, 2, 1), axis(19, 4, 1, 0, 1, 0)]),
    ];
    let mut rng = StdRng::seed_from_u64(29);
    for (n, case) in cases.iter().enumerate() {
        let positions: usize = case.y_shape()[2..].iter().product();
        let rows = case.c_in / case.groups * case.axes[1..].iter().map(|a| a.geometry.kernel).product::<usize>();
        let first = case.axes[0].geometry;
        let phases = (0..first.kernel)
            .map(|t| t * first.dilation % first.stride)
            .collect::<std::collections::BTreeSet<_>>();
        assert!(
            phases.len() < first.kernel && positions >= 256 && rows >= 16,
            "{case:?}: not a shifted case"
        );
        check_views(case, &mut rng);
        check_gradients(case, 200 + n as u64);
    }
}

fn assert_close(a: &ArrayD<f64>, b: &ArrayD<f64>, what: &str) {
    assert_eq!(a.shape(), b.shape(), "{what}");
    let worst = a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    assert!(worst <= 1e-12, "{what}: max difference {worst}");
}

/// The 1-D example: x = [a..g], kernel w = [w0, w1, w2], stride 2.
#[test]
fn one_d_example_matrix_matches_exactly() {
    let w = ArrayD::from_shape_vec(IxDyn(&[1, 1, 3]), vec![5.0, 7.0, 11.0]).unwrap();
    let a = conv_matrix(&w, &[1, 7], &ConvOptions::new().stride(2)).unwrap();
    let expected = arr2(&[
        [5.0, 7.0, 11.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 5.0, 7.0, 11.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 5.0, 7.0, 11.0],
    ]);
    assert_eq!(a, expected);
    let a_t = conv_transpose_matrix(&w, &[1, 3], &ConvTransposeOptions::new().stride(2)).unwrap();
    assert_eq!(a_t, expected.t());
}

/// The duality is literal: conv's input gradient is the transposed conv's forward on the
/// upstream gradient, and the transposed conv's is the conv's forward.
#[test]
fn backward_of_each_is_the_forward_of_the_other() {
    let mut rng = StdRng::seed_from_u64(3);
    for case in cases(2, 10) {
        let tape = Tape::<f64>::new();
        let x = tape.param(random(&case.x_shape(), &mut rng));
        let w = tape.constant(random(&case.w_shape(), &mut rng));
        let y = conv(x, w, None, &case.conv_options()).unwrap();
        let grad_y = random(&y.shape(), &mut rng);
        let grads = tape.backward_with(y, grad_y.clone()).unwrap();
        let forward = conv_transpose(tape.constant(grad_y), w, None, &case.adjoint_options()).unwrap();
        assert_eq!(grads[x], *forward.value(), "{case:?}");

        let x_t = tape.param(random(&case.y_shape(), &mut rng));
        let y_t = conv_transpose(x_t, w, None, &case.adjoint_options()).unwrap();
        let grad_y_t = random(&y_t.shape(), &mut rng);
        let grads = tape.backward_with(y_t, grad_y_t.clone()).unwrap();
        let forward = conv(tape.constant(grad_y_t), w, None, &case.conv_options()).unwrap();
        assert_eq!(grads[x_t], *forward.value(), "{case:?}");
    }
}

/// Second derivatives go through conv and transposed conv again.
#[test]
fn gradgradcheck_conv2d_and_conv_transpose2d() {
    let mut rng = StdRng::seed_from_u64(5);
    for (n, case) in cases(2, 8).iter().enumerate() {
        let opts = GradcheckOptions {
            seed: n as u64,
            ..Default::default()
        };
        let x = random(&case.x_shape(), &mut rng);
        let w = random(&case.w_shape(), &mut rng);
        let b = random(&[case.c_out], &mut rng);
        let c_opts = case.conv_options();
        // tanh makes the loss non-quadratic so the Hessian blocks are not all zero.
        let report = gradgradcheck(
            |_, v| conv2d(v[0], v[1], Some(v[2]), &c_opts)?.tanh(),
            &[x, w.clone(), b],
            &opts,
        )
        .unwrap();
        assert!(report.passed, "conv2d second order {case:?}: {report}");

        let t_opts = case.transpose_options();
        let x_t = random(&case.y_shape(), &mut rng);
        let b_t = random(&[case.c_in], &mut rng);
        let report = gradgradcheck(
            |_, v| conv_transpose2d(v[0], v[1], Some(v[2]), &t_opts)?.tanh(),
            &[x_t, w, b_t],
            &opts,
        )
        .unwrap();
        assert!(report.passed, "conv_transpose2d second order {case:?}: {report}");
    }
}

#[test]
fn the_grid_covers_every_setting() {
    let all = all_cases();
    let axes: Vec<_> = all.iter().flat_map(|c| c.axes.iter().copied()).collect();
    for s in 1..=3 {
        assert!(axes.iter().any(|a| a.geometry.stride == s));
    }
    for d in 1..=2 {
        assert!(axes.iter().any(|a| a.geometry.dilation == d));
    }
    for g in 1..=3 {
        assert!(all.iter().any(|c| c.groups == g));
    }
    assert!(all.iter().any(|c| c.groups == c.c_in && c.c_in > 1), "depthwise");
    assert!(
        axes.iter().any(|a| a.geometry.pad_before != a.geometry.pad_after),
        "asymmetric"
    );
    assert!(axes.iter().any(|a| a.geometry.pad_before == 2));
    assert!(
        axes.iter().any(|a| a.output_padding >= a.geometry.stride),
        "op >= s (< d)"
    );
    assert!(axes.iter().any(|a| a.geometry.kernel % 2 == 0) && axes.iter().any(|a| a.geometry.kernel % 2 == 1));
    assert!(
        all.iter()
            .any(|c| c.rank() == 2 && c.axes[0].geometry.kernel != c.axes[1].geometry.kernel)
    );
    assert!(
        axes.iter().any(|a| a.geometry.past_last_window(a.i).unwrap() != 0),
        "(i + 2p − k) mod s ≠ 0"
    );
    assert!(all.iter().filter(|c| c.rank() == 3).count() >= CASES_3D);
}

/// The fast path runs several images per matrix product and splits the batch in halves; a
/// batch computed at once must equal the same images computed one by one (whose correctness
/// the tests above establish), for all three kernels.
#[test]
fn batches_split_into_chunks_match_single_images() {
    let mut rng = StdRng::seed_from_u64(13);
    // Output lengths 2048 (two images per product, halves of 3 and 4) and 7 (all at once).
    for (len, k, s) in [(2049, 3, 1), (15, 3, 2)] {
        let tape = Tape::<f64>::new();
        let opts = ConvOptions::new().stride(s).padding(1).groups(2);
        let t_opts = ConvTransposeOptions::new().stride(s).padding(1).groups(2);
        let x = tape.param(random(&[7, 4, len], &mut rng));
        let w = tape.param(random(&[6, 2, k], &mut rng));
        let y = conv(x, w, None, &opts).unwrap();
        let z = conv_transpose(y, w, None, &t_opts).unwrap();
        let upstream = random(&z.shape(), &mut rng);
        let grads = tape.backward_with(z, upstream.clone()).unwrap();
        let mut grad_w = ArrayD::zeros(w.shape());
        for n in 0..7 {
            let one = Tape::<f64>::new();
            let xn = one.param(x.value().index_axis(Axis(0), n).insert_axis(Axis(0)).to_owned());
            let wn = one.param((*w.value()).clone());
            let yn = conv(xn, wn, None, &opts).unwrap();
            let zn = conv_transpose(yn, wn, None, &t_opts).unwrap();
            let un = upstream.index_axis(Axis(0), n).insert_axis(Axis(0)).to_owned();
            assert_eq!(*yn.value(), y.value().index_axis(Axis(0), n).insert_axis(Axis(0)));
            assert_eq!(*zn.value(), z.value().index_axis(Axis(0), n).insert_axis(Axis(0)));
            let gn = one.backward_with(zn, un).unwrap();
            assert_eq!(gn[xn], grads[x].index_axis(Axis(0), n).insert_axis(Axis(0)));
            grad_w += &gn[wn];
        }
        assert_close(&grad_w, &grads[w], "weight gradient summed over the batch");
    }
}

/// The f32 path (the one training uses) multiplies with a different matrix product than the
/// f64 path the tests above check (`gemm-f32`'s kernels, not ndarray's): run every case, and a
/// few shapes large enough for multi-image products, two threads and full micro-kernel tiles,
/// in both precisions, and compare outputs and all gradients. The f64 side is the checked one;
/// f32 must agree to its rounding.
#[test]
fn f32_kernels_match_the_checked_f64_ones() {
    let large = |batch, c_in, c_out, groups, i: usize, k: usize, s: usize, p: usize| {
        let geometry = adjoint::ops::conv::AxisGeometry::new(k, s, p, 1);
        let axis = common::Axis {
            i,
            geometry,
            output_padding: 0,
        };
        Case {
            batch,
            c_in,
            c_out,
            groups,
            axes: vec![axis, axis],
        }
    };
    let mut all = all_cases();
    all.extend([
        large(8, 16, 16, 1, 56, 3, 1, 1),
        large(6, 32, 16, 1, 28, 4, 2, 1),
        large(16, 12, 24, 3, 15, 3, 2, 1),
        // The autoencoder example's bottleneck: a 7×7 kernel on a 7×7 input, a dense layer.
        large(64, 32, 64, 1, 7, 7, 1, 0),
    ]);
    let mut rng = StdRng::seed_from_u64(17);
    for case in all {
        let (x, w) = (random(&case.x_shape(), &mut rng), random(&case.w_shape(), &mut rng));
        let x_t = random(&case.y_shape(), &mut rng);
        let (u, u_t) = (random(&case.y_shape(), &mut rng), random(&case.x_shape(), &mut rng));
        let f64_run = run_pair::<f64>(&case, [&x, &w, &x_t, &u, &u_t]);
        let f32_run = run_pair::<f32>(&case, [&x, &w, &x_t, &u, &u_t]);
        for (what, (single, double)) in f32_run.iter().zip(&f64_run).enumerate() {
            let scale = double.iter().fold(1.0, |m: f64, v| m.max(v.abs()));
            let worst = single
                .iter()
                .zip(double)
                .map(|(s, d)| (s - d).abs())
                .fold(0.0, f64::max);
            assert!(
                worst <= 1e-5 * scale,
                "{case:?} result {what}: off by {worst} (scale {scale})"
            );
        }
    }
}

/// Conv output, its input and weight gradients, then the same for the transposed conv, in
/// precision `T` (inputs rounded to it), returned widened to f64.
fn run_pair<T: adjoint::Float>(case: &Case, [x, w, x_t, u, u_t]: [&ArrayD<f64>; 5]) -> Vec<ArrayD<f64>> {
    let cast = |a: &ArrayD<f64>| a.mapv(T::of);
    let widen = |a: &ArrayD<T>| a.mapv(|v| v.to_f64());
    let tape = Tape::<T>::new();
    let (xv, wv, x_tv) = (tape.param(cast(x)), tape.param(cast(w)), tape.param(cast(x_t)));
    let y = conv(xv, wv, None, &case.conv_options()).unwrap();
    let g = tape.backward_with(y, cast(u)).unwrap();
    let y_t = conv_transpose(x_tv, wv, None, &case.adjoint_options()).unwrap();
    let g_t = tape.backward_with(y_t, cast(u_t)).unwrap();
    vec![
        widen(&y.value()),
        widen(&g[xv]),
        widen(&g[wv]),
        widen(&y_t.value()),
        widen(&g_t[x_tv]),
        widen(&g_t[wv]),
    ]
}

/// A conv whose kernel covers its whole unpadded input has one output position: it is a dense
/// layer, `y = X·Wᵀ` per group with each image flattened, and its transpose is `Z·W`. The fast
/// path multiplies the arrays in place there (no unroll, no col2im); check it against those
/// products written out, in 2-D with groups, at a size that splits the batch over threads, and
/// by finite differences.
#[test]
fn a_conv_whose_kernel_covers_its_input_is_a_dense_layer() {
    let mut rng = StdRng::seed_from_u64(19);
    // (batch, c_in, c_out, groups, side)
    for (n, c_in, c_out, groups, side) in [(5, 4, 6, 2, 3), (64, 32, 64, 1, 7)] {
        let (ci, co, taps) = (c_in / groups, c_out / groups, side * side);
        let x = random(&[n, c_in, side, side], &mut rng);
        let w = random(&[c_out, ci, side, side], &mut rng);
        let z = random(&[n, c_out, 1, 1], &mut rng);
        let tape = Tape::<f64>::new();
        let wv = tape.constant(w.clone());
        let y = conv2d(tape.constant(x.clone()), wv, None, &ConvOptions::new().groups(groups))
            .unwrap()
            .value();
        let t = conv_transpose2d(
            tape.constant(z.clone()),
            wv,
            None,
            &ConvTransposeOptions::new().groups(groups),
        )
        .unwrap()
        .value();
        assert_eq!(
            (y.shape(), t.shape()),
            (&[n, c_out, 1, 1][..], &[n, c_in, side, side][..])
        );
        let x2 = x.to_shape((n, c_in * taps)).unwrap();
        let w2 = w.to_shape((c_out, ci * taps)).unwrap();
        let z2 = z.to_shape((n, c_out)).unwrap();
        for g in 0..groups {
            let x_g = x2.slice(ndarray::s![.., g * ci * taps..(g + 1) * ci * taps]);
            let w_g = w2.slice(ndarray::s![g * co..(g + 1) * co, ..]);
            let z_g = z2.slice(ndarray::s![.., g * co..(g + 1) * co]);
            let y_g = y
                .slice(ndarray::s![.., g * co..(g + 1) * co, 0, 0])
                .to_owned()
                .into_dyn();
            assert_close(&x_g.dot(&w_g.t()).into_dyn(), &y_g, "conv as X·Wᵀ");
            let t_g = t.slice(ndarray::s![.., g * ci..(g + 1) * ci, .., ..]).to_owned();
            let t_g = t_g.to_shape((n, ci * taps)).unwrap().to_owned().into_dyn();
            assert_close(&z_g.dot(&w_g).into_dyn(), &t_g, "transposed conv as Z·W");
        }
    }
    let case = Case {
        batch: 2,
        c_in: 4,
        c_out: 2,
        groups: 2,
        axes: vec![
            common::Axis {
                i: 3,
                geometry: adjoint::ops::conv::AxisGeometry::new(3, 1, 0, 1),
                output_padding: 0,
            };
            2
        ],
    };
    check_gradients(&case, 23);
}
