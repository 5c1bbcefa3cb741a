//! Max and average pooling over 1 to 3 spatial axes, with PyTorch's semantics.
//!
//! Both slide a window with a conv's geometry (kernel, stride, padding, dilation: all size
//! arithmetic is [`AxisGeometry`]'s) over each channel on its own, and both are linear maps of
//! `x` — max-pool once its arg-max is fixed:
//!
//! | op | forward | gradient for `x` | gradient of that (second order) |
//! |---|---|---|---|
//! | [`max_pool`] | gather: `y[o] = x[m(o)]`, `m(o)` the window's arg-max | scatter: `grad_x[m(o)] += grad_y[o]` | the gather by the same `m` |
//! | [`avg_pool`] | `y = A·x`: `y[o] = Σ_{i ∈ W(o)} x[i] / D(o)` | `Aᵀ`: `grad_x[i] += grad_y[o] / D(o)` for `i ∈ W(o)` | `A` again |
//!
//! (`W(o)` is the window's input cells and `D(o)` its divisor.) The gather's matrix has one 1
//! per row, at `m(o)`; its transpose routes each gradient to the one cell that won its window.
//! The average is a depthwise conv with the constant kernel `1/D` when `D` is constant; its
//! transpose spreads each gradient evenly back over its window, a "scatter-average".
//!
//! The files mirror the table: `max.rs` and `avg.rs` hold each op with its gradient rule beside
//! it; `kernels.rs` holds the windows every output cell reads and the loops over them; this
//! file the settings and their validation, done once into a `PoolShape` the kernels trust.
//!
//! Where PyTorch and adjoint differ: a dilated max-pool window can fall wholly between the
//! input cells (input 2, kernel 2, dilation 3, padding 1: taps at −1 and 2). PyTorch outputs
//! −∞ there and sends the gradient to an index past the end of the channel — into the next
//! channel's cells. adjoint outputs −∞ too, and sends the gradient nowhere: the output is a
//! constant.

mod avg;
mod kernels;
mod max;

pub use avg::{avg_pool, avg_pool1d, avg_pool2d, avg_pool3d};
pub use max::{max_pool, max_pool1d, max_pool2d, max_pool3d};

use crate::error::{Result, bad_shape, invalid};
use crate::ops::conv::{AxisGeometry, PerAxis, geometry::MAX_EXTENT};
use crate::ops::size;

/// Settings of a max or average pooling, PyTorch's names and defaults: stride = kernel size,
/// padding 0, dilation 1, `ceil_mode` false, and for the average `count_include_pad` true and
/// no `divisor_override`. Each size is given once for every spatial axis (`2`) or per axis
/// (`[2, 1]`).
///
/// ```
/// use adjoint::ops::conv::PerAxis;
/// use adjoint::ops::pool::PoolOptions;
///
/// let unet = PoolOptions::new(2); // max_pool2d(x, 2): 2×2 windows, stride 2
/// assert_eq!(unet.stride, None);
/// let avg = PoolOptions::new([3, 2]).stride(1).padding([1, 0]).count_include_pad(false);
/// assert_eq!(avg.padding, PerAxis(vec![1, 0]));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolOptions {
    /// The window size `k`.
    pub kernel_size: PerAxis,
    /// Step between windows; `None` means the kernel size (PyTorch's default).
    pub stride: Option<PerAxis>,
    /// Cells added on both sides of each axis: `−∞` for max-pool (never chosen), `0` for
    /// average (counted or not, per `count_include_pad`). At most half the kernel size.
    pub padding: PerAxis,
    /// Spacing between the window's taps (max-pool only).
    pub dilation: PerAxis,
    /// Sizes the output with `⌈ ⌉` rather than `⌊ ⌋`: a last, partial window may hang over the
    /// end, if it starts on the input or its left padding.
    pub ceil_mode: bool,
    /// Average only: whether padding cells count in the divisor. Cells a ceil-mode window
    /// hangs past the padding never count.
    pub count_include_pad: bool,
    /// Average only: divide every window by this instead of its size.
    pub divisor_override: Option<usize>,
}

impl PoolOptions {
    /// Windows of `kernel_size`, everything else PyTorch's default.
    pub fn new(kernel_size: impl Into<PerAxis>) -> Self {
        PoolOptions {
            kernel_size: kernel_size.into(),
            stride: None,
            padding: 0.into(),
            dilation: 1.into(),
            ceil_mode: false,
            count_include_pad: true,
            divisor_override: None,
        }
    }
    /// Sets the stride.
    pub fn stride(mut self, s: impl Into<PerAxis>) -> Self {
        self.stride = Some(s.into());
        self
    }
    /// Sets the padding.
    pub fn padding(mut self, p: impl Into<PerAxis>) -> Self {
        self.padding = p.into();
        self
    }
    /// Sets the dilation (max-pool only).
    pub fn dilation(mut self, d: impl Into<PerAxis>) -> Self {
        self.dilation = d.into();
        self
    }
    /// Sets `ceil_mode`.
    pub fn ceil_mode(mut self, on: bool) -> Self {
        self.ceil_mode = on;
        self
    }
    /// Sets `count_include_pad` (average only).
    pub fn count_include_pad(mut self, on: bool) -> Self {
        self.count_include_pad = on;
        self
    }
    /// Sets `divisor_override` (average only).
    pub fn divisor_override(mut self, divisor: usize) -> Self {
        self.divisor_override = Some(divisor);
        self
    }
}

/// What an average divides a window's sum by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Divisor {
    /// The window's cells in the input or its padding (`count_include_pad`).
    Padded,
    /// The window's cells in the input only.
    Input,
    /// `divisor_override`.
    Fixed(usize),
}

/// Which pooling, with what the average needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pooling {
    Max,
    Avg(Divisor),
}

/// A validated pooling: shapes and per-axis geometry the kernels trust.
///
/// `x: [lead.., i..]` → `y: [lead.., o..]`, where `lead` is `[n, c]` or, unbatched, `[c]`: the
/// kernels see every leading index as one independent plane.
#[derive(Clone, Debug)]
struct PoolShape {
    /// The op's name as the user called it (`"max_pool2d"`).
    op: &'static str,
    pooling: Pooling,
    x: Vec<usize>,
    y: Vec<usize>,
    /// One per spatial axis.
    axes: Vec<AxisGeometry>,
    ceil_mode: bool,
}

impl PoolShape {
    fn rank(&self) -> usize {
        self.axes.len()
    }

    /// The number of independent planes: the product of the leading axes.
    fn planes(&self) -> usize {
        self.x[..self.x.len() - self.rank()].iter().product()
    }

    fn input(&self) -> &[usize] {
        &self.x[self.x.len() - self.rank()..]
    }

    fn output(&self) -> &[usize] {
        &self.y[self.y.len() - self.rank()..]
    }

    /// `"k=[2, 2], s=[2, 2], p=[0, 0], d=[1, 1]"`, with `ceil` and the divisor if set: the
    /// settings, for printing the tape.
    fn settings(&self) -> String {
        let per_axis = |f: fn(&AxisGeometry) -> usize| self.axes.iter().map(f).collect::<Vec<_>>();
        let mut out = format!(
            "k={:?}, s={:?}, p={:?}",
            per_axis(|a| a.kernel),
            per_axis(|a| a.stride),
            per_axis(|a| a.pad_before)
        );
        match self.pooling {
            Pooling::Max => out += &format!(", d={:?}", per_axis(|a| a.dilation)),
            Pooling::Avg(Divisor::Padded) => {}
            Pooling::Avg(Divisor::Input) => out += ", count_include_pad=false",
            Pooling::Avg(Divisor::Fixed(n)) => out += &format!(", divisor={n}"),
        }
        if self.ceil_mode {
            out += ", ceil";
        }
        out
    }
}

/// The settings alone, per axis, checked for a pooling of `rank` spatial axes: what a layer
/// checks when it is made and every call checks again.
fn axes(op: &'static str, pooling: Pooling, rank: usize, opts: &PoolOptions) -> Result<Vec<AxisGeometry>> {
    let kernel = opts.kernel_size.per_axis(op, "kernel_size", rank)?;
    let stride = opts
        .stride
        .as_ref()
        .unwrap_or(&opts.kernel_size)
        .per_axis(op, "stride", rank)?;
    let padding = opts.padding.per_axis(op, "padding", rank)?;
    let dilation = opts.dilation.per_axis(op, "dilation", rank)?;
    for (param, values) in [("kernel_size", &kernel), ("stride", &stride), ("dilation", &dilation)] {
        if values.contains(&0) {
            return Err(invalid(op, param, values, "must be at least 1"));
        }
    }
    match pooling {
        Pooling::Max if opts.divisor_override.is_some() => {
            return Err(invalid(
                op,
                "divisor_override",
                opts.divisor_override,
                "is a setting of avg_pool: max_pool divides nothing",
            ));
        }
        Pooling::Max if !opts.count_include_pad => {
            return Err(invalid(
                op,
                "count_include_pad",
                false,
                "is a setting of avg_pool: max_pool never selects padding",
            ));
        }
        Pooling::Avg(_) if dilation.iter().any(|&d| d != 1) => {
            return Err(invalid(
                op,
                "dilation",
                &dilation,
                "must be 1: avg_pool has no dilation (PyTorch's takes none)",
            ));
        }
        Pooling::Avg(Divisor::Fixed(0)) => {
            return Err(invalid(op, "divisor_override", 0, "must not be zero"));
        }
        _ => {}
    }
    // PyTorch checks both `p ≤ ⌊k_e/2⌋` (`pooling_output_shape`) and `p ≤ ⌊k/2⌋`
    // (`pool2d_shape_check`); with `d ≥ 1`, `k_e ≥ k`, so the second is the rule.
    if let Some(a) = (0..rank).find(|&a| padding[a] > kernel[a] / 2) {
        return Err(invalid(
            op,
            "padding",
            &padding,
            format!(
                "axis {a}: {} is more than half of kernel_size {kernel:?} (pad should be at most half of kernel size)",
                padding[a]
            ),
        ));
    }
    Ok((0..rank)
        .map(|a| AxisGeometry::new(kernel[a], stride[a], padding[a], dilation[a]))
        .collect())
}

/// Validates a pooling of `x` and sizes its output. `rank` is the op's number of spatial axes,
/// `x` then `[n, c, i..]` or `[c, i..]`; without one (the rank-generic ops) `x` is
/// `[n, c, i..]` with 1 to 3 spatial axes.
fn pool_shape(
    op: &'static str,
    pooling: Pooling,
    rank: Option<usize>,
    x: &[usize],
    opts: &PoolOptions,
) -> Result<PoolShape> {
    let rank = match rank {
        Some(r) if x.len() == r + 1 || x.len() == r + 2 => r,
        Some(r) => {
            return Err(bad_shape(
                op,
                "x",
                x,
                format!(
                    "needs {} axes [n, c, spatial..] or {} unbatched [c, spatial..]",
                    r + 2,
                    r + 1
                ),
            ));
        }
        None if (3..=5).contains(&x.len()) => x.len() - 2,
        None => {
            return Err(bad_shape(
                op,
                "x",
                x,
                "needs [n, c, spatial..] with 1 to 3 spatial axes",
            ));
        }
    };
    let axes = axes(op, pooling, rank, opts)?;
    // Only a batch (the first of two leading axes) may be empty, as in PyTorch.
    let batched = x.len() == rank + 2;
    if x[usize::from(batched)..].contains(&0) {
        return Err(bad_shape(
            op,
            "x",
            x,
            "channel and spatial sizes must be at least 1 (only the batch may be 0)",
        ));
    }
    let lead = x.len() - rank;
    // PyTorch's avg_pool3d alone (`pool3d_shape_check` with `check_input_size`) also wants
    // every input size at least the kernel's, padding or not.
    if let (Pooling::Avg(_), 3) = (pooling, rank)
        && let Some(a) = (0..rank).find(|&a| x[lead + a] < axes[a].kernel)
    {
        return Err(bad_shape(
            op,
            "x",
            x,
            format!(
                "axis {a}: input {} is smaller than kernel_size {} (a 3-D average needs every input size at least the kernel's, padding or not)",
                x[lead + a],
                axes[a].kernel
            ),
        ));
    }
    let mut y = x[..lead].to_vec();
    for (a, (ax, &i)) in axes.iter().zip(&x[lead..]).enumerate() {
        if ax.padded_size(i).is_none() {
            return Err(invalid(
                op,
                "padding",
                ax.pad_before,
                format!(
                    "axis {a}: the padded input {i} + 2·{} exceeds {MAX_EXTENT} (2^63 − 1), the largest size adjoint indexes",
                    ax.pad_before
                ),
            ));
        }
        let o = ax.pool_output_size(i, opts.ceil_mode).ok_or_else(|| {
            bad_shape(
                op,
                "x",
                x,
                format!(
                    "axis {a}: no window fits: input {i} with padding {} on each side is smaller than the window d·(k − 1) + 1 = {} (output size is too small)",
                    ax.pad_before,
                    ax.span()
                ),
            )
        })?;
        y.push(o);
    }
    size::elements(op, "output", &y)?;
    Ok(PoolShape {
        op,
        pooling,
        x: x.to_vec(),
        y,
        axes,
        ceil_mode: opts.ceil_mode,
    })
}

/// The divisor an average of `opts` uses.
fn divisor(opts: &PoolOptions) -> Divisor {
    match (opts.divisor_override, opts.count_include_pad) {
        (Some(n), _) => Divisor::Fixed(n),
        (None, true) => Divisor::Padded,
        (None, false) => Divisor::Input,
    }
}

/// Checks a layer's settings when it is made: everything but the input's shape.
pub(crate) fn check_layer(layer: &'static str, max: bool, rank: usize, opts: &PoolOptions) -> Result<()> {
    let pooling = if max { Pooling::Max } else { Pooling::Avg(divisor(opts)) };
    axes(layer, pooling, rank, opts).map(|_| ())
}

/// Declares the rank-specific pooling `$name` over the rank-generic `$generic`; each module
/// calling it has a `named(op, rank, x, opts)` doing the work.
macro_rules! pool_rank {
    ($name:ident, $generic:ident, $rank:literal, $layout:literal, $axes:literal) => {
        #[doc = concat!("`", stringify!($name), "`: [`", stringify!($generic), "`] with ", $layout, ",")]
        /// or unbatched, without the `n` axis.
        ///
        /// # Errors
        #[doc = concat!("As [`", stringify!($generic), "`], and [`Error::BadShape`](crate::Error::BadShape) if `x`")]
        #[doc = concat!("does not have ", $axes, " axes.")]
        pub fn $name<'t, T: Float>(x: Var<'t, T>, opts: &PoolOptions) -> Result<Var<'t, T>> {
            named(stringify!($name), Some($rank), x, opts)
        }
    };
}
use pool_rank;
