//! SGD, Adam and AdamW against PyTorch trajectories (float64) from `tests/fixtures/nn_reference.json`,
//! written by `tools/gen_nn_fixtures.py`; plus one Adam step computed by hand. No Python needed.

use adjoint::nn::{Linear, Module, Parameter, Sequential};
use adjoint::optim::{Adam, AdamW, Optimizer, Sgd};
use adjoint::{Grads, Tape};
use ndarray::{ArrayD, IxDyn};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Deserialize;

#[path = "support/num.rs"]
mod num;
#[path = "support/tensor.rs"]
mod tensor;
use tensor::Tensor;

/// One PyTorch run: an optimizer over `[weight, bias]` for 5 steps; each has no gradient at
/// one step (`None`: `weight` at step 1, `bias` at step 3), where PyTorch skips it.
#[derive(Deserialize)]
struct OptimizerCase {
    name: String,
    kind: String,
    lr: f64,
    #[serde(default)]
    momentum: f64,
    #[serde(default)]
    dampening: f64,
    #[serde(default)]
    nesterov: bool,
    weight_decay: f64,
    #[serde(default)]
    betas: Option<(f64, f64)>,
    #[serde(default)]
    eps: Option<f64>,
    weight0: Tensor,
    bias0: Tensor,
    weight_grads: Vec<Option<Tensor>>,
    bias_grads: Vec<Option<Tensor>>,
    weight_trajectory: Vec<Tensor>,
    bias_trajectory: Vec<Tensor>,
}

#[derive(Deserialize)]
struct Fixtures {
    optimizers: Vec<OptimizerCase>,
}

fn fixtures() -> Fixtures {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/nn_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The optimizer a case describes, with every setting taken from the fixture (PyTorch's
/// defaults are recorded there too, so the library's defaults are checked against them).
enum AnyOptimizer {
    Sgd(Sgd<f64>),
    Adam(Adam<f64>),
    AdamW(AdamW<f64>),
}

impl AnyOptimizer {
    fn new(case: &OptimizerCase) -> Self {
        match case.kind.as_str() {
            "sgd" => AnyOptimizer::Sgd(
                Sgd::new(case.lr)
                    .momentum(case.momentum)
                    .dampening(case.dampening)
                    .nesterov(case.nesterov)
                    .weight_decay(case.weight_decay),
            ),
            "adam" => {
                let (b1, b2) = case.betas.unwrap();
                let opt = Adam::new(case.lr);
                assert_eq!((opt.betas, opt.eps, opt.weight_decay), ((0.9, 0.999), 1e-8, 0.0));
                AnyOptimizer::Adam(opt.betas(b1, b2).eps(case.eps.unwrap()).weight_decay(case.weight_decay))
            }
            "adamw" => {
                let (b1, b2) = case.betas.unwrap();
                let opt = AdamW::new(case.lr);
                assert_eq!((opt.betas, opt.eps, opt.weight_decay), ((0.9, 0.999), 1e-8, 0.01));
                let mut opt = opt.betas(b1, b2).weight_decay(case.weight_decay);
                opt.eps = case.eps.unwrap();
                AnyOptimizer::AdamW(opt)
            }
            other => panic!("unknown optimizer {other}"),
        }
    }

    fn update(&mut self, index: usize, value: &mut ArrayD<f64>, grad: ArrayD<f64>) {
        match self {
            AnyOptimizer::Sgd(o) => o.update(index, value, grad),
            AnyOptimizer::Adam(o) => o.update(index, value, grad),
            AnyOptimizer::AdamW(o) => o.update(index, value, grad),
        }
    }

    fn step(&mut self, model: &mut impl Module<f64>, grads: &Grads<f64>) {
        match self {
            AnyOptimizer::Sgd(o) => o.step(model, grads),
            AnyOptimizer::Adam(o) => o.step(model, grads),
            AnyOptimizer::AdamW(o) => o.step(model, grads),
        }
    }
}

fn assert_close(what: &str, got: &ArrayD<f64>, want: &Tensor, tol: f64) {
    assert_eq!(got.shape(), want.shape.as_slice(), "{what}: shape");
    let worst = got
        .iter()
        .zip(&want.array())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        worst <= tol,
        "{what}: differs from PyTorch by {worst:e}\n got {got}\nwant {}",
        want.array()
    );
}

#[test]
fn fixture_covers_every_setting() {
    let f = fixtures();
    let names: Vec<&str> = f.optimizers.iter().map(|c| c.name.as_str()).collect();
    for want in [
        "sgd_plain",
        "sgd_momentum",
        "sgd_momentum_dampening",
        "sgd_nesterov",
        "sgd_weight_decay_momentum",
        "adam_default",
        "adam_weight_decay",
        "adam_betas_eps",
        "adamw_default",
        "adamw_weight_decay",
    ] {
        assert!(names.contains(&want), "fixture lacks {want}");
    }
    for case in &f.optimizers {
        assert_eq!(case.weight_grads.len(), 5, "{}", case.name);
        assert_eq!(case.weight_trajectory.len(), 5, "{}", case.name);
        assert_eq!(
            case.weight_grads.iter().position(Option::is_none),
            Some(1),
            "{}",
            case.name
        );
        assert_eq!(
            case.bias_grads.iter().position(Option::is_none),
            Some(3),
            "{}",
            case.name
        );
        assert_eq!(
            case.bias_grads.iter().filter(|g| g.is_none()).count(),
            1,
            "{}",
            case.name
        );
    }
}

/// `Optimizer::update` on two parameters (indices 0 and 1), the second skipped at one step.
#[test]
fn update_reproduces_pytorch_trajectories() {
    for case in &fixtures().optimizers {
        let mut opt = AnyOptimizer::new(case);
        let mut weight = case.weight0.array();
        let mut bias = case.bias0.array();
        for t in 0..case.weight_grads.len() {
            if let Some(g) = &case.weight_grads[t] {
                opt.update(0, &mut weight, g.array());
            }
            if let Some(g) = &case.bias_grads[t] {
                opt.update(1, &mut bias, g.array());
            }
            assert_close(
                &format!("{} weight, step {t}", case.name),
                &weight,
                &case.weight_trajectory[t],
                1e-12,
            );
            assert_close(
                &format!("{} bias, step {t}", case.name),
                &bias,
                &case.bias_trajectory[t],
                1e-12,
            );
        }
        // The trajectory must actually move, or matching it proves little.
        let moved = (&weight - &case.weight0.array()).mapv(f64::abs).sum();
        assert!(moved > 1e-3, "{}: parameters barely moved", case.name);
    }
}

/// The same trajectories through `Optimizer::step(&mut model, &grads)`: gradients come from a
/// real tape; parameters the loss does not use get no gradient and must be left untouched (and
/// their optimizer state must not advance).
#[test]
fn step_reproduces_pytorch_trajectories_through_a_model() {
    for case in &fixtures().optimizers {
        let mut rng = StdRng::seed_from_u64(3);
        // Parameters: 0.weight, 0.bias (never used), 1.weight, 1.bias (the fixture's pair).
        let mut model = Sequential::<f64>::new()
            .add(Linear::new(2, 3, true, &mut rng).unwrap())
            .add(Linear::new(2, 3, true, &mut rng).unwrap());
        {
            let mut params = model.parameters_mut();
            let names: Vec<String> = params.iter().map(|(n, _)| n.clone()).collect();
            assert_eq!(names, ["0.weight", "0.bias", "1.weight", "1.bias"]);
            *params[2].1.value_mut() = case.weight0.array();
            *params[3].1.value_mut() = case.bias0.array();
        }
        let unused: Vec<ArrayD<f64>> = model.parameters()[..2].iter().map(|(_, p)| p.value().clone()).collect();
        let mut opt = AnyOptimizer::new(case);
        for t in 0..case.weight_grads.len() {
            let grads = {
                let params = model.parameters();
                let (weight, bias): (&Parameter<f64>, &Parameter<f64>) = (params[2].1, params[3].1);
                let tape = Tape::<f64>::new();
                // loss = ⟨g_w, weight⟩ + ⟨g_b, bias⟩ over the parameters given a gradient at
                // this step: the gradients are exactly the fixture's; the others are not bound.
                let mut loss = tape.constant(ArrayD::zeros(IxDyn(&[])));
                for (p, g) in [(weight, &case.weight_grads[t]), (bias, &case.bias_grads[t])] {
                    if let Some(g) = g {
                        let term = p.bind(&tape).mul(tape.constant(g.array())).unwrap().sum().unwrap();
                        loss = loss.add(term).unwrap();
                    }
                }
                tape.backward(loss).unwrap()
            };
            opt.step(&mut model, &grads);
            let params = model.parameters();
            assert_close(
                &format!("{} weight, step {t}", case.name),
                params[2].1.value(),
                &case.weight_trajectory[t],
                1e-12,
            );
            assert_close(
                &format!("{} bias, step {t}", case.name),
                params[3].1.value(),
                &case.bias_trajectory[t],
                1e-12,
            );
            for ((name, p), before) in params[..2].iter().zip(&unused) {
                assert_eq!(p.value(), before, "{}: {name} has no gradient but changed", case.name);
            }
        }
    }
}

/// Gradients from an older tape do not belong to the current binding: `step` must skip.
#[test]
fn step_ignores_gradients_of_another_tape() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut model = Linear::<f64>::new(2, 2, false, &mut rng).unwrap();
    let before = model.weight.value().clone();
    let tape_a = Tape::<f64>::new();
    let loss_a = model
        .forward(tape_a.constant(ArrayD::ones(IxDyn(&[1, 2]))))
        .unwrap()
        .sum()
        .unwrap();
    let grads_a = tape_a.backward(loss_a).unwrap();
    // Rebind on a second tape: grads_a now refers to a stale recording.
    let tape_b = Tape::<f64>::new();
    let _ = model.forward(tape_b.constant(ArrayD::ones(IxDyn(&[1, 2])))).unwrap();
    drop(tape_b);
    Sgd::new(0.5).step(&mut model, &grads_a);
    assert_eq!(model.weight.value(), &before);
    drop(tape_a);
}

/// At t = 1, m̂ = g and v̂ = g², so Adam moves each parameter by lr·g/(|g| + ε): lr·sign(g)
/// up to ε. Computed by hand, independent of the fixture.
#[test]
fn first_adam_step_by_hand() {
    let lr = 0.01;
    let p0 = [0.5, -1.5, 2.0, 0.0, 3.25];
    let g = [1e-3, -4.0, 250.0, -0.3, 0.0];
    let mut p = ArrayD::from_shape_vec(IxDyn(&[5]), p0.to_vec()).unwrap();
    let mut adam = Adam::<f64>::new(lr).eps(0.0);
    adam.update(0, &mut p, ArrayD::from_shape_vec(IxDyn(&[5]), g.to_vec()).unwrap());
    for i in 0..4 {
        let want = p0[i] - lr * g[i].signum();
        assert!((p[i] - want).abs() <= 1e-15, "element {i}: {} vs {want}", p[i]);
    }
    // g = 0 with ε = 0 is 0/0 in the formula; with the default ε it is exactly no move.
    let mut q = ArrayD::from_shape_vec(IxDyn(&[5]), p0.to_vec()).unwrap();
    let mut adam = Adam::<f64>::new(lr);
    adam.update(0, &mut q, ArrayD::from_shape_vec(IxDyn(&[5]), g.to_vec()).unwrap());
    assert_eq!(q[4], p0[4]);
    // With ε = 1e-8: lr·|g|/(|g| + ε), which for g = 1e-3 is visibly less than lr.
    let want = p0[0] - lr * 1e-3 / (1e-3 + 1e-8);
    assert!((q[0] - want).abs() <= 1e-15, "{} vs {want}", q[0]);
    assert!((q[0] - (p0[0] - lr)).abs() > 1e-8);

    // Second step by hand with the same gradient: m̂ = g, v̂ = g² again, so the same move.
    let mut adam = Adam::<f64>::new(lr).eps(0.0);
    let mut r = ArrayD::from_elem(IxDyn(&[1]), 1.0);
    adam.update(0, &mut r, ArrayD::from_elem(IxDyn(&[1]), 2.0));
    adam.update(0, &mut r, ArrayD::from_elem(IxDyn(&[1]), 2.0));
    assert!((r[0] - (1.0 - 2.0 * lr)).abs() <= 1e-15, "{}", r[0]);
}

/// One SGD step with every term, by hand: g' = g + λp; b = g' (first step); nesterov g'' = g' + μb.
#[test]
fn first_sgd_step_by_hand() {
    let (lr, mu, wd) = (0.1, 0.9, 0.01);
    let p0 = 2.0;
    let g = 0.5;
    let mut p = ArrayD::from_elem(IxDyn(&[1]), p0);
    let mut sgd = Sgd::<f64>::new(lr).momentum(mu).weight_decay(wd).nesterov(true);
    sgd.update(0, &mut p, ArrayD::from_elem(IxDyn(&[1]), g));
    let g1 = g + wd * p0;
    let want = p0 - lr * (g1 + mu * g1);
    assert!((p[0] - want).abs() <= 1e-15, "{} vs {want}", p[0]);
}
