//! Conv and transposed-conv layers, side by side: a weight, an optional bias, the settings, and
//! a `forward` that calls the op.

use rand::Rng;

use super::{Module, Parameter, default_bound, uniform};
use crate::error::{Result, invalid};
use crate::float::Float;
use crate::ops::conv::{ConvOptions, ConvTransposeOptions, PerAxis, conv, conv_transpose};
use crate::ops::size;
use crate::tape::Var;

/// Checks channel counts and the kernel against the rank, and returns the kernel per axis.
fn layer_kernel(
    layer: &'static str,
    rank: usize,
    c_in: usize,
    c_out: usize,
    groups: usize,
    kernel: PerAxis,
) -> Result<Vec<usize>> {
    let kernel = match kernel.0.len() {
        1 => vec![kernel.0[0]; rank],
        n if n == rank => kernel.0,
        _ => {
            return Err(invalid(
                layer,
                "kernel_size",
                &kernel.0,
                format!("needs 1 or {rank} values"),
            ));
        }
    };
    if kernel.contains(&0) {
        return Err(invalid(layer, "kernel_size", &kernel, "must be at least 1"));
    }
    if groups == 0 || c_in == 0 || c_out == 0 || !c_in.is_multiple_of(groups) || !c_out.is_multiple_of(groups) {
        return Err(invalid(
            layer,
            "groups",
            groups,
            format!("in_channels = {c_in} and out_channels = {c_out} must be positive multiples of it"),
        ));
    }
    Ok(kernel)
}

/// A weight `[a, b, k..]` and a bias `[c_out]` with PyTorch's default initialisation, whose
/// `fan_in` is always the weight's second axis times the kernel: `b · Πk` (so `c_in/g` for a
/// conv, `c_out/g` for a transposed conv).
fn init_weight_and_bias<T: Float>(
    (a, b): (usize, usize),
    kernel: Vec<usize>,
    c_out: usize,
    rng: &mut impl Rng,
) -> Result<(Parameter<T>, Option<Parameter<T>>)> {
    let shape: Vec<usize> = [a, b].into_iter().chain(kernel.iter().copied()).collect();
    // The weight's size first: the fan-in below is a factor of it, so cannot wrap.
    size::elements("init", "weight", &shape)?;
    let bound = default_bound(b * kernel.iter().product::<usize>());
    let weight = Parameter::new(uniform(&shape, bound, rng)?);
    Ok((weight, Some(Parameter::new(uniform(&[c_out], bound, rng)?))))
}

/// A convolution layer of any rank (PyTorch's `nn.Conv{1,2,3}d`): `weight [c_out, c_in/g, k..]`,
/// `bias [c_out]`, initialised as PyTorch does (uniform, bound `1/√(c_in/g · Πk)`).
pub struct Conv<T: Float> {
    /// `[c_out, c_in/g, k..]`.
    pub weight: Parameter<T>,
    /// `[c_out]`, if any.
    pub bias: Option<Parameter<T>>,
    /// Stride, padding, dilation, groups.
    pub options: ConvOptions,
}

impl<T: Float> Conv<T> {
    /// A conv layer over `rank` spatial axes, with bias.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] for zero or mismatched sizes.
    pub fn new(
        rank: usize,
        c_in: usize,
        c_out: usize,
        kernel: impl Into<PerAxis>,
        options: ConvOptions,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let kernel = layer_kernel("Conv", rank, c_in, c_out, options.groups, kernel.into())?;
        let (weight, bias) = init_weight_and_bias((c_out, c_in / options.groups), kernel, c_out, rng)?;
        Ok(Conv { weight, bias, options })
    }

    /// Drops the bias (PyTorch's `bias=False`).
    pub fn without_bias(mut self) -> Self {
        self.bias = None;
        self
    }
}

/// A transposed-convolution layer of any rank (PyTorch's `nn.ConvTranspose{1,2,3}d`):
/// `weight [c_in, c_out/g, k..]`, `bias [c_out]`. PyTorch computes the init bound from the
/// weight's second axis, so here `fan_in = c_out/g · Πk`.
pub struct ConvTranspose<T: Float> {
    /// `[c_in, c_out/g, k..]`.
    pub weight: Parameter<T>,
    /// `[c_out]`, if any.
    pub bias: Option<Parameter<T>>,
    /// Stride, padding, output padding, dilation, groups.
    pub options: ConvTransposeOptions,
}

impl<T: Float> ConvTranspose<T> {
    /// A transposed-conv layer over `rank` spatial axes, with bias.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] for zero or mismatched sizes.
    pub fn new(
        rank: usize,
        c_in: usize,
        c_out: usize,
        kernel: impl Into<PerAxis>,
        options: ConvTransposeOptions,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let kernel = layer_kernel("ConvTranspose", rank, c_in, c_out, options.groups, kernel.into())?;
        let (weight, bias) = init_weight_and_bias((c_in, c_out / options.groups), kernel, c_out, rng)?;
        Ok(ConvTranspose { weight, bias, options })
    }

    /// Drops the bias (PyTorch's `bias=False`).
    pub fn without_bias(mut self) -> Self {
        self.bias = None;
        self
    }

    /// The layer's forward with the output sized to `output_size`, as PyTorch's
    /// `forward(x, output_size=..)`: one size per spatial axis, or a whole shape such as that
    /// of the skip connection a U-Net decoder adds the output to (only its spatial sizes are
    /// read). With stride > 1 several sizes map to one conv output; this picks one per call,
    /// so the layer's own `output_padding` is not used.
    ///
    /// # Errors
    /// As [`conv_transpose`], and [`crate::Error::InvalidArgument`] naming `output_size` for
    /// a size the conv does not map back from `x` (outside `[o_min, o_min + stride − 1]`).
    ///
    /// # Example
    /// ```
    /// use adjoint::nn::ConvTranspose2d;
    /// use adjoint::ops::conv::ConvTransposeOptions;
    /// use adjoint::Tape;
    /// use ndarray::ArrayD;
    /// use rand::SeedableRng;
    ///
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let up = ConvTranspose2d::new::<f64>(8, 4, 3, ConvTransposeOptions::new().stride(2).padding(1), &mut rng)?;
    /// let tape = Tape::new();
    /// let x = tape.constant(ArrayD::zeros(vec![1, 8, 5, 5]));
    /// let skip = tape.constant(ArrayD::zeros(vec![1, 4, 10, 10])); // 9 or 10 map to 5
    /// let y = up.forward_with_output_size(x, skip.shape())?;
    /// assert_eq!(y.shape(), skip.shape());
    /// # Ok::<(), adjoint::Error>(())
    /// ```
    pub fn forward_with_output_size<'t>(&self, x: Var<'t, T>, output_size: impl Into<PerAxis>) -> Result<Var<'t, T>> {
        let options = ConvTransposeOptions {
            output_padding: PerAxis::from(0),
            ..self.options.clone()
        }
        .output_size(output_size);
        self.forward_with(x, &options)
    }

    /// The op on this layer's weight and bias, with `options` in place of the layer's.
    fn forward_with<'t>(&self, x: Var<'t, T>, options: &ConvTransposeOptions) -> Result<Var<'t, T>> {
        let tape = x.tape();
        conv_transpose(
            x,
            self.weight.bind(tape),
            self.bias.as_ref().map(|b| b.bind(tape)),
            options,
        )
    }
}

macro_rules! weight_and_bias {
    () => {
        fn parameters(&self) -> Vec<(String, &Parameter<T>)> {
            super::weight_and_bias(&self.weight, &self.bias)
        }

        fn parameters_mut(&mut self) -> Vec<(String, &mut Parameter<T>)> {
            super::weight_and_bias_mut(&mut self.weight, &mut self.bias)
        }
    };
}

impl<T: Float> Module<T> for Conv<T> {
    fn forward<'t>(&self, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let tape = x.tape();
        conv(
            x,
            self.weight.bind(tape),
            self.bias.as_ref().map(|b| b.bind(tape)),
            &self.options,
        )
    }
    weight_and_bias!();
}

impl<T: Float> Module<T> for ConvTranspose<T> {
    fn forward<'t>(&self, x: Var<'t, T>) -> Result<Var<'t, T>> {
        self.forward_with(x, &self.options)
    }
    weight_and_bias!();
}

macro_rules! ranked {
    ($name:ident, $inner:ident, $options:ty, $rank:literal, $torch:literal) => {
        #[doc = concat!("PyTorch's `nn.", $torch, "`: a [`", stringify!($inner), "`] over ", stringify!($rank), " spatial axes.")]
        pub struct $name;

        impl $name {
            #[doc = concat!("A new `", $torch, "(c_in, c_out, kernel, ..)` layer with PyTorch's initialisation.")]
            ///
            /// # Errors
            /// [`crate::Error::InvalidArgument`] for zero or mismatched sizes.
            #[allow(clippy::new_ret_no_self)] // the rank is all this type adds
            pub fn new<T: Float>(
                c_in: usize,
                c_out: usize,
                kernel: impl Into<PerAxis>,
                options: $options,
                rng: &mut impl Rng,
            ) -> Result<$inner<T>> {
                $inner::new($rank, c_in, c_out, kernel, options, rng)
            }
        }
    };
}

ranked!(Conv1d, Conv, ConvOptions, 1, "Conv1d");
ranked!(Conv2d, Conv, ConvOptions, 2, "Conv2d");
ranked!(Conv3d, Conv, ConvOptions, 3, "Conv3d");
ranked!(
    ConvTranspose1d,
    ConvTranspose,
    ConvTransposeOptions,
    1,
    "ConvTranspose1d"
);
ranked!(
    ConvTranspose2d,
    ConvTranspose,
    ConvTransposeOptions,
    2,
    "ConvTranspose2d"
);
ranked!(
    ConvTranspose3d,
    ConvTranspose,
    ConvTransposeOptions,
    3,
    "ConvTranspose3d"
);
