//! Property tests over random settings of the conv pair, valid and invalid alike:
//!
//! - no call panics;
//! - a call succeeds exactly when PyTorch's (or, in SAME/VALID mode, TensorFlow's) rules,
//!   written independently here, allow the setting, and then has the shape those rules give;
//!   a refused call leaves the tape as it was;
//! - every successful call satisfies the adjoint identity `⟨conv(x, w), u⟩ = ⟨x, convᵀ(u, w)⟩`
//!   in f64, against the other op with the same weight and settings (the output padding of the
//!   transposed conv being the cells past the conv's last window, `(i + p_b + p_a − k_e) mod s`, the padding of
//!   the conv behind a TF-mode transposed conv the one `tf_transpose_axis` gives).

use std::panic::{AssertUnwindSafe, catch_unwind};

use adjoint::ops::conv::geometry::tf_transpose_axis;
use adjoint::ops::conv::{
    ConvOptions, ConvTransposeOptions, Padding, PerAxis, TransposePadding, conv_transpose1d, conv_transpose2d,
    conv_transpose3d, conv1d, conv2d, conv3d,
};
use adjoint::{Result, Tape, Var};
use ndarray::{ArrayD, IxDyn, Slice};
use proptest::prelude::*;

type ConvFn = for<'t> fn(Var<'t, f64>, Var<'t, f64>, Option<Var<'t, f64>>, &ConvOptions) -> Result<Var<'t, f64>>;
type ConvTFn =
    for<'t> fn(Var<'t, f64>, Var<'t, f64>, Option<Var<'t, f64>>, &ConvTransposeOptions) -> Result<Var<'t, f64>>;

fn conv_fn(rank: usize) -> ConvFn {
    [conv1d::<f64>, conv2d::<f64>, conv3d::<f64>][rank - 1]
}

fn conv_t_fn(rank: usize) -> ConvTFn {
    [
        conv_transpose1d::<f64>,
        conv_transpose2d::<f64>,
        conv_transpose3d::<f64>,
    ][rank - 1]
}

/// The padding mode: `Same`/`Valid` are PyTorch's strings for the conv and TensorFlow's modes
/// for the transposed conv.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Symmetric,
    Asymmetric,
    Same,
    Valid,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// `[n, c, spatial..]`
    Batched,
    /// `[c, spatial..]`
    Unbatched,
    /// `[1, n, c, spatial..]`: one axis too many.
    WrongRank,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bias {
    None,
    Right,
    /// One element too many.
    Wrong,
}

#[derive(Clone, Debug)]
struct Case {
    rank: usize,
    /// Rank of the function called; not `rank` means a weight of the wrong rank.
    fn_rank: usize,
    batch: usize,
    layout: Layout,
    groups: usize,
    c_in: usize,
    c_out: usize,
    /// Added to the weight's channel axis that must match `x` (conv: `c_in/g`, transposed: `c_in`).
    skew: usize,
    sizes: Vec<usize>,
    kernel: Vec<usize>,
    /// Per-axis settings, of length `rank`, 1 (broadcast) or `rank + 1` (refused).
    stride: Vec<usize>,
    dilation: Vec<usize>,
    mode: Mode,
    /// `(before, after)`; the symmetric mode uses `before`.
    pads: Vec<(usize, usize)>,
    output_padding: Vec<usize>,
    /// Requested transposed output sizes, as offsets from the smallest allowed size.
    output_size: Option<Vec<i64>>,
    bias: Bias,
    seed: u64,
}

/// Length of a per-axis setting: mostly `rank`, sometimes 1, sometimes wrong.
fn length(rank: usize) -> impl Strategy<Value = usize> {
    prop_oneof![24 => Just(rank), 4 => Just(1), 1 => Just(rank + 1)]
}

fn per_axis<T: std::fmt::Debug + Clone>(rank: usize, value: impl Strategy<Value = T>) -> impl Strategy<Value = Vec<T>> {
    (proptest::collection::vec(value, rank + 1), length(rank)).prop_map(|(mut v, n)| {
        v.truncate(n);
        v
    })
}

/// `output_size` as offsets from the smallest allowed size: one per spatial axis mostly, and
/// also PyTorch's other form, the whole output shape (one or two longer than the rank, valid
/// for an unbatched or a batched input), and wrong lengths.
fn output_size(rank: usize) -> impl Strategy<Value = Vec<i64>> {
    let offset = prop_oneof![1 => Just(-1i64), 6 => 0..=2i64, 1 => Just(3i64)];
    let len = prop_oneof![10 => Just(rank), 2 => Just(1), 4 => Just(rank + 1), 4 => Just(rank + 2)];
    (proptest::collection::vec(offset, rank + 2), len).prop_map(|(mut v, n)| {
        v.truncate(n);
        v
    })
}

fn case() -> impl Strategy<Value = Case> {
    (1..=3usize).prop_flat_map(|rank| {
        let shape = (
            Just(rank),
            prop_oneof![30 => Just(rank), 1 => 1..=3usize],
            0..=2usize,
            prop_oneof![
                12 => Just(Layout::Batched),
                4 => Just(Layout::Unbatched),
                1 => Just(Layout::WrongRank)
            ],
            prop_oneof![1 => Just(0usize), 30 => 1..=3usize],
            prop_oneof![1 => Just(0usize), 8 => 1..=6usize],
            prop_oneof![1 => Just(0usize), 8 => 1..=6usize],
            prop_oneof![1 => Just(None), 8 => Just(Some(()))],
            prop_oneof![25 => Just(0usize), 1 => Just(1usize)],
            proptest::collection::vec(prop_oneof![1 => Just(0usize), 50 => 1..=7usize], rank),
            proptest::collection::vec(prop_oneof![1 => Just(0usize), 50 => 1..=4usize], rank),
        );
        let settings = (
            per_axis(rank, prop_oneof![1 => Just(0usize), 40 => 1..=3usize]),
            per_axis(rank, prop_oneof![1 => Just(0usize), 40 => 1..=2usize]),
            prop_oneof![
                4 => Just(Mode::Symmetric),
                3 => Just(Mode::Asymmetric),
                1 => Just(Mode::Same),
                1 => Just(Mode::Valid)
            ],
            per_axis(rank, (0..=3usize, 0..=3usize)),
            per_axis(
                rank,
                prop_oneof![10 => Just(0usize), 3 => 1..=2usize, 1 => Just(3usize)],
            ),
            prop_oneof![
                3 => Just(None),
                2 => output_size(rank).prop_map(Some)
            ],
            prop_oneof![7 => Just(false), 1 => Just(true)],
            prop_oneof![7 => Just(Bias::None), 7 => Just(Bias::Right), 1 => Just(Bias::Wrong)],
            any::<u64>(),
        );
        (shape, settings).prop_map(
            |(
                (rank, fn_rank, batch, layout, groups, m_in, m_out, multiples, skew, sizes, kernel),
                (stride, dilation, mode, pads, mut output_padding, output_size, keep_op, bias, seed),
            )| {
                // output_size with a nonzero output_padding is refused: mostly drop the latter.
                if output_size.is_some() && !keep_op {
                    output_padding.iter_mut().for_each(|o| *o = 0);
                }
                // Channels: multiples of the groups up to 6, or (sometimes) any count up to 6.
                let channels = |m: usize| match multiples {
                    Some(()) => groups.max(1) * (m % (6 / groups.max(1) + 1)),
                    None => m,
                };
                Case {
                    rank,
                    fn_rank,
                    batch,
                    layout,
                    groups,
                    c_in: channels(m_in),
                    c_out: channels(m_out),
                    skew,
                    sizes,
                    kernel,
                    stride,
                    dilation,
                    mode,
                    pads,
                    output_padding,
                    output_size,
                    bias,
                    seed,
                }
            },
        )
    })
}

// ---------------------------------------------------------------------------------------------
// The rules, written independently of the library.
// ---------------------------------------------------------------------------------------------

/// A per-axis setting given once or per axis; anything else is refused.
fn broadcast<T: Clone>(v: &[T], rank: usize) -> Option<Vec<T>> {
    match v.len() {
        1 => Some(vec![v[0].clone(); rank]),
        n if n == rank => Some(v.to_vec()),
        _ => None,
    }
}

/// The `(before, after)` padding of the conv per axis, and the op's output shape.
type Expected = (Vec<(usize, usize)>, Vec<usize>);

fn effective_kernel(k: usize, d: usize) -> i64 {
    (d * (k - 1) + 1) as i64
}

impl Case {
    fn x_shape(&self) -> Vec<usize> {
        let lead = match self.layout {
            Layout::Batched => vec![self.batch, self.c_in],
            Layout::Unbatched => vec![self.c_in],
            Layout::WrongRank => vec![1, self.batch, self.c_in],
        };
        lead.into_iter().chain(self.sizes.iter().copied()).collect()
    }

    fn unbatched(&self) -> bool {
        self.layout == Layout::Unbatched
    }

    /// Conv weight `[c_out, c_in/g (+ skew), k..]`.
    fn conv_w_shape(&self) -> Vec<usize> {
        [self.c_out, self.c_in / self.groups.max(1) + self.skew]
            .into_iter()
            .chain(self.kernel.iter().copied())
            .collect()
    }

    /// Transposed-conv weight `[c_in (+ skew), c_out/g, k..]`.
    fn conv_t_w_shape(&self) -> Vec<usize> {
        [self.c_in + self.skew, self.c_out / self.groups.max(1)]
            .into_iter()
            .chain(self.kernel.iter().copied())
            .collect()
    }

    fn conv_t_c_out(&self) -> usize {
        self.c_out / self.groups.max(1) * self.groups
    }

    /// What every op checks alike: rank, layout, stride, dilation, groups, zero sizes.
    fn common(&self) -> Option<(Vec<usize>, Vec<usize>)> {
        let r = self.rank;
        if self.fn_rank != r || self.layout == Layout::WrongRank || self.groups == 0 {
            return None;
        }
        let s = broadcast(&self.stride, r)?;
        let d = broadcast(&self.dilation, r)?;
        if s.contains(&0) || d.contains(&0) || self.kernel.contains(&0) || self.sizes.contains(&0) {
            return None;
        }
        if !self.c_in.is_multiple_of(self.groups) {
            return None;
        }
        Some((s, d))
    }

    /// The explicit `(before, after)` padding per axis, for the symmetric and asymmetric modes.
    fn explicit_pads(&self) -> Option<Vec<(usize, usize)>> {
        match self.mode {
            Mode::Symmetric => Some(
                broadcast(&self.pads, self.rank)?
                    .into_iter()
                    .map(|(p, _)| (p, p))
                    .collect(),
            ),
            Mode::Asymmetric => broadcast(&self.pads, self.rank),
            _ => None,
        }
    }

    fn out_shape(&self, c: usize, spatial: Vec<usize>) -> Vec<usize> {
        let lead = if self.unbatched() { vec![c] } else { vec![self.batch, c] };
        lead.into_iter().chain(spatial).collect()
    }

    /// The conv's padding per axis and output shape under PyTorch's rules, `None` if refused.
    fn conv_expected(&self) -> Option<Expected> {
        let (s, d) = self.common()?;
        let (g, r) = (self.groups, self.rank);
        if !self.c_out.is_multiple_of(g) || (self.c_in / g + self.skew) * g != self.c_in {
            return None;
        }
        let pads = match self.mode {
            Mode::Symmetric | Mode::Asymmetric => self.explicit_pads()?,
            Mode::Valid => vec![(0, 0); r],
            Mode::Same => {
                if s.iter().any(|&s| s != 1) {
                    return None;
                }
                (0..r)
                    .map(|a| {
                        let total = d[a] * (self.kernel[a] - 1);
                        (total / 2, total - total / 2)
                    })
                    .collect()
            }
        };
        let mut out = Vec::new();
        for a in 0..r {
            let padded = (self.sizes[a] + pads[a].0 + pads[a].1) as i64;
            let k_e = effective_kernel(self.kernel[a], d[a]);
            if padded < k_e {
                return None;
            }
            out.push(((padded - k_e) / s[a] as i64 + 1) as usize);
        }
        if self.bias == Bias::Wrong {
            return None;
        }
        Some((pads, self.out_shape(self.c_out, out)))
    }

    /// The smallest allowed transposed output size of axis `a` in the current mode, with
    /// fallbacks for settings that will be refused anyway (so any size can be requested).
    fn smallest_size(&self, a: usize) -> i64 {
        let r = self.rank;
        let a = a.min(r - 1);
        let pick = |v: &[usize]| broadcast(v, r).map_or(1, |v| v[a].max(1));
        let (s, d) = (pick(&self.stride) as i64, pick(&self.dilation));
        let (i, k) = (self.sizes[a] as i64, self.kernel[a].max(1));
        let k_e = effective_kernel(k, d);
        match self.mode {
            Mode::Same => (i - 1) * s + 1,
            Mode::Valid => (i - 1) * s + k_e,
            _ => {
                let (pb, pa) = self.explicit_pads().map_or((0, 0), |p| p[a]);
                (i - 1) * s + k_e - (pb + pa) as i64
            }
        }
    }

    /// Axes before the spatial ones in `x` and `y`: `[n, c]`, or `[c]` unbatched.
    fn non_spatial(&self) -> usize {
        if self.unbatched() { 1 } else { 2 }
    }

    /// Whether `output_size` is PyTorch's other form, the whole output shape (`[n, c, o..]`,
    /// or `[c, o..]` unbatched), whose spatial sizes come last.
    fn whole_shape(&self) -> bool {
        (self.output_size.as_ref()).is_some_and(|v| v.len() == self.rank + self.non_spatial())
    }

    /// The `output_size` to request, if any.
    fn requested_sizes(&self) -> Option<Vec<usize>> {
        let offsets = self.output_size.as_ref()?;
        let lead = if self.whole_shape() { self.non_spatial() } else { 0 };
        Some(
            offsets
                .iter()
                .enumerate()
                .map(|(j, &off)| (self.smallest_size(j.saturating_sub(lead)) + off).max(0) as usize)
                .collect(),
        )
    }

    /// The transposed conv's padding (of the conv it is the adjoint of), per axis, and its
    /// output shape, `None` if refused.
    fn conv_t_expected(&self) -> Option<Expected> {
        let (s, d) = self.common()?;
        let r = self.rank;
        if self.skew != 0 {
            return None;
        }
        // Validated in every mode; TF modes size the output themselves and refuse a nonzero
        // one (see `conv_errors::tf_modes_do_not_silently_ignore_output_padding`).
        let op = broadcast(&self.output_padding, r)?;
        if (0..r).any(|a| op[a] >= s[a] && op[a] >= d[a]) {
            return None;
        }
        if matches!(self.mode, Mode::Same | Mode::Valid) && op.iter().any(|&o| o != 0) {
            return None;
        }
        let mut requested = self.requested_sizes();
        // PyTorch takes the whole output shape too, and reads only its spatial sizes.
        if let Some(sizes) = &mut requested
            && self.whole_shape()
        {
            sizes.drain(..self.non_spatial());
        }
        if let Some(sizes) = &requested
            && (sizes.len() != r || op.iter().any(|&o| o != 0))
        {
            return None;
        }
        let pads = match self.mode {
            Mode::Symmetric | Mode::Asymmetric => Some(self.explicit_pads()?),
            _ => None,
        };
        let mut out = Vec::new();
        let mut conv_pads = Vec::new();
        for a in 0..r {
            let (i, k, sa) = (self.sizes[a] as i64, self.kernel[a], s[a] as i64);
            let k_e = effective_kernel(k, d[a]);
            let n = match (self.mode, &pads) {
                (Mode::Same | Mode::Valid, _) => {
                    let same = self.mode == Mode::Same;
                    let (lo, hi) = if same {
                        ((i - 1) * sa + 1, i * sa)
                    } else {
                        ((i - 1) * sa + k_e, (i - 1) * sa + k_e + sa - 1)
                    };
                    let n = match &requested {
                        Some(sizes) => sizes[a] as i64,
                        None if same => i * sa,
                        None => i * sa + (k_e - sa).max(0),
                    };
                    if n < lo || n > hi {
                        return None;
                    }
                    conv_pads.push(tf_pads(same, n as usize, k, s[a], d[a]));
                    n
                }
                (_, Some(pads)) => {
                    let (pb, pa) = pads[a];
                    let smallest = (i - 1) * sa + k_e - (pb + pa) as i64;
                    let n = match &requested {
                        Some(sizes) => {
                            let n = sizes[a] as i64;
                            if n < smallest.max(1) || n > smallest + sa - 1 {
                                return None;
                            }
                            n
                        }
                        None => smallest + op[a] as i64,
                    };
                    if n < 1 {
                        return None;
                    }
                    conv_pads.push((pb, pa));
                    n
                }
                _ => unreachable!(),
            };
            out.push(n as usize);
        }
        if self.bias == Bias::Wrong {
            return None;
        }
        Some((conv_pads, self.out_shape(self.conv_t_c_out(), out)))
    }
}

/// TensorFlow's SAME/VALID padding of the forward conv on size `n`, written here.
fn tf_pads(same: bool, n: usize, k: usize, s: usize, d: usize) -> (usize, usize) {
    if !same {
        return (0, 0);
    }
    let o = n.div_ceil(s) as i64;
    let total = ((o - 1) * s as i64 + effective_kernel(k, d) - n as i64).max(0) as usize;
    (total / 2, total - total / 2)
}

// ---------------------------------------------------------------------------------------------
// Values and inner products.
// ---------------------------------------------------------------------------------------------

/// Deterministic values in [-1, 1) (splitmix64).
fn values(shape: &[usize], seed: u64) -> ArrayD<f64> {
    let mut state = seed;
    ArrayD::from_shape_fn(IxDyn(shape), |_| {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    })
}

fn dot(a: &ArrayD<f64>, b: &ArrayD<f64>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `a` cut to its first `sizes` cells on the trailing spatial axes.
fn crop(a: &ArrayD<f64>, sizes: &[usize]) -> ArrayD<f64> {
    let first = a.ndim() - sizes.len();
    a.slice_each_axis(|ax| {
        let i = ax.axis.index();
        if i >= first {
            Slice::from(0..sizes[i - first])
        } else {
            Slice::from(..)
        }
    })
    .to_owned()
}

/// `⟨a, b⟩` against `⟨c, d⟩` to 1e-12 relative to `scale`, the same sum over absolute values
/// (it bounds both sides' rounding).
fn assert_adjoint(lhs: f64, rhs: f64, scale: f64, what: &str) -> std::result::Result<(), TestCaseError> {
    prop_assert!(
        (lhs - rhs).abs() <= 1e-12 * scale,
        "{what}: ⟨op(x), u⟩ = {lhs} but ⟨x, op*(u)⟩ = {rhs} (scale {scale})"
    );
    Ok(())
}

fn conv_options(s: &Case) -> ConvOptions {
    let padding = match s.mode {
        Mode::Symmetric => Padding::Symmetric(PerAxis(s.pads.iter().map(|p| p.0).collect())),
        Mode::Asymmetric => Padding::Asymmetric(s.pads.clone()),
        Mode::Same => Padding::Same,
        Mode::Valid => Padding::Valid,
    };
    ConvOptions {
        stride: PerAxis(s.stride.clone()),
        padding,
        dilation: PerAxis(s.dilation.clone()),
        groups: s.groups,
    }
}

fn conv_t_options(s: &Case) -> ConvTransposeOptions {
    let padding = match s.mode {
        Mode::Symmetric => TransposePadding::Symmetric(PerAxis(s.pads.iter().map(|p| p.0).collect())),
        Mode::Asymmetric => TransposePadding::Asymmetric(s.pads.clone()),
        Mode::Same => TransposePadding::TfSame,
        Mode::Valid => TransposePadding::TfValid,
    };
    ConvTransposeOptions {
        stride: PerAxis(s.stride.clone()),
        padding,
        output_padding: PerAxis(s.output_padding.clone()),
        dilation: PerAxis(s.dilation.clone()),
        groups: s.groups,
        output_size: s.requested_sizes(),
    }
}

fn abs(a: &ArrayD<f64>) -> ArrayD<f64> {
    a.mapv(f64::abs)
}

// ---------------------------------------------------------------------------------------------
// The properties.
// ---------------------------------------------------------------------------------------------

fn check_conv(c: &Case) -> std::result::Result<(), TestCaseError> {
    let tape = Tape::<f64>::new();
    let xv = values(&c.x_shape(), c.seed);
    let wv = values(&c.conv_w_shape(), c.seed ^ 1);
    let (x, w) = (tape.param(xv.clone()), tape.param(wv.clone()));
    let b = match c.bias {
        Bias::None => None,
        Bias::Right => Some(tape.param(values(&[c.c_out], c.seed ^ 2))),
        Bias::Wrong => Some(tape.param(values(&[c.c_out + 1], c.seed ^ 2))),
    };
    let opts = conv_options(c);
    let f = conv_fn(c.fn_rank);
    let before = tape.len();
    let result = catch_unwind(AssertUnwindSafe(|| f(x, w, b, &opts)));
    prop_assert!(result.is_ok(), "conv{}d panicked", c.fn_rank);
    let expected = c.conv_expected();
    let y = match (result.unwrap(), &expected) {
        (Err(e), None) => {
            prop_assert_eq!(tape.len(), before, "refused ({}) but recorded nodes", e);
            return Ok(());
        }
        (Err(e), Some((_, shape))) => return Err(TestCaseError::fail(format!("refused {shape:?}: {e}"))),
        (Ok(y), None) => return Err(TestCaseError::fail(format!("accepted, shape {:?}", y.shape()))),
        (Ok(y), Some((_, shape))) => {
            prop_assert_eq!(&y.shape(), shape);
            y
        }
    };
    let (pads, _) = expected.unwrap();
    let y = if b.is_some() { f(x, w, None, &opts).unwrap() } else { y };

    // The transposed conv with the same settings and the cells past the last window as output padding.
    let (s, d) = c.common().unwrap();
    let r = c.rank;
    let op: Vec<usize> = (0..r)
        .map(|a| {
            let k_e = effective_kernel(c.kernel[a], d[a]) as usize;
            (c.sizes[a] + pads[a].0 + pads[a].1 - k_e) % s[a]
        })
        .collect();
    let dual = ConvTransposeOptions::new()
        .stride(s)
        .padding_asymmetric(&pads)
        .dilation(d)
        .groups(c.groups)
        .output_padding(op);
    let uv = values(&y.shape(), c.seed ^ 3);
    let u = tape.constant(uv.clone());
    let z = conv_t_fn(r)(u, w, None, &dual).map_err(|e| TestCaseError::fail(format!("dual refused: {e}")))?;
    prop_assert_eq!(z.shape(), x.shape(), "the dual does not recover x's shape");
    let scale_y = f(tape.constant(abs(&xv)), tape.constant(abs(&wv)), None, &opts).unwrap();
    let scale = dot(&scale_y.value(), &abs(&uv));
    assert_adjoint(dot(&y.value(), &uv), dot(&xv, &z.value()), scale, "conv")
}

fn check_conv_transpose(c: &Case) -> std::result::Result<(), TestCaseError> {
    let tape = Tape::<f64>::new();
    let xv = values(&c.x_shape(), c.seed);
    let wv = values(&c.conv_t_w_shape(), c.seed ^ 1);
    let (x, w) = (tape.param(xv.clone()), tape.param(wv.clone()));
    let b = match c.bias {
        Bias::None => None,
        Bias::Right => Some(tape.param(values(&[c.conv_t_c_out()], c.seed ^ 2))),
        Bias::Wrong => Some(tape.param(values(&[c.conv_t_c_out() + 1], c.seed ^ 2))),
    };
    let opts = conv_t_options(c);
    let f = conv_t_fn(c.fn_rank);
    let before = tape.len();
    let result = catch_unwind(AssertUnwindSafe(|| f(x, w, b, &opts)));
    prop_assert!(result.is_ok(), "conv_transpose{}d panicked", c.fn_rank);
    let expected = c.conv_t_expected();
    let y = match (result.unwrap(), &expected) {
        (Err(e), None) => {
            prop_assert_eq!(tape.len(), before, "refused ({}) but recorded nodes", e);
            return Ok(());
        }
        (Err(e), Some((_, shape))) => return Err(TestCaseError::fail(format!("refused {shape:?}: {e}"))),
        (Ok(y), None) => return Err(TestCaseError::fail(format!("accepted, shape {:?}", y.shape()))),
        (Ok(y), Some((_, shape))) => {
            prop_assert_eq!(&y.shape(), shape);
            y
        }
    };
    let (pads, _) = expected.unwrap();
    let y = if b.is_some() { f(x, w, None, &opts).unwrap() } else { y };
    let (s, d) = c.common().unwrap();
    let r = c.rank;
    let n_out: Vec<usize> = y.shape()[y.ndim() - r..].to_vec();

    // In TF modes, the padding of the conv behind it is the one tf_transpose_axis gives.
    if matches!(c.mode, Mode::Same | Mode::Valid) {
        for a in 0..r {
            let (g, _) = tf_transpose_axis(c.mode == Mode::Same, c.sizes[a], n_out[a], c.kernel[a], s[a], d[a])
                .expect("small sizes fit");
            prop_assert_eq!((g.pad_before, g.pad_after), pads[a], "tf_transpose_axis, axis {}", a);
        }
    }
    // The conv with the same settings; with output padding ≥ stride (allowed below the
    // dilation) it sees more output cells than x has, and the adjoint is its first ones.
    let dual = ConvOptions::new()
        .stride(s.clone())
        .padding_asymmetric(&pads)
        .dilation(d.clone())
        .groups(c.groups);
    let uv = values(&y.shape(), c.seed ^ 3);
    let u = tape.constant(uv.clone());
    let z = conv_fn(r)(u, w, None, &dual).map_err(|e| TestCaseError::fail(format!("dual refused: {e}")))?;
    let zs = z.shape();
    for a in 0..r {
        let k_e = effective_kernel(c.kernel[a], d[a]);
        let extra = n_out[a] as i64 + (pads[a].0 + pads[a].1) as i64 - ((c.sizes[a] as i64 - 1) * s[a] as i64 + k_e);
        let expected = c.sizes[a] + (extra / s[a] as i64) as usize;
        prop_assert_eq!(zs[zs.len() - r + a], expected, "dual size, axis {}", a);
    }
    let z = crop(&z.value(), &c.sizes);
    prop_assert_eq!(z.shape(), xv.shape());
    let scale_y = f(tape.constant(abs(&xv)), tape.constant(abs(&wv)), None, &opts).unwrap();
    let scale = dot(&scale_y.value(), &abs(&uv));
    assert_adjoint(dot(&y.value(), &uv), dot(&xv, &z), scale, "conv_transpose")
}

proptest! {
    #![proptest_config(ProptestConfig {
        // PROPTEST_CASES=100000 for a deeper search.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn conv_never_panics_follows_pytorch_and_is_adjoint(c in case()) {
        check_conv(&c)?;
    }

    #[test]
    fn conv_transpose_never_panics_follows_pytorch_or_tf_and_is_adjoint(c in case()) {
        check_conv_transpose(&c)?;
    }
}

/// The strategy reaches both sides of every rule often enough to mean something.
#[test]
fn the_strategy_covers_valid_and_invalid_settings() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut conv_ok, mut conv_t_ok, mut tf, mut explicit_size, mut zero_batch, mut unbatched) = (0, 0, 0, 0, 0, 0);
    let mut whole_shape = 0;
    let total = 2000;
    for _ in 0..total {
        let c = case().new_tree(&mut runner).unwrap().current();
        let t = c.conv_t_expected();
        conv_ok += usize::from(c.conv_expected().is_some());
        conv_t_ok += usize::from(t.is_some());
        if t.is_some() {
            tf += usize::from(matches!(c.mode, Mode::Same | Mode::Valid));
            explicit_size += usize::from(c.output_size.is_some());
            zero_batch += usize::from(c.batch == 0 && c.layout == Layout::Batched);
            unbatched += usize::from(c.unbatched());
            whole_shape += usize::from(c.whole_shape());
        }
    }
    let counts = [
        conv_ok,
        conv_t_ok,
        tf,
        explicit_size,
        zero_batch,
        unbatched,
        whole_shape,
    ];
    eprintln!(
        "of {total}: conv ok, conv_t ok, of those TF, explicit size, batch 0, unbatched, output_size a whole shape: {counts:?}"
    );
    assert!(
        (total / 10..total * 9 / 10).contains(&conv_ok) && (total / 10..total * 9 / 10).contains(&conv_t_ok),
        "{counts:?}"
    );
    assert!(counts[2..].iter().all(|&n| n >= 20), "{counts:?}");
}

/// A case big enough for the kernels to split the batch over two threads (the random cases are
/// all below that threshold): still the adjoint pair, and the same as one image at a time.
#[test]
fn large_batches_split_over_threads_stay_adjoint() {
    let tape = Tape::<f64>::new();
    // 6 · 12 · (8 · 14 · 6) · 6 · 18 ≈ 5.2M multiply-adds, above the kernels' 4M threshold.
    let (n, c_in, c_out, g) = (6, 12, 12, 2);
    let xv = values(&[n, c_in, 15, 16, 16], 1);
    let wv = values(&[c_out, c_in / g, 3, 2, 3], 2);
    let opts = ConvOptions::new()
        .stride([2, 1, 3])
        .padding([1, 0, 2])
        .dilation([1, 2, 1])
        .groups(g);
    let (x, w) = (tape.constant(xv.clone()), tape.constant(wv.clone()));
    let y = conv3d(x, w, None, &opts).unwrap();
    let shape = y.shape();
    assert_eq!(shape, vec![n, c_out, 8, 14, 6]);
    let uv = values(&shape, 3);
    // Unread cells: (15 + 2 − 3) mod 2 = 0, (16 − 3) mod 1 = 0, (16 + 4 − 3) mod 3 = 2.
    let dual = ConvTransposeOptions::new()
        .stride([2, 1, 3])
        .padding([1, 0, 2])
        .dilation([1, 2, 1])
        .groups(g)
        .output_padding([0, 0, 2]);
    let z = conv_transpose3d(tape.constant(uv.clone()), w, None, &dual).unwrap();
    assert_eq!(z.shape(), xv.shape());
    let scale = dot(
        &conv3d(tape.constant(abs(&xv)), tape.constant(abs(&wv)), None, &opts)
            .unwrap()
            .value(),
        &abs(&uv),
    );
    let (lhs, rhs) = (dot(&y.value(), &uv), dot(&xv, &z.value()));
    assert!((lhs - rhs).abs() <= 1e-12 * scale, "{lhs} vs {rhs}");
    // Batch items are independent: the last image alone gives the last slice, bit for bit.
    let last = |a: &ArrayD<f64>| {
        a.index_axis(ndarray::Axis(0), n - 1)
            .insert_axis(ndarray::Axis(0))
            .to_owned()
    };
    let y1 = conv3d(tape.constant(last(&xv)), w, None, &opts).unwrap();
    assert_eq!(*y1.value(), last(&y.value()));
    let z1 = conv_transpose3d(tape.constant(last(&uv)), w, None, &dual).unwrap();
    assert_eq!(*z1.value(), last(&z.value()));
}
