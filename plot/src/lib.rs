//! Pictures of what the library computes: loss curves, heat maps of matrices, and grids of
//! pictures in labelled rows, grayscale ([`image_grid`]) or RGB with markers and a legend
//! ([`panel_grid`], in `panels.rs` with the layout both grids share). For the panels,
//! `colors.rs` turns class maps, grayscale images and heat maps into RGB ([`palette`],
//! [`class_colors`], [`gray_to_rgb`], [`sequential_colors`], [`blend`]).
//!
//! Every function draws into memory and writes a PNG file only once the whole picture is done,
//! so a refused input or a drawing failure never leaves a half-drawn file behind; the file is
//! written to a temporary name and renamed into place ([`write_atomically`]), so a failed write
//! never leaves a half-written one either.
//!
//! The build needs nothing beyond the Rust toolchain, and pictures come out identical on every
//! machine:
//! - Text uses Noto Sans (SIL Open Font License 1.1, bundled by the `notosans` crate) compiled
//!   into the binary and rasterised by `ab_glyph`, instead of plotters' default `ttf` feature,
//!   which needs fontconfig and FreeType on the machine.
//! - PNG files are encoded with the `png` crate directly, instead of plotters' `bitmap_encoder`
//!   feature, whose `image` dependency would double the plotting stack's compile time.

#![warn(missing_docs)]

use std::path::Path;
use std::sync::OnceLock;

use ndarray::Array2;
use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, KeyPointHint, NoDefaultFormatting, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use thiserror::Error;

use glyph_fix::GlyphFix;

mod colors;
mod panels;
pub use colors::{blend, class_colors, gray_to_rgb, palette, sequential_colors};
pub use panels::{LegendEntry, Mark, MarkShape, Panel, image_grid, panel_grid, panel_grid_with_columns};

/// Everything that can go wrong when drawing a picture.
///
/// Every variant names the refusing function (`op`), so a message reads on its own:
/// `image_grid: mismatched sizes: row 1 ("reconstruction"): image 2 is 28×27 but image 0 is 28×28`.
#[derive(Debug, Error)]
pub enum PlotError {
    /// Nothing to draw: no series, an empty series, no rows, an empty image or matrix.
    #[error("{op}: nothing to draw: {what}")]
    Empty {
        /// The refusing function.
        op: &'static str,
        /// What was empty.
        what: String,
    },
    /// Inputs that must agree in size do not.
    #[error("{op}: mismatched sizes: {what}")]
    Mismatch {
        /// The refusing function.
        op: &'static str,
        /// Which sizes disagree.
        what: String,
    },
    /// A setting or value the picture cannot be drawn with.
    #[error("{op}: invalid input: {what}")]
    Invalid {
        /// The refusing function.
        op: &'static str,
        /// What is wrong with it.
        what: String,
    },
    /// The picture would be too big to hold in memory comfortably.
    #[error(
        "{op}: the picture would be {width}×{height} px; the limit is {MAX_SIDE} px a side and {MAX_PIXELS} px in all"
    )]
    TooLarge {
        /// The refusing function.
        op: &'static str,
        /// Width the input asked for, in pixels.
        width: u64,
        /// Height the input asked for, in pixels.
        height: u64,
    },
    /// The output file name does not end in `.png`.
    #[error("{op}: {path}: only PNG files are written, so the file name must end in .png")]
    NotPng {
        /// The refusing function.
        op: &'static str,
        /// The path given.
        path: String,
    },
    /// plotters refused the bundled font.
    #[error("{op}: the bundled font could not be registered with plotters")]
    Font {
        /// The refusing function.
        op: &'static str,
    },
    /// plotters failed while drawing in memory.
    #[error("{op}: drawing failed: {reason}")]
    Draw {
        /// The refusing function.
        op: &'static str,
        /// plotters' message.
        reason: String,
    },
    /// The PNG file could not be written (missing directory, no permission, full disk, ...).
    #[error("{op}: could not write {path}: {reason}")]
    Write {
        /// The refusing function.
        op: &'static str,
        /// The file.
        path: String,
        /// The underlying error's message.
        reason: String,
    },
}

/// Largest picture side, in pixels. Far beyond any sensible figure; it exists so that a typo
/// such as `scale = 1000` fails fast instead of allocating gigabytes.
pub const MAX_SIDE: u64 = 16_384;
/// Largest picture area, in pixels (120 MB of RGB, plus as much again while encoding).
pub const MAX_PIXELS: u64 = 40_000_000;

/// The family plotters asks for when no font is named (axis labels, legends), so registering
/// under it makes every text element use the bundled font.
const FONT_FAMILY: &str = "sans-serif";

/// Registers the bundled Noto Sans (regular and bold) with plotters.
///
/// plotters measures text (to place labels and size legends) only with a registered font, so
/// every drawing function here calls this first; call it yourself only to draw text with
/// plotters directly. Registration happens once per process; later calls return the first
/// call's outcome.
pub fn register_default_font() -> Result<(), PlotError> {
    ensure_font("register_default_font")
}

fn ensure_font(op: &'static str) -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, notosans::REGULAR_TTF).is_ok()
            && plotters::style::register_font(FONT_FAMILY, FontStyle::Bold, notosans::BOLD_TTF).is_ok()
    });
    if ok { Ok(()) } else { Err(PlotError::Font { op }) }
}

/// Draws training curves: one line per series, x = epoch (1-based), y = loss.
///
/// `series` holds `(name, values)` pairs; `values[k]` is the loss after epoch `k + 1`. Series may
/// differ in length. The y axis is logarithmic when the finite values are all positive and span
/// more than a factor of 10, linear otherwise. Non-finite values (a diverged run) leave a gap in
/// their line instead of failing. The picture is 800×500 px.
///
/// Errors: no series, an empty series, no finite value at all, a path not ending in `.png`,
/// or a failed write.
pub fn loss_curves(path: &Path, title: &str, series: &[(&str, &[f64])]) -> Result<(), PlotError> {
    line_chart_impl("loss_curves", path, title, "epoch", "MSE loss", series)
}

/// [`loss_curves`] with the axis labels chosen by the caller, for curves that are not MSE
/// losses per epoch (accuracy, learning rate, gradient norm per step, ...).
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(&str, &[f64])],
) -> Result<(), PlotError> {
    line_chart_impl("line_chart", path, title, x_label, y_label, series)
}

/// Series colours (matplotlib's "tab10"): distinct from each other, also in grey print.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Up to this many points a series also gets a dot per point, so that short runs show where
/// the measurements are; beyond it the dots would only clutter the line.
const MARKER_MAX: usize = 40;

const LINE_CHART_SIZE: (u32, u32) = (800, 500);

fn line_chart_impl(
    op: &'static str,
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(&str, &[f64])],
) -> Result<(), PlotError> {
    check_png_path(op, path)?;
    if series.is_empty() {
        return Err(PlotError::Empty {
            op,
            what: "no series given".into(),
        });
    }
    if let Some((name, _)) = series.iter().find(|(_, v)| v.is_empty()) {
        return Err(PlotError::Empty {
            op,
            what: format!("series {name:?} has no values"),
        });
    }
    let finite = || {
        series
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .filter(|v| v.is_finite())
    };
    let lo = finite().fold(f64::INFINITY, f64::min);
    let hi = finite().fold(f64::NEG_INFINITY, f64::max);
    if lo > hi {
        return Err(PlotError::Invalid {
            op,
            what: "no series has a finite value".into(),
        });
    }
    ensure_font(op)?;
    let n_max = series.iter().map(|(_, v)| v.len()).max().unwrap_or(1);
    let chart = LineChart {
        title,
        x_label,
        y_label,
        series,
        n_max,
    };

    let buf = if lo > 0.0 && hi / lo > 10.0 {
        // Pad by 5% of the span in log space so that the extreme points do not sit on the frame;
        // computed on logarithms because hi / lo itself can overflow (1e-300 .. 1e300).
        let (l0, l1) = (lo.log10(), hi.log10());
        let pad = 0.05 * (l1 - l0);
        let (start, end) = (10f64.powf(l0 - pad), 10f64.powf(l1 + pad));
        let axis = if start > 0.0 && end.is_finite() {
            LogAxis { lo: start, hi: end }
        } else {
            LogAxis { lo, hi }
        };
        draw_in_memory(op, LINE_CHART_SIZE, |root| chart.draw(root, axis, 0.0))?
    } else {
        // 5% of the span, but never so little that the axis spans only a few ulps (constant or
        // nearly constant data), where tick placement degenerates.
        let magnitude = lo.abs().max(hi.abs());
        let pad = (0.05 * (hi - lo)).max(1e-3 * magnitude);
        let pad = if pad > 0.0 { pad } else { 1.0 };
        let range = (lo - pad)..(hi + pad);
        check_finite_range(op, &range)?;
        // Fine enough to tell neighbouring ticks apart, whatever 1-2-5 step plotters picks.
        let resolution = (range.end - range.start) / 50.0;
        draw_in_memory(op, LINE_CHART_SIZE, |root| chart.draw(root, range, resolution))?
    };
    write_png(op, path, LINE_CHART_SIZE, &buf)
}

fn check_finite_range(op: &'static str, range: &std::ops::Range<f64>) -> Result<(), PlotError> {
    if range.start.is_finite() && range.end.is_finite() {
        Ok(())
    } else {
        Err(PlotError::Invalid {
            op,
            what: "values too close to the largest f64 to fit an axis around them".into(),
        })
    }
}

struct LineChart<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    series: &'a [(&'a str, &'a [f64])],
    n_max: usize,
}

impl LineChart<'_> {
    // Generic over the y coordinate so that the linear and the logarithmic axis share one body.
    fn draw<Y>(&self, root: &Area, y_spec: Y, resolution: f64) -> DrawResult
    where
        Y: AsRangedCoord<Value = f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        // A 1..1 integer axis has zero width, so a single epoch still gets the axis 1..2.
        let x_end = (self.n_max as u64).max(2);
        let mut chart = ChartBuilder::on(root)
            .caption(self.title, title_font())
            .margin(16)
            .margin_right(28)
            .x_label_area_size(52)
            .y_label_area_size(72)
            .build_cartesian_2d(1u64..x_end, y_spec)?;
        chart
            .configure_mesh()
            .x_desc(self.x_label)
            .y_desc(self.y_label)
            .x_labels(10)
            .y_labels(8)
            .x_label_formatter(&|x| x.to_string())
            .y_label_formatter(&|y| format_tick(*y, resolution))
            .label_style(font(15.0))
            .axis_desc_style(font(17.0))
            .bold_line_style(RGBColor(215, 215, 215))
            .light_line_style(RGBColor(242, 242, 242))
            .draw()?;

        for (k, (name, values)) in self.series.iter().enumerate() {
            let color = PALETTE[k % PALETTE.len()];
            let line = color.stroke_width(2);
            // The legend entry hangs on an empty series so that a series without any finite
            // value still appears in the legend.
            chart
                .draw_series(LineSeries::new(std::iter::empty::<(u64, f64)>(), line))?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], line));
            let runs = finite_runs(values);
            for run in &runs {
                chart.draw_series(LineSeries::new(run.iter().copied(), line))?;
            }
            // A lone finite point between gaps draws no line, so it always gets a dot.
            let dots = runs
                .iter()
                .filter(|run| values.len() <= MARKER_MAX || run.len() == 1)
                .flatten();
            chart.draw_series(dots.map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .margin(12)
            .legend_area_size(32)
            .label_font(font(16.0))
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(160, 160, 160))
            .draw()?;
        Ok(())
    }
}

/// A base-10 logarithmic axis labelled at 1-2-5 steps while few decades are shown.
///
/// plotters' own log axis labels only powers of 10, which leaves a loss curve spanning 1.5
/// decades with one or two labels. Light grid lines go at every 1..9 × 10^k.
#[derive(Clone)]
struct LogAxis {
    lo: f64,
    hi: f64,
}

impl LogAxis {
    /// Values `m × 10^k` within the axis, for each mantissa `m`, keeping every `every`-th decade.
    fn points(&self, mantissas: &[f64], every: i32) -> Vec<f64> {
        let (first, last) = (self.lo.log10().floor() as i32, self.hi.log10().ceil() as i32);
        (first..=last)
            .filter(|k| k.rem_euclid(every) == 0)
            .flat_map(|k| mantissas.iter().map(move |m| m * 10f64.powi(k)))
            .filter(|v| (self.lo..=self.hi).contains(v))
            .collect()
    }
}

impl Ranged for LogAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let t = (v.ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln());
        // Only positive values reach here (the axis is chosen only for positive data), but a
        // non-finite position must still not turn into a wild pixel coordinate.
        let t = if t.is_finite() { t.clamp(-1.0, 2.0) } else { 0.0 };
        limit.0 + (t * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        let max = hint.max_num_points().max(1);
        if hint.weight().allow_light_points() {
            let all = self.points(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], 1);
            if all.len() <= max {
                return all;
            }
        }
        for mantissas in [&[1.0, 2.0, 5.0][..], &[1.0][..]] {
            let points = self.points(mantissas, 1);
            if points.len() <= max {
                return points;
            }
        }
        (2..)
            .map(|every| self.points(&[1.0], every))
            .find(|p| p.len() <= max)
            .unwrap_or_default()
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

impl ValueFormatter<f64> for LogAxis {
    fn format(value: &f64) -> String {
        format_tick(*value, 0.0)
    }
}

/// Splits a series into its maximal runs of finite values, as (epoch, value) points.
fn finite_runs(values: &[f64]) -> Vec<Vec<(u64, f64)>> {
    let mut runs = vec![];
    let mut run = vec![];
    for (k, &v) in values.iter().enumerate() {
        if v.is_finite() {
            run.push((k as u64 + 1, v));
        } else if !run.is_empty() {
            runs.push(std::mem::take(&mut run));
        }
    }
    if !run.is_empty() {
        runs.push(run);
    }
    runs
}

/// A tick label: no more digits than the axis needs, trailing zeros dropped, scientific
/// notation outside [0.001, 100000).
///
/// `resolution` is the smallest difference the labels must show (a fraction of the axis span),
/// so that ticks 0.9995, 1, 1.0005 do not all print as "1"; below it a value counts as 0, which
/// hides float noise such as 5.5e-17 for a tick meant to be 0. With `resolution = 0` a label
/// gets 4 significant digits.
fn format_tick(v: f64, resolution: f64) -> String {
    let a = v.abs();
    if a == 0.0 || a < resolution * 1e-3 {
        return "0".into();
    }
    if !a.is_finite() {
        return v.to_string();
    }
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    let exponent = a.log10().floor() as i32;
    if !(1e-3..1e5).contains(&a) {
        let digits = if resolution > 0.0 {
            exponent - resolution.log10().floor() as i32
        } else {
            1
        };
        let s = format!("{v:.*e}", digits.clamp(0, 15) as usize);
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        return format!("{}e{exp}", trim(mantissa));
    }
    let decimals = if resolution > 0.0 {
        -(resolution.log10().floor() as i32)
    } else {
        3 - exponent
    };
    trim(&format!("{v:.*}", decimals.clamp(0, 15) as usize))
}

/// A heat map's longer side aims at this many pixels...
const HEAT_TARGET_PX: usize = 600;
/// ... but cells get at least this big while the longer side stays within
/// [`HEAT_WIDE_PX`], so that the numbers fit in them (a 9×49 matrix is drawn 980 px wide
/// rather than with 12-px cells).
const HEAT_NUMBER_CELL: usize = 20;
const HEAT_WIDE_PX: usize = 1000;
/// Cells never get bigger than this, so that a 3×3 matrix is not drawn as a poster.
const HEAT_MAX_CELL: usize = 40;
/// A side of the matrix shorter than this many pixels gets cells up to twice as long that way
/// (a 4×64 matrix is a band, not a line; a 25×1 one a column, not a thread).
const HEAT_MIN_SIDE_PX: u64 = 120;
/// Cells at least this big get thin grid lines: a conv matrix is mostly zeros, drawn white,
/// and without lines one cannot count them.
const HEAT_GRID_MIN_CELL: u64 = 6;
/// Cells at least this tall get their value written in them, where it fits.
const HEAT_NUMBER_MIN_CELL: u64 = 16;
const HEAT_TITLE_H: u64 = 48;
const HEAT_SUBTITLE_H: u64 = 24;
const HEAT_TOP_AXIS: u64 = 52;
/// Room left of the row tick labels: tick mark, gap, the rotated row label.
const HEAT_LEFT_AXIS_EXTRA: u64 = 44;
const HEAT_TICK_SIZE: f64 = 14.0;
const HEAT_AXIS_DESC_SIZE: f64 = 17.0;
const HEAT_BOTTOM_PAD: u64 = 16;
const HEAT_BAR_GAP: u64 = 28;
const HEAT_BAR_W: u64 = 22;
const HEAT_BAR_LABELS: u64 = 70;
const HEAT_RIGHT_PAD: u64 = 12;
const HEAT_BAR_MIN_H: u64 = 160;
/// Ends of the diverging map (ColorBrewer RdBu), white in the middle.
const HEAT_NEG: (f64, f64, f64) = (33.0, 102.0, 172.0);
const HEAT_POS: (f64, f64, f64) = (178.0, 24.0, 43.0);
/// The sequential map (ColorBrewer Blues, from white): one hue getting darker, for matrices
/// without negative entries, so the whole scale is used and 0 is white as in the diverging one.
const HEAT_SEQUENTIAL: [(f64, f64, f64); 9] = [
    (255.0, 255.0, 255.0),
    (222.0, 235.0, 247.0),
    (198.0, 219.0, 239.0),
    (158.0, 202.0, 225.0),
    (107.0, 174.0, 214.0),
    (66.0, 146.0, 198.0),
    (33.0, 113.0, 181.0),
    (8.0, 81.0, 156.0),
    (8.0, 48.0, 107.0),
];
const HEAT_NAN: RGBColor = RGBColor(150, 150, 150);
const HEAT_BLOCK_LINE: RGBColor = RGBColor(40, 40, 40);

/// What else a [`heat_map_with`] shows besides the matrix.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeatMapOptions<'a> {
    /// A line under the title saying what the matrix is (e.g. the settings of the conv it is
    /// the matrix of); empty for none.
    pub subtitle: &'a str,
    /// `(rows, columns)` per block: dark lines are drawn between blocks, e.g. between the
    /// channels of a conv's matrix. 0 (or the whole side) draws none along that side.
    pub block: (usize, usize),
}

/// Draws a matrix as a heat map: one cell per entry, row 0 at the top, like a printed matrix.
///
/// The same as [`heat_map_with`] with no subtitle and no blocks.
///
/// Errors: as [`heat_map_with`].
pub fn heat_map(
    path: &Path,
    title: &str,
    matrix: &Array2<f64>,
    row_label: &str,
    col_label: &str,
) -> Result<(), PlotError> {
    heat_map_impl(
        "heat_map",
        path,
        title,
        matrix,
        row_label,
        col_label,
        &HeatMapOptions::default(),
    )
}

/// Draws a matrix as a heat map, with a subtitle and block lines (see [`HeatMapOptions`]).
///
/// Colours: when no finite entry is negative, a sequential one-hue scale: 0 white, any
/// positive entry from a light tint (just above 0) to dark blue (the largest entry); when signs mix, a diverging one, negative blue, zero white,
/// positive red, symmetric (±max |entry|) so that equal magnitudes get equal intensity. A colour
/// bar at the right gives the values. NaN entries are grey, ±∞ saturated. Where a cell is big
/// enough, its value is written in it (zeros are left blank: in a conv's matrix they are most
/// of it, and white already says 0).
///
/// The column axis is on top (labelled `col_label`), the row axis on the left (`row_label`,
/// turned upright; the picture is made tall enough for it), both with integer indices.
///
/// Size: the longer side of the matrix spans about 600 px, more (up to 1000 px) where that
/// makes cells 20 px, big enough for their numbers; at most 40 px a cell. Cells are square,
/// except that a side shorter than 120 px gets cells up to twice as long along it, so that
/// thin matrices (4×64, 25×1) stay readable.
///
/// Errors: a matrix with no rows or no columns, a picture above [`MAX_SIDE`] / [`MAX_PIXELS`],
/// a path not ending in `.png`, or a failed write.
///
/// # Example
/// ```
/// use adjoint_plot::{heat_map_with, HeatMapOptions};
/// use ndarray::arr2;
///
/// let a = arr2(&[[1.0, 2.0, 0.0], [0.0, 1.0, 2.0]]);
/// let path = std::env::temp_dir().join(format!("heat-doc-{}.png", std::process::id()));
/// let options = HeatMapOptions { subtitle: "kernel [1, 2], input of 3", block: (0, 0) };
/// heat_map_with(&path, "A", &a, "output cell", "input cell", &options)?;
/// assert!(path.exists());
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), adjoint_plot::PlotError>(())
/// ```
pub fn heat_map_with(
    path: &Path,
    title: &str,
    matrix: &Array2<f64>,
    row_label: &str,
    col_label: &str,
    options: &HeatMapOptions<'_>,
) -> Result<(), PlotError> {
    heat_map_impl("heat_map_with", path, title, matrix, row_label, col_label, options)
}

/// The colour scale of a heat map: which map, and the value at its saturated end.
#[derive(Clone, Copy, Debug, PartialEq)]
enum HeatScale {
    /// `[0, m]`, white to dark blue.
    Sequential(f64),
    /// `[-m, m]`, blue through white to red.
    Diverging(f64),
}

impl HeatScale {
    /// Sequential when no finite entry is negative; `m` is the largest finite magnitude (1 for
    /// an all-zero matrix, which still needs a non-empty scale).
    fn of<'a>(values: impl Iterator<Item = &'a f64>) -> HeatScale {
        let (mut max_abs, mut negative) = (0.0f64, false);
        for v in values.filter(|v| v.is_finite()) {
            max_abs = max_abs.max(v.abs());
            negative |= *v < 0.0;
        }
        let m = if max_abs > 0.0 { max_abs } else { 1.0 };
        if negative {
            HeatScale::Diverging(m)
        } else {
            HeatScale::Sequential(m)
        }
    }

    fn range(self) -> (f64, f64) {
        match self {
            HeatScale::Sequential(m) => (0.0, m),
            HeatScale::Diverging(m) => (-m, m),
        }
    }

    fn color(self, v: f64) -> RGBColor {
        match self {
            HeatScale::Sequential(m) => sequential(v, m),
            HeatScale::Diverging(m) => diverging(v, m),
        }
    }
}

/// The picture's sizes, in pixels, computed once (see [`heat_map_with`] for the rules).
struct HeatLayout {
    cell: (u64, u64),
    plot: (u64, u64),
    left_axis: u64,
    chart_w: u64,
    body_w: u64,
    /// Height of the band holding the plot, the colour bar and the row label.
    body_h: u64,
    /// Top of that band.
    body_top: u64,
    width: u64,
    height: u64,
}

/// Cell sides `(width, height)` for a `rows × cols` matrix.
fn heat_cells(rows: usize, cols: usize) -> (u64, u64) {
    let long = rows.max(cols);
    let cell = (HEAT_TARGET_PX / long)
        .max(HEAT_NUMBER_CELL.min(HEAT_WIDE_PX / long))
        .clamp(1, HEAT_MAX_CELL) as u64;
    // A short side gets longer cells, up to twice the other side, to reach the minimum.
    let stretch = |n: usize| {
        let want = HEAT_MIN_SIDE_PX.div_ceil(n as u64);
        want.clamp(cell, 2 * cell)
    };
    (stretch(cols), stretch(rows))
}

fn heat_impl_layout(
    op: &'static str,
    title: &str,
    options: &HeatMapOptions<'_>,
    (rows, cols): (usize, usize),
    row_label: &str,
) -> Result<HeatLayout, PlotError> {
    let cell = heat_cells(rows, cols);
    // plotters maps a range onto [first px, last px], so an extra pixel makes every cell
    // exactly `cell` px wide.
    let plot_w = (cols as u64).saturating_mul(cell.0).saturating_add(1);
    let plot_h = (rows as u64).saturating_mul(cell.1).saturating_add(1);
    let tick_font = font(HEAT_TICK_SIZE);
    let (tick_w, _) = measure(op, &tick_font, &(rows - 1).to_string())?;
    let left_axis = u64::from(tick_w) + HEAT_LEFT_AXIS_EXTRA;
    let chart_w = left_axis.saturating_add(plot_w);
    let body_w = chart_w.saturating_add(HEAT_BAR_GAP + HEAT_BAR_W + HEAT_BAR_LABELS + HEAT_RIGHT_PAD);
    let (title_w, _) = measure(op, &title_font(), title)?;
    let (subtitle_w, _) = measure(op, &font(HEAT_TICK_SIZE), options.subtitle)?;
    let width = body_w.max(u64::from(title_w.max(subtitle_w)) + 40);
    // The row label is written upright along the band: the band is at least as tall as it, so
    // that it is never cut off beside a short matrix.
    let (label_len, _) = measure(op, &font(HEAT_AXIS_DESC_SIZE), row_label)?;
    let body_h = plot_h.max(HEAT_BAR_MIN_H).max(u64::from(label_len) + 16);
    let subtitle_h = if options.subtitle.is_empty() {
        0
    } else {
        HEAT_SUBTITLE_H
    };
    let body_top = HEAT_TITLE_H + subtitle_h + HEAT_TOP_AXIS;
    let height = (body_top + HEAT_BOTTOM_PAD).saturating_add(body_h);
    Ok(HeatLayout {
        cell,
        plot: (plot_w, plot_h),
        left_axis,
        chart_w,
        body_w,
        body_h,
        body_top,
        width,
        height,
    })
}

/// The text written in a cell holding `v`: integers as such, others short (`0.25`, `1e-4`).
fn cell_text(v: f64) -> String {
    if v.is_finite() && v == v.round() && v.abs() < 1e6 {
        format!("{}", v as i64)
    } else {
        format_tick(v, 0.0)
    }
}

/// Black or white, whichever reads on `background`.
fn ink_on(background: RGBColor) -> RGBColor {
    let RGBColor(r, g, b) = background;
    let luma = 0.299 * f64::from(r) + 0.587 * f64::from(g) + 0.114 * f64::from(b);
    if luma < 140.0 { WHITE } else { BLACK }
}

fn heat_map_impl(
    op: &'static str,
    path: &Path,
    title: &str,
    matrix: &Array2<f64>,
    row_label: &str,
    col_label: &str,
    options: &HeatMapOptions<'_>,
) -> Result<(), PlotError> {
    check_png_path(op, path)?;
    let (rows, cols) = matrix.dim();
    if rows == 0 || cols == 0 {
        return Err(PlotError::Empty {
            op,
            what: format!("the matrix is {rows}×{cols}"),
        });
    }
    ensure_font(op)?;
    let scale = HeatScale::of(matrix.iter());
    let lay = heat_impl_layout(op, title, options, (rows, cols), row_label)?;
    let size = check_size(op, lay.width, lay.height)?;
    let (plot_w, plot_h) = lay.plot;
    let (cell_w, cell_h) = lay.cell;
    let tick_font = font(HEAT_TICK_SIZE);
    // Neighbouring column labels need their own width plus a gap; row labels their height.
    let (col_tick_w, tick_h) = measure(op, &tick_font, &(cols - 1).to_string())?;
    let col_spacing = u64::from(col_tick_w) + 14;
    let row_spacing = u64::from(tick_h) + 8;
    // The numbers in the cells: one size for all, and only the ones that fit.
    let number_size = (cell_h as f64 * 0.5).min(HEAT_TICK_SIZE);
    let mut numbers = Vec::new();
    if cell_h >= HEAT_NUMBER_MIN_CELL {
        let number_font = font(number_size);
        for ((i, j), &v) in matrix.indexed_iter() {
            if v == 0.0 || v.is_nan() {
                continue;
            }
            let text = cell_text(v);
            let (w, _) = measure(op, &number_font, &text)?;
            if u64::from(w) + 4 <= cell_w {
                numbers.push((i, j, text, ink_on(scale.color(v))));
            }
        }
    }
    // Bounded by MAX_SIDE now, so the i32/f64 conversions below are exact.
    let left = ((lay.width - lay.body_w) / 2) as i32;
    let plot_top = lay.body_top + (lay.body_h - plot_h) / 2;

    let buf = draw_in_memory(op, size, |root| {
        let centred = |f: FontDesc<'static>| f.into_text_style(root).pos(Pos::new(HPos::Center, VPos::Center));
        let mid_x = (size.0 / 2) as i32;
        root.draw(&Text::new(
            title,
            (mid_x, (HEAT_TITLE_H / 2) as i32),
            centred(title_font()),
        ))?;
        if !options.subtitle.is_empty() {
            let y = (HEAT_TITLE_H + HEAT_SUBTITLE_H / 2) as i32 - 6;
            root.draw(&Text::new(options.subtitle, (mid_x, y), centred(font(HEAT_TICK_SIZE))))?;
        }
        // The row label, upright and centred on the band; drawn here rather than by plotters,
        // which would clip it to the plot's height.
        let label_x = left + (HEAT_AXIS_DESC_SIZE / 2.0) as i32 + 2;
        let label_y = (lay.body_top + lay.body_h / 2) as i32;
        root.draw(&Text::new(
            row_label,
            (label_x, label_y),
            centred(font(HEAT_AXIS_DESC_SIZE)).transform(FontTransform::Rotate270),
        ))?;

        let chart_area = root.clone().shrink(
            (left, (plot_top - HEAT_TOP_AXIS) as i32),
            (lay.chart_w as u32, (HEAT_TOP_AXIS + plot_h) as u32),
        );
        let (r, c) = (rows as f64, cols as f64);
        // Integer coordinates sit at cell centres, so the index ticks land mid-cell; the
        // reversed y range puts row 0 at the top.
        let x_spec = IndexAxis {
            from: -0.5,
            to: c - 0.5,
            ticks: index_ticks(cols, plot_w, col_spacing),
        };
        let y_spec = IndexAxis {
            from: r - 0.5,
            to: -0.5,
            ticks: index_ticks(rows, plot_h, row_spacing),
        };
        let mut chart = ChartBuilder::on(&chart_area)
            .top_x_label_area_size(HEAT_TOP_AXIS as u32)
            .y_label_area_size(lay.left_axis as u32)
            .build_cartesian_2d(x_spec, y_spec)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(col_label)
            .label_style(font(HEAT_TICK_SIZE))
            .axis_desc_style(font(HEAT_AXIS_DESC_SIZE))
            .draw()?;
        chart.draw_series(matrix.indexed_iter().map(|((i, j), &v)| {
            let (x, y) = (j as f64, i as f64);
            Rectangle::new([(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)], scale.color(v).filled())
        }))?;
        if cell_w.min(cell_h) >= HEAT_GRID_MIN_CELL {
            let grid = RGBColor(215, 215, 215);
            let vertical = (1..cols).map(|j| j as f64 - 0.5).map(|x| [(x, -0.5), (x, r - 0.5)]);
            let horizontal = (1..rows).map(|i| i as f64 - 0.5).map(|y| [(-0.5, y), (c - 0.5, y)]);
            chart.draw_series(vertical.chain(horizontal).map(|p| PathElement::new(p, grid)))?;
        }
        let number_style = |ink: RGBColor| font(number_size).color(&ink).pos(Pos::new(HPos::Center, VPos::Center));
        chart.draw_series(
            numbers
                .iter()
                .map(|(i, j, text, ink)| Text::new(text.clone(), (*j as f64, *i as f64), number_style(*ink))),
        )?;
        // Block lines, 2 px wide: the edge of each block and the one beside it.
        let (block_r, block_c) = options.block;
        let between = |n: usize, block: usize| -> Vec<f64> {
            if block == 0 || block >= n {
                return vec![];
            }
            (1..n.div_ceil(block)).map(|b| (b * block) as f64 - 0.5).collect()
        };
        let thick = HEAT_BLOCK_LINE.stroke_width(2);
        for x in between(cols, block_c) {
            chart.draw_series([PathElement::new(vec![(x, -0.5), (x, r - 0.5)], thick)])?;
        }
        for y in between(rows, block_r) {
            chart.draw_series([PathElement::new(vec![(-0.5, y), (c - 0.5, y)], thick)])?;
        }
        chart.draw_series([Rectangle::new([(-0.5, -0.5), (c - 0.5, r - 0.5)], BLACK)])?;

        // The colour bar is drawn in pixels rather than as a second plotters chart: a chart
        // clips its labels to the bar's height, which cuts the labels at the ends in half.
        let x0 = left + (lay.chart_w + HEAT_BAR_GAP) as i32;
        let x1 = x0 + HEAT_BAR_W as i32 - 1;
        let y0 = lay.body_top as i32;
        let bar_h = lay.body_h as i32;
        let (lo, hi) = scale.range();
        let value_at = |py: f64| hi - (hi - lo) * py / f64::from(bar_h - 1);
        for py in 0..bar_h {
            let color = scale.color(value_at(f64::from(py)));
            root.draw(&PathElement::new(vec![(x0, y0 + py), (x1, y0 + py)], color))?;
        }
        root.draw(&Rectangle::new([(x0, y0), (x1, y0 + bar_h - 1)], BLACK))?;
        let label_style = font(HEAT_TICK_SIZE)
            .into_text_style(root)
            .pos(Pos::new(HPos::Left, VPos::Center));
        for t in bar_ticks(lo, hi) {
            let y = y0 + ((hi - t) / (hi - lo) * f64::from(bar_h - 1)).round() as i32;
            root.draw(&PathElement::new(vec![(x1, y), (x1 + 5, y)], BLACK))?;
            root.draw(&Text::new(format_tick(t, 0.0), (x1 + 9, y), label_style.clone()))?;
        }
        Ok(())
    })?;
    write_png(op, path, size, &buf)
}

/// A matrix index axis: cell `i` spans `[i - 0.5, i + 0.5]`, ticks only at chosen indices,
/// labels printed as integers. plotters' own `f64` axis would pick fractional ticks for small
/// matrices, and its `with_key_points` wrapper loses the label formatter.
#[derive(Clone)]
struct IndexAxis {
    from: f64,
    to: f64,
    ticks: Vec<f64>,
}

impl Ranged for IndexAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let t = (v - self.from) / (self.to - self.from);
        limit.0 + (t * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, _hint: H) -> Vec<f64> {
        self.ticks.clone()
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.from..self.to
    }
}

impl ValueFormatter<f64> for IndexAxis {
    fn format(value: &f64) -> String {
        format!("{}", value.round() as i64)
    }
}

/// Integer tick positions 0, s, 2s, ... with the smallest step s from 1, 2, 5, 10, 20, 50, ...
/// that leaves at least `min_px` pixels between neighbouring labels.
fn index_ticks(n: usize, axis_px: u64, min_px: u64) -> Vec<f64> {
    let max_labels = (axis_px / min_px).max(1) as usize;
    let step = (0u32..)
        .map_while(|k| 10usize.checked_pow(k / 3)?.checked_mul([1, 2, 5][k as usize % 3]))
        .find(|&s| n.div_ceil(s) <= max_labels)
        .unwrap_or(n.max(1));
    (0..n).step_by(step).map(|i| i as f64).collect()
}

/// Colour bar ticks on [lo, hi]: multiples of a 1-2-5 step giving about 6 intervals, plus the
/// ends themselves unless a tick is already close, so that the bar always tells its extremes.
fn bar_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let raw = (hi - lo) / 6.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|f| f * magnitude)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * magnitude);
    let (first, last) = ((lo / step).ceil() as i64, (hi / step).floor() as i64);
    let mut ticks: Vec<f64> = (first..=last).map(|k| k as f64 * step).collect();
    if first as f64 * step - lo > 0.3 * step {
        ticks.insert(0, lo);
    }
    if hi - last as f64 * step > 0.3 * step {
        ticks.push(hi);
    }
    ticks
}

/// The diverging colour of `v` on the scale [-m, m]: linear from blue through white to red.
fn diverging(v: f64, m: f64) -> RGBColor {
    if v.is_nan() {
        return HEAT_NAN;
    }
    let t = (v / m).clamp(-1.0, 1.0);
    let end = if t < 0.0 { HEAT_NEG } else { HEAT_POS };
    let s = t.abs();
    let mix = |e: f64| (255.0 + (e - 255.0) * s).round() as u8;
    RGBColor(mix(end.0), mix(end.1), mix(end.2))
}

/// The sequential colour of `v` on the scale [0, m]: white for 0 exactly, and from the first
/// tint of [`HEAT_SEQUENTIAL`] just above 0 to its darkest at `m`, piecewise linear. The step
/// at 0 is on purpose: in a sparse matrix, whether an entry is zero matters most, and the
/// smallest of nine taps must not look like a zero.
fn sequential(v: f64, m: f64) -> RGBColor {
    if v.is_nan() {
        return HEAT_NAN;
    }
    if v <= 0.0 {
        let (r, g, b) = HEAT_SEQUENTIAL[0];
        return RGBColor(r as u8, g as u8, b as u8);
    }
    let last = HEAT_SEQUENTIAL.len() - 1;
    let t = 1.0 + (v / m).clamp(0.0, 1.0) * (last - 1) as f64;
    let k = (t.floor() as usize).min(last - 1);
    let f = t - k as f64;
    let (a, b) = (HEAT_SEQUENTIAL[k], HEAT_SEQUENTIAL[k + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

type Area<'a> = DrawingArea<GlyphFix<BitMapBackend<'a>>, Shift>;
type DrawResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn font(size: f64) -> FontDesc<'static> {
    FontDesc::new(FontFamily::SansSerif, size, FontStyle::Normal)
}

fn title_font() -> FontDesc<'static> {
    FontDesc::new(FontFamily::SansSerif, 24.0, FontStyle::Bold)
}

/// Width and height of `text` as plotters will lay it out.
fn measure(op: &'static str, font: &FontDesc, text: &str) -> Result<(u32, u32), PlotError> {
    font.box_size(text).map_err(|e| PlotError::Draw {
        op,
        reason: e.to_string(),
    })
}

fn check_png_path(op: &'static str, path: &Path) -> Result<(), PlotError> {
    // Only PNG is written; refusing other names keeps `plot.jpg` from silently holding PNG
    // bytes, and fails before any drawing work.
    match path.extension().and_then(|e| e.to_str()) {
        Some(ext) if ext.eq_ignore_ascii_case("png") => Ok(()),
        _ => Err(PlotError::NotPng {
            op,
            path: path.display().to_string(),
        }),
    }
}

fn check_size(op: &'static str, width: u64, height: u64) -> Result<(u32, u32), PlotError> {
    if width > MAX_SIDE || height > MAX_SIDE || width.saturating_mul(height) > MAX_PIXELS {
        return Err(PlotError::TooLarge { op, width, height });
    }
    // Both fit: MAX_SIDE < u32::MAX.
    Ok((width as u32, height as u32))
}

/// Draws on a white RGB canvas held in memory and returns its bytes.
fn draw_in_memory(
    op: &'static str,
    size: (u32, u32),
    draw: impl FnOnce(&Area) -> DrawResult,
) -> Result<Vec<u8>, PlotError> {
    let mut buf = vec![0u8; size.0 as usize * size.1 as usize * 3];
    let drawn: DrawResult = (|| {
        let root = GlyphFix(BitMapBackend::with_buffer(&mut buf, size)).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
        Ok(())
    })();
    drawn.map_err(|e| PlotError::Draw {
        op,
        reason: e.to_string(),
    })?;
    Ok(buf)
}

fn write_png(op: &'static str, path: &Path, size: (u32, u32), buf: &[u8]) -> Result<(), PlotError> {
    let failed = |reason: String| PlotError::Write {
        op,
        path: path.display().to_string(),
        reason,
    };
    let png = encode_png(size, buf).map_err(|e| failed(e.to_string()))?;
    write_atomically(path, &png).map_err(|e| failed(e.to_string()))
}

/// Writes `bytes` to `path` whole or not at all: into a new temporary file in the same
/// directory, flushed to disk, then renamed over `path`.
///
/// A rename within one directory replaces the name in one step, so a reader of `path` sees the
/// old file or the new one, never a half-written one, and a failed write (full disk, a crash)
/// leaves an existing file as it was. Every PNG here is written this way, and so are adjoint's
/// weights (`adjoint::nn::io::save`): this crate sits below adjoint, so one function serves both.
///
/// # Errors
/// `path` has no file name (it is empty or ends in `..`), or creating, writing or renaming the
/// temporary file fails; the temporary file is removed again.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    static WRITES: AtomicU64 = AtomicU64::new(0);

    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path names no file"))?;
    // Hidden, and unique per process and per call, so that parallel writers never share one.
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(
        ".{}-{}.tmp",
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    let temp = path.with_file_name(temp_name);
    let mut file = std::fs::File::create_new(&temp)?;
    let written = file
        .write_all(bytes)
        // On disk before the rename: otherwise a crash soon after it can leave the name
        // pointing at an empty file on some file systems.
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&temp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// Encodes 8-bit RGB pixels as a PNG file with the `png` crate (plotters' own
/// `bitmap_encoder` feature would pull in the whole `image` crate, whose compilation alone
/// costs more than the rest of the plotting stack). Adaptive filtering keeps plots, mostly
/// flat colour, small.
fn encode_png((width, height): (u32, u32), rgb: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut png = Vec::new();
    let mut encoder = png::Encoder::new(&mut png, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_filter(png::Filter::Adaptive);
    let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
    writer.write_image_data(rgb).map_err(std::io::Error::other)?;
    writer.finish().map_err(std::io::Error::other)?;
    Ok(png)
}

/// The text-drawing fix, in its own module because plotters' `Color` and `BackendStyle`
/// traits both define `stroke_width` and must not meet in one scope.
mod glyph_fix {
    use std::sync::OnceLock;

    use ab_glyph::{Font, FontRef, ScaleFont};
    use plotters::prelude::DrawingBackend;
    use plotters::style::FontStyle;
    use plotters::style::text_anchor::{HPos, VPos};
    use plotters_backend::{BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind};

    /// The bundled faces, parsed once, for [`GlyphFix`].
    fn bundled_faces() -> Option<&'static (FontRef<'static>, FontRef<'static>)> {
        static FACES: OnceLock<Option<(FontRef<'static>, FontRef<'static>)>> = OnceLock::new();
        FACES
            .get_or_init(|| {
                let regular = FontRef::try_from_slice(notosans::REGULAR_TTF).ok()?;
                let bold = FontRef::try_from_slice(notosans::BOLD_TTF).ok()?;
                Some((regular, bold))
            })
            .as_ref()
    }

    /// A backend that draws text itself and passes everything else to the wrapped backend.
    ///
    /// plotters 0.3.7's `ab_glyph` text path places each glyph's bitmap at the pen position and
    /// drops the glyph's left side bearing (and rounds the pen to whole pixels), so letters sit
    /// unevenly: "o rigi nal". This draws the same glyphs at the same size, with the same layout
    /// box (so plotters' label placement still fits), but at the bearing-corrected, sub-pixel
    /// position.
    pub(super) struct GlyphFix<B>(pub(super) B);

    impl<B: DrawingBackend> DrawingBackend for GlyphFix<B> {
        type ErrorType = B::ErrorType;

        fn get_size(&self) -> (u32, u32) {
            self.0.get_size()
        }

        fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<B::ErrorType>> {
            self.0.ensure_prepared()
        }

        fn present(&mut self) -> Result<(), DrawingErrorKind<B::ErrorType>> {
            self.0.present()
        }

        fn draw_pixel(
            &mut self,
            point: BackendCoord,
            color: BackendColor,
        ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
            self.0.draw_pixel(point, color)
        }

        fn draw_line<S: BackendStyle>(
            &mut self,
            from: BackendCoord,
            to: BackendCoord,
            style: &S,
        ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
            self.0.draw_line(from, to, style)
        }

        fn draw_rect<S: BackendStyle>(
            &mut self,
            upper_left: BackendCoord,
            bottom_right: BackendCoord,
            style: &S,
            fill: bool,
        ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
            self.0.draw_rect(upper_left, bottom_right, style, fill)
        }

        fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
            &mut self,
            path: I,
            style: &S,
        ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
            self.0.draw_path(path, style)
        }

        fn draw_circle<S: BackendStyle>(
            &mut self,
            center: BackendCoord,
            radius: u32,
            style: &S,
            fill: bool,
        ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
            self.0.draw_circle(center, radius, style, fill)
        }

        fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
            &mut self,
            vert: I,
            style: &S,
        ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
            self.0.fill_polygon(vert, style)
        }

        fn blit_bitmap(
            &mut self,
            pos: BackendCoord,
            size: (u32, u32),
            src: &[u8],
        ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
            self.0.blit_bitmap(pos, size, src)
        }

        fn draw_text<S: BackendTextStyle>(
            &mut self,
            text: &str,
            style: &S,
            pos: BackendCoord,
        ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
            let color = style.color();
            let Some((regular, bold)) = bundled_faces() else {
                return self.0.draw_text(text, style, pos);
            };
            if color.alpha == 0.0 {
                return Ok(());
            }
            let face = if matches!(style.style(), FontStyle::Bold) {
                bold
            } else {
                regular
            };
            // Anchor arithmetic exactly as in plotters' default `draw_text`, on plotters' own layout
            // box, so that text lands where plotters reserved room for it.
            let ((min_x, min_y), (max_x, max_y)) = style
                .layout_box(text)
                .map_err(|e| DrawingErrorKind::FontError(Box::new(e)))?;
            let anchor = style.anchor();
            let dx = match anchor.h_pos {
                HPos::Left => 0,
                HPos::Right => -(max_x - min_x),
                HPos::Center => -(max_x - min_x) / 2,
            } - min_x;
            let dy = match anchor.v_pos {
                VPos::Top => 0,
                VPos::Center => -(max_y - min_y) / 2,
                VPos::Bottom => -(max_y - min_y),
            } - min_y;
            let transform = style.transform();
            let (w, h) = self.get_size();
            let size = style.size() as f32;
            let scaled = face.as_scaled(size);
            // plotters puts the baseline half a font size below the top of the layout box.
            let baseline = size / 2.0;
            let mut pen = 0.0f32;
            let mut previous = None;
            let mut result = Ok(());
            for c in text.chars() {
                let id = scaled.glyph_id(c);
                if let Some(p) = previous {
                    pen += scaled.kern(p, id);
                }
                previous = Some(id);
                let glyph = id.with_scale_and_position(size, ab_glyph::point(pen, baseline));
                pen += scaled.h_advance(id);
                let Some(outline) = face.outline_glyph(glyph) else {
                    continue; // a space, or a glyph the font lacks
                };
                let bounds = outline.px_bounds();
                let (gx, gy) = (bounds.min.x as i32 + dx, bounds.min.y as i32 + dy);
                outline.draw(|x, y, coverage| {
                    if result.is_err() || coverage <= 0.0 {
                        return;
                    }
                    let (x, y) = transform.transform(gx + x as i32, gy + y as i32);
                    let (x, y) = (pos.0 + x, pos.1 + y);
                    if x >= 0 && y >= 0 && (x as u32) < w && (y as u32) < h {
                        let ink = BackendColor {
                            alpha: color.alpha * f64::from(coverage.min(1.0)),
                            rgb: color.rgb,
                        };
                        result = self.0.draw_pixel((x, y), ink);
                    }
                });
                if result.is_err() {
                    break;
                }
            }
            result
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory per test, so tests running in parallel never share files.
    pub(crate) fn temp_dir(name: &str) -> PathBuf {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("adjoint-plot-{}-{n}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Width and height from the PNG header: signature, then the IHDR chunk.
    pub(crate) fn png_size(path: &Path) -> (u32, u32) {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG: {}", path.display());
        assert_eq!(&bytes[12..16], b"IHDR");
        let be = |b: &[u8]| u32::from_be_bytes(b.try_into().unwrap());
        (be(&bytes[16..20]), be(&bytes[20..24]))
    }

    #[test]
    fn loss_curves_writes_800x500_png_linear_and_log() {
        let dir = temp_dir("loss");
        let train: Vec<f64> = (0..30).map(|k| 1.0 / (1.0 + k as f64)).collect();
        let val: Vec<f64> = (0..25).map(|k| 1.2 / (1.0 + 0.8 * k as f64)).collect();
        let log_path = dir.join("log.png");
        loss_curves(&log_path, "Training", &[("train", &train), ("validation", &val)]).unwrap();
        assert_eq!(png_size(&log_path), (800, 500));

        let flat = [0.5, 0.45, f64::NAN, 0.41, 0.4];
        let lin_path = dir.join("linear.png");
        loss_curves(&lin_path, "Flat", &[("train", &flat)]).unwrap();
        assert_eq!(png_size(&lin_path), (800, 500));

        // Degenerate ranges: nearly constant, and wider than f64 can hold once padded.
        let near = dir.join("near.png");
        loss_curves(&near, "near", &[("a", &[1.0, 1.0 + 1e-15, 1.0])]).unwrap();
        let wide = dir.join("wide.png");
        loss_curves(&wide, "wide", &[("a", &[1e-300, 1e300])]).unwrap();
        assert!(matches!(
            loss_curves(&dir.join("huge.png"), "huge", &[("a", &[-1e308, 1e308])]),
            Err(PlotError::Invalid { .. })
        ));

        let one = dir.join("one.png");
        line_chart(&one, "One epoch", "step", "loss", &[("a", &[0.0])]).unwrap();
        assert_eq!(png_size(&one), (800, 500));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn loss_curves_refuses_bad_input() {
        let dir = temp_dir("loss-err");
        let p = dir.join("x.png");
        assert!(matches!(loss_curves(&p, "t", &[]), Err(PlotError::Empty { .. })));
        let err = loss_curves(&p, "t", &[("train", &[1.0]), ("val", &[])]).unwrap_err();
        assert!(err.to_string().contains("\"val\""), "{err}");
        assert!(matches!(
            loss_curves(&p, "t", &[("nan", &[f64::NAN, f64::INFINITY])]),
            Err(PlotError::Invalid { .. })
        ));
        assert!(matches!(
            loss_curves(&dir.join("x.jpg"), "t", &[("a", &[1.0])]),
            Err(PlotError::NotPng { .. })
        ));
        let missing = dir.join("no-such-dir").join("x.png");
        let err = loss_curves(&missing, "t", &[("a", &[1.0, 0.5])]).unwrap_err();
        assert!(matches!(err, PlotError::Write { .. }), "{err}");
        assert!(!p.exists(), "a refused call must not leave a file");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// The names in `dir`, sorted.
    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A PNG is written to a new file renamed over the old name, not into the old file: a
    /// second name for the old file (a hard link, or a reader that has it open) still sees the
    /// old picture, whole. Writing in place would change it too.
    #[test]
    fn a_png_replaces_the_file_instead_of_writing_into_it() {
        let dir = temp_dir("atomic");
        let (p, link) = (dir.join("loss.png"), dir.join("link.png"));
        loss_curves(&p, "first", &[("a", &[1.0, 0.5])]).unwrap();
        std::fs::hard_link(&p, &link).unwrap();
        let first = std::fs::read(&p).unwrap();
        loss_curves(&p, "second", &[("a", &[1.0, 0.5, 0.25])]).unwrap();
        assert_ne!(std::fs::read(&p).unwrap(), first, "the new picture was not written");
        assert_eq!(std::fs::read(&link).unwrap(), first, "the old file was written into");
        assert_eq!(listing(&dir), ["link.png", "loss.png"], "a temporary file was left");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn write_atomically_cleans_up_after_a_failed_write() {
        let dir = temp_dir("atomic-err");
        // The rename fails: the name is taken by a directory that is not empty.
        let taken = dir.join("taken.png");
        std::fs::create_dir_all(taken.join("inside")).unwrap();
        assert!(write_atomically(&taken, b"png").is_err());
        assert!(taken.join("inside").is_dir());
        assert_eq!(listing(&dir), ["taken.png"], "the temporary file was left");
        // No directory to write in: nothing is created.
        assert!(write_atomically(&dir.join("missing").join("x.png"), b"png").is_err());
        assert_eq!(listing(&dir), ["taken.png"]);
        let err = write_atomically(Path::new(".."), b"png").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Decodes a PNG written here into (width, RGB bytes).
    fn decode_rgb(path: &Path) -> (u32, Vec<u8>) {
        let bytes = std::fs::read(path).unwrap();
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().unwrap();
        let mut rgb = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut rgb).unwrap();
        rgb.truncate(info.buffer_size());
        (info.width, rgb)
    }

    #[test]
    fn heat_map_writes_png_with_exact_cells() {
        let dir = temp_dir("heat");
        let a = Array2::from_shape_fn((9, 25), |(i, j)| (i as f64 - j as f64 * 0.4).sin());
        let p = dir.join("a.png");
        heat_map(&p, "A", &a, "output index", "input index").unwrap();
        // 25 columns -> 24-px cells; the band is as tall as the 9 rows or the colour bar's
        // minimum, whichever is more.
        let (w, h) = png_size(&p);
        let fixed = HEAT_LEFT_AXIS_EXTRA + HEAT_BAR_GAP + HEAT_BAR_W + HEAT_BAR_LABELS + HEAT_RIGHT_PAD;
        let tick_w = u64::from(w) - fixed - (25 * 24 + 1);
        assert!((5..30).contains(&tick_w), "row tick labels {tick_w} px wide");
        assert_eq!(
            u64::from(h),
            HEAT_TITLE_H + HEAT_TOP_AXIS + HEAT_BAR_MIN_H.max(9 * 24 + 1) + HEAT_BOTTOM_PAD
        );

        let at = dir.join("at.png");
        heat_map(&at, "A transposed", &a.t().to_owned(), "input index", "output index").unwrap();
        assert_eq!(
            png_size(&at).1 as u64,
            HEAT_TITLE_H + HEAT_TOP_AXIS + 25 * 24 + 1 + HEAT_BOTTOM_PAD
        );

        let zeros = Array2::<f64>::zeros((1, 1));
        let p0 = dir.join("zero.png");
        heat_map(&p0, "zeros", &zeros, "r", "c").unwrap();
        assert!(png_size(&p0).0 > 0);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn thin_matrices_get_square_ish_readable_cells() {
        // 4×64: 15-px cells, twice as tall to reach 120 px; 25×1: 24-px cells, twice as wide.
        assert_eq!(heat_cells(4, 64), (15, 30));
        assert_eq!(heat_cells(25, 1), (48, 24));
        // 9×49 (the default duality A): 20-px cells, big enough for numbers.
        assert_eq!(heat_cells(9, 49), (20, 20));
        assert_eq!(heat_cells(3, 3), (40, 40));
        assert_eq!(heat_cells(400, 400), (2, 2));
        for (rows, cols) in [(4, 64), (25, 1), (1, 1), (2, 300)] {
            let (cw, ch) = heat_cells(rows, cols);
            assert!(cw <= 2 * ch && ch <= 2 * cw, "{rows}×{cols}: {cw}×{ch}");
        }
    }

    #[test]
    fn the_row_label_fits_beside_a_short_matrix() {
        let dir = temp_dir("heat-label");
        let p = dir.join("wide.png");
        let label = "output cell (row-major), a long label";
        let a = Array2::from_shape_fn((2, 40), |(i, j)| (i + j) as f64);
        heat_map(&p, "wide", &a, label, "input cell").unwrap();
        let (label_len, _) = measure("test", &font(HEAT_AXIS_DESC_SIZE), label).unwrap();
        let (_, h) = png_size(&p);
        assert!(
            u64::from(h) >= HEAT_TITLE_H + HEAT_TOP_AXIS + u64::from(label_len) + 16,
            "{h} px tall for a {label_len}-px label"
        );
        // The label's ink lies wholly inside the band: the rows above and below it are white
        // in the label's column strip.
        let (w, rgb) = decode_rgb(&p);
        let dark = |x: u32, y: u32| {
            let i = ((y * w + x) * 3) as usize;
            rgb[i] < 128
        };
        let strip = 0..24u32;
        let inked: Vec<u32> = (0..h).filter(|&y| strip.clone().any(|x| dark(x, y))).collect();
        let (first, last) = (inked[0], *inked.last().unwrap());
        assert!(last - first + 1 >= label_len * 9 / 10, "ink spans {first}..={last}");
        assert!(first > 0 && last < h - 1);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn non_negative_matrices_use_one_hue_and_mixed_signs_diverge() {
        let all_positive = [0.0, 1.0, 9.0];
        assert_eq!(HeatScale::of(all_positive.iter()), HeatScale::Sequential(9.0));
        assert_eq!(HeatScale::of([-1.0, 2.0].iter()), HeatScale::Diverging(2.0));
        assert_eq!(HeatScale::of([0.0, f64::NAN].iter()), HeatScale::Sequential(1.0));
        // The smallest tap of nine is not white on the sequential scale, and the scale's
        // ends are white and dark blue; on the diverging one it would be half as far from white.
        let one = sequential(1.0, 9.0);
        assert_ne!(one, WHITE);
        let distance = |c: RGBColor| 3.0 * 255.0 - f64::from(c.0) - f64::from(c.1) - f64::from(c.2);
        assert!(distance(one) > 1.5 * distance(diverging(1.0, 9.0)));

        // Drawn: a 3×3 matrix of 0..8 has its 0 cell white and its 8 cell the darkest blue,
        // with the value written in it in white.
        let dir = temp_dir("heat-seq");
        let p = dir.join("seq.png");
        let a = Array2::from_shape_fn((3, 3), |(i, j)| (3 * i + j) as f64);
        heat_map(&p, "seq", &a, "r", "c").unwrap();
        let (w, rgb) = decode_rgb(&p);
        let count = |c: [u8; 3]| rgb.chunks_exact(3).filter(|p| *p == c).count();
        assert!(count([8, 48, 107]) > 40 * 40 / 2, "no dark-blue cell");
        assert!(count([255, 255, 255]) > 0);
        assert!(count([178, 24, 43]) == 0, "red on an all-positive map");
        // The number 8, in white, inside the dark cell's bounding box.
        let dark: Vec<usize> = (0..rgb.len() / 3)
            .filter(|&i| rgb[3 * i..3 * i + 3] == [8, 48, 107])
            .collect();
        let (xs, ys): (Vec<usize>, Vec<usize>) = dark.iter().map(|&i| (i % w as usize, i / w as usize)).unzip();
        let (x0, x1) = (*xs.iter().min().unwrap(), *xs.iter().max().unwrap());
        let (y0, y1) = (*ys.iter().min().unwrap(), *ys.iter().max().unwrap());
        assert!(x1 - x0 < 45 && y1 - y0 < 45, "one cell: {x0}..{x1} × {y0}..{y1}");
        let white_inside = (y0..=y1)
            .flat_map(|y| (x0..=x1).map(move |x| (x, y)))
            .filter(|&(x, y)| rgb[3 * (y * w as usize + x)..][..3].iter().all(|&c| c > 180))
            .count();
        assert!(
            white_inside > 5,
            "no number in the dark cell {x0}..{x1} × {y0}..{y1}: {white_inside}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn heat_map_refuses_empty_matrix() {
        let dir = temp_dir("heat-err");
        let p = dir.join("x.png");
        for shape in [(0, 0), (0, 3), (3, 0)] {
            let err = heat_map(&p, "t", &Array2::zeros(shape), "r", "c").unwrap_err();
            assert!(matches!(err, PlotError::Empty { .. }), "{err}");
        }
        let long = Array2::<f64>::zeros((1, 100_000));
        assert!(matches!(
            heat_map(&p, "t", &long, "r", "c"),
            Err(PlotError::TooLarge { .. })
        ));
        assert!(matches!(
            heat_map(&dir.join("x.svg"), "t", &Array2::zeros((2, 2)), "r", "c"),
            Err(PlotError::NotPng { .. })
        ));
        assert!(!p.exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn ticks_are_short() {
        assert_eq!(format_tick(0.30000000000000004, 0.0), "0.3");
        assert_eq!(format_tick(1e-4, 0.0), "1e-4");
        assert_eq!(format_tick(2.5e-5, 0.0), "2.5e-5");
        assert_eq!(format_tick(1234.6, 0.0), "1235");
        assert_eq!(format_tick(5.5e-17, 0.01), "0");
        assert_eq!(format_tick(1.0005, 0.002 / 50.0), "1.0005");
        assert_eq!(format_tick(0.25, 2.5 / 50.0), "0.25");
        assert_eq!(format_tick(0.085, 0.04 / 50.0), "0.085");
        assert_eq!(format_tick(1.5e-4, 1e-4 / 50.0), "1.5e-4");
        assert_eq!(format_tick(250_000.0, 1e5 / 50.0), "2.5e5");
        assert_eq!(
            index_ticks(25, 600, 44),
            (0..25).step_by(2).map(|i| i as f64).collect::<Vec<_>>()
        );
        assert_eq!(index_ticks(9, 217, 24), (0..9).map(|i| i as f64).collect::<Vec<_>>());
        assert_eq!(index_ticks(200, 601, 44).len(), 10);
        assert_eq!(bar_ticks(-1.0, 1.0), vec![-1.0, -0.5, 0.0, 0.5, 1.0]);
        assert_eq!(bar_ticks(-3.0, 3.0), vec![-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]);
        assert_eq!(bar_ticks(-2.9, 2.9), vec![-2.9, -2.0, -1.0, 0.0, 1.0, 2.0, 2.9]);
        assert_eq!(bar_ticks(0.0, 9.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 9.0]);
        assert_eq!(bar_ticks(0.0, 36.0), vec![0.0, 10.0, 20.0, 30.0, 36.0]);
        assert_eq!(diverging(0.0, 1.0), WHITE);
        assert_eq!(diverging(2.0, 1.0), RGBColor(178, 24, 43));
        assert_eq!(sequential(0.0, 9.0), WHITE);
        assert_eq!(sequential(9.0, 9.0), RGBColor(8, 48, 107));
        assert_eq!(sequential(1e-12, 9.0), RGBColor(222, 235, 247));
        assert_eq!(sequential(-1.0, 9.0), WHITE);
        assert_eq!(cell_text(3.0), "3");
        assert_eq!(cell_text(-12.0), "-12");
        assert_eq!(cell_text(0.25), "0.25");
    }
}
