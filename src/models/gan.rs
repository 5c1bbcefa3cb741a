//! A DCGAN for 28×28 grayscale images (Radford et al., 2016) and the small digit classifier
//! that scores its samples (`examples/gan.rs`).
//!
//! Each model is an `nn.Sequential`, so its parameter and buffer names are PyTorch's indices:
//!
//! ```text
//! def up(c_in, c_out, last):                        # doubles the side: 7 → 14 → 28
//!     if upsample == "transposed":
//!         return [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)]
//!     return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1)]
//!
//! generator = nn.Sequential(                          # z: [n, latent] → [n, 1, 28, 28] in (−1, 1)
//!     nn.Unflatten(1, (latent, 1, 1)),
//!     nn.ConvTranspose2d(latent, 128, 7), nn.BatchNorm2d(128), nn.ReLU(),
//!     *up(128, 64), nn.BatchNorm2d(64), nn.ReLU(),
//!     *up(64, 1), nn.Tanh())
//!
//! discriminator = nn.Sequential(                      # [n, 1, 28, 28] → logits [n, 1]
//!     nn.Conv2d(1, 64, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
//!     nn.Conv2d(64, 128, 4, stride=2, padding=1), nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
//!     nn.Conv2d(128, 1, 7), nn.Flatten())
//!
//! classifier = nn.Sequential(                         # [n, 1, 28, 28] → logits [n, classes]
//!     nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
//!     nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
//!     nn.Flatten(), nn.Linear(32 * 7 * 7, classes))
//! ```
//!
//! (`tools/twin_gan.py` builds exactly these.) With [`Upsampling::Resize`] the generator's
//! stride-2 transposed convs become "resize-convs", Distill's fix for checkerboard artefacts:
//! a 4×4 kernel at stride 2 covers the output's even and odd pixels with different numbers of
//! taps, a nearest ×2 resize and a 3×3 conv cover them alike (see
//! [`crate::metrics::checkerboard_score`] for how that shows in a generator's spectrum).

use rand::Rng;

use super::Upsampling;
use crate::error::{Result, invalid};
use crate::float::Float;
use crate::nn::{
    BatchNorm2d, BatchNormConfig, Conv2d, ConvTranspose2d, Flatten, LeakyRelu, Linear, MaxPool2d, Relu, Sequential,
    Tanh, Unflatten,
};
use crate::ops::conv::{ConvOptions, ConvTransposeOptions};
use crate::ops::pool::PoolOptions;

/// The side of the images the models take and make.
pub const IMAGE_SIDE: usize = 28;

/// The largest latent size [`dcgan_generator`] accepts: its first layer holds
/// `latent · 128 · 49` weights, 25 MB of `f32` at this size.
pub const MAX_LATENT: usize = 1024;

/// The DCGAN generator of the module docs: a code `z: [n, latent]` (normal noise) to an image
/// `[n, 1, 28, 28]` with values in (−1, 1) (a Tanh, so training images must be mapped from
/// [0, 1] to [−1, 1]). Its two ×2 steps are transposed convs (`ConvTranspose2d(k = 4, s = 2,
/// p = 1)`) or resize-convs (nearest ×2, `Conv2d(k = 3, p = 1)`), as `upsampling` says.
///
/// # Errors
/// [`crate::Error::InvalidArgument`] if `latent` is 0 or above [`MAX_LATENT`].
///
/// # Example
/// ```
/// use adjoint::models::{Upsampling, dcgan_generator};
/// use adjoint::nn::{Module, normal};
/// use adjoint::Tape;
/// use rand::{rngs::StdRng, SeedableRng};
///
/// let mut rng = StdRng::seed_from_u64(0);
/// let generator = dcgan_generator::<f32>(32, Upsampling::Resize, &mut rng)?;
/// let tape = Tape::new();
/// let images = generator.forward(tape.constant(normal(&[4, 32], 1.0, &mut rng)?))?;
/// assert_eq!(images.shape(), vec![4, 1, 28, 28]);
/// assert!(images.value().iter().all(|v| v.abs() < 1.0));
/// # Ok::<(), adjoint::Error>(())
/// ```
pub fn dcgan_generator<T: Float>(latent: usize, upsampling: Upsampling, rng: &mut impl Rng) -> Result<Sequential<T>> {
    if !(1..=MAX_LATENT).contains(&latent) {
        return Err(invalid(
            "dcgan_generator",
            "latent",
            latent,
            format!("must be from 1 to {MAX_LATENT}"),
        ));
    }
    let norm = |c: usize| BatchNorm2d::new::<T>(c, BatchNormConfig::new());
    let net = Sequential::new()
        .add(Unflatten::new(&[latent, 1, 1])?)
        .add(ConvTranspose2d::new(latent, 128, 7, ConvTransposeOptions::new(), rng)?)
        .add(norm(128)?)
        .add(Relu);
    let net = super::add_doubling(net, (128, 64), upsampling, super::ResizeLayout::Flat, rng)?
        .add(norm(64)?)
        .add(Relu);
    Ok(super::add_doubling(net, (64, 1), upsampling, super::ResizeLayout::Flat, rng)?.add(Tanh))
}

/// The DCGAN discriminator of the module docs: images `[n, 1, 28, 28]` to one logit each,
/// `[n, 1]` (positive: "real"), for [`crate::bce_with_logits`].
///
/// # Errors
/// None in practice: every size is fixed (the `Result` is that of the layers' constructors).
///
/// # Example
/// ```
/// use adjoint::models::dcgan_discriminator;
/// use adjoint::nn::Module;
/// use adjoint::Tape;
/// use ndarray::ArrayD;
/// use rand::{rngs::StdRng, SeedableRng};
///
/// let discriminator = dcgan_discriminator::<f32>(&mut StdRng::seed_from_u64(0))?;
/// let tape = Tape::new();
/// let logits = discriminator.forward(tape.constant(ArrayD::zeros(vec![3, 1, 28, 28])))?;
/// assert_eq!(logits.shape(), vec![3, 1]);
/// # Ok::<(), adjoint::Error>(())
/// ```
pub fn dcgan_discriminator<T: Float>(rng: &mut impl Rng) -> Result<Sequential<T>> {
    let down = || ConvOptions::new().stride(2).padding(1);
    Ok(Sequential::new()
        .add(Conv2d::new(1, 64, 4, down(), rng)?)
        .add(LeakyRelu(0.2))
        .add(Conv2d::new(64, 128, 4, down(), rng)?)
        .add(BatchNorm2d::new::<T>(128, BatchNormConfig::new())?)
        .add(LeakyRelu(0.2))
        .add(Conv2d::new(128, 1, 7, ConvOptions::new(), rng)?)
        .add(Flatten))
}

/// The largest number of classes [`digit_classifier`] accepts (labels are `u8`).
pub const MAX_CLASSES: usize = 256;

/// A small classifier of 28×28 images into `classes` classes, trained by the library to score
/// a generator's samples: two 3×3 conv + ReLU + 2×2 max-pool stages and a linear layer to
/// logits `[n, classes]` (module docs). On MNIST it passes 95% validation accuracy within a
/// few epochs, which makes its confident predictions a usable judge of whether a sample looks
/// like a digit, and which one.
///
/// # Errors
/// [`crate::Error::InvalidArgument`] if `classes` is below 2 or above [`MAX_CLASSES`].
///
/// # Example
/// ```
/// use adjoint::models::digit_classifier;
/// use adjoint::nn::Module;
/// use adjoint::Tape;
/// use ndarray::ArrayD;
/// use rand::{rngs::StdRng, SeedableRng};
///
/// let classifier = digit_classifier::<f32>(10, &mut StdRng::seed_from_u64(0))?;
/// let tape = Tape::new();
/// let logits = classifier.forward(tape.constant(ArrayD::zeros(vec![2, 1, 28, 28])))?;
/// assert_eq!(logits.shape(), vec![2, 10]);
/// # Ok::<(), adjoint::Error>(())
/// ```
pub fn digit_classifier<T: Float>(classes: usize, rng: &mut impl Rng) -> Result<Sequential<T>> {
    if !(2..=MAX_CLASSES).contains(&classes) {
        return Err(invalid(
            "digit_classifier",
            "classes",
            classes,
            format!("must be from 2 to {MAX_CLASSES}"),
        ));
    }
    let same = || ConvOptions::new().padding(1);
    Ok(Sequential::new()
        .add(Conv2d::new(1, 16, 3, same(), rng)?)
        .add(Relu)
        .add(MaxPool2d::new(PoolOptions::new(2))?)
        .add(Conv2d::new(16, 32, 3, same(), rng)?)
        .add(Relu)
        .add(MaxPool2d::new(PoolOptions::new(2))?)
        .add(Flatten)
        .add(Linear::new(32 * 7 * 7, classes, true, rng)?))
}
