//! Every invalid conv / transposed-conv setting is refused with the right [`adjoint::Error`],
//! a message naming the op, the parameter and the offending value, without panicking and
//! before anything is recorded on the tape; every setting PyTorch accepts is accepted.

use std::panic::{AssertUnwindSafe, catch_unwind};

use adjoint::ops::conv::views::conv_transpose_matrix;
use adjoint::ops::conv::{
    ConvOptions, ConvTransposeOptions, conv, conv_transpose, conv_transpose1d, conv_transpose2d, conv_transpose3d,
    conv1d, conv2d, conv3d,
};
use adjoint::{Error, Result, Tape, Var};
use ndarray::{ArrayD, IxDyn};

type ConvFn = for<'t> fn(Var<'t, f64>, Var<'t, f64>, Option<Var<'t, f64>>, &ConvOptions) -> Result<Var<'t, f64>>;
type ConvTFn =
    for<'t> fn(Var<'t, f64>, Var<'t, f64>, Option<Var<'t, f64>>, &ConvTransposeOptions) -> Result<Var<'t, f64>>;

const RANKS: [usize; 3] = [1, 2, 3];

/// The rank-specific conv and the generic one, with the name each reports.
fn conv_ops(rank: usize) -> [(&'static str, ConvFn); 2] {
    let specific: (&'static str, ConvFn) = match rank {
        1 => ("conv1d", conv1d::<f64>),
        2 => ("conv2d", conv2d::<f64>),
        _ => ("conv3d", conv3d::<f64>),
    };
    [specific, ("conv", conv::<f64>)]
}

fn conv_transpose_ops(rank: usize) -> [(&'static str, ConvTFn); 2] {
    let specific: (&'static str, ConvTFn) = match rank {
        1 => ("conv_transpose1d", conv_transpose1d::<f64>),
        2 => ("conv_transpose2d", conv_transpose2d::<f64>),
        _ => ("conv_transpose3d", conv_transpose3d::<f64>),
    };
    [specific, ("conv_transpose", conv_transpose::<f64>)]
}

/// `[lead.., v, v, ..]` with `rank` spatial sizes `v`.
fn shape(lead: &[usize], rank: usize, v: usize) -> Vec<usize> {
    lead.iter().copied().chain(std::iter::repeat_n(v, rank)).collect()
}

fn leaf<'t>(tape: &'t Tape<f64>, shape: &[usize]) -> Var<'t, f64> {
    tape.param(ArrayD::from_elem(IxDyn(shape), 0.5))
}

/// A per-axis vector of the wrong length for `rank` (neither 1 nor `rank`).
fn wrong_len(rank: usize, v: usize) -> Vec<usize> {
    vec![v; if rank == 2 { 3 } else { 2 }]
}

/// Which error is expected.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// `InvalidArgument` for this parameter.
    Invalid(&'static str),
    /// `BadShape` of this input.
    BadShape(&'static str),
    /// `ShapeMismatch`.
    Mismatch,
}

/// Runs `call`, which must return an error (no panic) of the expected kind, reported by `op`,
/// whose message starts with `op:`, names the parameter and contains every `needle` (the
/// offending values); the tape must be as long as before the call.
fn refused<'t>(
    tape: &'t Tape<f64>,
    op: &str,
    expect: Expect,
    needles: &[&str],
    call: impl FnOnce() -> Result<Var<'t, f64>>,
) -> Error {
    let before = tape.len();
    let context = format!("{op} expecting {expect:?} with {needles:?}");
    let result = catch_unwind(AssertUnwindSafe(call)).unwrap_or_else(|_| panic!("{context}: panicked"));
    let err = match result {
        Ok(y) => panic!("{context}: accepted, output shape {:?}", y.shape()),
        Err(e) => e,
    };
    let msg = err.to_string();
    let context = format!("{context}: got {err:?} / \"{msg}\"");
    assert!(
        msg.starts_with(&format!("{op}: ")),
        "{context}: message does not start with the op"
    );
    match (expect, &err) {
        (Expect::Invalid(p), Error::InvalidArgument { op: o, param, .. }) => {
            assert_eq!((*o, *param), (op, p), "{context}");
            assert!(msg.contains(&format!("invalid {p} = ")), "{context}");
        }
        (Expect::BadShape(i), Error::BadShape { op: o, input, .. }) => {
            assert_eq!((*o, *input), (op, i), "{context}");
            assert!(msg.contains(&format!("{i} has shape ")), "{context}");
        }
        (Expect::Mismatch, Error::ShapeMismatch { op: o, .. }) => assert_eq!(*o, op, "{context}"),
        _ => panic!("{context}: wrong variant"),
    }
    for needle in needles {
        assert!(msg.contains(needle), "{context}: message lacks {needle:?}");
    }
    assert_eq!(
        tape.len(),
        before,
        "{context}: the tape grew, something was half-recorded"
    );
    err
}

/// Runs `call`, which must succeed, and returns the output shape.
fn accepted<'t>(what: &str, call: impl FnOnce() -> Result<Var<'t, f64>>) -> Vec<usize> {
    match catch_unwind(AssertUnwindSafe(call)) {
        Ok(Ok(y)) => y.shape(),
        Ok(Err(e)) => panic!("{what}: refused: {e}"),
        Err(_) => panic!("{what}: panicked"),
    }
}

// ---------------------------------------------------------------------------------------------
// conv
// ---------------------------------------------------------------------------------------------

/// `x: [1, 2, 5..]`, `w: [2, 2, 3..]` with the given options.
fn conv_case(rank: usize, op: &str, f: ConvFn, opts: &ConvOptions, expect: Expect, needles: &[&str]) {
    let tape = Tape::<f64>::new();
    let x = leaf(&tape, &shape(&[1, 2], rank, 5));
    let w = leaf(&tape, &shape(&[2, 2], rank, 3));
    refused(&tape, op, expect, needles, || f(x, w, None, opts));
}

fn conv_t_case(rank: usize, op: &str, f: ConvTFn, opts: &ConvTransposeOptions, expect: Expect, needles: &[&str]) {
    let tape = Tape::<f64>::new();
    let x = leaf(&tape, &shape(&[1, 2], rank, 3));
    let w = leaf(&tape, &shape(&[2, 2], rank, 3));
    refused(&tape, op, expect, needles, || f(x, w, None, opts));
}

#[test]
fn stride_zero() {
    for rank in RANKS {
        let mut one_axis = vec![1; rank];
        one_axis[rank - 1] = 0;
        for (op, f) in conv_ops(rank) {
            let all = format!("stride = {:?}", vec![0; rank]);
            conv_case(
                rank,
                op,
                f,
                &ConvOptions::new().stride(0),
                Expect::Invalid("stride"),
                &[&all],
            );
            let one = format!("stride = {one_axis:?}");
            let opts = ConvOptions::new().stride(one_axis.clone());
            conv_case(rank, op, f, &opts, Expect::Invalid("stride"), &[&one, "at least 1"]);
        }
        for (op, f) in conv_transpose_ops(rank) {
            let all = format!("stride = {:?}", vec![0; rank]);
            let opts = ConvTransposeOptions::new().stride(0);
            conv_t_case(rank, op, f, &opts, Expect::Invalid("stride"), &[&all]);
            let one = format!("stride = {one_axis:?}");
            let opts = ConvTransposeOptions::new().stride(one_axis.clone());
            conv_t_case(rank, op, f, &opts, Expect::Invalid("stride"), &[&one, "at least 1"]);
            // TF modes validate the stride too.
            let opts = ConvTransposeOptions::new().stride(0).tf_same();
            conv_t_case(rank, op, f, &opts, Expect::Invalid("stride"), &[&all]);
        }
    }
}

#[test]
fn dilation_zero() {
    for rank in RANKS {
        let mut one_axis = vec![2; rank];
        one_axis[0] = 0;
        let all = format!("dilation = {:?}", vec![0; rank]);
        let one = format!("dilation = {one_axis:?}");
        for (op, f) in conv_ops(rank) {
            conv_case(
                rank,
                op,
                f,
                &ConvOptions::new().dilation(0),
                Expect::Invalid("dilation"),
                &[&all],
            );
            let opts = ConvOptions::new().dilation(one_axis.clone()).padding(2);
            conv_case(rank, op, f, &opts, Expect::Invalid("dilation"), &[&one]);
        }
        for (op, f) in conv_transpose_ops(rank) {
            let opts = ConvTransposeOptions::new().dilation(0);
            conv_t_case(rank, op, f, &opts, Expect::Invalid("dilation"), &[&all]);
            let opts = ConvTransposeOptions::new().dilation(one_axis.clone()).tf_valid();
            conv_t_case(rank, op, f, &opts, Expect::Invalid("dilation"), &[&one]);
        }
    }
}

#[test]
fn groups_zero() {
    for rank in RANKS {
        for (op, f) in conv_ops(rank) {
            conv_case(
                rank,
                op,
                f,
                &ConvOptions::new().groups(0),
                Expect::Invalid("groups"),
                &["groups = 0"],
            );
        }
        for (op, f) in conv_transpose_ops(rank) {
            let opts = ConvTransposeOptions::new().groups(0);
            conv_t_case(rank, op, f, &opts, Expect::Invalid("groups"), &["groups = 0"]);
        }
    }
}

#[test]
fn in_channels_not_divisible_by_groups() {
    for rank in RANKS {
        for (op, f) in conv_ops(rank) {
            let tape = Tape::<f64>::new();
            let x = leaf(&tape, &shape(&[1, 3], rank, 5));
            let w = leaf(&tape, &shape(&[2, 1], rank, 3));
            let opts = ConvOptions::new().groups(2);
            refused(
                &tape,
                op,
                Expect::Invalid("groups"),
                &["groups = 2", "in_channels = 3"],
                || f(x, w, None, &opts),
            );
        }
        for (op, f) in conv_transpose_ops(rank) {
            let tape = Tape::<f64>::new();
            let x = leaf(&tape, &shape(&[1, 3], rank, 5));
            let w = leaf(&tape, &shape(&[3, 1], rank, 3));
            let opts = ConvTransposeOptions::new().groups(2);
            refused(
                &tape,
                op,
                Expect::Invalid("groups"),
                &["groups = 2", "in_channels = 3"],
                || f(x, w, None, &opts),
            );
        }
    }
}

/// For a conv `c_out = w.shape[0]` must divide by groups. For a transposed conv
/// `c_out = w.shape[1]·groups` always does, so there is nothing to refuse: check that.
#[test]
fn out_channels_not_divisible_by_groups() {
    for rank in RANKS {
        for (op, f) in conv_ops(rank) {
            let tape = Tape::<f64>::new();
            let x = leaf(&tape, &shape(&[1, 2], rank, 5));
            let w = leaf(&tape, &shape(&[3, 1], rank, 3));
            let opts = ConvOptions::new().groups(2);
            refused(
                &tape,
                op,
                Expect::Invalid("groups"),
                &["groups = 2", "out_channels = 3"],
                || f(x, w, None, &opts),
            );
        }
        for (op, f) in conv_transpose_ops(rank) {
            let tape = Tape::<f64>::new();
            let x = leaf(&tape, &shape(&[1, 2], rank, 5));
            let w = leaf(&tape, &shape(&[2, 3], rank, 3));
            let opts = ConvTransposeOptions::new().groups(2);
            let out = accepted(op, || f(x, w, None, &opts));
            assert_eq!(out, shape(&[1, 6], rank, 7), "{op}: c_out = 3 · groups 2");
        }
    }
}

#[test]
fn weight_and_input_channels_mismatch() {
    for rank in RANKS {
        for (op, f) in conv_ops(rank) {
            // w.shape[1]·g ≠ c_in, ungrouped and grouped.
            for (c_in, w_shape, g) in [(4, shape(&[2, 2], rank, 3), 1), (4, shape(&[2, 1], rank, 3), 2)] {
                let tape = Tape::<f64>::new();
                let x_shape = shape(&[1, c_in], rank, 5);
                let x = leaf(&tape, &x_shape);
                let w = leaf(&tape, &w_shape);
                let opts = ConvOptions::new().groups(g);
                let (xs, ws) = (format!("{x_shape:?}"), format!("{w_shape:?}"));
                refused(&tape, op, Expect::Mismatch, &[&xs, &ws, "4 channels"], || {
                    f(x, w, None, &opts)
                });
            }
        }
        for (op, f) in conv_transpose_ops(rank) {
            // w.shape[0] ≠ c_in.
            for (c_in, w_shape, g) in [(4, shape(&[2, 2], rank, 3), 1), (2, shape(&[4, 1], rank, 3), 2)] {
                let tape = Tape::<f64>::new();
                let x_shape = shape(&[1, c_in], rank, 5);
                let x = leaf(&tape, &x_shape);
                let w = leaf(&tape, &w_shape);
                let opts = ConvTransposeOptions::new().groups(g);
                let (xs, ws) = (format!("{x_shape:?}"), format!("{w_shape:?}"));
                let has = format!("{c_in} channels");
                refused(&tape, op, Expect::Mismatch, &[&xs, &ws, &has], || f(x, w, None, &opts));
            }
        }
    }
}

#[test]
fn wrong_input_rank() {
    for rank in RANKS {
        // Too many axes, and too few (one less than unbatched).
        let bad = [shape(&[1, 1, 2], rank, 5), shape(&[], rank, 5)];
        for x_shape in &bad {
            let xs = format!("{x_shape:?}");
            for (op, f) in conv_ops(rank) {
                let tape = Tape::<f64>::new();
                let x = leaf(&tape, x_shape);
                let w = leaf(&tape, &shape(&[2, 2], rank, 3));
                refused(&tape, op, Expect::BadShape("x"), &[&xs], || {
                    f(x, w, None, &ConvOptions::new())
                });
            }
            for (op, f) in conv_transpose_ops(rank) {
                let tape = Tape::<f64>::new();
                let x = leaf(&tape, x_shape);
                let w = leaf(&tape, &shape(&[2, 2], rank, 3));
                refused(&tape, op, Expect::BadShape("x"), &[&xs], || {
                    f(x, w, None, &ConvTransposeOptions::new())
                });
            }
        }
    }
}

/// The rank-specific functions refuse a weight of another rank (conv2d with a 3-D weight), and
/// the generic ones a weight with no spatial axis.
#[test]
fn wrong_weight_rank() {
    for rank in RANKS {
        let specific_conv = conv_ops(rank)[0];
        let specific_t = conv_transpose_ops(rank)[0];
        for w_rank in (2..=6).filter(|&r| r != rank + 2) {
            let w_shape = vec![2; w_rank];
            let ws = format!("{w_shape:?}");
            let tape = Tape::<f64>::new();
            let x = leaf(&tape, &shape(&[1, 2], rank, 5));
            let w = leaf(&tape, &w_shape);
            refused(&tape, specific_conv.0, Expect::BadShape("w"), &[&ws], || {
                (specific_conv.1)(x, w, None, &ConvOptions::new())
            });
            refused(&tape, specific_t.0, Expect::BadShape("w"), &[&ws], || {
                (specific_t.1)(x, w, None, &ConvTransposeOptions::new())
            });
        }
        for w_shape in [vec![2], vec![2, 2]] {
            let ws = format!("{w_shape:?}");
            let tape = Tape::<f64>::new();
            let x = leaf(&tape, &shape(&[1, 2], rank, 5));
            let w = leaf(&tape, &w_shape);
            refused(&tape, "conv", Expect::BadShape("w"), &[&ws], || {
                conv(x, w, None, &ConvOptions::new())
            });
            refused(&tape, "conv_transpose", Expect::BadShape("w"), &[&ws], || {
                conv_transpose(x, w, None, &ConvTransposeOptions::new())
            });
        }
    }
}

#[test]
fn parameter_vectors_of_the_wrong_length() {
    for rank in RANKS {
        let bad = wrong_len(rank, 1);
        let shown = format!("{bad:?}");
        let pairs = vec![(1, 1); bad.len()];
        let shown_pairs = format!("{pairs:?}");
        for (op, f) in conv_ops(rank) {
            let opts = ConvOptions::new().stride(bad.clone());
            conv_case(rank, op, f, &opts, Expect::Invalid("stride"), &[&shown]);
            let opts = ConvOptions::new().dilation(bad.clone());
            conv_case(rank, op, f, &opts, Expect::Invalid("dilation"), &[&shown]);
            let opts = ConvOptions::new().padding(bad.clone());
            conv_case(rank, op, f, &opts, Expect::Invalid("padding"), &[&shown]);
            let opts = ConvOptions::new().padding_asymmetric(&pairs);
            conv_case(rank, op, f, &opts, Expect::Invalid("padding"), &[&shown_pairs]);
            let opts = ConvOptions::new().stride(Vec::new());
            conv_case(rank, op, f, &opts, Expect::Invalid("stride"), &["[]"]);
        }
        for (op, f) in conv_transpose_ops(rank) {
            let t = ConvTransposeOptions::new;
            conv_t_case(
                rank,
                op,
                f,
                &t().stride(bad.clone()),
                Expect::Invalid("stride"),
                &[&shown],
            );
            conv_t_case(
                rank,
                op,
                f,
                &t().dilation(bad.clone()),
                Expect::Invalid("dilation"),
                &[&shown],
            );
            conv_t_case(
                rank,
                op,
                f,
                &t().padding(bad.clone()),
                Expect::Invalid("padding"),
                &[&shown],
            );
            let opts = t().padding_asymmetric(&pairs);
            conv_t_case(rank, op, f, &opts, Expect::Invalid("padding"), &[&shown_pairs]);
            let opts = t().stride(2).output_padding(bad.clone());
            conv_t_case(rank, op, f, &opts, Expect::Invalid("output_padding"), &[&shown]);
            // output_size needs exactly one size per axis (no broadcasting, as in PyTorch).
            let sizes = wrong_len(rank, 5);
            let opts = t().output_size(sizes.clone());
            let shown_sizes = format!("{sizes:?}");
            conv_t_case(rank, op, f, &opts, Expect::Invalid("output_size"), &[&shown_sizes]);
            conv_t_case(
                rank,
                op,
                f,
                &opts.tf_same(),
                Expect::Invalid("output_size"),
                &[&shown_sizes],
            );
        }
    }
}

#[test]
fn kernel_larger_than_the_padded_input() {
    for rank in RANKS {
        // (input, kernel, padding, dilation): padded input, effective kernel.
        for (i, k, p, d, padded, k_e) in [
            (2, 3, 0, 1, 2, 3),
            (5, 3, 0, 3, 5, 7),
            (2, 5, 1, 1, 4, 5),
            (1, 2, 0, 1, 1, 2),
        ] {
            for (op, f) in conv_ops(rank) {
                let tape = Tape::<f64>::new();
                let x_shape = shape(&[1, 2], rank, i);
                let x = leaf(&tape, &x_shape);
                let w = leaf(&tape, &shape(&[2, 2], rank, k));
                let opts = ConvOptions::new().padding(p).dilation(d);
                let (a, b, c) = (
                    format!("{x_shape:?}"),
                    format!("padded input size {padded}"),
                    format!("effective kernel {k_e}"),
                );
                refused(&tape, op, Expect::BadShape("x"), &[&a, &b, &c], || f(x, w, None, &opts));
            }
        }
        // Only one axis too small.
        if rank > 1 {
            let (op, f) = conv_ops(rank)[0];
            let tape = Tape::<f64>::new();
            let mut x_shape = shape(&[1, 2], rank, 6);
            x_shape[rank + 1] = 2;
            let x = leaf(&tape, &x_shape);
            let w = leaf(&tape, &shape(&[2, 2], rank, 3));
            refused(&tape, op, Expect::BadShape("x"), &["padded input size 2"], || {
                f(x, w, None, &ConvOptions::new().valid())
            });
        }
    }
}

#[test]
fn bias_of_the_wrong_length() {
    for rank in RANKS {
        for b_shape in [vec![3], vec![1], vec![2, 1], vec![]] {
            let bs = format!("{b_shape:?}");
            for (op, f) in conv_ops(rank) {
                let tape = Tape::<f64>::new();
                let x = leaf(&tape, &shape(&[1, 2], rank, 5));
                let w = leaf(&tape, &shape(&[2, 2], rank, 3));
                let b = leaf(&tape, &b_shape);
                refused(&tape, op, Expect::BadShape("bias"), &[&bs, "[2]"], || {
                    f(x, w, Some(b), &ConvOptions::new())
                });
            }
            for (op, f) in conv_transpose_ops(rank) {
                // c_out = w.shape[1]·groups = 1·2.
                let tape = Tape::<f64>::new();
                let x = leaf(&tape, &shape(&[1, 2], rank, 5));
                let w = leaf(&tape, &shape(&[2, 1], rank, 3));
                let b = leaf(&tape, &b_shape);
                refused(&tape, op, Expect::BadShape("bias"), &[&bs, "[2]"], || {
                    f(x, w, Some(b), &ConvTransposeOptions::new().groups(2))
                });
            }
        }
    }
}

#[test]
fn same_padding_with_stride_above_one() {
    for rank in RANKS {
        let mut stride = vec![1; rank];
        stride[rank - 1] = 2;
        let shown = format!("stride = {stride:?}");
        for (op, f) in conv_ops(rank) {
            let opts = ConvOptions::new().same().stride(stride.clone());
            conv_case(rank, op, f, &opts, Expect::Invalid("stride"), &[&shown, "'same'"]);
            let opts = ConvOptions::new().same().stride(3);
            conv_case(rank, op, f, &opts, Expect::Invalid("stride"), &["'same'"]);
        }
    }
}

#[test]
fn output_padding_not_below_stride_or_dilation() {
    for rank in RANKS {
        for (op, f) in conv_transpose_ops(rank) {
            for (s, d, o) in [(1, 1, 1), (2, 1, 2), (2, 2, 2), (2, 3, 3), (3, 1, 5)] {
                let opts = ConvTransposeOptions::new().stride(s).dilation(d).output_padding(o);
                let shown = format!("output_padding = {:?}", vec![o; rank]);
                conv_t_case(rank, op, f, &opts, Expect::Invalid("output_padding"), &[&shown]);
            }
            // Fine on every axis but the last.
            let mut op_v = vec![1; rank];
            op_v[rank - 1] = 3;
            let opts = ConvTransposeOptions::new()
                .stride(2)
                .dilation(3)
                .output_padding(op_v.clone());
            let shown = format!("output_padding = {op_v:?}");
            conv_t_case(rank, op, f, &opts, Expect::Invalid("output_padding"), &[&shown]);
            // TF modes check it as well.
            let opts = ConvTransposeOptions::new().stride(2).tf_same().output_padding(2);
            conv_t_case(
                rank,
                op,
                f,
                &opts,
                Expect::Invalid("output_padding"),
                &["output_padding"],
            );
        }
    }
}

/// The padding crops the whole transposed output: `(i − 1)·s + k_e + op − p_b − p_a < 1`.
#[test]
fn transposed_output_size_below_one() {
    for rank in RANKS {
        for (op, f) in conv_transpose_ops(rank) {
            // (i, k, s, p, d, op): i=1, k=1, p=1 → 1 − 2 = −1; i=2, k=3, p=3 → 4 − 6 = −2;
            // i=1, k=2, s=3, p=1, op=0 → 2 − 2 = 0.
            for (i, k, s, p, d, o) in [
                (1, 1, 1, 1, 1, 0),
                (2, 3, 1, 3, 1, 0),
                (1, 2, 3, 1, 1, 0),
                (2, 2, 2, 3, 2, 1),
            ] {
                let tape = Tape::<f64>::new();
                let x = leaf(&tape, &shape(&[1, 2], rank, i));
                let w = leaf(&tape, &shape(&[2, 2], rank, k));
                let opts = ConvTransposeOptions::new()
                    .stride(s)
                    .padding(p)
                    .dilation(d)
                    .output_padding(o);
                let shown = format!("padding = ({p}, {p})");
                refused(&tape, op, Expect::Invalid("padding"), &[&shown, "output size"], || {
                    f(x, w, None, &opts)
                });
            }
            // Asymmetric padding, on one axis only.
            let tape = Tape::<f64>::new();
            let x = leaf(&tape, &shape(&[1, 2], rank, 2));
            let w = leaf(&tape, &shape(&[2, 2], rank, 2));
            let mut pads = vec![(0, 1); rank];
            pads[rank - 1] = (1, 2); // 1 + 2 − 3 = 0
            let opts = ConvTransposeOptions::new().padding_asymmetric(&pads);
            refused(&tape, op, Expect::Invalid("padding"), &["padding = (1, 2)"], || {
                f(x, w, None, &opts)
            });
        }
    }
}

#[test]
fn explicit_output_size_outside_the_allowed_range() {
    for rank in RANKS {
        for (op, f) in conv_transpose_ops(rank) {
            // i = 3, k = 3, s = 2. PyTorch with padding 1: [5, 6]. TF SAME: [5, 6]; VALID: [7, 8].
            let pytorch = ConvTransposeOptions::new().stride(2).padding(1);
            let same = ConvTransposeOptions::new().stride(2).tf_same();
            let valid = ConvTransposeOptions::new().stride(2).tf_valid();
            for (base, range, bad) in [
                (&pytorch, "5..=6", [0, 4, 7]),
                (&same, "5..=6", [0, 4, 7]),
                (&valid, "7..=8", [0, 6, 9]),
            ] {
                for n in bad {
                    let sizes = shape(&[], rank, n);
                    let opts = base.clone().output_size(sizes.clone());
                    let shown = format!("output_size = {sizes:?}");
                    conv_t_case(rank, op, f, &opts, Expect::Invalid("output_size"), &[&shown, range]);
                }
                // One axis out of range, the others in it.
                if rank > 1 {
                    let mut sizes = shape(&[], rank, if range == "7..=8" { 7 } else { 5 });
                    sizes[0] += 2;
                    let opts = base.clone().output_size(sizes.clone());
                    conv_t_case(rank, op, f, &opts, Expect::Invalid("output_size"), &["axis 0", range]);
                }
            }
            // Padding so large that no size is allowed: (1 − 1)·2 + 3 − 2·3 + 1 = −2 at best.
            let opts = ConvTransposeOptions::new()
                .stride(2)
                .padding(3)
                .output_size(shape(&[], rank, 1));
            let tape = Tape::<f64>::new();
            let x = leaf(&tape, &shape(&[1, 2], rank, 1));
            let w = leaf(&tape, &shape(&[2, 2], rank, 3));
            refused(&tape, op, Expect::Invalid("output_size"), &["output_size = "], || {
                f(x, w, None, &opts)
            });
        }
    }
}

/// The allowed range in the output_size message is printed as a range, not a Rust `Option`.
#[test]
fn output_size_message_shows_a_plain_range() {
    let tape = Tape::<f64>::new();
    let x = leaf(&tape, &[1, 2, 3]);
    let w = leaf(&tape, &[2, 2, 3]);
    let opts = ConvTransposeOptions::new().stride(2).padding(1).output_size([9]);
    let err = refused(
        &tape,
        "conv_transpose1d",
        Expect::Invalid("output_size"),
        &["5..=6"],
        || conv_transpose1d(x, w, None, &opts),
    );
    let msg = err.to_string();
    assert!(
        !msg.contains("Some(") && !msg.contains("None"),
        "leaks an Option: {msg}"
    );
    let opts = ConvTransposeOptions::new().stride(2).padding(3).output_size([1]);
    let x1 = leaf(&tape, &[1, 2, 1]);
    let err = refused(&tape, "conv_transpose1d", Expect::Invalid("output_size"), &[], || {
        conv_transpose1d(x1, w, None, &opts)
    });
    let msg = err.to_string();
    assert!(
        !msg.contains("Some(") && !msg.contains("None"),
        "leaks an Option: {msg}"
    );
}

#[test]
fn output_size_together_with_output_padding() {
    for rank in RANKS {
        for (op, f) in conv_transpose_ops(rank) {
            for base in [
                ConvTransposeOptions::new().stride(2),
                ConvTransposeOptions::new().stride(2).tf_same(),
                ConvTransposeOptions::new().stride(2).tf_valid(),
            ] {
                // 7 is allowed for the PyTorch and VALID settings, 6 for SAME; with op it is not.
                let n = if base.padding == adjoint::ops::conv::TransposePadding::TfSame {
                    6
                } else {
                    7
                };
                let opts = base.output_size(shape(&[], rank, n)).output_padding(1);
                conv_t_case(rank, op, f, &opts, Expect::Invalid("output_size"), &["not both"]);
            }
        }
    }
}

#[test]
fn zero_sized_kernel_or_spatial_axis() {
    for rank in RANKS {
        for axis in 0..rank {
            let mut w_shape = shape(&[2, 2], rank, 3);
            w_shape[2 + axis] = 0;
            let mut x_shape = shape(&[1, 2], rank, 5);
            x_shape[2 + axis] = 0;
            let (ws, xs) = (format!("{w_shape:?}"), format!("{x_shape:?}"));
            for (op, f) in conv_ops(rank) {
                let tape = Tape::<f64>::new();
                let (x, w) = (leaf(&tape, &shape(&[1, 2], rank, 5)), leaf(&tape, &w_shape));
                refused(&tape, op, Expect::BadShape("w"), &[&ws], || {
                    f(x, w, None, &ConvOptions::new().padding(1))
                });
                let tape = Tape::<f64>::new();
                let (x, w) = (leaf(&tape, &x_shape), leaf(&tape, &shape(&[2, 2], rank, 1)));
                refused(&tape, op, Expect::BadShape("x"), &[&xs], || {
                    f(x, w, None, &ConvOptions::new().padding(1))
                });
            }
            for (op, f) in conv_transpose_ops(rank) {
                for base in [ConvTransposeOptions::new(), ConvTransposeOptions::new().tf_same()] {
                    let tape = Tape::<f64>::new();
                    let (x, w) = (leaf(&tape, &shape(&[1, 2], rank, 5)), leaf(&tape, &w_shape));
                    refused(&tape, op, Expect::BadShape("w"), &[&ws], || f(x, w, None, &base));
                    let tape = Tape::<f64>::new();
                    let (x, w) = (leaf(&tape, &x_shape), leaf(&tape, &shape(&[2, 2], rank, 1)));
                    refused(&tape, op, Expect::BadShape("x"), &[&xs], || f(x, w, None, &base));
                }
            }
        }
    }
}

/// An unbatched input goes through the same checks, and an error must leave the tape as it was
/// (the batch axis must not be added on the tape before the settings are validated).
#[test]
fn unbatched_input_errors_record_nothing() {
    for rank in RANKS {
        for (op, f) in conv_ops(rank) {
            let cases: [(ConvOptions, Expect, &str); 4] = [
                (ConvOptions::new().stride(0), Expect::Invalid("stride"), "stride"),
                (
                    ConvOptions::new().groups(3),
                    Expect::Invalid("groups"),
                    "in_channels = 2",
                ),
                (
                    ConvOptions::new().dilation(9),
                    Expect::BadShape("x"),
                    "effective kernel 19",
                ),
                (ConvOptions::new().same().stride(2), Expect::Invalid("stride"), "'same'"),
            ];
            for (opts, expect, needle) in cases {
                let tape = Tape::<f64>::new();
                let x = leaf(&tape, &shape(&[2], rank, 5));
                let w = leaf(&tape, &shape(&[2, 2], rank, 3));
                refused(&tape, op, expect, &[needle], || f(x, w, None, &opts));
            }
            let tape = Tape::<f64>::new();
            let x = leaf(&tape, &shape(&[2], rank, 5));
            let w = leaf(&tape, &shape(&[2, 2], rank, 3));
            let b = leaf(&tape, &[5]);
            refused(&tape, op, Expect::BadShape("bias"), &["[5]"], || {
                f(x, w, Some(b), &ConvOptions::new())
            });
        }
        for (op, f) in conv_transpose_ops(rank) {
            let cases: [(ConvTransposeOptions, Expect, &str); 4] = [
                (
                    ConvTransposeOptions::new().stride(0),
                    Expect::Invalid("stride"),
                    "stride",
                ),
                (
                    ConvTransposeOptions::new().output_padding(1),
                    Expect::Invalid("output_padding"),
                    "[1",
                ),
                (
                    ConvTransposeOptions::new().padding(4),
                    Expect::Invalid("padding"),
                    "(4, 4)",
                ),
                (
                    ConvTransposeOptions::new().tf_same().output_size(shape(&[], rank, 9)),
                    Expect::Invalid("output_size"),
                    "5..=5",
                ),
            ];
            for (opts, expect, needle) in cases {
                let tape = Tape::<f64>::new();
                let x = leaf(&tape, &shape(&[2], rank, 5));
                let w = leaf(&tape, &shape(&[2, 2], rank, 3));
                refused(&tape, op, expect, &[needle], || f(x, w, None, &opts));
            }
        }
    }
}

/// TensorFlow's modes size the output themselves; an explicit nonzero `output_padding` there
/// must be refused (as it is with `output_size`) or honoured (Keras adds it to the size), never
/// silently dropped.
#[test]
fn tf_modes_do_not_silently_ignore_output_padding() {
    for (name, base) in [
        ("SAME", ConvTransposeOptions::new().tf_same()),
        ("VALID", ConvTransposeOptions::new().tf_valid()),
    ] {
        let tape = Tape::<f64>::new();
        let x = leaf(&tape, &[1, 1, 3]);
        let w = leaf(&tape, &[1, 1, 4]);
        let plain = conv_transpose1d(x, w, None, &base.clone().stride(2)).unwrap();
        let with_op = catch_unwind(AssertUnwindSafe(|| {
            conv_transpose1d(x, w, None, &base.clone().stride(2).output_padding(1))
        }))
        .expect("no panic");
        if let Ok(y) = with_op {
            assert_ne!(
                y.shape(),
                plain.shape(),
                "{name}: output_padding = 1 was accepted and ignored"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Settings PyTorch accepts.
// ---------------------------------------------------------------------------------------------

#[test]
fn output_padding_at_least_stride_but_below_dilation_is_accepted() {
    for rank in RANKS {
        for (op, f) in conv_transpose_ops(rank) {
            // (i, k, s, d, op, p) → (i − 1)·s − 2p + d(k − 1) + op + 1.
            for (i, k, s, d, o, p) in [
                (3, 3, 1, 2, 1, 0),
                (3, 2, 2, 3, 2, 1),
                (2, 2, 1, 4, 3, 0),
                (4, 1, 2, 3, 2, 0),
            ] {
                let tape = Tape::<f64>::new();
                let x = leaf(&tape, &shape(&[1, 2], rank, i));
                let w = leaf(&tape, &shape(&[2, 3], rank, k));
                let opts = ConvTransposeOptions::new()
                    .stride(s)
                    .dilation(d)
                    .output_padding(o)
                    .padding(p);
                let n = (i - 1) * s + d * (k - 1) + o + 1 - 2 * p;
                let out = accepted(op, || f(x, w, None, &opts));
                assert_eq!(out, shape(&[1, 3], rank, n), "{op} i{i} k{k} s{s} d{d} op{o} p{p}");
            }
        }
    }
}

#[test]
fn transposed_padding_beyond_the_effective_kernel_is_accepted() {
    for rank in RANKS {
        for (op, f) in conv_transpose_ops(rank) {
            // (i, k, s, p, d): p > d(k − 1), output (i − 1)·s − 2p + d(k − 1) + 1 ≥ 1.
            for (i, k, s, p, d) in [(4, 2, 2, 2, 1), (5, 1, 1, 2, 1), (3, 3, 3, 3, 1), (6, 2, 1, 3, 2)] {
                let tape = Tape::<f64>::new();
                let x = leaf(&tape, &shape(&[2, 2], rank, i));
                let w = leaf(&tape, &shape(&[2, 1], rank, k));
                let opts = ConvTransposeOptions::new().stride(s).padding(p).dilation(d);
                let n = (i - 1) * s + d * (k - 1) + 1 - 2 * p;
                let out = accepted(op, || f(x, w, None, &opts));
                assert_eq!(out, shape(&[2, 1], rank, n), "{op} i{i} k{k} s{s} p{p} d{d}");
            }
        }
    }
}

#[test]
fn unbatched_batch_zero_and_depthwise_are_accepted() {
    for rank in RANKS {
        for (op, f) in conv_ops(rank) {
            let tape = Tape::<f64>::new();
            let w = leaf(&tape, &shape(&[4, 1], rank, 3));
            let b = leaf(&tape, &[4]);
            let dw = ConvOptions::new().groups(4).padding(1);
            let x = leaf(&tape, &shape(&[4], rank, 5));
            assert_eq!(
                accepted(op, || f(x, w, Some(b), &dw)),
                shape(&[4], rank, 5),
                "{op} unbatched"
            );
            let x = leaf(&tape, &shape(&[0, 4], rank, 5));
            assert_eq!(
                accepted(op, || f(x, w, Some(b), &dw)),
                shape(&[0, 4], rank, 5),
                "{op} batch 0"
            );
            let x = leaf(&tape, &shape(&[2, 4], rank, 5));
            assert_eq!(
                accepted(op, || f(x, w, Some(b), &dw)),
                shape(&[2, 4], rank, 5),
                "{op} depthwise"
            );
            // The boundary: padded input exactly the effective kernel.
            let x = leaf(&tape, &shape(&[1, 4], rank, 3));
            let opts = ConvOptions::new().groups(4).dilation(2).padding(1);
            assert_eq!(
                accepted(op, || f(x, w, None, &opts)),
                shape(&[1, 4], rank, 1),
                "{op} boundary"
            );
        }
        for (op, f) in conv_transpose_ops(rank) {
            let tape = Tape::<f64>::new();
            let w = leaf(&tape, &shape(&[4, 1], rank, 3));
            let b = leaf(&tape, &[4]);
            let dw = ConvTransposeOptions::new()
                .groups(4)
                .stride(2)
                .padding(1)
                .output_padding(1);
            let x = leaf(&tape, &shape(&[4], rank, 5));
            assert_eq!(
                accepted(op, || f(x, w, Some(b), &dw)),
                shape(&[4], rank, 10),
                "{op} unbatched"
            );
            let x = leaf(&tape, &shape(&[0, 4], rank, 5));
            assert_eq!(
                accepted(op, || f(x, w, Some(b), &dw)),
                shape(&[0, 4], rank, 10),
                "{op} batch 0"
            );
            let x = leaf(&tape, &shape(&[2, 4], rank, 5));
            assert_eq!(
                accepted(op, || f(x, w, Some(b), &dw)),
                shape(&[2, 4], rank, 10),
                "{op} depthwise"
            );
            let tf = ConvTransposeOptions::new().groups(4).stride(2).tf_same();
            let x = leaf(&tape, &shape(&[4], rank, 5));
            assert_eq!(
                accepted(op, || f(x, w, None, &tf)),
                shape(&[4], rank, 10),
                "{op} unbatched SAME"
            );
        }
    }
}

/// PyTorch's `output_size` may be the whole output shape: `[n, c_out, o..]` for a batched input,
/// `[c_out, o..]` for an unbatched one. Only the spatial sizes are read (PyTorch ignores the
/// others, so `[7, 99, o..]` works too); the channel-less `[c_out, o..]` of a batched input is
/// still a wrong length.
#[test]
fn whole_output_shape_as_output_size() {
    for rank in RANKS {
        for (op, f) in conv_transpose_ops(rank) {
            let tape = Tape::<f64>::new();
            // i = 4, k = 3, s = 2, p = 1: the conv maps back from 7 or 8.
            let w = leaf(&tape, &shape(&[3, 2], rank, 3));
            let base = ConvTransposeOptions::new().stride(2).padding(1);
            let spatial = base.clone().output_size(vec![8; rank]);
            for lead in [&[2, 2][..], &[7, 99][..]] {
                let x = leaf(&tape, &shape(&[2, 3], rank, 4));
                let whole = base.clone().output_size(shape(lead, rank, 8));
                let what = format!("{op} batched, output_size {:?}", whole.output_size);
                assert_eq!(
                    accepted(&what, || f(x, w, None, &whole)),
                    shape(&[2, 2], rank, 8),
                    "{what}"
                );
                let (a, b) = (f(x, w, None, &whole).unwrap(), f(x, w, None, &spatial).unwrap());
                assert_eq!(a.value(), b.value(), "{what}");
            }
            let x = leaf(&tape, &shape(&[3], rank, 4));
            let whole = base.clone().output_size(shape(&[2], rank, 8));
            let what = format!("{op} unbatched, output_size {:?}", whole.output_size);
            assert_eq!(
                accepted(&what, || f(x, w, None, &whole)),
                shape(&[2], rank, 8),
                "{what}"
            );
            let x = leaf(&tape, &shape(&[2, 3], rank, 4));
            let short = base.clone().output_size(shape(&[2], rank, 8));
            refused(
                &tape,
                op,
                Expect::Invalid("output_size"),
                &["one per spatial axis"],
                || f(x, w, None, &short),
            );
        }
        // The dense-matrix view validates through the same rule (its x is `[1, ..input]`).
        let w = ArrayD::from_elem(IxDyn(&shape(&[3, 2], rank, 3)), 0.5);
        let input = shape(&[3], rank, 4);
        let base = ConvTransposeOptions::new().stride(2).padding(1);
        let whole = base.clone().output_size(shape(&[1, 2], rank, 8));
        let spatial = base.output_size(vec![8; rank]);
        assert_eq!(
            conv_transpose_matrix(&w, &input, &whole).unwrap(),
            conv_transpose_matrix(&w, &input, &spatial).unwrap(),
            "rank {rank}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Sizes beyond usize, beyond 2^63 − 1 per axis, or beyond 2^40 elements
// ---------------------------------------------------------------------------------------------

const MAX: usize = usize::MAX;

/// Settings whose sizes wrap `usize` (they used to return a wrong shape in release builds and
/// panic with "attempt to add with overflow" in debug ones) are refused by name, with the
/// values, by the op and by the shape-only function alike.
#[test]
fn conv_settings_whose_sizes_overflow() {
    let huge = MAX.to_string();
    for rank in RANKS {
        for (op, f) in conv_ops(rank) {
            // 5 + MAX + MAX wraps to 3 (the old answer: an output of 1 cell per axis).
            conv_case(
                rank,
                op,
                f,
                &ConvOptions::new().padding(MAX),
                Expect::Invalid("padding"),
                &[&huge, "exceeds"],
            );
            // Fits usize but not an index: 5 + 2^62 + 2^62 > 2^63 − 1.
            let half = 1usize << 62;
            conv_case(
                rank,
                op,
                f,
                &ConvOptions::new().padding(half),
                Expect::Invalid("padding"),
                &["exceeds 9223372036854775807"],
            );
            conv_case(
                rank,
                op,
                f,
                &ConvOptions::new().padding_asymmetric(&[(MAX, 1)]),
                Expect::Invalid("padding"),
                &[&huge],
            );
            // d·(k − 1) + 1 = 2·MAX + 1 wraps to MAX: now reported exactly, as a kernel too large.
            conv_case(
                rank,
                op,
                f,
                &ConvOptions::new().dilation(MAX),
                Expect::BadShape("x"),
                &["effective kernel 36893488147419103231"],
            );
            conv_case(
                rank,
                op,
                f,
                &ConvOptions::new().dilation(MAX).same(),
                Expect::Invalid("dilation"),
                &[&huge],
            );
        }
    }
}

#[test]
fn conv_transpose_settings_whose_sizes_overflow() {
    let huge = MAX.to_string();
    for rank in RANKS {
        for (op, f) in conv_transpose_ops(rank) {
            // (3 − 1)·MAX + 3 wraps; the message names the setting that alone is too large.
            let cases: [(ConvTransposeOptions, &str, &str); 5] = [
                (ConvTransposeOptions::new().stride(MAX), "stride", &huge),
                (
                    ConvTransposeOptions::new().stride(1 << 62),
                    "stride",
                    "(3 − 1)·4611686018427387904",
                ),
                (ConvTransposeOptions::new().dilation(MAX), "dilation", &huge),
                (
                    ConvTransposeOptions::new().dilation(MAX).output_padding(MAX - 1),
                    "dilation",
                    &huge,
                ),
                (
                    ConvTransposeOptions::new().stride(MAX).tf_same(),
                    "stride",
                    "does not fit",
                ),
            ];
            for (opts, param, needle) in cases {
                conv_t_case(rank, op, f, &opts, Expect::Invalid(param), &[needle]);
            }
            // Padding larger than the output crops it all: refused as before, now without
            // computing the (wrapping) full size first.
            conv_t_case(
                rank,
                op,
                f,
                &ConvTransposeOptions::new().padding(MAX),
                Expect::Invalid("padding"),
                &["crops"],
            );
            // An explicit size beyond what any conv maps back from.
            let opts = ConvTransposeOptions::new().stride(2).output_size(vec![MAX; rank]);
            conv_t_case(rank, op, f, &opts, Expect::Invalid("output_size"), &[&huge]);
            let opts = ConvTransposeOptions::new()
                .stride(2)
                .tf_valid()
                .output_size(vec![MAX; rank]);
            conv_t_case(rank, op, f, &opts, Expect::Invalid("output_size"), &[&huge]);
        }
    }
}

/// An output of more than 2^40 elements is refused by name before anything is allocated
/// (it used to abort the process on the failed allocation).
#[test]
fn outputs_beyond_the_element_bound() {
    let tape = Tape::<f64>::new();
    // 2 cells stretched by 2^21 per axis: (2 − 1)·2^21 + 1 per axis, 2^42 cells in 2-D.
    let x = leaf(&tape, &[1, 1, 2, 2]);
    let w = leaf(&tape, &[1, 1, 1, 1]);
    let opts = ConvTransposeOptions::new().stride(1 << 21);
    refused(
        &tape,
        "conv_transpose2d",
        Expect::Invalid("output"),
        &["2097153", "2^40"],
        || conv_transpose2d(x, w, None, &opts),
    );
    // A conv's output grows with its padding.
    let x = leaf(&tape, &[1, 1, 1, 1]);
    let opts = ConvOptions::new().padding(1 << 21);
    refused(&tape, "conv2d", Expect::Invalid("output"), &["4194305"], || {
        conv2d(x, w, None, &opts)
    });
    // Channels times groups beyond usize (the tensors hold no elements, so they exist).
    let x = leaf(&tape, &[1, 8, 5]);
    let w = leaf(&tape, &[0, 1 << 61, 3]);
    refused(
        &tape,
        "conv1d",
        Expect::Mismatch,
        &["2305843009213693952 × groups 8"],
        || conv1d(x, w, None, &ConvOptions::new().groups(8)),
    );
    let x = leaf(&tape, &[1, 0, 5]);
    refused(
        &tape,
        "conv_transpose1d",
        Expect::Invalid("groups"),
        &["overflows"],
        || conv_transpose1d(x, w, None, &ConvTransposeOptions::new().groups(8)),
    );
}

/// Huge but representable settings whose output is small run in time proportional to the
/// output, not to the padded input (padding 2^40 used to hang in the kernels), and give the
/// right answer: every window reads only padding, so the output is the bias and no gradient
/// reaches x.
#[test]
fn huge_padding_with_a_small_output_is_computed_not_looped_over() {
    use adjoint::ops::conv::{conv_output_shape, conv_transpose_output_shape};
    let started = std::time::Instant::now();
    for rank in [1, 2] {
        let tape = Tape::<f64>::new();
        let x = leaf(&tape, &shape(&[1, 1], rank, 5));
        let w = leaf(&tape, &shape(&[2, 1], rank, 3));
        let b = tape.param(ndarray::arr1(&[0.25, -0.5]).into_dyn());
        // Padded size 5 + 2^41 per axis; windows at 0 and 2^42 read only padding.
        let opts = ConvOptions::new().padding(1 << 40).stride(1 << 41);
        let y = conv(x, w, Some(b), &opts).unwrap();
        assert_eq!(y.shape(), shape(&[1, 2], rank, 2));
        assert_eq!(conv_output_shape(&x.shape(), &w.shape(), &opts).unwrap(), y.shape());
        let per_channel = 1 << rank; // 2^rank cells per channel
        let expected: Vec<f64> = [0.25; 8][..per_channel]
            .iter()
            .chain(&[-0.5; 8][..per_channel])
            .copied()
            .collect();
        assert_eq!(y.value().as_slice().unwrap(), expected.as_slice());
        let grads = tape.backward(y.sum().unwrap()).unwrap();
        assert!(grads[x].iter().all(|&g| g == 0.0), "rank {rank}");
        assert!(grads[w].iter().all(|&g| g == 0.0), "rank {rank}");
        // The same for dilation: the taps 2^40 apart straddle a 5-cell input.
        let opts = ConvOptions::new().padding(1 << 40).dilation(1 << 40);
        let y = conv(x, w, None, &opts).unwrap();
        assert_eq!(y.shape(), shape(&[1, 2], rank, 5));
        // The adjoint: a transposed conv cropping 2^40 cells from each side of its output.
        let xt = leaf(&tape, &shape(&[1, 2], rank, 5));
        let opts = ConvTransposeOptions::new().padding(1 << 40).dilation(1 << 40);
        let yt = conv_transpose(xt, w, None, &opts).unwrap();
        assert_eq!(yt.shape(), shape(&[1, 1], rank, 5));
        assert_eq!(
            conv_transpose_output_shape(&xt.shape(), &w.shape(), &opts).unwrap(),
            yt.shape()
        );
    }
    // Generous for a debug build on a loaded machine; the old code did not finish in minutes.
    assert!(started.elapsed().as_secs() < 20, "took {:?}", started.elapsed());
}
