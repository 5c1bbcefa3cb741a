//! The tape engine: accumulation, what gets a gradient and what does not, errors, tape length
//! and printing, flat memory over a training run, f32.

use adjoint::ops::matmul::linear;
use adjoint::{Error, Float, Result, Tape, Var, bce_with_logits, concat, mse_loss, one_hot, softmax_cross_entropy};
use approx::assert_abs_diff_eq;
use ndarray::{ArrayD, IxDyn, arr1, arr2};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn uniform(rng: &mut StdRng, shape: &[usize], lo: f64, hi: f64) -> ArrayD<f64> {
    ArrayD::from_shape_simple_fn(IxDyn(shape), || rng.random_range(lo..hi))
}

#[track_caller]
fn assert_close(actual: &ArrayD<f64>, expected: &ArrayD<f64>, eps: f64) {
    assert_eq!(actual.shape(), expected.shape());
    for (a, e) in actual.iter().zip(expected.iter()) {
        assert_abs_diff_eq!(*a, *e, epsilon = eps);
    }
}

// ---------------------------------------------------------------------------------------------
// Gradient flow
// ---------------------------------------------------------------------------------------------

#[test]
fn fan_out_accumulates_hand_values() -> Result<()> {
    let mut r = StdRng::seed_from_u64(1);
    let xv = arr1(&[0.5, -1.2, 2.0, 0.1]).into_dyn();
    let u = uniform(&mut r, &[4], -1.0, 1.0);
    let tape = Tape::<f64>::new();
    let x = tape.param(xv.clone());
    // y = x·x + eˣ·x: dy/dx = 2x + eˣ(1 + x).
    let y = x.mul(x)?.add(x.exp()?.mul(x)?)?;
    let grads = tape.backward_with(y, u.clone())?;
    let expected = ndarray::Zip::from(&xv)
        .and(&u)
        .map_collect(|&x, &u| u * (2.0 * x + x.exp() * (1.0 + x)));
    assert_close(&grads[x], &expected, 1e-12);

    // x + x + x: three contributions of the upstream gradient.
    let y = x.add(x)?.add(x)?;
    let grads = tape.backward_with(y, u.clone())?;
    assert_close(&grads[x], &(&u * 3.0), 1e-15);

    // A diamond: a = 2x, b = x², y = Σ a·b = Σ 2x³, dy/dx = 6x².
    let a = x.mul_scalar(2.0)?;
    let b = x.mul(x)?;
    let y = a.mul(b)?.sum()?;
    let grads = tape.backward(y)?;
    assert_close(&grads[x], &xv.mapv(|v| 6.0 * v * v), 1e-12);
    Ok(())
}

#[test]
fn two_parameters_get_their_own_gradients() -> Result<()> {
    let tape = Tape::<f64>::new();
    let w = tape.param(arr2(&[[1.0, -2.0], [0.5, 3.0]]).into_dyn());
    let x = tape.param(arr2(&[[0.3], [-0.7]]).into_dyn());
    let seed = arr2(&[[0.9], [-0.4]]).into_dyn();
    let y = w.matmul(x)?; // [2, 1]
    let grads = tape.backward_with(y, seed.clone())?;
    // dL/dW = seed · xᵀ, dL/dx = Wᵀ · seed.
    let expected_w = arr2(&[[0.9 * 0.3, 0.9 * -0.7], [-0.4 * 0.3, -0.4 * -0.7]]).into_dyn();
    let expected_x = arr2(&[[1.0 * 0.9 + 0.5 * -0.4], [-2.0 * 0.9 + 3.0 * -0.4]]).into_dyn();
    assert_close(&grads[w], &expected_w, 1e-15);
    assert_close(&grads[x], &expected_x, 1e-15);
    Ok(())
}

#[test]
fn detach_stops_gradients() -> Result<()> {
    let tape = Tape::<f64>::new();
    let xv = arr1(&[1.5, -2.0, 0.25]).into_dyn();
    let x = tape.param(xv.clone());
    let d = x.detach();
    assert!(x.requires_grad());
    assert!(!d.requires_grad());
    assert_eq!(*d.value(), xv);
    // y = Σ x · stop(x): dy/dx = x (not 2x).
    let y = x.mul(d)?.sum()?;
    let grads = tape.backward(y)?;
    assert_close(&grads[x], &xv, 1e-15);
    assert!(grads.get(d).is_none());
    // Entirely through a detached value: no gradient at all.
    let y = d.exp()?.sum()?;
    assert!(!y.requires_grad());
    let grads = tape.backward(y)?;
    assert!(grads.get(x).is_none());
    Ok(())
}

#[test]
fn no_grad_records_values_without_gradients() -> Result<()> {
    let tape = Tape::<f64>::new();
    let x = tape.param(arr1(&[1.0, 2.0, 3.0]).into_dyn());
    assert!(tape.is_recording());
    let before = tape.len();
    let y = tape.no_grad(|| -> Result<_> {
        assert!(!tape.is_recording());
        // Nested no_grad restores "off", not "on".
        tape.no_grad(|| ());
        assert!(!tape.is_recording());
        x.mul(x)?.sum()
    })?;
    assert!(tape.is_recording());
    assert_eq!(
        tape.len(),
        before + 2,
        "no_grad still records the nodes (for their values)"
    );
    assert_eq!(y.value()[[]], 14.0);
    assert!(!y.requires_grad());
    let grads = tape.backward(y)?;
    assert!(grads.get(x).is_none());
    // Mixing: only the recorded branch carries a gradient.
    let frozen = tape.no_grad(|| x.mul_scalar(10.0))?;
    let y = x.mul(frozen)?.sum()?; // Σ x · (10x) with the second factor frozen
    let grads = tape.backward(y)?;
    assert_close(&grads[x], &arr1(&[10.0, 20.0, 30.0]).into_dyn(), 1e-15);
    Ok(())
}

#[test]
fn constants_get_no_gradient() -> Result<()> {
    let tape = Tape::<f64>::new();
    let x = tape.param(arr1(&[1.0, -1.0]).into_dyn());
    let c = tape.constant(arr1(&[3.0, 4.0]).into_dyn());
    let c2 = x.constant(arr1(&[0.5, 0.5]).into_dyn());
    assert!(!c.requires_grad() && !c2.requires_grad());
    let y = x.mul(c)?.add(c2)?.sum()?;
    let grads = tape.backward(y)?;
    assert!(grads.get(c).is_none());
    assert!(grads.get(c2).is_none());
    assert_close(&grads[x], &arr1(&[3.0, 4.0]).into_dyn(), 0.0);
    // An output of constants only: backward succeeds and returns nothing.
    let z = c.mul(c2)?.sum()?;
    let grads = tape.backward(z)?;
    assert!(grads.get(c).is_none() && grads.get(x).is_none());
    // A parameter the output does not depend on gets None, not zeros.
    let unused = tape.param(arr1(&[7.0]).into_dyn());
    let grads = tape.backward(y)?;
    assert!(grads.get(unused).is_none());
    Ok(())
}

#[test]
fn backward_with_seed() -> Result<()> {
    let mut r = StdRng::seed_from_u64(2);
    let tape = Tape::<f64>::new();
    let av = uniform(&mut r, &[2, 3], -1.0, 1.0);
    let bv = uniform(&mut r, &[3], -1.0, 1.0);
    let seed = uniform(&mut r, &[2, 3], -1.0, 1.0);
    let a = tape.param(av.clone());
    let b = tape.param(bv.clone());
    let y = a.mul(b)?; // [2, 3], b broadcast over rows
    let grads = tape.backward_with(y, seed.clone())?;
    assert_close(&grads[a], &(&seed * &bv), 1e-15);
    // b was broadcast: its gradient sums over the rows.
    let expected_b = (&seed * &av).sum_axis(ndarray::Axis(0));
    assert_close(&grads[b], &expected_b, 1e-15);
    // Scalar output with a non-unit seed scales the gradient.
    let s = a.sum()?;
    let grads = tape.backward_with(s, ArrayD::from_elem(IxDyn(&[]), -2.5))?;
    assert_close(&grads[a], &ArrayD::from_elem(IxDyn(&[2, 3]), -2.5), 0.0);
    Ok(())
}

#[test]
fn only_leaf_gradients_are_returned() -> Result<()> {
    let tape = Tape::<f64>::new();
    let x = tape.param(arr1(&[0.1, 0.2]).into_dyn());
    let h = x.exp()?;
    let k = h.mul(h)?;
    let y = k.sum()?;
    let grads = tape.backward(y)?;
    assert!(grads.get(h).is_none());
    assert!(grads.get(k).is_none());
    assert!(grads.get(y).is_none());
    assert_close(
        &grads[x],
        &arr1(&[0.1, 0.2]).into_dyn().mapv(|v: f64| 2.0 * (2.0 * v).exp()),
        1e-14,
    );
    // backward_graph follows the same rule.
    let gv = tape.backward_graph(y, None)?;
    assert!(gv.get(h).is_none());
    assert!(gv.get(x).is_some());
    Ok(())
}

#[test]
fn backward_of_a_parameter_itself() -> Result<()> {
    let tape = Tape::<f64>::new();
    let p = tape.param(ArrayD::from_elem(IxDyn(&[]), 4.0));
    let grads = tape.backward(p)?;
    assert_eq!(grads[p][[]], 1.0);
    Ok(())
}

#[test]
fn take_moves_the_gradient_out() -> Result<()> {
    let tape = Tape::<f64>::new();
    let x = tape.param(arr1(&[1.0, 2.0]).into_dyn());
    let mut grads = tape.backward(x.mul(x)?.sum()?)?;
    assert_eq!(grads.take(x), Some(arr1(&[2.0, 4.0]).into_dyn()));
    assert_eq!(grads.take(x), None);
    Ok(())
}

#[test]
fn second_derivative_by_hand() -> Result<()> {
    // d/dx tanh = 1 − t², d²/dx² tanh = −2t(1 − t²).
    let xs = [-0.8, 0.3, 1.1];
    let tape = Tape::<f64>::new();
    let x = tape.param(arr1(&xs).into_dyn());
    let y = x.tanh()?.sum()?;
    let g = tape.backward_graph(y, None)?.get(x).expect("depends on x");
    let first = g.value();
    let g2 = tape.backward(g.sum()?)?;
    for (i, &v) in xs.iter().enumerate() {
        let t = v.tanh();
        assert_abs_diff_eq!(first[[i]], 1.0 - t * t, epsilon = 1e-14);
        assert_abs_diff_eq!(g2[x][[i]], -2.0 * t * (1.0 - t * t), epsilon = 1e-14);
    }
    // Third order on x³: 6 everywhere.
    let y = x.mul(x)?.mul(x)?.sum()?;
    let g1 = tape.backward_graph(y, None)?.get(x).unwrap().sum()?;
    let g2 = tape.backward_graph(g1, None)?.get(x).unwrap().sum()?;
    let g3 = tape.backward(g2)?;
    assert_close(&g3[x], &arr1(&[6.0, 6.0, 6.0]).into_dyn(), 1e-12);
    Ok(())
}

/// `Grads` from one tape must not answer for a `Var` of another tape: `Grads::get` documents
/// `None` for "not a parameter the output depends on".
#[test]
fn grads_are_not_shared_across_tapes() -> Result<()> {
    let a = Tape::<f64>::new();
    let xa = a.param(arr1(&[1.0, 2.0]).into_dyn());
    let grads = a.backward(xa.mul(xa)?.sum()?)?;
    let b = Tape::<f64>::new();
    let xb = b.param(arr1(&[5.0, 6.0]).into_dyn()); // same id (0) as xa, unrelated value
    assert_eq!(xa.id(), xb.id());
    assert!(
        grads.get(xb).is_none(),
        "Grads of tape A returned {:?} for a parameter of tape B",
        grads.get(xb)
    );
    Ok(())
}

/// The same after `clear`: gradients of the previous recording must not be handed to the new
/// parameter that happens to reuse the id.
#[test]
fn grads_do_not_survive_clear() -> Result<()> {
    let mut tape = Tape::<f64>::new();
    let grads = {
        let x = tape.param(arr1(&[1.0, 2.0]).into_dyn());
        tape.backward(x.mul(x)?.sum()?)?
    };
    tape.clear();
    let fresh = tape.param(arr1(&[5.0, 6.0]).into_dyn());
    assert!(
        grads.get(fresh).is_none(),
        "stale gradient {:?} returned for a parameter recorded after clear()",
        grads.get(fresh)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Errors: the right variant, a message naming the op and the values, no node recorded
// ---------------------------------------------------------------------------------------------

#[track_caller]
fn assert_message(e: &Error, parts: &[&str]) {
    let msg = e.to_string();
    for p in parts {
        assert!(msg.contains(p), "message {msg:?} lacks {p:?}");
    }
}

#[test]
fn error_elementwise_shape_mismatch() {
    let tape = Tape::<f64>::new();
    let a = tape.param(ArrayD::zeros(IxDyn(&[2, 3])));
    let b = tape.param(ArrayD::zeros(IxDyn(&[2, 4])));
    let len = tape.len();
    type Binary<'t> = fn(Var<'t, f64>, Var<'t, f64>) -> Result<Var<'t, f64>>;
    let ops: [(&str, Binary<'_>); 4] = [
        ("add", Var::add),
        ("sub", Var::sub),
        ("mul", Var::mul),
        ("div", Var::div),
    ];
    for (name, op) in ops {
        let e = op(a, b).unwrap_err();
        match &e {
            Error::ShapeMismatch { op, lhs, rhs, .. } => {
                assert_eq!(*op, name);
                assert_eq!(lhs, &[2, 3]);
                assert_eq!(rhs, &[2, 4]);
            }
            other => panic!("{name}: expected ShapeMismatch, got {other:?}"),
        }
        assert_message(&e, &[&format!("{name}:"), "[2, 3]", "[2, 4]", "3 and 4"]);
    }
    let c = tape.param(ArrayD::zeros(IxDyn(&[3])));
    let d = tape.param(ArrayD::zeros(IxDyn(&[4])));
    let e = c.mul(d).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { op: "mul", .. }), "{e:?}");
    assert_message(&e, &["mul", "[3]", "[4]"]);
    assert_eq!(tape.len(), len + 2, "a refused op must not record a node");
}

#[test]
fn error_matmul() {
    let tape = Tape::<f64>::new();
    let a = tape.param(ArrayD::zeros(IxDyn(&[2, 3])));
    let b = tape.param(ArrayD::zeros(IxDyn(&[4, 5])));
    let len = tape.len();
    let e = a.matmul(b).unwrap_err();
    assert!(
        matches!(&e, Error::ShapeMismatch { op: "matmul", lhs, rhs, .. } if lhs == &[2, 3] && rhs == &[4, 5]),
        "{e:?}"
    );
    assert_message(&e, &["matmul", "[2, 3]", "[4, 5]", "3 and 4"]);

    // Batch axes that do not broadcast.
    let p = tape.param(ArrayD::zeros(IxDyn(&[2, 3, 4])));
    let q = tape.param(ArrayD::zeros(IxDyn(&[3, 4, 5])));
    let e = p.matmul(q).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { op: "matmul", .. }), "{e:?}");

    // A 1-D value on either side.
    let v = tape.param(ArrayD::zeros(IxDyn(&[3])));
    let m = tape.param(ArrayD::zeros(IxDyn(&[3, 2])));
    let e = v.matmul(m).unwrap_err();
    assert!(
        matches!(&e, Error::BadShape { op: "matmul", input: "a", shape, .. } if shape == &[3]),
        "{e:?}"
    );
    assert_message(&e, &["matmul", "[3]", "2 axes"]);
    let e = a.matmul(v).unwrap_err();
    assert!(
        matches!(
            e,
            Error::BadShape {
                op: "matmul",
                input: "b",
                ..
            }
        ),
        "{e:?}"
    );
    let s = tape.param(ArrayD::zeros(IxDyn(&[])));
    assert!(matches!(s.matmul(s), Err(Error::BadShape { op: "matmul", .. })));
    assert_eq!(tape.len(), len + 5);
}

#[test]
fn error_linear() {
    let tape = Tape::<f64>::new();
    let x = tape.param(ArrayD::zeros(IxDyn(&[2, 3])));
    let w = tape.param(ArrayD::zeros(IxDyn(&[4, 3])));
    let b = tape.param(ArrayD::zeros(IxDyn(&[4])));
    let len = tape.len();
    let e = linear(x, tape.param(ArrayD::zeros(IxDyn(&[4, 5]))), None).unwrap_err();
    assert!(
        matches!(&e, Error::ShapeMismatch { op: "linear", lhs, rhs, .. } if lhs == &[2, 3] && rhs == &[4, 5]),
        "{e:?}"
    );
    assert_message(&e, &["linear", "[2, 3]", "[4, 5]", "in_features = 5"]);
    let e = linear(x, tape.param(ArrayD::zeros(IxDyn(&[3]))), None).unwrap_err();
    assert!(
        matches!(&e, Error::BadShape { op: "linear", input: "weight", shape, .. } if shape == &[3]),
        "{e:?}"
    );
    let e = linear(x, w, Some(tape.param(ArrayD::zeros(IxDyn(&[3]))))).unwrap_err();
    assert!(
        matches!(&e, Error::BadShape { op: "linear", input: "bias", shape, .. } if shape == &[3]),
        "{e:?}"
    );
    assert_message(&e, &["linear", "bias", "[out_features] = [4]"]);
    let s = tape.param(ArrayD::zeros(IxDyn(&[])));
    let e = linear(s, w, Some(b)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::BadShape {
                op: "linear",
                input: "x",
                ..
            }
        ),
        "{e:?}"
    );
    let other = Tape::<f64>::new();
    let e = linear(x, w, Some(other.param(ArrayD::zeros(IxDyn(&[4]))))).unwrap_err();
    assert!(matches!(e, Error::MixedTapes { input: 2, .. }), "{e:?}");
    // The refused calls recorded nothing (the params made above are the only new nodes).
    assert_eq!(tape.len(), len + 4);
}

#[test]
fn error_reductions() {
    let tape = Tape::<f64>::new();
    let x = tape.param(ArrayD::zeros(IxDyn(&[2, 3])));
    let len = tape.len();
    for keepdims in [false, true] {
        let e = x.sum_axes(&[2], keepdims).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidArgument {
                    op: "sum",
                    param: "axis",
                    ..
                }
            ),
            "{e:?}"
        );
        assert_message(&e, &["sum", "2", "2 axes"]);
        let e = x.mean_axes(&[0, 5], keepdims).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { op: "mean", .. }), "{e:?}");
        assert_message(&e, &["mean", "5"]);
        let e = x.sum_axes(&[1, 1], keepdims).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidArgument {
                    op: "sum",
                    param: "axes",
                    ..
                }
            ),
            "{e:?}"
        );
        assert_message(&e, &["sum", "[1, 1]", "repeated"]);
        let e = x.mean_axes(&[0, 1, 0], keepdims).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidArgument {
                    op: "mean",
                    param: "axes",
                    ..
                }
            ),
            "{e:?}"
        );
    }
    let e = x.sum_to(&[4]).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { op: "sum_to", .. }), "{e:?}");
    let e = x.sum_to(&[2, 2, 3]).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { op: "sum_to", .. }), "{e:?}");
    let e = x.broadcast_to(&[3, 3]).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { op: "broadcast_to", .. }), "{e:?}");
    assert_message(&e, &["broadcast_to", "[2, 3]", "[3, 3]"]);
    assert_eq!(tape.len(), len);
}

#[test]
fn error_shape_ops() {
    let tape = Tape::<f64>::new();
    let x = tape.param(ArrayD::zeros(IxDyn(&[2, 3])));
    let len = tape.len();

    let e = x.reshape(&[4]).unwrap_err();
    assert!(
        matches!(&e, Error::BadShape { op: "reshape", shape, .. } if shape == &[2, 3]),
        "{e:?}"
    );
    assert_message(&e, &["reshape", "[2, 3]", "[4]"]);

    for bad in [&[0, 0][..], &[0], &[0, 2], &[1, 0, 2]] {
        let e = x.permute(bad).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidArgument {
                    op: "permute",
                    param: "axes",
                    ..
                }
            ),
            "{e:?}"
        );
        assert_message(&e, &["permute", &format!("{bad:?}")]);
    }
    let e = x.transpose(0, 2).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { op: "transpose", .. }), "{e:?}");
    let e = x.flatten(1, 0).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { op: "flatten", .. }), "{e:?}");
    let e = x.flatten(0, 2).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { op: "flatten", .. }), "{e:?}");

    for (axis, start, end) in [(1, 2, 4), (1, 2, 1), (0, 0, 3), (2, 0, 1)] {
        let e = x.slice(axis, start, end).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { op: "slice", .. }), "{e:?}");
        assert_message(&e, &["slice"]);
    }
    let e = x.slice(1, 2, 4).unwrap_err();
    assert_message(&e, &["slice", "2..4", "0..3"]);
    let e = x.pad_axis(2, 1, 1).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { op: "pad_axis", .. }), "{e:?}");
    assert_eq!(tape.len(), len);
}

#[test]
fn error_concat() {
    let tape = Tape::<f64>::new();
    let a = tape.param(ArrayD::zeros(IxDyn(&[2, 3])));
    let b = tape.param(ArrayD::zeros(IxDyn(&[3, 3])));
    let c = tape.param(ArrayD::zeros(IxDyn(&[2, 3, 1])));
    let len = tape.len();
    // Along axis 1 the rows must agree: 2 vs 3.
    let e = concat(&[a, b], 1).unwrap_err();
    assert!(
        matches!(&e, Error::ShapeMismatch { op: "concat", lhs, rhs, .. } if lhs == &[2, 3] && rhs == &[3, 3]),
        "{e:?}"
    );
    assert_message(&e, &["concat", "[2, 3]", "[3, 3]"]);
    // Along axis 0 they fit.
    assert_eq!(concat(&[a, b], 0).unwrap().shape(), vec![5, 3]);
    // Different ranks.
    let e = concat(&[a, c], 0).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { op: "concat", .. }), "{e:?}");
    // Empty list, axis out of range.
    let e = concat::<f64>(&[], 0).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { op: "concat", .. }), "{e:?}");
    assert_message(&e, &["concat", "at least one"]);
    let e = concat(&[a, a], 2).unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidArgument {
                op: "concat",
                param: "axis",
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(tape.len(), len + 1);
}

#[test]
fn error_backward() {
    let tape = Tape::<f64>::new();
    let x = tape.param(ArrayD::zeros(IxDyn(&[2, 3])));
    let y = x.exp().unwrap();
    let len = tape.len();
    let e = tape.backward(y).expect_err("non-scalar backward must fail");
    assert!(
        matches!(&e, Error::NonScalarBackward { shape } if shape == &[2, 3]),
        "{e:?}"
    );
    assert_message(&e, &["backward", "[2, 3]", "seed"]);
    let e = tape
        .backward_graph(y, None)
        .expect_err("non-scalar backward_graph must fail");
    assert!(matches!(e, Error::NonScalarBackward { .. }), "{e:?}");

    let e = tape.backward_with(y, ArrayD::zeros(IxDyn(&[3, 2]))).err().unwrap();
    assert!(
        matches!(&e, Error::ShapeMismatch { op: "backward", lhs, rhs, .. } if lhs == &[2, 3] && rhs == &[3, 2]),
        "{e:?}"
    );
    assert_message(&e, &["backward", "[2, 3]", "[3, 2]"]);
    let e = tape.backward_graph(y, Some(ArrayD::zeros(IxDyn(&[6])))).err().unwrap();
    assert!(matches!(e, Error::ShapeMismatch { op: "backward", .. }), "{e:?}");
    // A scalar seed for a scalar of shape [1, 1] must still match the shape exactly.
    let s = x.sum().unwrap().reshape(&[1, 1]).unwrap();
    let e = tape.backward_with(s, ArrayD::zeros(IxDyn(&[]))).err().unwrap();
    assert!(matches!(e, Error::ShapeMismatch { op: "backward", .. }), "{e:?}");
    // ...while backward without a seed accepts any one-element output.
    assert!(tape.backward(s).is_ok());
    assert_eq!(tape.len(), len + 2, "failed backward calls leave the tape unchanged");
}

#[test]
fn error_losses() {
    let tape = Tape::<f64>::new();
    let p = tape.param(ArrayD::zeros(IxDyn(&[2, 3])));
    let t = tape.constant(ArrayD::zeros(IxDyn(&[3, 2])));
    let len = tape.len();
    let e = mse_loss(p, t).unwrap_err();
    assert!(
        matches!(&e, Error::ShapeMismatch { op: "mse_loss", lhs, rhs, .. } if lhs == &[2, 3] && rhs == &[3, 2]),
        "{e:?}"
    );
    assert_message(&e, &["mse_loss", "[2, 3]", "[3, 2]"]);
    let e = bce_with_logits(p, t).unwrap_err();
    assert!(
        matches!(
            e,
            Error::ShapeMismatch {
                op: "bce_with_logits",
                ..
            }
        ),
        "{e:?}"
    );

    let v = tape.param(ArrayD::zeros(IxDyn(&[4])));
    let e = softmax_cross_entropy(v, v).unwrap_err();
    assert!(
        matches!(&e, Error::BadShape { op: "softmax_cross_entropy", input: "logits", shape, .. } if shape == &[4]),
        "{e:?}"
    );
    assert_message(&e, &["softmax_cross_entropy", "logits", "[4]"]);
    let e = softmax_cross_entropy(p, t).unwrap_err();
    assert!(
        matches!(
            e,
            Error::ShapeMismatch {
                op: "softmax_cross_entropy",
                ..
            }
        ),
        "{e:?}"
    );
    let e = p.log_softmax(2).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { op: "log_softmax", .. }), "{e:?}");

    let e = one_hot(&tape, &[0, 2, 5], 3).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument { op: "one_hot", value, .. } if value == "5"),
        "{e:?}"
    );
    assert_message(&e, &["one_hot", "5", "3"]);
    assert_eq!(tape.len(), len + 1);
}

// ---------------------------------------------------------------------------------------------
// Tape length and printing
// ---------------------------------------------------------------------------------------------

fn small_net<'t>(tape: &'t Tape<f64>) -> Result<(Var<'t, f64>, Var<'t, f64>, Var<'t, f64>)> {
    let x = tape.constant(arr2(&[[0.5, -1.0], [2.0, 0.3]]).into_dyn());
    let w = tape.param(arr2(&[[0.1, 0.2, -0.3], [0.4, -0.5, 0.6]]).into_dyn());
    let loss = x.matmul(w)?.tanh()?.sum()?;
    Ok((w, x, loss))
}

#[test]
fn backward_leaves_tape_length_unchanged() -> Result<()> {
    let tape = Tape::<f64>::new();
    let (w, _, loss) = small_net(&tape)?;
    let before = tape.len();
    let printed_before = tape.to_string();
    let g1 = tape.backward(loss)?;
    assert_eq!(tape.len(), before);
    assert_eq!(tape.to_string(), printed_before);
    // Twice gives the same answer (nothing consumed).
    let g2 = tape.backward(loss)?;
    assert_eq!(g1[w], g2[w]);
    assert_eq!(tape.len(), before);
    Ok(())
}

#[test]
fn backward_graph_records_the_backward_pass() -> Result<()> {
    let tape = Tape::<f64>::new();
    let (w, _, loss) = small_net(&tape)?;
    let before = tape.len();
    let printed = tape.to_string();
    assert!(printed.contains("matmul"), "{printed}");
    assert!(printed.contains("tanh"), "{printed}");
    assert!(printed.contains("param"), "{printed}");
    assert!(printed.contains("constant"), "{printed}");
    assert!(printed.contains(&format!("{before} nodes")), "{printed}");
    assert!(!printed.contains("permute"), "{printed}");

    let plain = tape.backward(loss)?;
    let g = tape.backward_graph(loss, None)?.get(w).unwrap();
    assert!(tape.len() > before, "the gradient graph must be recorded");
    assert!(g.requires_grad(), "a recorded gradient is differentiable");
    assert_eq!(*g.value(), plain[w]);

    let printed = tape.to_string();
    assert!(printed.contains(&format!("{} nodes", tape.len())), "{printed}");
    // matmul's rule transposes (permute), sum's rule broadcasts, tanh's rule scales by 1 − y².
    for op in ["permute", "broadcast_to", "times_slope(tanh)"] {
        assert!(printed.contains(op), "backward op {op} missing from\n{printed}");
    }
    // One line per node after the header.
    assert_eq!(printed.lines().count(), tape.len() + 1);
    Ok(())
}

#[test]
fn display_shows_settings_and_inputs() -> Result<()> {
    let tape = Tape::<f32>::new();
    let x = tape.param(ArrayD::zeros(IxDyn(&[2, 3])));
    let _ = x.leaky_relu(0.25)?.sum_axes(&[1], true)?.powf(2.0)?;
    let s = tape.to_string();
    assert!(s.starts_with("tape<f32>: 4 nodes"), "{s}");
    assert!(s.contains("leaky_relu(0.25)(%0)"), "{s}");
    assert!(s.contains("sum(axes=[1], keepdims=true)(%1)"), "{s}");
    assert!(s.contains("powf(2)(%2)"), "{s}");
    assert!(s.contains("[2, 1]"), "{s}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Training: flat memory with one cleared tape, a fresh tape per step, and f32
// ---------------------------------------------------------------------------------------------

struct Mlp<T: Float> {
    w1: ArrayD<T>,
    b1: ArrayD<T>,
    w2: ArrayD<T>,
    b2: ArrayD<T>,
}

struct Batch<T: Float> {
    x: ArrayD<T>,
    y: ArrayD<T>,
}

fn batch<T: Float>() -> Batch<T> {
    let mut r = StdRng::seed_from_u64(42);
    let n = 32;
    let x = uniform(&mut r, &[n, 2], -1.0, 1.0);
    let y = ArrayD::from_shape_fn(IxDyn(&[n, 1]), |i| {
        let (a, b) = (x[[i[0], 0]], x[[i[0], 1]]);
        (2.0 * a).sin() + b * b - 0.3
    });
    Batch {
        x: x.mapv(T::of),
        y: y.mapv(T::of),
    }
}

fn init<T: Float>() -> Mlp<T> {
    let mut r = StdRng::seed_from_u64(7);
    let hidden = 12;
    Mlp {
        w1: uniform(&mut r, &[2, hidden], -0.7, 0.7).mapv(T::of),
        b1: uniform(&mut r, &[hidden], -0.1, 0.1).mapv(T::of),
        w2: uniform(&mut r, &[hidden, 1], -0.3, 0.3).mapv(T::of),
        b2: ArrayD::zeros(IxDyn(&[1])),
    }
}

/// One SGD step on `tape` (which must be empty): returns the loss and the tape's length after
/// forward and backward.
fn sgd_step<T: Float>(tape: &Tape<T>, m: &mut Mlp<T>, data: &Batch<T>, lr: f64) -> Result<(f64, usize)> {
    assert!(tape.is_empty());
    let w1 = tape.param(m.w1.clone());
    let b1 = tape.param(m.b1.clone());
    let w2 = tape.param(m.w2.clone());
    let b2 = tape.param(m.b2.clone());
    let x = tape.constant(data.x.clone());
    let y = tape.constant(data.y.clone());
    let h = x.matmul(w1)?.add(b1)?.tanh()?;
    let loss = mse_loss(h.matmul(w2)?.add(b2)?, y)?;
    let after_forward = tape.len();
    let mut grads = tape.backward(loss)?;
    assert_eq!(tape.len(), after_forward, "backward must not grow the tape");
    let lr = T::of(lr);
    for (p, v) in [(&mut m.w1, w1), (&mut m.b1, b1), (&mut m.w2, w2), (&mut m.b2, b2)] {
        let g = grads.take(v).expect("every parameter gets a gradient");
        assert_eq!(g.shape(), p.shape());
        p.zip_mut_with(&g, |a, &d| *a -= lr * d);
    }
    let value = <T as Float>::to_f64(*loss.value().iter().next().unwrap());
    Ok((value, tape.len()))
}

const STEPS: usize = 1000;
const LR: f64 = 0.2;

#[test]
fn training_reusing_one_cleared_tape_keeps_length_flat() -> Result<()> {
    let data = batch::<f64>();
    let mut m = init::<f64>();
    let mut tape = Tape::<f64>::new();
    let mut losses = Vec::with_capacity(STEPS);
    let mut lens = Vec::with_capacity(STEPS);
    for _ in 0..STEPS {
        tape.clear();
        let (loss, len) = sgd_step(&tape, &mut m, &data, LR)?;
        losses.push(loss);
        lens.push(len);
    }
    assert_eq!(lens[10], lens[999]);
    assert!(lens.iter().all(|&l| l == lens[0]), "tape length varied: {lens:?}");
    let (first, last) = (losses[0], losses[STEPS - 1]);
    assert!(losses.iter().all(|l| l.is_finite()));
    assert!(last < 0.5 * first, "loss went from {first} to {last}");
    assert!(last < 0.05, "final loss {last} (from {first})");
    Ok(())
}

#[test]
fn training_with_a_fresh_tape_per_step() -> Result<()> {
    let data = batch::<f64>();
    let mut m = init::<f64>();
    let mut losses = Vec::with_capacity(STEPS);
    let mut lens = Vec::with_capacity(STEPS);
    for _ in 0..STEPS {
        let tape = Tape::<f64>::new();
        let (loss, len) = sgd_step(&tape, &mut m, &data, LR)?;
        losses.push(loss);
        lens.push(len);
    }
    assert_eq!(lens[10], lens[999]);
    let (first, last) = (losses[0], losses[STEPS - 1]);
    assert!(last < 0.5 * first, "loss went from {first} to {last}");

    // Cleared and fresh tapes compute the same thing: same trajectory.
    let mut m2 = init::<f64>();
    let mut tape = Tape::<f64>::new();
    for (step, &expected) in losses.iter().enumerate().take(50) {
        tape.clear();
        let (loss, _) = sgd_step(&tape, &mut m2, &data, LR)?;
        assert_eq!(loss, expected, "step {step}");
    }
    Ok(())
}

#[test]
fn training_in_f32() -> Result<()> {
    let data = batch::<f32>();
    let mut m = init::<f32>();
    let mut tape = Tape::<f32>::new();
    let mut losses = Vec::with_capacity(STEPS);
    let mut lens = Vec::with_capacity(STEPS);
    for _ in 0..STEPS {
        tape.clear();
        let (loss, len) = sgd_step(&tape, &mut m, &data, LR)?;
        losses.push(loss);
        lens.push(len);
    }
    assert_eq!(lens[10], lens[999]);
    let (first, last) = (losses[0], losses[STEPS - 1]);
    assert!(losses.iter().all(|l| l.is_finite()));
    assert!(last < 0.5 * first, "f32 loss went from {first} to {last}");
    // And it tracks the f64 run closely.
    let data64 = batch::<f64>();
    let mut m64 = init::<f64>();
    let tape64 = Tape::<f64>::new();
    let (first64, _) = sgd_step(&tape64, &mut m64, &data64, LR)?;
    assert_abs_diff_eq!(first, first64, epsilon = 1e-5);
    Ok(())
}

#[test]
fn f32_gradients_match_f64() -> Result<()> {
    let mut r = StdRng::seed_from_u64(3);
    let xv = uniform(&mut r, &[3, 4], -1.0, 1.0);
    let wv = uniform(&mut r, &[4, 2], -1.0, 1.0);
    let g64 = {
        let tape = Tape::<f64>::new();
        let w = tape.param(wv.clone());
        let loss = tape.constant(xv.clone()).matmul(w)?.sigmoid()?.log()?.mean()?;
        tape.backward(loss)?[w].clone()
    };
    let g32 = {
        let tape = Tape::<f32>::new();
        let w = tape.param(wv.mapv(|v| v as f32));
        let loss = tape
            .constant(xv.mapv(|v| v as f32))
            .matmul(w)?
            .sigmoid()?
            .log()?
            .mean()?;
        tape.backward(loss)?[w].clone()
    };
    assert!(g64.iter().any(|v| v.abs() > 1e-3));
    for (a, b) in g32.iter().zip(g64.iter()) {
        assert_abs_diff_eq!(*a as f64, *b, epsilon = 1e-6);
    }
    Ok(())
}

/// Calling `backward` on one tape with a value another tape recorded is refused, not a panic.
#[test]
fn backward_of_another_tapes_value_is_an_error() {
    let (a, b) = (Tape::<f64>::new(), Tape::<f64>::new());
    let _padding = a.constant(ndarray::arr1(&[0.0, 0.0, 0.0]).into_dyn());
    let x = b.param(ndarray::arr1(&[1.0, 2.0]).into_dyn());
    let y = x.mul(x).unwrap().sum().unwrap();
    let err = a.backward(y).unwrap_err();
    assert!(
        matches!(
            err,
            adjoint::Error::InvalidArgument {
                op: "backward",
                param: "y",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("another tape"), "{err}");
    assert!(a.backward_graph(y, None).is_err());
    assert_eq!(b.backward(y).unwrap()[x], ndarray::arr1(&[2.0, 4.0]).into_dyn());
}

/// Values of two tapes never meet in one op: node ids are positions on one tape, so recording
/// a foreign input made `backward` send its gradient to whatever node of this tape had the
/// same id (a wrong gradient with no error, or an index out of bounds). Every op refuses it,
/// whichever side is foreign, and records nothing.
#[test]
fn ops_refuse_inputs_of_another_tape() -> Result<()> {
    use adjoint::ops::conv::{ConvOptions, ConvTransposeOptions, conv_transpose2d, conv2d};
    let (a, b) = (Tape::<f64>::new(), Tape::<f64>::new());
    let xa = a.param(arr1(&[1.0, 2.0]).into_dyn());
    b.param(arr1(&[5.0]).into_dyn()); // ids on b are shifted, so a mix-up would show
    let xb = b.param(arr1(&[3.0, 4.0]).into_dyn());
    let mixed = |r: Result<Var<'_, f64>>, what: &str| match r {
        Err(Error::MixedTapes { input, .. }) => input,
        Err(e) => panic!("{what}: wrong error {e}"),
        Ok(_) => panic!("{what}: a value of another tape was accepted"),
    };
    let (len_a, len_b) = (a.len(), b.len());
    assert_eq!(mixed(xa.mul(xb), "a·b"), 1);
    assert_eq!(mixed(xb.add(xa), "b + a"), 1);
    assert_eq!(mixed(concat(&[xa, xb], 0), "concat"), 1);
    assert_eq!(mixed(mse_loss(xa, xb), "mse_loss"), 1);
    assert_eq!(mixed(bce_with_logits(xa, xb), "bce_with_logits"), 1);
    let img_a = a.constant(ArrayD::ones(IxDyn(&[1, 1, 4, 4])));
    let w_b = b.param(ArrayD::ones(IxDyn(&[1, 1, 3, 3])));
    assert_eq!(mixed(conv2d(img_a, w_b, None, &ConvOptions::new()), "conv2d"), 1);
    assert_eq!(
        mixed(
            conv_transpose2d(img_a, w_b, None, &ConvTransposeOptions::new()),
            "conv_transpose2d"
        ),
        1
    );
    let w_a = a.param(ArrayD::ones(IxDyn(&[1, 1, 3, 3])));
    let bias_b = b.param(arr1(&[0.5]).into_dyn());
    assert_eq!(
        mixed(conv2d(img_a, w_a, Some(bias_b), &ConvOptions::new()), "conv2d bias"),
        2
    );
    let logits_a = a.param(arr2(&[[1.0, 2.0]]).into_dyn());
    let target_b = b.constant(arr2(&[[0.0, 1.0]]).into_dyn());
    assert_eq!(
        mixed(softmax_cross_entropy(logits_a, target_b), "softmax_cross_entropy"),
        1
    );
    assert_eq!((a.len(), b.len()), (len_a + 3, len_b + 3), "only the leaves made here");
    let msg = xa.mul(xb).unwrap_err().to_string();
    assert_eq!(
        msg,
        "mul: input 1 (%1) lives on another tape: every input of an op must be recorded on one tape"
    );
    Ok(())
}

/// `GradVars` (gradients as values) answer only for values of their own tape, like `Grads`.
#[test]
fn grad_vars_are_not_shared_across_tapes() -> Result<()> {
    let a = Tape::<f64>::new();
    let xa = a.param(arr1(&[1.0, 2.0]).into_dyn());
    let grads = a.backward_graph(xa.mul(xa)?.sum()?, None)?;
    let b = Tape::<f64>::new();
    let xb = b.param(arr1(&[5.0, 6.0]).into_dyn());
    assert_eq!(xa.id(), xb.id());
    assert!(grads.get(xb).is_none(), "GradVars of tape A answered for tape B");
    assert!(grads.get(xa).is_some());
    Ok(())
}

/// A user's gradient rule that returns the wrong number of gradients, a gradient of the wrong
/// shape, or one on another tape, is refused by `backward` (it used to be summed in silently
/// or to panic).
#[test]
fn backward_refuses_a_broken_gradient_rule() {
    use adjoint::Op;
    /// Builds a rule's answer from the upstream gradient.
    type Make = fn(Var<'_, f64>) -> Vec<Option<Var<'_, f64>>>;
    /// Returns whatever its `Make` builds.
    struct Broken(Make);
    impl Op<f64> for Broken {
        fn name(&self) -> String {
            "broken".into()
        }
        fn backward<'t>(
            &self,
            _: &[Var<'t, f64>],
            _: Var<'t, f64>,
            g: Var<'t, f64>,
        ) -> Result<Vec<Option<Var<'t, f64>>>> {
            Ok((self.0)(g))
        }
    }
    let cases: [(Make, &str); 3] = [
        (|_| vec![], "returned 0 gradients for 1 inputs"),
        (|g| vec![Some(g.sum().unwrap())], "has shape [], the input [2]"),
        (|g| vec![Some(g), Some(g)], "returned 2 gradients for 1 inputs"),
    ];
    for (make, needle) in cases {
        let tape = Tape::<f64>::new();
        let x = tape.param(arr1(&[1.0, 2.0]).into_dyn());
        let y = tape.record(x.value().mapv(|v| 2.0 * v), &[x], Broken(make)).unwrap();
        let err = tape.backward(y.sum().unwrap()).unwrap_err();
        assert!(matches!(err, Error::BadGradientRule { .. }), "{err}");
        assert!(err.to_string().starts_with("backward of broken: "), "{err}");
        assert!(err.to_string().contains(needle), "{err}");
    }
    // A gradient that lives on another tape.
    thread_local!(static OTHER: &'static Tape<f64> = Box::leak(Box::new(Tape::new())));
    struct Foreign;
    impl Op<f64> for Foreign {
        fn name(&self) -> String {
            "foreign".into()
        }
        fn backward<'t>(
            &self,
            inputs: &[Var<'t, f64>],
            _: Var<'t, f64>,
            _: Var<'t, f64>,
        ) -> Result<Vec<Option<Var<'t, f64>>>> {
            let other: &'static Tape<f64> = OTHER.with(|t| *t);
            Ok(vec![Some(other.constant((*inputs[0].value()).clone()))])
        }
    }
    let tape = Tape::<f64>::new();
    let x = tape.param(arr1(&[1.0, 2.0]).into_dyn());
    let y = tape.record(x.value().mapv(|v| 2.0 * v), &[x], Foreign).unwrap();
    let err = tape.backward(y.sum().unwrap()).unwrap_err();
    assert!(
        err.to_string()
            .contains("the gradient of input 0 lives on another tape"),
        "{err}"
    );
}
