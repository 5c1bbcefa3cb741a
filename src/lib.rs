//! # adjoint
//!
//! Reverse-mode automatic differentiation, told through its most instructive case: convolution
//! and transposed convolution.
//!
//! A convolution is a matrix product `y = A x`, with `A` a banded matrix fixed by the kernel
//! and the settings; a transposed convolution is `y = Aᵀ x`. Since `y = A x` gives
//! `∂L/∂x = Aᵀ ∂L/∂y`, the backward pass of each is the forward pass of the other — and in
//! adjoint the gradient rule of each literally calls the other (see [`ops::conv`]).
//!
//! ## The tape in one example
//! ```
//! use adjoint::Tape;
//! use ndarray::{arr1, arr2};
//!
//! let tape = Tape::<f64>::new();
//! let w = tape.param(arr2(&[[1.0, 2.0], [3.0, 4.0]]).into_dyn());
//! let x = tape.constant(arr2(&[[1.0], [-1.0]]).into_dyn());
//! let loss = w.matmul(x)?.relu()?.sum()?; // relu([-1, -1]) = 0 ...
//! let grads = tape.backward(loss)?;
//! assert_eq!(grads[w], arr2(&[[0.0, 0.0], [0.0, 0.0]]).into_dyn()); // ... so no gradient
//!
//! let v = tape.param(arr1(&[3.0]).into_dyn());
//! let y = v.mul(v)?.mul(v)?.sum()?; // y = v³
//! let dy = tape.backward_graph(y, None)?.get(v).unwrap(); // 3v² = 27, recorded
//! let d2y = tape.backward(dy.sum()?)?; // 6v = 18
//! assert_eq!(d2y[v], arr1(&[18.0]).into_dyn());
//! # Ok::<(), adjoint::Error>(())
//! ```
//!
//! ## Map
//! - [`tape`]: the Wengert list, [`Var`] handles, `backward`.
//! - [`ops`]: differentiable ops, one file per family, forward beside backward;
//!   [`ops::conv`] holds the convolution pair.
//! - [`gradcheck`]: finite-difference checks of first and second derivatives.
//! - [`nn`]: layers ([`nn::Conv2d`], [`nn::ConvTranspose2d`], ...), [`nn::Sequential`], weights I/O.
//! - [`optim`]: SGD, Adam, AdamW with PyTorch's update rules.
//! - [`plot`]: loss curves, image grids and heat maps as PNG files (pure Rust, no system libraries).
//! - [`train`]: the autoencoder of the main example and its training loop.
//! - [`data`]: datasets for the examples (synthetic shapes and scenes, MNIST-format files).
//! - [`metrics`]: segmentation and key-point scores (IoU, heat-map decoding, F1).
//! - [`models`]: models with their PyTorch twins' parameter names ([`models::UNet`]).

#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

pub mod data;
pub mod error;
pub mod float;
pub mod gradcheck;
pub mod metrics;
pub mod models;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod tape;
pub mod train;

// The crate `adjoint-plot`, kept apart so that drawing code, which runs once per picture,
// builds in parallel with this crate and with fewer optimisations than its per-step code;
// inlined, so its docs read as this module's.
#[doc(inline)]
pub use adjoint_plot as plot;

pub use error::{Error, Result};

/// The README's example, compiled and run as a doctest so it cannot go stale.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
pub use float::Float;
pub use ops::loss::{bce_with_logits, cross_entropy, mse_loss, one_hot, softmax_cross_entropy};
pub use ops::shape::concat;
pub use tape::{GradVars, Grads, Op, Tape, Var};
