//! Upsampling (`adjoint::ops::upsample`, `adjoint::nn::Upsample`) against PyTorch and against
//! independent computations:
//!
//! - values and input gradients against PyTorch float64 (and a few float32) fixtures from
//!   `tests/fixtures/upsample_reference.json`, written by `tools/gen_upsample_fixtures.py`;
//! - NaN and ±∞ in the input and in the upstream gradient, as PyTorch propagates them;
//! - the nearest index maps of PyTorch in f32 and f64 (its kernels round coordinates to f32);
//! - where PyTorch's own kernels disagree (its "quirks"), adjoint follows its main forward
//!   kernel and its gradient stays the true adjoint;
//! - finite differences, first and second order, over a spread of settings; the adjoint
//!   identity `⟨U·x, g⟩ = ⟨x, Uᵀ·g⟩`; integer factors against a naive loop;
//! - nearest ×s as a transposed conv with a kernel of ones (the "resize-conv" view);
//! - every invalid setting refused by name, without panicking, before anything is recorded;
//! - the layer.
//!
//! No Python is needed to run this.

use std::panic::{AssertUnwindSafe, catch_unwind};

use adjoint::gradcheck::{GradcheckOptions, TapeFn, gradcheck, gradgradcheck};
use adjoint::nn::{Conv2d, Module, Sequential, Upsample};
use adjoint::ops::conv::{ConvOptions, ConvTransposeOptions, conv_transpose};
use adjoint::ops::upsample::{
    Spatial, UpsampleMode, UpsampleOptions, interpolate, upsample_linear, upsample_nearest, upsample_nearest_exact,
    upsample_output_shape,
};
use adjoint::{Error, Float, Result, Tape, Var};
use ndarray::{ArrayD, Dimension, IxDyn};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Deserialize;

// ------------------------------------------------------------------------------------ fixtures

#[path = "support/num.rs"]
mod num;

#[path = "support/tensor.rs"]
mod tensor;
use tensor::Tensor;

#[derive(Deserialize, Clone, Debug)]
#[serde(untagged)]
enum OneOrEach<T> {
    One(T),
    Each(Vec<T>),
}

impl<T: Clone> OneOrEach<T> {
    fn spatial(&self) -> Spatial<T> {
        match self {
            OneOrEach::One(v) => Spatial::All(v.clone()),
            OneOrEach::Each(v) => Spatial::Each(v.clone()),
        }
    }
}

/// The `F.interpolate` arguments of a fixture.
#[derive(Deserialize, Clone, Debug)]
struct Settings {
    mode: String,
    size: Option<OneOrEach<usize>>,
    scale_factor: Option<OneOrEach<f64>>,
    align_corners: Option<bool>,
    recompute_scale_factor: Option<bool>,
}

impl Settings {
    fn mode(&self) -> UpsampleMode {
        match self.mode.as_str() {
            "nearest" => UpsampleMode::Nearest,
            "nearest-exact" => UpsampleMode::NearestExact,
            "linear" => UpsampleMode::Linear,
            other => panic!("unknown mode {other}"),
        }
    }

    fn options(&self) -> UpsampleOptions {
        UpsampleOptions {
            size: self.size.as_ref().map(OneOrEach::spatial),
            scale_factor: self.scale_factor.as_ref().map(OneOrEach::spatial),
            align_corners: self.align_corners,
            recompute_scale_factor: self.recompute_scale_factor,
        }
    }
}

#[derive(Deserialize)]
struct Case {
    #[serde(flatten)]
    settings: Settings,
    dtype: String,
    x: Tensor,
    y: Tensor,
    g: Tensor,
    grad_x: Tensor,
}

#[derive(Deserialize)]
struct NonFinite {
    #[serde(flatten)]
    settings: Settings,
    x: Tensor,
    y: Tensor,
    g: Tensor,
    grad_x: Tensor,
    g_nonfinite: Tensor,
    grad_x_nonfinite: Tensor,
}

#[derive(Deserialize)]
struct IndexMap {
    #[serde(flatten)]
    settings: Settings,
    dtype: String,
    n: usize,
    src: Vec<usize>,
}

#[derive(Deserialize)]
struct Quirk {
    #[serde(flatten)]
    settings: Settings,
    name: String,
    x: Tensor,
    y: Tensor,
    y_1d: Tensor,
    g: Tensor,
    grad_x: Tensor,
}

#[derive(Deserialize)]
struct Fixtures {
    cases: Vec<Case>,
    nonfinite: Vec<NonFinite>,
    maps: Vec<IndexMap>,
    quirks: Vec<Quirk>,
}

fn fixtures() -> Fixtures {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/upsample_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

// ------------------------------------------------------------------------------------- helpers

/// `y = interpolate(x)` and `grad_x` for the upstream gradient `g`, computed in `T`.
fn run<T: Float>(s: &Settings, x: &ArrayD<f64>, g: &ArrayD<f64>) -> Result<(ArrayD<f64>, ArrayD<f64>)> {
    let tape = Tape::<T>::new();
    let xv = tape.param(x.mapv(T::of));
    let y = interpolate(xv, s.mode(), &s.options())?;
    let grads = tape.backward_with(y, g.mapv(T::of))?;
    Ok((y.value().mapv(Float::to_f64), grads[xv].mapv(Float::to_f64)))
}

/// Equal as PyTorch's values: NaN where it has NaN, the same infinities, finite values within
/// `tol` (absolute, for values of order 1).
#[track_caller]
fn same(actual: &ArrayD<f64>, expected: &ArrayD<f64>, tol: f64, what: &str) {
    assert_eq!(actual.shape(), expected.shape(), "{what}: shape");
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let ok = if e.is_nan() {
            a.is_nan()
        } else if e.is_infinite() {
            a == e
        } else {
            (a - e).abs() <= tol * e.abs().max(1.0)
        };
        assert!(ok, "{what}: element {i} is {a:?}, PyTorch gives {e:?}");
    }
}

fn dot(a: &ArrayD<f64>, b: &ArrayD<f64>) -> f64 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

fn random(rng: &mut StdRng, shape: &[usize]) -> ArrayD<f64> {
    ArrayD::from_shape_simple_fn(IxDyn(shape), || rng.random_range(-1.0..1.0))
}

fn opts(seed: u64) -> GradcheckOptions {
    GradcheckOptions {
        seed,
        ..GradcheckOptions::default()
    }
}

/// First- and second-order finite-difference checks of `f` at `x`, every element.
#[track_caller]
fn check_both(f: impl TapeFn, x: &ArrayD<f64>, what: &str) {
    let report = gradcheck(&f, std::slice::from_ref(x), &opts(3)).unwrap();
    assert_eq!(report.checked, x.len(), "{what}");
    assert!(report.passed, "gradcheck {what}: {report}");
    let report = gradgradcheck(&f, std::slice::from_ref(x), &opts(5)).unwrap();
    assert!(report.passed, "gradgradcheck {what}: {report}");
}

// ------------------------------------------------------------------------ PyTorch: the fixtures

#[test]
fn values_and_gradients_match_pytorch() {
    let fixtures = fixtures();
    let (mut f64_cases, mut f32_cases) = (0, 0);
    for case in &fixtures.cases {
        let s = &case.settings;
        let what = format!("{s:?} on {:?} ({})", case.x.shape, case.dtype);
        let (x, g) = (case.x.array(), case.g.array());
        let (y, grad_x) = match case.dtype.as_str() {
            "f64" => {
                f64_cases += 1;
                run::<f64>(s, &x, &g).unwrap()
            }
            _ => {
                f32_cases += 1;
                run::<f32>(s, &x, &g).unwrap()
            }
        };
        // f32: within 8 units in the last place of values of order 1. Each value is a sum of a
        // few products (a gradient of up to ~9 here), rounded once per term in f32: PyTorch
        // sums the 2-D gradient cell by cell, adjoint axis by axis, so the roundings differ.
        let tol = if case.dtype == "f64" {
            1e-10
        } else {
            8.0 * f32::EPSILON as f64
        };
        same(&y, &case.y.array(), tol, &format!("y of {what}"));
        same(&grad_x, &case.grad_x.array(), tol, &format!("grad_x of {what}"));
    }
    assert!(
        f64_cases >= 80 && f32_cases >= 6,
        "{f64_cases} f64 and {f32_cases} f32 cases"
    );
}

#[test]
fn the_fixtures_cover_every_setting() {
    let fixtures = fixtures();
    let has = |f: &dyn Fn(&Case) -> bool| fixtures.cases.iter().any(f);
    for mode in ["nearest", "nearest-exact", "linear"] {
        for rank in 1..=3 {
            let of = |c: &Case| c.settings.mode == mode && c.x.shape.len() == rank + 2;
            assert!(
                has(&|c| of(c) && c.settings.size.is_some()),
                "{mode} {rank}-D with a size"
            );
            assert!(
                has(&|c| of(c) && c.settings.scale_factor.is_some()),
                "{mode} {rank}-D with a scale"
            );
        }
    }
    for ac in [Some(false), Some(true), None] {
        assert!(has(&|c| c.settings.align_corners == ac), "align_corners {ac:?}");
    }
    let axes = |c: &Case| {
        c.x.shape[2..]
            .iter()
            .zip(&c.y.shape[2..])
            .map(|(&i, &o)| (i, o))
            .collect::<Vec<_>>()
    };
    assert!(has(&|c| axes(c).iter().any(|&(i, o)| o < i)), "shrinking");
    assert!(
        has(&|c| axes(c).iter().any(|&(i, o)| o > i && o % i != 0)),
        "non-integer growth"
    );
    assert!(has(&|c| axes(c).iter().any(|&(_, o)| o == 1)), "an output size of 1");
    assert!(has(&|c| axes(c).iter().any(|&(i, _)| i == 1)), "an input size of 1");
    assert!(
        has(&|c| c.settings.recompute_scale_factor == Some(true)),
        "recompute_scale_factor"
    );
    // 2-D outputs above 128 rows + columns run PyTorch's generic kernel, smaller ones another.
    assert!(
        has(&|c| c.y.shape.len() == 4 && c.y.shape[2] + c.y.shape[3] > 128),
        "large 2-D"
    );
}

#[test]
fn nan_and_infinity_propagate_as_in_pytorch() {
    for case in fixtures().nonfinite {
        let s = &case.settings;
        let what = format!("{s:?} on {:?}", case.x.shape);
        let (y, grad_x) = run::<f64>(s, &case.x.array(), &case.g.array()).unwrap();
        same(&y, &case.y.array(), 1e-10, &format!("y of {what}"));
        assert!(y.iter().any(|v| v.is_nan()), "{what}: the NaN input must show");
        // The gradient does not depend on x: finite, whatever x holds.
        same(&grad_x, &case.grad_x.array(), 1e-10, &format!("grad_x of {what}"));
        let zeros = ArrayD::zeros(case.x.array().raw_dim());
        let (_, grad_bad) = run::<f64>(s, &zeros, &case.g_nonfinite.array()).unwrap();
        same(
            &grad_bad,
            &case.grad_x_nonfinite.array(),
            1e-10,
            &format!("grad_x for a non-finite g, {what}"),
        );
    }
}

#[test]
fn nearest_index_maps_match_pytorch_in_f32_and_f64() {
    let fixtures = fixtures();
    let mut differ = 0;
    for m in &fixtures.maps {
        let x = ArrayD::from_shape_fn(IxDyn(&[1, 1, m.n]), |i| i[2] as f64);
        let y = if m.dtype == "f64" {
            let tape = Tape::<f64>::new();
            interpolate(tape.constant(x), m.settings.mode(), &m.settings.options())
                .unwrap()
                .value()
                .mapv(|v| v as usize)
        } else {
            let tape = Tape::<f32>::new();
            interpolate(
                tape.constant(x.mapv(|v| v as f32)),
                m.settings.mode(),
                &m.settings.options(),
            )
            .unwrap()
            .value()
            .mapv(|v| v as usize)
        };
        let got: Vec<usize> = y.iter().copied().collect();
        assert_eq!(got, m.src, "{} {:?} of n = {}", m.dtype, m.settings, m.n);
        differ += usize::from(
            m.dtype == "f32"
                && fixtures.maps.iter().any(|o| {
                    o.dtype == "f64"
                        && o.n == m.n
                        && format!("{:?}", o.settings) == format!("{:?}", m.settings)
                        && o.src != m.src
                }),
        );
    }
    assert!(
        fixtures.maps.len() > 1000 && differ >= 15,
        "{} maps, {differ} differ by dtype",
        fixtures.maps.len()
    );
}

/// Where PyTorch's kernels disagree with each other, adjoint's forward is PyTorch's main kernel
/// (1-D `F.interpolate` axis by axis), and its gradient is the adjoint of that forward — which
/// PyTorch's gradient there is not.
#[test]
fn pytorch_quirks_adjoint_follows_the_main_kernel_and_stays_adjoint() {
    let quirks = fixtures().quirks;
    assert_eq!(quirks.len(), 4);
    for q in &quirks {
        let (x, g) = (q.x.array(), q.g.array());
        let (y, grad_x) = run::<f64>(&q.settings, &x, &g).unwrap();
        same(&y, &q.y_1d.array(), 0.0, &format!("y of {}", q.name));
        // ⟨g, U·x⟩ = ⟨Uᵀ·g, x⟩ for ours ...
        assert!((dot(&g, &y) - dot(&grad_x, &x)).abs() < 1e-12, "{}", q.name);
        let torch_y = q.y.array();
        let torch_grad = q.grad_x.array();
        if q.name.starts_with("2-D") {
            // ... PyTorch's small-output 2-D forward is the legacy one, consistent with its
            // backward but not with its main kernel.
            assert_ne!(y, torch_y, "{}", q.name);
            assert!((dot(&g, &torch_y) - dot(&torch_grad, &x)).abs() < 1e-12, "{}", q.name);
        } else {
            // ... while PyTorch's gradient is not the adjoint of its own forward.
            same(&y, &torch_y, 0.0, &format!("PyTorch's y of {}", q.name));
            assert!((dot(&g, &torch_y) - dot(&torch_grad, &x)).abs() > 1e-3, "{}", q.name);
        }
    }
}

// ------------------------------------------------------------------------------ finite differences

/// Settings of the finite-difference checks: `(x shape, mode, options)`.
fn spread() -> Vec<(Vec<usize>, UpsampleMode, UpsampleOptions)> {
    let o = UpsampleOptions::new;
    let mut out = Vec::new();
    for mode in [UpsampleMode::Nearest, UpsampleMode::NearestExact] {
        out.extend([
            (vec![2, 2, 3], mode, o().scale_factor(2.0)),
            (vec![1, 2, 4], mode, o().scale_factor(1.7)),
            (vec![1, 1, 7], mode, o().size(3)),
            (vec![1, 2, 2, 3], mode, o().scale_factor([2.0, 3.0])),
            (vec![1, 1, 3, 4], mode, o().scale_factor([2.5, 0.5])),
            (vec![1, 1, 3, 3], mode, o().size([4, 2])),
            (vec![1, 1, 2, 2, 3], mode, o().scale_factor(2.0)),
            (vec![1, 1, 2, 3, 2], mode, o().size([3, 2, 5])),
        ]);
    }
    for ac in [false, true] {
        let l = UpsampleMode::Linear;
        out.extend([
            (vec![2, 2, 3], l, o().scale_factor(2.0).align_corners(ac)),
            (vec![1, 2, 4], l, o().scale_factor(1.7).align_corners(ac)),
            (vec![1, 1, 7], l, o().size(3).align_corners(ac)),
            (vec![1, 1, 4], l, o().size(1).align_corners(ac)),
            (vec![1, 2, 2, 3], l, o().scale_factor([2.0, 1.5]).align_corners(ac)),
            (vec![1, 1, 3, 4], l, o().scale_factor([2.5, 0.5]).align_corners(ac)),
            (vec![1, 1, 3, 3], l, o().size([3, 5]).align_corners(ac)),
            (vec![1, 1, 2, 2, 3], l, o().scale_factor(2.0).align_corners(ac)),
            (vec![1, 1, 2, 3, 2], l, o().size([3, 2, 5]).align_corners(ac)),
        ]);
    }
    out.push((
        vec![1, 1, 5],
        UpsampleMode::Nearest,
        o().scale_factor(1.7).recompute_scale_factor(true),
    ));
    out.push((
        vec![1, 1, 5],
        UpsampleMode::Linear,
        o().scale_factor(1.7).recompute_scale_factor(true),
    ));
    out
}

#[test]
fn gradients_match_finite_differences_first_and_second_order() {
    let mut rng = StdRng::seed_from_u64(1);
    for (shape, mode, options) in spread() {
        let x = random(&mut rng, &shape);
        let what = format!("{mode:?} {options:?} on {shape:?}");
        // Linear in x: first order checks the backward (the adjoint op) ...
        check_both(|_, v| interpolate(v[0], mode, &options), &x, &what);
        // ... and squaring makes the second order use the adjoint's own backward (the forward).
        check_both(
            |_, v| {
                let y = interpolate(v[0], mode, &options)?;
                y.mul(y)
            },
            &x,
            &format!("square of {what}"),
        );
    }
}

/// `⟨U·x, g⟩ = ⟨x, Uᵀ·g⟩` on larger shapes than the finite-difference checks afford, through
/// the fast paths (integer factors, row copies).
#[test]
fn the_backward_is_the_adjoint_of_the_forward() {
    let mut rng = StdRng::seed_from_u64(2);
    for (shape, factor) in [
        (vec![2, 3, 17], 2.0),
        (vec![2, 3, 9, 11], 2.0),
        (vec![1, 4, 8, 8], 3.0),
        (vec![1, 2, 5, 7], 1.0),
        (vec![1, 2, 9, 13], 1.37),
        (vec![1, 2, 9, 13], 0.61),
        (vec![2, 2, 4, 5, 6], 2.0),
        (vec![1, 2, 3, 7, 5], 1.6),
    ] {
        for mode in [UpsampleMode::Nearest, UpsampleMode::NearestExact, UpsampleMode::Linear] {
            for options in [
                UpsampleOptions::new().scale_factor(factor),
                UpsampleOptions::new().scale_factor(factor).align_corners(true),
            ] {
                if mode != UpsampleMode::Linear && options.align_corners.is_some() {
                    continue;
                }
                let tape = Tape::<f64>::new();
                let x = random(&mut rng, &shape);
                let xv = tape.param(x.clone());
                let y = interpolate(xv, mode, &options).unwrap();
                let g = random(&mut rng, &y.shape());
                let grad_x = tape.backward_with(y, g.clone()).unwrap();
                let (lhs, rhs) = (dot(&y.value(), &g), dot(&x, &grad_x[xv]));
                assert!(
                    (lhs - rhs).abs() < 1e-12 * lhs.abs().max(1.0),
                    "{mode:?} {options:?} on {shape:?}: {lhs} vs {rhs}"
                );
            }
        }
    }
}

/// Integer factors, where the index is `d / s` exactly: a naive loop over every output cell,
/// in f64 and f32, covering the kernel's repeat-2, repeat-s and row-copy paths.
#[test]
fn integer_factors_match_a_naive_loop() {
    fn check<T: Float>(shape: &[usize], factors: &[usize], x: &ArrayD<f64>) {
        let tape = Tape::<T>::new();
        let opts = UpsampleOptions::new().scale_factor(factors.iter().map(|&f| f as f64).collect::<Vec<_>>());
        let y = upsample_nearest(tape.constant(x.mapv(T::of)), &opts).unwrap().value();
        let expected_shape: Vec<usize> = shape[..2]
            .iter()
            .copied()
            .chain(shape[2..].iter().zip(factors).map(|(&i, &f)| i * f))
            .collect();
        assert_eq!(y.shape(), expected_shape);
        for (index, &v) in y.indexed_iter() {
            let mut src = index.slice().to_vec();
            for (k, &f) in factors.iter().enumerate() {
                src[2 + k] /= f;
            }
            assert_eq!(v, T::of(x[IxDyn(&src)]), "{shape:?} ×{factors:?} at {index:?}");
        }
    }
    let mut rng = StdRng::seed_from_u64(3);
    for (shape, factors) in [
        (vec![2, 3, 5], vec![2]),
        (vec![2, 3, 5], vec![3]),
        (vec![2, 3, 4, 5], vec![2, 2]),
        (vec![1, 2, 4, 5], vec![3, 1]),
        (vec![1, 2, 4, 5], vec![1, 4]),
        (vec![2, 2, 2, 3, 4], vec![2, 2, 2]),
        (vec![1, 1, 3, 2, 2], vec![1, 3, 2]),
    ] {
        let x = random(&mut rng, &shape);
        check::<f64>(&shape, &factors, &x);
        check::<f32>(&shape, &factors, &x);
    }
}

// --------------------------------------------------------------- resize-conv: a transposed conv

/// Nearest upsampling by an integer factor `s` is a transposed conv with stride `s` and a
/// kernel of ones `[c, 1, s..]` per channel (`groups = c`): each input cell is stamped onto its
/// `s×…×s` block. Values and gradients agree exactly.
#[test]
fn nearest_by_an_integer_factor_is_a_depthwise_transposed_conv_of_ones() {
    let mut rng = StdRng::seed_from_u64(4);
    for (shape, s) in [
        (vec![2, 3, 6], 2),
        (vec![2, 3, 4, 5], 2),
        (vec![1, 4, 3, 3], 3),
        (vec![2, 2, 2, 3, 2], 2),
    ] {
        let c = shape[1];
        let rank = shape.len() - 2;
        let kernel: Vec<usize> = [c, 1].into_iter().chain(std::iter::repeat_n(s, rank)).collect();
        let x = random(&mut rng, &shape);
        let tape = Tape::<f64>::new();
        let (xa, xb) = (tape.param(x.clone()), tape.param(x.clone()));
        let up = upsample_nearest(xa, &UpsampleOptions::new().scale_factor(s as f64)).unwrap();
        let w = tape.constant(ArrayD::ones(IxDyn(&kernel)));
        let stamped = conv_transpose(xb, w, None, &ConvTransposeOptions::new().stride(s).groups(c)).unwrap();
        assert_eq!(up.value(), stamped.value(), "{shape:?} ×{s}");
        let g = random(&mut rng, &up.shape());
        let grads_up = tape.backward_with(up, g.clone()).unwrap();
        let grads_conv = tape.backward_with(stamped, g).unwrap();
        // Both sum each s×…×s block of g: the sum-pool is the conv with the same ones.
        let (a, b) = (&grads_up[xa], &grads_conv[xb]);
        assert!(a.iter().zip(b).all(|(a, b)| (a - b).abs() < 1e-12), "{shape:?} ×{s}");
    }
}

// -------------------------------------------------------------------------------------- errors

#[derive(Clone, Copy, Debug)]
enum Expect {
    Invalid(&'static str),
    BadShape,
}

/// `call` must return an error (no panic) of the expected kind, from `op`, with a message
/// starting `op: ` and containing every needle, and leave the tape as it was.
fn refused<'t>(
    tape: &'t Tape<f64>,
    op: &str,
    expect: Expect,
    needles: &[&str],
    call: impl FnOnce() -> Result<Var<'t, f64>>,
) {
    let before = tape.len();
    let context = format!("{op} expecting {expect:?} with {needles:?}");
    let result = catch_unwind(AssertUnwindSafe(call)).unwrap_or_else(|_| panic!("{context}: panicked"));
    let err = match result {
        Ok(y) => panic!("{context}: accepted, output shape {:?}", y.shape()),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("{op}: ")), "{context}: {msg}");
    match (expect, &err) {
        (Expect::Invalid(p), Error::InvalidArgument { op: o, param, .. }) => {
            assert_eq!((*o, *param), (op, p), "{context}: {msg}");
        }
        (Expect::BadShape, Error::BadShape { op: o, input, .. }) => assert_eq!((*o, *input), (op, "x"), "{context}"),
        _ => panic!("{context}: wrong variant: {err:?}"),
    }
    for needle in needles {
        assert!(msg.contains(needle), "{context}: message {msg:?} lacks {needle:?}");
    }
    assert_eq!(tape.len(), before, "{context}: the tape grew");
}

const MODES: [(UpsampleMode, &str); 3] = [
    (UpsampleMode::Nearest, "upsample_nearest"),
    (UpsampleMode::NearestExact, "upsample_nearest_exact"),
    (UpsampleMode::Linear, "upsample_linear"),
];

/// Each mode on `x` of `shape` with `options`, all refused alike.
fn refused_in_every_mode(shape: &[usize], options: &UpsampleOptions, expect: Expect, needles: &[&str]) {
    for (mode, op) in MODES {
        let tape = Tape::<f64>::new();
        let x = tape.param(ArrayD::zeros(IxDyn(shape)));
        refused(&tape, op, expect, needles, || interpolate(x, mode, options));
        // The shape function makes the same checks.
        assert!(upsample_output_shape(shape, mode, options).is_err(), "{op} {options:?}");
    }
}

#[test]
fn size_and_scale_factor_exactly_one() {
    let both = UpsampleOptions::new().size(4).scale_factor(2.0);
    refused_in_every_mode(
        &[1, 2, 3, 3],
        &both,
        Expect::Invalid("size and scale_factor"),
        &["exactly one"],
    );
    let neither = UpsampleOptions::new().align_corners(true);
    let tape = Tape::<f64>::new();
    let x = tape.param(ArrayD::zeros(IxDyn(&[1, 2, 3])));
    refused(
        &tape,
        "upsample_linear",
        Expect::Invalid("size and scale_factor"),
        &["(None, None)"],
        || upsample_linear(x, &neither),
    );
    refused_in_every_mode(
        &[1, 2, 3],
        &UpsampleOptions::new(),
        Expect::Invalid("size and scale_factor"),
        &[],
    );
}

#[test]
fn one_value_per_spatial_axis() {
    let o = UpsampleOptions::new;
    // As in PyTorch, a list must have one value per axis: [5] for a 2-D input is an error.
    refused_in_every_mode(
        &[1, 2, 3, 4],
        &o().size([5]),
        Expect::Invalid("size"),
        &["size = [5]", "(2)"],
    );
    refused_in_every_mode(
        &[1, 2, 3, 4],
        &o().size([5, 5, 5]),
        Expect::Invalid("size"),
        &["[5, 5, 5]"],
    );
    refused_in_every_mode(&[1, 2, 3], &o().size(Vec::new()), Expect::Invalid("size"), &["[]"]);
    refused_in_every_mode(
        &[1, 2, 3, 4],
        &o().scale_factor([2.0]),
        Expect::Invalid("scale_factor"),
        &["[2.0]"],
    );
    refused_in_every_mode(
        &[1, 1, 2, 3, 4],
        &o().scale_factor([2.0, 2.0]),
        Expect::Invalid("scale_factor"),
        &["(3)"],
    );
}

#[test]
fn sizes_of_zero_and_beyond_any_array() {
    let o = UpsampleOptions::new;
    refused_in_every_mode(
        &[1, 2, 3, 4],
        &o().size([0, 3]),
        Expect::Invalid("size"),
        &["[0, 3]", "at least 1"],
    );
    refused_in_every_mode(&[1, 2, 3], &o().size(0), Expect::Invalid("size"), &["[0]"]);
    // 2 · 2^40 elements; usize::MAX; a product that wraps.
    refused_in_every_mode(&[1, 2, 3], &o().size(1 << 40), Expect::Invalid("output"), &["2^40"]);
    refused_in_every_mode(&[1, 1, 3], &o().size(usize::MAX), Expect::Invalid("output"), &[]);
    refused_in_every_mode(
        &[1, 1, 3, 3],
        &o().size([1 << 32, 1 << 32]),
        Expect::Invalid("output"),
        &[],
    );
}

#[test]
fn scale_factors_must_be_finite_positive_and_give_sizes_from_1_to_2_pow_40() {
    let o = UpsampleOptions::new;
    for bad in [0.0, -1.0, -0.1, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        refused_in_every_mode(
            &[1, 2, 3, 4],
            &o().scale_factor(bad),
            Expect::Invalid("scale_factor"),
            &["finite"],
        );
        refused_in_every_mode(
            &[1, 2, 3, 4],
            &o().scale_factor([2.0, bad]),
            Expect::Invalid("scale_factor"),
            &["finite"],
        );
    }
    // ⌊3·0.2⌋ = 0, ⌊3·tiny⌋ = 0
    for tiny in [0.2, 0.33, f64::MIN_POSITIVE, 1e-300] {
        refused_in_every_mode(
            &[1, 2, 3],
            &o().scale_factor(tiny),
            Expect::Invalid("scale_factor"),
            &["= 0"],
        );
    }
    // Far beyond any array: refused by name, never an allocation attempt.
    for huge in [1e30, 1e18, 1e13, f64::MAX] {
        refused_in_every_mode(
            &[1, 2, 3],
            &o().scale_factor(huge),
            Expect::Invalid("scale_factor"),
            &["2^40"],
        );
    }
    // Each axis fits but the whole output does not: 2 · 2^20 · 2^20 · 3 · 3.
    refused_in_every_mode(
        &[1, 2, 3, 3],
        &o().scale_factor(349_525.5),
        Expect::Invalid("output"),
        &[],
    );
}

#[test]
fn align_corners_only_with_the_linear_mode() {
    for ac in [true, false] {
        let options = UpsampleOptions::new().scale_factor(2.0).align_corners(ac);
        for (mode, op) in &MODES[..2] {
            let tape = Tape::<f64>::new();
            let x = tape.param(ArrayD::zeros(IxDyn(&[1, 2, 3])));
            let value = format!("align_corners = Some({ac})");
            refused(&tape, op, Expect::Invalid("align_corners"), &[&value, "linear"], || {
                interpolate(x, *mode, &options)
            });
        }
    }
}

#[test]
fn recompute_scale_factor_not_with_a_size() {
    let options = UpsampleOptions::new().size(4).recompute_scale_factor(true);
    refused_in_every_mode(
        &[1, 2, 3],
        &options,
        Expect::Invalid("recompute_scale_factor"),
        &["explicit size"],
    );
    // `false` with a size is accepted, as in PyTorch.
    let tape = Tape::<f64>::new();
    let x = tape.param(ArrayD::zeros(IxDyn(&[1, 2, 3])));
    let y = upsample_nearest(x, &UpsampleOptions::new().size(4).recompute_scale_factor(false)).unwrap();
    assert_eq!(y.shape(), [1, 2, 4]);
}

#[test]
fn inputs_need_channels_and_one_to_three_nonempty_spatial_axes() {
    let two = UpsampleOptions::new().scale_factor(2.0);
    for shape in [&[3, 4][..], &[3][..], &[][..], &[1, 1, 2, 2, 2, 2][..]] {
        refused_in_every_mode(shape, &two, Expect::BadShape, &["1, 2 or 3 spatial axes"]);
    }
    for shape in [&[2, 0, 3, 4][..], &[1, 1, 0][..], &[1, 1, 3, 0, 2][..]] {
        refused_in_every_mode(shape, &two, Expect::BadShape, &["at least one channel"]);
    }
}

/// PyTorch accepts an empty batch; so does adjoint, without building anything for the image
/// size (which may be up to 2^40 cells).
#[test]
fn an_empty_batch_gives_an_empty_output_and_gradient() {
    for (mode, _) in MODES {
        let tape = Tape::<f64>::new();
        let x = tape.param(ArrayD::zeros(IxDyn(&[0, 2, 3, 4])));
        let y = interpolate(x, mode, &UpsampleOptions::new().scale_factor(2.0)).unwrap();
        assert_eq!(y.shape(), [0, 2, 6, 8]);
        let grads = tape.backward_with(y, ArrayD::zeros(IxDyn(&[0, 2, 6, 8]))).unwrap();
        assert_eq!(grads[x].shape(), [0, 2, 3, 4]);
        let x = tape.param(ArrayD::zeros(IxDyn(&[0, 1, 3])));
        let y = interpolate(x, mode, &UpsampleOptions::new().size(1 << 40)).unwrap();
        assert_eq!(y.shape(), [0, 1, 1 << 40]);
    }
}

/// Output sizes for settings anywhere in `u64` against a model in `u128` and exact `f64`
/// arithmetic: every call gives the model's shape or an error, never a panic (debug builds trap
/// overflow).
#[test]
fn output_sizes_for_settings_anywhere_in_u64() {
    const MAX: u128 = 1 << 40;
    let sizes = [1usize, 2, 3, 7, 1 << 20, 1 << 21, 1 << 40, 1 << 41, 1 << 62, usize::MAX];
    let scales = [0.5, 1.0, 1.7, 2.0, 1e6, 1e12, 1e20, 3e38, f64::MAX];
    for (b, c) in [(0usize, 1usize), (1, 1), (2, 3), (1 << 20, 1 << 20)] {
        for &i in &[1usize, 3, 1 << 20] {
            let x = [b, c, i, 2];
            let x_ok = [b, c, i, 2].iter().map(|&v| v.max(1) as u128).product::<u128>() <= MAX;
            let extent = |o: u128| (b.max(1) as u128) * c as u128 * o * 4;
            for &o in &sizes {
                let got = upsample_output_shape(&x, UpsampleMode::Nearest, &UpsampleOptions::new().size([o, 4]));
                let ok = x_ok && extent(o as u128) <= MAX;
                assert_eq!(got.ok(), ok.then(|| vec![b, c, o, 4]), "size {o} on {x:?}");
            }
            for &s in &scales {
                let opts = UpsampleOptions::new().scale_factor([s, 2.0]);
                let got = upsample_output_shape(&x, UpsampleMode::Linear, &opts);
                let o = (i as f64 * s).floor();
                let ok = x_ok && (1.0..=MAX as f64).contains(&o) && extent(o as u128) <= MAX;
                assert_eq!(got.ok(), ok.then(|| vec![b, c, o as usize, 4]), "scale {s} on {x:?}");
            }
        }
    }
}

// -------------------------------------------------------------------------------------- the layer

#[test]
fn the_layer_is_the_op_with_fixed_settings() {
    let mut rng = StdRng::seed_from_u64(5);
    let x = random(&mut rng, &[2, 3, 4, 5]);
    let layers = [
        (
            Upsample::scale_factor(2.0),
            UpsampleMode::Nearest,
            UpsampleOptions::new().scale_factor(2.0),
        ),
        (
            Upsample::size([7, 3]),
            UpsampleMode::Nearest,
            UpsampleOptions::new().size([7, 3]),
        ),
        (
            Upsample::scale_factor([1.5, 2.5])
                .mode(UpsampleMode::Linear)
                .align_corners(true),
            UpsampleMode::Linear,
            UpsampleOptions::new().scale_factor([1.5, 2.5]).align_corners(true),
        ),
        (
            Upsample::scale_factor(1.7)
                .mode(UpsampleMode::NearestExact)
                .recompute_scale_factor(true),
            UpsampleMode::NearestExact,
            UpsampleOptions::new().scale_factor(1.7).recompute_scale_factor(true),
        ),
    ];
    for (layer, mode, options) in layers {
        assert_eq!((layer.mode, &layer.options), (mode, &options));
        assert_eq!(Module::<f64>::parameter_count(&layer), 0);
        let tape = Tape::<f64>::new();
        let a = layer.forward(tape.constant(x.clone())).unwrap();
        let b = interpolate(tape.constant(x.clone()), mode, &options).unwrap();
        assert_eq!(a.value(), b.value(), "{layer:?}");
    }
    assert_eq!(Upsample::default().mode, UpsampleMode::Nearest);
    // Settings are checked when the layer runs, as in PyTorch.
    let tape = Tape::<f64>::new();
    let x = tape.constant(x);
    let bad = Upsample::scale_factor(2.0).align_corners(true);
    refused(&tape, "upsample_nearest", Expect::Invalid("align_corners"), &[], || {
        bad.forward(x)
    });
    let bad = Upsample::size([4]);
    refused(&tape, "upsample_nearest", Expect::Invalid("size"), &[], || {
        bad.forward(x)
    });
}

/// A resize-conv decoder step trains: gradients reach the conv through the upsampling, and the
/// tape shows the op and its backward.
#[test]
fn the_layer_in_a_resize_conv() {
    let mut rng = StdRng::seed_from_u64(6);
    let model = Sequential::<f64>::new()
        .add(Upsample::scale_factor(2.0).mode(UpsampleMode::Linear))
        .add(Conv2d::new(2, 1, 3, ConvOptions::new().padding(1), &mut rng).unwrap());
    let tape = Tape::new();
    let x = tape.param(random(&mut rng, &[1, 2, 3, 3]));
    let y = model.forward(x).unwrap();
    assert_eq!(y.shape(), [1, 1, 6, 6]);
    let printed = tape.to_string();
    assert!(
        printed.contains("upsample_linear([3, 3] → [6, 6], align_corners=false)"),
        "{printed}"
    );
    let grads = tape.backward(y.sum().unwrap()).unwrap();
    assert!(model.parameters().iter().all(|(_, p)| p.grad(&grads).is_some()));
    assert_eq!(grads[x].shape(), [1, 2, 3, 3]);
    let graph = tape.backward_graph(y.sum().unwrap(), None).unwrap();
    assert!(graph.get(x).is_some());
    let printed = tape.to_string();
    assert!(
        printed.contains("upsample_linear_backward([6, 6] → [3, 3])"),
        "{printed}"
    );
}

/// The named ops are `interpolate` in their mode.
#[test]
fn the_named_ops_are_interpolate_in_their_mode() {
    let mut rng = StdRng::seed_from_u64(7);
    let x = random(&mut rng, &[1, 2, 5]);
    let options = UpsampleOptions::new().scale_factor(1.7);
    let tape = Tape::<f64>::new();
    let v = tape.constant(x);
    let pairs = [
        (upsample_nearest(v, &options), UpsampleMode::Nearest),
        (upsample_nearest_exact(v, &options), UpsampleMode::NearestExact),
        (upsample_linear(v, &options), UpsampleMode::Linear),
    ];
    for (y, mode) in pairs {
        assert_eq!(y.unwrap().value(), interpolate(v, mode, &options).unwrap().value());
    }
}
