//! The DCGAN and the digit classifier (`adjoint::models`) against PyTorch float64
//! (`tools/gen_gan_fixtures.py` wrote `tests/fixtures/gan_reference.json` from the twin's own
//! modules in `tools/twin_gan.py`): state_dict names, order and shapes, forward values in eval
//! and training mode, and the running statistics a training-mode forward leaves. Then the
//! sample scores and the checkerboard score against hand computations, and refusals.

use std::collections::HashMap;

use adjoint::Tape;
use adjoint::metrics::{checkerboard_score, power_spectrum, sample_scores};
use adjoint::models::{Upsampling, dcgan_discriminator, dcgan_generator, digit_classifier};
use adjoint::nn::{Buffer, BufferMut, Module, Sequential};
use ndarray::{Array2, Array3, ArrayD};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Deserialize;

#[path = "support/num.rs"]
mod num;
#[path = "support/tensor.rs"]
mod tensor;
use tensor::{Tensor, close};

#[derive(Deserialize)]
struct Case {
    state_dict: Vec<(String, Vec<usize>, String)>,
    parameters: usize,
    x: Tensor,
    eval: Tensor,
    train: Tensor,
    running_after_train: HashMap<String, Tensor>,
}

fn fixture(name: &str) -> Case {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gan_reference.json");
    let mut all: HashMap<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    serde_json::from_value(all.remove(name).unwrap()).unwrap()
}

/// The fill of `tools/gen_gan_fixtures.py`: entry `k` of the `t`-th state_dict tensor.
fn filled(t: usize, k: usize, name: &str, shape: &[usize]) -> f64 {
    let v = ((7919 * k + 13 * t) % 2001) as f64 / 1000.0 - 1.0;
    if shape.len() >= 2 {
        let numel: usize = shape.iter().product();
        v / (numel as f64 / shape[0] as f64).sqrt()
    } else if name.ends_with("running_var") {
        1.0 + v.abs() / 2.0
    } else {
        v / 2.0
    }
}

/// Fills every parameter and float buffer of `model` as the generator of the fixtures does.
fn fill(model: &mut Sequential<f64>) {
    let order: HashMap<String, usize> = model
        .state_dict_keys()
        .into_iter()
        .enumerate()
        .map(|(t, k)| (k, t))
        .collect();
    let fill_array = |name: &str, a: &mut ArrayD<f64>| {
        let shape = a.shape().to_vec();
        for (k, v) in a.iter_mut().enumerate() {
            *v = filled(order[name], k, name, &shape);
        }
    };
    for (name, p) in model.parameters_mut() {
        fill_array(&name, p.value_mut());
    }
    for (name, b) in model.buffers_mut() {
        if let BufferMut::Float(a) = b {
            fill_array(&name, a);
        }
    }
}

/// Names, order, shapes and dtypes of the state_dict, the parameter count, then the forward
/// in eval mode, in training mode, and the running statistics after it.
fn matches_pytorch(name: &str, mut model: Sequential<f64>) {
    let case = fixture(name);
    let expected: Vec<String> = case.state_dict.iter().map(|(k, ..)| k.clone()).collect();
    assert_eq!(model.state_dict_keys(), expected, "{name}: names and order");
    let mut shapes: HashMap<String, (Vec<usize>, &str)> = model
        .parameters()
        .into_iter()
        .map(|(k, p)| (k, (p.value().shape().to_vec(), "float64")))
        .collect();
    for (k, b) in model.buffers() {
        shapes.insert(
            k,
            match b {
                Buffer::Float(a) => (a.shape().to_vec(), "float64"),
                Buffer::Count(_) => (vec![], "int64"),
            },
        );
    }
    for (k, shape, dtype) in &case.state_dict {
        assert_eq!(shapes[k], (shape.clone(), dtype.as_str()), "{name}: {k}");
    }
    assert_eq!(model.parameter_count(), case.parameters, "{name}");

    fill(&mut model);
    let forward = |model: &Sequential<f64>| {
        let tape = Tape::new();
        let y = model.forward(tape.constant(case.x.array())).unwrap().value();
        (*y).clone()
    };
    model.eval();
    close(&forward(&model), &case.eval.array(), &format!("{name}: eval"));
    model.train();
    close(&forward(&model), &case.train.array(), &format!("{name}: train"));
    let buffers: HashMap<String, Buffer<f64>> = model.buffers().into_iter().collect();
    assert!(!case.running_after_train.is_empty() || name == "classifier");
    for (k, expected) in &case.running_after_train {
        let Buffer::Float(actual) = &buffers[k] else {
            panic!("{name}: {k} is not a float buffer")
        };
        close(actual, &expected.array(), &format!("{name}: {k}"));
    }
}

fn rng() -> StdRng {
    StdRng::seed_from_u64(0)
}

#[test]
fn generator_with_transposed_convs_matches_pytorch() {
    matches_pytorch(
        "generator_transposed",
        dcgan_generator(4, Upsampling::Transposed, &mut rng()).unwrap(),
    );
}

#[test]
fn generator_with_resize_convs_matches_pytorch() {
    matches_pytorch(
        "generator_resize",
        dcgan_generator(4, Upsampling::Resize, &mut rng()).unwrap(),
    );
}

#[test]
fn discriminator_matches_pytorch() {
    matches_pytorch("discriminator", dcgan_discriminator(&mut rng()).unwrap());
}

#[test]
fn classifier_matches_pytorch() {
    matches_pytorch("classifier", digit_classifier(10, &mut rng()).unwrap());
}

/// The default sizes: z ∈ ℝ³² to 28×28 images in (−1, 1), images to one logit, images to ten.
#[test]
fn default_models_have_the_issues_shapes() {
    let tape = Tape::<f32>::new();
    for upsampling in [Upsampling::Transposed, Upsampling::Resize] {
        let g = dcgan_generator::<f32>(32, upsampling, &mut rng()).unwrap();
        let z = ArrayD::from_shape_fn(vec![5, 32], |i| (i[0] as f32 - 2.0) * (i[1] as f32 / 16.0 - 1.0));
        let images = g.forward(tape.constant(z)).unwrap();
        assert_eq!(images.shape(), vec![5, 1, 28, 28], "{upsampling:?}");
        assert!(images.value().iter().all(|v| v.abs() <= 1.0), "{upsampling:?}");
    }
    let d = dcgan_discriminator::<f32>(&mut rng()).unwrap();
    assert_eq!(
        d.forward(tape.constant(ArrayD::zeros(vec![5, 1, 28, 28])))
            .unwrap()
            .shape(),
        vec![5, 1]
    );
}

#[test]
fn bad_configurations_are_refused() {
    let message = |e: adjoint::Error| e.to_string();
    let e = dcgan_generator::<f32>(0, Upsampling::Transposed, &mut rng())
        .err()
        .map(message);
    assert!(
        e.as_deref()
            .is_some_and(|m| m.contains("dcgan_generator") && m.contains("latent")),
        "{e:?}"
    );
    assert!(dcgan_generator::<f32>(1025, Upsampling::Resize, &mut rng()).is_err());
    let e = digit_classifier::<f32>(1, &mut rng()).err().map(message);
    assert!(
        e.as_deref()
            .is_some_and(|m| m.contains("digit_classifier") && m.contains("classes")),
        "{e:?}"
    );
    assert!(digit_classifier::<f32>(257, &mut rng()).is_err());
    // Images of the wrong size: an error from the layers, not a panic.
    let d = dcgan_discriminator::<f32>(&mut rng()).unwrap();
    let tape = Tape::new();
    assert!(d.forward(tape.constant(ArrayD::zeros(vec![2, 1, 20, 20]))).is_err());
    assert!(d.forward(tape.constant(ArrayD::zeros(vec![2, 3, 28, 28]))).is_err());
}

/// Three samples: logits with softmax worked by hand, arg-max classes 0, 2, 0 of 3.
#[test]
fn sample_scores_match_a_hand_computation() {
    let logits = ndarray::arr2(&[[2.0f32, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 3.0]]);
    // Row 0: e²/(e² + 2); row 1: 1/3 (a tie: class 0); row 2: e³/(2e + e³), class 2.
    let e = std::f64::consts::E;
    let confidence = (e * e / (e * e + 2.0) + 1.0 / 3.0 + e.powi(3) / (2.0 * e + e.powi(3))) / 3.0;
    // Classes 0, 0, 2: shares 2/3 and 1/3.
    let entropy = -(2.0 / 3.0 * (2.0f64 / 3.0).ln() + 1.0 / 3.0 * (1.0f64 / 3.0).ln());
    let scores = sample_scores(logits.view()).unwrap();
    assert!((scores.mean_confidence - confidence).abs() < 1e-12, "{scores:?}");
    assert!((scores.class_entropy - entropy).abs() < 1e-12, "{scores:?}");
    assert_eq!(scores.histogram, vec![2, 0, 1]);
    // Ten classes each predicted once: ln 10; all one class: 0 (mode collapse).
    let spread = Array2::from_shape_fn((10, 10), |(i, c)| if i == c { 5.0f32 } else { 0.0 });
    assert!((sample_scores(spread.view()).unwrap().class_entropy - 10f64.ln()).abs() < 1e-12);
    let collapsed = Array2::from_shape_fn((10, 10), |(_, c)| if c == 3 { 5.0f32 } else { 0.0 });
    let scores = sample_scores(collapsed.view()).unwrap();
    assert_eq!(scores.class_entropy, 0.0);
    assert!((scores.mean_confidence - 5f64.exp() / (5f64.exp() + 9.0)).abs() < 1e-12);
}

#[test]
fn sample_scores_refuse_what_they_cannot_score() {
    assert!(sample_scores(Array2::<f32>::zeros((0, 10)).view()).is_err());
    assert!(sample_scores(Array2::<f32>::zeros((3, 0)).view()).is_err());
    let e = sample_scores(ndarray::arr2(&[[0.0f32, f32::NAN]]).view())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("sample_scores") && e.contains("logits") && e.contains("NaN"),
        "{e}"
    );
}

/// A pure (π, π) pattern scores 1, a constant 0, stripes of period 2 along one axis 1 (the
/// (π, 0) bin), and a mixture its known share.
#[test]
fn checkerboard_score_matches_hand_computed_cases() {
    let score = |f: &dyn Fn(usize, usize) -> f64| {
        let image = Array3::from_shape_fn((1, 8, 6), |(_, i, j)| f(i, j) as f32);
        checkerboard_score(image.view()).unwrap()
    };
    let board = |i: usize, j: usize| if (i + j).is_multiple_of(2) { 1.0 } else { -1.0 };
    assert!((score(&board) - 1.0).abs() < 1e-12);
    assert!((score(&|i, j| 3.0 + 0.5 * board(i, j)) - 1.0).abs() < 1e-12); // mean and scale ignored
    assert_eq!(score(&|_, _| 0.7), 0.0);
    assert!((score(&|i, _| (i % 2) as f64) - 1.0).abs() < 1e-12);
    // a·board + b·cos(2π·j/6): the cosine's energy is b²·N/2 in all (two bins), the board's
    // a²·N, so the share is a² / (a² + b²/2) = 1 / (1 + 2) for a = 1, b = 2.
    let mixture = |i: usize, j: usize| board(i, j) + 2.0 * (std::f64::consts::TAU * j as f64 / 6.0).cos();
    assert!((score(&mixture) - 1.0 / 3.0).abs() < 1e-6, "{}", score(&mixture));
    // Two images: the mean of their shares, 1 and 0.
    let two = Array3::from_shape_fn(
        (2, 4, 4),
        |(n, i, j)| if n == 0 { board(i, j) as f32 } else { (j / 2) as f32 },
    );
    assert!((checkerboard_score(two.view()).unwrap() - 0.5).abs() < 1e-12);
}

#[test]
fn checkerboard_score_refuses_odd_or_empty_images() {
    for shape in [(1, 7, 8), (1, 8, 5), (0, 8, 8), (1, 0, 8)] {
        let e = checkerboard_score(Array3::<f32>::zeros(shape).view())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("checkerboard_score") && e.contains("images"),
            "{shape:?}: {e}"
        );
    }
    assert!(power_spectrum(Array2::<f32>::zeros((5, 4)).view()).is_err());
}

/// The spectrum of a cosine of 1 cycle per 4 pixels along the rows: half its energy at each of
/// the frequencies ±π/2, which sit 2 columns either side of the centre; and a board's at the
/// corner (π, π).
#[test]
fn power_spectrum_puts_energy_where_the_frequencies_are() {
    let wave = Array2::from_shape_fn((4, 8), |(_, j)| (std::f64::consts::TAU * j as f64 / 4.0).cos() as f32);
    let spectrum = power_spectrum(wave.view()).unwrap();
    for ((a, b), &p) in spectrum.indexed_iter() {
        let expected = if a == 2 && (b == 2 || b == 6) { 0.5 } else { 0.0 };
        assert!((p - expected).abs() < 1e-9, "({a}, {b}): {p}");
    }
    let board = Array2::from_shape_fn((4, 8), |(i, j)| ((i + j) % 2) as f32);
    let spectrum = power_spectrum(board.view()).unwrap();
    assert!((spectrum[[0, 0]] - 1.0).abs() < 1e-9);
    assert_eq!(power_spectrum(Array2::<f32>::ones((4, 4)).view()).unwrap().sum(), 0.0);
}
