//! The third animation, `conv_transpose_scatter.gif`: the transposed conv as a scatter (the
//! picture in d2l's chapter). One frame per input cell: the cell stamps a copy of the kernel,
//! scaled by its value, into the output at `(r·s − p, c·s − p)`, and where stamps overlap their
//! values add. Every stamp and every sum comes from `adjoint::ops::conv::views::
//! conv_transpose_stamps`, and the sums are checked against the library's `conv_transpose`
//! before anything is drawn.

use adjoint::Tape;
use adjoint::ops::conv::views::{Scatter, conv_transpose_stamps};
use adjoint::ops::conv::{AxisGeometry, ConvTransposeOptions, conv_transpose};
use ndarray::{ArrayD, IxDyn};
use plotters::prelude::*;

use super::{
    Area, CELL_LINE, CROP_LINE, Error, FOOTPRINT, INPUT, Label, Layout, MARGIN, OUTPUT_PADDING, PAD_LINE, Settings,
    Swatch, TAP_ON_INPUT, TEXT, TEXT_SIZE, Written, dashed_square, draw_legend, heading_lines, heading_width,
    legend_lines, numbered_kernel, push_heading, square, write_frames,
};

/// Shades of an output cell by how many stamps have written to it so far: 0, 1, 2, 3, 4 or
/// more. With all-ones input and kernel these are the checkerboard's coverage counts.
pub(super) const SHADES: [RGBColor; 5] = [
    RGBColor(255, 255, 255),
    RGBColor(215, 240, 234),
    RGBColor(150, 212, 198),
    RGBColor(70, 170, 150),
    RGBColor(20, 110, 95),
];

/// What a cell of the scatter's canvas (one axis) is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Canvas {
    /// A cell of the output.
    Output,
    /// A cell of the output that no stamp reaches: output padding, a zero.
    OutputPadding,
    /// A cell stamps write to that the padding crops away (`p` at each end).
    Cropped,
}

/// Everything the frames show, decided before any drawing.
pub(super) struct ScatterPlan {
    title: String,
    subtitle: Vec<String>,
    /// Side of the input grid (the transposed conv's input, the conv's output).
    side: usize,
    /// The input values, row-major.
    x: Vec<f64>,
    /// Canvas axis: the scatter's full extent, from output position `−p` on.
    canvas: Vec<Canvas>,
    pad: usize,
    stamps: Scatter<f64>,
    out: usize,
}

/// Plans the scatter view of the transposed conv that `write_gifs` draws: the adjoint of the
/// conv of `s`, input the conv's output size, with the same output padding.
pub(super) fn scatter_plan(s: &Settings, o: usize, op: usize) -> Result<ScatterPlan, Error> {
    let (k, st, p, d) = (s.kernel, s.stride, s.padding, s.dilation);
    let axis = AxisGeometry::new(k, st, p, d);
    let n = axis
        .conv_transpose_output_size(o, op)
        .ok_or("the transposed conv's output would be empty: pick a smaller --padding")?;
    // The last output position a stamp reaches, `(o − 1)·s + d(k − 1) − p`, may lie before the
    // end of the output (output padding) or past it (cropped).
    let reach = (o - 1) * st + d * (k - 1);
    let extent = (reach + 1).max(n + p);
    if extent > super::MAX_GRID {
        return Err(format!(
            "the scatter spans {extent} cells a side; at most {} are drawn",
            super::MAX_GRID
        )
        .into());
    }
    let canvas = (0..extent)
        .map(|q| {
            let at = q as isize - p as isize;
            if at < 0 || at >= n as isize {
                Canvas::Cropped
            } else if q > reach {
                Canvas::OutputPadding
            } else {
                Canvas::Output
            }
        })
        .collect();
    let x: Vec<f64> = (1..=o * o).map(|v| v as f64).collect();
    let x_arr = ArrayD::from_shape_vec(IxDyn(&[1, 1, o, o]), x.clone())?;
    let w = numbered_kernel(k)?;
    let opts = ConvTransposeOptions::new()
        .stride(st)
        .padding(p)
        .dilation(d)
        .output_padding(op);
    let stamps = conv_transpose_stamps(&x_arr, &w, &opts)?;
    // The stamps added up must be the library's transposed conv, or the picture would lie.
    let tape = Tape::new();
    let y = conv_transpose(tape.constant(x_arr), tape.constant(w), None, &opts)?.value();
    if *y != stamps.partial_sum(stamps.stamps.len()) {
        return Err("the stamps do not add up to conv_transpose's output".into());
    }
    Ok(ScatterPlan {
        title: format!("transposed conv as a scatter: i={o} k={k} s={st} p={p} d={d} op={op} → o={n}"),
        subtitle: vec![
            format!(
                "one frame per input cell (values 1..{}): it stamps the kernel (taps 1..{}), scaled by its value, at (r·{st} − {p}, c·{st} − {p});",
                o * o,
                k * k
            ),
            "where stamps overlap their values add: the shade counts the stamps a cell has received".to_string(),
        ],
        side: o,
        x,
        canvas,
        pad: p,
        stamps,
        out: n,
    })
}

/// Lays the picture out: the input grid at `grid`, the scatter's canvas at `out`.
fn layout(plan: &ScatterPlan) -> Result<Layout, Error> {
    let m = plan.canvas.len();
    let cell = (420 / m.max(plan.side)).clamp(6, 40) as i32;
    let (in_px, canvas_px) = (plan.side as i32 * cell, m as i32 * cell);
    let text_h = TEXT_SIZE as i32 + super::LINE_GAP;
    let (subtitle_y, top) = heading_lines(plan.subtitle.len());
    let grids_h = in_px.max(canvas_px);
    let input = (MARGIN, top + (grids_h - in_px) / 2);
    let canvas = (MARGIN + in_px + super::GRID_GAP, top + (grids_h - canvas_px) / 2);
    let caption_y = top + grids_h + 10;
    let legend_y = caption_y + 2 * text_h + 8;

    let max_count = overlap_counts(plan, plan.stamps.stamps.len())
        .into_iter()
        .max()
        .unwrap_or(0);
    let mut legend = vec![
        (Swatch::Cell(super::Kind::Input), "input cell".to_string()),
        (Swatch::Tap, "this frame's input cell and its stamp".to_string()),
    ];
    for (count, _) in SHADES.iter().enumerate().skip(1) {
        if count <= max_count {
            let label = match count {
                1 => "1 stamp".to_string(),
                4 => "4 or more stamps".to_string(),
                c => format!("{c} stamps"),
            };
            legend.push((Swatch::Shade(count), label));
        }
    }
    if plan.canvas.contains(&Canvas::OutputPadding) {
        legend.push((
            Swatch::Cell(super::Kind::OutputPadding),
            "output padding (no stamp)".to_string(),
        ));
    }
    if plan.canvas.contains(&Canvas::Cropped) {
        legend.push((Swatch::Cropped, "cropped by the padding p".to_string()));
    }
    let width =
        (MARGIN + in_px + super::GRID_GAP + canvas_px + MARGIN).max(heading_width(&plan.title, &plan.subtitle)?);
    let (legend, legend_h) = legend_lines(legend, width - 2 * MARGIN, legend_y)?;
    Ok(Layout {
        cell,
        width: width as u32,
        height: (legend_y + legend_h + MARGIN) as u32,
        subtitle_y,
        grid: input,
        out: canvas,
        caption_y,
        legend,
    })
}

/// How many of the first `n` stamps write to each canvas cell, row-major over the canvas.
fn overlap_counts(plan: &ScatterPlan, n: usize) -> Vec<usize> {
    let m = plan.canvas.len();
    let mut counts = vec![0; m * m];
    for stamp in plan.stamps.stamps.iter().take(n) {
        for tap in &stamp.taps {
            let (r, c) = (tap.at[0] + plan.pad as isize, tap.at[1] + plan.pad as isize);
            // Every tap lies on the canvas: it spans the scatter's full extent.
            counts[r as usize * m + c as usize] += 1;
        }
    }
    counts
}

/// Writes the scatter view's GIF.
pub(super) fn render(path: &std::path::Path, plan: &ScatterPlan, frame_ms: u16) -> Result<Written, Error> {
    let lay = layout(plan)?;
    let sides = (plan.side, plan.canvas.len());
    let frames = (plan.side * plan.side, "input cells");
    write_frames(path, &lay, sides, frames, frame_ms, |area, f, labels| {
        draw_frame(area, plan, &lay, f, labels)
    })
}

/// Draws frame `f`: input cell `f` (row-major) has just stamped.
fn draw_frame(area: &Area, plan: &ScatterPlan, lay: &Layout, f: usize, labels: &mut Vec<Label>) -> Result<(), Error> {
    area.fill(&WHITE)?;
    let text_mid = TEXT_SIZE as i32 / 2;
    push_heading(&plan.title, &plan.subtitle, &lay.subtitle_y, labels);
    let cell = lay.cell;
    let number_size = (cell as f32 * 0.38).min(14.0);
    let numbers = cell >= 22;

    // The input grid, this frame's cell dark.
    for q in 0..plan.side * plan.side {
        let rect = square(lay.grid, cell, q / plan.side, q % plan.side);
        let fill = if q == f { TAP_ON_INPUT } else { INPUT };
        area.draw(&Rectangle::new(rect, fill.filled()))?;
        area.draw(&Rectangle::new(rect, CELL_LINE))?;
        if numbers {
            labels.push(centred(plan.x[q], rect, number_size, if q == f { WHITE } else { TEXT }));
        }
    }
    area.draw(&Rectangle::new(
        square(lay.grid, cell, f / plan.side, f % plan.side),
        FOOTPRINT.stroke_width(3),
    ))?;

    // The canvas: shade by stamps so far, the sums in the output's cells.
    let m = plan.canvas.len();
    let counts = overlap_counts(plan, f + 1);
    let sums = plan.stamps.partial_sum(f + 1);
    for r in 0..m {
        for c in 0..m {
            let rect = square(lay.out, cell, r, c);
            let kinds = (plan.canvas[r], plan.canvas[c]);
            let count = counts[r * m + c];
            if kinds.0 == Canvas::Cropped || kinds.1 == Canvas::Cropped {
                area.draw(&Rectangle::new(rect, SHADES[count.min(4)].filled()))?;
                hatch(area, rect)?;
                continue;
            }
            if kinds.0 == Canvas::OutputPadding || kinds.1 == Canvas::OutputPadding {
                area.draw(&Rectangle::new(rect, OUTPUT_PADDING.filled()))?;
                dashed_square(area, rect, PAD_LINE)?;
                continue;
            }
            area.draw(&Rectangle::new(rect, SHADES[count.min(4)].filled()))?;
            area.draw(&Rectangle::new(rect, CELL_LINE))?;
            if numbers && count > 0 {
                let v = sums[[0, 0, r - plan.pad, c - plan.pad]];
                labels.push(centred(v, rect, number_size, if count >= 3 { WHITE } else { TEXT }));
            }
        }
    }
    // This frame's stamp: a dark edge inside each cell a tap landed on, and its footprint.
    let stamp = &plan.stamps.stamps[f];
    for tap in &stamp.taps {
        let (r, c) = (tap.at[0] + plan.pad as isize, tap.at[1] + plan.pad as isize);
        let [(x0, y0), (x1, y1)] = square(lay.out, cell, r as usize, c as usize);
        area.draw(&Rectangle::new(
            [(x0 + 1, y0 + 1), (x1 - 1, y1 - 1)],
            TAP_ON_INPUT.stroke_width(2),
        ))?;
    }
    let (first, last) = (&stamp.taps[0].at, &stamp.taps[stamp.taps.len() - 1].at);
    let corner = |at: &[isize], end: i32| {
        (
            lay.out.0 + (at[1] + plan.pad as isize) as i32 * cell + end,
            lay.out.1 + (at[0] + plan.pad as isize) as i32 * cell + end,
        )
    };
    area.draw(&Rectangle::new(
        [corner(first, 0), corner(last, cell)],
        FOOTPRINT.stroke_width(3),
    ))?;

    let (r, c) = (f / plan.side, f % plan.side);
    labels.push(Label::new(
        format!("input {0}×{0}", plan.side),
        (MARGIN, lay.caption_y + text_mid),
        TEXT_SIZE,
    ));
    labels.push(Label::new(
        format!("output {0}×{0}, in the scatter's full extent", plan.out),
        (lay.out.0, lay.caption_y + text_mid),
        TEXT_SIZE,
    ));
    labels.push(Label::new(
        format!(
            "input cell ({r}, {c}) = {} adds {} × the kernel at output ({}, {})",
            plan.x[f], plan.x[f], first[0], first[1]
        ),
        (MARGIN, lay.caption_y + TEXT_SIZE as i32 + super::LINE_GAP + text_mid),
        TEXT_SIZE,
    ));
    draw_legend(area, &lay.legend, labels)
}

/// A number centred in a cell.
fn centred(v: f64, [(x0, y0), (x1, y1)]: [(i32, i32); 2], size: f32, color: RGBColor) -> Label {
    Label {
        centred: true,
        color,
        ..Label::new(format!("{v}"), ((x0 + x1) / 2, (y0 + y1) / 2), size)
    }
}

/// Diagonal hatching over a cell, as on the other views' cropped cells.
fn hatch(area: &Area, rect: [(i32, i32); 2]) -> Result<(), Error> {
    super::hatch_lines(area, rect)?;
    area.draw(&Rectangle::new(rect, CROP_LINE))?;
    Ok(())
}
