//! Every differentiable op against finite differences (first and second order), and the forward
//! values of a selection of ops against independent computations (naive loops, hand formulas).

use adjoint::gradcheck::{GradcheckOptions, TapeFn, gradcheck, gradgradcheck};
use adjoint::ops::loss::bce_with_logits_weighted;
use adjoint::ops::matmul::linear;
use adjoint::tape::Op;
use adjoint::{Result, Tape, Var, bce_with_logits, concat, mse_loss, one_hot, softmax_cross_entropy};
use approx::assert_abs_diff_eq;
use ndarray::{ArrayD, Axis, IxDyn, arr1, arr2};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Uniform in `[lo, hi)`.
fn uniform(rng: &mut StdRng, shape: &[usize], lo: f64, hi: f64) -> ArrayD<f64> {
    ArrayD::from_shape_simple_fn(IxDyn(shape), || rng.random_range(lo..hi))
}

/// Magnitude in `[0.2, 1.5)`, random sign: away from the kinks of relu / leaky_relu and from the
/// poles of division.
fn away(rng: &mut StdRng, shape: &[usize]) -> ArrayD<f64> {
    ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        let m = rng.random_range(0.2..1.5);
        if rng.random_range(0.0..1.0) < 0.5 { -m } else { m }
    })
}

/// Strictly positive, for log / sqrt / powf.
fn positive(rng: &mut StdRng, shape: &[usize]) -> ArrayD<f64> {
    uniform(rng, shape, 0.3, 2.0)
}

fn opts(seed: u64) -> GradcheckOptions {
    GradcheckOptions {
        seed,
        ..GradcheckOptions::default()
    }
}

/// First-order check: every element of every input is compared, and all must pass.
#[track_caller]
fn check(f: impl TapeFn, inputs: &[ArrayD<f64>]) {
    let shapes: Vec<_> = inputs.iter().map(|x| x.shape().to_vec()).collect();
    let report = gradcheck(&f, inputs, &opts(7)).unwrap_or_else(|e| panic!("f failed on {shapes:?}: {e}"));
    let n: usize = inputs.iter().map(|x| x.len()).sum();
    assert_eq!(report.checked, n, "not every element was checked for {shapes:?}");
    assert!(report.passed, "gradcheck failed for input shapes {shapes:?}: {report}");
}

/// Second-order check (Hessian-vector products against finite differences of the gradient).
#[track_caller]
fn check2(f: impl TapeFn, inputs: &[ArrayD<f64>]) {
    let shapes: Vec<_> = inputs.iter().map(|x| x.shape().to_vec()).collect();
    let report = gradgradcheck(&f, inputs, &opts(11)).unwrap_or_else(|e| panic!("f failed on {shapes:?}: {e}"));
    let n: usize = inputs.iter().map(|x| x.len()).sum();
    assert_eq!(report.checked, n, "not every element was checked for {shapes:?}");
    assert!(
        report.passed,
        "gradgradcheck failed for input shapes {shapes:?}: {report}"
    );
}

/// Pairs of shapes that broadcast, including scalar-shaped `[]` and both-sides broadcasting.
const BROADCAST_PAIRS: &[(&[usize], &[usize])] = &[
    (&[2, 3], &[2, 3]),
    (&[2, 3], &[3]),
    (&[3], &[2, 3]),
    (&[4, 1, 5], &[3, 1]),
    (&[], &[2, 2]),
    (&[2, 2], &[]),
    (&[2, 1], &[1, 3]),
];

const UNARY_SHAPES: &[&[usize]] = &[&[], &[5], &[2, 3], &[2, 1, 3]];

fn c(x: f64) -> ArrayD<f64> {
    ArrayD::from_elem(IxDyn(&[]), x)
}

fn scalar(v: Var<'_, f64>) -> f64 {
    let value = v.value();
    assert_eq!(value.len(), 1, "expected one element, got shape {:?}", value.shape());
    *value.iter().next().unwrap()
}

// ---------------------------------------------------------------------------------------------
// The checker itself is not vacuous
// ---------------------------------------------------------------------------------------------

/// `y = 2x` with a deliberately wrong gradient rule (`3·g`): gradcheck must notice.
struct WrongDouble;

impl Op<f64> for WrongDouble {
    fn name(&self) -> String {
        "wrong_double".into()
    }
    fn backward<'t>(
        &self,
        _inputs: &[Var<'t, f64>],
        _y: Var<'t, f64>,
        g: Var<'t, f64>,
    ) -> Result<Vec<Option<Var<'t, f64>>>> {
        Ok(vec![Some(g.mul_scalar(3.0)?)])
    }
}

/// Transposes a matrix but sends the gradient back untransposed: caught only because the
/// upstream gradient is random (with all-ones it would pass).
struct WrongTranspose;

impl Op<f64> for WrongTranspose {
    fn name(&self) -> String {
        "wrong_transpose".into()
    }
    fn backward<'t>(
        &self,
        _inputs: &[Var<'t, f64>],
        _y: Var<'t, f64>,
        g: Var<'t, f64>,
    ) -> Result<Vec<Option<Var<'t, f64>>>> {
        Ok(vec![Some(g)])
    }
}

#[test]
fn gradcheck_catches_wrong_rules() {
    let mut r = rng(1);
    let x = uniform(&mut r, &[3, 3], -1.0, 1.0);
    let report = gradcheck(
        |t, v| {
            let y = v[0].value().mapv(|a| 2.0 * a);
            t.record(y, &[v[0]], WrongDouble)
        },
        std::slice::from_ref(&x),
        &opts(0),
    )
    .unwrap();
    assert!(!report.passed, "a gradient off by 3/2 passed: {report}");

    let report = gradcheck(
        |t, v| {
            let y = v[0].value().t().to_owned();
            t.record(y, &[v[0]], WrongTranspose)
        },
        &[x],
        &opts(0),
    )
    .unwrap();
    assert!(!report.passed, "an untransposed gradient passed: {report}");
}

// ---------------------------------------------------------------------------------------------
// Binary elementwise ops, with broadcasting
// ---------------------------------------------------------------------------------------------

#[test]
fn grad_add() {
    let mut r = rng(10);
    for &(a, b) in BROADCAST_PAIRS {
        let inputs = [uniform(&mut r, a, -1.0, 1.0), uniform(&mut r, b, -1.0, 1.0)];
        check(|_, v| v[0].add(v[1]), &inputs);
    }
}

#[test]
fn grad_sub() {
    let mut r = rng(11);
    for &(a, b) in BROADCAST_PAIRS {
        let inputs = [uniform(&mut r, a, -1.0, 1.0), uniform(&mut r, b, -1.0, 1.0)];
        check(|_, v| v[0].sub(v[1]), &inputs);
    }
}

#[test]
fn grad_mul() {
    let mut r = rng(12);
    for &(a, b) in BROADCAST_PAIRS {
        let inputs = [uniform(&mut r, a, -1.0, 1.0), uniform(&mut r, b, -1.0, 1.0)];
        check(|_, v| v[0].mul(v[1]), &inputs);
    }
}

#[test]
fn grad_div() {
    let mut r = rng(13);
    for &(a, b) in BROADCAST_PAIRS {
        let inputs = [uniform(&mut r, a, -1.0, 1.0), away(&mut r, b)];
        check(|_, v| v[0].div(v[1]), &inputs);
    }
}

#[test]
fn grad_binary_with_one_constant_side() {
    // Only one input differentiated; the other is data on the tape.
    let mut r = rng(14);
    let a = uniform(&mut r, &[2, 3], -1.0, 1.0);
    let b = away(&mut r, &[3]);
    let bb = b.clone();
    check(move |t, v| v[0].div(t.constant(bb.clone())), std::slice::from_ref(&a));
    let aa = a.clone();
    check(move |t, v| t.constant(aa.clone()).div(v[0]), &[b]);
}

// ---------------------------------------------------------------------------------------------
// Unary elementwise ops
// ---------------------------------------------------------------------------------------------

#[test]
fn grad_neg_add_scalar_mul_scalar() {
    let mut r = rng(20);
    for &s in UNARY_SHAPES {
        let x = [uniform(&mut r, s, -2.0, 2.0)];
        check(|_, v| v[0].neg(), &x);
        check(|_, v| v[0].add_scalar(-1.7), &x);
        check(|_, v| v[0].mul_scalar(-2.5), &x);
    }
}

#[test]
fn grad_exp() {
    let mut r = rng(21);
    for &s in UNARY_SHAPES {
        check(|_, v| v[0].exp(), &[uniform(&mut r, s, -2.0, 2.0)]);
    }
}

#[test]
fn grad_log() {
    let mut r = rng(22);
    for &s in UNARY_SHAPES {
        check(|_, v| v[0].log(), &[positive(&mut r, s)]);
    }
}

#[test]
fn grad_sqrt() {
    let mut r = rng(23);
    for &s in UNARY_SHAPES {
        check(|_, v| v[0].sqrt(), &[positive(&mut r, s)]);
    }
}

#[test]
fn grad_powf() {
    let mut r = rng(24);
    for &s in UNARY_SHAPES {
        let x = [positive(&mut r, s)];
        for p in [2.0, 3.0, 0.5, -1.5, 2.7] {
            check(move |_, v| v[0].powf(p), &x);
        }
    }
}

#[test]
fn grad_relu() {
    let mut r = rng(25);
    for &s in UNARY_SHAPES {
        check(|_, v| v[0].relu(), &[away(&mut r, s)]);
    }
    // Mixed signs in one input, so both branches are exercised together.
    check(
        |_, v| v[0].relu(),
        &[arr1(&[-1.0, -0.3, 0.2, 0.9, -0.15, 1.4]).into_dyn()],
    );
}

#[test]
fn grad_leaky_relu() {
    let mut r = rng(26);
    for &s in UNARY_SHAPES {
        let x = [away(&mut r, s)];
        for slope in [0.01, 0.2, -0.5] {
            check(move |_, v| v[0].leaky_relu(slope), &x);
        }
    }
}

#[test]
fn grad_sigmoid() {
    let mut r = rng(27);
    for &s in UNARY_SHAPES {
        check(|_, v| v[0].sigmoid(), &[uniform(&mut r, s, -4.0, 4.0)]);
    }
}

#[test]
fn grad_tanh() {
    let mut r = rng(28);
    for &s in UNARY_SHAPES {
        check(|_, v| v[0].tanh(), &[uniform(&mut r, s, -2.0, 2.0)]);
    }
}

// ---------------------------------------------------------------------------------------------
// Reductions, sum_to / broadcast_to
// ---------------------------------------------------------------------------------------------

const AXES_SETS: &[&[usize]] = &[&[], &[0], &[1], &[2], &[0, 2], &[2, 0], &[1, 2], &[0, 1, 2]];

#[test]
fn grad_sum_and_mean() {
    let mut r = rng(30);
    for &s in UNARY_SHAPES {
        let x = [uniform(&mut r, s, -1.0, 1.0)];
        check(|_, v| v[0].sum(), &x);
        check(|_, v| v[0].mean(), &x);
    }
}

#[test]
fn grad_sum_axes() {
    let mut r = rng(31);
    let x = [uniform(&mut r, &[2, 3, 4], -1.0, 1.0)];
    for &axes in AXES_SETS {
        for keepdims in [false, true] {
            check(move |_, v| v[0].sum_axes(axes, keepdims), &x);
        }
    }
    // Followed by a nonlinearity, so the broadcast gradient meets per-element factors.
    check(|_, v| v[0].sum_axes(&[1], false)?.tanh(), &x);
}

#[test]
fn grad_mean_axes() {
    let mut r = rng(32);
    let x = [uniform(&mut r, &[2, 3, 4], -1.0, 1.0)];
    for &axes in AXES_SETS {
        for keepdims in [false, true] {
            check(move |_, v| v[0].mean_axes(axes, keepdims), &x);
        }
    }
}

#[test]
fn grad_sum_to() {
    let mut r = rng(33);
    let x = [uniform(&mut r, &[2, 3, 4], -1.0, 1.0)];
    let targets: &[&[usize]] = &[
        &[3, 4],
        &[1, 4],
        &[3, 1],
        &[1, 1],
        &[4],
        &[1],
        &[],
        &[2, 1, 4],
        &[2, 3, 4],
    ];
    for &shape in targets {
        check(move |_, v| v[0].sum_to(shape), &x);
    }
}

#[test]
fn grad_broadcast_to() {
    let mut r = rng(34);
    let cases: &[(&[usize], &[usize])] = &[
        (&[3, 1], &[2, 3, 4]),
        (&[], &[2, 2]),
        (&[1, 4], &[3, 4]),
        (&[4], &[2, 3, 4]),
        (&[2, 1, 1], &[2, 3, 4]),
    ];
    for &(from, to) in cases {
        check(move |_, v| v[0].broadcast_to(to), &[uniform(&mut r, from, -1.0, 1.0)]);
    }
}

// ---------------------------------------------------------------------------------------------
// Shape ops
// ---------------------------------------------------------------------------------------------

#[test]
fn grad_reshape() {
    let mut r = rng(40);
    let x = [uniform(&mut r, &[2, 3, 4], -1.0, 1.0)];
    let shapes: &[&[usize]] = &[&[6, 4], &[4, 6], &[24], &[2, 12], &[4, 3, 2], &[1, 24, 1]];
    for &s in shapes {
        check(move |_, v| v[0].reshape(s), &x);
    }
    check(|_, v| v[0].reshape(&[1, 1]), &[c(0.7)]);
}

#[test]
fn grad_permute() {
    let mut r = rng(41);
    let x = [uniform(&mut r, &[2, 3, 4], -1.0, 1.0)];
    let perms: &[&[usize]] = &[&[0, 1, 2], &[0, 2, 1], &[1, 0, 2], &[1, 2, 0], &[2, 0, 1], &[2, 1, 0]];
    for &p in perms {
        check(move |_, v| v[0].permute(p), &x);
    }
    let x4 = [uniform(&mut r, &[2, 1, 3, 2], -1.0, 1.0)];
    check(|_, v| v[0].permute(&[3, 1, 0, 2]), &x4);
}

#[test]
fn grad_transpose() {
    let mut r = rng(42);
    let x = [uniform(&mut r, &[2, 3, 4], -1.0, 1.0)];
    for (a, b) in [(0, 1), (0, 2), (1, 2), (2, 1), (1, 1)] {
        check(move |_, v| v[0].transpose(a, b), &x);
    }
    check(|_, v| v[0].transpose(0, 1), &[uniform(&mut r, &[3, 5], -1.0, 1.0)]);
}

#[test]
fn grad_flatten() {
    let mut r = rng(43);
    let x = [uniform(&mut r, &[2, 3, 4], -1.0, 1.0)];
    for (a, b) in [(0, 1), (1, 2), (0, 2), (1, 1)] {
        check(move |_, v| v[0].flatten(a, b), &x);
    }
}

#[test]
fn grad_concat() {
    let mut r = rng(44);
    // 2-D, along each axis, three inputs of different lengths on the axis.
    let xs = [
        uniform(&mut r, &[2, 3], -1.0, 1.0),
        uniform(&mut r, &[2, 1], -1.0, 1.0),
        uniform(&mut r, &[2, 4], -1.0, 1.0),
    ];
    check(|_, v| concat(v, 1), &xs);
    let xs = [
        uniform(&mut r, &[1, 3], -1.0, 1.0),
        uniform(&mut r, &[2, 3], -1.0, 1.0),
        uniform(&mut r, &[3, 3], -1.0, 1.0),
    ];
    check(|_, v| concat(v, 0), &xs);
    // 3-D, each axis.
    for axis in 0..3 {
        let mut s = [2, 3, 2];
        let mut inputs = Vec::new();
        for n in [1, 2, 3] {
            s[axis] = n;
            inputs.push(uniform(&mut r, &s, -1.0, 1.0));
        }
        check(move |_, v| concat(v, axis), &inputs);
    }
    // A single input, and one value used twice.
    check(|_, v| concat(&v[..1], 0), &[uniform(&mut r, &[2, 2], -1.0, 1.0)]);
    check(
        |_, v| concat(&[v[0], v[0].exp()?, v[0]], 1),
        &[uniform(&mut r, &[2, 2], -1.0, 1.0)],
    );
}

#[test]
fn grad_slice() {
    let mut r = rng(45);
    let x = [uniform(&mut r, &[4, 5], -1.0, 1.0)];
    for (axis, start, end) in [(0, 1, 3), (0, 0, 4), (1, 0, 5), (1, 3, 5), (1, 2, 3), (0, 3, 4)] {
        check(move |_, v| v[0].slice(axis, start, end), &x);
    }
    let x3 = [uniform(&mut r, &[2, 3, 4], -1.0, 1.0)];
    check(|_, v| v[0].slice(2, 1, 3), &x3);
}

#[test]
fn grad_pad_axis() {
    let mut r = rng(46);
    let x = [uniform(&mut r, &[2, 3], -1.0, 1.0)];
    for (axis, before, after) in [(0, 1, 2), (1, 0, 3), (1, 2, 0), (0, 0, 0)] {
        check(move |_, v| v[0].pad_axis(axis, before, after), &x);
    }
    check(|_, v| v[0].pad_axis(1, 1, 1), &[uniform(&mut r, &[2, 3, 2], -1.0, 1.0)]);
}

// ---------------------------------------------------------------------------------------------
// Matrix product
// ---------------------------------------------------------------------------------------------

const MATMUL_SHAPES: &[(&[usize], &[usize])] = &[
    (&[3, 4], &[4, 5]),
    (&[1, 1], &[1, 1]),
    (&[1, 4], &[4, 1]),
    (&[2, 3, 4], &[2, 4, 5]),
    (&[2, 3, 4], &[4, 5]),
    (&[3, 4], &[2, 4, 5]),
    (&[1, 3, 4], &[2, 4, 5]),
    (&[2, 1, 3, 2], &[3, 2, 2]),
];

#[test]
fn grad_matmul() {
    let mut r = rng(50);
    for &(a, b) in MATMUL_SHAPES {
        let inputs = [uniform(&mut r, a, -1.0, 1.0), uniform(&mut r, b, -1.0, 1.0)];
        check(|_, v| v[0].matmul(v[1]), &inputs);
    }
}

#[test]
fn grad_matmul_with_itself() {
    // x·xᵀ and x·x: the same value on both sides.
    let mut r = rng(51);
    let x = [uniform(&mut r, &[3, 3], -1.0, 1.0)];
    check(|_, v| v[0].matmul(v[0]), &x);
    check(|_, v| v[0].matmul(v[0].transpose(0, 1)?), &x);
}

/// `linear` against its definition `x·wᵀ + b` computed with `matmul`, `transpose` and `add`,
/// then its gradients and second derivatives by finite differences: with and without a bias,
/// for a single vector, a matrix and a batch of matrices.
#[test]
fn linear_is_x_times_w_transposed_plus_b_and_its_gradients_check() {
    let mut r = rng(52);
    for x_shape in [&[4][..], &[3, 4], &[2, 3, 4], &[0, 4]] {
        let inputs = [
            uniform(&mut r, x_shape, -1.0, 1.0),
            uniform(&mut r, &[5, 4], -1.0, 1.0),
            uniform(&mut r, &[5], -1.0, 1.0),
        ];
        let tape = Tape::<f64>::new();
        let [x, w, b] = inputs.clone().map(|v| tape.param(v));
        let y = linear(x, w, Some(b)).unwrap();
        let x2 = if x_shape.len() == 1 {
            x.reshape(&[1, 4]).unwrap()
        } else {
            x
        };
        let want = x2.matmul(w.transpose(0, 1).unwrap()).unwrap().add(b).unwrap();
        let want = want.reshape(&y.shape()).unwrap();
        assert_eq!(y.shape(), [&x_shape[..x_shape.len() - 1], &[5]].concat());
        for (got, want) in y.value().iter().zip(want.value().iter()) {
            assert_abs_diff_eq!(got, want, epsilon = 1e-14);
        }
        if x_shape[0] == 0 {
            continue;
        }
        check(|_, v| linear(v[0], v[1], Some(v[2])), &inputs);
        check(|_, v| linear(v[0], v[1], None), &inputs[..2]);
        check2(|_, v| linear(v[0], v[1], Some(v[2])), &inputs);
        check2(|_, v| linear(v[0].mul(v[0])?, v[1], None), &inputs[..2]);
    }
}

// ---------------------------------------------------------------------------------------------
// Losses and the softmax family
// ---------------------------------------------------------------------------------------------

#[test]
fn grad_mse_loss() {
    let mut r = rng(60);
    for s in [&[5][..], &[3, 4], &[1]] {
        let inputs = [uniform(&mut r, s, -1.0, 1.0), uniform(&mut r, s, -1.0, 1.0)];
        check(|_, v| mse_loss(v[0], v[1]), &inputs);
    }
}

#[test]
fn grad_bce_with_logits() {
    let mut r = rng(61);
    for s in [&[6][..], &[2, 3], &[1]] {
        let inputs = [uniform(&mut r, s, -3.0, 3.0), uniform(&mut r, s, 0.0, 1.0)];
        check(|_, v| bce_with_logits(v[0], v[1]), &inputs);
    }
    // Larger logits, still in the range where finite differences are meaningful.
    let inputs = [
        arr1(&[-8.0, 8.0, 12.0, -12.0]).into_dyn(),
        arr1(&[0.0, 1.0, 0.3, 0.9]).into_dyn(),
    ];
    check(|_, v| bce_with_logits(v[0], v[1]), &inputs);
}

#[test]
fn grad_bce_with_logits_weighted() {
    let mut r = rng(63);
    for (s, w_shape) in [(&[6][..], &[6][..]), (&[2, 3], &[1, 3]), (&[2, 3], &[2, 3])] {
        let inputs = [uniform(&mut r, s, -3.0, 3.0), uniform(&mut r, s, 0.0, 1.0)];
        let w = uniform(&mut r, w_shape, 0.5, 4.0);
        check(|_, v| bce_with_logits_weighted(v[0], v[1], &w), &inputs);
        check2(|_, v| bce_with_logits_weighted(v[0], v[1], &w), &inputs);
    }
}

/// The weighted loss against its definition, `mean(w·(−t·ln σ(z) − (1 − t)·ln(1 − σ(z))))`,
/// written out in f64 (moderate logits, where the naive form is accurate), with a weight
/// broadcast along the first axis; and a weight that does not broadcast is refused.
#[test]
fn bce_with_logits_weighted_is_its_definition() {
    let tape = Tape::<f64>::new();
    let (z, t) = (
        arr2(&[[-2.0, 0.5, 3.0], [1.0, -0.25, 0.0]]),
        arr2(&[[0.0, 1.0, 0.3], [0.9, 0.5, 1.0]]),
    );
    let w = arr2(&[[1.0, 11.0, 0.5]]);
    let loss = bce_with_logits_weighted(
        tape.param(z.clone().into_dyn()),
        tape.constant(t.clone().into_dyn()),
        &w.clone().into_dyn(),
    )
    .unwrap();
    let mut expected = 0.0;
    for i in 0..2 {
        for j in 0..3 {
            let p = 1.0 / (1.0 + (-z[[i, j]]).exp());
            expected += w[[0, j]] * (-t[[i, j]] * p.ln() - (1.0 - t[[i, j]]) * (1.0 - p).ln());
        }
    }
    expected /= 6.0;
    assert!(
        (loss.value()[[]] - expected).abs() < 1e-14,
        "{} vs {expected}",
        loss.value()[[]]
    );

    let bad = bce_with_logits_weighted(
        tape.param(z.into_dyn()),
        tape.constant(t.into_dyn()),
        &arr1(&[1.0, 2.0]).into_dyn(),
    );
    let e = bad.unwrap_err();
    assert!(
        matches!(
            e,
            adjoint::Error::ShapeMismatch {
                op: "bce_with_logits_weighted",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn grad_softmax_cross_entropy_one_hot() {
    let mut r = rng(62);
    let cases: &[(usize, usize, &[usize])] = &[(4, 3, &[0, 2, 1, 2]), (1, 5, &[4]), (3, 2, &[1, 1, 0])];
    for &(n, classes, labels) in cases {
        let logits = [uniform(&mut r, &[n, classes], -2.0, 2.0)];
        check(
            move |t, v| softmax_cross_entropy(v[0], one_hot(t, labels, classes)?),
            &logits,
        );
    }
}

#[test]
fn grad_softmax_cross_entropy_soft_targets() {
    let mut r = rng(63);
    for (n, classes) in [(3, 4), (2, 2), (1, 3)] {
        let logits = uniform(&mut r, &[n, classes], -2.0, 2.0);
        let raw = uniform(&mut r, &[n, classes], 0.1, 1.0);
        let sums = raw.sum_axis(ndarray::Axis(1)).insert_axis(ndarray::Axis(1));
        let target = &raw / &sums;
        // With respect to both the logits and the (probability) targets.
        check(|_, v| softmax_cross_entropy(v[0], v[1]), &[logits, target]);
    }
}

#[test]
fn grad_log_softmax_and_softmax() {
    let mut r = rng(64);
    let cases: &[(&[usize], usize)] = &[(&[3, 4], 0), (&[3, 4], 1), (&[2, 3, 4], 2), (&[2, 3, 4], 1), (&[5], 0)];
    for &(s, axis) in cases {
        let x = [uniform(&mut r, s, -2.0, 2.0)];
        check(move |_, v| v[0].log_softmax(axis), &x);
        check(move |_, v| v[0].softmax(axis), &x);
    }
}

// ---------------------------------------------------------------------------------------------
// Fan-out and composites
// ---------------------------------------------------------------------------------------------

fn fan_out<'t>(x: Var<'t, f64>) -> Result<Var<'t, f64>> {
    // x·x + eˣ·x: x reaches the output along four paths.
    x.mul(x)?.add(x.exp()?.mul(x)?)
}

#[test]
fn grad_fan_out() {
    let mut r = rng(70);
    for &s in UNARY_SHAPES {
        check(|_, v| fan_out(v[0]), &[uniform(&mut r, s, -1.5, 1.5)]);
    }
    // One value feeding a reduction, a broadcast and a matmul at once.
    let x = [uniform(&mut r, &[3, 3], -1.0, 1.0)];
    check(
        |_, v| {
            let x = v[0];
            x.matmul(x)?.add(x.sum_axes(&[0], true)?)?.mul(x.tanh()?)?.sum()
        },
        &x,
    );
}

/// `mse(tanh(x·W1 + b1)·W2 + b2, target)`; `v = [x, W1, b1, W2, b2, target]`.
fn mlp_loss<'t>(v: &[Var<'t, f64>]) -> Result<Var<'t, f64>> {
    let h = v[0].matmul(v[1])?.add(v[2])?.tanh()?;
    let out = h.matmul(v[3])?.add(v[4])?;
    mse_loss(out, v[5])
}

fn mlp_inputs(seed: u64) -> Vec<ArrayD<f64>> {
    let mut r = rng(seed);
    vec![
        uniform(&mut r, &[4, 3], -1.0, 1.0),
        uniform(&mut r, &[3, 5], -0.8, 0.8),
        uniform(&mut r, &[5], -0.3, 0.3),
        uniform(&mut r, &[5, 2], -0.8, 0.8),
        uniform(&mut r, &[2], -0.3, 0.3),
        uniform(&mut r, &[4, 2], -1.0, 1.0),
    ]
}

#[test]
fn grad_mlp_all_parameters() {
    check(|_, v| mlp_loss(v), &mlp_inputs(71));
    // Parameters only: data and target as constants.
    let inputs = mlp_inputs(72);
    let (x, target) = (inputs[0].clone(), inputs[5].clone());
    check(
        move |t, v| {
            let all = [
                t.constant(x.clone()),
                v[0],
                v[1],
                v[2],
                v[3],
                t.constant(target.clone()),
            ];
            mlp_loss(&all)
        },
        &inputs[1..5],
    );
}

// ---------------------------------------------------------------------------------------------
// Second order
// ---------------------------------------------------------------------------------------------

#[test]
fn gradgrad_binary() {
    let mut r = rng(80);
    for &(a, b) in &BROADCAST_PAIRS[..5] {
        let inputs = [uniform(&mut r, a, -1.0, 1.0), away(&mut r, b)];
        check2(|_, v| v[0].mul(v[1]), &inputs);
        check2(|_, v| v[0].div(v[1]), &inputs);
        check2(|_, v| v[0].sub(v[1])?.mul(v[0]), &inputs);
    }
}

#[test]
fn gradgrad_unary() {
    let mut r = rng(81);
    for &s in &[&[4][..], &[2, 3]] {
        let x = [uniform(&mut r, s, -1.5, 1.5)];
        check2(|_, v| v[0].exp(), &x);
        check2(|_, v| v[0].tanh(), &x);
        check2(|_, v| v[0].sigmoid(), &x);
        check2(|_, v| v[0].relu()?.mul(v[0]), &[away(&mut r, s)]);
        check2(|_, v| v[0].leaky_relu(0.1)?.mul(v[0]), &[away(&mut r, s)]);
        // The upstream gradient of the activation depends on x too: both inputs of the fused
        // backward op (`g ⊙ slope`) are then differentiated.
        check2(|_, v| v[0].tanh()?.mul(v[0].exp()?), &x);
        check2(|_, v| v[0].sigmoid()?.mul(v[0]), &x);
        let p = [positive(&mut r, s)];
        check2(|_, v| v[0].log(), &p);
        check2(|_, v| v[0].sqrt(), &p);
        for e in [3.0, 0.5, -1.5] {
            check2(move |_, v| v[0].powf(e), &p);
        }
    }
}

#[test]
fn gradgrad_matmul() {
    let mut r = rng(82);
    for &(a, b) in &MATMUL_SHAPES[..6] {
        let inputs = [uniform(&mut r, a, -1.0, 1.0), uniform(&mut r, b, -1.0, 1.0)];
        check2(|_, v| v[0].matmul(v[1]), &inputs);
    }
    // Genuinely non-quadratic: a matmul inside a tanh.
    let inputs = [uniform(&mut r, &[2, 3], -1.0, 1.0), uniform(&mut r, &[3, 2], -1.0, 1.0)];
    check2(|_, v| v[0].matmul(v[1])?.tanh(), &inputs);
}

#[test]
fn gradgrad_losses_and_softmax() {
    let mut r = rng(83);
    let logits = uniform(&mut r, &[3, 4], -2.0, 2.0);
    check2(|_, v| v[0].log_softmax(1), std::slice::from_ref(&logits));
    check2(|_, v| v[0].softmax(0), std::slice::from_ref(&logits));
    check2(
        |t, v| softmax_cross_entropy(v[0], one_hot(t, &[1, 0, 3], 4)?),
        std::slice::from_ref(&logits),
    );
    let z = uniform(&mut r, &[5], -3.0, 3.0);
    let target = uniform(&mut r, &[5], 0.0, 1.0);
    check2(|_, v| bce_with_logits(v[0], v[1]), &[z, target]);
    let a = uniform(&mut r, &[2, 3], -1.0, 1.0);
    let b = uniform(&mut r, &[2, 3], -1.0, 1.0);
    check2(|_, v| mse_loss(v[0].tanh()?, v[1]), &[a, b]);
}

#[test]
fn gradgrad_shape_and_reduce() {
    let mut r = rng(84);
    let x = [uniform(&mut r, &[2, 3], -1.0, 1.0)];
    // Each shape op is linear; a square after it makes the second derivative non-zero.
    check2(|_, v| v[0].permute(&[1, 0])?.exp(), &x);
    check2(|_, v| v[0].reshape(&[3, 2])?.tanh(), &x);
    check2(|_, v| v[0].slice(1, 1, 3)?.pad_axis(0, 1, 0)?.exp(), &x);
    check2(|_, v| concat(&[v[0], v[0].tanh()?], 0)?.exp(), &x);
    check2(|_, v| v[0].sum_axes(&[0], true)?.broadcast_to(&[4, 3])?.tanh(), &x);
    check2(|_, v| v[0].mean_axes(&[1], false)?.sigmoid(), &x);
    check2(|_, v| v[0].exp()?.sum_to(&[3])?.tanh(), &x);
}

#[test]
fn gradgrad_fan_out_and_mlp() {
    let mut r = rng(85);
    check2(|_, v| fan_out(v[0]), &[uniform(&mut r, &[2, 3], -1.0, 1.0)]);
    check2(|_, v| mlp_loss(v), &mlp_inputs(86));
}

/// f(x) = Σ xᵢ³ + x₀·x₁: ∇f = 3x² + (x₁, x₀, 0, ..), H = diag(6x) + (e₀e₁ᵀ + e₁e₀ᵀ).
#[test]
fn hessian_vector_product_by_hand() -> Result<()> {
    let xv = [0.7, -1.3, 0.4, 2.1];
    let vv = [0.5, -0.2, 1.5, -0.9];
    let tape = Tape::<f64>::new();
    let x = tape.param(arr1(&xv).into_dyn());
    let cubes = x.mul(x)?.mul(x)?.sum()?;
    let cross = x.slice(0, 0, 1)?.mul(x.slice(0, 1, 2)?)?.sum()?;
    let f = cubes.add(cross)?;
    let expected_f: f64 = xv.iter().map(|a| a * a * a).sum::<f64>() + xv[0] * xv[1];
    assert_abs_diff_eq!(scalar(f), expected_f, epsilon = 1e-12);

    let g = tape.backward_graph(f, None)?.get(x).expect("f depends on x");
    let expected_g: Vec<f64> = (0..4)
        .map(|i| 3.0 * xv[i] * xv[i] + [xv[1], xv[0], 0.0, 0.0][i])
        .collect();
    for (a, b) in g.value().iter().zip(&expected_g) {
        assert_abs_diff_eq!(*a, *b, epsilon = 1e-12);
    }

    let v = tape.constant(arr1(&vv).into_dyn());
    let gv = g.mul(v)?.sum()?;
    let hv = tape.backward(gv)?;
    let expected_hv: Vec<f64> = (0..4)
        .map(|i| 6.0 * xv[i] * vv[i] + [vv[1], vv[0], 0.0, 0.0][i])
        .collect();
    for (a, b) in hv[x].iter().zip(&expected_hv) {
        assert_abs_diff_eq!(*a, *b, epsilon = 1e-12);
    }
    // Not vacuous: the cross term matters.
    assert!((hv[x][[0]] - 6.0 * xv[0] * vv[0]).abs() > 0.1);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Forward values against independent computations
// ---------------------------------------------------------------------------------------------

#[test]
fn forward_bce_with_logits_large_logits() {
    let z = [-1000.0, -30.0, 0.0, 30.0, 1000.0, 2.5, 1000.0, -1000.0];
    let t = [0.0, 1.0, 0.5, 0.0, 1.0, 0.3, 0.0, 1.0];
    // Hand values: ln(1 + e^-1000) = 0 in f64; |z| = 30 leaves e^-30 ≈ 9.36e-14.
    let e30 = (-30.0f64).exp();
    let sig = 1.0 / (1.0 + (-2.5f64).exp());
    let per = [
        0.0,                                      // z=-1000, t=0
        30.0 + e30,                               // z=-30, t=1: -ln σ(-30) = ln(1 + e^30)
        std::f64::consts::LN_2,                   // z=0
        30.0 + e30,                               // z=30, t=0: -ln(1-σ(30))
        0.0,                                      // z=1000, t=1
        -0.3 * sig.ln() - 0.7 * (1.0 - sig).ln(), // moderate: the textbook formula
        1000.0,                                   // z=1000, t=0
        1000.0,                                   // z=-1000, t=1
    ];
    let expected = per.iter().sum::<f64>() / 8.0;
    let tape = Tape::<f64>::new();
    let logits = tape.param(arr1(&z).into_dyn());
    let target = tape.constant(arr1(&t).into_dyn());
    let loss = bce_with_logits(logits, target).unwrap();
    assert_eq!(loss.shape(), Vec::<usize>::new());
    assert!(scalar(loss).is_finite());
    assert_abs_diff_eq!(scalar(loss), expected, epsilon = 1e-9);
    // Gradient (σ(z) − t)/n stays finite too: exactly representable at |z| = 1000.
    let g = tape.backward(loss).unwrap();
    let expected_g = [0.0, -1.0, 0.0, 1.0, 0.0, sig - 0.3, 1.0, -1.0].map(|v: f64| v / 8.0);
    for (a, b) in g[logits].iter().zip(expected_g) {
        assert!(a.is_finite());
        assert_abs_diff_eq!(*a, b, epsilon = 1e-9);
    }

    // f32 at the same logits.
    let tape = Tape::<f32>::new();
    let logits = tape.param(arr1(&z.map(|v| v as f32)).into_dyn());
    let target = tape.constant(arr1(&t.map(|v| v as f32)).into_dyn());
    let loss = bce_with_logits(logits, target).unwrap();
    let value = *loss.value().iter().next().unwrap();
    assert!(value.is_finite());
    assert!((value as f64 - expected).abs() < 1e-3 * expected);
}

#[test]
fn forward_softmax_rows_sum_to_one() {
    let mut r = rng(90);
    let x = uniform(&mut r, &[4, 5], -3.0, 3.0);
    let tape = Tape::<f64>::new();
    let s = tape.param(x.clone()).softmax(1).unwrap().value();
    for i in 0..4 {
        let denom: f64 = (0..5).map(|j| x[[i, j]].exp()).sum();
        let row_sum: f64 = (0..5).map(|j| s[[i, j]]).sum();
        assert_abs_diff_eq!(row_sum, 1.0, epsilon = 1e-12);
        for j in 0..5 {
            assert_abs_diff_eq!(s[[i, j]], x[[i, j]].exp() / denom, epsilon = 1e-12);
        }
    }
    // Along axis 0: columns sum to 1.
    let s0 = tape.param(x.clone()).softmax(0).unwrap().value();
    for j in 0..5 {
        assert_abs_diff_eq!((0..4).map(|i| s0[[i, j]]).sum::<f64>(), 1.0, epsilon = 1e-12);
    }
}

#[test]
fn forward_log_softmax_no_overflow() {
    let tape = Tape::<f64>::new();
    let x = tape.param(arr2(&[[1000.0, 1000.0, 999.0], [-1000.0, 0.0, 1000.0]]).into_dyn());
    let y = x.log_softmax(1).unwrap().value();
    // Row 0: logsumexp = 1000 + ln(2 + e^-1).
    let lse0 = (2.0 + (-1.0f64).exp()).ln();
    let expected = [[-lse0, -lse0, -1.0 - lse0], [-2000.0, -1000.0, 0.0]];
    for i in 0..2 {
        for j in 0..3 {
            assert!(y[[i, j]].is_finite());
            assert_abs_diff_eq!(y[[i, j]], expected[i][j], epsilon = 1e-9);
        }
    }
    // Its gradient is finite too (softmax of the logits).
    let loss = x.log_softmax(1).unwrap().slice(1, 0, 1).unwrap().sum().unwrap();
    let g = tape.backward(loss).unwrap();
    assert!(g[x].iter().all(|v| v.is_finite()));
    // d/dx_j of y_{i0} = δ_{j0} − softmax_j.
    let p = [1.0 / (2.0 + (-1.0f64).exp()), (-1.0f64).exp() / (2.0 + (-1.0f64).exp())];
    assert_abs_diff_eq!(g[x][[0, 0]], 1.0 - p[0], epsilon = 1e-12);
    assert_abs_diff_eq!(g[x][[0, 1]], -p[0], epsilon = 1e-12);
    assert_abs_diff_eq!(g[x][[0, 2]], -p[1], epsilon = 1e-12);
    assert_abs_diff_eq!(g[x][[1, 2]], -1.0, epsilon = 1e-12);
}

#[test]
fn forward_sigmoid_tanh_extremes() {
    let tape = Tape::<f64>::new();
    let x = tape.param(arr1(&[-1000.0, -2.0, 0.0, 0.5, 1000.0]).into_dyn());
    let s = x.sigmoid().unwrap().value();
    let expected = [0.0, 1.0 / (1.0 + 2.0f64.exp()), 0.5, 1.0 / (1.0 + (-0.5f64).exp()), 1.0];
    for (a, b) in s.iter().zip(expected) {
        assert!(a.is_finite());
        assert_abs_diff_eq!(*a, b, epsilon = 1e-15);
    }
    let th = x.tanh().unwrap().value();
    for (a, b) in th.iter().zip([-1.0, (-2.0f64).tanh(), 0.0, 0.5f64.tanh(), 1.0]) {
        assert_abs_diff_eq!(*a, b, epsilon = 1e-15);
    }
    let g = tape.backward(x.sigmoid().unwrap().sum().unwrap()).unwrap();
    assert!(g[x].iter().all(|v| v.is_finite()));
    assert_abs_diff_eq!(g[x][[2]], 0.25, epsilon = 1e-15);
}

#[test]
fn forward_unary_values() {
    let xs = [0.3, 1.0, 2.5];
    let tape = Tape::<f64>::new();
    let x = tape.param(arr1(&xs).into_dyn());
    type F = fn(f64) -> f64;
    let cases: Vec<(Var<'_, f64>, F)> = vec![
        (x.exp().unwrap(), |a| a.exp()),
        (x.log().unwrap(), |a| a.ln()),
        (x.sqrt().unwrap(), |a| a.sqrt()),
        (x.powf(1.5).unwrap(), |a| a * a.sqrt()),
        (x.neg().unwrap(), |a| -a),
        (x.add_scalar(2.0).unwrap(), |a| a + 2.0),
        (x.mul_scalar(-3.0).unwrap(), |a| -3.0 * a),
        (x.add_scalar(-1.0).unwrap().relu().unwrap(), |a| {
            if a > 1.0 { a - 1.0 } else { 0.0 }
        }),
        (x.add_scalar(-1.0).unwrap().leaky_relu(0.1).unwrap(), |a| {
            if a > 1.0 { a - 1.0 } else { 0.1 * (a - 1.0) }
        }),
    ];
    for (y, f) in &cases {
        let values = y.value();
        assert_eq!(values.len(), xs.len());
        for (a, &b) in values.iter().zip(&xs) {
            assert_abs_diff_eq!(*a, f(b), epsilon = 1e-12);
        }
    }
}

/// Naive index arithmetic for NumPy broadcasting.
fn broadcast_index(out: &[usize], shape: &[usize]) -> Vec<usize> {
    let lead = out.len() - shape.len();
    shape
        .iter()
        .enumerate()
        .map(|(i, &n)| if n == 1 { 0 } else { out[lead + i] })
        .collect()
}

fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = i % shape[d];
        i /= shape[d];
    }
    idx
}

#[test]
fn forward_broadcast_binary_naive() {
    let mut r = rng(91);
    let cases: &[(&[usize], &[usize], &[usize])] = &[
        (&[4, 1, 5], &[3, 1], &[4, 3, 5]),
        (&[2, 3], &[3], &[2, 3]),
        (&[], &[2, 2], &[2, 2]),
        (&[2, 1], &[1, 3], &[2, 3]),
    ];
    for &(sa, sb, so) in cases {
        let a = uniform(&mut r, sa, -1.0, 1.0);
        let b = away(&mut r, sb);
        let tape = Tape::<f64>::new();
        let (va, vb) = (tape.param(a.clone()), tape.param(b.clone()));
        let outs = [
            va.add(vb).unwrap(),
            va.sub(vb).unwrap(),
            va.mul(vb).unwrap(),
            va.div(vb).unwrap(),
        ];
        let fs: [fn(f64, f64) -> f64; 4] = [|x, y| x + y, |x, y| x - y, |x, y| x * y, |x, y| x / y];
        for (out, f) in outs.iter().zip(fs) {
            let v = out.value();
            assert_eq!(v.shape(), so);
            for flat in 0..v.len() {
                let idx = unravel(flat, so);
                let x = a[IxDyn(&broadcast_index(&idx, sa))];
                let y = b[IxDyn(&broadcast_index(&idx, sb))];
                assert_abs_diff_eq!(v[IxDyn(&idx)], f(x, y), epsilon = 1e-14);
            }
        }
    }
}

#[test]
fn forward_matmul_naive() {
    let mut r = rng(92);
    for &(sa, sb) in MATMUL_SHAPES {
        let a = uniform(&mut r, sa, -1.0, 1.0);
        let b = uniform(&mut r, sb, -1.0, 1.0);
        let tape = Tape::<f64>::new();
        let y = tape.param(a.clone()).matmul(tape.param(b.clone())).unwrap().value();
        let (m, k) = (sa[sa.len() - 2], sa[sa.len() - 1]);
        let n = sb[sb.len() - 1];
        let (ba, bb) = (&sa[..sa.len() - 2], &sb[..sb.len() - 2]);
        let nb = ba.len().max(bb.len());
        let batch: Vec<usize> = (0..nb)
            .map(|i| {
                let get = |s: &[usize]| if i + s.len() >= nb { s[i + s.len() - nb] } else { 1 };
                get(ba).max(get(bb))
            })
            .collect();
        let mut expected_shape = batch.clone();
        expected_shape.extend([m, n]);
        assert_eq!(y.shape(), &expected_shape[..]);
        let count: usize = batch.iter().product();
        for bi in 0..count {
            let idx = unravel(bi, &batch);
            let ia = broadcast_index(&idx, ba);
            let ib = broadcast_index(&idx, bb);
            for i in 0..m {
                for j in 0..n {
                    let mut s = 0.0;
                    for p in 0..k {
                        let ai: Vec<usize> = ia.iter().copied().chain([i, p]).collect();
                        let bj: Vec<usize> = ib.iter().copied().chain([p, j]).collect();
                        s += a[IxDyn(&ai)] * b[IxDyn(&bj)];
                    }
                    let yi: Vec<usize> = idx.iter().copied().chain([i, j]).collect();
                    assert_abs_diff_eq!(y[IxDyn(&yi)], s, epsilon = 1e-12);
                }
            }
        }
    }
}

/// Every subset of axes of a 4-D value, with and without `keepdims`, on a contiguous value
/// (where neighbouring summed axes are merged into one) and on a transposed one (where they
/// are not), against a loop over every element.
#[test]
fn forward_sum_axes_every_subset_naive() {
    let mut r = rng(94);
    let base = uniform(&mut r, &[2, 3, 4, 5], -1.0, 1.0);
    let transposed = base.clone().permuted_axes(IxDyn(&[3, 1, 0, 2]));
    for x in [base, transposed] {
        let shape = x.shape().to_vec();
        let tape = Tape::<f64>::new();
        let v = tape.constant(x.clone());
        for subset in 0..16usize {
            let axes: Vec<usize> = (0..4).filter(|a| subset & (1 << a) != 0).collect();
            for keepdims in [false, true] {
                let got = v.sum_axes(&axes, keepdims).unwrap().value();
                let kept_shape: Vec<usize> = (0..4).map(|a| if axes.contains(&a) { 1 } else { shape[a] }).collect();
                let mut want = ArrayD::<f64>::zeros(IxDyn(&kept_shape));
                for (index, &value) in x.indexed_iter() {
                    let to: Vec<usize> = (0..4).map(|a| if axes.contains(&a) { 0 } else { index[a] }).collect();
                    want[IxDyn(&to)] += value;
                }
                let want_shape: Vec<usize> = (0..4)
                    .filter(|a| keepdims || !axes.contains(a))
                    .map(|a| kept_shape[a])
                    .collect();
                let want = want.into_shape_with_order(IxDyn(&want_shape)).unwrap();
                assert_eq!(got.shape(), want.shape(), "axes {axes:?} keepdims {keepdims}");
                for (g, w) in got.iter().zip(want.iter()) {
                    assert_abs_diff_eq!(g, w, epsilon = 1e-12);
                }
            }
        }
    }
}

#[test]
fn forward_reductions_naive() {
    let mut r = rng(93);
    let x = uniform(&mut r, &[2, 3, 4], -1.0, 1.0);
    let tape = Tape::<f64>::new();
    let v = tape.param(x.clone());
    let total: f64 = x.iter().sum();
    assert_abs_diff_eq!(scalar(v.sum().unwrap()), total, epsilon = 1e-12);
    assert_abs_diff_eq!(scalar(v.mean().unwrap()), total / 24.0, epsilon = 1e-12);
    // Over axes [0, 2], keepdims and not.
    let s = v.sum_axes(&[2, 0], false).unwrap().value();
    let sk = v.sum_axes(&[0, 2], true).unwrap().value();
    let m = v.mean_axes(&[0, 2], true).unwrap().value();
    assert_eq!(s.shape(), &[3]);
    assert_eq!(sk.shape(), &[1, 3, 1]);
    for j in 0..3 {
        let mut acc = 0.0;
        for i in 0..2 {
            for l in 0..4 {
                acc += x[[i, j, l]];
            }
        }
        assert_abs_diff_eq!(s[[j]], acc, epsilon = 1e-12);
        assert_abs_diff_eq!(sk[[0, j, 0]], acc, epsilon = 1e-12);
        assert_abs_diff_eq!(m[[0, j, 0]], acc / 8.0, epsilon = 1e-12);
    }
    // sum_to([3, 1]) sums the leading axis and the last.
    let st = v.sum_to(&[3, 1]).unwrap().value();
    assert_eq!(st.shape(), &[3, 1]);
    for j in 0..3 {
        assert_abs_diff_eq!(st[[j, 0]], s[[j]], epsilon = 1e-12);
    }
    // broadcast_to copies.
    let b = tape
        .param(arr2(&[[1.0], [2.0]]).into_dyn())
        .broadcast_to(&[3, 2, 2])
        .unwrap()
        .value();
    for i in 0..3 {
        for k in 0..2 {
            assert_eq!(b[[i, 0, k]], 1.0);
            assert_eq!(b[[i, 1, k]], 2.0);
        }
    }
}

#[test]
fn forward_shape_ops_naive() {
    let x = ArrayD::from_shape_fn(IxDyn(&[2, 3, 4]), |i| (100 * i[0] + 10 * i[1] + i[2]) as f64);
    let tape = Tape::<f64>::new();
    let v = tape.param(x.clone());

    let p = v.permute(&[2, 0, 1]).unwrap().value();
    assert_eq!(p.shape(), &[4, 2, 3]);
    for a in 0..4 {
        for b in 0..2 {
            for c in 0..3 {
                assert_eq!(p[[a, b, c]], x[[b, c, a]]);
            }
        }
    }
    let t = v.transpose(0, 2).unwrap().value();
    assert_eq!(t.shape(), &[4, 3, 2]);
    assert_eq!(t[[3, 1, 0]], 13.0);

    // A matrix transpose is copied tile by tile: sizes that leave partial tiles on both axes,
    // and a single row and column.
    for (rows, cols) in [(70, 33), (1, 45), (45, 1), (32, 64)] {
        let m = ArrayD::from_shape_fn(IxDyn(&[rows, cols]), |i| (1000 * i[0] + i[1]) as f64);
        let t = tape.param(m).transpose(0, 1).unwrap().value();
        assert_eq!(t.shape(), &[cols, rows]);
        for c in 0..cols {
            for r in 0..rows {
                assert_eq!(t[[c, r]], (1000 * r + c) as f64, "[{rows}, {cols}] at ({r}, {c})");
            }
        }
    }

    // Reshape keeps row-major order, also after a permute (non-trivial memory order).
    let rp = v.permute(&[2, 0, 1]).unwrap().reshape(&[4, 6]).unwrap().value();
    assert_eq!(rp[[1, 4]], x[[1, 1, 1]]);
    let f = v.flatten(1, 2).unwrap().value();
    assert_eq!(f.shape(), &[2, 12]);
    assert_eq!(f[[1, 7]], 113.0);

    let s = v.slice(2, 1, 3).unwrap().value();
    assert_eq!(s.shape(), &[2, 3, 2]);
    assert_eq!(s[[1, 2, 0]], 121.0);
    assert_eq!(s[[0, 0, 1]], 2.0);
    // Every value, along each axis, and an empty range.
    for (axis, start, end) in [(0, 1, 2), (1, 0, 2), (2, 1, 4), (1, 2, 2)] {
        let got = v.slice(axis, start, end).unwrap().value();
        let expected = x.slice_axis(Axis(axis), (start..end).into());
        assert_eq!(*got, expected, "slice({axis}, {start}, {end})");
    }

    let pad = v.pad_axis(1, 1, 2).unwrap().value();
    assert_eq!(pad.shape(), &[2, 6, 4]);
    assert_eq!(pad[[1, 0, 3]], 0.0);
    assert_eq!(pad[[1, 1, 3]], 103.0);
    assert_eq!(pad[[1, 3, 2]], 122.0);
    assert_eq!(pad[[0, 4, 0]], 0.0);
    assert_eq!(pad[[0, 5, 1]], 0.0);

    let a = tape.param(arr2(&[[1.0, 2.0], [3.0, 4.0]]).into_dyn());
    let b = tape.param(arr2(&[[5.0], [6.0]]).into_dyn());
    let c1 = concat(&[a, b, a], 1).unwrap().value();
    assert_eq!(
        *c1,
        arr2(&[[1.0, 2.0, 5.0, 1.0, 2.0], [3.0, 4.0, 6.0, 3.0, 4.0]]).into_dyn()
    );
    let c0 = concat(&[a, b.transpose(0, 1).unwrap()], 0).unwrap().value();
    assert_eq!(*c0, arr2(&[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]).into_dyn());
}

#[test]
fn forward_losses_naive() {
    let mut r = rng(94);
    let pred = uniform(&mut r, &[3, 4], -1.0, 1.0);
    let target = uniform(&mut r, &[3, 4], -1.0, 1.0);
    let tape = Tape::<f64>::new();
    let (p, t) = (tape.param(pred.clone()), tape.constant(target.clone()));
    let mse: f64 = pred
        .iter()
        .zip(target.iter())
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f64>()
        / 12.0;
    assert_abs_diff_eq!(scalar(mse_loss(p, t).unwrap()), mse, epsilon = 1e-12);

    // Cross-entropy with hard labels: mean of −ln softmax(x)[label].
    let labels = [2, 0, 3];
    let oh = one_hot(&tape, &labels, 4).unwrap();
    assert_eq!(
        *oh.value(),
        arr2(&[[0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]).into_dyn()
    );
    let ce = softmax_cross_entropy(p, oh).unwrap();
    let mut expected = 0.0;
    for (i, &l) in labels.iter().enumerate() {
        let denom: f64 = (0..4).map(|j| pred[[i, j]].exp()).sum();
        expected -= (pred[[i, l]].exp() / denom).ln();
    }
    expected /= 3.0;
    assert_abs_diff_eq!(scalar(ce), expected, epsilon = 1e-12);
    // Its gradient is (softmax − onehot)/n.
    let g = tape.backward(ce).unwrap();
    for i in 0..3 {
        let denom: f64 = (0..4).map(|j| pred[[i, j]].exp()).sum();
        for j in 0..4 {
            let want = (pred[[i, j]].exp() / denom - if j == labels[i] { 1.0 } else { 0.0 }) / 3.0;
            assert_abs_diff_eq!(g[p][[i, j]], want, epsilon = 1e-12);
        }
    }
}
