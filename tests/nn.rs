//! Layers against PyTorch (shapes, parameter counts, names, forward values from
//! `tests/fixtures/nn_reference.json`, written by `tools/gen_nn_fixtures.py`), their
//! initialisation, gradients (finite differences), weight sharing, errors and safetensors I/O.
//! No Python is needed to run this.

use adjoint::gradcheck::{GradcheckOptions, gradcheck};
use adjoint::nn::{
    Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d, Linear, Module, Sequential, Sigmoid,
    Tanh, io,
};
use adjoint::ops::conv::{ConvOptions, ConvTransposeOptions, conv_transpose2d, conv2d};
use adjoint::train::conv_autoencoder;
use adjoint::{Error, Float, Tape};
use ndarray::{Array2, ArrayD, Ix2, IxDyn};
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
enum Pad {
    Mode(String),
    Sizes(Vec<usize>),
}

/// A layer's constructor arguments, as PyTorch takes them.
#[derive(Deserialize, Clone, Debug)]
struct Spec {
    name: String,
    kind: String,
    rank: usize,
    c_in: usize,
    c_out: usize,
    kernel: Vec<usize>,
    stride: Vec<usize>,
    padding: Pad,
    dilation: Vec<usize>,
    groups: usize,
    output_padding: Vec<usize>,
    has_bias: bool,
    input_shape: Vec<usize>,
}

#[derive(Deserialize)]
struct LayerCase {
    #[serde(flatten)]
    spec: Spec,
    output_shape: Vec<usize>,
    weight_shape: Vec<usize>,
    bias_shape: Option<Vec<usize>>,
    parameter_count: usize,
    fan_in: usize,
    init_bound: f64,
}

#[derive(Deserialize)]
struct ForwardCase {
    #[serde(flatten)]
    spec: Spec,
    x: Tensor,
    weight: Tensor,
    bias: Tensor,
    y: Tensor,
}

#[derive(Deserialize)]
struct NamedShape {
    name: String,
    shape: Vec<usize>,
}

#[derive(Deserialize)]
struct Autoencoder {
    latent: usize,
    layers: usize,
    state_dict: Vec<NamedShape>,
    parameter_count: usize,
    input_shape: Vec<usize>,
    output_shape: Vec<usize>,
}

#[derive(Deserialize)]
struct Fixtures {
    layers: Vec<LayerCase>,
    autoencoder: Autoencoder,
    forward: Vec<ForwardCase>,
}

fn fixtures() -> Fixtures {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/nn_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The layer a spec describes, through the public constructors of each rank.
fn build<T: Float>(spec: &Spec, rng: &mut StdRng) -> adjoint::Result<Box<dyn Module<T>>> {
    let kernel = spec.kernel.clone();
    match spec.kind.as_str() {
        "linear" => Ok(Box::new(Linear::new(spec.c_in, spec.c_out, spec.has_bias, rng)?)),
        "conv" => {
            let opts = ConvOptions::new()
                .stride(spec.stride.clone())
                .dilation(spec.dilation.clone())
                .groups(spec.groups);
            let opts = match &spec.padding {
                Pad::Sizes(p) => opts.padding(p.clone()),
                Pad::Mode(m) if m == "same" => opts.same(),
                Pad::Mode(m) if m == "valid" => opts.valid(),
                Pad::Mode(m) => panic!("unknown padding {m}"),
            };
            let (c_in, c_out) = (spec.c_in, spec.c_out);
            let layer = match spec.rank {
                1 => Conv1d::new(c_in, c_out, kernel, opts, rng)?,
                2 => Conv2d::new(c_in, c_out, kernel, opts, rng)?,
                3 => Conv3d::new(c_in, c_out, kernel, opts, rng)?,
                r => panic!("rank {r}"),
            };
            Ok(Box::new(if spec.has_bias { layer } else { layer.without_bias() }))
        }
        "conv_transpose" => {
            let Pad::Sizes(padding) = &spec.padding else {
                panic!("transposed conv takes numeric padding")
            };
            let opts = ConvTransposeOptions::new()
                .stride(spec.stride.clone())
                .padding(padding.clone())
                .output_padding(spec.output_padding.clone())
                .dilation(spec.dilation.clone())
                .groups(spec.groups);
            let (c_in, c_out) = (spec.c_in, spec.c_out);
            let layer = match spec.rank {
                1 => ConvTranspose1d::new(c_in, c_out, kernel, opts, rng)?,
                2 => ConvTranspose2d::new(c_in, c_out, kernel, opts, rng)?,
                3 => ConvTranspose3d::new(c_in, c_out, kernel, opts, rng)?,
                r => panic!("rank {r}"),
            };
            Ok(Box::new(if spec.has_bias { layer } else { layer.without_bias() }))
        }
        other => panic!("unknown layer kind {other}"),
    }
}

fn max_abs_diff(a: &ArrayD<f64>, b: &ArrayD<f64>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

fn random(shape: &[usize], rng: &mut StdRng) -> ArrayD<f64> {
    ArrayD::from_shape_simple_fn(IxDyn(shape), || rng.random_range(-1.0..1.0))
}

fn snapshot<T: Float>(model: &impl Module<T>) -> Vec<(String, ArrayD<T>)> {
    model
        .parameters()
        .into_iter()
        .map(|(n, p)| (n, p.value().clone()))
        .collect()
}

// ------------------------------------------------------------------- shapes, counts, names

#[test]
fn layer_shapes_and_parameter_counts_match_pytorch() {
    let f = fixtures();
    assert!(f.layers.len() >= 20);
    for kind in ["conv", "conv_transpose", "linear"] {
        assert!(f.layers.iter().filter(|c| c.spec.kind == kind).count() >= 4, "{kind}");
    }
    let mut rng = StdRng::seed_from_u64(0);
    for case in &f.layers {
        let name = &case.spec.name;
        let layer = build::<f64>(&case.spec, &mut rng).unwrap_or_else(|e| panic!("{name}: {e}"));
        let params = layer.parameters();
        let names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
        let shapes: Vec<&[usize]> = params.iter().map(|(_, p)| p.value().shape()).collect();
        let mut want_names = vec!["weight"];
        let mut want_shapes = vec![case.weight_shape.as_slice()];
        if let Some(b) = &case.bias_shape {
            want_names.push("bias");
            want_shapes.push(b);
        }
        assert_eq!(names, want_names, "{name}: parameter names");
        assert_eq!(shapes, want_shapes, "{name}: parameter shapes");
        assert_eq!(layer.parameter_count(), case.parameter_count, "{name}: parameter count");

        let tape = Tape::<f64>::new();
        let y = layer
            .forward(tape.constant(ArrayD::zeros(IxDyn(&case.spec.input_shape))))
            .unwrap_or_else(|e| panic!("{name}: forward: {e}"));
        assert_eq!(y.shape(), case.output_shape, "{name}: output shape");
    }
}

#[test]
fn autoencoder_matches_pytorch_state_dict() {
    let want = fixtures().autoencoder;
    assert_eq!(want.parameter_count, 210_369);
    let mut rng = StdRng::seed_from_u64(0);
    let model = conv_autoencoder::<f32>(want.latent, &mut rng).unwrap();
    let got: Vec<(String, Vec<usize>)> = model
        .parameters()
        .into_iter()
        .map(|(n, p)| (n, p.value().shape().to_vec()))
        .collect();
    let expected: Vec<(String, Vec<usize>)> = want
        .state_dict
        .iter()
        .map(|e| (e.name.clone(), e.shape.clone()))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(got[0].0, "0.weight");
    assert_eq!(got[2].0, "2.weight");
    assert_eq!(model.parameter_count(), want.parameter_count);
    assert_eq!(model.len(), want.layers, "layers, counting activations as PyTorch does");

    let tape = Tape::<f32>::new();
    let x = tape.constant(ArrayD::from_elem(IxDyn(&want.input_shape), 0.5));
    let y = model.forward(x).unwrap();
    assert_eq!(y.shape(), want.output_shape);
    // Sigmoid output: strictly inside (0, 1).
    assert!(y.value().iter().all(|&v| v > 0.0 && v < 1.0));
}

/// PyTorch's `nn.Linear` takes a single vector `[in]` (and the doc of `adjoint::nn::Linear`
/// says `x: [.., in]`, zero or more leading axes): the output is `[out] = W x + b`.
#[test]
fn linear_on_a_single_vector_like_pytorch() {
    let f = fixtures();
    let case = f
        .layers
        .iter()
        .find(|c| c.spec.kind == "linear" && c.spec.input_shape.len() == 1)
        .expect("fixture has a 1-d Linear input");
    let mut rng = StdRng::seed_from_u64(0);
    let layer = Linear::<f64>::new(case.spec.c_in, case.spec.c_out, true, &mut rng).unwrap();
    let x = random(&case.spec.input_shape, &mut rng);
    let tape = Tape::<f64>::new();
    let y = layer.forward(tape.constant(x.clone()));
    let y = y.unwrap_or_else(|e| panic!("{}: {e}", case.spec.name));
    assert_eq!(y.shape(), case.output_shape);
    let w = layer.weight.value().clone().into_dimensionality::<Ix2>().unwrap();
    let want = w.dot(&x.into_dimensionality::<ndarray::Ix1>().unwrap()) + layer.bias.as_ref().unwrap().value();
    assert!(max_abs_diff(&y.value(), &want.into_dyn()) <= 1e-14);
}

// -------------------------------------------------------------------------- initialisation

/// PyTorch's rule: bound = 1/√fan_in, fan_in = weight.shape[1]·Πkernel, for weights and biases
/// alike (for a transposed conv `shape[1] = c_out/groups`).
fn torch_bound(weight_shape: &[usize]) -> (usize, f64) {
    let fan_in: usize = weight_shape[1..].iter().product();
    (fan_in, 1.0 / (fan_in as f64).sqrt())
}

#[test]
fn initialisation_within_pytorch_bounds_and_spread() {
    let f = fixtures();
    let mut spread_checked = 0;
    for (i, case) in f.layers.iter().enumerate() {
        let name = &case.spec.name;
        let mut rng = StdRng::seed_from_u64(100 + i as u64);
        let layer = build::<f64>(&case.spec, &mut rng).unwrap();
        let params = layer.parameters();
        let weight = params[0].1.value();
        let (fan_in, bound) = torch_bound(weight.shape());
        assert_eq!(fan_in, case.fan_in, "{name}: fan_in differs from PyTorch's");
        assert!((bound - case.init_bound).abs() < 1e-15, "{name}");
        for (pname, p) in &params {
            let worst = p.value().iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(worst <= bound, "{name}: {pname} has |value| {worst} > bound {bound}");
        }
        // Large layers: the values fill the interval, centred, with the variance of U(−b, b).
        if weight.len() >= 1000 {
            spread_checked += 1;
            let n = weight.len() as f64;
            let max = weight.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let mean = weight.sum() / n;
            let var = weight.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
            assert!(max > 0.95 * bound, "{name}: max |w| {max} vs bound {bound}");
            assert!(mean.abs() < 0.05 * bound, "{name}: mean {mean}");
            let want_var = bound * bound / 3.0;
            assert!(
                (var / want_var - 1.0).abs() < 0.1,
                "{name}: variance {var} vs {want_var}"
            );
            if let Some((_, b)) = params.get(1)
                && b.value().len() >= 30
            {
                let bmax = b.value().iter().fold(0.0f64, |m, v| m.max(v.abs()));
                assert!(bmax > 0.6 * bound, "{name}: biases not spread over the bound: {bmax}");
            }
        }
    }
    assert!(
        spread_checked >= 3,
        "need conv, transposed conv and linear among the large layers"
    );
}

#[test]
fn autoencoder_initialisation_bounds() {
    let mut rng = StdRng::seed_from_u64(5);
    let model = conv_autoencoder::<f64>(64, &mut rng).unwrap();
    let params = model.parameters();
    for pair in params.chunks(2) {
        let (wname, w) = &pair[0];
        let (_, bound) = torch_bound(w.value().shape());
        for (name, p) in pair {
            let max = p.value().iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(max <= bound, "{name}: {max} > {bound}");
            if p.value().len() >= 100 {
                assert!(max > 0.9 * bound, "{name}: {max} vs {bound} (from {wname})");
            }
        }
    }
}

#[test]
fn initialisation_is_seeded() {
    let make = |seed| conv_autoencoder::<f64>(64, &mut StdRng::seed_from_u64(seed)).unwrap();
    let (a, b, c) = (make(7), make(7), make(8));
    for (((name, pa), (_, pb)), (_, pc)) in a.parameters().iter().zip(b.parameters()).zip(c.parameters()) {
        assert_eq!(pa.value(), pb.value(), "{name}: same seed, different weights");
        assert_ne!(pa.value(), pc.value(), "{name}: different seeds, same weights");
    }
    // f32 models draw the same numbers, rounded.
    let single = conv_autoencoder::<f32>(64, &mut StdRng::seed_from_u64(7)).unwrap();
    for ((name, p32), (_, p64)) in single.parameters().iter().zip(a.parameters()) {
        assert!(
            p32.value().iter().zip(p64.value()).all(|(&s, &d)| s == d as f32),
            "{name}"
        );
    }
}

// --------------------------------------------------------------------------- forward values

#[test]
fn forward_values_match_pytorch() {
    let f = fixtures();
    assert!(f.forward.len() >= 7);
    for case in &f.forward {
        let name = &case.spec.name;
        let mut layer = build::<f64>(&case.spec, &mut StdRng::seed_from_u64(0)).unwrap();
        {
            let mut params = layer.parameters_mut();
            assert_eq!(params.len(), 2, "{name}");
            assert_eq!(params[0].1.value().shape(), case.weight.shape.as_slice(), "{name}");
            assert_eq!(params[1].1.value().shape(), case.bias.shape.as_slice(), "{name}");
            *params[0].1.value_mut() = case.weight.array();
            *params[1].1.value_mut() = case.bias.array();
        }
        let tape = Tape::<f64>::new();
        let y = layer.forward(tape.constant(case.x.array())).unwrap();
        let err = max_abs_diff(&y.value(), &case.y.array());
        assert!(err <= 1e-10, "{name}: output differs from PyTorch by {err:e}");
    }
}

// ------------------------------------------------------------------------------- gradients

/// Central differences of `objective` with respect to every element of every parameter.
fn fd_param_grads<M: Module<f64>>(model: &mut M, objective: impl Fn(&M) -> f64, eps: f64) -> Vec<ArrayD<f64>> {
    let count = model.parameters().len();
    let mut out = Vec::new();
    for k in 0..count {
        let n = model.parameters()[k].1.value().len();
        let mut grad = Vec::with_capacity(n);
        for j in 0..n {
            let nudge = |model: &mut M, by: f64| {
                let mut params = model.parameters_mut();
                *params[k].1.value_mut().iter_mut().nth(j).unwrap() += by;
            };
            nudge(model, eps);
            let plus = objective(model);
            nudge(model, -2.0 * eps);
            let minus = objective(model);
            nudge(model, eps);
            grad.push((plus - minus) / (2.0 * eps));
        }
        out.push(ArrayD::from_shape_vec(model.parameters()[k].1.value().raw_dim(), grad).unwrap());
    }
    out
}

fn small_sequential(rng: &mut StdRng) -> Sequential<f64> {
    Sequential::new()
        .add(Conv2d::new(2, 3, 3, ConvOptions::new().stride(2).padding(1), rng).unwrap())
        .add(Tanh)
        .add(
            ConvTranspose2d::new(
                3,
                2,
                3,
                ConvTransposeOptions::new().stride(2).padding(1).output_padding(1),
                rng,
            )
            .unwrap(),
        )
        .add(Sigmoid)
}

#[test]
fn sequential_gradcheck_wrt_input() {
    let mut rng = StdRng::seed_from_u64(11);
    let model = small_sequential(&mut rng);
    let x = random(&[2, 2, 6, 6], &mut rng);
    let report = gradcheck(|_, v| model.forward(v[0]), &[x], &GradcheckOptions::default()).unwrap();
    assert!(report.checked == 144);
    report.assert_passed();
}

/// The same computation built from the ops with the parameters as inputs is gradchecked; the
/// layers' own parameter gradients (found through `Parameter::grad`) must equal those, and
/// central differences taken by nudging the layers' parameters.
#[test]
fn sequential_parameter_gradients() {
    let mut rng = StdRng::seed_from_u64(12);
    let mut model = small_sequential(&mut rng);
    let x = random(&[2, 2, 6, 6], &mut rng);
    let u = random(&[2, 2, 6, 6], &mut rng);
    fn by_ops<'t>(v: &[adjoint::Var<'t, f64>]) -> adjoint::Result<adjoint::Var<'t, f64>> {
        let down = ConvOptions::new().stride(2).padding(1);
        let up = ConvTransposeOptions::new().stride(2).padding(1).output_padding(1);
        let h = conv2d(v[0], v[1], Some(v[2]), &down)?.tanh()?;
        conv_transpose2d(h, v[3], Some(v[4]), &up)?.sigmoid()
    }
    let mut inputs = vec![x.clone()];
    inputs.extend(model.parameters().iter().map(|(_, p)| p.value().clone()));
    assert_eq!(inputs.len(), 5);
    let report = gradcheck(|_, v| by_ops(v), &inputs, &GradcheckOptions::default()).unwrap();
    assert_eq!(report.checked, 144 + 54 + 3 + 54 + 2);
    report.assert_passed();

    // Analytic gradients of ⟨u, f⟩: from the ops, and from the layers.
    let op_grads: Vec<ArrayD<f64>> = {
        let tape = Tape::<f64>::new();
        let vars: Vec<_> = inputs.iter().map(|a| tape.param(a.clone())).collect();
        let y = by_ops(&vars).unwrap();
        let grads = tape.backward_with(y, u.clone()).unwrap();
        vars[1..].iter().map(|&v| grads[v].clone()).collect()
    };
    let layer_grads: Vec<ArrayD<f64>> = {
        let tape = Tape::<f64>::new();
        let y = model.forward(tape.constant(x.clone())).unwrap();
        let grads = tape.backward_with(y, u.clone()).unwrap();
        model
            .parameters()
            .iter()
            .map(|(n, p)| p.grad(&grads).unwrap_or_else(|| panic!("{n}: no gradient")).clone())
            .collect()
    };
    for ((a, b), (name, _)) in op_grads.iter().zip(&layer_grads).zip(model.parameters()) {
        assert!(
            max_abs_diff(a, b) <= 1e-12,
            "{name}: layer gradient differs from the op's"
        );
    }
    let objective = |m: &Sequential<f64>| {
        let tape = Tape::<f64>::new();
        let y = m.forward(tape.constant(x.clone())).unwrap();
        y.value().iter().zip(&u).map(|(a, b)| a * b).sum::<f64>()
    };
    let numeric = fd_param_grads(&mut model, objective, 1e-6);
    for ((n, a), (name, _)) in numeric.iter().zip(&layer_grads).zip(model.parameters()) {
        let err = max_abs_diff(n, a);
        assert!(err <= 1e-7, "{name}: analytic vs finite differences {err:e}");
    }
}

/// One layer used twice on one tape: its parameter is one node whose gradient is the sum of
/// both uses. For `y = (x Wᵀ) Wᵀ` and `L = ⟨U, y⟩`, `∂L/∂W = Uᵀ(x Wᵀ) + (U W)ᵀ x` by hand.
#[test]
fn weight_sharing_sums_gradients_linear_by_hand() {
    let mut rng = StdRng::seed_from_u64(13);
    let layer = Linear::<f64>::new(3, 3, false, &mut rng).unwrap();
    let x = random(&[4, 3], &mut rng);
    let u = random(&[4, 3], &mut rng);
    let tape = Tape::<f64>::new();
    let y = layer.forward(layer.forward(tape.constant(x.clone())).unwrap()).unwrap();
    let grads = tape.backward_with(y, u.clone()).unwrap();
    let got = layer.weight.grad(&grads).unwrap();

    let w: Array2<f64> = layer.weight.value().clone().into_dimensionality::<Ix2>().unwrap();
    let x2 = x.into_dimensionality::<Ix2>().unwrap();
    let u2 = u.into_dimensionality::<Ix2>().unwrap();
    let h = x2.dot(&w.t());
    let second_use = u2.t().dot(&h);
    let first_use = u2.dot(&w).t().dot(&x2);
    let want = (&second_use + &first_use).into_dyn();
    assert!(max_abs_diff(got, &want) <= 1e-12, "got {got}\nwant {want}");
    // Either use alone is not the answer.
    assert!(max_abs_diff(got, &second_use.into_dyn()) > 1e-3);
    assert!(max_abs_diff(got, &first_use.into_dyn()) > 1e-3);
}

/// A conv layer with bias applied twice (through a tanh): gradients against finite differences.
#[test]
fn weight_sharing_sums_gradients_conv() {
    struct Twice(adjoint::nn::Conv<f64>);
    impl Module<f64> for Twice {
        fn forward<'t>(&self, x: adjoint::Var<'t, f64>) -> adjoint::Result<adjoint::Var<'t, f64>> {
            self.0.forward(self.0.forward(x)?.tanh()?)
        }
        fn parameters(&self) -> Vec<(String, &adjoint::nn::Parameter<f64>)> {
            self.0.parameters()
        }
        fn parameters_mut(&mut self) -> Vec<(String, &mut adjoint::nn::Parameter<f64>)> {
            self.0.parameters_mut()
        }
    }
    let mut rng = StdRng::seed_from_u64(14);
    let mut model = Twice(Conv1d::new(2, 2, 3, ConvOptions::new().padding(1), &mut rng).unwrap());
    let x = random(&[2, 2, 7], &mut rng);
    let u = random(&[2, 2, 7], &mut rng);
    let analytic: Vec<ArrayD<f64>> = {
        let tape = Tape::<f64>::new();
        let y = model.forward(tape.constant(x.clone())).unwrap();
        // Both uses bound the weight to one node: binding again finds it.
        let w = model.0.weight.bind(&tape);
        assert!(w.id() < y.id());
        let grads = tape.backward_with(y, u.clone()).unwrap();
        assert_eq!(grads.get(w), model.0.weight.grad(&grads));
        model
            .parameters()
            .iter()
            .map(|(_, p)| p.grad(&grads).unwrap().clone())
            .collect()
    };
    let objective = |m: &Twice| {
        let tape = Tape::<f64>::new();
        let y = m.forward(tape.constant(x.clone())).unwrap();
        y.value().iter().zip(&u).map(|(a, b)| a * b).sum::<f64>()
    };
    let numeric = fd_param_grads(&mut model, objective, 1e-6);
    for (a, n) in analytic.iter().zip(&numeric) {
        let err = max_abs_diff(a, n);
        assert!(
            err <= 1e-7,
            "shared conv: analytic vs finite differences {err:e}\n{a}\n{n}"
        );
    }
}

// ---------------------------------------------------------------------------------- errors

fn is_invalid<T>(r: adjoint::Result<T>) -> bool {
    matches!(r, Err(Error::InvalidArgument { .. }))
}

#[test]
fn constructors_refuse_bad_settings() {
    let mut rng = StdRng::seed_from_u64(0);
    let o = ConvOptions::new;
    let t = ConvTransposeOptions::new;
    assert!(is_invalid(Conv2d::new::<f32>(0, 4, 3, o(), &mut rng)));
    assert!(is_invalid(Conv2d::new::<f32>(4, 0, 3, o(), &mut rng)));
    assert!(
        is_invalid(Conv2d::new::<f32>(3, 4, 3, o().groups(2), &mut rng)),
        "c_in % groups"
    );
    assert!(
        is_invalid(Conv2d::new::<f32>(4, 3, 3, o().groups(2), &mut rng)),
        "c_out % groups"
    );
    assert!(is_invalid(Conv2d::new::<f32>(4, 4, 3, o().groups(0), &mut rng)));
    assert!(
        is_invalid(Conv2d::new::<f32>(4, 4, [3, 3, 3], o(), &mut rng)),
        "3 kernel sizes for 2d"
    );
    assert!(
        is_invalid(Conv2d::new::<f32>(4, 4, [3, 0], o(), &mut rng)),
        "zero kernel"
    );
    assert!(is_invalid(Conv1d::new::<f32>(4, 4, [3, 3], o(), &mut rng)));
    assert!(is_invalid(Conv3d::new::<f32>(4, 4, [3, 3], o(), &mut rng)));
    assert!(is_invalid(ConvTranspose2d::new::<f32>(0, 4, 3, t(), &mut rng)));
    assert!(is_invalid(ConvTranspose2d::new::<f32>(
        4,
        6,
        3,
        t().groups(4),
        &mut rng
    )));
    assert!(is_invalid(ConvTranspose2d::new::<f32>(4, 4, [2, 2, 2], t(), &mut rng)));
    assert!(is_invalid(ConvTranspose1d::new::<f32>(4, 4, 0, t(), &mut rng)));
    assert!(is_invalid(Linear::<f32>::new(0, 3, true, &mut rng)));
    assert!(is_invalid(Linear::<f32>::new(3, 0, false, &mut rng)));
    // Sanity: the same calls with good values succeed.
    assert!(Conv2d::new::<f32>(4, 6, [3, 1], o().groups(2), &mut rng).is_ok());
    assert!(ConvTranspose2d::new::<f32>(4, 8, 3, t().groups(4), &mut rng).is_ok());
    assert!(Linear::<f32>::new(3, 1, true, &mut rng).is_ok());
}

#[test]
fn forward_on_bad_input_is_an_error() {
    let mut rng = StdRng::seed_from_u64(0);
    let conv = Conv2d::new::<f64>(3, 4, 3, ConvOptions::new(), &mut rng).unwrap();
    let convt = ConvTranspose2d::new::<f64>(4, 2, 3, ConvTransposeOptions::new().stride(2), &mut rng).unwrap();
    let linear = Linear::<f64>::new(4, 2, true, &mut rng).unwrap();
    let strided0 = Conv2d::new::<f64>(3, 4, 3, ConvOptions::new().stride(0), &mut rng).unwrap();
    let bad_op = ConvTranspose2d::new::<f64>(4, 2, 3, ConvTransposeOptions::new().output_padding(2), &mut rng).unwrap();
    let tape = Tape::<f64>::new();
    let x = |shape: &[usize]| tape.constant(ArrayD::zeros(IxDyn(shape)));
    assert!(conv.forward(x(&[1, 2, 8, 8])).is_err(), "wrong channel count");
    assert!(conv.forward(x(&[1, 3, 2, 2])).is_err(), "input smaller than the kernel");
    assert!(conv.forward(x(&[1, 1, 3, 8, 8])).is_err(), "rank 5 for a 2d conv");
    assert!(conv.forward(x(&[3, 8])).is_err(), "rank 2 for a 2d conv");
    assert!(convt.forward(x(&[1, 3, 5, 5])).is_err(), "wrong channel count");
    assert!(linear.forward(x(&[2, 3])).is_err(), "wrong in_features");
    assert!(linear.forward(x(&[2, 4, 1])).is_err(), "wrong last axis");
    assert!(strided0.forward(x(&[1, 3, 8, 8])).is_err(), "stride 0");
    assert!(
        bad_op.forward(x(&[1, 4, 5, 5])).is_err(),
        "output_padding ≥ stride and dilation"
    );
    // Sanity: right shapes work.
    assert_eq!(conv.forward(x(&[1, 3, 8, 8])).unwrap().shape(), [1, 4, 6, 6]);
    assert_eq!(linear.forward(x(&[2, 4])).unwrap().shape(), [2, 2]);
}

/// PyTorch's `forward(x, output_size=..)`: the size picks the output padding per call (the
/// layer's own is not used), given as spatial sizes or as a whole shape such as a skip
/// connection's; the result is the op with the output padding PyTorch's rule gives,
/// `op = output_size − o_min`.
#[test]
fn conv_transpose_layer_forward_with_output_size() {
    let mut rng = StdRng::seed_from_u64(3);
    // o_min = (5 − 1)·2 − 2·1 + 3 = 9: output sizes 9 and 10 map back to 5.
    let opts = ConvTransposeOptions::new().stride(2).padding(1).output_padding(1);
    let up = ConvTranspose2d::new::<f64>(3, 2, 3, opts, &mut rng).unwrap();
    let tape = Tape::<f64>::new();
    let x = tape.constant(random(&[2, 3, 5, 5], &mut rng));
    let (w, b) = (up.weight.bind(&tape), up.bias.as_ref().map(|b| b.bind(&tape)));
    for (size, op) in [(9, 0), (10, 1)] {
        let expected = conv_transpose2d(
            x,
            w,
            b,
            &ConvTransposeOptions::new().stride(2).padding(1).output_padding(op),
        )
        .unwrap()
        .value();
        for output_size in [vec![size, size], vec![2, 2, size, size], vec![7, 99, size, size]] {
            let y = up.forward_with_output_size(x, output_size.clone()).unwrap();
            assert_eq!(y.shape(), [2, 2, size, size], "{output_size:?}");
            assert_eq!(y.value(), expected, "{output_size:?}");
        }
    }
    let before = tape.len();
    match up.forward_with_output_size(x, [11, 11]) {
        Err(Error::InvalidArgument { op, param, .. }) => {
            assert_eq!((op, param), ("conv_transpose", "output_size"));
        }
        other => panic!(
            "size 11 is out of reach of a 5-long input: {:?}",
            other.map(|y| y.shape())
        ),
    }
    assert_eq!(tape.len(), before, "a refused call records nothing");
}

// ----------------------------------------------------------------------------- safetensors

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("adjoint-test-nn-{}-{name}.safetensors", std::process::id()))
}

fn bit_identical<T: Float>(a: &[(String, ArrayD<T>)], b: &[(String, ArrayD<T>)]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|((na, va), (nb, vb))| {
            na == nb
                && va.shape() == vb.shape()
                && va
                    .iter()
                    .zip(vb)
                    .all(|(x, y)| Float::to_f64(*x).to_bits() == Float::to_f64(*y).to_bits())
        })
}

#[test]
fn safetensors_bytes_round_trip() {
    let source = conv_autoencoder::<f32>(64, &mut StdRng::seed_from_u64(1)).unwrap();
    let mut target = conv_autoencoder::<f32>(64, &mut StdRng::seed_from_u64(2)).unwrap();
    assert!(!bit_identical(&snapshot(&source), &snapshot(&target)));
    let bytes = io::to_bytes(&source).unwrap();
    io::from_bytes(&mut target, &bytes, std::path::Path::new("<memory>")).unwrap();
    assert!(bit_identical(&snapshot(&source), &snapshot(&target)));

    // The file holds F32 tensors named as PyTorch's state_dict, 4 bytes each.
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = file.names().into_iter().map(String::from).collect();
    names.sort();
    let mut want: Vec<String> = source.parameters().into_iter().map(|(n, _)| n).collect();
    want.sort();
    assert_eq!(names, want);
    for (name, p) in source.parameters() {
        let view = file.tensor(&name).unwrap();
        assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
        assert_eq!(view.shape(), p.value().shape(), "{name}");
        let first = f32::from_le_bytes(view.data()[..4].try_into().unwrap());
        assert_eq!(first.to_bits(), p.value().iter().next().unwrap().to_bits(), "{name}");
    }

    // f64 models write F64 and round-trip exactly too.
    let source64 = small_sequential(&mut StdRng::seed_from_u64(3));
    let mut target64 = small_sequential(&mut StdRng::seed_from_u64(4));
    let bytes64 = io::to_bytes(&source64).unwrap();
    let file64 = safetensors::SafeTensors::deserialize(&bytes64).unwrap();
    assert_eq!(file64.tensor("0.weight").unwrap().dtype(), safetensors::Dtype::F64);
    io::from_bytes(&mut target64, &bytes64, std::path::Path::new("<memory>")).unwrap();
    assert!(bit_identical(&snapshot(&source64), &snapshot(&target64)));

    // An f32 file loads into an f64 model as the same (widened) numbers.
    let mut wide = conv_autoencoder::<f64>(64, &mut StdRng::seed_from_u64(9)).unwrap();
    io::from_bytes(&mut wide, &bytes, std::path::Path::new("<memory>")).unwrap();
    for ((name, a), (_, b)) in source.parameters().iter().zip(wide.parameters()) {
        assert!(a.value().iter().zip(b.value()).all(|(&s, &d)| s as f64 == d), "{name}");
    }
}

#[test]
fn safetensors_file_round_trip() {
    let path = temp_path("round-trip");
    let source = conv_autoencoder::<f32>(16, &mut StdRng::seed_from_u64(1)).unwrap();
    let mut target = conv_autoencoder::<f32>(16, &mut StdRng::seed_from_u64(2)).unwrap();
    io::save(&source, &path).unwrap();
    let loaded = io::load(&mut target, &path);
    let _ = std::fs::remove_file(&path);
    loaded.unwrap();
    assert!(bit_identical(&snapshot(&source), &snapshot(&target)));
    // A loaded model computes the same thing.
    let x = ArrayD::from_shape_simple_fn(IxDyn(&[2, 1, 28, 28]), {
        let mut rng = StdRng::seed_from_u64(5);
        move || rng.random_range(0.0..1.0f32)
    });
    let tape = Tape::<f32>::new();
    let ya = source.forward(tape.constant(x.clone())).unwrap().value();
    let yb = target.forward(tape.constant(x)).unwrap().value();
    assert_eq!(*ya, *yb);
}

/// Rebuilds a safetensors file from `bytes`, changing each tensor's shape and data with `edit`
/// (drop one: `None`).
fn rewrite(bytes: &[u8], edit: impl Fn(&str, Vec<usize>, Vec<u8>) -> Option<(Vec<usize>, Vec<u8>)>) -> Vec<u8> {
    let file = safetensors::SafeTensors::deserialize(bytes).unwrap();
    let tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = file
        .tensors()
        .into_iter()
        .filter_map(|(name, view)| {
            let (shape, data) = edit(&name, view.shape().to_vec(), view.data().to_vec())?;
            Some((name, view.dtype(), shape, data))
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
fn safetensors_bad_files_are_refused_and_leave_the_model_unchanged() {
    let mut model = conv_autoencoder::<f32>(64, &mut StdRng::seed_from_u64(1)).unwrap();
    let before = snapshot(&model);
    // A good file from another seed: every tensor but one would change the model.
    let good = io::to_bytes(&conv_autoencoder::<f32>(64, &mut StdRng::seed_from_u64(2)).unwrap()).unwrap();
    // The last parameter is the one broken, so a loader that writes as it goes would have
    // changed all the others before noticing.
    let last = before.last().unwrap().0.clone();
    assert_eq!(last, "9.bias");

    let missing = rewrite(&good, |name, shape, data| (name != "9.bias").then_some((shape, data)));
    let reshaped = rewrite(&good, |name, shape, data| {
        Some((if name == "9.weight" { vec![16, 9] } else { shape }, data))
    });
    let wrong_dtype = {
        let data = vec![0u8; 4];
        let file = safetensors::SafeTensors::deserialize(&good).unwrap();
        let mut views: Vec<(String, safetensors::tensor::TensorView<'_>)> =
            file.tensors().into_iter().filter(|(n, _)| n != "9.bias").collect();
        views.push((
            "9.bias".into(),
            safetensors::tensor::TensorView::new(safetensors::Dtype::I32, vec![1], &data).unwrap(),
        ));
        safetensors::serialize(views, None).unwrap()
    };
    let truncated = good[..good.len() / 2].to_vec();
    let garbage = b"this is not a safetensors file, just some bytes".to_vec();
    let mut huge_header = good.clone();
    huge_header[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    // A smaller model's file: the tensors it has match, the rest are missing.
    let partial = io::to_bytes(
        &Sequential::<f32>::new().add(
            Conv2d::new(
                1,
                16,
                3,
                ConvOptions::new().stride(2).padding(1),
                &mut StdRng::seed_from_u64(3),
            )
            .unwrap(),
        ),
    )
    .unwrap();
    let other_latent = io::to_bytes(&conv_autoencoder::<f32>(32, &mut StdRng::seed_from_u64(4)).unwrap()).unwrap();
    // Every tensor right, plus one the model does not have (PyTorch's strict loading refuses it).
    let extra = {
        let data = vec![0u8; 4];
        let file = safetensors::SafeTensors::deserialize(&good).unwrap();
        let mut views: Vec<(String, safetensors::tensor::TensorView<'_>)> = file.tensors();
        views.push((
            "12.weight".into(),
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1], &data).unwrap(),
        ));
        safetensors::serialize(views, None).unwrap()
    };

    for (what, bytes) in [
        ("a missing tensor", &missing),
        ("a wrong shape", &reshaped),
        ("a wrong dtype", &wrong_dtype),
        ("a truncated file", &truncated),
        ("garbage", &garbage),
        ("an absurd header size", &huge_header),
        ("another model's file", &partial),
        ("another latent size", &other_latent),
        ("an unexpected extra tensor", &extra),
        ("an empty file", &Vec::new()),
    ] {
        let path = temp_path("bad");
        std::fs::write(&path, bytes).unwrap();
        let from_file = io::load(&mut model, &path);
        let _ = std::fs::remove_file(&path);
        assert!(matches!(from_file, Err(Error::Weights { .. })), "{what}: {from_file:?}");
        let err = from_file.unwrap_err().to_string();
        assert!(
            err.contains("adjoint-test-nn"),
            "{what}: the error should name the file: {err}"
        );
        assert!(bit_identical(&before, &snapshot(&model)), "{what}: model changed");
        let from_memory = io::from_bytes(&mut model, bytes, std::path::Path::new("<memory>"));
        assert!(
            matches!(from_memory, Err(Error::Weights { .. })),
            "{what}: {from_memory:?}"
        );
        assert!(bit_identical(&before, &snapshot(&model)), "{what}: model changed");
    }
    let nowhere = io::load(&mut model, temp_path("does-not-exist"));
    assert!(matches!(nowhere, Err(Error::Weights { .. })));
    // And the good file does load (so the checks above are not vacuous).
    io::from_bytes(&mut model, &good, std::path::Path::new("<memory>")).unwrap();
    assert!(!bit_identical(&before, &snapshot(&model)));
}

/// Sets the value at row-major `index` of parameter `name`.
fn set_value<T: Float>(model: &mut impl Module<T>, name: &str, index: usize, value: T) {
    let mut params = model.parameters_mut();
    let (_, p) = params.iter_mut().find(|(n, _)| n == name).unwrap();
    *p.value_mut().iter_mut().nth(index).unwrap() = value;
}

/// What a diverged run leaves, and how the errors print it.
const NON_FINITE: [(&str, usize, f32, &str); 3] = [
    ("0.weight", 17, f32::NAN, "NaN"),
    ("9.bias", 0, f32::INFINITY, "inf"),
    ("5.weight", 3, f32::NEG_INFINITY, "-inf"),
];

#[test]
fn save_refuses_non_finite_weights_and_leaves_the_file_as_it_was() {
    let path = temp_path("non-finite");
    io::save(
        &conv_autoencoder::<f32>(8, &mut StdRng::seed_from_u64(1)).unwrap(),
        &path,
    )
    .unwrap();
    let saved = std::fs::read(&path).unwrap();
    for (name, index, value, printed) in NON_FINITE {
        let mut model = conv_autoencoder::<f32>(8, &mut StdRng::seed_from_u64(2)).unwrap();
        assert_eq!(io::first_non_finite(&model), None);
        set_value(&mut model, name, index, value);
        let what = format!("{name} holds {printed} at index {index}");
        assert_eq!(io::first_non_finite(&model).as_deref(), Some(what.as_str()));

        let err = io::save(&model, &path).unwrap_err();
        assert!(matches!(err, Error::Weights { op: "save", .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains(&what) && message.contains("adjoint-test-nn"),
            "{message}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), saved, "{what}: the file changed");
        let err = io::to_bytes(&model).unwrap_err();
        assert!(err.to_string().contains(&what), "{err}");
    }
    let _ = std::fs::remove_file(&path);
}

/// Saving writes a new file renamed over the old name, not into the old file: a second name
/// for the old file (a hard link, or a reader that has it open) still sees the old weights,
/// whole. Writing in place would change them too.
#[test]
fn save_replaces_the_file_instead_of_writing_into_it() {
    let dir = std::env::temp_dir().join(format!("adjoint-test-nn-{}-atomic", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (path, link) = (dir.join("weights.safetensors"), dir.join("link.safetensors"));
    let (a, b) = (
        conv_autoencoder::<f32>(8, &mut StdRng::seed_from_u64(1)).unwrap(),
        conv_autoencoder::<f32>(8, &mut StdRng::seed_from_u64(2)).unwrap(),
    );
    io::save(&a, &path).unwrap();
    std::fs::hard_link(&path, &link).unwrap();
    io::save(&b, &path).unwrap();
    let (now, linked) = (std::fs::read(&path).unwrap(), std::fs::read(&link).unwrap());
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(now, io::to_bytes(&b).unwrap());
    assert_eq!(linked, io::to_bytes(&a).unwrap(), "the old file was written into");
    assert_eq!(
        names,
        ["link.safetensors", "weights.safetensors"],
        "a temporary file was left"
    );
}

#[test]
fn load_refuses_non_finite_values_and_values_beyond_the_model_type() {
    let good = io::to_bytes(&conv_autoencoder::<f32>(8, &mut StdRng::seed_from_u64(1)).unwrap()).unwrap();
    let mut model = conv_autoencoder::<f32>(8, &mut StdRng::seed_from_u64(2)).unwrap();
    let before = snapshot(&model);
    let path = temp_path("non-finite-load");
    for (name, index, value, printed) in NON_FINITE {
        let bad = rewrite(&good, |n, shape, mut data| {
            if n == name {
                data[4 * index..4 * index + 4].copy_from_slice(&value.to_le_bytes());
            }
            Some((shape, data))
        });
        std::fs::write(&path, &bad).unwrap();
        let err = io::load(&mut model, &path).unwrap_err();
        assert!(matches!(err, Error::Weights { op: "load", .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains(&format!("{name} holds {printed} at index {index}"))
                && message.contains(&*path.to_string_lossy()),
            "{message}"
        );
        assert!(bit_identical(&before, &snapshot(&model)), "{name}: model changed");
    }
    let _ = std::fs::remove_file(&path);

    // An F64 file may hold finite values an f32 model cannot: 1e300 would load as inf.
    let mut wide = conv_autoencoder::<f64>(8, &mut StdRng::seed_from_u64(3)).unwrap();
    set_value(&mut wide, "4.bias", 2, 1e300);
    let wide_bytes = io::to_bytes(&wide).unwrap();
    let err = io::from_bytes(&mut model, &wide_bytes, std::path::Path::new("wide.safetensors")).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("4.bias holds 1e300 at index 2, beyond the range of f32"),
        "{message}"
    );
    assert!(bit_identical(&before, &snapshot(&model)), "model changed");
    // The same file loads into an f64 model, and the good f32 file into this one: the
    // refusals above are the values', not the files'.
    let mut f64_model = conv_autoencoder::<f64>(8, &mut StdRng::seed_from_u64(4)).unwrap();
    io::from_bytes(&mut f64_model, &wide_bytes, std::path::Path::new("<memory>")).unwrap();
    assert!(bit_identical(&snapshot(&wide), &snapshot(&f64_model)));
    io::from_bytes(&mut model, &good, std::path::Path::new("<memory>")).unwrap();
}

// ------------------------------------------------------------------ PyTorch cross-check

#[derive(Deserialize)]
struct TorchCheck {
    weights: String,
    latent: usize,
    x: Tensor,
    y32: Tensor,
    y64: Tensor,
}

/// Run by `tools/check_safetensors_in_torch.py`, which loads a weights file into the PyTorch
/// `nn.Sequential`, writes its outputs on random inputs to a JSON file and passes its path in
/// `ADJOINT_TORCH_CHECK`. Ignored in the normal suite: it needs that file.
#[test]
#[ignore = "run by tools/check_safetensors_in_torch.py"]
fn torch_cross_check() {
    let path = std::env::var("ADJOINT_TORCH_CHECK").expect("set ADJOINT_TORCH_CHECK to the JSON the script wrote");
    let check: TorchCheck = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut rng = StdRng::seed_from_u64(0);
    let mut m32 = conv_autoencoder::<f32>(check.latent, &mut rng).unwrap();
    let mut m64 = conv_autoencoder::<f64>(check.latent, &mut rng).unwrap();
    io::load(&mut m32, &check.weights).unwrap();
    io::load(&mut m64, &check.weights).unwrap();
    let x = check.x.array();
    let tape32 = Tape::<f32>::new();
    let y32 = m32
        .forward(tape32.constant(x.mapv(|v| v as f32)))
        .unwrap()
        .value()
        .mapv(f64::from);
    let tape64 = Tape::<f64>::new();
    let y64 = (*m64.forward(tape64.constant(x)).unwrap().value()).clone();
    let (e32, e64) = (
        max_abs_diff(&y32, &check.y32.array()),
        max_abs_diff(&y64, &check.y64.array()),
    );
    println!(
        "max |adjoint − torch|: f32 {e32:e}, f64 {e64:e} over {} outputs",
        y64.len()
    );
    assert!(e32 <= 1e-5, "f32 outputs differ from PyTorch by {e32:e}");
    assert!(e64 <= 1e-12, "f64 outputs differ from PyTorch by {e64:e}");
}

/// `Flatten` then `Unflatten` is a round trip that keeps every value in place (row-major order,
/// as PyTorch's `view`), and gradients flow through both (first and second order).
#[test]
fn flatten_unflatten_round_trip_and_gradients() {
    use adjoint::gradcheck::gradgradcheck;
    use adjoint::nn::{Flatten, Unflatten};
    let x = ArrayD::from_shape_fn(IxDyn(&[2, 3, 2, 2]), |i| {
        (i[0] * 1000 + i[1] * 100 + i[2] * 10 + i[3]) as f64
    });
    let tape = Tape::<f64>::new();
    let flat = Module::<f64>::forward(&Flatten, tape.constant(x.clone())).unwrap();
    assert_eq!(flat.shape(), vec![2, 12]);
    // Row-major: the 6th value of sample 1 is channel 1, row 0, column 1.
    assert_eq!(flat.value()[[1, 5]], 1101.0);
    let unflatten = Unflatten::new(&[3, 2, 2]).unwrap();
    let back = Module::<f64>::forward(&unflatten, flat).unwrap();
    assert_eq!(*back.value(), x);

    let mut rng = StdRng::seed_from_u64(21);
    let input = random(&[2, 3, 2, 2], &mut rng);
    fn f<'t>(_: &'t Tape<f64>, v: &[adjoint::Var<'t, f64>]) -> adjoint::Result<adjoint::Var<'t, f64>> {
        let y = Module::<f64>::forward(&Flatten, v[0])?;
        let y = Module::<f64>::forward(&Unflatten::new(&[3, 2, 2])?, y.mul(y)?)?;
        y.mul(v[0])
    }
    gradcheck(f, std::slice::from_ref(&input), &GradcheckOptions::default())
        .unwrap()
        .assert_passed();
    gradgradcheck(f, &[input], &GradcheckOptions::default())
        .unwrap()
        .assert_passed();
}

#[test]
fn flatten_unflatten_refuse_wrong_shapes() {
    use adjoint::nn::{Flatten, Unflatten};
    let message = |e: Error| e.to_string();
    assert!(message(Unflatten::new(&[]).unwrap_err()).contains("Unflatten"));
    let zero = message(Unflatten::new(&[3, 0]).unwrap_err());
    assert!(zero.contains("sizes") && zero.contains("[3, 0]"), "{zero}");
    let tape = Tape::<f32>::new();
    let e = message(Module::<f32>::forward(&Flatten, tape.constant(ArrayD::zeros(IxDyn(&[5])))).unwrap_err());
    assert!(e.contains("Flatten") && e.contains("rank"), "{e}");
    let unflatten = Unflatten::new(&[3, 4]).unwrap();
    let e = message(Module::<f32>::forward(&unflatten, tape.constant(ArrayD::zeros(IxDyn(&[2, 13])))).unwrap_err());
    assert!(e.contains("Unflatten") && e.contains("[2, 13]"), "{e}");
    // Sizes whose product wraps around usize must not match a small axis.
    let huge = Unflatten::new(&[1 << 33, 1 << 31]).unwrap();
    assert!(Module::<f32>::forward(&huge, tape.constant(ArrayD::zeros(IxDyn(&[1, 1])))).is_err());
}

/// `normal`: seeded, the requested spread (the sample mean and variance of 200,000 draws lie
/// within 5 standard errors of 0 and std²), zero spread allowed, bad settings refused.
#[test]
fn normal_is_seeded_with_the_requested_moments() {
    use adjoint::nn::normal;
    let draw = |seed| normal::<f64>(&[200, 1000], 0.5, &mut StdRng::seed_from_u64(seed)).unwrap();
    let a = draw(3);
    assert_eq!(a, draw(3));
    assert_ne!(a, draw(4));
    let n = a.len() as f64;
    let mean = a.sum() / n;
    let var = a.mapv(|v| (v - mean).powi(2)).sum() / (n - 1.0);
    // Standard errors: σ/√n for the mean, σ²·√(2/(n−1)) for the variance of a normal sample.
    assert!(mean.abs() < 5.0 * 0.5 / n.sqrt(), "mean {mean}");
    assert!(
        (var - 0.25).abs() < 5.0 * 0.25 * (2.0 / (n - 1.0)).sqrt(),
        "variance {var}"
    );
    // Tails as a normal's: about 4.55% of the draws beyond 2σ.
    let beyond = a.iter().filter(|v| v.abs() > 1.0).count() as f64 / n;
    assert!((beyond - 0.0455).abs() < 0.002, "share beyond 2σ {beyond}");
    assert!(
        normal::<f32>(&[4], 0.0, &mut StdRng::seed_from_u64(0))
            .unwrap()
            .iter()
            .all(|&v| v == 0.0)
    );
    for std in [-1.0, f64::NAN, f64::INFINITY] {
        let e = normal::<f32>(&[4], std, &mut StdRng::seed_from_u64(0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("normal") && e.contains("std"), "{e}");
    }
    assert!(normal::<f32>(&[usize::MAX, 2], 1.0, &mut StdRng::seed_from_u64(0)).is_err());
}
