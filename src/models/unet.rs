//! A small U-Net for per-pixel classification: an encoder of conv blocks and 2×2 max-pools, a
//! decoder that upsamples, concatenates the encoder's map of the same size (the skip
//! connection) and convolves again, and a 1×1 conv to class logits.
//!
//! Its parameter names are those of this PyTorch module, so saved weights load unchanged:
//!
//! ```text
//! def block(c_in, c_out):
//!     return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
//!                          nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU())
//!
//! class UNet(nn.Module):                      # widths = (16, 32, 64): two levels and a bottom
//!     def __init__(self, c_in, classes, widths, upsample):
//!         self.down = nn.ModuleList(block(a, b) for a, b in zip((c_in,) + widths[:-2], widths[:-1]))
//!         self.bottom = block(widths[-2], widths[-1])
//!         self.up = nn.ModuleList(                        # from widths[i+1] to widths[i] channels
//!             nn.ConvTranspose2d(b, a, 2, stride=2) if upsample == "transposed"
//!             else nn.Conv2d(b, a, 3, padding=1)          # after a nearest resize to the skip's size
//!             for a, b in reversed(list(zip(widths[:-1], widths[1:]))))
//!         self.dec = nn.ModuleList(block(2 * a, a) for a in reversed(widths[:-1]))
//!         self.head = nn.Conv2d(widths[0], classes, 1)
//!
//!     def forward(self, x):
//!         skips = []
//!         for down in self.down:
//!             x = down(x); skips.append(x); x = F.max_pool2d(x, 2)
//!         x = self.bottom(x)
//!         for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
//!             if isinstance(up, nn.ConvTranspose2d):
//!                 x = up(x, output_size=skip.shape)   # odd sizes: the output padding that fits
//!             else:
//!                 x = up(F.interpolate(x, size=skip.shape[2:], mode="nearest"))
//!             x = dec(torch.cat([skip, x], 1))
//!         return self.head(x)
//! ```
//!
//! The two ways of upsampling are the project's theme side by side: a learnt stride-2
//! transposed conv, or a fixed nearest resize followed by a learnt 3×3 conv ("resize-conv").

use rand::Rng;

use crate::error::{Result, invalid};
use crate::float::Float;
use crate::nn::{
    BatchNorm2d, BatchNormConfig, Buffer, BufferMut, Conv, Conv2d, ConvTranspose, ConvTranspose2d, MaxPool, MaxPool2d,
    Module, Parameter, Relu, Sequential,
};
use crate::ops::conv::{ConvOptions, ConvTransposeOptions};
use crate::ops::pool::PoolOptions;
use crate::ops::shape::concat;
use crate::ops::upsample::{UpsampleOptions, upsample_nearest};
use crate::tape::Var;

/// How a U-Net's decoder doubles its maps' size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upsampling {
    /// A `ConvTranspose2d(k = 2, s = 2)`, sized to the skip connection's map.
    Transposed,
    /// A nearest resize to the skip connection's size, then a `Conv2d(k = 3, padding = 1)`.
    Resize,
}

/// One upsampling step of the decoder.
enum Up<T: Float> {
    Transposed(ConvTranspose<T>),
    Resize(Conv<T>),
}

/// The U-Net of the module docs.
pub struct UNet<T: Float> {
    down: Vec<Sequential<T>>,
    bottom: Sequential<T>,
    up: Vec<Up<T>>,
    dec: Vec<Sequential<T>>,
    head: Conv<T>,
    pool: MaxPool,
    training: bool,
}

/// PyTorch's `block(c_in, c_out)`: two 3×3 convs, each followed by batch norm and ReLU.
fn block<T: Float>(c_in: usize, c_out: usize, rng: &mut impl Rng) -> Result<Sequential<T>> {
    let same = || ConvOptions::new().padding(1);
    Ok(Sequential::new()
        .add(Conv2d::new(c_in, c_out, 3, same(), rng)?)
        .add(BatchNorm2d::new::<T>(c_out, BatchNormConfig::new())?)
        .add(Relu)
        .add(Conv2d::new(c_out, c_out, 3, same(), rng)?)
        .add(BatchNorm2d::new::<T>(c_out, BatchNormConfig::new())?)
        .add(Relu))
}

impl<T: Float> UNet<T> {
    /// A U-Net for `c_in`-channel images and `classes` classes, with `widths` channels per
    /// level (at least two: the last is the bottom), in training mode.
    ///
    /// Shapes: `x: [n, c_in, h, w]` → logits `[n, classes, h, w]`, for any `h, w ≥ 2^levels`
    /// (odd sizes too: each upsampling step is sized to its skip connection).
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] if `widths` has fewer than two entries or a size is 0.
    ///
    /// # Example
    /// ```
    /// use adjoint::models::{UNet, Upsampling};
    /// use adjoint::nn::Module;
    /// use adjoint::Tape;
    /// use ndarray::ArrayD;
    /// use rand::{rngs::StdRng, SeedableRng};
    ///
    /// let net = UNet::<f32>::new(1, 5, &[8, 16, 32], Upsampling::Transposed, &mut StdRng::seed_from_u64(0))?;
    /// let tape = Tape::new();
    /// let logits = net.forward(tape.constant(ArrayD::zeros(vec![2, 1, 37, 64])))?;
    /// assert_eq!(logits.shape(), vec![2, 5, 37, 64]);
    /// # Ok::<(), adjoint::Error>(())
    /// ```
    pub fn new(
        c_in: usize,
        classes: usize,
        widths: &[usize],
        upsampling: Upsampling,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        if widths.len() < 2 {
            return Err(invalid("UNet", "widths", widths, "needs at least two levels"));
        }
        let levels = widths.len() - 1;
        let inputs: Vec<usize> = std::iter::once(c_in)
            .chain(widths[..levels - 1].iter().copied())
            .collect();
        let down = (0..levels)
            .map(|i| block(inputs[i], widths[i], rng))
            .collect::<Result<_>>()?;
        let bottom = block(widths[levels - 1], widths[levels], rng)?;
        let mut up = Vec::with_capacity(levels);
        let mut dec = Vec::with_capacity(levels);
        for i in (0..levels).rev() {
            let (narrow, wide) = (widths[i], widths[i + 1]);
            up.push(match upsampling {
                Upsampling::Transposed => Up::Transposed(ConvTranspose2d::new(
                    wide,
                    narrow,
                    2,
                    ConvTransposeOptions::new().stride(2),
                    rng,
                )?),
                Upsampling::Resize => Up::Resize(Conv2d::new(wide, narrow, 3, ConvOptions::new().padding(1), rng)?),
            });
            dec.push(block(2 * narrow, narrow, rng)?);
        }
        Ok(UNet {
            down,
            bottom,
            up,
            dec,
            head: Conv2d::new(widths[0], classes, 1, ConvOptions::new(), rng)?,
            pool: MaxPool2d::new(PoolOptions::new(2))?,
            training: true,
        })
    }

    /// Every submodule with its PyTorch name, in registration order.
    fn named(&self) -> Vec<(String, &dyn Module<T>)> {
        let mut all: Vec<(String, &dyn Module<T>)> = Vec::new();
        all.extend(
            self.down
                .iter()
                .enumerate()
                .map(|(i, m)| (format!("down.{i}"), m as &dyn Module<T>)),
        );
        all.push(("bottom".into(), &self.bottom));
        all.extend(self.up.iter().enumerate().map(|(i, m)| (format!("up.{i}"), m.module())));
        all.extend(
            self.dec
                .iter()
                .enumerate()
                .map(|(i, m)| (format!("dec.{i}"), m as &dyn Module<T>)),
        );
        all.push(("head".into(), &self.head));
        all
    }

    /// [`UNet::named`], mutable.
    fn named_mut(&mut self) -> Vec<(String, &mut dyn Module<T>)> {
        let mut all: Vec<(String, &mut dyn Module<T>)> = Vec::new();
        all.extend(
            self.down
                .iter_mut()
                .enumerate()
                .map(|(i, m)| (format!("down.{i}"), m as &mut dyn Module<T>)),
        );
        all.push(("bottom".into(), &mut self.bottom));
        all.extend(
            self.up
                .iter_mut()
                .enumerate()
                .map(|(i, m)| (format!("up.{i}"), m.module_mut())),
        );
        all.extend(
            self.dec
                .iter_mut()
                .enumerate()
                .map(|(i, m)| (format!("dec.{i}"), m as &mut dyn Module<T>)),
        );
        all.push(("head".into(), &mut self.head));
        all
    }
}

impl<T: Float> Up<T> {
    fn module(&self) -> &dyn Module<T> {
        match self {
            Up::Transposed(m) => m,
            Up::Resize(m) => m,
        }
    }

    fn module_mut(&mut self) -> &mut dyn Module<T> {
        match self {
            Up::Transposed(m) => m,
            Up::Resize(m) => m,
        }
    }

    /// Doubles `x` to the spatial size of `skip: [n, c, h, w]`.
    fn forward<'t>(&self, x: Var<'t, T>, skip: &[usize]) -> Result<Var<'t, T>> {
        match self {
            Up::Transposed(m) => m.forward_with_output_size(x, skip[2..].to_vec()),
            Up::Resize(m) => m.forward(upsample_nearest(x, &UpsampleOptions::new().size(skip[2..].to_vec()))?),
        }
    }
}

impl<T: Float> Module<T> for UNet<T> {
    fn forward<'t>(&self, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let mut skips = Vec::with_capacity(self.down.len());
        let mut x = x;
        for down in &self.down {
            x = down.forward(x)?;
            skips.push(x);
            x = self.pool.forward(x)?;
        }
        x = self.bottom.forward(x)?;
        for ((up, dec), skip) in self.up.iter().zip(&self.dec).zip(skips.iter().rev()) {
            let upsampled = up.forward(x, &skip.shape())?;
            x = dec.forward(concat(&[*skip, upsampled], 1)?)?;
        }
        self.head.forward(x)
    }

    fn parameters(&self) -> Vec<(String, &Parameter<T>)> {
        prefixed(self.named(), |m| m.parameters())
    }

    fn parameters_mut(&mut self) -> Vec<(String, &mut Parameter<T>)> {
        self.named_mut()
            .into_iter()
            .flat_map(|(prefix, m)| {
                m.parameters_mut()
                    .into_iter()
                    .map(move |(name, p)| (format!("{prefix}.{name}"), p))
            })
            .collect()
    }

    fn buffers(&self) -> Vec<(String, Buffer<T>)> {
        prefixed(self.named(), |m| m.buffers())
    }

    fn buffers_mut(&mut self) -> Vec<(String, BufferMut<'_, T>)> {
        self.named_mut()
            .into_iter()
            .flat_map(|(prefix, m)| {
                m.buffers_mut()
                    .into_iter()
                    .map(move |(name, b)| (format!("{prefix}.{name}"), b))
            })
            .collect()
    }

    fn state_dict_keys(&self) -> Vec<String> {
        prefixed(self.named(), |m| {
            m.state_dict_keys().into_iter().map(|k| (k, ())).collect()
        })
        .into_iter()
        .map(|(k, ())| k)
        .collect()
    }

    fn set_training(&mut self, training: bool) {
        self.training = training;
        for (_, m) in self.named_mut() {
            m.set_training(training);
        }
    }

    fn is_training(&self) -> bool {
        self.training
    }
}

/// Each submodule's entries, with its name prefixed: `"weight"` of `down.0.0` is
/// `"down.0.0.weight"`.
fn prefixed<'a, T: Float, E>(
    named: Vec<(String, &'a dyn Module<T>)>,
    entries: impl Fn(&'a dyn Module<T>) -> Vec<(String, E)>,
) -> Vec<(String, E)> {
    named
        .into_iter()
        .flat_map(|(prefix, m)| {
            entries(m)
                .into_iter()
                .map(move |(name, e)| (format!("{prefix}.{name}"), e))
        })
        .collect()
}
