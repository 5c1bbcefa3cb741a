//! Settings of the conv family, PyTorch's names and defaults, and their validation into a
//! [`ConvShape`] the kernels run on. Every invalid setting is refused here, before any work.

use super::geometry::{AxisGeometry, MAX_EXTENT, tf_transpose_axis, tf_transpose_default_size, tf_transpose_sizes};
use super::kernels::ConvShape;
use crate::error::{Error, Result, bad_shape, invalid};
use crate::ops::size;

/// A setting given once for every spatial axis (`2`) or per axis (`[2, 1]`), like PyTorch's
/// `int or tuple` arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PerAxis(pub Vec<usize>);

impl From<usize> for PerAxis {
    fn from(v: usize) -> Self {
        PerAxis(vec![v])
    }
}

impl<const N: usize> From<[usize; N]> for PerAxis {
    fn from(v: [usize; N]) -> Self {
        PerAxis(v.to_vec())
    }
}

impl From<Vec<usize>> for PerAxis {
    fn from(v: Vec<usize>) -> Self {
        PerAxis(v)
    }
}

impl From<&[usize]> for PerAxis {
    fn from(v: &[usize]) -> Self {
        PerAxis(v.to_vec())
    }
}

impl PerAxis {
    /// One value per axis, or an error naming the parameter if the length is neither 1 nor `rank`.
    pub(crate) fn per_axis(&self, op: &'static str, param: &'static str, rank: usize) -> Result<Vec<usize>> {
        match self.0.len() {
            1 => Ok(vec![self.0[0]; rank]),
            n if n == rank => Ok(self.0.clone()),
            _ => Err(invalid(op, param, &self.0, format!("needs 1 or {rank} values"))),
        }
    }
}

/// Padding of a conv.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Padding {
    /// `p` zeros on both sides of each axis.
    Symmetric(PerAxis),
    /// `(before, after)` zeros per axis (one pair for all axes, or one per axis).
    Asymmetric(Vec<(usize, usize)>),
    /// PyTorch's `'same'` (stride 1 only): output size = input size; total padding
    /// `d·(k − 1)`, the smaller half before.
    Same,
    /// PyTorch's `'valid'`: no padding.
    Valid,
}

/// Padding of a transposed conv.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransposePadding {
    /// PyTorch's `padding`: removes `p` cells from each side of the full output.
    Symmetric(PerAxis),
    /// `(before, after)` cells removed per axis: the adjoint of a conv padded that way.
    Asymmetric(Vec<(usize, usize)>),
    /// TensorFlow's `SAME`: output `i·s` unless an output size is given.
    TfSame,
    /// TensorFlow's `VALID`: output `i·s + max(k_e − s, 0)` unless an output size is given.
    TfValid,
}

fn pairs(op: &'static str, v: &[(usize, usize)], rank: usize) -> Result<Vec<(usize, usize)>> {
    match v.len() {
        1 => Ok(vec![v[0]; rank]),
        n if n == rank => Ok(v.to_vec()),
        _ => Err(invalid(
            op,
            "padding",
            v,
            format!("needs 1 or {rank} (before, after) pairs"),
        )),
    }
}

/// Settings of a convolution, with PyTorch's defaults: stride 1, padding 0, dilation 1,
/// groups 1.
///
/// ```
/// use adjoint::ops::conv::{ConvOptions, Padding, PerAxis};
/// let opts = ConvOptions::new().stride(2).padding(1);
/// assert_eq!(opts.padding, Padding::Symmetric(PerAxis(vec![1])));
/// let per_axis = ConvOptions::new().stride([1, 2]).padding_asymmetric(&[(0, 1), (1, 1)]);
/// assert_eq!(per_axis.stride, PerAxis(vec![1, 2]));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvOptions {
    /// Step between kernel positions.
    pub stride: PerAxis,
    /// Zeros around the input.
    pub padding: Padding,
    /// Spacing between kernel taps.
    pub dilation: PerAxis,
    /// Channel groups: input and output channels are split into `groups` independent convs.
    pub groups: usize,
}

impl Default for ConvOptions {
    fn default() -> Self {
        ConvOptions {
            stride: 1.into(),
            padding: Padding::Symmetric(0.into()),
            dilation: 1.into(),
            groups: 1,
        }
    }
}

impl ConvOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the stride.
    pub fn stride(mut self, s: impl Into<PerAxis>) -> Self {
        self.stride = s.into();
        self
    }
    /// Sets symmetric padding.
    pub fn padding(mut self, p: impl Into<PerAxis>) -> Self {
        self.padding = Padding::Symmetric(p.into());
        self
    }
    /// Sets `(before, after)` padding per axis.
    pub fn padding_asymmetric(mut self, p: &[(usize, usize)]) -> Self {
        self.padding = Padding::Asymmetric(p.to_vec());
        self
    }
    /// PyTorch's `padding='same'`.
    pub fn same(mut self) -> Self {
        self.padding = Padding::Same;
        self
    }
    /// PyTorch's `padding='valid'`.
    pub fn valid(mut self) -> Self {
        self.padding = Padding::Valid;
        self
    }
    /// Sets the dilation.
    pub fn dilation(mut self, d: impl Into<PerAxis>) -> Self {
        self.dilation = d.into();
        self
    }
    /// Sets the number of groups.
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
}

/// Settings of a transposed convolution, with PyTorch's defaults: stride 1, padding 0,
/// output_padding 0, dilation 1, groups 1.
///
/// ```
/// use adjoint::ops::conv::ConvTransposeOptions;
/// let pytorch = ConvTransposeOptions::new().stride(2).padding(1).output_padding(1);
/// assert_eq!(pytorch.groups, 1);
/// let tensorflow = ConvTransposeOptions::new().stride(2).tf_same().output_size([13, 13]);
/// assert_eq!(tensorflow.output_size, Some(vec![13, 13]));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvTransposeOptions {
    /// Stride of the conv this is the transpose of (the upsampling factor).
    pub stride: PerAxis,
    /// Cells cropped from the full output.
    pub padding: TransposePadding,
    /// Cells added at the end of each axis, to pick one of the sizes a strided conv maps to
    /// the same output. Must be below the stride or the dilation, per axis.
    pub output_padding: PerAxis,
    /// Spacing between kernel taps.
    pub dilation: PerAxis,
    /// Channel groups.
    pub groups: usize,
    /// An explicit spatial output size, as PyTorch's `output_size=` or TensorFlow's
    /// `output_shape`; it must be one a conv with the same settings maps back from. As in
    /// PyTorch, the whole output shape (`[n, c_out, o..]`, or `[c_out, o..]` for an unbatched
    /// input) is taken too, and only its spatial sizes are read.
    pub output_size: Option<Vec<usize>>,
}

impl Default for ConvTransposeOptions {
    fn default() -> Self {
        ConvTransposeOptions {
            stride: 1.into(),
            padding: TransposePadding::Symmetric(0.into()),
            output_padding: 0.into(),
            dilation: 1.into(),
            groups: 1,
            output_size: None,
        }
    }
}

impl ConvTransposeOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the stride.
    pub fn stride(mut self, s: impl Into<PerAxis>) -> Self {
        self.stride = s.into();
        self
    }
    /// Sets symmetric padding.
    pub fn padding(mut self, p: impl Into<PerAxis>) -> Self {
        self.padding = TransposePadding::Symmetric(p.into());
        self
    }
    /// Sets `(before, after)` padding per axis.
    pub fn padding_asymmetric(mut self, p: &[(usize, usize)]) -> Self {
        self.padding = TransposePadding::Asymmetric(p.to_vec());
        self
    }
    /// TensorFlow's `SAME` mode.
    pub fn tf_same(mut self) -> Self {
        self.padding = TransposePadding::TfSame;
        self
    }
    /// TensorFlow's `VALID` mode.
    pub fn tf_valid(mut self) -> Self {
        self.padding = TransposePadding::TfValid;
        self
    }
    /// Sets the output padding.
    pub fn output_padding(mut self, op: impl Into<PerAxis>) -> Self {
        self.output_padding = op.into();
        self
    }
    /// Sets the dilation.
    pub fn dilation(mut self, d: impl Into<PerAxis>) -> Self {
        self.dilation = d.into();
        self
    }
    /// Sets the number of groups.
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
    /// Asks for an explicit spatial output size.
    pub fn output_size(mut self, size: impl Into<PerAxis>) -> Self {
        self.output_size = Some(size.into().0);
        self
    }
}

/// What both ops check alike: ranks, stride, dilation, groups, kernel sizes.
struct Common {
    rank: usize,
    stride: Vec<usize>,
    dilation: Vec<usize>,
    kernel: Vec<usize>,
}

fn common(
    op: &'static str,
    x: &[usize],
    w: &[usize],
    stride: &PerAxis,
    dilation: &PerAxis,
    groups: usize,
) -> Result<Common> {
    if w.len() < 3 {
        return Err(bad_shape(
            op,
            "w",
            w,
            "needs [channels, channels/groups, kernel..] with at least one spatial axis",
        ));
    }
    let rank = w.len() - 2;
    if x.len() != rank + 2 {
        return Err(bad_shape(
            op,
            "x",
            x,
            format!("needs {} axes [n, c, spatial..] to match w", rank + 2),
        ));
    }
    let stride = stride.per_axis(op, "stride", rank)?;
    let dilation = dilation.per_axis(op, "dilation", rank)?;
    if stride.contains(&0) {
        return Err(invalid(op, "stride", &stride, "must be at least 1"));
    }
    if dilation.contains(&0) {
        return Err(invalid(op, "dilation", &dilation, "must be at least 1"));
    }
    if groups == 0 {
        return Err(invalid(op, "groups", groups, "must be at least 1"));
    }
    let kernel = w[2..].to_vec();
    if kernel.contains(&0) {
        return Err(bad_shape(op, "w", w, "kernel sizes must be at least 1"));
    }
    if x[2..].contains(&0) {
        return Err(bad_shape(op, "x", x, "spatial sizes must be at least 1"));
    }
    Ok(Common {
        rank,
        stride,
        dilation,
        kernel,
    })
}

fn divisible(op: &'static str, what: &'static str, channels: usize, groups: usize) -> Result<()> {
    if !channels.is_multiple_of(groups) {
        return Err(invalid(
            op,
            "groups",
            groups,
            format!("{what} = {channels} is not divisible by it"),
        ));
    }
    Ok(())
}

/// Validates a conv and sizes its output.
/// `x: [n, c_in, i..]`, `w: [c_out, c_in/g, k..]` → shape with big = `i..`, small = `o..`.
pub(crate) fn conv_shape(op: &'static str, opts: &ConvOptions, x: &[usize], w: &[usize]) -> Result<ConvShape> {
    let Common {
        rank,
        stride,
        dilation,
        kernel,
    } = common(op, x, w, &opts.stride, &opts.dilation, opts.groups)?;
    let (c_in, c_out, g) = (x[1], w[0], opts.groups);
    divisible(op, "in_channels", c_in, g)?;
    divisible(op, "out_channels", c_out, g)?;
    if w[1].checked_mul(g) != Some(c_in) {
        return Err(Error::ShapeMismatch {
            op,
            lhs: x.to_vec(),
            rhs: w.to_vec(),
            reason: format!("x has {c_in} channels but w expects {} × groups {g}", w[1]),
        });
    }
    let pads: Vec<(usize, usize)> = match &opts.padding {
        Padding::Symmetric(p) => p.per_axis(op, "padding", rank)?.into_iter().map(|p| (p, p)).collect(),
        Padding::Asymmetric(p) => pairs(op, p, rank)?,
        Padding::Valid => vec![(0, 0); rank],
        Padding::Same => {
            if stride.iter().any(|&s| s != 1) {
                return Err(invalid(op, "stride", &stride, "padding 'same' needs stride 1"));
            }
            let mut pads = Vec::with_capacity(rank);
            for a in 0..rank {
                let span = AxisGeometry::new(kernel[a], 1, 0, dilation[a]).effective_kernel();
                if span > MAX_EXTENT {
                    return Err(invalid(
                        op,
                        "dilation",
                        &dilation,
                        format!(
                            "axis {a}: padding 'same' of d·(k − 1) = {}·{} exceeds {MAX_EXTENT}",
                            dilation[a],
                            kernel[a] - 1
                        ),
                    ));
                }
                let total = span - 1;
                pads.push((total / 2, total - total / 2));
            }
            pads
        }
    };
    let axes: Vec<AxisGeometry> = (0..rank)
        .map(|a| AxisGeometry {
            kernel: kernel[a],
            stride: stride[a],
            dilation: dilation[a],
            pad_before: pads[a].0,
            pad_after: pads[a].1,
        })
        .collect();
    let big = x[2..].to_vec();
    let mut small = Vec::with_capacity(rank);
    for (a, (ax, &i)) in axes.iter().zip(&big).enumerate() {
        let padded = ax.padded_size(i).ok_or_else(|| {
            invalid(
                op,
                "padding",
                &pads,
                format!(
                    "axis {a}: the padded input {i} + {} + {} exceeds {MAX_EXTENT} (2^63 − 1), the largest size adjoint indexes",
                    ax.pad_before, ax.pad_after
                ),
            )
        })?;
        let o = ax.conv_output_size(i).ok_or_else(|| {
            bad_shape(
                op,
                "x",
                x,
                format!(
                    "padded input size {padded} is smaller than the effective kernel {} (kernel size can't be greater than actual input size)",
                    ax.span()
                ),
            )
        })?;
        small.push(o);
    }
    output_elements(op, x[0], w[0], &small)?;
    Ok(ConvShape {
        batch: x[0],
        c_big: c_in,
        c_small: c_out,
        groups: g,
        big,
        small,
        axes,
    })
}

/// Refuses an output `[n, c, spatial..]` of more than [`size::MAX_ELEMENTS`] before anything is
/// allocated.
fn output_elements(op: &'static str, n: usize, c: usize, spatial: &[usize]) -> Result<()> {
    let dims: Vec<usize> = [n, c].into_iter().chain(spatial.iter().copied()).collect();
    size::elements(op, "output", &dims).map(|_| ())
}

/// Validates a transposed conv and sizes its output.
/// `x: [n, c_in, i..]`, `w: [c_in, c_out/g, k..]` → shape with small = `i..`, big = `o..`;
/// `unbatched` if the caller's `x` was `[c_in, i..]` (it decides what a whole-shape
/// `output_size` looks like).
pub(crate) fn conv_transpose_shape(
    op: &'static str,
    opts: &ConvTransposeOptions,
    unbatched: bool,
    x: &[usize],
    w: &[usize],
) -> Result<ConvShape> {
    let Common {
        rank,
        stride,
        dilation,
        kernel,
    } = common(op, x, w, &opts.stride, &opts.dilation, opts.groups)?;
    let (c_in, g) = (x[1], opts.groups);
    divisible(op, "in_channels", c_in, g)?;
    if w[0] != c_in {
        return Err(Error::ShapeMismatch {
            op,
            lhs: x.to_vec(),
            rhs: w.to_vec(),
            reason: format!(
                "x has {c_in} channels but w has {} input channels (its first axis)",
                w[0]
            ),
        });
    }
    let output_padding = opts.output_padding.per_axis(op, "output_padding", rank)?;
    for a in 0..rank {
        if output_padding[a] >= stride[a] && output_padding[a] >= dilation[a] {
            return Err(invalid(
                op,
                "output_padding",
                &output_padding,
                format!("must be smaller than either stride {stride:?} or dilation {dilation:?} on each axis"),
            ));
        }
    }
    // PyTorch also takes the whole output shape (`[n, c_out, o..]`, or `[c_out, o..]` for an
    // unbatched `x`) and reads only its spatial sizes.
    let non_spatial = if unbatched { 1 } else { 2 };
    let requested = opts.output_size.as_deref().map(|size| match size.len() {
        n if n == rank + non_spatial => &size[non_spatial..],
        _ => size,
    });
    let wanted = match requested {
        Some(size) if size.len() != rank => {
            return Err(invalid(
                op,
                "output_size",
                size,
                format!("needs {rank} values, one per spatial axis (or the whole output shape)"),
            ));
        }
        Some(_) if output_padding.iter().any(|&p| p != 0) => {
            return Err(invalid(
                op,
                "output_size",
                &opts.output_size,
                "give output_size or output_padding, not both",
            ));
        }
        other => other.map(<[usize]>::to_vec),
    };
    let tf_mode = matches!(opts.padding, TransposePadding::TfSame | TransposePadding::TfValid);
    if tf_mode && output_padding.iter().any(|&p| p != 0) {
        return Err(invalid(
            op,
            "output_padding",
            &output_padding,
            "TensorFlow's SAME/VALID modes size the output themselves: give output_size instead",
        ));
    }
    let small = x[2..].to_vec();
    let mut axes = Vec::with_capacity(rank);
    let mut big = Vec::with_capacity(rank);
    for a in 0..rank {
        let (k, s, d, i) = (kernel[a], stride[a], dilation[a], small[a]);
        let (axis, n) = match &opts.padding {
            TransposePadding::TfSame | TransposePadding::TfValid => {
                let same = opts.padding == TransposePadding::TfSame;
                let too_large = || {
                    invalid(
                        op,
                        "stride",
                        &stride,
                        format!("axis {a}: the output of an input of {i} does not fit in usize"),
                    )
                };
                let n = match &wanted {
                    Some(size) => {
                        let allowed = tf_transpose_sizes(same, i, k, s, d).ok_or_else(too_large)?;
                        if !allowed.contains(&size[a]) {
                            return Err(invalid(
                                op,
                                "output_size",
                                size,
                                format!(
                                    "axis {a} must lie in {allowed:?}: the sizes a conv with these settings maps back to {i}"
                                ),
                            ));
                        }
                        size[a]
                    }
                    None => tf_transpose_default_size(same, i, k, s, d).ok_or_else(too_large)?,
                };
                (tf_transpose_axis(same, i, n, k, s, d).ok_or_else(too_large)?.0, n)
            }
            TransposePadding::Symmetric(_) | TransposePadding::Asymmetric(_) => {
                let (pad_before, pad_after) = match &opts.padding {
                    TransposePadding::Symmetric(p) => {
                        let p = p.per_axis(op, "padding", rank)?[a];
                        (p, p)
                    }
                    TransposePadding::Asymmetric(p) => pairs(op, p, rank)?[a],
                    _ => unreachable!("matched above"),
                };
                let axis = AxisGeometry {
                    kernel: k,
                    stride: s,
                    dilation: d,
                    pad_before,
                    pad_after,
                };
                let n = match &wanted {
                    Some(size) => {
                        // PyTorch's `output_size=`: any of the sizes the conv maps back to `i`.
                        match axis.conv_input_sizes(i) {
                            Some(allowed) if allowed.contains(&size[a]) => size[a],
                            allowed => {
                                let allowed = allowed.map_or("no size".to_string(), |r| format!("{r:?}"));
                                return Err(invalid(
                                    op,
                                    "output_size",
                                    size,
                                    format!(
                                        "axis {a} must lie in {allowed}: the sizes a conv with these settings maps back to {i}"
                                    ),
                                ));
                            }
                        }
                    }
                    None => {
                        let full = axis.full_transpose_size(i, output_padding[a]).ok_or_else(|| {
                            // Name the setting that alone breaks the bound, if one does.
                            let alone = |v: u128| v > MAX_EXTENT as u128;
                            let (param, value) = if alone((i as u128 - 1) * s as u128) {
                                ("stride", &stride)
                            } else if alone(axis.span()) {
                                ("dilation", &dilation)
                            } else {
                                ("output_padding", &output_padding)
                            };
                            invalid(
                                op,
                                param,
                                value,
                                format!(
                                    "axis {a}: the full output (i − 1)·s + d·(k − 1) + 1 + output_padding = ({i} − 1)·{s} + {d}·{} + 1 + {} exceeds {MAX_EXTENT} (2^63 − 1), the largest size adjoint indexes",
                                    k - 1,
                                    output_padding[a]
                                ),
                            )
                        })?;
                        axis.conv_transpose_output_size(i, output_padding[a]).ok_or_else(|| {
                            invalid(
                                op,
                                "padding",
                                (pad_before, pad_after),
                                format!(
                                    "crops the whole output of axis {a}: (i−1)·s + k_e + output_padding = {full} (output size too small)"
                                ),
                            )
                        })?
                    }
                };
                (axis, n)
            }
        };
        // The conv this is the adjoint of reads `n` padded: that extent bounds its indices.
        if axis.padded_size(n).is_none() {
            return Err(invalid(
                op,
                "padding",
                (axis.pad_before, axis.pad_after),
                format!(
                    "axis {a}: the output {n} plus its cropped cells exceeds {MAX_EXTENT} (2^63 − 1), the largest size adjoint indexes"
                ),
            ));
        }
        axes.push(axis);
        big.push(n);
    }
    let c_out = size::mul(op, "groups", w[1], g)?;
    output_elements(op, x[0], c_out, &big)?;
    Ok(ConvShape {
        batch: x[0],
        c_big: c_out,
        c_small: c_in,
        groups: g,
        big,
        small,
        axes,
    })
}
