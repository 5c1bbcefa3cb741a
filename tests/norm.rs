//! Batch normalisation: the op against finite differences (first and second order, training
//! and eval mode) and against PyTorch (`tests/fixtures/norm_reference.json`, written by
//! `tools/gen_norm_fixtures.py`: values, gradients, running statistics, NaN and infinity); the
//! layers' training steps, eval mode and train / eval switch through `Sequential`; weights I/O
//! with buffers under PyTorch's `state_dict` names; and every refused setting.
//! No Python is needed to run this.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use adjoint::gradcheck::{GradcheckOptions, TapeFn, gradcheck, gradgradcheck};
use adjoint::nn::{
    BatchNorm, BatchNorm1d, BatchNorm2d, BatchNorm3d, BatchNormConfig, Buffer, BufferMut, Conv1d, Conv2d, Linear,
    Module, Relu, Sequential, Tanh, io,
};
use adjoint::ops::conv::ConvOptions;
use adjoint::ops::norm::{BatchNormOptions, RunningStats, batch_norm};
use adjoint::{Error, Float, Result, Tape, Var};
use ndarray::{ArrayD, Axis, IxDyn};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Deserialize;

// ------------------------------------------------------------------------------------ fixtures

#[path = "support/num.rs"]
mod num;

#[path = "support/tensor.rs"]
mod tensor;
use tensor::Tensor;

/// One `F.batch_norm` call and what PyTorch computed.
#[derive(Deserialize)]
struct OpCase {
    name: String,
    training: bool,
    momentum: f64,
    eps: f64,
    x: Tensor,
    weight: Option<Tensor>,
    bias: Option<Tensor>,
    running_mean: Option<Tensor>,
    running_var: Option<Tensor>,
    g: Tensor,
    y: Tensor,
    grad_x: Tensor,
    grad_weight: Option<Tensor>,
    grad_bias: Option<Tensor>,
    running_mean_after: Option<Tensor>,
    running_var_after: Option<Tensor>,
}

#[derive(Deserialize)]
struct Step {
    x: Tensor,
    g: Tensor,
    no_grad: bool,
    y: Tensor,
    grad_x: Option<Tensor>,
    grad_weight: Option<Tensor>,
    grad_bias: Option<Tensor>,
    running_mean: Option<Tensor>,
    running_var: Option<Tensor>,
    num_batches_tracked: Option<i64>,
}

#[derive(Deserialize)]
struct Entry {
    name: String,
    shape: Vec<usize>,
    dtype: String,
}

#[derive(Deserialize)]
struct LayerCase {
    name: String,
    rank: usize,
    num_features: usize,
    eps: f64,
    momentum: Option<f64>,
    affine: bool,
    track_running_stats: bool,
    weight: Option<Tensor>,
    bias: Option<Tensor>,
    steps: Vec<Step>,
    x_eval: Tensor,
    y_eval: Tensor,
    state_dict: Vec<Entry>,
}

#[derive(Deserialize)]
struct Model {
    name: String,
    state_dict: Vec<Entry>,
}

#[derive(Deserialize)]
struct Fixtures {
    ops: Vec<OpCase>,
    layers: Vec<LayerCase>,
    state_dict: Vec<Model>,
    nan: Vec<OpCase>,
}

fn fixtures() -> Fixtures {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/norm_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `actual` is PyTorch's `expected` to 1e-10 (relative to values above 1); NaN matches NaN and
/// infinities match exactly.
#[track_caller]
fn close(actual: &ArrayD<f64>, expected: &ArrayD<f64>, what: &str) {
    assert_eq!(actual.shape(), expected.shape(), "{what}: shape");
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let ok = if e.is_nan() {
            a.is_nan()
        } else if e.is_infinite() {
            a == e
        } else {
            (a - e).abs() <= 1e-10 * e.abs().max(1.0)
        };
        assert!(ok, "{what}[{i}]: got {a:e}, PyTorch gives {e:e}");
    }
}

fn random(shape: &[usize], rng: &mut StdRng) -> ArrayD<f64> {
    ArrayD::from_shape_simple_fn(IxDyn(shape), || rng.random_range(-1.0..1.0))
}

/// Random values with a different mean and spread per channel (axis 1).
fn channel_input(shape: &[usize], rng: &mut StdRng) -> ArrayD<f64> {
    let c = shape[1];
    let offsets: Vec<f64> = (0..c).map(|_| rng.random_range(-2.0..2.0)).collect();
    let scales: Vec<f64> = (0..c).map(|_| rng.random_range(0.3..2.0)).collect();
    let mut x = random(shape, rng);
    for (k, mut lane) in x.axis_iter_mut(Axis(1)).enumerate() {
        lane.mapv_inplace(|v| v * scales[k] + offsets[k]);
    }
    x
}

fn positive(shape: &[usize], rng: &mut StdRng) -> ArrayD<f64> {
    ArrayD::from_shape_simple_fn(IxDyn(shape), || rng.random_range(0.5..2.0))
}

// ------------------------------------------------------------------------------ the op: values

/// Runs one fixture case through `batch_norm` on a fresh tape and compares everything PyTorch
/// recorded: output, the three gradients, the running statistics after.
fn run_op_case(case: &OpCase) {
    let tape = Tape::<f64>::new();
    let x = tape.param(case.x.array());
    let weight = case.weight.as_ref().map(|w| tape.param(w.array()));
    let bias = case.bias.as_ref().map(|b| tape.param(b.array()));
    let mut mean = case.running_mean.as_ref().map(Tensor::array);
    let mut var = case.running_var.as_ref().map(Tensor::array);
    let running = match (&mut mean, &mut var) {
        (Some(mean), Some(var)) => Some(RunningStats { mean, var }),
        _ => None,
    };
    let opts = BatchNormOptions::new()
        .training(case.training)
        .momentum(case.momentum)
        .eps(case.eps);
    let y = batch_norm(x, weight, bias, running, &opts).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    close(&y.value(), &case.y.array(), &format!("{}: y", case.name));
    let grads = tape.backward_with(y, case.g.array()).unwrap();
    close(&grads[x], &case.grad_x.array(), &format!("{}: grad_x", case.name));
    for (what, var, expected) in [
        ("grad_weight", weight, &case.grad_weight),
        ("grad_bias", bias, &case.grad_bias),
    ] {
        match (var, expected) {
            (Some(v), Some(e)) => close(&grads[v], &e.array(), &format!("{}: {what}", case.name)),
            (None, None) => {}
            _ => panic!("{}: {what} present on one side only", case.name),
        }
    }
    for (what, got, expected) in [
        ("running_mean", &mean, &case.running_mean_after),
        ("running_var", &var, &case.running_var_after),
    ] {
        match (got, expected) {
            (Some(g), Some(e)) => close(g, &e.array(), &format!("{}: {what} after", case.name)),
            (None, None) => {}
            _ => panic!("{}: {what} present on one side only", case.name),
        }
    }
}

#[test]
fn op_matches_pytorch_values_gradients_and_running_statistics() {
    let fixtures = fixtures();
    assert_eq!(fixtures.ops.len(), 13);
    for case in &fixtures.ops {
        run_op_case(case);
    }
}

/// PyTorch's NaN and infinity semantics: in training mode a NaN or an infinity in one channel
/// makes that channel's outputs, `x` gradients, weight gradient and running statistics NaN
/// (its mean and variance are NaN), and leaves the other channels alone; the bias gradient,
/// `Σ grad_y`, stays finite. In eval mode only the element itself is non-finite and `grad_x`
/// (`grad_y · w · σ⁻¹`) is finite everywhere; a NaN running mean poisons its channel's output
/// and weight gradient, an infinite running variance scales its channel to 0.
#[test]
fn nan_and_infinity_as_pytorch() {
    let fixtures = fixtures();
    assert_eq!(fixtures.nan.len(), 6);
    for case in &fixtures.nan {
        run_op_case(case);
    }
    // The fixture really has the patterns described above (so the comparison is not vacuous).
    let training = &fixtures.nan[0];
    assert!(training.training && training.y.array().index_axis(Axis(1), 1).iter().all(|v| v.is_nan()));
    assert!(training.y.array().index_axis(Axis(1), 0).iter().all(|v| v.is_finite()));
    let eval = &fixtures.nan[2];
    assert!(!eval.training && eval.grad_x.array().iter().all(|v| v.is_finite()));
}

/// Each case is one channel's worth of values: in training mode the output of a channel is
/// the same whatever the other channels hold (NaN included), and the same bits every run.
#[test]
fn channels_are_independent_and_results_bit_identical_run_to_run() {
    let mut rng = StdRng::seed_from_u64(5);
    let x = channel_input(&[3, 4, 5, 2], &mut rng);
    let g = random(&[3, 4, 5, 2], &mut rng);
    let run = |x: &ArrayD<f64>| {
        let tape = Tape::<f64>::new();
        let xv = tape.param(x.clone());
        let w = tape.param(positive(&[4], &mut StdRng::seed_from_u64(1)));
        let y = batch_norm(xv, Some(w), None, None, &BatchNormOptions::new().training(true)).unwrap();
        let grads = tape.backward_with(y, g.clone()).unwrap();
        ((*y.value()).clone(), grads[xv].clone(), grads[w].clone())
    };
    let bits = |a: &ArrayD<f64>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    let (y1, gx1, gw1) = run(&x);
    let (y2, gx2, gw2) = run(&x);
    assert_eq!((bits(&y1), bits(&gx1), bits(&gw1)), (bits(&y2), bits(&gx2), bits(&gw2)));

    let mut poisoned = x.clone();
    poisoned[[1, 2, 3, 0]] = f64::NAN;
    let (y3, gx3, gw3) = run(&poisoned);
    for k in 0..4 {
        let (clean, dirty) = (y1.index_axis(Axis(1), k), y3.index_axis(Axis(1), k));
        let (gclean, gdirty) = (gx1.index_axis(Axis(1), k), gx3.index_axis(Axis(1), k));
        if k == 2 {
            assert!(dirty.iter().chain(gdirty.iter()).all(|v| v.is_nan()) && gw3[k].is_nan());
        } else {
            assert_eq!(clean, dirty, "channel {k}");
            assert_eq!(gclean, gdirty, "channel {k}");
            assert_eq!(gw1[k].to_bits(), gw3[k].to_bits());
        }
    }
}

// ------------------------------------------------------------------- the op: finite differences

/// Pins a closure to the higher-ranked signature the checkers take.
fn tape_fn<F: TapeFn>(f: F) -> F {
    f
}

const SHAPES: [&[usize]; 4] = [&[4, 3], &[2, 3, 5], &[2, 2, 3, 3], &[2, 2, 2, 1, 3]];

/// Which of `weight` and `bias` a check passes.
#[derive(Clone, Copy, Debug)]
enum Affine {
    Both,
    WeightOnly,
    BiasOnly,
    Neither,
}

/// First- and second-order checks of `batch_norm` with respect to `x` and whichever of
/// `weight` and `bias` are given, every element, in training mode (the statistics depend on
/// `x`) or eval mode (random running statistics).
#[track_caller]
fn check_op(shape: &[usize], training: bool, affine: Affine, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let c = shape[1];
    let mut inputs = vec![channel_input(shape, &mut rng)];
    let (has_w, has_b) = match affine {
        Affine::Both => (true, true),
        Affine::WeightOnly => (true, false),
        Affine::BiasOnly => (false, true),
        Affine::Neither => (false, false),
    };
    if has_w {
        inputs.push(positive(&[c], &mut rng).mapv(|v| if rng.random_range(0.0..1.0) < 0.5 { -v } else { v }));
    }
    if has_b {
        inputs.push(random(&[c], &mut rng));
    }
    let (mean, var) = (random(&[c], &mut rng), positive(&[c], &mut rng));
    let f = tape_fn(|_, v| {
        let (mut mean, mut var) = (mean.clone(), var.clone());
        let w = has_w.then(|| v[1]);
        let b = has_b.then(|| v[v.len() - 1]);
        let running = Some(RunningStats {
            mean: &mut mean,
            var: &mut var,
        });
        batch_norm(
            v[0],
            w,
            b,
            running,
            &BatchNormOptions::new().training(training).eps(1e-3),
        )
    });
    let context = format!("{shape:?} training={training} {affine:?}");
    let opts = |seed| GradcheckOptions {
        seed,
        ..GradcheckOptions::default()
    };
    let n: usize = inputs.iter().map(|x| x.len()).sum();
    let first = gradcheck(f, &inputs, &opts(seed)).unwrap();
    assert_eq!(first.checked, n, "{context}");
    assert!(first.passed, "gradcheck {context}: {first}");
    let second = gradgradcheck(f, &inputs, &opts(seed)).unwrap();
    assert_eq!(second.checked, n, "{context}");
    assert!(second.passed, "gradgradcheck {context}: {second}");
}

/// `backward` computes batch norm's gradients as numbers in two fused passes; `backward_graph`
/// records them as ops (so they can be differentiated again). Both must give the same
/// gradients, in training and eval mode, with and without weight and bias, for a random
/// upstream gradient.
#[test]
fn fused_gradients_equal_the_recorded_ones() {
    let mut rng = StdRng::seed_from_u64(77);
    for shape in [&[4, 3][..], &[2, 3, 5], &[3, 2, 4, 5], &[2, 4, 1, 3, 2]] {
        for training in [true, false] {
            for (has_w, has_b) in [(true, true), (true, false), (false, true), (false, false)] {
                let c = shape[1];
                let x_value = channel_input(shape, &mut rng);
                let (w_value, b_value) = (random(&[c], &mut rng), random(&[c], &mut rng));
                let (mean, var) = (random(&[c], &mut rng), positive(&[c], &mut rng));
                let seed = random(shape, &mut rng);
                let grads = |graph: bool| -> Vec<ArrayD<f64>> {
                    let tape = Tape::<f64>::new();
                    let x = tape.param(x_value.clone());
                    let w = has_w.then(|| tape.param(w_value.clone()));
                    let b = has_b.then(|| tape.param(b_value.clone()));
                    let (mut mean, mut var) = (mean.clone(), var.clone());
                    let running = Some(RunningStats {
                        mean: &mut mean,
                        var: &mut var,
                    });
                    let opts = BatchNormOptions::new().training(training).eps(1e-3);
                    let y = batch_norm(x, w, b, running, &opts).unwrap();
                    let wanted = [Some(x), w, b].into_iter().flatten();
                    if graph {
                        let g = tape.backward_graph(y, Some(seed.clone())).unwrap();
                        wanted.map(|v| (*g.get(v).unwrap().value()).clone()).collect()
                    } else {
                        let g = tape.backward_with(y, seed.clone()).unwrap();
                        wanted.map(|v| g[v].clone()).collect()
                    }
                };
                let (fused, recorded) = (grads(false), grads(true));
                let context = format!("{shape:?} training={training} weight={has_w} bias={has_b}");
                for (f, r) in fused.iter().zip(&recorded) {
                    close(f, r, &context);
                }
            }
        }
    }
}

#[test]
fn gradcheck_training_mode_through_the_batch_statistics() {
    for (i, shape) in SHAPES.iter().enumerate() {
        for affine in [Affine::Both, Affine::Neither] {
            check_op(shape, true, affine, i as u64);
        }
    }
    check_op(&[3, 2, 2], true, Affine::WeightOnly, 10);
    check_op(&[3, 2, 2], true, Affine::BiasOnly, 11);
}

#[test]
fn gradcheck_eval_mode_with_running_statistics() {
    for (i, shape) in SHAPES.iter().enumerate() {
        for affine in [Affine::Both, Affine::Neither] {
            check_op(shape, false, affine, 20 + i as u64);
        }
    }
    check_op(&[3, 2, 2], false, Affine::WeightOnly, 30);
    check_op(&[3, 2, 2], false, Affine::BiasOnly, 31);
}

/// The two modes differ: in training mode the gradient of `Σ y` with respect to `x` is 0 (the
/// output of a channel always sums to `m·b`), in eval mode it is `w·σ⁻¹`, not 0.
#[test]
fn the_gradient_flows_through_the_batch_statistics_only_in_training_mode() {
    let mut rng = StdRng::seed_from_u64(3);
    let x = channel_input(&[4, 2, 3], &mut rng);
    for training in [true, false] {
        let tape = Tape::<f64>::new();
        let xv = tape.param(x.clone());
        let (mut mean, mut var) = (ArrayD::zeros(IxDyn(&[2])), ArrayD::from_elem(IxDyn(&[2]), 4.0));
        let running = RunningStats {
            mean: &mut mean,
            var: &mut var,
        };
        let opts = BatchNormOptions::new().training(training).eps(0.25);
        let y = batch_norm(xv, None, None, Some(running), &opts).unwrap();
        let grads = tape.backward(y.sum().unwrap()).unwrap();
        let expected = if training { 0.0 } else { 1.0 / (4.0f64 + 0.25).sqrt() };
        assert!(
            grads[xv].iter().all(|g| (g - expected).abs() < 1e-12),
            "training={training}: {:?}",
            grads[xv]
        );
    }
}

// -------------------------------------------------------------------------------- the layers

fn config(case: &LayerCase) -> BatchNormConfig {
    BatchNormConfig::new()
        .eps(case.eps)
        .momentum(case.momentum)
        .affine(case.affine)
        .track_running_stats(case.track_running_stats)
}

fn layer_of_rank(rank: usize, c: usize, config: BatchNormConfig) -> Result<BatchNorm<f64>> {
    match rank {
        1 => BatchNorm1d::new(c, config),
        2 => BatchNorm2d::new(c, config),
        3 => BatchNorm3d::new(c, config),
        r => panic!("rank {r}"),
    }
}

fn buffer<T: Float>(model: &impl Module<T>, name: &str) -> Option<Buffer<T>> {
    model.buffers().into_iter().find(|(n, _)| n == name).map(|(_, b)| b)
}

fn floats(b: Option<Buffer<f64>>) -> ArrayD<f64> {
    match b {
        Some(Buffer::Float(values)) => values,
        other => panic!("expected a float buffer, got {other:?}"),
    }
}

/// Training steps (one inside `no_grad`), then eval mode, against PyTorch: outputs, gradients,
/// and the running statistics and count after every step (momentum 0.1, 0.3 and `None`).
#[test]
fn layers_match_pytorch_over_training_steps_then_eval() {
    let fixtures = fixtures();
    assert_eq!(fixtures.layers.len(), 10);
    for case in &fixtures.layers {
        let mut layer = layer_of_rank(case.rank, case.num_features, config(case)).unwrap();
        assert!(layer.is_training(), "{}: a new layer trains", case.name);
        if let (Some(w), Some(b)) = (&case.weight, &case.bias) {
            *layer.weight.as_mut().unwrap().value_mut() = w.array();
            *layer.bias.as_mut().unwrap().value_mut() = b.array();
        }
        for (t, step) in case.steps.iter().enumerate() {
            let what = format!("{} step {t}", case.name);
            let tape = Tape::<f64>::new();
            if step.no_grad {
                // PyTorch updates the running statistics under `torch.no_grad()` too.
                let y = tape.no_grad(|| layer.forward(tape.constant(step.x.array()))).unwrap();
                close(&y.value(), &step.y.array(), &format!("{what}: y"));
            } else {
                let x = tape.param(step.x.array());
                let y = layer.forward(x).unwrap();
                close(&y.value(), &step.y.array(), &format!("{what}: y"));
                let grads = tape.backward_with(y, step.g.array()).unwrap();
                close(
                    &grads[x],
                    &step.grad_x.as_ref().unwrap().array(),
                    &format!("{what}: grad_x"),
                );
                for (p, expected) in [(&layer.weight, &step.grad_weight), (&layer.bias, &step.grad_bias)] {
                    match (p, expected) {
                        (Some(p), Some(e)) => close(p.grad(&grads).unwrap(), &e.array(), &what),
                        (None, None) => {}
                        _ => panic!("{what}: affine differs"),
                    }
                }
            }
            match (&step.running_mean, &step.running_var, step.num_batches_tracked) {
                (Some(mean), Some(var), Some(count)) => {
                    close(&floats(buffer(&layer, "running_mean")), &mean.array(), &what);
                    close(&floats(buffer(&layer, "running_var")), &var.array(), &what);
                    assert_eq!(
                        buffer(&layer, "num_batches_tracked"),
                        Some(Buffer::Count(count)),
                        "{what}"
                    );
                }
                (None, None, None) => assert!(layer.buffers().is_empty(), "{what}"),
                _ => panic!("{what}: buffers differ"),
            }
        }
        let before = layer.buffers();
        layer.eval();
        assert!(!layer.is_training());
        let tape = Tape::<f64>::new();
        let y = layer.forward(tape.constant(case.x_eval.array())).unwrap();
        close(&y.value(), &case.y_eval.array(), &format!("{}: eval", case.name));
        assert_eq!(layer.buffers(), before, "{}: eval mode changed the buffers", case.name);

        // The layer's state_dict: PyTorch's names, shapes and dtypes, in its order.
        let names: Vec<&str> = case.state_dict.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(layer.state_dict_keys(), names, "{}", case.name);
        check_file_entries(&layer, &case.state_dict, &case.name);
    }
}

/// The safetensors file of `model` holds exactly PyTorch's `state_dict` entries, with their
/// shapes, `float64` as `F64` and `int64` as `I64`.
fn check_file_entries(model: &impl Module<f64>, entries: &[Entry], what: &str) {
    let bytes = io::to_bytes(model).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(file.len(), entries.len(), "{what}");
    for e in entries {
        let view = file.tensor(&e.name).unwrap_or_else(|_| panic!("{what}: no {}", e.name));
        assert_eq!(view.shape(), e.shape, "{what}: {}", e.name);
        let dtype = match e.dtype.as_str() {
            "float64" => safetensors::Dtype::F64,
            "int64" => safetensors::Dtype::I64,
            other => panic!("{other}"),
        };
        assert_eq!(view.dtype(), dtype, "{what}: {}", e.name);
    }
}

/// `nn.Sequential(Conv2d(2, 3, 3, padding=1), BatchNorm2d(3), ReLU(), Conv2d(3, 4, 1,
/// bias=False), BatchNorm2d(4, affine=False), BatchNorm2d(4, track_running_stats=False))`.
fn conv_bn<T: Float>(rng: &mut StdRng) -> Sequential<T> {
    let new = BatchNormConfig::new;
    Sequential::<T>::new()
        .add(Conv2d::new(2, 3, 3, ConvOptions::new().padding(1), rng).unwrap())
        .add(BatchNorm2d::new(3, new()).unwrap())
        .add(Relu)
        .add(Conv2d::new(3, 4, 1, ConvOptions::new(), rng).unwrap().without_bias())
        .add(BatchNorm2d::new(4, new().affine(false)).unwrap())
        .add(BatchNorm2d::new(4, new().track_running_stats(false)).unwrap())
}

/// The models of the fixture's `state_dict` section, built the same way.
fn model(name: &str, rng: &mut StdRng) -> Sequential<f64> {
    let bn1 = |c, config| BatchNorm1d::new::<f64>(c, config).unwrap();
    let new = BatchNormConfig::new;
    match name {
        "conv_bn" => conv_bn(rng),
        "bn_first" => Sequential::new()
            .add(bn1(5, new()))
            .add(Linear::new(5, 2, true, rng).unwrap())
            .add(bn1(2, new().momentum(None))),
        "nested" => Sequential::new()
            .add(
                Sequential::new()
                    .add(Conv1d::new(1, 2, 3, ConvOptions::new(), rng).unwrap())
                    .add(bn1(2, new())),
            )
            .add(Tanh)
            .add(bn1(2, new().affine(false))),
        other => panic!("no model {other}"),
    }
}

#[test]
fn state_dict_names_and_order_match_pytorch() {
    let fixtures = fixtures();
    assert_eq!(fixtures.state_dict.len(), 3);
    let mut rng = StdRng::seed_from_u64(0);
    for m in &fixtures.state_dict {
        let model = model(&m.name, &mut rng);
        let names: Vec<&str> = m.state_dict.iter().map(|e| e.name.as_str()).collect();
        // PyTorch's order: each layer's parameters, then its buffers, layer by layer.
        assert_eq!(model.state_dict_keys(), names, "{}", m.name);
        let listed = model.parameters().len() + model.buffers().len();
        assert_eq!(listed, names.len(), "{}", m.name);
        check_file_entries(&model, &m.state_dict, &m.name);
    }
}

// --------------------------------------------------------------------- train / eval switching

/// `model.eval()` reaches every layer through `Sequential` (nested too), and `model.train()`
/// brings them back: in eval mode nothing moves the buffers and each sample's output does not
/// depend on the rest of the batch; in training mode both change.
#[test]
fn train_and_eval_switch_every_layer_through_sequential() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut model = model("nested", &mut rng);
    assert!(model.is_training());
    let x = channel_input(&[3, 1, 6], &mut rng);
    let forward = |model: &Sequential<f64>, x: ArrayD<f64>| {
        let tape = Tape::<f64>::new();
        (*model.forward(tape.constant(x)).unwrap().value()).clone()
    };
    let count = |model: &Sequential<f64>, name: &str| match buffer(model, name) {
        Some(Buffer::Count(n)) => n,
        other => panic!("{other:?}"),
    };

    forward(&model, x.clone());
    assert_eq!(
        (
            count(&model, "0.1.num_batches_tracked"),
            count(&model, "2.num_batches_tracked")
        ),
        (1, 1)
    );

    model.eval();
    assert!(!model.is_training());
    let before = model.buffers();
    let whole = forward(&model, x.clone());
    for i in 0..3 {
        let one = forward(&model, x.slice_axis(Axis(0), (i..i + 1).into()).to_owned());
        let expected = whole.slice_axis(Axis(0), (i..i + 1).into()).to_owned();
        close(&one, &expected, &format!("sample {i} alone"));
    }
    assert_eq!(model.buffers(), before, "eval mode moved a buffer");
    // A batch of one with one position per channel: refused in training mode only.
    let single = x.slice_axis(Axis(0), (0..1).into()).to_owned();
    let tape = Tape::<f64>::new();
    let lone = BatchNorm1d::new::<f64>(1, BatchNormConfig::new()).unwrap();
    let mut lone_model = Sequential::new().add(lone);
    let point = single.slice_axis(Axis(2), (0..1).into()).to_owned();
    assert!(lone_model.forward(tape.constant(point.clone())).is_err());
    lone_model.eval();
    assert!(lone_model.forward(tape.constant(point)).is_ok());

    model.train();
    assert!(model.is_training());
    let whole = forward(&model, x.clone());
    let first = forward(&model, x.slice_axis(Axis(0), (0..2).into()).to_owned());
    assert_ne!(
        first,
        whole.slice_axis(Axis(0), (0..2).into()),
        "training mode uses the batch"
    );
    assert_eq!(
        (
            count(&model, "0.1.num_batches_tracked"),
            count(&model, "2.num_batches_tracked")
        ),
        (3, 3)
    );
}

// ------------------------------------------------------------------------------- weights I/O

fn snapshot<T: Float>(model: &impl Module<T>) -> Vec<(String, Vec<u64>)> {
    let bits = |a: &ArrayD<T>| a.iter().map(|v| Float::to_f64(*v).to_bits()).collect::<Vec<_>>();
    let params = model.parameters().into_iter().map(|(n, p)| (n, bits(p.value())));
    let buffers = model.buffers().into_iter().map(|(n, b)| match b {
        Buffer::Float(values) => (n, bits(&values)),
        Buffer::Count(c) => (n, vec![c as u64]),
    });
    params.chain(buffers).collect()
}

/// A `conv_bn` model after a few training steps, so its buffers differ from a new one's.
fn trained<T: Float>(seed: u64) -> Sequential<T> {
    let mut rng = StdRng::seed_from_u64(seed);
    let model = conv_bn::<T>(&mut rng);
    for _ in 0..seed % 3 + 1 {
        let tape = Tape::<T>::new();
        let x = channel_input(&[2, 2, 4, 4], &mut rng).mapv(T::of);
        model.forward(tape.constant(x)).unwrap();
    }
    model
}

#[test]
fn save_and_load_round_trip_parameters_and_buffers() {
    fn round_trip<T: Float>() {
        let source = trained::<T>(1);
        let mut target = trained::<T>(2);
        assert_ne!(snapshot(&source), snapshot(&target));
        io::from_bytes(&mut target, &io::to_bytes(&source).unwrap(), Path::new("<memory>")).unwrap();
        assert_eq!(snapshot(&source), snapshot(&target), "{}", T::NAME);
        assert_eq!(buffer(&target, "1.num_batches_tracked"), Some(Buffer::Count(2)));

        let path = std::env::temp_dir().join(format!(
            "adjoint-test-norm-{}-{}.safetensors",
            std::process::id(),
            T::NAME
        ));
        let mut other = trained::<T>(3);
        io::save(&source, &path).unwrap();
        let loaded = io::load(&mut other, &path);
        let _ = std::fs::remove_file(&path);
        loaded.unwrap();
        assert_eq!(snapshot(&source), snapshot(&other));
        // Loaded models compute the same thing, in eval mode (running statistics) too.
        let (mut a, mut b) = (source, other);
        a.eval();
        b.eval();
        let x = channel_input(&[2, 2, 4, 4], &mut StdRng::seed_from_u64(9)).mapv(T::of);
        let tape = Tape::<T>::new();
        let ya = a.forward(tape.constant(x.clone())).unwrap().value();
        let yb = b.forward(tape.constant(x)).unwrap().value();
        assert_eq!(*ya, *yb);
    }
    round_trip::<f32>();
    round_trip::<f64>();
    // The count is an exact int64 in the file whatever the model's type.
    let mut model = trained::<f32>(1);
    let big = (1i64 << 53) + 1; // not representable in f32 nor f64
    set_count(&mut model, "1.num_batches_tracked", big);
    let bytes = io::to_bytes(&model).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = file.tensor("1.num_batches_tracked").unwrap();
    assert_eq!((view.dtype(), view.shape()), (safetensors::Dtype::I64, &[][..]));
    assert_eq!(view.data(), big.to_le_bytes());
    let mut target = trained::<f32>(2);
    io::from_bytes(&mut target, &bytes, Path::new("<memory>")).unwrap();
    assert_eq!(buffer(&target, "1.num_batches_tracked"), Some(Buffer::Count(big)));
}

fn set_count<T: Float>(model: &mut impl Module<T>, name: &str, value: i64) {
    for (n, b) in model.buffers_mut() {
        if let (true, BufferMut::Count(c)) = (n == name, b) {
            *c = value;
            return;
        }
    }
    panic!("no count {name}");
}

/// Rebuilds a safetensors file from `bytes`, changing each tensor with `edit` (drop: `None`).
type Edit = dyn Fn(&str, safetensors::Dtype, Vec<usize>, Vec<u8>) -> Option<(safetensors::Dtype, Vec<usize>, Vec<u8>)>;

fn rewrite(bytes: &[u8], edit: &Edit) -> Vec<u8> {
    let file = safetensors::SafeTensors::deserialize(bytes).unwrap();
    let tensors: Vec<_> = file
        .tensors()
        .into_iter()
        .filter_map(|(name, view)| {
            let (d, s, data) = edit(&name, view.dtype(), view.shape().to_vec(), view.data().to_vec())?;
            Some((name, d, s, data))
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, data)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), data).unwrap(),
            )
        })
        .collect();
    safetensors::serialize(views, None).unwrap()
}

#[test]
fn bad_buffers_are_refused_and_leave_the_model_unchanged() {
    let good = io::to_bytes(&trained::<f64>(1)).unwrap();
    let mut model = trained::<f64>(2);
    let before = snapshot(&model);
    const COUNT: &str = "1.num_batches_tracked";
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "a missing running_var",
            rewrite(&good, &|n, d, s, data| (n != "4.running_var").then_some((d, s, data))),
            "no tensor named \"4.running_var\"",
        ),
        (
            "a missing count",
            rewrite(&good, &|n, d, s, data| (n != COUNT).then_some((d, s, data))),
            "no tensor named \"1.num_batches_tracked\"",
        ),
        (
            "a count stored as F64",
            rewrite(&good, &|n, d, s, data| {
                Some(if n == COUNT {
                    (safetensors::Dtype::F64, s, 2.0f64.to_le_bytes().to_vec())
                } else {
                    (d, s, data)
                })
            }),
            "1.num_batches_tracked: dtype F64, expected I64",
        ),
        (
            "a count of shape [1]",
            rewrite(&good, &|n, d, s, data| {
                Some(if n == COUNT { (d, vec![1], data) } else { (d, s, data) })
            }),
            "1.num_batches_tracked: shape [1] in the file, [] in the model",
        ),
        (
            "a negative count",
            rewrite(&good, &|n, d, s, data| {
                Some(if n == COUNT {
                    (d, s, (-3i64).to_le_bytes().to_vec())
                } else {
                    (d, s, data)
                })
            }),
            "1.num_batches_tracked holds -3: a count cannot be negative",
        ),
        (
            "a NaN running mean",
            rewrite(&good, &|n, d, s, mut data| {
                if n == "1.running_mean" {
                    data[8..16].copy_from_slice(&f64::NAN.to_le_bytes());
                }
                Some((d, s, data))
            }),
            "1.running_mean holds NaN at index 1",
        ),
        (
            "a running_var of the wrong length",
            rewrite(&good, &|n, d, s, data| {
                Some(if n == "4.running_var" {
                    (d, vec![2], data[..16].to_vec())
                } else {
                    (d, s, data)
                })
            }),
            "4.running_var: shape [2] in the file, [4] in the model",
        ),
        (
            "buffers of a layer without running statistics",
            {
                let file = safetensors::SafeTensors::deserialize(&good).unwrap();
                let data = 0i64.to_le_bytes();
                let mut views = file.tensors();
                views.push((
                    "5.num_batches_tracked".into(),
                    safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![], &data).unwrap(),
                ));
                safetensors::serialize(views, None).unwrap()
            },
            "unexpected tensors [\"5.num_batches_tracked\"]",
        ),
    ];
    for (what, bytes, message) in &cases {
        let err = io::from_bytes(&mut model, bytes, Path::new("bad.safetensors")).unwrap_err();
        assert!(matches!(err, Error::Weights { op: "load", .. }), "{what}: {err:?}");
        assert!(err.to_string().contains(message), "{what}: {err}");
        assert_eq!(snapshot(&model), before, "{what}: the model changed");
    }
    io::from_bytes(&mut model, &good, Path::new("<memory>")).unwrap();
    assert_ne!(
        snapshot(&model),
        before,
        "the good file loads (the refusals were the edits')"
    );
}

/// A NaN batch leaves NaN running statistics (as in PyTorch); saving refuses them, naming the
/// buffer and the index, as it refuses a NaN weight.
#[test]
fn save_refuses_non_finite_running_statistics() {
    let model = trained::<f32>(1);
    let mut x = ArrayD::<f32>::ones(IxDyn(&[2, 2, 4, 4]));
    x[[0, 0, 0, 0]] = f32::NAN;
    let tape = Tape::<f32>::new();
    model.forward(tape.constant(x)).unwrap();
    // Channel 0 of the input feeds every output channel of the 3x3 conv: all poisoned.
    assert_eq!(
        io::first_non_finite(&model).as_deref(),
        Some("1.running_mean holds NaN at index 0")
    );
    let err = io::to_bytes(&model).unwrap_err();
    assert!(err.to_string().contains("1.running_mean holds NaN at index 0"), "{err}");
}

// ------------------------------------------------------------------------------------ errors

/// Runs `call`, which must return an error (no panic) reported by `op` (the message starts
/// with `op: `) containing every needle, and leave the tape as long as before.
#[track_caller]
fn refused<'t>(tape: &'t Tape<f64>, op: &str, needles: &[&str], call: impl FnOnce() -> Result<Var<'t, f64>>) -> Error {
    let before = tape.len();
    let result = catch_unwind(AssertUnwindSafe(call)).unwrap_or_else(|_| panic!("{op} {needles:?}: panicked"));
    let err = match result {
        Ok(y) => panic!("{op} {needles:?}: accepted, output shape {:?}", y.shape()),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("{op}: ")), "{msg}");
    for needle in needles {
        assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
    }
    assert_eq!(tape.len(), before, "{msg}: the tape grew");
    err
}

#[test]
fn the_op_refuses_what_pytorch_refuses_recording_nothing() {
    let tape = Tape::<f64>::new();
    let other = Tape::<f64>::new();
    let leaf = |shape: &[usize]| tape.param(ArrayD::from_elem(IxDyn(shape), 0.5));
    let x = leaf(&[4, 3, 2]);
    let (w, b) = (leaf(&[3]), leaf(&[3]));
    let (mut mean, mut var) = (ArrayD::zeros(IxDyn(&[3])), ArrayD::<f64>::ones(IxDyn(&[3])));
    let train = BatchNormOptions::new().training(true);
    let eval = BatchNormOptions::new();
    let mut call = |x, w, b, running: bool, opts: &BatchNormOptions| {
        let running = running.then_some(RunningStats {
            mean: &mut mean,
            var: &mut var,
        });
        batch_norm(x, w, b, running, opts)
    };
    let bad_shape = |e: Error, input: &str| match e {
        Error::BadShape { input: i, .. } => assert_eq!(i, input),
        other => panic!("{other:?}"),
    };
    let invalid = |e: Error, param: &str| match e {
        Error::InvalidArgument { param: p, .. } => assert_eq!(p, param),
        other => panic!("{other:?}"),
    };
    let op = "batch_norm";

    for shape in [&[3][..], &[]] {
        let x = leaf(shape);
        bad_shape(
            refused(&tape, op, &["needs at least 2 axes"], || {
                call(x, None, None, true, &train)
            }),
            "x",
        );
    }
    for shape in [&[1, 3][..], &[1, 3, 1], &[1, 3, 1, 1]] {
        let x = leaf(shape);
        let e = refused(
            &tape,
            op,
            &["expected more than 1 value per channel when training"],
            || call(x, None, None, true, &train),
        );
        bad_shape(e, "x");
        // Eval mode takes it (PyTorch too).
        assert!(call(x, None, None, true, &eval).is_ok());
    }
    let (w4, w13) = (leaf(&[4]), leaf(&[1, 3]));
    bad_shape(
        refused(&tape, op, &["[4]", "must be [c] = [3]"], || {
            call(x, Some(w4), None, true, &train)
        }),
        "weight",
    );
    bad_shape(
        refused(&tape, op, &["[1, 3]"], || call(x, Some(w13), None, true, &train)),
        "weight",
    );
    bad_shape(
        refused(&tape, op, &["[4]"], || call(x, Some(w), Some(w4), true, &train)),
        "bias",
    );
    let e = refused(&tape, op, &["must be given in eval mode"], || {
        call(x, Some(w), Some(b), false, &eval)
    });
    invalid(e, "running_mean");
    for eps in [0.0, -1e-5, f64::NAN, f64::INFINITY] {
        let e = refused(&tape, op, &["invalid eps", "finite number above 0"], || {
            call(x, None, None, true, &train.clone().eps(eps))
        });
        invalid(e, "eps");
    }
    for momentum in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
        let e = refused(&tape, op, &["invalid momentum", "[0, 1]"], || {
            call(x, None, None, true, &train.clone().momentum(momentum))
        });
        invalid(e, "momentum");
    }
    let foreign = other.param(ArrayD::<f64>::ones(IxDyn(&[3])));
    let e = refused(&tape, op, &["input 1", "another tape"], || {
        call(x, Some(foreign), None, true, &train)
    });
    assert!(matches!(e, Error::MixedTapes { .. }), "{e:?}");
    // Running statistics of the wrong length, and nothing updated by any refused call.
    let (mut short, mut var2) = (ArrayD::zeros(IxDyn(&[2])), ArrayD::<f64>::ones(IxDyn(&[3])));
    let running = RunningStats {
        mean: &mut short,
        var: &mut var2,
    };
    bad_shape(
        refused(&tape, op, &["[2]"], || batch_norm(x, None, None, Some(running), &train)),
        "running_mean",
    );
    let running = RunningStats {
        mean: &mut var2,
        var: &mut short,
    };
    bad_shape(
        refused(&tape, op, &["[2]"], || batch_norm(x, None, None, Some(running), &train)),
        "running_var",
    );
    assert_eq!(mean, ArrayD::<f64>::zeros(IxDyn(&[3])));
    assert_eq!(var, ArrayD::<f64>::ones(IxDyn(&[3])));
}

/// An empty batch gives an empty output and leaves the running statistics as they are, as in
/// PyTorch; its parameters get zero gradients. One whose other axes span more than 2^40
/// elements is refused, as by every op (PyTorch takes it).
#[test]
fn an_empty_batch_is_empty_and_updates_nothing() {
    let tape = Tape::<f64>::new();
    let huge = tape.constant(ArrayD::zeros(IxDyn(&[0, 3, 1 << 30, 1 << 30])));
    let e = refused(
        &tape,
        "batch_norm",
        &["invalid output = [0, 3, 1073741824, 1073741824]", "2^40"],
        || batch_norm(huge, None, None, None, &BatchNormOptions::new().training(true)),
    );
    assert!(matches!(e, Error::InvalidArgument { param: "output", .. }), "{e:?}");
    for shape in [&[0, 3][..], &[0, 3, 4, 5], &[2, 3, 0]] {
        let tape = Tape::<f64>::new();
        let x = tape.param(ArrayD::zeros(IxDyn(shape)));
        let (w, b) = (
            tape.param(ArrayD::ones(IxDyn(&[3]))),
            tape.param(ArrayD::ones(IxDyn(&[3]))),
        );
        let (mut mean, mut var) = (ArrayD::from_elem(IxDyn(&[3]), 0.5), ArrayD::from_elem(IxDyn(&[3]), 2.0));
        let running = RunningStats {
            mean: &mut mean,
            var: &mut var,
        };
        let y = batch_norm(
            x,
            Some(w),
            Some(b),
            Some(running),
            &BatchNormOptions::new().training(true),
        )
        .unwrap();
        assert_eq!(y.shape(), shape);
        assert_eq!((mean[0], var[0]), (0.5, 2.0));
        let seed = ArrayD::zeros(IxDyn(shape));
        let grads = tape.backward_with(y, seed).unwrap();
        assert_eq!(grads[w], ArrayD::<f64>::zeros(IxDyn(&[3])));
        assert_eq!(grads[b], ArrayD::<f64>::zeros(IxDyn(&[3])));
    }
}

#[test]
fn layers_refuse_bad_settings() {
    let new = BatchNormConfig::new;
    let check = |r: Result<BatchNorm<f32>>, layer: &str, param: &str, needle: &str| {
        let Err(e) = r else { panic!("{layer} {param}: accepted") };
        let msg = e.to_string();
        assert!(
            matches!(e, Error::InvalidArgument { op, param: p, .. } if op == layer && p == param),
            "{e:?}"
        );
        assert!(
            msg.starts_with(&format!("{layer}: invalid {param} = ")) && msg.contains(needle),
            "{msg}"
        );
    };
    check(BatchNorm2d::new(0, new()), "BatchNorm2d", "num_features", "at least 1");
    check(
        BatchNorm1d::new(usize::MAX, new()),
        "BatchNorm1d",
        "num_features",
        "2^40",
    );
    check(BatchNorm3d::new(1 << 41, new()), "BatchNorm3d", "num_features", "2^40");
    for eps in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        check(
            BatchNorm2d::new(3, new().eps(eps)),
            "BatchNorm2d",
            "eps",
            "finite number above 0",
        );
    }
    for m in [-0.5, 1.0 + 1e-9, f64::NAN, f64::NEG_INFINITY] {
        check(
            BatchNorm2d::new(3, new().momentum(Some(m))),
            "BatchNorm2d",
            "momentum",
            "[0, 1]",
        );
    }
    // The edges PyTorch's layer and this one accept.
    for config in [
        new().momentum(Some(0.0)),
        new().momentum(Some(1.0)),
        new().momentum(None),
        new().eps(1e300),
    ] {
        assert!(BatchNorm2d::new::<f32>(3, config).is_ok());
    }
}

#[test]
fn layers_refuse_bad_input_recording_and_counting_nothing() {
    let tape = Tape::<f64>::new();
    let x = |shape: &[usize]| tape.constant(ArrayD::from_elem(IxDyn(shape), 0.25));
    let bn1 = BatchNorm1d::new::<f64>(3, BatchNormConfig::new()).unwrap();
    let bn2 = BatchNorm2d::new::<f64>(3, BatchNormConfig::new()).unwrap();
    let bn3 = BatchNorm3d::new::<f64>(3, BatchNormConfig::new()).unwrap();
    let bare = BatchNorm2d::new::<f64>(3, BatchNormConfig::new().affine(false).track_running_stats(false)).unwrap();
    let count = |layer: &BatchNorm<f64>| buffer(layer, "num_batches_tracked");
    let cases: [(&BatchNorm<f64>, &str, Vec<usize>, &str); 10] = [
        (
            &bn1,
            "BatchNorm1d",
            vec![2, 3, 4, 4],
            "expected 2D or 3D input (got 4D input)",
        ),
        (&bn1, "BatchNorm1d", vec![3], "expected 2D or 3D input (got 1D input)"),
        (&bn2, "BatchNorm2d", vec![3, 4, 4], "expected 4D input (got 3D input)"),
        (
            &bn3,
            "BatchNorm3d",
            vec![2, 3, 4, 4],
            "expected 5D input (got 4D input)",
        ),
        (
            &bn1,
            "BatchNorm1d",
            vec![2, 4],
            "has 4 channels, the layer num_features = 3",
        ),
        (&bn2, "BatchNorm2d", vec![2, 2, 4, 4], "has 2 channels"),
        // PyTorch lets a layer without weight or running statistics take other channel counts.
        (&bare, "BatchNorm2d", vec![2, 4, 4, 4], "has 4 channels"),
        (
            &bn1,
            "BatchNorm1d",
            vec![1, 3],
            "expected more than 1 value per channel when training",
        ),
        (
            &bn2,
            "BatchNorm2d",
            vec![1, 3, 1, 1],
            "expected more than 1 value per channel",
        ),
        (
            &bn3,
            "BatchNorm3d",
            vec![1, 3, 1, 1, 1],
            "expected more than 1 value per channel",
        ),
    ];
    for (layer, name, shape, needle) in cases {
        let before = layer.buffers();
        let x = x(&shape);
        let e = refused(&tape, name, &[needle], || layer.forward(x));
        assert!(matches!(e, Error::BadShape { input: "x", .. }), "{e:?}");
        assert_eq!(layer.buffers(), before, "{name} {shape:?}: a refused batch was counted");
    }
    assert_eq!(count(&bn1), Some(Buffer::Count(0)));
    // Without running statistics a layer uses the batch's in eval mode too, and so refuses a
    // lone value there as well (PyTorch too); with them, eval mode takes it.
    let (mut bare, mut bn2) = (bare, bn2);
    bare.eval();
    bn2.eval();
    let lone = x(&[1, 3, 1, 1]);
    refused(&tape, "BatchNorm2d", &["more than 1 value"], || bare.forward(lone));
    assert!(bn2.forward(x(&[1, 3, 1, 1])).is_ok());

    // What the op would refuse, the layer refuses before binding its parameters: an empty
    // batch too large to describe, a weight or running statistic made the wrong size.
    let huge = x(&[0, 3, 1 << 30, 1 << 30]);
    refused(&tape, "BatchNorm2d", &["invalid output", "2^40"], || bn2.forward(huge));
    let mut bent = BatchNorm2d::new::<f64>(3, BatchNormConfig::new()).unwrap();
    *bent.weight.as_mut().unwrap().value_mut() = ArrayD::ones(IxDyn(&[4]));
    let batch = x(&[2, 3, 2, 2]);
    refused(
        &tape,
        "BatchNorm2d",
        &["weight has shape [4]", "must be [c] = [3]"],
        || bent.forward(batch),
    );
    let mut bent = BatchNorm2d::new::<f64>(3, BatchNormConfig::new()).unwrap();
    for (name, b) in bent.buffers_mut() {
        if let (true, BufferMut::Float(values)) = (name == "running_var", b) {
            *values = ArrayD::ones(IxDyn(&[2]));
        }
    }
    bent.eval();
    refused(&tape, "BatchNorm2d", &["running_var has shape [2]"], || {
        bent.forward(batch)
    });

    // A count that cannot grow any more is an error, not a wrap (PyTorch's int64 would wrap).
    let mut full = BatchNorm1d::new::<f64>(3, BatchNormConfig::new()).unwrap();
    set_count(&mut full, "num_batches_tracked", i64::MAX);
    let before = full.buffers();
    let batch = x(&[2, 3]);
    refused(
        &tape,
        "BatchNorm1d",
        &["invalid num_batches_tracked = 9223372036854775807", "another batch"],
        || full.forward(batch),
    );
    assert_eq!(full.buffers(), before);
    full.eval();
    assert!(full.forward(x(&[2, 3])).is_ok(), "eval mode counts nothing");
}

// ------------------------------------------------------------------ PyTorch cross-check

#[derive(Deserialize)]
struct TorchCheck {
    torch_file: String,
    x_eval: Tensor,
    y_eval: Tensor,
    x_step: Tensor,
    y_step: Tensor,
    out_f64: String,
    out_f32: String,
}

/// Run by `tools/check_batchnorm_state_dict.py`, which writes a PyTorch `state_dict` after a few
/// training steps, and PyTorch's outputs, and passes a JSON file describing them in
/// `ADJOINT_NORM_CHECK`; the script then loads what this test saves back into PyTorch.
/// Ignored in the normal suite: it needs those files.
#[test]
#[ignore = "run by tools/check_batchnorm_state_dict.py"]
fn torch_state_dict_cross_check() {
    let path = std::env::var("ADJOINT_NORM_CHECK").expect("set ADJOINT_NORM_CHECK to the JSON the script wrote");
    let check: TorchCheck = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut model = conv_bn::<f64>(&mut StdRng::seed_from_u64(0));
    io::load(&mut model, &check.torch_file).unwrap();
    model.eval();
    let tape = Tape::<f64>::new();
    let y = model.forward(tape.constant(check.x_eval.array())).unwrap();
    close(&y.value(), &check.y_eval.array(), "eval output of PyTorch's weights");
    model.train();
    let y = model.forward(tape.constant(check.x_step.array())).unwrap();
    close(&y.value(), &check.y_step.array(), "training step");
    io::save(&model, &check.out_f64).unwrap();
    let mut narrow = conv_bn::<f32>(&mut StdRng::seed_from_u64(0));
    io::from_bytes(&mut narrow, &io::to_bytes(&model).unwrap(), Path::new("<memory>")).unwrap();
    io::save(&narrow, &check.out_f32).unwrap();
    println!("adjoint loaded PyTorch's state_dict, matched its outputs, and saved its own after one more step");
}
