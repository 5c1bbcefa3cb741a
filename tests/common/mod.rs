//! The table of geometries the conv tests share: every setting and their combinations.
#![allow(dead_code)] // each test file uses part of it

use adjoint::ops::conv::{AxisGeometry, ConvOptions, ConvTransposeOptions};
use ndarray::{ArrayD, IxDyn};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// One spatial axis of a test case, as the conv sees it (input `i` → output `o`), plus the
/// output padding its transposed conv uses.
#[derive(Clone, Copy, Debug)]
pub struct Axis {
    pub geometry: AxisGeometry,
    pub i: usize,
    pub output_padding: usize,
}

impl Axis {
    pub fn o(&self) -> usize {
        self.geometry.conv_output_size(self.i).unwrap()
    }
    /// Output size of the transposed conv (input `o`) with this axis's output padding.
    pub fn transposed_out(&self) -> usize {
        self.geometry
            .conv_transpose_output_size(self.o(), self.output_padding)
            .unwrap()
    }
}

/// Every per-axis setting: kernel 1–4, stride 1–3, dilation 1–2, padding 0–2 symmetric and
/// asymmetric, input sizes where `(i + p − k_e) mod s` takes every value, output padding up to
/// `max(s, d) − 1`.
pub fn axes() -> Vec<Axis> {
    let mut out = Vec::new();
    let mut n = 0usize;
    for kernel in 1..=4 {
        for stride in 1..=3 {
            for dilation in 1..=2 {
                for (pad_before, pad_after) in [(0, 0), (1, 1), (2, 2), (0, 1), (2, 1)] {
                    let geometry = AxisGeometry {
                        kernel,
                        stride,
                        dilation,
                        pad_before,
                        pad_after,
                    };
                    let k_e = geometry.effective_kernel();
                    let smallest = (k_e.saturating_sub(pad_before + pad_after)).max(1);
                    n += 1;
                    let i = smallest + n % (stride + 2);
                    let limit = stride.max(dilation);
                    let output_padding = n % limit;
                    let axis = Axis {
                        geometry,
                        i,
                        output_padding,
                    };
                    if geometry.conv_transpose_output_size(axis.o(), output_padding).is_some() {
                        out.push(axis);
                    }
                }
            }
        }
    }
    out
}

/// A full case: batch, channels, groups, and one `Axis` per spatial dimension.
#[derive(Clone, Debug)]
pub struct Case {
    pub batch: usize,
    pub c_in: usize,
    pub c_out: usize,
    pub groups: usize,
    pub axes: Vec<Axis>,
}

impl Case {
    pub fn rank(&self) -> usize {
        self.axes.len()
    }
    /// Conv input `[n, c_in, i..]`.
    pub fn x_shape(&self) -> Vec<usize> {
        [self.batch, self.c_in]
            .into_iter()
            .chain(self.axes.iter().map(|a| a.i))
            .collect()
    }
    /// Conv output `[n, c_out, o..]` = transposed-conv input.
    pub fn y_shape(&self) -> Vec<usize> {
        [self.batch, self.c_out]
            .into_iter()
            .chain(self.axes.iter().map(|a| a.o()))
            .collect()
    }
    /// Conv weight `[c_out, c_in/g, k..]` — the transposed conv from `c_out` to `c_in` channels
    /// takes the same array as `[c_in_T, c_out_T/g, k..]`.
    pub fn w_shape(&self) -> Vec<usize> {
        [self.c_out, self.c_in / self.groups]
            .into_iter()
            .chain(self.axes.iter().map(|a| a.geometry.kernel))
            .collect()
    }
    pub fn conv_options(&self) -> ConvOptions {
        ConvOptions::new()
            .stride(self.axes.iter().map(|a| a.geometry.stride).collect::<Vec<_>>())
            .padding_asymmetric(
                &self
                    .axes
                    .iter()
                    .map(|a| (a.geometry.pad_before, a.geometry.pad_after))
                    .collect::<Vec<_>>(),
            )
            .dilation(self.axes.iter().map(|a| a.geometry.dilation).collect::<Vec<_>>())
            .groups(self.groups)
    }
    /// The transposed conv with this case's own output padding.
    pub fn transpose_options(&self) -> ConvTransposeOptions {
        self.transpose_options_with(self.axes.iter().map(|a| a.output_padding).collect())
    }
    /// The transposed conv that is the exact adjoint of `conv_options` on `x_shape`
    /// (output padding = the cells of the padded input past the conv's last window).
    pub fn adjoint_options(&self) -> ConvTransposeOptions {
        self.transpose_options_with(
            self.axes
                .iter()
                .map(|a| a.geometry.past_last_window(a.i).unwrap())
                .collect(),
        )
    }
    fn transpose_options_with(&self, output_padding: Vec<usize>) -> ConvTransposeOptions {
        ConvTransposeOptions::new()
            .stride(self.axes.iter().map(|a| a.geometry.stride).collect::<Vec<_>>())
            .padding_asymmetric(
                &self
                    .axes
                    .iter()
                    .map(|a| (a.geometry.pad_before, a.geometry.pad_after))
                    .collect::<Vec<_>>(),
            )
            .output_padding(output_padding)
            .dilation(self.axes.iter().map(|a| a.geometry.dilation).collect::<Vec<_>>())
            .groups(self.groups)
    }
}

/// Cases of `rank` spatial dimensions: in 1-D every axis setting once; in 2-D and 3-D the
/// settings combined at random (seeded), with groups 1–3 and batch 1–2 cycling.
pub fn cases(rank: usize, count: usize) -> Vec<Case> {
    // Smaller sizes as the rank grows keep finite differences affordable.
    let max_i = [0, usize::MAX, 8, 5][rank];
    let axes: Vec<Axis> = axes()
        .into_iter()
        .filter(|a| a.i <= max_i && a.transposed_out() <= max_i + 2)
        .collect();
    let mut rng = StdRng::seed_from_u64(rank as u64);
    let count = if rank == 1 { axes.len() } else { count };
    (0..count)
        .map(|n| {
            let groups = 1 + n % 3;
            let picked = (0..rank)
                .map(|r| {
                    if rank == 1 && r == 0 {
                        axes[n]
                    } else {
                        axes[rng.random_range(0..axes.len())]
                    }
                })
                .collect();
            Case {
                batch: 1 + n % 2,
                c_in: groups * (1 + (n / 3) % 2),
                c_out: groups * (1 + (n / 2) % 2),
                groups,
                axes: picked,
            }
        })
        .collect()
}

pub fn random(shape: &[usize], rng: &mut StdRng) -> ArrayD<f64> {
    ArrayD::from_shape_fn(IxDyn(shape), |_| rng.random_range(-1.0..1.0))
}

pub fn dot(a: &ArrayD<f64>, b: &ArrayD<f64>) -> f64 {
    a.iter().zip(b.iter()).map(|(x, y)| x * y).sum()
}
