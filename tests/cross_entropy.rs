//! `cross_entropy` with class-index targets against PyTorch's `F.cross_entropy`: loss values,
//! logits gradients and second derivatives from `tests/fixtures/cross_entropy_reference.json`
//! (written by `tools/gen_cross_entropy_fixtures.py`), NaN and ±inf cases, and every call
//! PyTorch refuses; first and second derivatives against finite differences over every layout,
//! reduction and setting; the edge cases (all ignored, empty batches, huge sizes); one node per
//! pass on the tape. No Python is needed to run this.

use std::panic::{AssertUnwindSafe, catch_unwind};

use adjoint::gradcheck::{GradcheckOptions, TapeFn, gradcheck, gradgradcheck};
use adjoint::ops::loss::{CrossEntropyOptions, Reduction};
use adjoint::{Error, Float, Result, Tape, Var, cross_entropy, one_hot, softmax_cross_entropy};
use ndarray::{ArrayD, IxDyn, arr0, arr1};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Deserialize;

// ------------------------------------------------------------------------------------ fixtures

#[path = "support/num.rs"]
mod num;
use num::Num;

#[path = "support/tensor.rs"]
mod tensor;
use tensor::Tensor;

#[derive(Deserialize)]
struct Targets {
    shape: Vec<usize>,
    data: Vec<i64>,
}

impl Targets {
    fn array(&self) -> ArrayD<i64> {
        ArrayD::from_shape_vec(IxDyn(&self.shape), self.data.clone()).unwrap()
    }
}

#[derive(Deserialize)]
struct Options {
    weight: Option<Vec<Num>>,
    ignore_index: i64,
    reduction: String,
    label_smoothing: Num,
}

impl Options {
    fn get(&self) -> CrossEntropyOptions {
        let reduction = match self.reduction.as_str() {
            "mean" => Reduction::Mean,
            "sum" => Reduction::Sum,
            "none" => Reduction::None,
            other => panic!("unknown reduction {other}"),
        };
        let opts = CrossEntropyOptions::new()
            .ignore_index(self.ignore_index)
            .reduction(reduction)
            .label_smoothing(self.label_smoothing.value());
        match &self.weight {
            Some(w) => opts.weight(w.iter().map(|v| v.value()).collect::<Vec<_>>()),
            None => opts,
        }
    }
}

#[derive(Deserialize)]
struct Case {
    name: String,
    options: Options,
    logits: Tensor,
    target: Targets,
    loss: Tensor,
    grad_out: Tensor,
    grad_logits: Tensor,
    /// A direction `v` and PyTorch's `d/dx ⟨v, grad_logits⟩` (finite cases only).
    v: Option<Tensor>,
    hvp: Option<Tensor>,
}

#[derive(Deserialize)]
struct ErrorCase {
    name: String,
    logits_shape: Vec<usize>,
    target: Targets,
    options: Options,
    torch_error: String,
    refused_in: String,
    kind: String,
    param: Option<String>,
    needles: Vec<String>,
}

#[derive(Deserialize)]
struct Fixtures {
    values: Vec<Case>,
    non_finite: Vec<Case>,
    errors: Vec<ErrorCase>,
}

fn fixtures() -> Fixtures {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/cross_entropy_reference.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Equal as PyTorch gives them: NaN where PyTorch has NaN, the same infinities, zeros with
/// their sign (unless `any_zero`), finite values within `tol` (absolute).
fn assert_as_pytorch(name: &str, what: &str, got: &ArrayD<f64>, want: &ArrayD<f64>, tol: f64) {
    compare(name, what, got, want, tol, false);
}

fn compare(name: &str, what: &str, got: &ArrayD<f64>, want: &ArrayD<f64>, tol: f64, any_zero: bool) {
    assert_eq!(got.shape(), want.shape(), "{name}: {what} shape");
    for (i, (&a, &e)) in got.iter().zip(want).enumerate() {
        let ok = if e.is_nan() {
            a.is_nan()
        } else if e.is_infinite() || e == 0.0 {
            a == e && (any_zero || a.is_sign_negative() == e.is_sign_negative())
        } else {
            (a - e).abs() <= tol
        };
        assert!(
            ok,
            "{name}: {what}[{i}] is {a:?}, PyTorch gives {e:?}\n got {got}\nwant {want}"
        );
    }
}

/// The loss, `d⟨grad_out, loss⟩/dx` and (where the case has them) the second derivative
/// along `v`, as PyTorch gives them.
fn check_case(case: &Case) {
    let name = case.name.as_str();
    let tape = Tape::<f64>::new();
    let x = tape.param(case.logits.array());
    let loss = cross_entropy(x, &case.target.array(), &case.options.get()).unwrap();
    assert_as_pytorch(name, "loss", &loss.value(), &case.loss.array(), 1e-10);
    let grads = tape.backward_graph(loss, Some(case.grad_out.array())).unwrap();
    let grad_x = grads.get(x).unwrap();
    assert_as_pytorch(name, "grad_logits", &grad_x.value(), &case.grad_logits.array(), 1e-10);
    if let (Some(v), Some(hvp)) = (&case.v, &case.hvp) {
        let along_v = grad_x.mul(tape.constant(v.array())).unwrap().sum().unwrap();
        let second = tape.backward(along_v).unwrap();
        // The second derivative's zeros (at ignored elements) may differ in sign: PyTorch's is
        // an accident of its double-backward formula's order of products.
        compare(name, "hvp", &second[x], &hvp.array(), 1e-10, true);
    }
}

#[test]
fn loss_gradient_and_second_derivative_match_pytorch() {
    let fixtures = fixtures();
    assert!(fixtures.values.len() >= 70);
    for case in &fixtures.values {
        assert!(case.hvp.is_some(), "{}", case.name);
        check_case(case);
    }
}

#[test]
fn nan_and_infinite_logits_and_weights_as_pytorch() {
    let fixtures = fixtures();
    assert!(fixtures.non_finite.len() >= 60);
    fixtures.non_finite.iter().for_each(check_case);
}

// ------------------------------------------------------------------------------------ errors

/// Runs `call`, which must return an error (no panic) reported by `cross_entropy`, of the
/// expected kind, naming `param` and every `needle`, with nothing recorded on `tape`.
fn refused<'t>(
    tape: &'t Tape<f64>,
    context: &str,
    kind: &str,
    param: Option<&str>,
    needles: &[String],
    call: impl FnOnce() -> Result<Var<'t, f64>>,
) {
    let before = tape.len();
    let result = catch_unwind(AssertUnwindSafe(call)).unwrap_or_else(|_| panic!("{context}: panicked"));
    let err = match result {
        Ok(y) => panic!("{context}: accepted, output shape {:?}", y.shape()),
        Err(e) => e,
    };
    let msg = err.to_string();
    let context = format!("{context}: got {err:?} / \"{msg}\"");
    assert!(
        msg.starts_with("cross_entropy: "),
        "{context}: message does not start with the op"
    );
    match (kind, &err) {
        ("invalid", Error::InvalidArgument { op, param: p, .. }) => {
            assert_eq!((*op, Some(*p)), ("cross_entropy", param), "{context}");
        }
        ("bad_shape", Error::BadShape { op, input, .. }) => {
            assert_eq!((*op, Some(*input)), ("cross_entropy", param), "{context}");
        }
        ("mismatch", Error::ShapeMismatch { op, .. }) => assert_eq!(*op, "cross_entropy", "{context}"),
        _ => panic!("{context}: wrong variant, expected {kind}"),
    }
    for needle in needles {
        assert!(msg.contains(needle.as_str()), "{context}: message lacks {needle:?}");
    }
    assert_eq!(tape.len(), before, "{context}: the tape grew");
}

#[test]
fn every_call_pytorch_refuses_is_an_error() {
    let fixtures = fixtures();
    assert!(fixtures.errors.len() >= 27);
    for case in &fixtures.errors {
        let context = format!(
            "{} (PyTorch, in its {} pass: {})",
            case.name, case.refused_in, case.torch_error
        );
        let tape = Tape::<f64>::new();
        let x = tape.param(ArrayD::zeros(IxDyn(&case.logits_shape)));
        let (target, opts) = (case.target.array(), case.options.get());
        refused(
            &tape,
            &context,
            &case.kind,
            case.param.as_deref(),
            &case.needles,
            || cross_entropy(x, &target, &opts),
        );
    }
}

#[test]
fn huge_sizes_give_an_error_or_the_right_shape() {
    let tape = Tape::<f64>::new();
    // An empty batch with astronomically many positions or classes: nothing to compute, and
    // PyTorch's answers (mean NaN, sum 0, `none` as empty as the target).
    let big = 1usize << 60;
    let x = tape.param(ArrayD::zeros(IxDyn(&[0, 3, big])));
    let target = ArrayD::<i64>::zeros(IxDyn(&[0, big]));
    let mean = cross_entropy(x, &target, &CrossEntropyOptions::new()).unwrap();
    assert!(mean.value()[[]].is_nan());
    let grads = tape.backward(mean).unwrap();
    assert_eq!(grads[x].shape(), &[0, 3, big]);
    let sum = cross_entropy(x, &target, &CrossEntropyOptions::new().reduction(Reduction::Sum)).unwrap();
    assert_eq!(sum.value()[[]], 0.0);
    let none = cross_entropy(x, &target, &CrossEntropyOptions::new().reduction(Reduction::None)).unwrap();
    assert_eq!(none.shape(), vec![0, big]);

    let x = tape.param(ArrayD::zeros(IxDyn(&[0, big])));
    let empty = ArrayD::<i64>::zeros(IxDyn(&[0]));
    assert!(cross_entropy(x, &empty, &CrossEntropyOptions::new()).unwrap().value()[[]].is_nan());
    let weight = CrossEntropyOptions::new().weight([1.0, 2.0]);
    refused(
        &tape,
        "weight for 2^60 classes",
        "bad_shape",
        Some("weight"),
        &["[2]".into(), format!("{big} classes")],
        || cross_entropy(x, &empty, &weight),
    );
    let x = tape.param(ArrayD::zeros(IxDyn(&[2, 3])));
    for t in [i64::MIN, i64::MAX, 3, -1] {
        refused(
            &tape,
            "target out of bounds",
            "invalid",
            Some("target"),
            &[format!("Target {t}")],
            || cross_entropy(x, &arr1(&[0, t]), &CrossEntropyOptions::new()),
        );
    }
    for smoothing in [f64::MAX, 1.0 + f64::EPSILON] {
        refused(
            &tape,
            "label_smoothing above 1",
            "invalid",
            Some("label_smoothing"),
            &[format!("{smoothing:?}")],
            || {
                cross_entropy(
                    x,
                    &arr1(&[0, 1]),
                    &CrossEntropyOptions::new().label_smoothing(smoothing),
                )
            },
        );
    }
    // As in PyTorch, a value not above 0 (even −∞ or NaN) means no smoothing.
    let plain = cross_entropy(x, &arr1(&[0, 1]), &CrossEntropyOptions::new())
        .unwrap()
        .value()[[]];
    for smoothing in [f64::NEG_INFINITY, f64::NAN, -1.0, 0.0] {
        let opts = CrossEntropyOptions::new().label_smoothing(smoothing);
        assert_eq!(cross_entropy(x, &arr1(&[0, 1]), &opts).unwrap().value()[[]], plain);
    }
}

// ------------------------------------------------------------------------------------ gradients

/// Layouts: `[n, c]`, `[n, c, l]`, `[n, c, h, w]`, `[n, c, d, h, w]` and unbatched `[c]`.
const LAYOUTS: &[&[usize]] = &[&[4, 3], &[2, 3, 4], &[2, 3, 2, 3], &[1, 2, 2, 2, 2], &[4]];

/// Targets for `logits`: every class appears, one element in three is `ignore_index` (one is
/// always counted, so a mean is never NaN).
fn targets(logits: &[usize], ignore_index: i64) -> ArrayD<i64> {
    let (shape, classes) = match logits {
        [c] => (vec![], *c),
        [n, c, rest @ ..] => ([*n].into_iter().chain(rest.iter().copied()).collect(), *c),
        [] => unreachable!(),
    };
    let len: usize = shape.iter().product();
    let data = (0..len)
        .map(|e| {
            if e % 3 == 1 {
                ignore_index
            } else {
                ((e * 7 + 2) % classes) as i64
            }
        })
        .collect();
    ArrayD::from_shape_vec(IxDyn(&shape), data).unwrap()
}

/// Every reduction with: nothing, class weights, a custom `ignore_index`, label smoothing with
/// weights.
fn settings(classes: usize) -> Vec<CrossEntropyOptions> {
    let weight: Vec<f64> = (0..classes).map(|c| 0.5 + 0.7 * c as f64).collect();
    let mut out = Vec::new();
    for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        let base = CrossEntropyOptions::new().reduction(reduction);
        out.push(base.clone());
        out.push(base.clone().weight(weight.clone()));
        out.push(base.clone().ignore_index(255));
        out.push(base.weight(weight.clone()).label_smoothing(0.2));
    }
    out
}

fn logits(shape: &[usize], seed: u64) -> ArrayD<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    ArrayD::from_shape_simple_fn(IxDyn(shape), || rng.random_range(-2.0..2.0))
}

/// First- and second-order checks of `f` at `x`, every element, random upstream gradients.
#[track_caller]
fn check(what: &str, x: &ArrayD<f64>, f: impl TapeFn) {
    let opts = GradcheckOptions {
        seed: 5,
        ..GradcheckOptions::default()
    };
    let inputs = std::slice::from_ref(x);
    for (order, report) in [(1, gradcheck(&f, inputs, &opts)), (2, gradgradcheck(&f, inputs, &opts))] {
        let report = report.unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(report.checked, x.len(), "{what}: not every element was checked");
        assert!(report.passed, "{what}, order {order}: {report}");
    }
}

/// First and second derivatives against finite differences, for every layout and setting;
/// the upstream gradient is random (the checker's `u`).
#[test]
fn gradients_match_finite_differences() {
    for (i, &shape) in LAYOUTS.iter().enumerate() {
        let classes = if shape.len() == 1 { shape[0] } else { shape[1] };
        for opts in settings(classes) {
            let target = targets(shape, opts.ignore_index);
            let x = logits(shape, i as u64);
            let what = format!("{shape:?} {opts:?}");
            check(&what, &x, |_, v| cross_entropy(v[0], &target, &opts));
        }
    }
}

/// The loss times a function of the logits: its upstream gradient depends on `x`, so second
/// order also goes through the gradient node's derivative in `g`.
#[test]
fn second_order_through_the_upstream_gradient() {
    for (i, &shape) in LAYOUTS.iter().enumerate() {
        let classes = if shape.len() == 1 { shape[0] } else { shape[1] };
        let class_axis = usize::from(shape.len() > 1);
        for opts in settings(classes) {
            let target = targets(shape, opts.ignore_index);
            let x = logits(shape, 10 + i as u64);
            let what = format!("{shape:?} {opts:?} times tanh(Σ_c x)");
            check(&what, &x, |_, v| {
                let factor = match opts.reduction {
                    Reduction::None => v[0].sum_axes(&[class_axis], false)?,
                    Reduction::Mean | Reduction::Sum => v[0].sum()?,
                };
                cross_entropy(v[0], &target, &opts)?.mul(factor.tanh()?)
            });
        }
    }
}

// ------------------------------------------------------------------------------------ values

/// The loss and gradient written out naively, position by position, with the softmax taken
/// directly: `loss_e = −Σ_c q_c·ln p_c`, `∂/∂x_c = (Σ q)·p_c − q_c`, for `[n, c, h, w]`.
fn naive(x: &ArrayD<f64>, t: &ArrayD<i64>, w: &[f64], eps: f64, ignore: i64) -> (f64, ArrayD<f64>) {
    let (n, c, h, wd) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    let (mut total, mut denominator) = (0.0, 0.0);
    let mut grad = ArrayD::zeros(x.raw_dim());
    for b in 0..n {
        for i in 0..h {
            for j in 0..wd {
                let target = t[[b, i, j]];
                if target == ignore {
                    continue;
                }
                let target = target as usize;
                let z: f64 = (0..c).map(|k| x[[b, k, i, j]].exp()).sum();
                let q: Vec<f64> = (0..c)
                    .map(|k| (1.0 - eps) * w[k] * f64::from(u8::from(k == target)) + eps / c as f64 * w[k])
                    .collect();
                let s: f64 = q.iter().sum();
                for k in 0..c {
                    let p = x[[b, k, i, j]].exp() / z;
                    total -= q[k] * p.ln();
                    grad[[b, k, i, j]] = s * p - q[k];
                }
                denominator += w[target];
            }
        }
    }
    (total / denominator, grad / denominator)
}

#[test]
fn segmentation_loss_matches_a_naive_loop() {
    let x = logits(&[3, 5, 6, 7], 99);
    let mut rng = StdRng::seed_from_u64(98);
    let t = ArrayD::from_shape_simple_fn(IxDyn(&[3, 6, 7]), || {
        if rng.random_range(0.0..1.0) < 0.2 {
            255
        } else {
            rng.random_range(0..5)
        }
    });
    let w = [0.3, 1.0, 2.5, 0.8, 1.7];
    for eps in [0.0, 0.1] {
        let opts = CrossEntropyOptions::new()
            .weight(w)
            .ignore_index(255)
            .label_smoothing(eps);
        let (want_loss, want_grad) = naive(&x, &t, &w, eps, 255);
        let tape = Tape::<f64>::new();
        let xv = tape.param(x.clone());
        let loss = cross_entropy(xv, &t, &opts).unwrap();
        assert!((loss.value()[[]] - want_loss).abs() <= 1e-12, "ε = {eps}");
        let grads = tape.backward(loss).unwrap();
        let worst = (&grads[xv] - &want_grad).iter().fold(0.0f64, |m, d| m.max(d.abs()));
        assert!(worst <= 1e-12, "ε = {eps}: gradient differs by {worst:e}");
    }
}

/// `f32` gives the `f64` answer to `f32` precision (the same code, generic).
#[test]
fn f32_agrees_with_f64() {
    let x = logits(&[2, 6, 8, 8], 7);
    let t = targets(&[2, 6, 8, 8], -100);
    let opts = CrossEntropyOptions::new()
        .weight([1.0, 2.0, 0.5, 1.0, 1.5, 0.2])
        .label_smoothing(0.1);
    fn run<T: Float>(x: &ArrayD<f64>, t: &ArrayD<i64>, opts: &CrossEntropyOptions) -> (f64, Vec<f64>) {
        let tape = Tape::<T>::new();
        let xv = tape.param(x.mapv(T::of));
        let loss = cross_entropy(xv, t, opts).unwrap();
        let grads = tape.backward(loss).unwrap();
        let grad = grads[xv].iter().map(|&v| Float::to_f64(v)).collect();
        (Float::to_f64(loss.value()[[]]), grad)
    }
    let (l32, g32) = run::<f32>(&x, &t, &opts);
    let (l64, g64) = run::<f64>(&x, &t, &opts);
    let worst = g32.iter().zip(&g64).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!((l32 - l64).abs() <= 1e-6, "loss {l32} in f32, {l64} in f64");
    assert!(worst <= 1e-7, "gradient differs by {worst:e}");
}

/// With one-hot targets the probability form computes the same mean.
#[test]
fn agrees_with_softmax_cross_entropy_on_one_hot_targets() {
    let x = logits(&[5, 4], 3);
    let labels = [3usize, 0, 2, 2, 1];
    let tape = Tape::<f64>::new();
    let xv = tape.param(x);
    let indices = arr1(&labels.map(|l| l as i64));
    let a = cross_entropy(xv, &indices, &CrossEntropyOptions::new()).unwrap();
    let b = softmax_cross_entropy(xv, one_hot(&tape, &labels, 4).unwrap()).unwrap();
    assert!((a.value()[[]] - b.value()[[]]).abs() <= 1e-15);
    let (ga, gb) = (tape.backward(a).unwrap(), tape.backward(b).unwrap());
    let worst = (&ga[xv] - &gb[xv]).iter().fold(0.0f64, |m, d| m.max(d.abs()));
    assert!(worst <= 1e-15);
}

#[test]
fn unbatched_takes_a_0d_target() {
    let tape = Tape::<f64>::new();
    let x = tape.param(arr1(&[0.5, -1.0, 2.0]).into_dyn());
    let loss = cross_entropy(x, &arr0(2), &CrossEntropyOptions::new().reduction(Reduction::None)).unwrap();
    assert_eq!(loss.shape(), Vec::<usize>::new());
    let lse = (0.5f64.exp() + (-1.0f64).exp() + 2.0f64.exp()).ln();
    assert!((loss.value()[[]] - (lse - 2.0)).abs() <= 1e-15);
}

// ------------------------------------------------------------------------------------ the tape

/// The loss is one node, its gradient one more (a fused `(s·softmax − q)·g`), whatever the
/// number of elements: no full-size intermediates.
#[test]
fn one_node_forward_and_one_backward() {
    let tape = Tape::<f64>::new();
    let x = tape.param(logits(&[2, 3, 4, 4], 1));
    let t = targets(&[2, 3, 4, 4], -100);
    let opts = CrossEntropyOptions::new().weight([1.0, 2.0, 3.0]).label_smoothing(0.1);
    let before = tape.len();
    let loss = cross_entropy(x, &t, &opts).unwrap();
    assert_eq!(tape.len(), before + 1);
    let grads = tape.backward_graph(loss, None).unwrap();
    // The seed, and the gradient node.
    assert_eq!(tape.len(), before + 3);
    assert_eq!(grads.get(x).unwrap().shape(), vec![2, 3, 4, 4]);
    let printed = tape.to_string();
    assert!(
        printed.contains("cross_entropy(mean, weighted, label_smoothing=0.1)"),
        "{printed}"
    );
    assert!(printed.contains("cross_entropy_grad(mean, weighted"), "{printed}");
}
