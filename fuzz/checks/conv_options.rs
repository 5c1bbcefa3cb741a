//! What the conv ops must do with any settings, checked by the `conv_options` fuzz target.
//!
//! A [`Case`] draws `conv1d`, `conv2d`, `conv_transpose1d` or `conv_transpose2d` with tiny
//! tensors (every size below 7, so at most a few hundred elements) but any settings: stride,
//! padding (symmetric, asymmetric, PyTorch's `same`/`valid`, TensorFlow's `SAME`/`VALID`),
//! dilation, groups, output_padding and output_size each take a small value (0..6) about half
//! the time and any `u64` (or an edge such as `usize::MAX` or 2^40) otherwise.
//!
//! PyTorch's rules are written again here, in `i128` so that nothing wraps ([`Case::expected`]).
//! The op must then:
//! - never panic, and finish quickly (libFuzzer's `-timeout` catches a hang);
//! - refuse what the rules refuse, including an output size no `usize` holds;
//! - accept what they allow whenever every setting is below 2^32 (above that, refusing a
//!   setting whose arithmetic overflows on the way is allowed), with the shape they give;
//! - give the values of the dense-matrix view: per image, `vec(y) = A·vec(x) + b`, with `A`
//!   from [`views::conv_matrix`] / [`views::conv_transpose_matrix`] for the same settings.
//!
//! Cases whose correct output would have more than 2^20 elements are skipped (the op would
//! rightly try to allocate it), and so are those whose nonzero sizes multiply past 2^40, which
//! adjoint refuses by design; an empty output (batch or channels 0) of any smaller spatial size
//! is run, and must come back at once.

use std::fmt;

use adjoint::Tape;
use adjoint::ops::conv::{
    ConvOptions, ConvTransposeOptions, conv_transpose1d, conv_transpose2d, conv1d, conv2d, views,
};
use arbitrary::{Arbitrary, Unstructured};
use ndarray::{Array1, ArrayD, Axis, IxDyn};

/// Largest output (in elements) the op is run for.
const MAX_OUTPUT: u128 = 1 << 20;
/// adjoint's bound on the product of an output's nonzero sizes (`ops::size::MAX_ELEMENTS`).
const MAX_EXTENT_ELEMENTS: u128 = 1 << 40;
/// Largest dense matrix (in elements) the values are checked against.
const MAX_MATRIX: usize = 1 << 18;

/// Values that break size arithmetic, drawn now and then among the arbitrary ones.
const EDGES: [usize; 10] = [
    usize::MAX,
    usize::MAX - 1,
    usize::MAX / 2,
    usize::MAX / 2 + 1,
    1 << 40,
    (1 << 40) + 1,
    1 << 32,
    u32::MAX as usize,
    1 << 63,
    (1 << 62) + 3,
];

/// A setting: a small value (0..6) half the time, any `u64` or an edge value otherwise.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Setting(pub usize);

impl<'a> Arbitrary<'a> for Setting {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let tag = u8::arbitrary(u)?;
        Ok(Setting(match tag {
            0..=127 => usize::from(tag % 6),
            128..=223 => u64::arbitrary(u)? as usize,
            _ => EDGES[usize::from(tag) % EDGES.len()],
        }))
    }
}

impl fmt::Debug for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A tensor size, 0..=6: tensors stay tiny whatever the settings.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Dim(pub usize);

impl<'a> Arbitrary<'a> for Dim {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Dim(usize::from(u8::arbitrary(u)? % 7)))
    }
}

impl fmt::Debug for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Groups: 1 half the time, any setting otherwise.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Groups(pub usize);

impl<'a> Arbitrary<'a> for Groups {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Groups(if bool::arbitrary(u)? {
            1
        } else {
            Setting::arbitrary(u)?.0
        }))
    }
}

impl fmt::Debug for Groups {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A per-axis setting: mostly one value or one per axis, sometimes a wrong count.
#[derive(Arbitrary, Clone, Debug)]
pub struct PerAxisCase {
    len: u8,
    values: [Setting; 3],
}

/// How many values a per-axis list has: 1, `rank` or (rarely) another count.
fn list_len(tag: u8, rank: usize) -> usize {
    match tag % 8 {
        0..=3 => 1,
        4..=6 => rank,
        _ if tag & 8 == 0 => 0,
        _ => 3,
    }
}

impl PerAxisCase {
    fn list(&self, rank: usize) -> Vec<usize> {
        self.values[..list_len(self.len, rank)].iter().map(|s| s.0).collect()
    }
}

/// `(before, after)` pairs, as many as [`PerAxisCase`] has values.
#[derive(Arbitrary, Clone, Debug)]
pub struct PairsCase {
    len: u8,
    values: [(Setting, Setting); 3],
}

impl PairsCase {
    fn list(&self, rank: usize) -> Vec<(usize, usize)> {
        self.values[..list_len(self.len, rank)]
            .iter()
            .map(|(b, a)| (b.0, a.0))
            .collect()
    }
}

/// The padding mode; the last two are `same`/`valid` for a conv and TensorFlow's
/// `SAME`/`VALID` for a transposed conv.
#[derive(Arbitrary, Clone, Debug)]
pub enum PadCase {
    /// Symmetric padding.
    Symmetric(PerAxisCase),
    /// `(before, after)` padding.
    Asymmetric(PairsCase),
    /// `same` / TF `SAME`.
    Same,
    /// `valid` / TF `VALID`.
    Valid,
}

/// One requested output size: near the smallest allowed one (so that it is often valid),
/// or any setting.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum SizeCase {
    /// The smallest size the rules allow on this axis, plus this offset.
    Near(i8),
    /// Any value.
    Raw(Setting),
}

/// `output_size` of a transposed conv: spatial sizes, the whole shape, or a wrong count.
#[derive(Arbitrary, Clone, Debug)]
pub struct OutputSizeCase {
    len: u8,
    values: [SizeCase; 4],
}

/// How `x` is laid out.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `[n, c, spatial..]`.
    Batched,
    /// `[c, spatial..]`.
    Unbatched,
    /// One axis too many: always refused.
    WrongRank,
}

/// The weight's two channel axes: as the op expects them for `c_in`, `c_out` and `groups`
/// (three chances in four), or drawn (mostly refused).
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum WeightCase {
    /// As expected.
    Expected,
    /// As expected.
    Expected2,
    /// As expected.
    Expected3,
    /// Drawn.
    Drawn(Dim, Dim),
}

/// One call of a conv op.
#[derive(Arbitrary, Clone, Debug)]
pub struct Case {
    /// `conv_transpose{1,2}d` rather than `conv{1,2}d`.
    pub transpose: bool,
    /// Two spatial axes rather than one.
    pub rank2: bool,
    /// The layout of `x`.
    pub layout: Layout,
    /// Batch size.
    pub batch: Dim,
    /// Input channels.
    pub c_in: Dim,
    /// Output channels (a transposed conv gets `c_out/g·g`).
    pub c_out: Dim,
    /// Kernel size per axis.
    pub kernel: [Dim; 2],
    /// Input size per axis.
    pub sizes: [Dim; 2],
    /// The weight's channel axes.
    pub weight: WeightCase,
    /// Stride.
    pub stride: PerAxisCase,
    /// Dilation.
    pub dilation: PerAxisCase,
    /// Padding.
    pub padding: PadCase,
    /// Output padding (transposed conv only).
    pub output_padding: PerAxisCase,
    /// Requested output size (transposed conv only).
    pub output_size: Option<OutputSizeCase>,
    /// Groups.
    pub groups: Groups,
    /// Whether to pass a bias.
    pub bias: bool,
    /// Seeds the tensor values.
    pub seed: u8,
}

/// One value per axis if `v` has 1 or `rank` values.
fn broadcast<T: Copy>(v: &[T], rank: usize) -> Option<Vec<T>> {
    match v.len() {
        1 => Some(vec![v[0]; rank]),
        n if n == rank => Some(v.to_vec()),
        _ => None,
    }
}

fn effective_kernel(k: usize, d: usize) -> i128 {
    d as i128 * (k as i128 - 1) + 1
}

impl Case {
    fn rank(&self) -> usize {
        if self.rank2 { 2 } else { 1 }
    }

    fn unbatched(&self) -> bool {
        self.layout == Layout::Unbatched
    }

    /// Axes before the spatial ones: `[n, c]`, or `[c]` unbatched.
    fn non_spatial(&self) -> usize {
        if self.unbatched() { 1 } else { 2 }
    }

    fn kernel(&self) -> Vec<usize> {
        self.kernel[..self.rank()].iter().map(|d| d.0).collect()
    }

    fn sizes(&self) -> Vec<usize> {
        self.sizes[..self.rank()].iter().map(|d| d.0).collect()
    }

    /// `[n, c_in, i..]`, `[c_in, i..]` or `[1, n, c_in, i..]`.
    pub fn x_shape(&self) -> Vec<usize> {
        let lead = match self.layout {
            Layout::Batched => vec![self.batch.0, self.c_in.0],
            Layout::Unbatched => vec![self.c_in.0],
            Layout::WrongRank => vec![1, self.batch.0, self.c_in.0],
        };
        lead.into_iter().chain(self.sizes()).collect()
    }

    /// Conv `[c_out, c_in/g, k..]`, transposed conv `[c_in, c_out/g, k..]`, or drawn.
    pub fn w_shape(&self) -> Vec<usize> {
        let g = self.groups.0.max(1);
        let channels = match (self.weight, self.transpose) {
            (WeightCase::Drawn(a, b), _) => [a.0, b.0],
            (_, false) => [self.c_out.0, self.c_in.0 / g],
            (_, true) => [self.c_in.0, self.c_out.0 / g],
        };
        channels.into_iter().chain(self.kernel()).collect()
    }

    /// Every usize setting passed to the op.
    fn settings(&self) -> Vec<usize> {
        let r = self.rank();
        let mut all = self.stride.list(r);
        all.extend(self.dilation.list(r));
        all.push(self.groups.0);
        match &self.padding {
            PadCase::Symmetric(p) => all.extend(p.list(r)),
            PadCase::Asymmetric(p) => all.extend(p.list(r).into_iter().flat_map(|(b, a)| [b, a])),
            PadCase::Same | PadCase::Valid => {}
        }
        if self.transpose {
            all.extend(self.output_padding.list(r));
            all.extend(self.requested_sizes().into_iter().flatten());
        }
        all
    }

    /// Whether every setting is below 2^32, so that no size arithmetic can overflow a `u64`.
    pub fn plain(&self) -> bool {
        self.settings().iter().all(|&v| v <= u32::MAX as usize)
    }

    pub fn conv_options(&self) -> ConvOptions {
        let r = self.rank();
        let options = ConvOptions::new()
            .stride(self.stride.list(r))
            .dilation(self.dilation.list(r))
            .groups(self.groups.0);
        match &self.padding {
            PadCase::Symmetric(p) => options.padding(p.list(r)),
            PadCase::Asymmetric(p) => options.padding_asymmetric(&p.list(r)),
            PadCase::Same => options.same(),
            PadCase::Valid => options.valid(),
        }
    }

    pub fn conv_t_options(&self) -> ConvTransposeOptions {
        let r = self.rank();
        let mut options = ConvTransposeOptions::new()
            .stride(self.stride.list(r))
            .dilation(self.dilation.list(r))
            .groups(self.groups.0)
            .output_padding(self.output_padding.list(r));
        options = match &self.padding {
            PadCase::Symmetric(p) => options.padding(p.list(r)),
            PadCase::Asymmetric(p) => options.padding_asymmetric(&p.list(r)),
            PadCase::Same => options.tf_same(),
            PadCase::Valid => options.tf_valid(),
        };
        options.output_size = self.requested_sizes();
        options
    }

    /// The explicit `(before, after)` padding per axis, if the mode has one and its count fits.
    fn explicit_pads(&self) -> Option<Vec<(usize, usize)>> {
        let r = self.rank();
        match &self.padding {
            PadCase::Symmetric(p) => Some(broadcast(&p.list(r), r)?.into_iter().map(|p| (p, p)).collect()),
            PadCase::Asymmetric(p) => broadcast(&p.list(r), r),
            PadCase::Same | PadCase::Valid => None,
        }
    }

    /// The smallest transposed-conv output size the rules allow on axis `a` (with stand-ins
    /// for settings that will be refused anyway), for [`SizeCase::Near`].
    fn smallest_size(&self, a: usize) -> i128 {
        let r = self.rank();
        let a = a.min(r - 1);
        let pick = |v: &[usize]| broadcast(v, r).map_or(1, |v| v[a].max(1));
        let (s, d) = (pick(&self.stride.list(r)) as i128, pick(&self.dilation.list(r)));
        let (i, k) = (self.sizes()[a] as i128, self.kernel()[a].max(1));
        let k_e = effective_kernel(k, d);
        match self.padding {
            PadCase::Same => (i - 1) * s + 1,
            PadCase::Valid => (i - 1) * s + k_e,
            _ => {
                let (pb, pa) = self.explicit_pads().map_or((0, 0), |p| p[a]);
                (i - 1) * s + k_e - pb as i128 - pa as i128
            }
        }
    }

    /// The `output_size` passed, if any: `rank` values, the whole shape, or a wrong count.
    pub fn requested_sizes(&self) -> Option<Vec<usize>> {
        let case = self.output_size.as_ref()?;
        let r = self.rank();
        let len = match case.len % 8 {
            0..=3 => r,
            4 => r + self.non_spatial(),
            5 => r + 1,
            6 => r + 2,
            _ => 0,
        }
        .min(case.values.len());
        let lead = if len == r + self.non_spatial() {
            self.non_spatial()
        } else {
            0
        };
        Some(
            case.values[..len]
                .iter()
                .enumerate()
                .map(|(j, size)| match *size {
                    SizeCase::Raw(v) => v.0,
                    SizeCase::Near(off) => {
                        let n = self.smallest_size(j.saturating_sub(lead)) + i128::from(off);
                        n.clamp(0, usize::MAX as i128) as usize
                    }
                })
                .collect(),
        )
    }

    /// PyTorch's output shape for this call (TensorFlow's in the TF modes), or `None` if the
    /// rules refuse it. In `i128`/`u128`, so huge settings cannot wrap.
    pub fn expected(&self) -> Option<Vec<u128>> {
        let r = self.rank();
        if self.layout == Layout::WrongRank {
            return None;
        }
        let s = broadcast(&self.stride.list(r), r)?;
        let d = broadcast(&self.dilation.list(r), r)?;
        let g = self.groups.0;
        let (kernel, sizes, w) = (self.kernel(), self.sizes(), self.w_shape());
        if s.contains(&0) || d.contains(&0) || g == 0 || kernel.contains(&0) || sizes.contains(&0) {
            return None;
        }
        let c_in = self.c_in.0;
        if !c_in.is_multiple_of(g) {
            return None;
        }
        let (c_out, spatial) = if self.transpose {
            if w[0] != c_in {
                return None;
            }
            (w[1] as u128 * g as u128, self.conv_t_sizes(&s, &d)?)
        } else {
            if !w[0].is_multiple_of(g) || w[1] as u128 * g as u128 != c_in as u128 {
                return None;
            }
            (w[0] as u128, self.conv_sizes(&s, &d)?)
        };
        let lead = if self.unbatched() {
            vec![]
        } else {
            vec![self.batch.0 as u128]
        };
        let shape: Vec<u128> = lead.into_iter().chain([c_out]).chain(spatial).collect();
        // A size no usize holds cannot be returned: refusing is the only right answer.
        shape.iter().all(|&v| v <= usize::MAX as u128).then_some(shape)
    }

    fn conv_sizes(&self, s: &[usize], d: &[usize]) -> Option<Vec<u128>> {
        let r = self.rank();
        let (kernel, sizes) = (self.kernel(), self.sizes());
        // Padding per axis as `(before, after)`, or its total: `same` pads `d·(k − 1)` in all.
        let pads: Vec<(i128, i128)> = match self.padding {
            PadCase::Symmetric(_) | PadCase::Asymmetric(_) => (self.explicit_pads()?.into_iter())
                .map(|(b, a)| (b as i128, a as i128))
                .collect(),
            PadCase::Valid => vec![(0, 0); r],
            PadCase::Same => {
                if s.iter().any(|&s| s != 1) {
                    return None;
                }
                (0..r).map(|a| (0, d[a] as i128 * (kernel[a] as i128 - 1))).collect()
            }
        };
        (0..r)
            .map(|a| {
                let padded = sizes[a] as i128 + pads[a].0 + pads[a].1;
                let k_e = effective_kernel(kernel[a], d[a]);
                (padded >= k_e).then(|| ((padded - k_e) / s[a] as i128 + 1) as u128)
            })
            .collect()
    }

    fn conv_t_sizes(&self, s: &[usize], d: &[usize]) -> Option<Vec<u128>> {
        let r = self.rank();
        let (kernel, sizes) = (self.kernel(), self.sizes());
        let op = broadcast(&self.output_padding.list(r), r)?;
        if (0..r).any(|a| op[a] >= s[a] && op[a] >= d[a]) {
            return None;
        }
        let tf_mode = matches!(self.padding, PadCase::Same | PadCase::Valid);
        if tf_mode && op.iter().any(|&o| o != 0) {
            return None;
        }
        let requested = match self.requested_sizes() {
            Some(sizes) if sizes.len() == r + self.non_spatial() => Some(sizes[self.non_spatial()..].to_vec()),
            Some(sizes) if sizes.len() != r => return None,
            other => other,
        };
        if requested.is_some() && op.iter().any(|&o| o != 0) {
            return None;
        }
        let pads = if tf_mode { None } else { Some(self.explicit_pads()?) };
        (0..r)
            .map(|a| {
                let (i, sa) = (sizes[a] as i128, s[a] as i128);
                let k_e = effective_kernel(kernel[a], d[a]);
                let wanted = requested.as_ref().map(|v| v[a] as i128);
                let n = match &pads {
                    None => {
                        let same = matches!(self.padding, PadCase::Same);
                        let (lo, hi) = if same {
                            ((i - 1) * sa + 1, i * sa)
                        } else {
                            ((i - 1) * sa + k_e, (i - 1) * sa + k_e + sa - 1)
                        };
                        let n = wanted.unwrap_or(if same { i * sa } else { i * sa + (k_e - sa).max(0) });
                        (lo..=hi).contains(&n).then_some(n)?
                    }
                    Some(pads) => {
                        let smallest = (i - 1) * sa + k_e - pads[a].0 as i128 - pads[a].1 as i128;
                        let n = match wanted {
                            Some(n) => (smallest.max(1)..=smallest + sa - 1).contains(&n).then_some(n)?,
                            None => smallest + op[a] as i128,
                        };
                        (n >= 1).then_some(n)?
                    }
                };
                Some(n as u128)
            })
            .collect()
    }
}

/// Deterministic small integers in `[-3, 3]`, so that every sum is exact.
fn values(shape: &[usize], seed: u64) -> ArrayD<f64> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 7) as f64 - 3.0
    })
}

/// Runs the op the case describes and checks it (see the module docs).
pub fn check(case: &Case) {
    let expected = case.expected();
    if let Some(shape) = &expected {
        // adjoint refuses an output whose nonzero sizes multiply past 2^40 (even an empty
        // one), which these rules do not model; below that, an empty output (batch or
        // channels 0) must come back at once, whatever its spatial size.
        let extent = shape.iter().try_fold(1u128, |n, &v| n.checked_mul(v.max(1)));
        let elements = shape.iter().try_fold(1u128, |n, &v| n.checked_mul(v));
        if extent.is_none_or(|n| n > MAX_EXTENT_ELEMENTS) || elements.is_none_or(|n| n > MAX_OUTPUT) {
            return;
        }
    }
    let (x_shape, w_shape) = (case.x_shape(), case.w_shape());
    let tape = Tape::<f64>::new();
    let x = tape.constant(values(&x_shape, u64::from(case.seed)));
    let w = tape.constant(values(&w_shape, u64::from(case.seed) + 1));
    let c_out = expected
        .as_ref()
        .map_or(case.c_out.0, |s| s[case.non_spatial() - 1] as usize);
    let b = (case.bias && c_out <= 64).then(|| tape.constant(values(&[c_out], u64::from(case.seed) + 2)));
    let (conv_options, conv_t_options) = (case.conv_options(), case.conv_t_options());
    let y = match (case.transpose, case.rank2) {
        (false, false) => conv1d(x, w, b, &conv_options),
        (false, true) => conv2d(x, w, b, &conv_options),
        (true, false) => conv_transpose1d(x, w, b, &conv_t_options),
        (true, true) => conv_transpose2d(x, w, b, &conv_t_options),
    };
    let (y, shape) = match (y, expected) {
        (Err(_), None) => return,
        (Err(e), Some(shape)) => {
            assert!(!case.plain(), "refused a valid call (expected shape {shape:?}): {e}");
            return;
        }
        (Ok(y), None) => panic!("accepted a call the rules refuse, with shape {:?}", y.shape()),
        (Ok(y), Some(shape)) => (y, shape),
    };
    let shape: Vec<usize> = shape.into_iter().map(|v| v as usize).collect();
    assert_eq!(y.shape(), shape, "wrong output shape");
    check_values(
        case,
        &x.value(),
        &w.value(),
        b.map(|b| b.value().iter().copied().collect()),
        &y.value(),
    );
}

/// `y` against the dense-matrix view: per image, `vec(y) = A·vec(x) + b`.
fn check_values(case: &Case, x: &ArrayD<f64>, w: &ArrayD<f64>, b: Option<Vec<f64>>, y: &ArrayD<f64>) {
    // One image at a time, with a leading batch axis of one.
    let (x, y) = if case.unbatched() {
        (x.clone().insert_axis(Axis(0)), y.clone().insert_axis(Axis(0)))
    } else {
        (x.clone(), y.clone())
    };
    let (rows, cols) = (y.len() / y.shape()[0].max(1), x.len() / x.shape()[0].max(1));
    if rows.saturating_mul(cols) > MAX_MATRIX || y.is_empty() {
        return;
    }
    let image = &x.shape()[1..];
    let a = if case.transpose {
        // The view takes one image, batched: a whole-shape output_size keeps only its sizes.
        let mut options = case.conv_t_options();
        if let Some(size) = &mut options.output_size
            && size.len() == case.rank() + case.non_spatial()
        {
            size.drain(..case.non_spatial());
        }
        views::conv_transpose_matrix(w, image, &options)
    } else {
        views::conv_matrix(w, image, &case.conv_options())
    }
    .unwrap_or_else(|e| panic!("the op accepted the call but the dense view refuses it: {e}"));
    assert_eq!(a.dim(), (rows, cols), "the dense view has another size");
    let plane = rows / y.shape()[1].max(1);
    for (xn, yn) in x.outer_iter().zip(y.outer_iter()) {
        let xn = Array1::from_iter(xn.iter().copied());
        let mut want = a.dot(&xn);
        if let Some(b) = &b {
            for (r, v) in want.iter_mut().enumerate() {
                *v += b[r / plane];
            }
        }
        for (r, (&got, &want)) in yn.iter().zip(&want).enumerate() {
            assert!(
                (got - want).abs() <= 1e-9 * (1.0 + want.abs()),
                "y differs from A·x at row {r}: {got} vs {want}"
            );
        }
    }
}
