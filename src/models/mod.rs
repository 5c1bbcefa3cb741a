//! Models built from the library's layers, each with the parameter names of its PyTorch twin
//! (written out in its docs), so weights move between the two unchanged.
//!
//! | model | what | upsampling |
//! |---|---|---|
//! | [`UNet`] | per-pixel logits: one map per class (semantic segmentation, `examples/segmentation.rs`) or per key-point kind (heat maps, `examples/keypoints.rs`) | transposed conv or resize-conv, [`Upsampling`] |
//! | [`ConvVae`] | a variational autoencoder of 28×28 images: a Gaussian code, pixel logits, and its loss [`vae_loss`] (`examples/vae.rs`) | transposed conv or resize-conv, [`Upsampling`] |

mod unet;
mod vae;

pub use unet::{UNet, Upsampling};
pub use vae::{ConvVae, VAE_IMAGE_SIZE, VaeLoss, vae_loss};
