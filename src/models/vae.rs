//! A convolutional variational autoencoder for 28×28 one-channel images (MNIST and the built-in
//! shapes): a strided-conv encoder to a Gaussian code `q(z|x) = N(μ, σ²)`, a decoder back to
//! pixel logits, and the negative ELBO to train both.
//!
//! Its parameter names are those of this PyTorch module (`tools/twin_vae.py`), so saved
//! weights load unchanged:
//!
//! ```text
//! def up(c_in, c_out, upsample):                 # 7 → 14 → 28
//!     if upsample == "transposed":
//!         return nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)
//!     return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1))
//!
//! class ConvVAE(nn.Module):
//!     def __init__(self, latent=16, upsample="transposed"):
//!         self.encoder = nn.Sequential(
//!             nn.Conv2d(1, 32, 4, stride=2, padding=1), nn.ReLU(),    # 28 → 14
//!             nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.ReLU(),   # 14 → 7
//!             nn.Flatten(), nn.Linear(3136, 2 * latent))              # [μ, log σ²]
//!         self.decoder = nn.Sequential(
//!             nn.Linear(latent, 3136), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
//!             up(64, 32, upsample), nn.ReLU(), up(32, 1, upsample))   # logits
//! ```
//!
//! With `upsample = "resize"` the two upsampling steps are Distill's fix for checkerboards: a
//! 4×4 kernel at stride 2 overlaps its neighbours evenly, but a nearest resize followed by a
//! 3×3 conv never overlaps unevenly at all. Their weights are then `decoder.3.1.*` and
//! `decoder.5.1.*` instead of `decoder.3.*` and `decoder.5.*`.

use ndarray::ArrayD;
use rand::Rng;

use super::Upsampling;
use crate::error::{Result, bad_shape, invalid};
use crate::float::Float;
use crate::nn::{Conv2d, Flatten, Linear, Module, Parameter, Relu, Sequential, Unflatten};
use crate::ops::conv::ConvOptions;
use crate::ops::loss::bce_with_logits;
use crate::tape::Var;

/// The side of the images the model takes.
pub const VAE_IMAGE_SIZE: usize = 28;
/// Channels × height × width of the encoder's last feature maps, `[64, 7, 7]`: the seam
/// between the convolutions and the dense layers on both sides.
const FEATURES: [usize; 3] = [64, 7, 7];
const FEATURE_LEN: usize = 64 * 7 * 7;

/// The convolutional VAE of the module docs.
///
/// Shapes: images `x: [n, 1, 28, 28]` (values in `[0, 1]`, read as Bernoulli probabilities),
/// codes `μ, log σ², z: [n, latent]`, logits `[n, 1, 28, 28]`.
///
/// As a [`Module`] its `forward` is the deterministic reconstruction `decode(μ(x))` (logits),
/// and its parameters are the twin's `state_dict`, so optimizers and [`crate::nn::io`] take it
/// as they take any model. Training uses [`ConvVae::loss`], which samples.
pub struct ConvVae<T: Float> {
    encoder: Sequential<T>,
    decoder: Sequential<T>,
    latent: usize,
    upsampling: Upsampling,
}

impl<T: Float> ConvVae<T> {
    /// A VAE with a `latent`-dimensional code and the given upsampling, with PyTorch's default
    /// initialisation drawn from `rng` (the issue's model is `latent = 16`, transposed).
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] if `latent` is 0.
    ///
    /// # Example
    /// ```
    /// use adjoint::models::{ConvVae, Upsampling};
    /// use adjoint::nn::Module;
    /// use adjoint::Tape;
    /// use ndarray::ArrayD;
    /// use rand::{rngs::StdRng, SeedableRng};
    ///
    /// let mut rng = StdRng::seed_from_u64(0);
    /// let vae = ConvVae::<f32>::new(16, Upsampling::Transposed, &mut rng)?;
    /// let tape = Tape::new();
    /// let x = tape.constant(ArrayD::from_elem(vec![2, 1, 28, 28], 0.5));
    /// let loss = vae.loss(x, &mut rng)?;
    /// assert!(loss.total.value()[[]] > 0.0); // −ELBO in nats per image
    /// let grads = tape.backward(loss.total)?;
    /// assert!(vae.parameters().iter().all(|(_, p)| p.grad(&grads).is_some()));
    /// # Ok::<(), adjoint::Error>(())
    /// ```
    pub fn new(latent: usize, upsampling: Upsampling, rng: &mut impl Rng) -> Result<Self> {
        if latent == 0 {
            return Err(invalid("ConvVae", "latent", latent, "must be at least 1"));
        }
        let down = || ConvOptions::new().stride(2).padding(1);
        let encoder = Sequential::new()
            .add(Conv2d::new(1, 32, 4, down(), rng)?)
            .add(Relu)
            .add(Conv2d::new(32, 64, 4, down(), rng)?)
            .add(Relu)
            .add(Flatten)
            .add(Linear::new(FEATURE_LEN, 2 * latent, true, rng)?);
        let decoder = Sequential::new()
            .add(Linear::new(latent, FEATURE_LEN, true, rng)?)
            .add(Relu)
            .add(Unflatten::new(&FEATURES)?);
        let decoder = super::add_doubling(decoder, (64, 32), upsampling, super::ResizeLayout::Nested, rng)?.add(Relu);
        let decoder = super::add_doubling(decoder, (32, 1), upsampling, super::ResizeLayout::Nested, rng)?;
        Ok(ConvVae {
            encoder,
            decoder,
            latent,
            upsampling,
        })
    }

    /// The size of the code.
    pub fn latent(&self) -> usize {
        self.latent
    }

    /// How the decoder doubles its maps' size.
    pub fn upsampling(&self) -> Upsampling {
        self.upsampling
    }

    /// The code's mean and log-variance, `(μ, log σ²)`, each `[n, latent]`: the two halves of
    /// the encoder's last layer (the twin's `mu, logvar = encoder(x).chunk(2, dim=1)`).
    ///
    /// # Errors
    /// [`crate::Error::BadShape`] if `x` is not `[n, 1, 28, 28]` with `n ≥ 1`.
    pub fn encode<'t>(&self, x: Var<'t, T>) -> Result<(Var<'t, T>, Var<'t, T>)> {
        let shape = x.shape();
        if shape.len() != 4 || shape[0] == 0 || shape[1..] != [1, VAE_IMAGE_SIZE, VAE_IMAGE_SIZE] {
            return Err(bad_shape(
                "ConvVae::encode",
                "x",
                &shape,
                "must be [n, 1, 28, 28] with n ≥ 1",
            ));
        }
        let h = self.encoder.forward(x)?;
        Ok((h.slice(1, 0, self.latent)?, h.slice(1, self.latent, 2 * self.latent)?))
    }

    /// `z = μ + σ·ε` with `σ = exp(½ log σ²)` and `ε ~ N(0, 1)` drawn from `rng` by
    /// [`crate::nn::normal`]: the reparameterisation trick. The same `rng` state gives the same
    /// `z`.
    ///
    /// # Errors
    /// As [`ConvVae::reparameterize_with`].
    pub fn reparameterize<'t>(&self, mu: Var<'t, T>, logvar: Var<'t, T>, rng: &mut impl Rng) -> Result<Var<'t, T>> {
        let eps = crate::nn::normal(&mu.shape(), 1.0, rng)?;
        self.reparameterize_with(mu, logvar, eps)
    }

    /// `z = μ + exp(½ log σ²)·ε` for a given noise `ε`. The noise goes on the tape as a
    /// constant: gradients reach `μ` (`∂z/∂μ = 1`) and `log σ²` (`∂z/∂log σ² = ½σε`), never `ε`,
    /// which is what makes the sampled loss differentiable in the encoder's outputs.
    ///
    /// Shapes: `mu, logvar, eps: [n, latent]` → `z: [n, latent]`.
    ///
    /// # Errors
    /// [`crate::Error::BadShape`] if `mu` is not `[n, latent]`, or `logvar` or `eps` is not
    /// shaped as `mu`.
    pub fn reparameterize_with<'t>(&self, mu: Var<'t, T>, logvar: Var<'t, T>, eps: ArrayD<T>) -> Result<Var<'t, T>> {
        const OP: &str = "ConvVae::reparameterize";
        let shape = mu.shape();
        if shape.len() != 2 || shape[1] != self.latent {
            return Err(bad_shape(
                OP,
                "mu",
                &shape,
                format!("must be [n, latent = {}]", self.latent),
            ));
        }
        if logvar.shape() != shape {
            return Err(bad_shape(
                OP,
                "logvar",
                &logvar.shape(),
                format!("must be shaped as mu, {shape:?}"),
            ));
        }
        if eps.shape() != shape.as_slice() {
            return Err(bad_shape(
                OP,
                "eps",
                eps.shape(),
                format!("must be shaped as mu, {shape:?}"),
            ));
        }
        let eps = mu.constant(eps);
        mu.add(logvar.mul_scalar(0.5)?.exp()?.mul(eps)?)
    }

    /// Pixel logits `[n, 1, 28, 28]` for codes `z: [n, latent]`; `sigmoid` of them is the
    /// image (the Bernoulli means).
    ///
    /// # Errors
    /// [`crate::Error::BadShape`] if `z` is not `[n, latent]` with `n ≥ 1`.
    pub fn decode<'t>(&self, z: Var<'t, T>) -> Result<Var<'t, T>> {
        let shape = z.shape();
        if shape.len() != 2 || shape[0] == 0 || shape[1] != self.latent {
            return Err(bad_shape(
                "ConvVae::decode",
                "z",
                &shape,
                format!("must be [n, latent = {}] with n ≥ 1", self.latent),
            ));
        }
        self.decoder.forward(z)
    }

    /// The negative ELBO of a batch `x: [n, 1, 28, 28]` with one sample of `z` per image (noise
    /// from `rng`): encode, reparameterise, decode, [`vae_loss`].
    ///
    /// # Errors
    /// As [`ConvVae::encode`].
    pub fn loss<'t>(&self, x: Var<'t, T>, rng: &mut impl Rng) -> Result<VaeLoss<'t, T>> {
        let (mu, logvar) = self.encode(x)?;
        let z = self.reparameterize(mu, logvar, rng)?;
        vae_loss(self.decode(z)?, x, mu, logvar)
    }
}

impl<T: Float> Module<T> for ConvVae<T> {
    /// The deterministic reconstruction: logits of `decode(μ(x))`, no sampling.
    fn forward<'t>(&self, x: Var<'t, T>) -> Result<Var<'t, T>> {
        self.decode(self.encode(x)?.0)
    }

    fn parameters(&self) -> Vec<(String, &Parameter<T>)> {
        let encoder = self
            .encoder
            .parameters()
            .into_iter()
            .map(|(n, p)| (format!("encoder.{n}"), p));
        let decoder = self
            .decoder
            .parameters()
            .into_iter()
            .map(|(n, p)| (format!("decoder.{n}"), p));
        encoder.chain(decoder).collect()
    }

    fn parameters_mut(&mut self) -> Vec<(String, &mut Parameter<T>)> {
        let encoder = self
            .encoder
            .parameters_mut()
            .into_iter()
            .map(|(n, p)| (format!("encoder.{n}"), p));
        let decoder = self
            .decoder
            .parameters_mut()
            .into_iter()
            .map(|(n, p)| (format!("decoder.{n}"), p));
        encoder.chain(decoder).collect()
    }
}

/// The three numbers of a VAE's loss, each a scalar on the tape, in nats per image.
#[derive(Clone, Copy, Debug)]
pub struct VaeLoss<'t, T: Float> {
    /// `reconstruction + kl`: the negative ELBO, what training minimises.
    pub total: Var<'t, T>,
    /// `−log p(x|z)`: the pixels' binary cross-entropy on the logits, summed over each image's
    /// pixels.
    pub reconstruction: Var<'t, T>,
    /// `KL(N(μ, σ²) ‖ N(0, 1))` of each image's code.
    pub kl: Var<'t, T>,
}

/// A VAE's negative ELBO per image, averaged over the batch, as the twin computes it:
///
/// ```text
/// reconstruction = Σ_pixels BCE-with-logits(logits, x) / n
/// kl             = −½ Σ (1 + log σ² − μ² − σ²) / n
/// total          = reconstruction + kl
/// ```
///
/// (`F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / n` and
/// `-0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / n` in PyTorch.)
///
/// Shapes: `logits, x: [n, ..]`, `mu, logvar: [n, latent]`.
///
/// # Errors
/// [`crate::Error::ShapeMismatch`] if `logits` and `x` differ in shape;
/// [`crate::Error::BadShape`] if `mu` is not `[n, latent]` for the images' `n ≥ 1`, or
/// `logvar` is not shaped as `mu`.
///
/// # Example
/// ```
/// use adjoint::models::vae_loss;
/// use adjoint::Tape;
/// use ndarray::ArrayD;
///
/// let tape = Tape::<f64>::new();
/// // Logits 0 put every pixel at ½: ln 2 nats each; a code N(0, 1) costs no KL.
/// let logits = tape.param(ArrayD::zeros(vec![2, 1, 3, 3]));
/// let x = tape.constant(ArrayD::from_elem(vec![2, 1, 3, 3], 1.0));
/// let mu = tape.param(ArrayD::zeros(vec![2, 4]));
/// let logvar = tape.param(ArrayD::zeros(vec![2, 4]));
/// let loss = vae_loss(logits, x, mu, logvar)?;
/// assert!((loss.reconstruction.value()[[]] - 9.0 * 2f64.ln()).abs() < 1e-12);
/// assert_eq!(loss.kl.value()[[]], 0.0);
/// # Ok::<(), adjoint::Error>(())
/// ```
pub fn vae_loss<'t, T: Float>(
    logits: Var<'t, T>,
    x: Var<'t, T>,
    mu: Var<'t, T>,
    logvar: Var<'t, T>,
) -> Result<VaeLoss<'t, T>> {
    const OP: &str = "vae_loss";
    let images = x.shape();
    let n = images.first().copied().unwrap_or(0);
    let code = mu.shape();
    if n == 0 || code.len() != 2 || code[0] != n || code[1] == 0 {
        return Err(bad_shape(
            OP,
            "mu",
            &code,
            format!("must be [n, latent] with the images' n, from x: {images:?}"),
        ));
    }
    if logvar.shape() != code {
        return Err(bad_shape(
            OP,
            "logvar",
            &logvar.shape(),
            format!("must be shaped as mu, {code:?}"),
        ));
    }
    // The mean over all pixels times the pixels per image is the sum per image over n.
    let pixels_per_image = images[1..].iter().product::<usize>() as f64;
    let reconstruction = bce_with_logits(logits, x)?.mul_scalar(pixels_per_image)?;
    let kl = logvar
        .add_scalar(1.0)?
        .sub(mu.mul(mu)?)?
        .sub(logvar.exp()?)?
        .sum()?
        .mul_scalar(-0.5 / n as f64)?;
    Ok(VaeLoss {
        total: reconstruction.add(kl)?,
        reconstruction,
        kl,
    })
}
