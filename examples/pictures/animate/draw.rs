//! The frames of `examples/pictures/animate`: what each frame shows, planned from the library's geometry,
//! and the drawing of it into an animated GIF.
//!
//! A module of its own so that `tests/pictures.rs` can include it with `#[path]` and check real
//! GIF files without running the example binary.
//!
//! Frames are drawn with plotters into an RGB buffer and encoded with the `gif` crate, rather
//! than through plotters' own GIF backend: that backend's feature pulls in the `image` crate,
//! which the library keeps out of its build (see `adjoint::plot`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, Glyph, PxScale, ScaleFont, point};
use adjoint::Tape;
use adjoint::ops::conv::views::conv_transpose_by_zero_insertion;
use adjoint::ops::conv::{AxisGeometry, ConvOptions, ConvTransposeOptions, conv2d};
use ndarray::{ArrayD, IxDyn};
use plotters::prelude::*;

#[path = "../user_error.rs"]
mod user_error;

#[path = "scatter.rs"]
mod scatter;

/// Any failure: the library refusing a setting (its own message), a setting too large to draw,
/// a drawing or encoding failure, or a failed write.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// A square, single-channel 2-D conv, as given on the command line.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Input side `i`.
    pub input: usize,
    /// Kernel side `k`.
    pub kernel: usize,
    /// Stride `s`.
    pub stride: usize,
    /// Zero padding `p` on every side.
    pub padding: usize,
    /// Dilation `d`.
    pub dilation: usize,
    /// The transposed conv's output padding. `None` takes `past_last_window(i)`, the one that
    /// makes the transposed conv return exactly the conv's input size, so the two pictures are a
    /// pair.
    pub output_padding: Option<usize>,
}

/// What a call wrote, for the caller to report and for the test to compare with the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// Frames in the file: one per output cell, `out_side²` (one per input cell, `in_side²`, for
    /// the scatter view).
    pub frames: usize,
    /// What one frame is for: "output cells" or "input cells".
    pub frame_cells: &'static str,
    /// Side of the output grid (for the scatter view, of the whole scatter, cropped cells
    /// included).
    pub out_side: usize,
    /// Picture size in pixels.
    pub width: u16,
    pub height: u16,
    /// File size in bytes.
    pub bytes: usize,
    /// Side of a grid cell, and the top-left corners of the drawn input grid (`in_side` cells a
    /// side, padding and inserted zeros included) and of the output grid, in pixels.
    pub cell: u16,
    pub in_side: usize,
    pub in_origin: (u16, u16),
    pub out_origin: (u16, u16),
}

/// Beyond these a picture stops being readable (cells of a few pixels) and a run stops being
/// quick; the limits are checked before anything is allocated, so absurd values fail at once.
const MAX_SETTING: usize = 64;
const MAX_GRID: usize = 96;
const MAX_FRAMES: usize = 1600;

/// Writes `conv.gif` (the padded input with the kernel's taps moving over it, the output
/// filling in) and `conv_transpose.gif` (Dumoulin & Visin's view: a stride-1 conv with the
/// flipped kernel over the conv's output stretched by inserted zeros and padded), one frame per
/// output cell, and `conv_transpose_scatter.gif` (d2l's view: each input cell of the transposed
/// conv stamps the scaled kernel into the output, overlaps adding), one frame per input cell,
/// into `dir`, each frame showing `frame_ms` (the last one four times as long).
///
/// All animations are planned before any file is written, so a setting the transposed conv
/// refuses leaves no conv.gif behind either.
pub fn write_gifs(dir: &Path, settings: &Settings, frame_ms: u16) -> Result<Vec<(PathBuf, Written)>, Error> {
    let conv = conv_plan(settings)?;
    let transposed = conv_transpose_plan(settings)?;
    let op = match settings.output_padding {
        Some(op) => op,
        None => AxisGeometry::new(settings.kernel, settings.stride, settings.padding, settings.dilation)
            .past_last_window(settings.input)
            .ok_or("no kernel window fits the padded input")?,
    };
    let scatter = scatter::scatter_plan(settings, conv.out, op)?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut written = Vec::new();
    for (name, plan) in [("conv.gif", &conv), ("conv_transpose.gif", &transposed)] {
        let path = dir.join(name);
        let info = render(&path, plan, frame_ms)?;
        written.push((path, info));
    }
    let path = dir.join("conv_transpose_scatter.gif");
    let info = scatter::render(&path, &scatter, frame_ms)?;
    written.push((path, info));
    Ok(written)
}

/// What a cell of the drawn input grid holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A cell of the op's input.
    Input,
    /// A zero added around the input by the padding (the conv's `p`, or the transposed view's
    /// `d(k−1)−p`).
    Padding,
    /// A zero added at the end by the transposed conv's `output_padding`.
    OutputPadding,
    /// A zero inserted between two input cells (transposed conv only).
    Inserted,
}

/// Everything the frames show, decided before any drawing.
struct Plan {
    title: String,
    subtitle: Vec<String>,
    /// Kind of each cell along one axis of the drawn input grid; the grid is square, and a 2-D
    /// cell is input only if both its row and its column are (see [`cell_kind`]).
    axis: Vec<Kind>,
    /// Cells of the stretched input that the transposed view crops away (`p > d(k−1)`, or at
    /// the end `p > d(k−1) + output_padding`), before and after the drawn axis, by kind: drawn
    /// hatched outside the grid, never visited by the kernel. Empty for the conv.
    cropped: (Vec<Kind>, Vec<Kind>),
    /// Whether some tap lands on each cell of the axis (a 2-D cell is read when its row and
    /// its column are); cells no tap reads are crossed out. All read in the transposed view.
    read: Vec<bool>,
    /// Side of the output grid.
    out: usize,
    /// How far the kernel moves between neighbouring output cells: `s` for the conv, 1 for
    /// the transposed conv seen as a stride-1 conv.
    step: usize,
    kernel: usize,
    dilation: usize,
    /// The number written on each tap, row-major `k × k`.
    taps: Vec<i64>,
    input_caption: String,
    output_caption: String,
}

/// The kernel with taps numbered 1, 2, … row-major, so that a tap's number names it and the
/// flip of the transposed view shows in the numbers.
fn numbered_kernel(k: usize) -> Result<ArrayD<f64>, Error> {
    Ok(ArrayD::from_shape_vec(
        IxDyn(&[1, 1, k, k]),
        (1..=k * k).map(|t| t as f64).collect(),
    )?)
}

/// Refuses settings too large to draw, before the library allocates anything for them.
fn check_drawable(s: &Settings) -> Result<(), Error> {
    for (flag, value) in [
        ("--input", s.input),
        ("--kernel", s.kernel),
        ("--stride", s.stride),
        ("--padding", s.padding),
        ("--dilation", s.dilation),
        ("--output-padding", s.output_padding.unwrap_or(0)),
    ] {
        if value > MAX_SETTING {
            return Err(format!("{flag} {value} is more than a picture can show (at most {MAX_SETTING})").into());
        }
    }
    let padded = s.input + 2 * s.padding;
    if padded > MAX_GRID {
        return Err(format!("the padded input has {padded} cells a side; at most {MAX_GRID} are drawn").into());
    }
    Ok(())
}

fn frames_ok(side: usize) -> Result<(), Error> {
    if side * side > MAX_FRAMES {
        return Err(format!(
            "the output is {side}×{side}: {} frames, more than the {MAX_FRAMES} drawn; pick smaller sizes",
            side * side
        )
        .into());
    }
    Ok(())
}

fn conv_plan(s: &Settings) -> Result<Plan, Error> {
    check_drawable(s)?;
    let (i, k, st, p, d) = (s.input, s.kernel, s.stride, s.padding, s.dilation);
    // The library's conv refuses what it refuses, with its own message; its output size is the
    // one the frames must cover.
    let tape = Tape::<f64>::new();
    let y = conv2d(
        tape.constant(ArrayD::ones(IxDyn(&[1, 1, i, i]))),
        tape.constant(numbered_kernel(k)?),
        None,
        &ConvOptions::new().stride(st).padding(p).dilation(d),
    )
    .map_err(|e| user_error::in_flag_terms(&e, &flags(s)))?;
    let axis = AxisGeometry::new(k, st, p, d);
    // Defined whenever conv2d accepted the settings.
    let defined = || format!("no {k}×{k} kernel window fits the input of {i} padded by {p}");
    let o = axis.conv_output_size(i).ok_or_else(defined)?;
    if y.shape()[2..] != [o, o] {
        return Err(format!("conv2d gave {:?} but the geometry {o}", y.shape()).into());
    }
    frames_ok(o)?;
    let unread_cells = axis.unread_cells(i).ok_or_else(defined)?;
    let unread_inputs = axis.unread_inputs(i).ok_or_else(defined)?;
    let mut subtitle = vec![format!(
        "one frame per output cell: the kernel (k_e = d(k−1)+1 = {}) moves {st} cell{} at a time",
        axis.effective_kernel(),
        if st == 1 { "" } else { "s" }
    )];
    subtitle.extend(unread_lines(
        axis.past_last_window(i).ok_or_else(defined)?,
        p,
        &unread_inputs,
    ));
    Ok(Plan {
        title: format!("conv: i={i} k={k} s={st} p={p} d={d} → o={o}"),
        subtitle,
        axis: (0..i + 2 * p)
            .map(|q| {
                if (p..p + i).contains(&q) {
                    Kind::Input
                } else {
                    Kind::Padding
                }
            })
            .collect(),
        cropped: (Vec::new(), Vec::new()),
        read: (0..i + 2 * p).map(|q| !unread_cells.contains(&q)).collect(),
        out: o,
        step: st,
        kernel: k,
        dilation: d,
        taps: (1..=(k * k) as i64).collect(),
        input_caption: format!("input {i}×{i}, padded by {p}"),
        output_caption: format!("output {o}×{o}"),
    })
}

fn conv_transpose_plan(s: &Settings) -> Result<Plan, Error> {
    check_drawable(s)?;
    let (k, st, p, d) = (s.kernel, s.stride, s.padding, s.dilation);
    // The transposed conv is drawn as the adjoint of the conv with these settings: its input is
    // that conv's output.
    let conv = conv_plan(s)?;
    let o = conv.out;
    let axis = AxisGeometry::new(k, st, p, d);
    let op = match s.output_padding {
        Some(op) => op,
        None => axis
            .past_last_window(s.input)
            .ok_or("no kernel window fits the padded input")?,
    };
    // Sized by the geometry first, so that a too-large picture fails before any allocation.
    if let Some(n) = axis.conv_transpose_output_size(o, op) {
        frames_ok(n)?;
        let padded = n + axis.effective_kernel() - 1;
        if padded > MAX_GRID {
            return Err(
                format!("the stretched, padded input has {padded} cells a side; at most {MAX_GRID} are drawn").into(),
            );
        }
    }
    // Input cells numbered 1.. (never 0), so the stretched input tells them from inserted zeros.
    let x = ArrayD::from_shape_vec(IxDyn(&[1, 1, o, o]), (1..=o * o).map(|v| v as f64).collect())?;
    let opts = ConvTransposeOptions::new()
        .stride(st)
        .padding(p)
        .dilation(d)
        .output_padding(op);
    let steps = conv_transpose_by_zero_insertion(&x, &numbered_kernel(k)?, &opts)
        .map_err(|e| user_error::in_flag_terms(&e, &flags(s)))?;
    let n = axis
        .conv_transpose_output_size(o, op)
        .ok_or("the transposed conv's output would be empty: pick a smaller --padding")?;
    if steps.y.shape()[2..] != [n, n] {
        return Err(format!(
            "the zero-insertion view gave {:?} but the geometry {n}",
            steps.y.shape()
        )
        .into());
    }
    // Dumoulin & Visin's padding d(k−1) − p before the stretched input (a crop if negative); the
    // rest of the padded axis past the stretched input is padding, the last `op` cells of it
    // output padding (unless cropping at the end ate into them).
    let before = (d * (k - 1)) as isize - p as isize;
    let stretched_len = steps.stretched.shape()[2] as isize;
    let padded_len = steps.padded.shape()[2] as isize;
    let stretched_kind = |at: isize| {
        if steps.stretched[[0, 0, at as usize, 0]] != 0.0 {
            Kind::Input
        } else {
            Kind::Inserted
        }
    };
    let trailing = (padded_len - before - stretched_len).max(0);
    let output_padding_from = padded_len - trailing.min(op as isize);
    let axis_kinds: Vec<Kind> = (0..padded_len)
        .map(|q| {
            let at = q - before;
            if (0..stretched_len).contains(&at) {
                stretched_kind(at)
            } else if q >= output_padding_from {
                Kind::OutputPadding
            } else {
                Kind::Padding
            }
        })
        .collect();
    // What the crop removes: the first −before stretched cells, and those past the padded end.
    let cropped = (
        (0..(-before).max(0)).map(stretched_kind).collect(),
        (padded_len - before..stretched_len).map(stretched_kind).collect(),
    );
    let (pad_text, caption) = if before >= 0 {
        (format!("padded by d(k−1)−p = {before}"), "stretched and padded")
    } else {
        (format!("cropped by p−d(k−1) = {}", -before), "stretched and cropped")
    };
    Ok(Plan {
        title: format!("transposed conv: i={o} k={k} s={st} p={p} d={d} op={op} → o={n}"),
        subtitle: vec![
            format!(
                "as a stride-1 conv: {} zero{} inserted between input cells, {pad_text} (+{op} at the end),",
                st - 1,
                if st == 2 { "" } else { "s" }
            ),
            "and the kernel flipped: its tap numbers run backwards".to_string(),
        ],
        read: vec![true; axis_kinds.len()],
        axis: axis_kinds,
        cropped,
        out: n,
        step: 1,
        kernel: k,
        dilation: d,
        taps: steps.flipped_w.iter().map(|&v| v as i64).collect(),
        input_caption: format!("input {o}×{o}, {caption}"),
        output_caption: format!("output {n}×{n}"),
    })
}

/// A 2-D cell is input only if its row and its column both are; padding wins over output
/// padding and both over an inserted zero, since a padding row holds nothing but zeros added
/// around the input.
fn cell_kind(row: Kind, col: Kind) -> Kind {
    match (row, col) {
        (Kind::Padding, _) | (_, Kind::Padding) => Kind::Padding,
        (Kind::OutputPadding, _) | (_, Kind::OutputPadding) => Kind::OutputPadding,
        (Kind::Input, Kind::Input) => Kind::Input,
        _ => Kind::Inserted,
    }
}

/// The kinds of the cells no tap reads (crossed out), for the legend.
fn unread_kinds(plan: &Plan) -> Vec<Kind> {
    let mut kinds = Vec::new();
    for (&row, &row_read) in plan.axis.iter().zip(&plan.read) {
        for (&col, &col_read) in plan.axis.iter().zip(&plan.read) {
            let kind = cell_kind(row, col);
            let unread = !(row_read && col_read);
            if unread && !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
    }
    kinds
}

/// The caption lines on what the conv never reads, per axis (rows and columns alike): the `a`
/// cells of the padded input past the last window (padding first, then input), and the input
/// cells no tap reads, which with dilation can lie anywhere.
fn unread_lines(a: usize, p: usize, unread_inputs: &[usize]) -> Vec<String> {
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let mut lines = Vec::new();
    if a > 0 {
        let what = if a <= p {
            "padding (crossed orange)".to_string()
        } else if p == 0 {
            "input".to_string()
        } else {
            format!("{} of input, then the {p} of padding", a - p)
        };
        lines.push(format!(
            "a = (i + 2p − k_e) mod s = {a}: the last {a} padded row{0} and column{0} lie past the last window: {what}",
            plural(a)
        ));
    }
    if unread_inputs.is_empty() {
        lines.push("every input cell is read".to_string());
    } else {
        let list: Vec<String> = unread_inputs.iter().map(|j| j.to_string()).collect();
        lines.push(format!(
            "input row{0} and column{0} {1} (from 0) are never read (crossed red): no tap lands on them",
            plural(unread_inputs.len()),
            list.join(", ")
        ));
    }
    lines
}

/// What the conv's picture says about the cells it never reads: its caption lines and legend
/// labels, for the tests.
pub fn unread_captions(s: &Settings) -> Result<(Vec<String>, Vec<String>), Error> {
    let plan = conv_plan(s)?;
    let legend = layout(&plan)?.legend.into_iter().map(|item| item.label).collect();
    Ok((plan.subtitle, legend))
}

/// The legend labels of both pictures (the conv's, the transposed conv's), for the tests.
// Only tests/pictures.rs, which includes this module too, calls it; the example does not.
#[allow(dead_code)]
pub fn legends(s: &Settings) -> Result<[Vec<String>; 2], Error> {
    let labels = |plan: &Plan| -> Result<Vec<String>, Error> {
        Ok(layout(plan)?.legend.into_iter().map(|item| item.label).collect())
    };
    Ok([labels(&conv_plan(s)?)?, labels(&conv_transpose_plan(s)?)?])
}

/// The library's names for the settings, with the flags that set them and their values.
fn flags(s: &Settings) -> [(&'static str, &'static str, usize); 6] {
    [
        ("x", "--input", s.input),
        ("w", "--kernel", s.kernel),
        ("stride", "--stride", s.stride),
        ("padding", "--padding", s.padding),
        ("dilation", "--dilation", s.dilation),
        ("output_padding", "--output-padding", s.output_padding.unwrap_or(0)),
    ]
}

// Dumoulin & Visin's colours: blue input, white dashed padding, cyan output, a dark kernel.
const INPUT: RGBColor = RGBColor(110, 160, 225);
const INSERTED: RGBColor = RGBColor(222, 222, 222);
const CELL_LINE: RGBColor = RGBColor(90, 90, 90);
const PAD_LINE: RGBColor = RGBColor(150, 150, 150);
const TAP_ON_INPUT: RGBColor = RGBColor(25, 60, 140);
const TAP_ON_ZERO: RGBColor = RGBColor(150, 170, 210);
const FOOTPRINT: RGBColor = RGBColor(15, 30, 80);
const OUT_PENDING: RGBColor = RGBColor(245, 245, 245);
const OUT_DONE: RGBColor = RGBColor(130, 215, 200);
const OUT_CURRENT: RGBColor = RGBColor(20, 140, 125);
const TEXT: RGBColor = RGBColor(20, 20, 20);
const NEVER_READ: RGBColor = RGBColor(200, 60, 60);
const PADDING_NEVER_READ: RGBColor = RGBColor(235, 150, 40);
/// Output padding: a pale yellow behind the padding's dashes, so it tells from `p`'s padding.
const OUTPUT_PADDING: RGBColor = RGBColor(250, 235, 180);
/// Cropped cells: light grey, hatched.
const CROPPED: RGBColor = RGBColor(238, 238, 238);
const CROP_LINE: RGBColor = RGBColor(175, 175, 175);
/// Every colour above, so the GIF palette holds each one exactly.
const NAMED: [RGBColor; 22] = [
    scatter::SHADES[1],
    scatter::SHADES[2],
    scatter::SHADES[3],
    scatter::SHADES[4],
    OUTPUT_PADDING,
    CROPPED,
    CROP_LINE,
    WHITE,
    INPUT,
    INSERTED,
    CELL_LINE,
    PAD_LINE,
    TAP_ON_INPUT,
    TAP_ON_ZERO,
    FOOTPRINT,
    OUT_PENDING,
    OUT_DONE,
    OUT_CURRENT,
    TEXT,
    NEVER_READ,
    PADDING_NEVER_READ,
    BLACK,
];

const MARGIN: i32 = 16;
const TITLE_SIZE: f32 = 20.0;
const TEXT_SIZE: f32 = 14.0;
const LINE_GAP: i32 = 6;
const GRID_GAP: i32 = 48;
const SWATCH: i32 = 14;
/// The input grid aims at this many pixels a side.
const GRID_TARGET: usize = 330;

/// Where everything goes; the same for every frame.
struct Layout {
    cell: i32,
    width: u32,
    height: u32,
    subtitle_y: Vec<i32>,
    grid: (i32, i32),
    out: (i32, i32),
    caption_y: i32,
    legend: Vec<LegendItem>,
}

#[derive(Clone, Copy)]
enum Swatch {
    Cell(Kind),
    /// A cell of the stretched input cropped away.
    Cropped,
    Tap,
    /// A tap on a zero (padding, output padding or an inserted zero): it adds nothing.
    TapOnZero,
    Done,
    Current,
    /// The scatter view's shade of an output cell written by this many stamps.
    Shade(usize),
    /// The cross on a cell of this kind that no tap reads.
    NeverRead(Kind),
}

fn layout(plan: &Plan) -> Result<Layout, Error> {
    let side = plan.axis.len();
    let (crop_before, crop_after) = (plan.cropped.0.len(), plan.cropped.1.len());
    // The drawn input grid: the padded axis, and the cropped cells outside it.
    let drawn = crop_before + side + crop_after;
    let cell = (GRID_TARGET / drawn).clamp(6, 44) as i32;
    let drawn_px = drawn as i32 * cell;
    let out_px = plan.out as i32 * cell;
    let text_h = TEXT_SIZE as i32 + LINE_GAP;
    let (subtitle_y, top) = heading_lines(plan.subtitle.len());
    let grids_h = drawn_px.max(out_px);
    let crop_px = crop_before as i32 * cell;
    let grid = (MARGIN + crop_px, top + (grids_h - drawn_px) / 2 + crop_px);
    let out = (MARGIN + drawn_px + GRID_GAP, top + (grids_h - out_px) / 2);
    let caption_y = top + grids_h + 10;
    let legend_y = caption_y + text_h + 8;

    let mut legend = vec![(Swatch::Cell(Kind::Input), "input".to_string())];
    let zeros = [
        (Kind::Padding, "padding zero"),
        (Kind::OutputPadding, "output padding zero"),
        (Kind::Inserted, "inserted zero"),
    ];
    for (kind, label) in zeros {
        if plan.axis.contains(&kind) {
            legend.push((Swatch::Cell(kind), label.to_string()));
        }
    }
    if !(plan.cropped.0.is_empty() && plan.cropped.1.is_empty()) {
        legend.push((Swatch::Cropped, "cropped: p > d(k−1)".to_string()));
    }
    legend.push((Swatch::Tap, "tap on an input cell".to_string()));
    if plan.axis.iter().any(|&kind| kind != Kind::Input) {
        legend.push((Swatch::TapOnZero, "tap on a zero (adds nothing)".to_string()));
    }
    for (kind, swatch, label) in [
        (Kind::Input, Swatch::NeverRead(Kind::Input), "input never read"),
        (Kind::Padding, Swatch::NeverRead(Kind::Padding), "padding never read"),
    ] {
        if unread_kinds(plan).contains(&kind) {
            legend.push((swatch, label.to_string()));
        }
    }
    legend.push((Swatch::Done, "computed".to_string()));
    legend.push((Swatch::Current, "this frame".to_string()));

    let width = (MARGIN + drawn_px + GRID_GAP + out_px + MARGIN).max(heading_width(&plan.title, &plan.subtitle)?);
    let (legend, legend_h) = legend_lines(legend, width - 2 * MARGIN, legend_y)?;
    let height = legend_y + legend_h + MARGIN;
    Ok(Layout {
        cell,
        width: width as u32,
        height: height as u32,
        subtitle_y,
        grid,
        out,
        caption_y,
        legend,
    })
}

/// Places legend entries left to right from `MARGIN`, wrapping onto a new line where the next
/// would pass `max_w`: the entries with their top-left corners, and the legend's height.
fn legend_lines(entries: Vec<(Swatch, String)>, max_w: i32, top: i32) -> Result<(Vec<LegendItem>, i32), Error> {
    let line_h = SWATCH + LINE_GAP;
    let (mut x, mut y) = (MARGIN, top);
    let mut placed = Vec::with_capacity(entries.len());
    for (swatch, label) in entries {
        let w = SWATCH + 6 + text_width(&label, TEXT_SIZE, false)?;
        if x > MARGIN && x + w > MARGIN + max_w {
            (x, y) = (MARGIN, y + line_h);
        }
        placed.push(LegendItem {
            swatch,
            label,
            at: (x, y),
        });
        x += w + 18;
    }
    Ok((placed, y + SWATCH - top))
}

/// The top of each subtitle line under the title at [`MARGIN`], and the top of what follows.
fn heading_lines(lines: usize) -> (Vec<i32>, i32) {
    let text_h = TEXT_SIZE as i32 + LINE_GAP;
    let subtitle_y: Vec<i32> = (0..lines as i32)
        .map(|l| MARGIN + TITLE_SIZE as i32 + LINE_GAP + l * text_h)
        .collect();
    let top = subtitle_y.last().copied().unwrap_or(MARGIN + TITLE_SIZE as i32) + text_h + 10;
    (subtitle_y, top)
}

/// The width the title and subtitle need, margins included.
fn heading_width(title: &str, subtitle: &[String]) -> Result<i32, Error> {
    let mut width = text_width(title, TITLE_SIZE, true)?;
    for line in subtitle {
        width = width.max(text_width(line, TEXT_SIZE, false)?);
    }
    Ok(2 * MARGIN + width)
}

/// Queues the title and the subtitle lines.
fn push_heading(title: &str, subtitle: &[String], subtitle_y: &[i32], labels: &mut Vec<Label>) {
    labels.push(Label {
        bold: true,
        ..Label::new(title, (MARGIN, MARGIN + TITLE_SIZE as i32 / 2), TITLE_SIZE)
    });
    for (line, &y) in subtitle.iter().zip(subtitle_y) {
        labels.push(Label::new(line, (MARGIN, y + TEXT_SIZE as i32 / 2), TEXT_SIZE));
    }
}

/// One legend entry where it is drawn: its key's top-left corner.
struct LegendItem {
    swatch: Swatch,
    label: String,
    at: (i32, i32),
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// A line of text, written once the shapes under it are drawn.
struct Label {
    text: String,
    at: (i32, i32),
    size: f32,
    bold: bool,
    color: RGBColor,
    /// Centred on `at` (tap numbers); otherwise `at` is the left end, vertically centred.
    centred: bool,
}

impl Label {
    fn new(text: impl Into<String>, at: (i32, i32), size: f32) -> Self {
        Label {
            text: text.into(),
            at,
            size,
            bold: false,
            color: TEXT,
            centred: false,
        }
    }
}

/// The bundled Noto Sans faces (regular, bold), parsed once.
///
/// Text is rasterised here with `ab_glyph` rather than through plotters: plotters 0.3.7 drops
/// each glyph's left side bearing, so letters sit unevenly ("con v"), and the library's fix for
/// that is private to `adjoint::plot`. The font is the one `adjoint::plot` bundles.
fn faces() -> Result<&'static [FontRef<'static>; 2], Error> {
    static FACES: OnceLock<Option<[FontRef<'static>; 2]>> = OnceLock::new();
    FACES
        .get_or_init(|| {
            let regular = FontRef::try_from_slice(notosans::REGULAR_TTF).ok()?;
            let bold = FontRef::try_from_slice(notosans::BOLD_TTF).ok()?;
            Some([regular, bold])
        })
        .as_ref()
        .ok_or_else(|| "the bundled Noto Sans does not parse".into())
}

/// The glyphs of one line laid out with kerning from a pen at x = 0 on the baseline, with the
/// face, the line's advance width, and its ascent and descent.
fn shape_line(
    text: &str,
    size: f32,
    bold: bool,
) -> Result<(Vec<Glyph>, &'static FontRef<'static>, f32, f32, f32), Error> {
    let face = &faces()?[usize::from(bold)];
    let scaled = face.as_scaled(PxScale::from(size));
    let (mut pen, mut previous, mut glyphs) = (0.0f32, None, Vec::new());
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(p) = previous {
            pen += scaled.kern(p, id);
        }
        previous = Some(id);
        glyphs.push(id.with_scale_and_position(size, point(pen, 0.0)));
        pen += scaled.h_advance(id);
    }
    Ok((glyphs, face, pen, scaled.ascent(), scaled.descent()))
}

fn text_width(text: &str, size: f32, bold: bool) -> Result<i32, Error> {
    Ok(shape_line(text, size, bold)?.2.ceil() as i32)
}

/// Writes a label into the RGB buffer, anti-aliased by blending towards its colour.
fn draw_label(rgb: &mut [u8], (width, height): (u32, u32), label: &Label) -> Result<(), Error> {
    let (glyphs, face, advance, ascent, descent) = shape_line(&label.text, label.size, label.bold)?;
    // Vertically centred on the ink's usual extent: from the ascent down to the descent.
    let baseline = label.at.1 as f32 + (ascent + descent) / 2.0;
    let left = label.at.0 as f32 - if label.centred { advance / 2.0 } else { 0.0 };
    let ink = [label.color.0, label.color.1, label.color.2].map(f32::from);
    for mut glyph in glyphs {
        glyph.position = point(left + glyph.position.x, baseline);
        let Some(outline) = face.outline_glyph(glyph) else {
            continue; // a space, or a glyph the font lacks
        };
        let bounds = outline.px_bounds();
        outline.draw(|x, y, coverage| {
            let (px, py) = (bounds.min.x as i64 + i64::from(x), bounds.min.y as i64 + i64::from(y));
            if px < 0 || py < 0 || px >= i64::from(width) || py >= i64::from(height) {
                return;
            }
            let at = (py as usize * width as usize + px as usize) * 3;
            let a = coverage.clamp(0.0, 1.0);
            for (channel, &target) in rgb[at..at + 3].iter_mut().zip(&ink) {
                *channel = (f32::from(*channel) * (1.0 - a) + target * a).round() as u8;
            }
        });
    }
    Ok(())
}

/// A cell's square; neighbouring squares share their edge, where the grid lines go.
fn square(origin: (i32, i32), cell: i32, row: usize, col: usize) -> [(i32, i32); 2] {
    let (x, y) = (origin.0 + col as i32 * cell, origin.1 + row as i32 * cell);
    [(x, y), (x + cell, y + cell)]
}

fn dashed_square(area: &Area, [(x0, y0), (x1, y1)]: [(i32, i32); 2], color: RGBColor) -> Result<(), Error> {
    const DASH: i32 = 4;
    let mut segments = Vec::new();
    for t in (0..x1 - x0).step_by(2 * DASH as usize) {
        let t1 = (t + DASH).min(x1 - x0);
        segments.push([(x0 + t, y0), (x0 + t1, y0)]);
        segments.push([(x0 + t, y1), (x0 + t1, y1)]);
    }
    for t in (0..y1 - y0).step_by(2 * DASH as usize) {
        let t1 = (t + DASH).min(y1 - y0);
        segments.push([(x0, y0 + t), (x0, y0 + t1)]);
        segments.push([(x1, y0 + t), (x1, y0 + t1)]);
    }
    for s in segments {
        area.draw(&PathElement::new(s.to_vec(), color))?;
    }
    Ok(())
}

fn draw_cell(area: &Area, rect: [(i32, i32); 2], kind: Kind) -> Result<(), Error> {
    match kind {
        Kind::Input => {
            area.draw(&Rectangle::new(rect, INPUT.filled()))?;
            area.draw(&Rectangle::new(rect, CELL_LINE))?;
        }
        Kind::Inserted => {
            area.draw(&Rectangle::new(rect, INSERTED.filled()))?;
            area.draw(&Rectangle::new(rect, PAD_LINE))?;
        }
        Kind::Padding => dashed_square(area, rect, PAD_LINE)?,
        Kind::OutputPadding => {
            area.draw(&Rectangle::new(rect, OUTPUT_PADDING.filled()))?;
            dashed_square(area, rect, PAD_LINE)?
        }
    }
    Ok(())
}

/// Diagonals a quarter cell apart across a square cell, in the cropped cells' grey.
fn hatch_lines(area: &Area, [(x0, y0), (x1, _)]: [(i32, i32); 2]) -> Result<(), Error> {
    let (w, step) = (x1 - x0, ((x1 - x0) / 4).max(3));
    // Lines x − y = c, from where they enter the square to where they leave it.
    for c in (-w + step..w).step_by(step as usize) {
        let (from, to) = ((c.max(0), (-c).max(0)), (w.min(w + c), w.min(w - c)));
        area.draw(&PathElement::new(
            vec![(x0 + from.0, y0 + from.1), (x0 + to.0, y0 + to.1)],
            CROP_LINE,
        ))?;
    }
    Ok(())
}

/// A cell the transposed view crops away, hatched with diagonals a quarter cell apart over what
/// it was (`kind`; grey for the legend's key).
fn draw_cropped(area: &Area, [(x0, y0), (x1, y1)]: [(i32, i32); 2], kind: Option<Kind>) -> Result<(), Error> {
    match kind {
        Some(kind) => draw_cell(area, [(x0, y0), (x1, y1)], kind)?,
        None => area.draw(&Rectangle::new([(x0, y0), (x1, y1)], CROPPED.filled()))?,
    }
    hatch_lines(area, [(x0, y0), (x1, y1)])?;
    area.draw(&Rectangle::new([(x0, y0), (x1, y1)], CROP_LINE))?;
    Ok(())
}

/// A cross over a cell no tap reads: red on an input cell (a value the conv ignores, whose
/// gradient is always 0), orange on padding (a zero never multiplied).
fn draw_never_read(area: &Area, [(x0, y0), (x1, y1)]: [(i32, i32); 2], kind: Kind) -> Result<(), Error> {
    let inset = (x1 - x0) / 4;
    let color = if kind == Kind::Input {
        NEVER_READ
    } else {
        PADDING_NEVER_READ
    };
    let style = color.stroke_width(2);
    area.draw(&PathElement::new(
        vec![(x0 + inset, y0 + inset), (x1 - inset, y1 - inset)],
        style,
    ))?;
    area.draw(&PathElement::new(
        vec![(x0 + inset, y1 - inset), (x1 - inset, y0 + inset)],
        style,
    ))?;
    Ok(())
}

fn draw_shapes(area: &Area, plan: &Plan, lay: &Layout, frame: usize, labels: &mut Vec<Label>) -> Result<(), Error> {
    area.fill(&WHITE)?;
    let text_mid = TEXT_SIZE as i32 / 2;
    push_heading(&plan.title, &plan.subtitle, &lay.subtitle_y, labels);

    let cell = lay.cell;
    for (r, &row) in plan.axis.iter().enumerate() {
        for (c, &col) in plan.axis.iter().enumerate() {
            let rect = square(lay.grid, cell, r, c);
            draw_cell(area, rect, cell_kind(row, col))?;
            if !(plan.read[r] && plan.read[c]) {
                draw_never_read(area, rect, cell_kind(row, col))?;
            }
        }
    }
    // The cropped cells, outside the grid: every drawn cell whose row or column was cropped.
    let (before, after) = (plan.cropped.0.len() as isize, plan.cropped.1.len() as isize);
    let side = plan.axis.len() as isize;
    let kind_at = |q: isize| {
        if q < 0 {
            plan.cropped.0[(q + before) as usize]
        } else if q < side {
            plan.axis[q as usize]
        } else {
            plan.cropped.1[(q - side) as usize]
        }
    };
    for r in -before..side + after {
        for c in -before..side + after {
            if (0..side).contains(&r) && (0..side).contains(&c) {
                continue;
            }
            let (x, y) = (lay.grid.0 + c as i32 * cell, lay.grid.1 + r as i32 * cell);
            let kind = cell_kind(kind_at(r), kind_at(c));
            draw_cropped(area, [(x, y), (x + cell, y + cell)], Some(kind))?;
        }
    }

    // The kernel at output cell (or, oc): tap (tr, tc) lies on grid cell
    // (or·step + tr·d, oc·step + tc·d), the gather index map `o·s + t·d` in padded coordinates.
    let (or, oc) = (frame / plan.out, frame % plan.out);
    let (k, d) = (plan.kernel, plan.dilation);
    let inset = (cell / 8).max(1);
    for tr in 0..k {
        for tc in 0..k {
            let (r, c) = (or * plan.step + tr * d, oc * plan.step + tc * d);
            let [(x0, y0), (x1, y1)] = square(lay.grid, cell, r, c);
            // A tap on a zero (padding or inserted) adds nothing: drawn pale.
            let reads_input = cell_kind(plan.axis[r], plan.axis[c]) == Kind::Input;
            let fill = if reads_input { TAP_ON_INPUT } else { TAP_ON_ZERO };
            area.draw(&Rectangle::new(
                [(x0 + inset, y0 + inset), (x1 - inset, y1 - inset)],
                fill.filled(),
            ))?;
            if cell >= 20 {
                labels.push(Label {
                    bold: true,
                    centred: true,
                    color: if reads_input { WHITE } else { TEXT },
                    ..Label::new(
                        plan.taps[tr * k + tc].to_string(),
                        ((x0 + x1) / 2, (y0 + y1) / 2),
                        (cell as f32 * 0.4).min(15.0),
                    )
                });
            }
        }
    }
    let span = (d * (k - 1) + 1) as i32 * cell;
    let (fx, fy) = (
        lay.grid.0 + (oc * plan.step) as i32 * cell,
        lay.grid.1 + (or * plan.step) as i32 * cell,
    );
    area.draw(&Rectangle::new(
        [(fx, fy), (fx + span, fy + span)],
        FOOTPRINT.stroke_width(3),
    ))?;

    for r in 0..plan.out {
        for c in 0..plan.out {
            let rect = square(lay.out, cell, r, c);
            let fill = match (r * plan.out + c).cmp(&frame) {
                std::cmp::Ordering::Less => OUT_DONE,
                std::cmp::Ordering::Equal => OUT_CURRENT,
                std::cmp::Ordering::Greater => OUT_PENDING,
            };
            area.draw(&Rectangle::new(rect, fill.filled()))?;
            area.draw(&Rectangle::new(rect, CELL_LINE))?;
        }
    }
    area.draw(&Rectangle::new(
        square(lay.out, cell, or, oc),
        FOOTPRINT.stroke_width(3),
    ))?;

    labels.push(Label::new(
        &plan.input_caption,
        (MARGIN, lay.caption_y + text_mid),
        TEXT_SIZE,
    ));
    labels.push(Label::new(
        &plan.output_caption,
        (lay.out.0, lay.caption_y + text_mid),
        TEXT_SIZE,
    ));

    draw_legend(area, &lay.legend, labels)
}

/// Draws the legend's keys, and queues its labels.
fn draw_legend(area: &Area, legend: &[LegendItem], labels: &mut Vec<Label>) -> Result<(), Error> {
    for item in legend {
        let (x, y) = item.at;
        let rect = [(x, y), (x + SWATCH, y + SWATCH)];
        match item.swatch {
            Swatch::Cell(kind) => draw_cell(area, rect, kind)?,
            Swatch::Cropped => draw_cropped(area, rect, None)?,
            Swatch::Tap => area.draw(&Rectangle::new(rect, TAP_ON_INPUT.filled()))?,
            Swatch::TapOnZero => area.draw(&Rectangle::new(rect, TAP_ON_ZERO.filled()))?,
            Swatch::Done => area.draw(&Rectangle::new(rect, OUT_DONE.filled()))?,
            Swatch::Current => area.draw(&Rectangle::new(rect, OUT_CURRENT.filled()))?,
            Swatch::Shade(count) => {
                area.draw(&Rectangle::new(rect, scatter::SHADES[count.min(4)].filled()))?;
                area.draw(&Rectangle::new(rect, CELL_LINE))?
            }
            Swatch::NeverRead(kind) => {
                draw_cell(area, rect, kind)?;
                draw_never_read(area, [(x - 2, y - 2), (x + SWATCH + 2, y + SWATCH + 2)], kind)?
            }
        }
        labels.push(Label::new(&item.label, (x + SWATCH + 6, y + SWATCH / 2), TEXT_SIZE));
    }
    Ok(())
}

/// Draws every frame and writes the GIF, only once all of it is encoded.
fn render(path: &Path, plan: &Plan, frame_ms: u16) -> Result<Written, Error> {
    let lay = layout(plan)?;
    let sides = (plan.axis.len(), plan.out);
    write_frames(
        path,
        &lay,
        sides,
        (plan.out * plan.out, "output cells"),
        frame_ms,
        |area, f, labels| draw_shapes(area, plan, &lay, f, labels),
    )
}

/// Draws the frames by `draw` and writes the GIF ([`encode`]); what was written, for a picture
/// laid out by `lay` with input and output grids of `sides` cells a side and `frames` frames,
/// one per one of `frame_cells`.
fn write_frames(
    path: &Path,
    lay: &Layout,
    (in_side, out_side): (usize, usize),
    (frames, frame_cells): (usize, &'static str),
    frame_ms: u16,
    draw: impl FnMut(&Area, usize, &mut Vec<Label>) -> Result<(), Error>,
) -> Result<Written, Error> {
    let (width, height, bytes) = encode(path, (lay.width, lay.height), frames, frame_ms, draw)?;
    Ok(Written {
        frames,
        frame_cells,
        out_side,
        width,
        height,
        bytes,
        cell: lay.cell as u16,
        in_side,
        in_origin: (lay.grid.0 as u16, lay.grid.1 as u16),
        out_origin: (lay.out.0 as u16, lay.out.1 as u16),
    })
}

/// Draws `frames` frames of a `size` picture, each by `draw` (shapes onto the area, labels
/// queued and written over them afterwards), and writes the GIF only once all of it is
/// encoded: its width, height and size in bytes.
fn encode(
    path: &Path,
    size: (u32, u32),
    frames: usize,
    frame_ms: u16,
    mut draw: impl FnMut(&Area, usize, &mut Vec<Label>) -> Result<(), Error>,
) -> Result<(u16, u16, usize), Error> {
    let (w, h) = (
        u16::try_from(size.0).map_err(|_| "picture too wide for a GIF")?,
        u16::try_from(size.1).map_err(|_| "picture too tall for a GIF")?,
    );
    let mut gif = GifFrames::new(w, h)?;
    let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
    for f in 0..frames {
        let mut labels = Vec::new();
        {
            let area = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
            draw(&area, f, &mut labels)?;
            area.present()?;
        }
        for label in &labels {
            draw_label(&mut rgb, size, label)?;
        }
        // The finished picture stays up a while before the loop starts again.
        let ms = if f + 1 == frames {
            frame_ms.saturating_mul(4)
        } else {
            frame_ms
        };
        gif.push(&rgb, ms)?;
    }
    let bytes = gif.finish()?;
    let len = bytes.len();
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((w, h, len))
}

/// A GIF encoder for flat-coloured frames: one global palette holding every named colour
/// exactly (plus greys and a colour cube for the anti-aliased text edges), and each frame after
/// the first stored as only the rectangle that changed, which keeps the files small.
struct GifFrames {
    encoder: gif::Encoder<Vec<u8>>,
    palette: Vec<[u8; 3]>,
    nearest: HashMap<[u8; 3], u8>,
    previous: Option<Vec<u8>>,
    width: usize,
    height: usize,
}

impl GifFrames {
    fn new(width: u16, height: u16) -> Result<Self, Error> {
        let mut palette: Vec<[u8; 3]> = NAMED.iter().map(|c| [c.0, c.1, c.2]).collect();
        palette.extend((0..16u8).map(|g| [g * 17, g * 17, g * 17]));
        for r in 0..6u8 {
            for g in 0..6u8 {
                for b in 0..6u8 {
                    palette.push([r * 51, g * 51, b * 51]);
                }
            }
        }
        palette.truncate(256);
        let flat: Vec<u8> = palette.iter().flatten().copied().collect();
        let mut encoder = gif::Encoder::new(Vec::new(), width, height, &flat)?;
        encoder.set_repeat(gif::Repeat::Infinite)?;
        Ok(GifFrames {
            encoder,
            palette,
            nearest: HashMap::new(),
            previous: None,
            width: width.into(),
            height: height.into(),
        })
    }

    fn index(&mut self, rgb: [u8; 3]) -> u8 {
        let palette = &self.palette;
        *self.nearest.entry(rgb).or_insert_with(|| {
            let distance = |p: &[u8; 3]| -> i32 { (0..3).map(|c| (i32::from(p[c]) - i32::from(rgb[c])).pow(2)).sum() };
            // The palette has at most 256 entries, so the position fits a u8.
            (0..palette.len()).min_by_key(|&i| distance(&palette[i])).unwrap_or(0) as u8
        })
    }

    fn push(&mut self, rgb: &[u8], ms: u16) -> Result<(), Error> {
        // Runs of one colour are the rule in these pictures, so the last lookup is kept.
        let mut last: Option<([u8; 3], u8)> = None;
        let mut indexed = Vec::with_capacity(rgb.len() / 3);
        for p in rgb.chunks_exact(3) {
            let color = [p[0], p[1], p[2]];
            let index = match last {
                Some((c, i)) if c == color => i,
                _ => self.index(color),
            };
            last = Some((color, index));
            indexed.push(index);
        }
        let (w, h) = (self.width, self.height);
        // The bounding box of what changed since the last frame (everything for the first).
        let (mut x0, mut y0, mut x1, mut y1) = (0, 0, w, h);
        if let Some(prev) = &self.previous {
            let changed = |i: usize| prev[i] != indexed[i];
            let rows: Vec<usize> = (0..h).filter(|&y| (0..w).any(|x| changed(y * w + x))).collect();
            let cols: Vec<usize> = (0..w).filter(|&x| rows.iter().any(|&y| changed(y * w + x))).collect();
            // An unchanged frame still needs one pixel to carry its delay.
            (y0, y1) = (rows.first().copied().unwrap_or(0), rows.last().map_or(1, |y| y + 1));
            (x0, x1) = (cols.first().copied().unwrap_or(0), cols.last().map_or(1, |x| x + 1));
        }
        let mut pixels = Vec::with_capacity((x1 - x0) * (y1 - y0));
        for y in y0..y1 {
            pixels.extend_from_slice(&indexed[y * w + x0..y * w + x1]);
        }
        let mut frame = gif::Frame::from_indexed_pixels((x1 - x0) as u16, (y1 - y0) as u16, pixels, None);
        (frame.left, frame.top) = (x0 as u16, y0 as u16);
        frame.delay = ms.div_ceil(10);
        frame.dispose = gif::DisposalMethod::Keep;
        self.encoder.write_frame(&frame)?;
        self.previous = Some(indexed);
        Ok(())
    }

    fn finish(self) -> Result<Vec<u8>, Error> {
        Ok(self.encoder.into_inner()?)
    }
}
