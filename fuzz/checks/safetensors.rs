//! What loading weights must do with any bytes, checked by the `safetensors` fuzz target and
//! replayed on the committed corpus by `tests/fuzz_corpus.rs` (both include this file).
//!
//! The bytes go to [`adjoint::nn::io::from_bytes`] for a small model (a `Conv2d`, a `Relu` and
//! a `ConvTranspose2d` in a `Sequential`), once in `f32` and once in `f64`. It must return `Ok`
//! or `Err`, never panic; after `Ok` every parameter still has its declared shape, and after
//! `Err` the model is unchanged (the loader promises all or nothing).

use std::path::Path;

use adjoint::float::Float;
use adjoint::nn::io::{from_bytes, to_bytes};
use adjoint::nn::{Conv2d, ConvTranspose2d, Module, Relu, Sequential};
use adjoint::ops::conv::{ConvOptions, ConvTransposeOptions};
use ndarray::ArrayD;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// The model the bytes are loaded into: parameters `0.weight [2, 1, 3, 3]`, `0.bias [2]`,
/// `2.weight [2, 1, 3, 3]`, `2.bias [1]`, drawn from a fixed seed.
pub fn model<T: Float>() -> Sequential<T> {
    let mut rng = StdRng::seed_from_u64(0);
    Sequential::new()
        .add(Conv2d::new(1, 2, 3, ConvOptions::new().stride(2).padding(1), &mut rng).expect("valid layer"))
        .add(Relu)
        .add(
            ConvTranspose2d::new(
                2,
                1,
                3,
                ConvTransposeOptions::new().stride(2).padding(1).output_padding(1),
                &mut rng,
            )
            .expect("valid layer"),
        )
}

/// Loads `bytes` into the model in both precisions and checks the outcome.
pub fn check(bytes: &[u8]) {
    check_in::<f32>(bytes);
    check_in::<f64>(bytes);
}

fn snapshot<T: Float>(model: &Sequential<T>) -> Vec<(String, ArrayD<T>)> {
    model
        .parameters()
        .into_iter()
        .map(|(name, p)| (name, p.value().clone()))
        .collect()
}

fn check_in<T: Float>(bytes: &[u8]) {
    let mut model = model::<T>();
    let before = snapshot(&model);
    let result = from_bytes(&mut model, bytes, Path::new("fuzz-input.safetensors"));
    let after = snapshot(&model);
    assert_eq!(before.len(), after.len(), "{}: the parameter count changed", T::NAME);
    for ((name, old), (new_name, new)) in before.iter().zip(&after) {
        assert_eq!(name, new_name, "{}: parameter names changed", T::NAME);
        match &result {
            Ok(()) => assert_eq!(
                old.shape(),
                new.shape(),
                "{}: {name} was loaded with another shape",
                T::NAME
            ),
            // Bitwise, so that a NaN written over a value is seen too.
            Err(e) => assert!(
                old.shape() == new.shape()
                    && old
                        .iter()
                        .zip(new)
                        .all(|(a, b)| Float::to_f64(*a).to_bits() == Float::to_f64(*b).to_bits()),
                "{}: refused ({e}) but {name} changed",
                T::NAME
            ),
        }
    }
}

/// Valid files to start the fuzzer from, named for the corpus: the model's weights as saved in
/// `f32` and in `f64`.
#[allow(dead_code)] // used by tests/fuzz_corpus.rs, not by the fuzz target
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    vec![
        ("seed-f32".to_string(), to_bytes(&model::<f32>()).expect("serialisable")),
        ("seed-f64".to_string(), to_bytes(&model::<f64>()).expect("serialisable")),
    ]
}
