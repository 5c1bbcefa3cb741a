//! Non-finite values propagate through every op as in PyTorch, forward and backward: a NaN
//! input or weight must never come out as an ordinary-looking number.
//!
//! The activations' values are PyTorch's, printed by `tools/nan_semantics.py` (float64, seed
//! gradient `[1..7]`); the conv family's NaN patterns come from the dense matrix `A`: an output
//! is NaN exactly where its row of `A` touches the NaN input.

use adjoint::data::synthetic_shapes;
use adjoint::nn::Module;
use adjoint::ops::conv::views::{conv_matrix, conv_transpose_matrix};
use adjoint::ops::conv::{ConvOptions, ConvTransposeOptions, conv_transpose2d, conv2d};
use adjoint::train::{conv_autoencoder, reconstruction_mse};
use adjoint::{Float, Tape, Var, bce_with_logits};
use ndarray::{ArrayD, IxDyn, arr1, arr2};
use rand::SeedableRng;
use rand::rngs::StdRng;

const NAN: f64 = f64::NAN;
const INF: f64 = f64::INFINITY;

/// `x` of every activation test: NaN, negative, positive, ±∞, −0 and +0.
const X: [f64; 7] = [NAN, -1.0, 2.0, INF, -INF, -0.0, 0.0];

/// Equal as PyTorch prints them: NaN matches NaN, zeros match with their sign, finite values
/// to 1e-15 relative (libm's `exp`/`tanh` may differ from PyTorch's in the last bit).
fn same(actual: &[f64], expected: &[f64], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}");
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let ok = if e.is_nan() {
            a.is_nan()
        } else if e == 0.0 {
            a == 0.0 && a.is_sign_negative() == e.is_sign_negative()
        } else if e.is_infinite() {
            a == e
        } else {
            ((a - e) / e).abs() <= 1e-15
        };
        assert!(ok, "{what}[{i}]: got {a:?}, PyTorch gives {e:?} (all: {actual:?})");
    }
}

/// `f(x)` and `∂(seed · f(x))/∂x` for the activation test input.
fn activation(f: impl for<'t> Fn(Var<'t, f64>) -> adjoint::Result<Var<'t, f64>>) -> (Vec<f64>, Vec<f64>) {
    let tape = Tape::<f64>::new();
    let x = tape.param(arr1(&X).into_dyn());
    let y = f(x).unwrap();
    let seed = arr1(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]).into_dyn();
    let grads = tape.backward_with(y, seed).unwrap();
    (y.value().iter().copied().collect(), grads[x].iter().copied().collect())
}

#[test]
fn relu_keeps_nan_and_passes_its_gradient_as_pytorch() {
    // ReLU used to compute max(x, 0), which turns NaN into 0 with gradient 0.
    let (y, dx) = activation(|x| x.relu());
    same(&y, &[NAN, 0.0, 2.0, INF, 0.0, -0.0, 0.0], "relu");
    same(&dx, &[1.0, 0.0, 3.0, 4.0, 0.0, 0.0, 0.0], "relu grad");
}

#[test]
fn leaky_relu_keeps_nan_as_pytorch() {
    let (y, dx) = activation(|x| x.leaky_relu(0.2));
    same(&y, &[NAN, -0.2, 2.0, INF, -INF, -0.0, 0.0], "leaky_relu");
    same(
        &dx,
        &[0.2, 0.4, 3.0, 4.0, 1.0, 1.2000000000000002, 1.4000000000000001],
        "leaky_relu grad",
    );
}

#[test]
fn smooth_activations_keep_nan_as_pytorch() {
    let (y, dx) = activation(|x| x.sigmoid());
    same(
        &y,
        &[NAN, 0.2689414213699951, 0.8807970779778823, 1.0, 0.0, 0.5, 0.5],
        "sigmoid",
    );
    same(
        &dx,
        &[NAN, 0.3932238664829637, 0.31498075621051985, 0.0, 0.0, 1.5, 1.75],
        "sigmoid grad",
    );
    let (y, dx) = activation(|x| x.tanh());
    same(
        &y,
        &[NAN, -0.7615941559557649, 0.9640275800758169, 1.0, -1.0, -0.0, 0.0],
        "tanh",
    );
    same(
        &dx,
        &[NAN, 0.8399486832280523, 0.2119524745594933, 0.0, 0.0, 6.0, 7.0],
        "tanh grad",
    );
    let (y, dx) = activation(|x| x.exp());
    same(
        &y,
        &[NAN, 0.36787944117144233, 7.38905609893065, INF, 0.0, 1.0, 1.0],
        "exp",
    );
    same(
        &dx,
        &[NAN, 0.7357588823428847, 22.16716829679195, INF, 0.0, 6.0, 7.0],
        "exp grad",
    );
}

/// Second order through ReLU at NaN: the gradient of the gradient is the same slope again.
#[test]
fn relu_second_order_at_nan() {
    let tape = Tape::<f64>::new();
    let x = tape.param(arr1(&[NAN, -1.0, 2.0]).into_dyn());
    let dy = tape
        .backward_graph(x.relu().unwrap().sum().unwrap(), None)
        .unwrap()
        .get(x)
        .unwrap();
    same(
        &dy.value().iter().copied().collect::<Vec<_>>(),
        &[1.0, 0.0, 1.0],
        "relu grad as a value",
    );
}

#[test]
fn log_softmax_and_bce_with_logits_as_pytorch() {
    let z = arr2(&[[INF, 1.0], [-INF, 1.0], [NAN, 1.0], [-INF, -INF]]).into_dyn();
    let tape = Tape::<f64>::new();
    let y = tape.constant(z.clone()).log_softmax(1).unwrap();
    same(
        &y.value().iter().copied().collect::<Vec<_>>(),
        &[NAN, NAN, -INF, 0.0, NAN, NAN, NAN, NAN],
        "log_softmax",
    );
    // Per element, as PyTorch's reduction='none' (adjoint's loss is their mean): one at a time.
    let expected = [
        INF,
        0.31326168751822286,
        NAN,
        0.31326168751822286,
        NAN,
        0.31326168751822286,
        NAN,
        NAN,
    ];
    for (k, (&zk, &want)) in z.iter().zip(&expected).enumerate() {
        let t = if k % 2 == 0 { 0.0 } else { 1.0 };
        let loss = bce_with_logits(
            tape.constant(arr1(&[zk]).into_dyn()),
            tape.constant(arr1(&[t]).into_dyn()),
        )
        .unwrap();
        same(
            &[loss.value().sum()],
            &[want],
            &format!("bce_with_logits(z = {zk}, t = {t})"),
        );
    }
}

/// Which outputs of a conv (rows of `a`) read input cell `j` (column `j`).
fn rows_touching(a: &ndarray::Array2<f64>, j: usize) -> Vec<bool> {
    a.rows().into_iter().map(|row| row[j] != 0.0).collect()
}

/// Distinct, nonzero weights (so `A`'s pattern is the geometry's alone).
fn weights(shape: &[usize]) -> ArrayD<f64> {
    let n: usize = shape.iter().product();
    ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(|i| 0.5 + 0.1 * i as f64).collect()).unwrap()
}

/// A NaN in one input cell makes exactly the outputs whose window covers it NaN, in f32 (the
/// GEMM crate's kernels) and f64, for conv and transposed conv; the next call on the same
/// thread, reusing the scratch buffers the NaN passed through, is unaffected.
fn nan_input_pattern<T: Float>() {
    let cases: [(usize, usize, usize, usize); 4] = [(3, 1, 1, 1), (3, 2, 1, 1), (4, 2, 1, 1), (3, 1, 2, 2)];
    for (k, s, p, d) in cases {
        for side in [6, 17] {
            let w64 = weights(&[2, 1, k, k]);
            let opts = ConvOptions::new().stride(s).padding(p).dilation(d);
            let a = conv_matrix(&w64, &[1, side, side], &opts).unwrap();
            let w: ArrayD<T> = w64.mapv(T::of);
            let tape = Tape::<T>::new();
            let clean: ArrayD<T> = ArrayD::from_shape_fn(IxDyn(&[1, 1, side, side]), |i| {
                T::of(0.01 * (i[2] * side + i[3]) as f64)
            });
            let run = |x: &ArrayD<T>| {
                conv2d(tape.constant(x.clone()), tape.constant(w.clone()), None, &opts)
                    .unwrap()
                    .value()
            };
            let before = run(&clean);
            let j = side + 2; // row 1, column 2
            let mut dirty = clean.clone();
            dirty.as_slice_mut().unwrap()[j] = T::nan();
            let y = run(&dirty);
            let got: Vec<bool> = y.iter().map(|v| v.is_nan()).collect();
            let what = format!("{} conv k{k} s{s} p{p} d{d} side {side}", T::NAME);
            assert_eq!(got, rows_touching(&a, j), "{what}: NaN outputs");
            assert!(y.iter().all(|v| v.is_nan() || v.is_finite()), "{what}");
            assert_eq!(*run(&clean), *before, "{what}: a clean call after the NaN one changed");

            // The transposed conv with the same matrix: y = Aᵀ x, NaN where row i of A has j.
            let opts_t = ConvTransposeOptions::new().stride(s).padding(p).dilation(d);
            let o = a.nrows() / 2;
            let small_side = (o as f64).sqrt() as usize;
            let at = conv_transpose_matrix(
                &w64,
                &[2, small_side, small_side],
                &opts_t.clone().output_size([side, side]),
            )
            .unwrap();
            let mut x = ArrayD::from_elem(IxDyn(&[1, 2, small_side, small_side]), T::of(0.5));
            x.as_slice_mut().unwrap()[1] = T::nan();
            let y = conv_transpose2d(
                tape.constant(x),
                tape.constant(w.clone()),
                None,
                &opts_t.output_size([side, side]),
            )
            .unwrap()
            .value();
            let got: Vec<bool> = y.iter().map(|v| v.is_nan()).collect();
            assert_eq!(got, rows_touching(&at, 1), "{what}: NaN outputs of the transposed conv");
        }
    }
}

#[test]
fn nan_input_reaches_exactly_the_windows_over_it_f64() {
    nan_input_pattern::<f64>();
}

#[test]
fn nan_input_reaches_exactly_the_windows_over_it_f32() {
    nan_input_pattern::<f32>();
}

/// Backward: with a NaN input, the weight gradient is NaN at every tap that met it and the
/// input gradient (which does not read x) stays finite, as in PyTorch.
#[test]
fn nan_input_in_the_conv_backward() {
    let tape = Tape::<f64>::new();
    let mut x = ArrayD::from_elem(IxDyn(&[1, 1, 5, 5]), 0.5);
    x[[0, 0, 0, 0]] = NAN; // a corner: only tap (0, 0) of a 3×3 stride-1 unpadded conv meets it
    let x = tape.param(x);
    let w = tape.param(weights(&[1, 1, 3, 3]));
    let y = conv2d(x, w, None, &ConvOptions::new()).unwrap();
    let grads = tape.backward(y.sum().unwrap()).unwrap();
    assert!(grads[x].iter().all(|v| v.is_finite()), "{}", grads[x]);
    let nan: Vec<bool> = grads[w].iter().map(|v| v.is_nan()).collect();
    assert_eq!(nan, [true, false, false, false, false, false, false, false, false]);
}

/// The failure that was seen: one NaN weight in the autoencoder gave a normal-looking
/// validation MSE (its ReLUs turned the NaN into zeros). Now the loss is NaN.
#[test]
fn one_nan_weight_makes_the_autoencoder_loss_nan() {
    let data = synthetic_shapes(16, 28, 0).unwrap();
    let mut model = conv_autoencoder::<f32>(8, &mut StdRng::seed_from_u64(0)).unwrap();
    assert!(reconstruction_mse(&model, &data, 8).unwrap().is_finite());
    let (_, first) = model.parameters_mut().into_iter().next().unwrap();
    first.value_mut().as_slice_mut().unwrap()[0] = f32::NAN;
    let mse = reconstruction_mse(&model, &data, 8).unwrap();
    assert!(mse.is_nan(), "validation MSE {mse} from a model holding a NaN weight");
}

/// Which cells are NaN: of an op's output, and of the gradient of its sum.
type Pattern = (Vec<bool>, Vec<bool>);

/// The NaN pattern of `f(x)` and of `∂ sum(f(x)) / ∂x`.
fn nan_pattern(x: ndarray::ArrayD<f64>, f: impl for<'t> Fn(Var<'t, f64>) -> adjoint::Result<Var<'t, f64>>) -> Pattern {
    let tape = Tape::<f64>::new();
    let x = tape.param(x);
    let y = f(x).unwrap();
    let grads = tape.backward(y.sum().unwrap()).unwrap();
    (
        y.value().iter().map(|v| v.is_nan()).collect(),
        grads[x].iter().map(|v| v.is_nan()).collect(),
    )
}

/// Every other op carries a NaN where IEEE arithmetic (and so PyTorch) puts it, forward and
/// backward: elementwise ops at its own cell, reductions into their one output, shape ops to
/// where the cell moves; gradients become NaN exactly where the rule multiplies by the NaN.
#[test]
fn every_op_carries_nan_where_pytorch_does() {
    let x = || arr1(&[NAN, 1.0, 2.0, 3.0]).into_dyn();
    let (t, f) = (true, false);
    let cases: Vec<(&str, Pattern)> = vec![
        // y = x + c: grad 1 everywhere, finite.
        ("add_scalar", nan_pattern(x(), |x| x.add_scalar(1.0))),
        ("mul_scalar", nan_pattern(x(), |x| x.mul_scalar(2.0))),
        ("neg", nan_pattern(x(), |x| x.neg())),
        // y = x·x: grad 2x, NaN at the NaN.
        ("mul", nan_pattern(x(), |x| x.mul(x))),
        // y = x / x: NaN; grad 1/x − x/x² = NaN there.
        ("div", nan_pattern(x(), |x| x.div(x))),
        ("sub", nan_pattern(x(), |x| x.sub(x))),
        ("log", nan_pattern(x(), |x| x.log())),
        ("sqrt", nan_pattern(x(), |x| x.sqrt())),
        ("powf", nan_pattern(x(), |x| x.powf(3.0))),
    ];
    for (name, (y, g)) in &cases {
        assert_eq!(y, &[t, f, f, f], "{name}: forward");
        // x − x has gradient 1 − 1 = 0 everywhere: no rule multiplies by x.
        let expected_grad = match *name {
            "add_scalar" | "mul_scalar" | "neg" | "sub" => [f, f, f, f],
            _ => [t, f, f, f],
        };
        assert_eq!(g, &expected_grad, "{name}: backward");
    }
    // Reductions: the sum (and mean) is NaN, the gradient of a sum is 1 everywhere.
    let (y, g) = nan_pattern(x(), |x| x.sum());
    assert_eq!((y, g), (vec![t], vec![f, f, f, f]));
    let (y, g) = nan_pattern(x(), |x| x.mean());
    assert_eq!((y, g), (vec![t], vec![f, f, f, f]));
    // Shape ops move the NaN with its cell; their gradients are NaN-free.
    let (y, g) = nan_pattern(x(), |x| x.reshape(&[2, 2])?.transpose(0, 1));
    assert_eq!((y, g), (vec![t, f, f, f], vec![f; 4]));
    let (y, _) = nan_pattern(x(), |x| x.slice(0, 1, 4));
    assert_eq!(y, vec![f, f, f]);
    let (y, _) = nan_pattern(x(), |x| x.pad_axis(0, 2, 0));
    assert_eq!(y, vec![f, f, t, f, f, f]);
    let (y, _) = nan_pattern(x(), |x| adjoint::concat(&[x, x], 0));
    assert_eq!(y, vec![t, f, f, f, t, f, f, f]);
    // Broadcasting: a NaN in a row vector spoils its column.
    let (y, g) = nan_pattern(arr2(&[[NAN, 1.0]]).into_dyn(), |x| {
        x.mul(x.constant(arr2(&[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]).into_dyn()))
    });
    assert_eq!((y, g), (vec![t, f, t, f, t, f], vec![f, f]));
    // matmul: a NaN in row 0 of A spoils row 0 of A·B; ∂/∂A = g·Bᵀ stays finite.
    let (y, g) = nan_pattern(arr2(&[[NAN, 1.0], [2.0, 3.0]]).into_dyn(), |a| {
        a.matmul(a.constant(arr2(&[[1.0, 0.0, 2.0], [0.0, 1.0, 1.0]]).into_dyn()))
    });
    assert_eq!((y, g), (vec![t, t, t, f, f, f], vec![f; 4]));
    // The MSE of a prediction holding a NaN is NaN, with a NaN gradient at that cell only.
    let (y, g) = nan_pattern(x(), |x| {
        adjoint::mse_loss(x, x.constant(ndarray::ArrayD::zeros(IxDyn(&[4]))))
    });
    assert_eq!((y, g), (vec![t], vec![t, f, f, f]));
}
