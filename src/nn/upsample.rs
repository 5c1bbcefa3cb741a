//! The upsampling layer: no parameters, a mode and the settings, and a `forward` that calls the
//! op.

use super::Module;
use crate::error::Result;
use crate::float::Float;
use crate::ops::upsample::{Spatial, UpsampleMode, UpsampleOptions, interpolate};
use crate::tape::Var;

/// Upsampling as a layer, PyTorch's `nn.Upsample(size, scale_factor, mode, align_corners,
/// recompute_scale_factor)`: [`interpolate`] with fixed settings, for `x: [n, c, spatial..]`
/// with 1 to 3 spatial axes. It has no parameters.
///
/// In a decoder, `Upsample` followed by a conv (a "resize-conv") is the usual alternative to a
/// strided transposed conv, whose uneven kernel overlaps print checkerboard patterns.
///
/// # Example
/// ```
/// use adjoint::nn::{Conv2d, Module, Sequential, Upsample};
/// use adjoint::ops::conv::ConvOptions;
/// use adjoint::ops::upsample::UpsampleMode;
/// use adjoint::Tape;
/// use ndarray::ArrayD;
/// use rand::SeedableRng;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let decoder = Sequential::<f64>::new()
///     .add(Upsample::scale_factor(2.0).mode(UpsampleMode::Linear).align_corners(true))
///     .add(Conv2d::new(8, 4, 3, ConvOptions::new().padding(1), &mut rng)?);
/// let tape = Tape::new();
/// let y = decoder.forward(tape.constant(ArrayD::zeros(vec![1, 8, 16, 16])))?;
/// assert_eq!(y.shape(), vec![1, 4, 32, 32]);
/// assert_eq!(decoder.parameter_count(), 4 * 8 * 9 + 4); // the conv's only
/// # Ok::<(), adjoint::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Upsample {
    /// How new cells are filled (PyTorch's default: nearest).
    pub mode: UpsampleMode,
    /// `size` or `scale_factor`, `align_corners`, `recompute_scale_factor`.
    pub options: UpsampleOptions,
}

impl Upsample {
    /// Nearest upsampling to the spatial size `size` (`nn.Upsample(size=..)`).
    pub fn size(size: impl Into<Spatial<usize>>) -> Self {
        Upsample {
            mode: UpsampleMode::Nearest,
            options: UpsampleOptions::new().size(size),
        }
    }

    /// Nearest upsampling by `scale_factor` (`nn.Upsample(scale_factor=..)`).
    pub fn scale_factor(scale_factor: impl Into<Spatial<f64>>) -> Self {
        Upsample {
            mode: UpsampleMode::Nearest,
            options: UpsampleOptions::new().scale_factor(scale_factor),
        }
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: UpsampleMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets `align_corners` (linear mode only: `forward` refuses it for the nearest modes, as
    /// PyTorch does).
    pub fn align_corners(mut self, align_corners: bool) -> Self {
        self.options.align_corners = Some(align_corners);
        self
    }

    /// Sets `recompute_scale_factor`.
    pub fn recompute_scale_factor(mut self, recompute: bool) -> Self {
        self.options.recompute_scale_factor = Some(recompute);
        self
    }
}

impl<T: Float> Module<T> for Upsample {
    /// [`interpolate`] with this layer's mode and settings.
    ///
    /// # Errors
    /// As [`interpolate`]: invalid settings are reported here, naming the op.
    fn forward<'t>(&self, x: Var<'t, T>) -> Result<Var<'t, T>> {
        interpolate(x, self.mode, &self.options)
    }
}
