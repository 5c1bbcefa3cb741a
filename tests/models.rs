//! The model zoo against its PyTorch twins: names, order and shapes of every state_dict entry
//! (from `tools/gen_unet_fixtures.py`, PyTorch's own `state_dict()`), output shapes on odd
//! sizes, gradients reaching every parameter, train/eval, and a weights round trip.

use adjoint::models::{UNet, Upsampling};
use adjoint::nn::{Buffer, Module, io};
use adjoint::{Tape, cross_entropy};
use ndarray::{ArrayD, IxDyn};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Deserialize;

#[derive(Deserialize)]
struct Twin {
    state_dict: Vec<(String, Vec<usize>, String)>,
    parameters: usize,
    output_shape: Vec<usize>,
}

fn twin(mode: &str) -> Twin {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/unet_state_dict.json");
    let all: std::collections::HashMap<String, Twin> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    all.into_iter().find(|(k, _)| k == mode).unwrap().1
}

fn unet(upsampling: Upsampling) -> UNet<f32> {
    UNet::new(1, 5, &[8, 16, 32], upsampling, &mut StdRng::seed_from_u64(0)).unwrap()
}

#[test]
fn unet_state_dict_is_pytorchs() {
    for (mode, upsampling) in [("transposed", Upsampling::Transposed), ("resize", Upsampling::Resize)] {
        let (net, twin) = (unet(upsampling), twin(mode));
        let shapes: std::collections::HashMap<String, Vec<usize>> = net
            .parameters()
            .into_iter()
            .map(|(k, p)| (k, p.value().shape().to_vec()))
            .chain(net.buffers().into_iter().map(|(k, b)| {
                let shape = match b {
                    Buffer::Float(a) => a.shape().to_vec(),
                    Buffer::Count(_) => vec![],
                };
                (k, shape)
            }))
            .collect();
        let keys = net.state_dict_keys();
        let expected: Vec<String> = twin.state_dict.iter().map(|(k, ..)| k.clone()).collect();
        assert_eq!(keys, expected, "{mode}: names and order");
        for (k, shape, _) in &twin.state_dict {
            assert_eq!(&shapes[k], shape, "{mode}: {k}");
        }
        assert_eq!(net.parameter_count(), twin.parameters, "{mode}");
    }
}

/// Odd sizes (37 × 64: 37 → 18 → 9 and back by the skips' sizes), both upsampling kinds; the
/// loss's gradient reaches every parameter.
#[test]
fn unet_trains_on_odd_sizes() {
    for (mode, upsampling) in [("transposed", Upsampling::Transposed), ("resize", Upsampling::Resize)] {
        let net = unet(upsampling);
        let tape = Tape::new();
        let x = ArrayD::from_shape_fn(IxDyn(&[2, 1, 37, 64]), |i| ((i[2] * 7 + i[3] * 3) % 11) as f32 / 11.0);
        let logits = net.forward(tape.constant(x)).unwrap();
        assert_eq!(logits.shape(), twin(mode).output_shape, "{mode}");
        let target = ArrayD::from_shape_fn(IxDyn(&[2, 37, 64]), |i| ((i[1] / 8 + i[2] / 16) % 5) as i64);
        let loss = cross_entropy(logits, &target, &Default::default()).unwrap();
        let grads = tape.backward(loss).unwrap();
        for (name, p) in net.parameters() {
            let g = p
                .grad(&grads)
                .unwrap_or_else(|| panic!("{mode}: no gradient for {name}"));
            assert!(g.iter().all(|v| v.is_finite()), "{mode}: {name}");
        }
    }
}

/// Eval mode reaches every batch norm: an image's logits no longer depend on the rest of the
/// batch, and no running statistic moves; a weights file round-trips names and values.
#[test]
fn unet_eval_mode_and_weights() {
    let mut net = unet(Upsampling::Transposed);
    let image = |v: f32| ArrayD::from_elem(IxDyn(&[1, 1, 16, 16]), v);
    let run = |net: &UNet<f32>, batch: Vec<ArrayD<f32>>| {
        let views: Vec<_> = batch.iter().map(|a| a.view()).collect();
        let x = ndarray::concatenate(ndarray::Axis(0), &views).unwrap();
        let tape = Tape::new();
        let y = net.forward(tape.constant(x)).unwrap().value();
        (*y).clone()
    };
    // Training mode: a batch statistic couples the two images.
    let alone = run(&net, vec![image(0.1), image(0.1)]);
    let mixed = run(&net, vec![image(0.1), image(0.9)]);
    assert_ne!(
        alone.index_axis(ndarray::Axis(0), 0),
        mixed.index_axis(ndarray::Axis(0), 0)
    );
    net.eval();
    assert!(!net.is_training());
    let before = net.buffers();
    let alone = run(&net, vec![image(0.1), image(0.1)]);
    let mixed = run(&net, vec![image(0.1), image(0.9)]);
    assert_eq!(
        alone.index_axis(ndarray::Axis(0), 0),
        mixed.index_axis(ndarray::Axis(0), 0)
    );
    assert_eq!(net.buffers(), before, "eval mode moved a running statistic");

    let bytes = io::to_bytes(&net).unwrap();
    let mut other = UNet::<f32>::new(
        1,
        5,
        &[8, 16, 32],
        Upsampling::Transposed,
        &mut StdRng::seed_from_u64(1),
    )
    .unwrap();
    other.eval();
    io::from_bytes(&mut other, &bytes, std::path::Path::new("unet.safetensors")).unwrap();
    assert_eq!(run(&other, vec![image(0.3)]), run(&net, vec![image(0.3)]));
}

#[test]
fn unet_refuses_bad_settings() {
    let rng = &mut StdRng::seed_from_u64(0);
    assert!(UNet::<f32>::new(1, 5, &[8], Upsampling::Transposed, rng).is_err());
    assert!(UNet::<f32>::new(1, 0, &[8, 16], Upsampling::Transposed, rng).is_err());
    assert!(UNet::<f32>::new(1, 5, &[8, 0], Upsampling::Resize, rng).is_err());
    // An input too small for its levels: an error from the pooling, not a panic.
    let net = unet(Upsampling::Transposed);
    let tape = Tape::new();
    assert!(net.forward(tape.constant(ArrayD::zeros(IxDyn(&[1, 1, 3, 3])))).is_err());
}
