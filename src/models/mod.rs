//! Models built from the library's layers, each with the parameter names of its PyTorch twin
//! (written out in its docs), so weights move between the two unchanged.
//!
//! | model | what | upsampling |
//! |---|---|---|
//! | [`UNet`] | per-pixel logits: one map per class (semantic segmentation, `examples/segmentation.rs`) or per key-point kind (heat maps, `examples/keypoints.rs`) | transposed conv or resize-conv, [`Upsampling`] |
//! | [`dcgan_generator`], [`dcgan_discriminator`] | a DCGAN for 28×28 images: noise to image, image to a real/fake logit (`examples/gan.rs`) | transposed conv or resize-conv, [`Upsampling`] |
//! | [`digit_classifier`] | class logits of a 28×28 image, to score a generator's samples | — |

mod gan;
mod unet;

pub use gan::{IMAGE_SIDE, MAX_CLASSES, MAX_LATENT, dcgan_discriminator, dcgan_generator, digit_classifier};
pub use unet::{UNet, Upsampling};
