//! Models built from the library's layers, each with the parameter names of its PyTorch twin
//! (written out in its docs), so weights move between the two unchanged.
//!
//! | model | what | upsampling |
//! |---|---|---|
//! | [`UNet`] | per-pixel logits: one map per class (semantic segmentation, `examples/segmentation.rs`) or per key-point kind (heat maps, `examples/keypoints.rs`) | transposed conv or resize-conv, [`Upsampling`] |
//! | [`ConvVae`] | a variational autoencoder of 28×28 images: a Gaussian code, pixel logits, and its loss [`vae_loss`] (`examples/vae.rs`) | transposed conv or resize-conv, [`Upsampling`] |
//! | [`dcgan_generator`], [`dcgan_discriminator`] | a DCGAN for 28×28 images: noise to image, image to a real/fake logit (`examples/gan.rs`) | transposed conv or resize-conv, [`Upsampling`] |
//! | [`digit_classifier`] | class logits of a 28×28 image, to score a generator's samples | — |

mod gan;
mod unet;
mod vae;

pub use gan::{IMAGE_SIDE, MAX_CLASSES, MAX_LATENT, dcgan_discriminator, dcgan_generator, digit_classifier};
pub use unet::{UNet, Upsampling};
pub use vae::{ConvVae, VAE_IMAGE_SIZE, VaeLoss, vae_loss};

/// How a resize step's two layers sit in the model, as its PyTorch twin nests them.
#[derive(Clone, Copy)]
enum ResizeLayout {
    /// `Upsample` and `Conv2d` as two layers of the model (the DCGAN's `*up(..)`).
    Flat,
    /// One `Sequential(Upsample, Conv2d)` layer, so both kinds take one index (the VAE's).
    Nested,
}

/// Appends one ×2 step from `c_in` to `c_out` channels to `net`, shared by the DCGAN and the
/// VAE: a `ConvTranspose2d(c_in, c_out, 4, stride 2, padding 1)`, or a nearest ×2 resize then a
/// `Conv2d(c_in, c_out, 3, padding 1)` (Distill's resize-convolution), laid out as `layout` says.
fn add_doubling<T: crate::Float>(
    net: crate::nn::Sequential<T>,
    (c_in, c_out): (usize, usize),
    upsampling: Upsampling,
    layout: ResizeLayout,
    rng: &mut impl rand::Rng,
) -> crate::Result<crate::nn::Sequential<T>> {
    use crate::nn::{Conv2d, ConvTranspose2d, Sequential, Upsample};
    use crate::ops::conv::{ConvOptions, ConvTransposeOptions};
    Ok(match upsampling {
        Upsampling::Transposed => net.add(ConvTranspose2d::new(
            c_in,
            c_out,
            4,
            ConvTransposeOptions::new().stride(2).padding(1),
            rng,
        )?),
        Upsampling::Resize => {
            let conv = Conv2d::new(c_in, c_out, 3, ConvOptions::new().padding(1), rng)?;
            match layout {
                ResizeLayout::Flat => net.add(Upsample::scale_factor(2.0)).add(conv),
                ResizeLayout::Nested => net.add(Sequential::new().add(Upsample::scale_factor(2.0)).add(conv)),
            }
        }
    })
}
