//! The training loop of the autoencoder example, as users run it: it learns, it is
//! reproducible, and its baseline is computed right.

use std::path::Path;
use std::time::Instant;

use adjoint::Error;
use adjoint::data::{Dataset, load_mnist_dir, synthetic_shapes};
use adjoint::nn::{Module, Sequential};
use adjoint::optim::Adam;
use adjoint::train::{conv_autoencoder, mean_image_mse, reconstruct, reconstruction_mse, train_autoencoder_epoch};
use ndarray::{Array4, ArrayD};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Trains for `epochs` epochs; returns (validation loss before, per-epoch training losses,
/// per-epoch validation losses, the model).
fn run(
    train: &Dataset,
    val: &Dataset,
    seed: u64,
    epochs: usize,
    batch_size: usize,
    latent: usize,
) -> (f64, Vec<f64>, Vec<f64>, Sequential<f32>) {
    let mut model = conv_autoencoder::<f32>(latent, &mut StdRng::seed_from_u64(seed)).unwrap();
    let mut opt = Adam::new(1e-3);
    let start = reconstruction_mse(&model, val, 256).unwrap();
    let (mut train_losses, mut val_losses) = (Vec::new(), Vec::new());
    for epoch in 0..epochs {
        let mut batches = 0;
        let loss = train_autoencoder_epoch(
            &mut model,
            &mut opt,
            train,
            batch_size,
            seed.wrapping_add(1 + epoch as u64),
            |loss, n| {
                assert!(loss.is_finite() && n > 0);
                batches += 1;
            },
        )
        .unwrap();
        assert_eq!(batches, train.len().div_ceil(batch_size));
        train_losses.push(loss);
        val_losses.push(reconstruction_mse(&model, val, 256).unwrap());
    }
    (start, train_losses, val_losses, model)
}

#[test]
fn autoencoder_learns_synthetic_shapes() {
    let t0 = Instant::now();
    let (train, val) = synthetic_shapes(2200, 28, 0).unwrap().split_at(2000).unwrap();
    let (start, train_losses, val_losses, model) = run(&train, &val, 0, 3, 32, 64);
    let baseline = mean_image_mse(&train, &val).unwrap();
    println!(
        "synthetic: validation {start:.5} -> {val_losses:.5?}, train {train_losses:.5?}, \
         mean-image baseline {baseline:.5}, {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let last = *val_losses.last().unwrap();
    assert!(last < 0.5 * start, "validation loss {start} -> {last}: not halved");
    assert!(
        last < baseline,
        "validation loss {last} does not beat the mean image ({baseline})"
    );
    assert!(train_losses.last() < train_losses.first(), "{train_losses:?}");
    // The reconstructions are images of the right shape in (0, 1).
    let images = val.select(&[0, 1, 2]).unwrap();
    let out = reconstruct(&model, images.clone()).unwrap();
    assert_eq!(out.shape(), images.shape());
    assert!(out.iter().all(|&v| v > 0.0 && v < 1.0));
    // reconstruction_mse on those three images is the MSE of what `reconstruct` returns.
    let three = Dataset::new(images.clone(), None).unwrap();
    let want = out
        .iter()
        .zip(images.iter())
        .map(|(&a, &b)| ((a - b) as f64).powi(2))
        .sum::<f64>()
        / out.len() as f64;
    let got = reconstruction_mse(&model, &three, 2).unwrap();
    assert!((got - want).abs() <= 1e-6 * want, "{got} vs {want}");
}

fn weights(model: &Sequential<f32>) -> Vec<ArrayD<f32>> {
    model.parameters().iter().map(|(_, p)| p.value().clone()).collect()
}

#[test]
fn training_is_deterministic() {
    let (train, val) = synthetic_shapes(352, 28, 1).unwrap().split_at(320).unwrap();
    // Small latent for speed; 2 epochs so the per-epoch shuffle seed matters too.
    let (s1, t1, v1, m1) = run(&train, &val, 42, 2, 32, 16);
    let (s2, t2, v2, m2) = run(&train, &val, 42, 2, 32, 16);
    let (s3, t3, v3, m3) = run(&train, &val, 43, 2, 32, 16);
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(s1.to_bits(), s2.to_bits());
    assert_eq!(bits(&t1), bits(&t2), "training losses differ between identical runs");
    assert_eq!(bits(&v1), bits(&v2), "validation losses differ between identical runs");
    for (a, b) in weights(&m1).iter().zip(weights(&m2)) {
        assert!(
            a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "weights differ"
        );
    }
    assert_ne!(s1, s3, "a different seed should start from different weights");
    assert!(t1.iter().zip(&t3).all(|(a, b)| a != b), "{t1:?} vs {t3:?}");
    assert!(v1.iter().zip(&v3).all(|(a, b)| a != b));
    assert!(weights(&m1).iter().zip(weights(&m3)).all(|(a, b)| *a != b));
}

/// The shuffling seed alone changes the run: same initial weights, different batch order.
#[test]
fn shuffle_seed_changes_the_trajectory() {
    let (train, _) = synthetic_shapes(96, 28, 2).unwrap().split_at(96).unwrap();
    let epoch = |shuffle| {
        let mut model = conv_autoencoder::<f32>(8, &mut StdRng::seed_from_u64(0)).unwrap();
        let mut opt = Adam::new(1e-3);
        let loss = train_autoencoder_epoch(&mut model, &mut opt, &train, 32, shuffle, |_, _| {}).unwrap();
        (loss, weights(&model))
    };
    let (a, b, c) = (epoch(5), epoch(5), epoch(6));
    assert_eq!(a.0.to_bits(), b.0.to_bits());
    assert_eq!(a.1, b.1);
    assert_ne!(a.0, c.0);
    assert_ne!(a.1, c.1);
}

/// Two 1×2×2 training images and two validation images, worked out by hand.
#[test]
fn mean_image_mse_by_hand() {
    let image = |v: [f32; 4]| Array4::from_shape_vec((1, 1, 2, 2), v.to_vec()).unwrap();
    let cat = |a: Array4<f32>, b: Array4<f32>| ndarray::concatenate(ndarray::Axis(0), &[a.view(), b.view()]).unwrap();
    let train = Dataset::new(cat(image([0.0, 0.5, 1.0, 0.25]), image([1.0, 0.5, 0.0, 0.75])), None).unwrap();
    // Mean image: [0.5, 0.5, 0.5, 0.5].
    let val = Dataset::new(cat(image([1.0, 0.5, 0.0, 0.5]), image([0.25, 0.25, 0.75, 1.0])), None).unwrap();
    // Squared differences: [0.25, 0, 0.25, 0] and [0.0625, 0.0625, 0.0625, 0.25]; sum 0.9375 over 8.
    let want = 0.9375 / 8.0;
    let got = mean_image_mse(&train, &val).unwrap();
    assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    // Validating on the training set itself: variance per pixel, averaged: (0.25+0+0.25+0.0625)/4.
    let own = mean_image_mse(&train, &train).unwrap();
    assert!((own - 0.5625 / 4.0).abs() < 1e-12, "{own}");
    // Images of another size: an error, not a panic in the subtraction.
    let wide = Dataset::new(Array4::zeros((1, 1, 2, 3)), None).unwrap();
    let err = mean_image_mse(&train, &wide).unwrap_err();
    assert!(
        matches!(
            err,
            Error::BadShape {
                op: "mean_image_mse",
                ..
            }
        ),
        "{err}"
    );
}

/// No images: no mean to report. An empty set is an error naming the function, not a loss of
/// 0 (a perfect model) nor NaN.
#[test]
fn empty_datasets_are_refused() {
    let empty = Dataset::new(Array4::zeros((0, 1, 28, 28)), None).unwrap();
    let some = synthetic_shapes(4, 28, 0).unwrap();
    let mut model = conv_autoencoder::<f32>(4, &mut StdRng::seed_from_u64(0)).unwrap();
    let refused = |result: adjoint::Result<f64>, op: &str, param: &str| {
        let err = result.unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument { op: o, param: p, .. } if *o == op && *p == param),
            "{err:?}"
        );
        assert!(err.to_string().contains("no images"), "{err}");
    };
    let epoch = train_autoencoder_epoch(&mut model, &mut Adam::new(1e-3), &empty, 8, 0, |_, _| {
        panic!("a step on no data")
    });
    refused(epoch, "train_autoencoder_epoch", "data");
    refused(reconstruction_mse(&model, &empty, 8), "reconstruction_mse", "data");
    refused(mean_image_mse(&empty, &some), "mean_image_mse", "train");
    refused(mean_image_mse(&some, &empty), "mean_image_mse", "validation");
}

#[test]
fn mnist_short_run_reduces_validation_loss() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist");
    if !dir.exists() {
        println!("note: {} is absent; skipping the MNIST run", dir.display());
        return;
    }
    let t0 = Instant::now();
    let all = load_mnist_dir(&dir).unwrap();
    let (first, _) = all.split_at(1000).unwrap();
    let (train, val) = first.split_at(900).unwrap();
    let (start, train_losses, val_losses, _) = run(&train, &val, 0, 3, 32, 64);
    let baseline = mean_image_mse(&train, &val).unwrap();
    println!(
        "MNIST: validation {start:.5} -> {val_losses:.5?}, train {train_losses:.5?}, \
         mean-image baseline {baseline:.5}, {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let last = *val_losses.last().unwrap();
    assert!(last < 0.5 * start, "MNIST validation loss {start} -> {last}");
    assert!(val_losses.windows(2).all(|w| w[1] < w[0]), "{val_losses:?}");
}
