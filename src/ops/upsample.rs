//! Upsampling (and resizing in general), PyTorch's `F.interpolate` / `nn.Upsample`: nearest
//! neighbour and (bi/tri)linear interpolation of `x: [n, c, spatial..]` with 1 to 3 spatial axes.
//!
//! Both modes are linear maps `y = U·x` that act on each spatial axis separately, so each
//! backward is the adjoint `Uᵀ`, recorded as an op whose own backward is the forward again — the
//! same pairing as conv ⇄ transposed conv:
//!
//! | op | forward: `y = U·x` | gradient for `x`: `Uᵀ·grad_y` |
//! |---|---|---|
//! | [`upsample_nearest`] | gather: `y[o] = x[src(o)]` | sum-pool: `grad_x[i] = Σ_{o: src(o) = i} grad_y[o]` |
//! | [`upsample_linear`] | per axis: `y[o] = w₀(o)·x[i₀(o)] + w₁(o)·x[i₁(o)]` | scatter: `grad_x[i₀(o)] += w₀(o)·grad_y[o]`, `grad_x[i₁(o)] += w₁(o)·grad_y[o]` |
//!
//! Nearest upsampling's backward is a sum-pool over each source cell's copies; linear
//! upsampling's scatters each output's gradient onto its `2^rank` source cells with the weights
//! that made it. Nearest upsampling by an integer factor `s` is also a transposed conv: stride
//! `s`, one `s×…×s` kernel of ones per channel (`groups = c`) — the "resize-conv" that replaces a
//! learned transposed conv in decoders to avoid its checkerboard artefacts is this fixed
//! transposed conv followed by an ordinary conv.
//!
//! # Index rules (PyTorch's CPU kernels)
//! Per axis, with input size `i`, output size `o`, and `scale = 1/scale_factor` when a
//! `scale_factor` is given (and not recomputed), else `i/o`, computed in the element type:
//!
//! - nearest: `src(d) = min(⌊d·scale⌋, i − 1)`;
//! - nearest-exact: `src(d) = min(⌊max((d + ½)·scale − ½, 0) + ½⌋, i − 1)`;
//! - linear, `align_corners = false`: source coordinate `r = max((d + ½)·scale − ½, 0)`;
//!   `align_corners = true`: `r = d·(i − 1)/(o − 1)` (0 when `o = 1`); then `i₀ = min(⌊r⌋, i − 1)`,
//!   `i₁ = i₀ + 1` (`i₀` at the last cell), `w₁ = clamp(r − i₀, 0, 1)`, `w₀ = 1 − w₁`. An axis
//!   whose size does not change is copied (`w₀ = 1`, `w₁ = 0`).
//!
//! As in PyTorch, `⌊·⌋` rounds the coordinate to `f32` first (its kernels call `floorf`), and
//! both taps enter every sum even with weight 0, so an infinite input turns its zero-weight
//! neighbours into NaN (`∞·0`) exactly as PyTorch does.
//!
//! PyTorch's own CPU kernels disagree with each other in two corners of the nearest mode, and
//! adjoint follows its main forward kernel (1-D, 3-D, and 2-D above 128 output rows + columns):
//! its backward, and its 2-D forward for small outputs, use an older rule that copies an axis
//! whose size does not change and halves the index when the size doubles, even when a
//! `scale_factor` such as 1.3 or 2.2 says otherwise, and compute `d·scale` in `f32` for `f64`
//! inputs. Where they disagree, PyTorch's gradient is not the gradient of its own output;
//! adjoint's always is (see `tests/upsample.rs`).

use std::fmt::Debug;
use std::rc::Rc;

use crate::error::{Result, bad_shape, invalid};
use crate::float::Float;
use crate::ops::{contiguous, size};
use crate::tape::{Op, Var};

/// A value for every spatial axis, PyTorch's `int or Tuple[int, ...]` (or float) arguments:
/// [`Spatial::All`] applies one value to each axis, [`Spatial::Each`] must give exactly one per
/// axis (as in PyTorch, a one-element list for a 2-D input is an error, not a broadcast).
///
/// ```
/// use adjoint::ops::upsample::Spatial;
/// assert_eq!(Spatial::from(2.0), Spatial::All(2.0));
/// assert_eq!(Spatial::from([4usize, 6]), Spatial::Each(vec![4, 6]));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Spatial<T> {
    /// The same value on every spatial axis.
    All(T),
    /// One value per spatial axis, outermost first.
    Each(Vec<T>),
}

impl<T: Copy + Debug> Spatial<T> {
    /// One value per axis, or an error naming `param` if `Each` has the wrong length.
    fn per_axis(&self, op: &'static str, param: &'static str, rank: usize) -> Result<Vec<T>> {
        match self {
            Spatial::All(v) => Ok(vec![*v; rank]),
            Spatial::Each(v) if v.len() == rank => Ok(v.clone()),
            Spatial::Each(v) => Err(invalid(
                op,
                param,
                v,
                format!("needs one value per spatial axis of x ({rank}), or a single value for all of them"),
            )),
        }
    }
}

macro_rules! spatial_from {
    ($t:ty) => {
        impl From<$t> for Spatial<$t> {
            fn from(v: $t) -> Self {
                Spatial::All(v)
            }
        }
        impl<const N: usize> From<[$t; N]> for Spatial<$t> {
            fn from(v: [$t; N]) -> Self {
                Spatial::Each(v.to_vec())
            }
        }
        impl From<Vec<$t>> for Spatial<$t> {
            fn from(v: Vec<$t>) -> Self {
                Spatial::Each(v)
            }
        }
        impl From<&[$t]> for Spatial<$t> {
            fn from(v: &[$t]) -> Self {
                Spatial::Each(v.to_vec())
            }
        }
    };
}

spatial_from!(usize);
spatial_from!(f64);

/// The interpolation of [`interpolate`] and [`crate::nn::Upsample`], PyTorch's `mode` strings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UpsampleMode {
    /// `'nearest'` (the default): [`upsample_nearest`].
    #[default]
    Nearest,
    /// `'nearest-exact'`: [`upsample_nearest_exact`].
    NearestExact,
    /// `'linear'`, `'bilinear'` or `'trilinear'` by the number of spatial axes:
    /// [`upsample_linear`].
    Linear,
}

impl UpsampleMode {
    /// The op's name, as errors and the printed tape show it.
    fn op(self) -> &'static str {
        match self {
            UpsampleMode::Nearest => "upsample_nearest",
            UpsampleMode::NearestExact => "upsample_nearest_exact",
            UpsampleMode::Linear => "upsample_linear",
        }
    }
}

/// Settings of an upsampling, PyTorch's `F.interpolate` arguments: exactly one of `size` and
/// `scale_factor`; `align_corners` only for the linear mode.
///
/// ```
/// use adjoint::ops::upsample::{Spatial, UpsampleOptions};
/// let double = UpsampleOptions::new().scale_factor(2.0);
/// assert_eq!(double.scale_factor, Some(Spatial::All(2.0)));
/// let resize = UpsampleOptions::new().size([32, 48]).align_corners(true);
/// assert_eq!(resize.size, Some(Spatial::Each(vec![32, 48])));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UpsampleOptions {
    /// The output's spatial sizes.
    pub size: Option<Spatial<usize>>,
    /// The factor per axis: output size `⌊input · scale_factor⌋`. Unless
    /// `recompute_scale_factor` is set, the index rules use it too (`scale = 1/scale_factor`),
    /// as PyTorch does.
    pub scale_factor: Option<Spatial<f64>>,
    /// Linear mode only: `true` maps the corner cells' centres onto each other
    /// (`r = d·(i − 1)/(o − 1)`), `false` or `None` (PyTorch's default) scales the whole extent.
    /// PyTorch refuses it (even `false`) for the nearest modes, and so does adjoint.
    pub align_corners: Option<bool>,
    /// `true`: compute the output size from `scale_factor`, then index with `input/output` as
    /// if that size had been given. Not allowed with `size`.
    pub recompute_scale_factor: Option<bool>,
}

impl UpsampleOptions {
    /// No target yet: give a `size` or a `scale_factor`.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the output's spatial size (one value for all axes, or one per axis).
    pub fn size(mut self, size: impl Into<Spatial<usize>>) -> Self {
        self.size = Some(size.into());
        self
    }
    /// Sets the scale factor (one value for all axes, or one per axis).
    pub fn scale_factor(mut self, scale_factor: impl Into<Spatial<f64>>) -> Self {
        self.scale_factor = Some(scale_factor.into());
        self
    }
    /// Sets `align_corners` (linear mode only).
    pub fn align_corners(mut self, align_corners: bool) -> Self {
        self.align_corners = Some(align_corners);
        self
    }
    /// Sets `recompute_scale_factor`.
    pub fn recompute_scale_factor(mut self, recompute: bool) -> Self {
        self.recompute_scale_factor = Some(recompute);
        self
    }
}

// ---------------------------------------------------------------------------------- geometry

/// Validated settings: the shapes of `x` and `y`, and the scale factor each axis's index rule
/// uses (`None`: `input/output`).
struct Geometry {
    x: Vec<usize>,
    y: Vec<usize>,
    scales: Vec<Option<f64>>,
    align_corners: bool,
}

impl Geometry {
    /// `n·c`: the number of independent planes.
    fn planes(&self) -> usize {
        self.x[0] * self.x[1]
    }
}

/// Every check PyTorch makes, before any work, and the output size of each axis.
fn geometry(op: &'static str, mode: UpsampleMode, x: &[usize], opts: &UpsampleOptions) -> Result<Geometry> {
    if mode != UpsampleMode::Linear && opts.align_corners.is_some() {
        return Err(invalid(
            op,
            "align_corners",
            opts.align_corners,
            "can only be set with the interpolating modes (linear, bilinear, trilinear); leave it None",
        ));
    }
    if !(3..=5).contains(&x.len()) {
        return Err(bad_shape(
            op,
            "x",
            x,
            "needs [n, c, spatial..] with 1, 2 or 3 spatial axes",
        ));
    }
    if x[1] == 0 || x[2..].contains(&0) {
        return Err(bad_shape(
            op,
            "x",
            x,
            "needs at least one channel and spatial sizes of at least 1 (only the batch may be empty)",
        ));
    }
    size::elements(op, "x", x)?;
    let rank = x.len() - 2;
    let input = &x[2..];
    let (output, scales) = match (&opts.size, &opts.scale_factor) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(invalid(
                op,
                "size and scale_factor",
                (&opts.size, &opts.scale_factor),
                "exactly one of them must be given",
            ));
        }
        (Some(size), None) => {
            if opts.recompute_scale_factor == Some(true) {
                return Err(invalid(
                    op,
                    "recompute_scale_factor",
                    true,
                    "is not meaningful with an explicit size",
                ));
            }
            let size = size.per_axis(op, "size", rank)?;
            if size.contains(&0) {
                return Err(invalid(op, "size", &size, "output sizes must be at least 1"));
            }
            (size, vec![None; rank])
        }
        (None, Some(factors)) => {
            let factors = factors.per_axis(op, "scale_factor", rank)?;
            let output = input
                .iter()
                .zip(&factors)
                .map(|(&i, &s)| scaled_size(op, i, s, &factors))
                .collect::<Result<Vec<usize>>>()?;
            let keep = opts.recompute_scale_factor != Some(true);
            (output, factors.into_iter().map(|s| keep.then_some(s)).collect())
        }
    };
    let y: Vec<usize> = x[..2].iter().chain(&output).copied().collect();
    size::elements(op, "output", &y)?;
    Ok(Geometry {
        x: x.to_vec(),
        y,
        scales,
        align_corners: opts.align_corners == Some(true),
    })
}

/// PyTorch's output size for a scale factor, `⌊i·s⌋`, refused when it is 0 or beyond any array.
fn scaled_size(op: &'static str, i: usize, s: f64, factors: &[f64]) -> Result<usize> {
    if !(s.is_finite() && s > 0.0) {
        return Err(invalid(op, "scale_factor", factors, "must be finite numbers above 0"));
    }
    // `i ≤ 2^40` (x exists), so `i as f64` is exact, and the product is PyTorch's double.
    let o = (i as f64 * s).floor();
    if o < 1.0 {
        return Err(invalid(
            op,
            "scale_factor",
            factors,
            format!("gives an output size of ⌊{i}·{s:?}⌋ = 0; sizes must be at least 1"),
        ));
    }
    if o > size::MAX_ELEMENTS as f64 {
        return Err(invalid(
            op,
            "scale_factor",
            factors,
            format!(
                "gives an output size of ⌊{i}·{s:?}⌋ = {o:e}, more than the {} elements (2^40) an array may hold",
                size::MAX_ELEMENTS
            ),
        ));
    }
    Ok(o as usize)
}

/// The shape [`interpolate`] gives `x` of this shape in this mode, without computing anything:
/// every check the op makes, with the same errors.
///
/// # Errors
/// As [`interpolate`].
///
/// # Example
/// ```
/// use adjoint::ops::upsample::{upsample_output_shape, UpsampleMode, UpsampleOptions};
/// let opts = UpsampleOptions::new().scale_factor(1.7);
/// assert_eq!(upsample_output_shape(&[8, 3, 5, 10], UpsampleMode::Nearest, &opts)?, vec![8, 3, 8, 17]);
/// assert!(upsample_output_shape(&[8, 3, 5, 10], UpsampleMode::Nearest, &opts.scale_factor(1e30)).is_err());
/// # Ok::<(), adjoint::Error>(())
/// ```
pub fn upsample_output_shape(x: &[usize], mode: UpsampleMode, opts: &UpsampleOptions) -> Result<Vec<usize>> {
    Ok(geometry(mode.op(), mode, x, opts)?.y)
}

/// PyTorch's `compute_scales_value`: how far the source coordinate moves per output index,
/// `1/scale_factor` when one is used, else `input/output`, in the element type.
fn source_scale<T: Float>(i: usize, o: usize, scale_factor: Option<f64>) -> T {
    match scale_factor {
        Some(s) => T::of(1.0 / s),
        None => T::of(i as f64) / T::of(o as f64),
    }
}

/// `max(v, 0)` as PyTorch writes it (`v < 0 ? 0 : v`).
fn at_least_zero<T: Float>(v: T) -> T {
    if v < T::zero() { T::zero() } else { v }
}

/// PyTorch's `floorf` of a coordinate (rounded to `f32` first, even for `f64` inputs), clamped
/// to the last cell. Coordinates are never negative.
fn floor_index(r: f64, i: usize) -> usize {
    ((r as f32).floor() as usize).min(i - 1)
}

// ------------------------------------------------------------------- a linear map and its adjoint

/// A linear map `U` fixed by its settings (an upsampling of given sizes), computed as `U·x` and
/// as `Uᵀ·y` by array kernels. Each of the two is an op whose gradient is the other:
/// `∂(U·x)/∂x = Uᵀ` and `∂(Uᵀ·y)/∂y = U`, as with conv ⇄ transposed conv.
trait FixedLinearMap<T: Float>: 'static {
    /// The op's name (`"upsample_nearest"`).
    fn op(&self) -> &'static str;
    /// Settings printed after the shapes (`", align_corners=true"`), or nothing.
    fn settings(&self) -> String;
    /// The full shapes of `x` and `y = U·x`.
    fn shapes(&self) -> (&[usize], &[usize]);
    /// `U·x`, for `x` of the first shape.
    fn apply(&self, x: &[T]) -> Result<Vec<T>>;
    /// `Uᵀ·y`, for `y` of the second shape.
    fn apply_adjoint(&self, y: &[T]) -> Result<Vec<T>>;
}

/// The node `y = U·x`.
struct Apply<M>(Rc<M>);

/// The node `grad_x = Uᵀ·grad_y`: the backward of [`Apply`].
struct ApplyAdjoint<M>(Rc<M>);

impl<T: Float, M: FixedLinearMap<T>> Op<T> for Apply<M> {
    fn name(&self) -> String {
        let (x, y) = self.0.shapes();
        format!("{}({:?} → {:?}{})", self.0.op(), &x[2..], &y[2..], self.0.settings())
    }

    /// `grad_x = Uᵀ·grad_y`, recorded as the adjoint node.
    fn backward<'t>(&self, inputs: &[Var<'t, T>], _y: Var<'t, T>, g: Var<'t, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        let x = inputs[0];
        Ok(vec![x.requires_grad().then(|| record_adjoint(g, &self.0)).transpose()?])
    }
}

impl<T: Float, M: FixedLinearMap<T>> Op<T> for ApplyAdjoint<M> {
    fn name(&self) -> String {
        let (x, y) = self.0.shapes();
        format!("{}_backward({:?} → {:?})", self.0.op(), &y[2..], &x[2..])
    }

    /// Linear in `grad_y` with matrix `Uᵀ`, so its gradient is `U·gg`: the forward again.
    fn backward<'t>(&self, inputs: &[Var<'t, T>], _y: Var<'t, T>, gg: Var<'t, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        let grad_y = inputs[0];
        Ok(vec![
            grad_y.requires_grad().then(|| record_apply(gg, &self.0)).transpose()?,
        ])
    }
}

fn record_apply<'t, T: Float, M: FixedLinearMap<T>>(x: Var<'t, T>, map: &Rc<M>) -> Result<Var<'t, T>> {
    let y = size::array(map.shapes().1, map.apply(contiguous(&x.value()))?)?;
    x.tape().record(y, &[x], Apply(Rc::clone(map)))
}

fn record_adjoint<'t, T: Float, M: FixedLinearMap<T>>(grad_y: Var<'t, T>, map: &Rc<M>) -> Result<Var<'t, T>> {
    let grad_x = size::array(map.shapes().0, map.apply_adjoint(contiguous(&grad_y.value()))?)?;
    grad_y.tape().record(grad_x, &[grad_y], ApplyAdjoint(Rc::clone(map)))
}

// ----------------------------------------------------------------------------------- nearest

/// Where each output cell of a nearest upsampling copies from, for every plane alike.
struct NearestPlan {
    op: &'static str,
    x: Vec<usize>,
    y: Vec<usize>,
    /// Source column of each output column (the last axis).
    cols: Vec<usize>,
    /// `Some(f)` when output column `d` copies input column `d / f`: each value repeated `f`
    /// times, the integer-factor case.
    repeat: Option<usize>,
    /// Offset in an input plane of the row each output row (all axes but the last) copies.
    rows: Vec<usize>,
}

impl NearestPlan {
    fn new<T: Float>(op: &'static str, exact: bool, g: &Geometry) -> Result<Self> {
        let (input, output) = (&g.x[2..], &g.y[2..]);
        let index = |axis: usize| -> Result<Vec<usize>> {
            let (i, o) = (input[axis], output[axis]);
            let scale: T = source_scale(i, o, g.scales[axis]);
            let src = (0..o).map(|d| {
                let d = T::of(d as f64);
                let r = if exact {
                    at_least_zero(scale * (d + T::of(0.5)) - T::of(0.5)).to_f64() + 0.5
                } else {
                    (scale * d).to_f64()
                };
                floor_index(r, i)
            });
            size::collect(op, "index", src)
        };
        let rank = input.len();
        let (i_last, o_last) = (input[rank - 1], output[rank - 1]);
        if g.planes() == 0 {
            // A batch of 0 has nothing to copy, and its spatial sizes may be up to 2^40.
            return Ok(NearestPlan {
                op,
                x: g.x.clone(),
                y: g.y.clone(),
                cols: Vec::new(),
                repeat: None,
                rows: Vec::new(),
            });
        }
        let cols = index(rank - 1)?;
        let f = o_last / i_last;
        let repeat = (o_last == f * i_last && cols.iter().enumerate().all(|(d, &s)| s == d / f)).then_some(f);
        // Row offsets, built from the innermost of the leading axes outwards, so that the
        // outermost axis varies slowest: `Σ_k src_k(d_k) · stride_k`.
        let mut rows = vec![0];
        let mut stride = i_last;
        for axis in (0..rank - 1).rev() {
            let src = index(axis)?;
            let mut next = size::reserve(op, "index", size::mul(op, "output", src.len(), rows.len())?)?;
            for &s in &src {
                next.extend(rows.iter().map(|&r| s * stride + r));
            }
            rows = next;
            stride *= input[axis];
        }
        Ok(NearestPlan {
            op,
            x: g.x.clone(),
            y: g.y.clone(),
            cols,
            repeat,
            rows,
        })
    }

    /// Elements per input plane and per output plane.
    fn plane_sizes(&self) -> (usize, usize) {
        (self.x[2..].iter().product(), self.y[2..].iter().product())
    }
}

/// The gather `y[p, d..] = x[p, src(d)..]`: `x: [planes, in..]` → `[planes, out..]`. An output
/// row copying the same input row as the one before is copied whole from it. The output grows
/// row by row, so each row is zeroed while it is in cache rather than in a pass of its own.
fn gather<T: Float>(plan: &NearestPlan, x: &[T]) -> Result<Vec<T>> {
    let (plane_in, _) = plan.plane_sizes();
    let (w_in, w_out) = (plan.x[plan.x.len() - 1], plan.cols.len());
    let mut y = size::reserve(plan.op, "output", size::elements(plan.op, "output", &plan.y)?)?;
    for x_plane in x.chunks_exact(plane_in) {
        for (r, &src) in plan.rows.iter().enumerate() {
            let at = y.len();
            if r > 0 && plan.rows[r - 1] == src {
                y.extend_from_within(at - w_out..at);
                continue;
            }
            let x_row = &x_plane[src..src + w_in];
            if plan.repeat == Some(1) {
                y.extend_from_slice(x_row);
                continue;
            }
            y.resize(at + w_out, T::zero());
            let y_row = &mut y[at..];
            match plan.repeat {
                Some(2) => {
                    for (pair, &v) in y_row.chunks_exact_mut(2).zip(x_row) {
                        pair[0] = v;
                        pair[1] = v;
                    }
                }
                Some(f) => {
                    for (run, &v) in y_row.chunks_exact_mut(f).zip(x_row) {
                        run.fill(v);
                    }
                }
                None => {
                    for (y, &s) in y_row.iter_mut().zip(&plan.cols) {
                        *y = x_row[s];
                    }
                }
            }
        }
    }
    Ok(y)
}

/// The adjoint of [`gather`], a sum-pool: `grad_x[p, i..] = Σ_{d: src(d) = i} grad_y[p, d..]`,
/// summed in output order (PyTorch's).
fn sum_pool<T: Float>(plan: &NearestPlan, grad_y: &[T]) -> Result<Vec<T>> {
    let (plane_in, plane_out) = plan.plane_sizes();
    let (w_in, w_out) = (plan.x[plan.x.len() - 1], plan.cols.len());
    let mut grad_x = size::zeroed(plan.op, "gradient", size::elements(plan.op, "gradient", &plan.x)?)?;
    for (gx_plane, gy_plane) in grad_x.chunks_exact_mut(plane_in).zip(grad_y.chunks_exact(plane_out)) {
        for (r, &src) in plan.rows.iter().enumerate() {
            let (gx_row, gy_row) = (&mut gx_plane[src..src + w_in], &gy_plane[r * w_out..(r + 1) * w_out]);
            match plan.repeat {
                Some(f) => {
                    for (g, run) in gx_row.iter_mut().zip(gy_row.chunks_exact(f)) {
                        for &v in run {
                            *g += v;
                        }
                    }
                }
                None => {
                    for (&v, &s) in gy_row.iter().zip(&plan.cols) {
                        gx_row[s] += v;
                    }
                }
            }
        }
    }
    Ok(grad_x)
}

/// Nearest upsampling copies: its adjoint sums the gradients of all the copies of a cell, a
/// sum-pool.
impl<T: Float> FixedLinearMap<T> for NearestPlan {
    fn op(&self) -> &'static str {
        self.op
    }
    fn settings(&self) -> String {
        String::new()
    }
    fn shapes(&self) -> (&[usize], &[usize]) {
        (&self.x, &self.y)
    }
    fn apply(&self, x: &[T]) -> Result<Vec<T>> {
        gather(self, x)
    }
    fn apply_adjoint(&self, grad_y: &[T]) -> Result<Vec<T>> {
        sum_pool(self, grad_y)
    }
}

// ------------------------------------------------------------------------------------ linear

/// The two source cells of one output cell along one axis and their weights.
#[derive(Clone, Copy)]
struct Taps<T> {
    i0: usize,
    i1: usize,
    w0: T,
    w1: T,
}

/// PyTorch's `compute_source_index_and_lambda` for every output index of one axis.
fn linear_taps<T: Float>(
    op: &'static str,
    i: usize,
    o: usize,
    align_corners: bool,
    scale_factor: Option<f64>,
) -> Result<Vec<Taps<T>>> {
    let scale: T = match (align_corners, o > 1) {
        (true, true) => T::of((i - 1) as f64) / T::of((o - 1) as f64),
        (true, false) => T::zero(),
        (false, _) => source_scale(i, o, scale_factor),
    };
    let taps = (0..o).map(|d| {
        if i == o {
            // An axis that keeps its size is copied, whatever the scale factor says.
            return Taps {
                i0: d,
                i1: d,
                w0: T::one(),
                w1: T::zero(),
            };
        }
        let d_t = T::of(d as f64);
        let r = if align_corners {
            scale * d_t
        } else {
            at_least_zero(scale * (d_t + T::of(0.5)) - T::of(0.5))
        };
        let i0 = floor_index(r.to_f64(), i);
        let w1 = (r - T::of(i0 as f64)).max(T::zero()).min(T::one());
        Taps {
            i0,
            i1: if i0 < i - 1 { i0 + 1 } else { i0 },
            w0: T::one() - w1,
            w1,
        }
    });
    size::collect(op, "index", taps)
}

/// The taps of every axis of a linear upsampling.
struct LinearPlan<T> {
    x: Vec<usize>,
    y: Vec<usize>,
    align_corners: bool,
    /// Per spatial axis, outermost first.
    axes: Vec<Vec<Taps<T>>>,
}

impl<T: Float> LinearPlan<T> {
    fn new(op: &'static str, g: &Geometry) -> Result<Self> {
        let (input, output) = (&g.x[2..], &g.y[2..]);
        let axes = if g.planes() == 0 {
            // Nothing to interpolate; spatial sizes may be up to 2^40.
            Vec::new()
        } else {
            (0..input.len())
                .map(|a| linear_taps(op, input[a], output[a], g.align_corners, g.scales[a]))
                .collect::<Result<_>>()?
        };
        Ok(LinearPlan {
            x: g.x.clone(),
            y: g.y.clone(),
            align_corners: g.align_corners,
            axes,
        })
    }

    /// `(outer, inner)`: the element counts before and after `axis` (planes included) of an
    /// array of spatial sizes `sizes`, as a pass along `axis` sees it.
    fn around(&self, axis: usize, sizes: &[usize]) -> Result<(usize, usize)> {
        let dims: Vec<usize> = self.x[..2]
            .iter()
            .chain(&sizes[..axis])
            .chain(&sizes[axis + 1..])
            .copied()
            .collect();
        size::elements("upsample_linear", "intermediate", &dims)?;
        let split = 2 + axis;
        Ok((dims[..split].iter().product(), dims[split..].iter().product()))
    }
}

/// One axis of the interpolation, `x: [outer, n_in, inner]` → `[outer, taps.len(), inner]`:
/// `y[a, d, b] = x[a, i₀(d), b]·w₀(d) + x[a, i₁(d), b]·w₁(d)`, in PyTorch's order of operations.
fn lerp_axis<T: Float>(x: &[T], (outer, n_in, inner): (usize, usize, usize), taps: &[Taps<T>]) -> Result<Vec<T>> {
    let n_out = taps.len();
    let len = size::elements("upsample_linear", "intermediate", &[outer, n_out, inner])?;
    // Grown block by block, as in `gather`.
    let mut y = size::reserve("upsample_linear", "intermediate", len)?;
    for x_block in x.chunks_exact(n_in * inner) {
        let at = y.len();
        if inner == 1 {
            y.extend(taps.iter().map(|t| x_block[t.i0] * t.w0 + x_block[t.i1] * t.w1));
            continue;
        }
        y.resize(at + n_out * inner, T::zero());
        for (y_row, t) in y[at..].chunks_exact_mut(inner).zip(taps) {
            let (a, b) = (&x_block[t.i0 * inner..][..inner], &x_block[t.i1 * inner..][..inner]);
            for ((y, &a), &b) in y_row.iter_mut().zip(a).zip(b) {
                *y = a * t.w0 + b * t.w1;
            }
        }
    }
    Ok(y)
}

/// The adjoint of [`lerp_axis`], a scatter: `grad_x[a, i₀(d), b] += w₀(d)·grad_y[a, d, b]`,
/// and likewise for `i₁`, both taps always (a NaN gradient reaches a zero-weight tap too, as in
/// PyTorch).
fn scatter_axis<T: Float>(
    grad_y: &[T],
    (outer, n_in, inner): (usize, usize, usize),
    taps: &[Taps<T>],
) -> Result<Vec<T>> {
    let n_out = taps.len();
    let len = size::elements("upsample_linear", "intermediate", &[outer, n_in, inner])?;
    let mut grad_x = size::zeroed("upsample_linear", "intermediate", len)?;
    for (gx_block, gy_block) in grad_x
        .chunks_exact_mut(n_in * inner)
        .zip(grad_y.chunks_exact(n_out * inner))
    {
        if inner == 1 {
            for (&g, t) in gy_block.iter().zip(taps) {
                gx_block[t.i0] += t.w0 * g;
                gx_block[t.i1] += t.w1 * g;
            }
            continue;
        }
        for (gy_row, t) in gy_block.chunks_exact(inner).zip(taps) {
            for (i, w) in [(t.i0, t.w0), (t.i1, t.w1)] {
                for (gx, &g) in gx_block[i * inner..][..inner].iter_mut().zip(gy_row) {
                    *gx += w * g;
                }
            }
        }
    }
    Ok(grad_x)
}

/// `y = U·x`: the axes one at a time, innermost first. PyTorch nests its sum the same way
/// (`Σ_{i_h} w_h·(Σ_{i_w} w_w·x)`), so the separable passes form the same terms: the same NaNs,
/// and values within a few units in the last place (its compiled kernels may fuse a
/// multiply-add).
fn interpolate_linear<T: Float>(plan: &LinearPlan<T>, x: &[T]) -> Result<Vec<T>> {
    let (input, output) = (&plan.x[2..], &plan.y[2..]);
    if plan.axes.is_empty() {
        return Ok(Vec::new()); // an empty batch
    }
    let mut sizes = input.to_vec();
    let mut y = lerp_axis_at(plan, x, &mut sizes, input.len() - 1, output)?;
    for axis in (0..input.len() - 1).rev() {
        y = lerp_axis_at(plan, &y, &mut sizes, axis, output)?;
    }
    Ok(y)
}

/// [`lerp_axis`] along `axis` of an array whose spatial sizes are `sizes`, updated to the
/// output's.
fn lerp_axis_at<T: Float>(
    plan: &LinearPlan<T>,
    x: &[T],
    sizes: &mut [usize],
    axis: usize,
    output: &[usize],
) -> Result<Vec<T>> {
    let (outer, inner) = plan.around(axis, sizes)?;
    let y = lerp_axis(x, (outer, sizes[axis], inner), &plan.axes[axis])?;
    sizes[axis] = output[axis];
    Ok(y)
}

/// `grad_x = Uᵀ·grad_y = U_wᵀ·…·U_dᵀ·grad_y`: the adjoint passes in reverse order, outermost
/// axis first.
fn scatter_linear<T: Float>(plan: &LinearPlan<T>, grad_y: &[T]) -> Result<Vec<T>> {
    let (input, output) = (&plan.x[2..], &plan.y[2..]);
    if plan.axes.is_empty() {
        return Ok(Vec::new());
    }
    let mut sizes = output.to_vec();
    let mut grad: Option<Vec<T>> = None;
    for axis in 0..input.len() {
        let (outer, inner) = plan.around(axis, &sizes)?;
        let from = grad.as_deref().unwrap_or(grad_y);
        grad = Some(scatter_axis(from, (outer, input[axis], inner), &plan.axes[axis])?);
        sizes[axis] = input[axis];
    }
    Ok(grad.unwrap_or_default())
}

/// Linear upsampling weighs two cells per axis: its adjoint scatters each output's gradient
/// onto its `2^rank` source cells with the weights that made it.
impl<T: Float> FixedLinearMap<T> for LinearPlan<T> {
    fn op(&self) -> &'static str {
        "upsample_linear"
    }
    fn settings(&self) -> String {
        format!(", align_corners={}", self.align_corners)
    }
    fn shapes(&self) -> (&[usize], &[usize]) {
        (&self.x, &self.y)
    }
    fn apply(&self, x: &[T]) -> Result<Vec<T>> {
        interpolate_linear(self, x)
    }
    fn apply_adjoint(&self, grad_y: &[T]) -> Result<Vec<T>> {
        scatter_linear(self, grad_y)
    }
}

// --------------------------------------------------------------------------------- public ops

/// PyTorch's `F.interpolate(x, size, scale_factor, mode, align_corners, recompute_scale_factor)`
/// for the modes [`upsample_nearest`], [`upsample_nearest_exact`] and [`upsample_linear`].
///
/// Shapes: `x: [n, c, i..]` with 1 to 3 spatial axes → `y: [n, c, o..]`, with `o = size` or
/// `o = ⌊i·scale_factor⌋`. Shrinking (`o < i`) is allowed too.
///
/// # Errors
/// [`crate::Error::InvalidArgument`], before any work, naming the op and the setting, as
/// PyTorch refuses them: both or neither of `size` and `scale_factor`; a per-axis list of the
/// wrong length; a size of 0; a scale factor not finite and above 0, or one giving an output
/// size of 0 or beyond 2^40 (`1e30` is an error, not an allocation); `align_corners` with a
/// nearest mode; `recompute_scale_factor = true` with `size`; an output of more than 2^40
/// elements. [`crate::Error::BadShape`] for an `x` without 1 to 3 spatial axes, without
/// channels or with an empty spatial axis (only the batch may be 0).
///
/// # Example
/// ```
/// use adjoint::ops::upsample::{interpolate, UpsampleMode, UpsampleOptions};
/// use adjoint::Tape;
/// use ndarray::ArrayD;
///
/// let tape = Tape::<f64>::new();
/// let x = tape.param(ArrayD::from_shape_vec(vec![1, 1, 2], vec![1.0, 3.0]).unwrap());
/// let opts = UpsampleOptions::new().size(4).align_corners(true);
/// let y = interpolate(x, UpsampleMode::Linear, &opts)?;
/// let expected = [1.0, 1.0 + 2.0 / 3.0, 1.0 + 4.0 / 3.0, 3.0];
/// assert!(y.value().iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-15));
/// # Ok::<(), adjoint::Error>(())
/// ```
pub fn interpolate<'t, T: Float>(x: Var<'t, T>, mode: UpsampleMode, opts: &UpsampleOptions) -> Result<Var<'t, T>> {
    let op = mode.op();
    let g = geometry(op, mode, &x.shape(), opts)?;
    match mode {
        UpsampleMode::Nearest => record_apply(x, &Rc::new(NearestPlan::new::<T>(op, false, &g)?)),
        UpsampleMode::NearestExact => record_apply(x, &Rc::new(NearestPlan::new::<T>(op, true, &g)?)),
        UpsampleMode::Linear => record_apply(x, &Rc::new(LinearPlan::new(op, &g)?)),
    }
}

/// Nearest-neighbour upsampling, PyTorch's `mode='nearest'`: each output cell copies one input
/// cell.
///
/// ```text
/// y[n, c, d..] = x[n, c, src(d)..],   src(d) = min(⌊d·scale⌋, i − 1) per axis,
/// scale = 1/scale_factor (if given and not recomputed), else i/o
/// ```
///
/// Its backward is a sum-pool: each input cell receives the sum of the gradients of its copies
/// (recorded as an op whose backward is this upsampling again). With an integer factor `s` it is
/// the transposed conv with stride `s` and an `s×…×s` kernel of ones per channel
/// (`groups = c`); `tests/upsample.rs` checks this against
/// [`conv_transpose`](crate::ops::conv::conv_transpose).
///
/// Shapes: `x: [n, c, i..]` (1 to 3 spatial axes) → `y: [n, c, o..]`.
///
/// # Errors
/// As [`interpolate`]; `align_corners` must be `None`.
///
/// # Example
/// ```
/// use adjoint::ops::upsample::{upsample_nearest, UpsampleOptions};
/// use adjoint::Tape;
/// use ndarray::ArrayD;
///
/// let tape = Tape::<f64>::new();
/// let x = tape.param(ArrayD::from_shape_vec(vec![1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap());
/// let y = upsample_nearest(x, &UpsampleOptions::new().scale_factor(2.0))?;
/// assert_eq!(y.shape(), vec![1, 1, 4, 4]);
/// assert_eq!(y.value().as_slice().unwrap()[..8], [1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0]);
/// let grads = tape.backward(y.sum()?)?; // the sum-pool: 4 copies of each cell
/// assert_eq!(grads[x].as_slice().unwrap(), &[4.0; 4]);
/// # Ok::<(), adjoint::Error>(())
/// ```
pub fn upsample_nearest<'t, T: Float>(x: Var<'t, T>, opts: &UpsampleOptions) -> Result<Var<'t, T>> {
    interpolate(x, UpsampleMode::Nearest, opts)
}

/// Nearest-neighbour upsampling that picks the cell whose centre is nearest, PyTorch's
/// `mode='nearest-exact'` (as Pillow and scikit-image): `src(d) = min(⌊(d + ½)·scale⌋, i − 1)`
/// per axis, `scale` as in [`upsample_nearest`]. Its backward is a sum-pool likewise.
///
/// Shapes: `x: [n, c, i..]` (1 to 3 spatial axes) → `y: [n, c, o..]`.
///
/// # Errors
/// As [`interpolate`]; `align_corners` must be `None`.
///
/// # Example
/// ```
/// use adjoint::ops::upsample::{upsample_nearest, upsample_nearest_exact, UpsampleOptions};
/// use adjoint::Tape;
/// use ndarray::ArrayD;
///
/// let tape = Tape::<f64>::new();
/// let x = tape.constant(ArrayD::from_shape_vec(vec![1, 1, 4], vec![0.0, 1.0, 2.0, 3.0]).unwrap());
/// let opts = UpsampleOptions::new().size(3);
/// assert_eq!(upsample_nearest(x, &opts)?.value().as_slice().unwrap(), &[0.0, 1.0, 2.0]);
/// assert_eq!(upsample_nearest_exact(x, &opts)?.value().as_slice().unwrap(), &[0.0, 2.0, 3.0]);
/// # Ok::<(), adjoint::Error>(())
/// ```
pub fn upsample_nearest_exact<'t, T: Float>(x: Var<'t, T>, opts: &UpsampleOptions) -> Result<Var<'t, T>> {
    interpolate(x, UpsampleMode::NearestExact, opts)
}

/// Linear interpolation along every spatial axis, PyTorch's `mode='linear'` (1-D),
/// `'bilinear'` (2-D) and `'trilinear'` (3-D).
///
/// ```text
/// per axis:  y[d] = w₀(d)·x[i₀(d)] + w₁(d)·x[i₁(d)],   i₀ = min(⌊r⌋, i − 1),  i₁ = min(i₀ + 1, i − 1),
///            w₁ = clamp(r − i₀, 0, 1),  w₀ = 1 − w₁,
/// r = max((d + ½)·scale − ½, 0)             (align_corners = false; scale as in upsample_nearest)
/// r = d·(i − 1)/(o − 1), or 0 when o = 1    (align_corners = true)
/// ```
///
/// Its backward scatters each output's gradient onto its `2^rank` source cells with the same
/// weights (recorded as an op whose backward is this interpolation again).
///
/// Shapes: `x: [n, c, i..]` (1 to 3 spatial axes) → `y: [n, c, o..]`.
///
/// # Errors
/// As [`interpolate`].
///
/// # Example
/// ```
/// use adjoint::ops::upsample::{upsample_linear, UpsampleOptions};
/// use adjoint::Tape;
/// use ndarray::ArrayD;
///
/// let tape = Tape::<f64>::new();
/// let x = tape.param(ArrayD::from_shape_vec(vec![1, 1, 2], vec![0.0, 4.0]).unwrap());
/// let y = upsample_linear(x, &UpsampleOptions::new().scale_factor(2.0))?;
/// // r = (d + ½)/2 − ½ = −¼ (clamped to 0), ¼, ¾, 1¼ (i₀ = i₁ = 1)
/// assert_eq!(y.value().as_slice().unwrap(), &[0.0, 1.0, 3.0, 4.0]);
/// let grads = tape.backward(y.sum()?)?; // weights into cell 0: 1 + ¾ + ¼
/// assert_eq!(grads[x].as_slice().unwrap(), &[2.0, 2.0]);
/// # Ok::<(), adjoint::Error>(())
/// ```
pub fn upsample_linear<'t, T: Float>(x: Var<'t, T>, opts: &UpsampleOptions) -> Result<Var<'t, T>> {
    interpolate(x, UpsampleMode::Linear, opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(x: &[usize], opts: &UpsampleOptions) -> Result<Vec<usize>> {
        upsample_output_shape(x, UpsampleMode::Nearest, opts)
    }

    #[test]
    fn output_sizes_follow_pytorch() {
        let o = UpsampleOptions::new();
        assert_eq!(shape(&[2, 3, 5], &o.clone().scale_factor(1.7)).unwrap(), [2, 3, 8]);
        assert_eq!(
            shape(&[2, 3, 5, 4], &o.clone().scale_factor([2.5, 0.5])).unwrap(),
            [2, 3, 12, 2]
        );
        assert_eq!(shape(&[1, 1, 3, 4, 5], &o.clone().size(2)).unwrap(), [1, 1, 2, 2, 2]);
        assert_eq!(shape(&[0, 1, 3], &o.clone().size(1 << 40)).unwrap(), [0, 1, 1 << 40]);
        // ⌊3·0.34⌋ = 1, ⌊3·0.33⌋ = 0
        assert_eq!(shape(&[1, 1, 3], &o.clone().scale_factor(0.34)).unwrap(), [1, 1, 1]);
        assert!(shape(&[1, 1, 3], &o.clone().scale_factor(0.33)).is_err());
        assert!(shape(&[1, 1, 3], &o.clone().scale_factor(1e30)).is_err());
        assert!(shape(&[1, 1, 3], &o.clone().scale_factor(f64::MIN_POSITIVE)).is_err());
        assert!(shape(&[1, 1 << 20, 1], &o.clone().size([1 << 21])).is_err()); // 2^41 elements
    }

    #[test]
    fn linear_taps_match_the_formulas() {
        // 2 → 4, align_corners = false: r = max((d + ½)/2 − ½, 0) = 0, ¼, ¾, 1¼
        let t = linear_taps::<f64>("t", 2, 4, false, None).unwrap();
        let got: Vec<(usize, usize, f64)> = t.iter().map(|t| (t.i0, t.i1, t.w1)).collect();
        assert_eq!(got, [(0, 1, 0.0), (0, 1, 0.25), (0, 1, 0.75), (1, 1, 0.25)]);
        // 3 → 5, align_corners = true: r = d/2
        let t = linear_taps::<f64>("t", 3, 5, true, Some(1.7)).unwrap();
        let got: Vec<(usize, usize, f64)> = t.iter().map(|t| (t.i0, t.i1, t.w1)).collect();
        assert_eq!(got, [(0, 1, 0.0), (0, 1, 0.5), (1, 2, 0.0), (1, 2, 0.5), (2, 2, 0.0)]);
        // one output with align_corners: r = 0
        let t = linear_taps::<f64>("t", 3, 1, true, None).unwrap();
        assert_eq!((t[0].i0, t[0].i1, t[0].w1), (0, 1, 0.0));
    }
}
