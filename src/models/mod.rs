//! Models built from the library's layers, each with the parameter names of its PyTorch twin
//! (written out in its docs), so weights move between the two unchanged.
//!
//! | model | what | upsampling |
//! |---|---|---|
//! | [`UNet`] | per-pixel class logits (semantic segmentation) | transposed conv or resize-conv, [`Upsampling`] |

mod unet;

pub use unet::{UNet, Upsampling};
