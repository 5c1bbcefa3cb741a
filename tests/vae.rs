//! The convolutional VAE (`adjoint::models::ConvVae`) and its loss against PyTorch float64
//! (`tools/gen_vae_fixtures.py` wrote `tests/fixtures/vae_reference.json` from the twin's own
//! class in `tools/twin_vae.py`): state_dict names, the whole model's outputs, loss parts and
//! gradients for fixed weights, the loss's first and second derivatives; finite-difference
//! checks of the loss and the reparameterisation; no gradient to the noise; determinism for a
//! seed; refusals.

use adjoint::gradcheck::{GradcheckOptions, gradcheck, gradgradcheck};
use adjoint::models::{ConvVae, Upsampling, vae_loss};
use adjoint::nn::{Module, io, normal};
use adjoint::{Error, Tape, Var};
use ndarray::{ArrayD, IxDyn};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Deserialize;

#[path = "support/num.rs"]
mod num;
#[path = "support/tensor.rs"]
mod tensor;
use tensor::{Tensor, close};

#[derive(Deserialize)]
struct StateDict {
    state_dict: Vec<(String, Vec<usize>)>,
    parameters: usize,
}

#[derive(Deserialize)]
struct ModelCase {
    upsample: String,
    latent: usize,
    x: Tensor,
    eps: Tensor,
    mu: Tensor,
    logvar: Tensor,
    logits: Tensor,
    total: f64,
    rec: f64,
    kl: f64,
    grads: Vec<(String, Tensor)>,
}

#[derive(Deserialize)]
struct LossCase {
    name: String,
    logits: Tensor,
    x: Tensor,
    mu: Tensor,
    logvar: Tensor,
    total: f64,
    rec: f64,
    kl: f64,
    grad_logits: Tensor,
    grad_mu: Tensor,
    grad_logvar: Tensor,
    v_mu: Tensor,
    v_logvar: Tensor,
    hvp_mu: Tensor,
    hvp_logvar: Tensor,
}

#[derive(Deserialize)]
struct Fixtures {
    state_dict: std::collections::HashMap<String, StateDict>,
    models: Vec<ModelCase>,
    losses: Vec<LossCase>,
}

fn fixtures() -> Fixtures {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/vae_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn upsampling(mode: &str) -> Upsampling {
    match mode {
        "transposed" => Upsampling::Transposed,
        "resize" => Upsampling::Resize,
        other => panic!("unknown mode {other}"),
    }
}

fn close_scalar(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= 1e-10 * expected.abs().max(1.0),
        "{what}: got {actual:e}, PyTorch gives {expected:e}"
    );
}

#[test]
fn state_dict_is_the_twins() {
    let fixtures = fixtures();
    for mode in ["transposed", "resize"] {
        let vae = ConvVae::<f32>::new(16, upsampling(mode), &mut StdRng::seed_from_u64(0)).unwrap();
        let twin = &fixtures.state_dict[mode];
        let ours: Vec<(String, Vec<usize>)> = vae
            .parameters()
            .into_iter()
            .map(|(name, p)| (name, p.value().shape().to_vec()))
            .collect();
        assert_eq!(ours, twin.state_dict, "{mode}: names, order and shapes");
        assert_eq!(vae.state_dict_keys().len(), twin.state_dict.len(), "{mode}: no buffers");
        assert_eq!(vae.parameter_count(), twin.parameters, "{mode}");
    }
}

/// The weights of the fixture's "models" cases, from the formula the generator uses.
fn formula_weights(vae: &mut ConvVae<f64>) {
    for (p, (_, param)) in vae.parameters_mut().into_iter().enumerate() {
        let value = param.value_mut();
        let shape = value.shape().to_vec();
        let scale = if shape.len() == 1 {
            0.5
        } else {
            1.0 / (value.len() as f64 / shape[0] as f64).sqrt()
        };
        for (i, v) in value.iter_mut().enumerate() {
            *v = scale * (0.9 * i as f64 + 1.3 * p as f64 + 0.2).sin();
        }
    }
}

/// Encode, reparameterise with PyTorch's noise, decode, loss, backward: every number the twin
/// computed, for both upsampling kinds.
#[test]
fn whole_model_matches_pytorch_for_fixed_weights() {
    let fixtures = fixtures();
    assert_eq!(fixtures.models.len(), 2);
    for case in &fixtures.models {
        let mode = &case.upsample;
        let mut vae = ConvVae::<f64>::new(case.latent, upsampling(mode), &mut StdRng::seed_from_u64(0)).unwrap();
        formula_weights(&mut vae);
        let tape = Tape::new();
        let x = tape.constant(case.x.array());
        let (mu, logvar) = vae.encode(x).unwrap();
        close(&mu.value(), &case.mu.array(), &format!("{mode}: mu"));
        close(&logvar.value(), &case.logvar.array(), &format!("{mode}: logvar"));
        let z = vae.reparameterize_with(mu, logvar, case.eps.array()).unwrap();
        let logits = vae.decode(z).unwrap();
        close(&logits.value(), &case.logits.array(), &format!("{mode}: logits"));
        let loss = vae_loss(logits, x, mu, logvar).unwrap();
        close_scalar(loss.total.value()[[]], case.total, &format!("{mode}: total"));
        close_scalar(loss.reconstruction.value()[[]], case.rec, &format!("{mode}: rec"));
        close_scalar(loss.kl.value()[[]], case.kl, &format!("{mode}: kl"));
        let grads = tape.backward(loss.total).unwrap();
        let params: std::collections::HashMap<String, _> = vae.parameters().into_iter().collect();
        for (name, expected) in &case.grads {
            let g = params[name].grad(&grads).unwrap();
            close(g, &expected.array(), &format!("{mode}: grad of {name}"));
        }
    }
}

/// `vae_loss` alone: the parts, the gradients with respect to logits, μ and log σ², and a
/// Hessian-vector product in (μ, log σ²).
#[test]
fn loss_values_gradients_and_second_derivatives_match_pytorch() {
    let fixtures = fixtures();
    assert_eq!(fixtures.losses.len(), 2);
    for case in &fixtures.losses {
        let name = &case.name;
        let tape = Tape::<f64>::new();
        let logits = tape.param(case.logits.array());
        let x = tape.constant(case.x.array());
        let mu = tape.param(case.mu.array());
        let logvar = tape.param(case.logvar.array());
        let loss = vae_loss(logits, x, mu, logvar).unwrap();
        close_scalar(loss.total.value()[[]], case.total, &format!("{name}: total"));
        close_scalar(loss.reconstruction.value()[[]], case.rec, &format!("{name}: rec"));
        close_scalar(loss.kl.value()[[]], case.kl, &format!("{name}: kl"));
        let grads = tape.backward_graph(loss.total, None).unwrap();
        let (g_mu, g_logvar) = (grads.get(mu).unwrap(), grads.get(logvar).unwrap());
        close(
            &grads.get(logits).unwrap().value(),
            &case.grad_logits.array(),
            &format!("{name}: grad logits"),
        );
        close(&g_mu.value(), &case.grad_mu.array(), &format!("{name}: grad mu"));
        close(
            &g_logvar.value(),
            &case.grad_logvar.array(),
            &format!("{name}: grad logvar"),
        );
        let inner = g_mu
            .mul(tape.constant(case.v_mu.array()))
            .unwrap()
            .sum()
            .unwrap()
            .add(
                g_logvar
                    .mul(tape.constant(case.v_logvar.array()))
                    .unwrap()
                    .sum()
                    .unwrap(),
            )
            .unwrap();
        let second = tape.backward(inner).unwrap();
        close(&second[mu], &case.hvp_mu.array(), &format!("{name}: hvp mu"));
        close(
            &second[logvar],
            &case.hvp_logvar.array(),
            &format!("{name}: hvp logvar"),
        );
    }
}

fn seeded(shape: &[usize], seed: u64, f: impl Fn(f64) -> f64) -> ArrayD<f64> {
    normal::<f64>(shape, 1.0, &mut StdRng::seed_from_u64(seed))
        .unwrap()
        .mapv(f)
}

/// Finite differences in f64 of all three parts' sum (weighted, through `gradcheck`'s random
/// upstream gradient on a stacked output) with respect to logits, μ and log σ², first and
/// second order.
#[test]
fn loss_passes_finite_difference_checks() {
    let x = seeded(&[3, 1, 4, 4], 1, |v| 1.0 / (1.0 + (-v).exp()));
    let inputs = [
        seeded(&[3, 1, 4, 4], 2, |v| 2.0 * v),
        seeded(&[3, 5], 3, |v| v),
        seeded(&[3, 5], 4, |v| 0.7 * v),
    ];
    // The three parts side by side, so the random upstream gradient weighs each.
    let opts = GradcheckOptions::default();
    gradcheck(|tape, v| stacked_loss(tape.constant(x.clone()), v), &inputs, &opts)
        .unwrap()
        .assert_passed();
    gradgradcheck(|tape, v| stacked_loss(tape.constant(x.clone()), v), &inputs, &opts)
        .unwrap()
        .assert_passed();
}

/// `[total, reconstruction, kl]` of `vae_loss(v[0], x, v[1], v[2])` as one vector.
fn stacked_loss<'t>(x: Var<'t, f64>, v: &[Var<'t, f64>]) -> Result<Var<'t, f64>, Error> {
    let loss = vae_loss(v[0], x, v[1], v[2])?;
    let parts = [loss.total, loss.reconstruction, loss.kl].map(|p| p.reshape(&[1]));
    let [a, b, c] = parts;
    adjoint::concat(&[a?, b?, c?], 0)
}

/// `z = μ + exp(½ log σ²)·ε`: finite differences, first and second order, in μ and log σ².
#[test]
fn reparameterisation_passes_finite_difference_checks() {
    let vae = ConvVae::<f64>::new(4, Upsampling::Transposed, &mut StdRng::seed_from_u64(0)).unwrap();
    let eps = seeded(&[3, 4], 5, |v| v);
    let inputs = [seeded(&[3, 4], 6, |v| v), seeded(&[3, 4], 7, |v| 0.8 * v)];
    let opts = GradcheckOptions::default();
    gradcheck(|_, v| vae.reparameterize_with(v[0], v[1], eps.clone()), &inputs, &opts)
        .unwrap()
        .assert_passed();
    gradgradcheck(|_, v| vae.reparameterize_with(v[0], v[1], eps.clone()), &inputs, &opts)
        .unwrap()
        .assert_passed();
}

/// The gradients of `Σ u ⊙ z` are `u` for μ and `½ u σ ε` for log σ² (computed here by hand),
/// and the noise is a constant on the tape: nothing else wants a gradient.
#[test]
fn reparameterisation_sends_gradients_to_mu_and_logvar_only() {
    let vae = ConvVae::<f64>::new(3, Upsampling::Transposed, &mut StdRng::seed_from_u64(0)).unwrap();
    let (mu0, logvar0) = (seeded(&[2, 3], 8, |v| v), seeded(&[2, 3], 9, |v| v));
    let u = seeded(&[2, 3], 10, |v| v);
    let tape = Tape::new();
    let (mu, logvar) = (tape.param(mu0.clone()), tape.param(logvar0.clone()));
    let z = vae.reparameterize(mu, logvar, &mut StdRng::seed_from_u64(11)).unwrap();
    let eps = normal::<f64>(&[2, 3], 1.0, &mut StdRng::seed_from_u64(11)).unwrap();
    for (i, &zi) in z.value().iter().enumerate() {
        let expected =
            mu0.as_slice().unwrap()[i] + (0.5 * logvar0.as_slice().unwrap()[i]).exp() * eps.as_slice().unwrap()[i];
        assert!(
            (zi - expected).abs() <= 1e-15 * expected.abs().max(1.0),
            "z[{i}]: {zi} vs {expected}"
        );
    }
    let grads = tape
        .backward(z.mul(tape.constant(u.clone())).unwrap().sum().unwrap())
        .unwrap();
    assert_eq!(grads[mu], u);
    for i in 0..6 {
        let (l, e, ui) = (
            logvar0.as_slice().unwrap()[i],
            eps.as_slice().unwrap()[i],
            u.as_slice().unwrap()[i],
        );
        let expected = 0.5 * ui * (0.5 * l).exp() * e;
        let got = grads[logvar].as_slice().unwrap()[i];
        assert!(
            (got - expected).abs() <= 1e-15 * expected.abs().max(1.0),
            "grad logvar[{i}]"
        );
    }
    // The tape's listing marks with `*` the nodes gradients flow through: the two parameters
    // and what was computed from them, never a constant (the noise, and the upstream u).
    let listing = tape.to_string();
    let constants: Vec<&str> = listing.lines().filter(|l| l.contains("= constant")).collect();
    assert_eq!(constants.len(), 2, "{listing}");
    assert!(constants.iter().all(|l| l.starts_with(' ')), "{listing}");
    assert_eq!(
        listing.lines().filter(|l| l.contains("= param")).count(),
        2,
        "{listing}"
    );
}

/// The same seed gives the same code, another seed another one.
#[test]
fn reparameterisation_is_deterministic_for_a_seed() {
    let vae = ConvVae::<f32>::new(16, Upsampling::Transposed, &mut StdRng::seed_from_u64(0)).unwrap();
    let draw = |seed: u64| {
        let tape = Tape::new();
        let x = tape.constant(ArrayD::from_shape_fn(IxDyn(&[2, 1, 28, 28]), |i| {
            ((i[2] + i[3]) % 5) as f32 / 4.0
        }));
        let (mu, logvar) = vae.encode(x).unwrap();
        (*vae
            .reparameterize(mu, logvar, &mut StdRng::seed_from_u64(seed))
            .unwrap()
            .value())
        .clone()
    };
    assert_eq!(draw(3), draw(3));
    assert_ne!(draw(3), draw(4));
}

/// A model's weights written and read back give the same reconstruction; two seeds give two
/// models.
#[test]
fn weights_round_trip() {
    let image = ArrayD::from_shape_fn(IxDyn(&[1, 1, 28, 28]), |i| ((i[2] * 3 + i[3]) % 7) as f32 / 6.0);
    let reconstruct = |vae: &ConvVae<f32>| {
        let tape = Tape::new();
        (*vae.forward(tape.constant(image.clone())).unwrap().value()).clone()
    };
    for mode in [Upsampling::Transposed, Upsampling::Resize] {
        let vae = ConvVae::<f32>::new(2, mode, &mut StdRng::seed_from_u64(0)).unwrap();
        let mut other = ConvVae::<f32>::new(2, mode, &mut StdRng::seed_from_u64(1)).unwrap();
        assert_ne!(reconstruct(&vae), reconstruct(&other));
        io::from_bytes(
            &mut other,
            &io::to_bytes(&vae).unwrap(),
            std::path::Path::new("vae.safetensors"),
        )
        .unwrap();
        assert_eq!(reconstruct(&vae), reconstruct(&other));
    }
}

fn assert_names(result: Result<impl std::fmt::Debug, Error>, words: &[&str]) {
    let message = result.expect_err("must be refused").to_string();
    for word in words {
        assert!(message.contains(word), "{message:?} does not name {word:?}");
    }
}

#[test]
fn bad_settings_and_inputs_are_refused() {
    let rng = &mut StdRng::seed_from_u64(0);
    assert_names(
        ConvVae::<f32>::new(0, Upsampling::Transposed, rng).map(|_| ()),
        &["ConvVae", "latent", "0"],
    );
    let vae = ConvVae::<f64>::new(4, Upsampling::Resize, rng).unwrap();
    let tape = Tape::new();
    let zeros = |shape: &[usize]| tape.constant(ArrayD::zeros(IxDyn(shape)));
    for shape in [&[2, 1, 32, 32][..], &[0, 1, 28, 28], &[2, 28, 28], &[2, 3, 28, 28]] {
        assert_names(
            vae.encode(zeros(shape)),
            &["ConvVae::encode", "x", &format!("{shape:?}")],
        );
    }
    assert_names(vae.decode(zeros(&[2, 5])), &["ConvVae::decode", "z", "[2, 5]"]);
    assert_names(vae.decode(zeros(&[0, 4])), &["ConvVae::decode", "z"]);
    let (mu, logvar) = (zeros(&[2, 4]), zeros(&[2, 4]));
    assert_names(
        vae.reparameterize_with(mu, logvar, ArrayD::zeros(IxDyn(&[2, 3]))),
        &["reparameterize", "eps", "[2, 3]"],
    );
    assert_names(
        vae.reparameterize_with(mu, zeros(&[1, 4]), ArrayD::zeros(IxDyn(&[2, 4]))),
        &["reparameterize", "logvar", "[1, 4]"],
    );
    assert_names(
        vae.reparameterize_with(zeros(&[2, 3]), zeros(&[2, 3]), ArrayD::zeros(IxDyn(&[2, 3]))),
        &["reparameterize", "mu", "[2, 3]"],
    );
    let (logits, x) = (zeros(&[2, 1, 4, 4]), zeros(&[2, 1, 4, 4]));
    assert_names(
        vae_loss(logits, x, zeros(&[3, 4]), zeros(&[3, 4])).map(|_| ()),
        &["vae_loss", "mu", "[3, 4]"],
    );
    assert_names(
        vae_loss(logits, x, mu, zeros(&[2, 5])).map(|_| ()),
        &["vae_loss", "logvar", "[2, 5]"],
    );
    assert_names(
        vae_loss(logits, zeros(&[2, 1, 4, 5]), mu, logvar).map(|_| ()),
        &["bce_with_logits"],
    );
}
