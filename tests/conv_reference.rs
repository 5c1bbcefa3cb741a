//! Outputs and all three gradients against PyTorch (float64), from fixtures written by
//! `tools/gen_conv_fixtures.py`. No Python is needed to run this.

use adjoint::ops::conv::{
    ConvOptions, ConvTransposeOptions, conv_transpose1d, conv_transpose2d, conv_transpose3d, conv1d, conv2d, conv3d,
};
use adjoint::{Result, Tape, Var};
use ndarray::ArrayD;
use serde::Deserialize;

#[path = "support/num.rs"]
mod num;
#[path = "support/tensor.rs"]
mod tensor;
use tensor::Tensor;

#[derive(Deserialize)]
struct Case {
    name: String,
    op: String,
    stride: Vec<usize>,
    padding: Vec<(usize, usize)>,
    padding_mode: String,
    dilation: Vec<usize>,
    groups: usize,
    output_padding: Vec<usize>,
    x: Tensor,
    w: Tensor,
    b: Option<Tensor>,
    grad_y: Tensor,
    y: Tensor,
    grad_x: Tensor,
    grad_w: Tensor,
    grad_b: Option<Tensor>,
}

#[derive(Deserialize)]
struct Fixtures {
    cases: Vec<Case>,
}

type ConvFn = for<'t> fn(Var<'t, f64>, Var<'t, f64>, Option<Var<'t, f64>>, &ConvOptions) -> Result<Var<'t, f64>>;
type ConvTFn =
    for<'t> fn(Var<'t, f64>, Var<'t, f64>, Option<Var<'t, f64>>, &ConvTransposeOptions) -> Result<Var<'t, f64>>;

fn run<'t>(case: &Case, x: Var<'t, f64>, w: Var<'t, f64>, b: Option<Var<'t, f64>>) -> Var<'t, f64> {
    let conv: Option<ConvFn> = match case.op.as_str() {
        "conv1d" => Some(conv1d),
        "conv2d" => Some(conv2d),
        "conv3d" => Some(conv3d),
        _ => None,
    };
    if let Some(f) = conv {
        // Test the string paddings through their own options, not through the pairs.
        let opts = ConvOptions::new()
            .stride(case.stride.clone())
            .dilation(case.dilation.clone())
            .groups(case.groups);
        let opts = match case.padding_mode.as_str() {
            "same" => opts.same(),
            "valid" => opts.valid(),
            _ => opts.padding_asymmetric(&case.padding),
        };
        return f(x, w, b, &opts).unwrap();
    }
    let f: ConvTFn = match case.op.as_str() {
        "conv_transpose1d" => conv_transpose1d,
        "conv_transpose2d" => conv_transpose2d,
        "conv_transpose3d" => conv_transpose3d,
        other => panic!("unknown op {other}"),
    };
    let symmetric: Vec<usize> = case
        .padding
        .iter()
        .map(|&(p, q)| {
            assert_eq!(p, q, "PyTorch's transposed conv pads symmetrically");
            p
        })
        .collect();
    let opts = ConvTransposeOptions::new()
        .stride(case.stride.clone())
        .padding(symmetric)
        .output_padding(case.output_padding.clone())
        .dilation(case.dilation.clone())
        .groups(case.groups);
    f(x, w, b, &opts).unwrap()
}

fn assert_close(name: &str, what: &str, got: &ArrayD<f64>, want: &Tensor) {
    assert_eq!(got.shape(), want.shape.as_slice(), "{name}: {what} shape");
    let worst = got
        .iter()
        .zip(&want.array())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst <= 1e-10, "{name}: {what} differs from PyTorch by {worst:e}");
}

#[test]
fn matches_pytorch_outputs_and_gradients() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/conv_reference.json");
    let fixtures: Fixtures = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(fixtures.cases.len() >= 60);
    for op in [
        "conv1d",
        "conv2d",
        "conv3d",
        "conv_transpose1d",
        "conv_transpose2d",
        "conv_transpose3d",
    ] {
        assert!(fixtures.cases.iter().filter(|c| c.op == op).count() >= 10, "{op}");
    }
    for case in &fixtures.cases {
        let tape = Tape::<f64>::new();
        let x = tape.param(case.x.array());
        let w = tape.param(case.w.array());
        let b = case.b.as_ref().map(|b| tape.param(b.array()));
        let y = run(case, x, w, b);
        assert_close(&case.name, "y", &y.value(), &case.y);
        let grads = tape.backward_with(y, case.grad_y.array()).unwrap();
        assert_close(&case.name, "grad_x", &grads[x], &case.grad_x);
        assert_close(&case.name, "grad_w", &grads[w], &case.grad_w);
        if let (Some(b), Some(want)) = (b, &case.grad_b) {
            assert_close(&case.name, "grad_b", &grads[b], want);
        }
    }
}
