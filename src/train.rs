//! The training loop of the examples, as library code so tests run exactly what users run.

use ndarray::{Array4, ArrayD, Axis};
use rand::Rng;

use crate::data::{Batches, Dataset};
use crate::error::{Error, Result, bad_shape};
use crate::float::Float;
use crate::nn::{Conv2d, ConvTranspose2d, Module, Relu, Sequential, Sigmoid};
use crate::ops::conv::{ConvOptions, ConvTransposeOptions};
use crate::ops::loss::mse_loss;
use crate::optim::Optimizer;
use crate::tape::Tape;

/// The classic convolutional autoencoder for 28×28 images, as one `Sequential` so its
/// parameter names match PyTorch's:
///
/// ```text
/// nn.Sequential(
///     nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),          # 28 → 14
///     nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),         # 14 → 7
///     nn.Conv2d(32, latent, 7),                                     # 7 → 1: the code
///     nn.ConvTranspose2d(latent, 32, 7), nn.ReLU(),                 # 1 → 7
///     nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),  # 7 → 14
///     nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid()) # 14 → 28
/// ```
///
/// The decoder mirrors the encoder: each transposed conv undoes the shape of the conv at the
/// same depth, and `output_padding = 1` picks 14 (not 13) and 28 (not 27) out of the sizes a
/// stride-2 conv maps to 7 and 14.
///
/// # Errors
/// [`crate::Error::InvalidArgument`] if `latent` is 0.
pub fn conv_autoencoder<T: Float>(latent: usize, rng: &mut impl Rng) -> Result<Sequential<T>> {
    let down = || ConvOptions::new().stride(2).padding(1);
    let up = || ConvTransposeOptions::new().stride(2).padding(1).output_padding(1);
    Ok(Sequential::new()
        .add(Conv2d::new(1, 16, 3, down(), rng)?)
        .add(Relu)
        .add(Conv2d::new(16, 32, 3, down(), rng)?)
        .add(Relu)
        .add(Conv2d::new(32, latent, 7, ConvOptions::new(), rng)?)
        .add(ConvTranspose2d::new(latent, 32, 7, ConvTransposeOptions::new(), rng)?)
        .add(Relu)
        .add(ConvTranspose2d::new(32, 16, 3, up(), rng)?)
        .add(Relu)
        .add(ConvTranspose2d::new(16, 1, 3, up(), rng)?)
        .add(Sigmoid))
}

fn to_array<T: Float>(images: Array4<f32>) -> ArrayD<T> {
    images.mapv(|v| T::of(v as f64)).into_dyn()
}

/// Refuses an empty `data`: a mean over no images is undefined, and 0 would read as a
/// perfect model.
fn require_images(op: &'static str, param: &'static str, data: &Dataset) -> Result<()> {
    if data.is_empty() {
        return Err(Error::InvalidArgument {
            op,
            param,
            value: "an empty dataset".into(),
            reason: "no images to average over".into(),
        });
    }
    Ok(())
}

/// One pass over `data` in shuffled mini-batches, training `model` to reproduce its input
/// (MSE). Calls `on_batch(loss, images)` after each step. Returns the mean training loss.
///
/// # Errors
/// [`Error::InvalidArgument`] if `data` has no images; a bad batch size, or a model that
/// does not map images to images of the same shape.
pub fn train_autoencoder_epoch<T: Float>(
    model: &mut impl Module<T>,
    optimizer: &mut impl Optimizer<T>,
    data: &Dataset,
    batch_size: usize,
    shuffle_seed: u64,
    mut on_batch: impl FnMut(f64, usize),
) -> Result<f64> {
    require_images("train_autoencoder_epoch", "data", data)?;
    let (mut total, mut count) = (0.0, 0);
    for batch in Batches::new(data, batch_size, Some(shuffle_seed))? {
        let n = batch.images.len_of(Axis(0));
        let grads = {
            let tape = Tape::new();
            let x = tape.constant(to_array(batch.images));
            let loss = mse_loss(model.forward(x)?, x)?;
            let value = loss.value().sum().to_f64();
            total += value * n as f64;
            count += n;
            on_batch(value, n);
            tape.backward(loss)?
        };
        // The tape is gone, so the optimizer updates the parameters in place without copies.
        optimizer.step(model, &grads);
    }
    Ok(total / count as f64)
}

/// Mean squared reconstruction error of `model` over `data` (every pixel of every image),
/// computed without recording gradients.
///
/// # Errors
/// As [`train_autoencoder_epoch`].
pub fn reconstruction_mse<T: Float>(model: &impl Module<T>, data: &Dataset, batch_size: usize) -> Result<f64> {
    require_images("reconstruction_mse", "data", data)?;
    let (mut total, mut count) = (0.0, 0usize);
    for batch in Batches::new(data, batch_size, None)? {
        let tape = Tape::new();
        let value = tape.no_grad(|| -> Result<f64> {
            let x = tape.constant(to_array(batch.images));
            let n = x.value().len();
            count += n;
            Ok(mse_loss(model.forward(x)?, x)?.value().sum().to_f64() * n as f64)
        })?;
        total += value;
    }
    Ok(total / count as f64)
}

/// Reconstructions of `images` (`[n, 1, h, w]`) by `model`.
///
/// # Errors
/// As [`train_autoencoder_epoch`].
pub fn reconstruct<T: Float>(model: &impl Module<T>, images: Array4<f32>) -> Result<ArrayD<T>> {
    let tape = Tape::new();
    tape.no_grad(|| Ok((*model.forward(tape.constant(to_array(images)))?.value()).clone()))
}

/// The MSE over `validation` of the trivial model that always predicts the mean image of
/// `train`: the baseline a trained autoencoder must beat.
///
/// # Errors
/// [`Error::InvalidArgument`] if either set has no images (there is no mean to predict, or
/// nothing to score it on); [`Error::BadShape`] if their images differ in size.
pub fn mean_image_mse(train: &Dataset, validation: &Dataset) -> Result<f64> {
    const OP: &str = "mean_image_mse";
    require_images(OP, "train", train)?;
    require_images(OP, "validation", validation)?;
    let image = &train.images.shape()[1..];
    if validation.images.shape()[1..] != *image {
        return Err(bad_shape(
            OP,
            "validation",
            validation.images.shape(),
            format!("its images must be shaped as train's, {image:?}"),
        ));
    }
    let mean = train.images.sum_axis(Axis(0)) / train.len() as f32;
    let diff = &validation.images - &mean.insert_axis(Axis(0));
    let total: f64 = diff.iter().map(|&d| (d as f64) * (d as f64)).sum();
    Ok(total / diff.len() as f64)
}
