//! `bce_with_logits` and `bce_with_logits_weighted` against PyTorch float64
//! (`tools/gen_bce_fixtures.py` wrote `tests/fixtures/bce_reference.json`): the loss, its
//! gradients with respect to the logits and the targets, and a second derivative.

use adjoint::Tape;
use adjoint::bce_with_logits;
use adjoint::ops::loss::bce_with_logits_weighted;
use serde::Deserialize;

#[path = "support/num.rs"]
mod num;
#[path = "support/tensor.rs"]
mod tensor;
use tensor::{Tensor, close};

#[derive(Deserialize)]
struct Case {
    name: String,
    z: Tensor,
    t: Tensor,
    weight: Option<Tensor>,
    loss: f64,
    grad_z: Tensor,
    grad_t: Tensor,
    v: Tensor,
    hvp: Tensor,
}

#[derive(Deserialize)]
struct Fixtures {
    cases: Vec<Case>,
}

#[test]
fn values_gradients_and_second_derivatives_match_pytorch() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bce_reference.json");
    let fixtures: Fixtures = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(fixtures.cases.len(), 5);
    for case in &fixtures.cases {
        let tape = Tape::<f64>::new();
        let (z, t) = (tape.param(case.z.array()), tape.param(case.t.array()));
        let loss = match &case.weight {
            Some(w) => bce_with_logits_weighted(z, t, &w.array()),
            None => bce_with_logits(z, t),
        }
        .unwrap();
        let name = &case.name;
        assert!(
            (loss.value()[[]] - case.loss).abs() <= 1e-10 * case.loss.abs().max(1.0),
            "{name}: loss {} vs {}",
            loss.value()[[]],
            case.loss
        );
        let grads = tape.backward_graph(loss, None).unwrap();
        let grad_z = grads.get(z).unwrap();
        close(&grad_z.value(), &case.grad_z.array(), &format!("{name}: grad_z"));
        close(
            &grads.get(t).unwrap().value(),
            &case.grad_t.array(),
            &format!("{name}: grad_t"),
        );
        // d/dz <v, dloss/dz>
        let inner = grad_z.mul(tape.constant(case.v.array())).unwrap().sum().unwrap();
        let second = tape.backward(inner).unwrap();
        close(&second[z], &case.hvp.array(), &format!("{name}: second derivative"));
    }
}
