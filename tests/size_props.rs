//! Property tests of the size arithmetic with settings anywhere in `u64`'s range: every call
//! returns an error or exactly the shape an independent model gives, and never panics, in
//! release and debug builds alike (debug builds trap any integer overflow).
//!
//! The model below computes PyTorch's output-size rules in `u128`, where nothing can wrap, and
//! adds adjoint's two bounds: every extent (padded input, or a transposed conv's output before
//! cropping) at most `2^63 − 1`, every output at most `2^40` elements (counting its nonzero
//! sizes: a batch of 0 does not make any image size acceptable).

use std::panic::{AssertUnwindSafe, catch_unwind};

use adjoint::ops::conv::{
    ConvOptions, ConvTransposeOptions, conv, conv_output_shape, conv_transpose, conv_transpose_output_shape,
};
use adjoint::{Error, Tape};
use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;

const MAX_EXTENT: u128 = (1 << 63) - 1;
const MAX_ELEMENTS: u128 = 1 << 40;

/// A setting: half the time small (the interesting boundaries), otherwise anything from a
/// power of two near a bound to `u64::MAX`.
fn setting() -> impl Strategy<Value = usize> {
    prop_oneof![
        4 => 0usize..6,
        1 => prop::sample::select(vec![
            1usize << 20, 1 << 21, 1 << 40, 1 << 41, 1 << 62, (1 << 63) - 1, 1 << 63, usize::MAX - 1, usize::MAX,
        ]),
        1 => any::<usize>(),
    ]
}

#[derive(Clone, Debug)]
struct Case {
    rank: usize,
    batch: usize,
    groups: usize,
    /// Input channels and output channels per group.
    c_in_g: usize,
    c_out_g: usize,
    input: Vec<usize>,
    kernel: Vec<usize>,
    stride: Vec<usize>,
    dilation: Vec<usize>,
    pads: Vec<(usize, usize)>,
    output_padding: Vec<usize>,
}

fn case() -> impl Strategy<Value = Case> {
    (1usize..=2, 0usize..3, 1usize..3, 1usize..3, 1usize..3).prop_flat_map(|(rank, batch, groups, c_in_g, c_out_g)| {
        (
            prop::collection::vec(1usize..7, rank),
            prop::collection::vec(1usize..4, rank),
            prop::collection::vec(setting(), rank),
            prop::collection::vec(setting(), rank),
            prop::collection::vec((setting(), setting()), rank),
            prop::collection::vec(setting(), rank),
        )
            .prop_map(move |(input, kernel, stride, dilation, pads, output_padding)| Case {
                rank,
                batch,
                groups,
                c_in_g,
                c_out_g,
                input,
                kernel,
                stride,
                dilation,
                pads,
                output_padding,
            })
    })
}

fn wide(v: usize) -> u128 {
    v as u128
}

/// The product of the nonzero sizes: the element bound applies to it, so that an empty batch
/// cannot carry astronomically large image sizes.
fn extent(shape: &[usize]) -> u128 {
    shape.iter().map(|&v| wide(v.max(1))).product()
}

/// The model: the conv's output shape, or `None` where adjoint must refuse.
fn conv_model(c: &Case) -> Option<Vec<usize>> {
    let mut out = vec![c.batch, c.c_out_g * c.groups];
    for a in 0..c.rank {
        let (s, d) = (wide(c.stride[a]), wide(c.dilation[a]));
        if s == 0 || d == 0 {
            return None;
        }
        let padded = wide(c.input[a]) + wide(c.pads[a].0) + wide(c.pads[a].1);
        let k_e = d * (wide(c.kernel[a]) - 1) + 1;
        if padded > MAX_EXTENT || padded < k_e {
            return None;
        }
        out.push(usize::try_from((padded - k_e) / s + 1).ok()?);
    }
    (extent(&out) <= MAX_ELEMENTS).then_some(out)
}

/// The model of the transposed conv with the same settings (its input is `c.input`).
fn conv_transpose_model(c: &Case) -> Option<Vec<usize>> {
    let mut out = vec![c.batch, c.c_out_g * c.groups];
    for a in 0..c.rank {
        let (s, d, op) = (wide(c.stride[a]), wide(c.dilation[a]), wide(c.output_padding[a]));
        if s == 0 || d == 0 || (op >= s && op >= d) {
            return None;
        }
        let full = (wide(c.input[a]) - 1) * s + d * (wide(c.kernel[a]) - 1) + 1 + op;
        let cropped = wide(c.pads[a].0) + wide(c.pads[a].1);
        if full > MAX_EXTENT || full <= cropped {
            return None;
        }
        out.push(usize::try_from(full - cropped).ok()?);
    }
    (extent(&out) <= MAX_ELEMENTS).then_some(out)
}

fn shapes(c: &Case, transposed: bool) -> (Vec<usize>, Vec<usize>) {
    let spatial = |v: &[usize]| v.to_vec();
    let c_in = c.c_in_g * c.groups;
    let x = [vec![c.batch, c_in], spatial(&c.input)].concat();
    let w = if transposed {
        [vec![c_in, c.c_out_g], spatial(&c.kernel)].concat()
    } else {
        [vec![c.c_out_g * c.groups, c.c_in_g], spatial(&c.kernel)].concat()
    };
    (x, w)
}

/// The shape function and, when the output is small, the op itself (on a tape, so a refusal
/// must record nothing) agree with the model; neither panics.
fn check(c: &Case, transposed: bool) -> Result<(), TestCaseError> {
    let (x_shape, w_shape) = shapes(c, transposed);
    let conv_opts = ConvOptions::new()
        .stride(c.stride.clone())
        .dilation(c.dilation.clone())
        .padding_asymmetric(&c.pads)
        .groups(c.groups);
    let t_opts = ConvTransposeOptions::new()
        .stride(c.stride.clone())
        .dilation(c.dilation.clone())
        .padding_asymmetric(&c.pads)
        .output_padding(c.output_padding.clone())
        .groups(c.groups);
    let (model, shape) = if transposed {
        (
            conv_transpose_model(c),
            catch_unwind(|| conv_transpose_output_shape(&x_shape, &w_shape, &t_opts)),
        )
    } else {
        (
            conv_model(c),
            catch_unwind(|| conv_output_shape(&x_shape, &w_shape, &conv_opts)),
        )
    };
    let shape = shape.map_err(|_| TestCaseError::fail("the shape function panicked"))?;
    match (&model, &shape) {
        (None, Err(Error::InvalidArgument { .. } | Error::BadShape { .. })) => {}
        (Some(m), Ok(s)) => prop_assert_eq!(m, s),
        _ => return Err(TestCaseError::fail(format!("model {model:?}, adjoint {shape:?}"))),
    }
    // Run the op when its output is small; the error path always (it allocates nothing).
    if model.as_ref().is_none_or(|m| m.iter().product::<usize>() <= 4096) {
        let tape = Tape::<f64>::new();
        let x = tape.constant(ArrayD::from_elem(IxDyn(&x_shape), 0.5));
        let w = tape.constant(ArrayD::from_elem(IxDyn(&w_shape), 0.25));
        let before = tape.len();
        let y = catch_unwind(AssertUnwindSafe(|| {
            if transposed {
                conv_transpose(x, w, None, &t_opts).map(|y| y.shape())
            } else {
                conv(x, w, None, &conv_opts).map(|y| y.shape())
            }
        }))
        .map_err(|_| TestCaseError::fail("the op panicked"))?;
        match (&model, y) {
            (Some(m), Ok(s)) => prop_assert_eq!(m, &s),
            (None, Err(_)) => prop_assert_eq!(tape.len(), before, "a refused call recorded"),
            (m, y) => return Err(TestCaseError::fail(format!("model {m:?}, op {y:?}"))),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1024),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn conv_sizes_anywhere_in_u64(c in case()) {
        check(&c, false)?;
    }

    #[test]
    fn conv_transpose_sizes_anywhere_in_u64(c in case()) {
        check(&c, true)?;
    }

    /// `reshape` and `pad_axis` with sizes anywhere in `u64`: an error, or the right shape.
    #[test]
    fn reshape_and_pad_sizes_anywhere_in_u64(dims in prop::collection::vec(setting(), 1..4), before in setting(), after in setting()) {
        let tape = Tape::<f64>::new();
        let x = tape.constant(ArrayD::from_elem(IxDyn(&[4]), 1.0));
        let count = dims.iter().try_fold(1u128, |n, &d| n.checked_mul(wide(d)));
        let reshaped = catch_unwind(AssertUnwindSafe(|| x.reshape(&dims).map(|y| y.shape())))
            .map_err(|_| TestCaseError::fail("reshape panicked"))?;
        prop_assert_eq!(reshaped.is_ok(), count == Some(4), "reshape {:?}: {:?}", dims, reshaped);
        let padded = catch_unwind(AssertUnwindSafe(|| {
            let n = 4 + wide(before) + wide(after);
            // Only run what is small (an accepted huge pad would really allocate).
            if n > 4096 { None } else { Some(x.pad_axis(0, before, after).map(|y| y.shape())) }
        }))
        .map_err(|_| TestCaseError::fail("pad_axis panicked"))?;
        if let Some(padded) = padded {
            prop_assert_eq!(padded.ok(), Some(vec![4 + before + after]));
        } else if 4 + wide(before) + wide(after) > u64::MAX as u128 {
            prop_assert!(x.pad_axis(0, before, after).is_err());
        }
    }
}
