//! Pictures in labelled rows: grayscale images ([`image_grid`]) and RGB panels with markers, a
//! title and a legend ([`panel_grid`]).
//!
//! Both are drawn by one [`Grid`]: one validation, one layout ([`Grid::layout`], the only place
//! that does the size arithmetic), one drawing routine; they differ only in how a picture gives
//! its pixels ([`GridPicture`]).
//!
//! Layout, top to bottom, in pixels: [`GRID_PAD`]; the title band ([`GRID_TITLE_H`], only with a
//! title); the column headers ([`GRID_COLUMNS_H`], only with headers); the rows, [`GRID_ROW_GAP`] apart, each as tall as its pictures (or its label, if
//! taller); with a legend, [`GRID_ROW_GAP`] and the legend's lines ([`LEGEND_LINE_H`] each,
//! [`LEGEND_LINE_GAP`] apart); [`GRID_PAD`]. Left to right: [`GRID_PAD`], the row labels (as wide
//! as the widest), [`GRID_PAD`], the pictures ([`GRID_GAP`] apart), [`GRID_PAD`]; the picture is
//! widened where the title or a legend entry needs more.

use std::path::Path;

use ndarray::{Array2, Array3};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::colors::not_rgb;
use crate::{PlotError, check_png_path, check_size, draw_in_memory, ensure_font, font, measure, title_font, write_png};

/// Space around the whole grid and between a row's label and its images, in pixels.
pub(crate) const GRID_PAD: u64 = 10;
/// Space between two images of a row: a 1-px grey frame on each side and white between, so
/// that images whose border pixels are white still read as separate squares.
pub(crate) const GRID_GAP: u64 = 6;
/// Space between two rows, and between the last row and the legend.
pub(crate) const GRID_ROW_GAP: u64 = 10;
/// Height of the title band, when there is a title: room for the 24-px bold title.
pub(crate) const GRID_TITLE_H: u64 = 36;
/// Height of the column headers' band, when there are headers: room for the 17-px labels.
pub(crate) const GRID_COLUMNS_H: u64 = 26;
const GRID_FRAME: RGBColor = RGBColor(170, 170, 170);
/// Pixels that are NaN: a colour no grey value can take, so a broken output is obvious.
const NAN_PIXEL: [u8; 3] = [230, 0, 0];

/// Height of one line of the legend: room for a key and for the 15-px label text.
pub(crate) const LEGEND_LINE_H: u64 = 22;
/// Space between two lines of the legend.
pub(crate) const LEGEND_LINE_GAP: u64 = 4;
/// Side of a legend key: the colour swatch, or the box a marker sample is drawn in.
pub(crate) const LEGEND_KEY: u64 = 16;
/// Space between a legend key and its label.
pub(crate) const LEGEND_KEY_GAP: u64 = 6;
/// Space between two legend entries on one line.
pub(crate) const LEGEND_ENTRY_GAP: u64 = 20;
const LEGEND_FONT_SIZE: f64 = 15.0;
const LABEL_FONT_SIZE: f64 = 17.0;

/// Half the width of a marker's lines: the lines are 2 px wide.
const MARK_HALF_LINE: f64 = 1.0;
/// Width of the contrasting halo around a marker's lines.
const MARK_HALO: f64 = 1.0;

/// Draws grayscale images in labelled rows, e.g. an autoencoder's inputs above its outputs.
///
/// Each row is `(label, images)`; the label is written at the row's left. Values are clamped
/// to [0, 1] (0 = black, 1 = white); NaN pixels are drawn red. Each pixel becomes a
/// `scale`×`scale` block. Images in one row must share a shape; rows may differ. For colour
/// pictures, markers, a title or a legend, see [`panel_grid`].
///
/// Errors: no rows, a row without images, an empty image, images of different shapes in one
/// row, `scale == 0`, a picture above [`MAX_SIDE`](crate::MAX_SIDE) /
/// [`MAX_PIXELS`](crate::MAX_PIXELS), a path not ending in `.png`, or a failed write.
pub fn image_grid(path: &Path, rows: &[(&str, Vec<Array2<f32>>)], scale: u32) -> Result<(), PlotError> {
    Grid {
        op: "image_grid",
        noun: "image",
        title: "",
        columns: &[],
        rows,
        scale,
        legend: &[],
    }
    .write(path)
}

/// One picture in a [`panel_grid`]: RGB pixels and marks drawn on top.
#[derive(Clone, Debug, PartialEq)]
pub struct Panel {
    /// `[h, w, 3]`, each channel in [0, 1] (clamped); NaN in any channel draws the pixel red
    /// (230, 0, 0), as in [`image_grid`].
    pub pixels: Array3<f32>,
    /// Markers in the panel's pixel coordinates: x = column, y = row, (0, 0) the top-left
    /// corner of pixel (0, 0), so the centre of pixel (c, r) is (c + 0.5, r + 0.5).
    pub marks: Vec<Mark>,
}

/// A marker on a [`Panel`], e.g. a key point, at a sub-pixel position.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mark {
    /// Column coordinate in the panel's pixels (see [`Panel`]'s `marks` for the convention).
    pub x: f32,
    /// Row coordinate in the panel's pixels.
    pub y: f32,
    /// Colour of the marker's lines.
    pub color: [u8; 3],
    /// The marker's shape.
    pub shape: MarkShape,
}

/// The outline a [`Mark`] is drawn as.
///
/// Every shape fits the same square box centred on the mark: in a panel its lines (2 px wide)
/// span `2 * scale + 3` px, in the legend the 16-px key. A 1-px halo goes around the lines,
/// black for a light marker colour and white for a dark one, so that a marker reads on any
/// background.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkShape {
    /// `+`: a horizontal and a vertical line through the centre.
    Plus,
    /// `×`: the two diagonals of the box.
    Cross,
    /// `○`: a circle touching the box's sides.
    Circle,
    /// `□`: the box's outline.
    Square,
}

/// One legend entry of a [`panel_grid`]: a key, then the label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegendEntry<'a> {
    /// Text after the key.
    pub label: &'a str,
    /// Colour of the swatch, or of the marker sample.
    pub color: [u8; 3],
    /// `None` for a filled colour swatch (e.g. a class of a segmentation), or the marker to
    /// draw as a sample.
    pub shape: Option<MarkShape>,
}

/// Draws RGB panels in labelled rows, with markers on top, a title and a legend.
///
/// The layout is that of [`image_grid`]: each row is `(label, panels)`, the label at the row's
/// left; each pixel becomes a `scale`×`scale` block inside a 1-px grey frame. Panels in one row
/// must share a size; rows may differ. Channels are clamped to [0, 1]; a pixel with a NaN
/// channel is drawn red (230, 0, 0).
///
/// Each panel's [`Mark`]s are drawn over its pixels, in order, at sub-pixel positions:
/// panel coordinate `(x, y)` lands at `scale * (x, y)` from the panel's top-left corner. Marks
/// are clipped to their panel: one whose centre lies just outside shows the part that reaches
/// in, one entirely outside draws nothing, and none ever draws over the frame or a neighbour.
///
/// An empty `title` leaves out the title band. The legend goes below the grid, entries left to
/// right and wrapping onto further lines where the picture is too narrow; each is a key (a
/// filled swatch, or a sample of its marker) and its label. An empty `legend` leaves out the
/// legend. The picture is widened where the title or one legend entry needs more room than the
/// grid.
///
/// # Errors
/// - [`PlotError::Empty`]: no rows, a row without panels, a panel with no pixels;
/// - [`PlotError::Mismatch`]: panels of different sizes in one row;
/// - [`PlotError::Invalid`]: `pixels` whose last axis is not 3, a mark with a non-finite
///   coordinate (the message names the row, the panel and the mark), `scale == 0`;
/// - [`PlotError::TooLarge`]: a picture above [`MAX_SIDE`](crate::MAX_SIDE) /
///   [`MAX_PIXELS`](crate::MAX_PIXELS);
/// - [`PlotError::NotPng`]: a path not ending in `.png`;
/// - [`PlotError::Write`]: a failed write.
///
/// A refused call writes nothing.
///
/// # Example
/// ```
/// use adjoint_plot::{LegendEntry, Mark, MarkShape, Panel, palette, panel_grid};
/// use ndarray::Array3;
///
/// let colors = palette(2);
/// let pixels = Array3::from_shape_fn((8, 8, 3), |(r, c, _)| if r + c < 8 { 0.1 } else { 0.8 });
/// let peak = Mark { x: 2.5, y: 3.5, color: [255, 255, 0], shape: MarkShape::Plus };
/// let panel = Panel { pixels, marks: vec![peak] };
/// let legend = [
///     LegendEntry { label: "background", color: colors[0], shape: None },
///     LegendEntry { label: "key point", color: [255, 255, 0], shape: Some(MarkShape::Plus) },
/// ];
/// let path = std::env::temp_dir().join(format!("panel-grid-doc-{}.png", std::process::id()));
/// panel_grid(&path, "Key points", &[("prediction", vec![panel])], 4, &legend)?;
/// assert!(path.exists());
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), adjoint_plot::PlotError>(())
/// ```
pub fn panel_grid(
    path: &Path,
    title: &str,
    rows: &[(&str, Vec<Panel>)],
    scale: u32,
    legend: &[LegendEntry<'_>],
) -> Result<(), PlotError> {
    Grid {
        op: "panel_grid",
        noun: "panel",
        title,
        columns: &[],
        rows,
        scale,
        legend,
    }
    .write(path)
}

/// [`panel_grid`] with a header over each column of panels: `columns[j]` is centred above the
/// `j`-th panel of the first row (e.g. "transposed conv", "resize-conv"), so that the rows
/// below compare the same things column by column.
///
/// # Errors
/// As [`panel_grid`]; also [`PlotError::Invalid`] if there are more headers than panels in the
/// first row.
///
/// # Example
/// ```
/// use adjoint_plot::{Panel, gray_to_rgb, panel_grid_with_columns};
/// use ndarray::Array2;
///
/// let flat = Panel { pixels: gray_to_rgb(&Array2::from_elem((8, 8), 0.5)), marks: vec![] };
/// let path = std::env::temp_dir().join(format!("columns-doc-{}.png", std::process::id()));
/// let rows = [("1 layer", vec![flat.clone(), flat])];
/// panel_grid_with_columns(&path, "Coverage", &["left", "right"], &rows, 4, &[])?;
/// assert!(path.exists());
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), adjoint_plot::PlotError>(())
/// ```
pub fn panel_grid_with_columns(
    path: &Path,
    title: &str,
    columns: &[&str],
    rows: &[(&str, Vec<Panel>)],
    scale: u32,
    legend: &[LegendEntry<'_>],
) -> Result<(), PlotError> {
    Grid {
        op: "panel_grid_with_columns",
        noun: "panel",
        title,
        columns,
        rows,
        scale,
        legend,
    }
    .write(path)
}

/// A picture a [`Grid`] can draw.
pub(crate) trait GridPicture {
    /// `(h, w)` in pixels.
    fn dim(&self) -> (usize, usize);
    /// Why the picture cannot be drawn, beyond its size (which the grid checks).
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
    /// The colour of pixel (row `y`, column `x`).
    fn rgb(&self, y: usize, x: usize) -> [u8; 3];
    /// Marks drawn on top.
    fn marks(&self) -> &[Mark] {
        &[]
    }
}

/// A channel value in [0, 1] (clamped) as a byte.
fn channel_byte(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

impl GridPicture for Array2<f32> {
    fn dim(&self) -> (usize, usize) {
        Array2::dim(self)
    }

    fn rgb(&self, y: usize, x: usize) -> [u8; 3] {
        let v = self[[y, x]];
        if v.is_nan() { NAN_PIXEL } else { [channel_byte(v); 3] }
    }
}

impl GridPicture for Panel {
    fn dim(&self) -> (usize, usize) {
        let (h, w, _) = self.pixels.dim();
        (h, w)
    }

    fn check(&self) -> Result<(), String> {
        if let Some(why) = not_rgb(&self.pixels) {
            return Err(why);
        }
        match self
            .marks
            .iter()
            .enumerate()
            .find(|(_, m)| !(m.x.is_finite() && m.y.is_finite()))
        {
            Some((k, m)) => Err(format!(
                "mark {k} is at ({}, {}); a mark needs finite coordinates",
                m.x, m.y
            )),
            None => Ok(()),
        }
    }

    fn rgb(&self, y: usize, x: usize) -> [u8; 3] {
        let p = [0, 1, 2].map(|c| self.pixels[[y, x, c]]);
        if p.iter().any(|v| v.is_nan()) {
            NAN_PIXEL
        } else {
            p.map(channel_byte)
        }
    }

    fn marks(&self) -> &[Mark] {
        &self.marks
    }
}

/// A grid of pictures to draw: what [`image_grid`] and [`panel_grid`] share.
struct Grid<'a, P> {
    /// The public function drawing it, for error messages.
    op: &'static str,
    /// What one picture is called in error messages: "image", "panel".
    noun: &'static str,
    title: &'a str,
    /// Headers over the columns of pictures, left to right; empty for none.
    columns: &'a [&'a str],
    rows: &'a [(&'a str, Vec<P>)],
    scale: u32,
    legend: &'a [LegendEntry<'a>],
}

/// Where everything goes, in picture pixels.
struct GridLayout {
    size: (u32, u32),
    /// Left edge of every row's first picture.
    pictures_left: u64,
    /// Top of the column headers' band (when there are headers).
    columns_top: u64,
    rows: Vec<RowLayout>,
    /// Each legend entry's top-left corner: its key's left edge and its line's top.
    legend: Vec<(u64, u64)>,
}

struct RowLayout {
    top: u64,
    height: u64,
    /// One picture's size: its pixel count times `scale`.
    pic_w: u64,
    pic_h: u64,
}

impl RowLayout {
    /// Top-left corner of picture `j` of the row; pictures are centred vertically in the row.
    fn origin(&self, pictures_left: u64, j: usize) -> (u64, u64) {
        let x = pictures_left + j as u64 * (self.pic_w + GRID_GAP);
        (x, self.top + (self.height - self.pic_h) / 2)
    }
}

impl<P: GridPicture> Grid<'_, P> {
    /// Validates, lays out, draws in memory, and writes the PNG atomically.
    fn write(&self, path: &Path) -> Result<(), PlotError> {
        check_png_path(self.op, path)?;
        self.check()?;
        ensure_font(self.op)?;
        let layout = self.layout()?;
        let buf = self.draw(&layout)?;
        write_png(self.op, path, layout.size, &buf)
    }

    fn check(&self) -> Result<(), PlotError> {
        let op = self.op;
        let noun = self.noun;
        if self.scale == 0 {
            return Err(PlotError::Invalid {
                op,
                what: "scale = 0: each pixel needs at least 1×1 px".into(),
            });
        }
        if self.rows.is_empty() {
            return Err(PlotError::Empty {
                op,
                what: "no rows given".into(),
            });
        }
        if self.columns.len() > self.rows[0].1.len() {
            return Err(PlotError::Invalid {
                op,
                what: format!(
                    "{} column headers for {} {noun}s in the first row",
                    self.columns.len(),
                    self.rows[0].1.len()
                ),
            });
        }
        for (r, (label, pictures)) in self.rows.iter().enumerate() {
            let Some(first) = pictures.first() else {
                return Err(PlotError::Empty {
                    op,
                    what: format!("row {r} ({label:?}) has no {noun}s"),
                });
            };
            let (h0, w0) = first.dim();
            if h0 == 0 || w0 == 0 {
                return Err(PlotError::Empty {
                    op,
                    what: format!("row {r} ({label:?}): its {noun}s are {h0}×{w0}"),
                });
            }
            for (i, picture) in pictures.iter().enumerate() {
                picture.check().map_err(|why| PlotError::Invalid {
                    op,
                    what: format!("row {r} ({label:?}): {noun} {i}: {why}"),
                })?;
            }
            if let Some((i, picture)) = pictures.iter().enumerate().find(|(_, p)| p.dim() != (h0, w0)) {
                let (h, w) = picture.dim();
                return Err(PlotError::Mismatch {
                    op,
                    what: format!("row {r} ({label:?}): {noun} {i} is {h}×{w} but {noun} 0 is {h0}×{w0}"),
                });
            }
        }
        Ok(())
    }

    /// The one place that sizes the grid (see the module docs for the layout).
    fn layout(&self) -> Result<GridLayout, PlotError> {
        let op = self.op;
        let mut label_w = 0u64;
        let mut label_h = 0u64;
        for (label, _) in self.rows {
            let (w, h) = measure(op, &font(LABEL_FONT_SIZE), label)?;
            label_w = label_w.max(w.into());
            label_h = label_h.max(h.into());
        }

        // Saturating arithmetic: absurd sizes end up above the limit instead of wrapping around.
        let scale = u64::from(self.scale);
        let mut y = GRID_PAD;
        let mut width = 0u64;
        if !self.title.is_empty() {
            let (title_w, _) = measure(op, &title_font(), self.title)?;
            width = u64::from(title_w) + 2 * GRID_PAD;
            y += GRID_TITLE_H;
        }
        let columns_top = y;
        if !self.columns.is_empty() {
            y += GRID_COLUMNS_H;
        }
        let mut rows = Vec::with_capacity(self.rows.len());
        let mut max_row_w = 0u64;
        for (_, pictures) in self.rows {
            let (h, w) = pictures[0].dim();
            let pic_w = (w as u64).saturating_mul(scale);
            let pic_h = (h as u64).saturating_mul(scale);
            let n = pictures.len() as u64;
            max_row_w = max_row_w.max(n.saturating_mul(pic_w.saturating_add(GRID_GAP)) - GRID_GAP);
            let height = pic_h.max(label_h);
            rows.push(RowLayout {
                top: y,
                height,
                pic_w,
                pic_h,
            });
            y = y.saturating_add(height).saturating_add(GRID_ROW_GAP);
        }
        let pictures_left = GRID_PAD + label_w + GRID_PAD;
        width = width.max(pictures_left.saturating_add(max_row_w).saturating_add(GRID_PAD));

        let mut entry_widths = Vec::with_capacity(self.legend.len());
        for entry in self.legend {
            let (text_w, _) = measure(op, &font(LEGEND_FONT_SIZE), entry.label)?;
            let entry_w = LEGEND_KEY + LEGEND_KEY_GAP + u64::from(text_w);
            width = width.max(entry_w + 2 * GRID_PAD);
            entry_widths.push(entry_w);
        }
        // Entries flow left to right and wrap where the next would cross the right padding.
        let mut legend = Vec::with_capacity(entry_widths.len());
        let (mut x, mut line_top) = (GRID_PAD, y);
        for entry_w in entry_widths {
            if x > GRID_PAD && x.saturating_add(entry_w) > width - GRID_PAD {
                x = GRID_PAD;
                line_top = line_top.saturating_add(LEGEND_LINE_H + LEGEND_LINE_GAP);
            }
            legend.push((x, line_top));
            x = x.saturating_add(entry_w + LEGEND_ENTRY_GAP);
        }
        let bottom = match legend.last() {
            Some(&(_, last_line)) => last_line.saturating_add(LEGEND_LINE_H),
            None => y - GRID_ROW_GAP,
        };
        let size = check_size(op, width, bottom.saturating_add(GRID_PAD))?;
        Ok(GridLayout {
            size,
            pictures_left,
            columns_top,
            rows,
            legend,
        })
    }

    fn draw(&self, layout: &GridLayout) -> Result<Vec<u8>, PlotError> {
        // Sizes are bounded by MAX_SIDE now, so the i32 conversions below are exact.
        let at = |x: u64, y: u64| (x as i32, y as i32);
        let mut buf = draw_in_memory(self.op, layout.size, |root| {
            if !self.title.is_empty() {
                let centre = at(u64::from(layout.size.0) / 2, GRID_PAD + GRID_TITLE_H / 2);
                let style = title_font()
                    .into_text_style(root)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                root.draw(&Text::new(self.title, centre, style))?;
            }
            let header_style = font(LABEL_FONT_SIZE)
                .into_text_style(root)
                .pos(Pos::new(HPos::Center, VPos::Center));
            for (j, header) in self.columns.iter().enumerate() {
                let first = &layout.rows[0];
                let (x0, _) = first.origin(layout.pictures_left, j);
                let centre = at(x0 + first.pic_w / 2, layout.columns_top + GRID_COLUMNS_H / 2);
                root.draw(&Text::new(*header, centre, header_style.clone()))?;
            }
            let label_style = font(LABEL_FONT_SIZE)
                .into_text_style(root)
                .pos(Pos::new(HPos::Left, VPos::Center));
            for ((label, pictures), row) in self.rows.iter().zip(&layout.rows) {
                let mid = at(GRID_PAD, row.top + row.height / 2);
                root.draw(&Text::new(*label, mid, label_style.clone()))?;
                for j in 0..pictures.len() {
                    let (x0, y0) = row.origin(layout.pictures_left, j);
                    root.draw(&Rectangle::new(
                        [at(x0 - 1, y0 - 1), at(x0 + row.pic_w, y0 + row.pic_h)],
                        GRID_FRAME,
                    ))?;
                }
            }
            let legend_style = font(LEGEND_FONT_SIZE)
                .into_text_style(root)
                .pos(Pos::new(HPos::Left, VPos::Center));
            for (entry, &(x, line_top)) in self.legend.iter().zip(&layout.legend) {
                if entry.shape.is_none() {
                    let (x0, y0) = (x, line_top + (LEGEND_LINE_H - LEGEND_KEY) / 2);
                    let corners = [at(x0, y0), at(x0 + LEGEND_KEY - 1, y0 + LEGEND_KEY - 1)];
                    let [r, g, b] = entry.color;
                    root.draw(&Rectangle::new(corners, RGBColor(r, g, b).filled()))?;
                    // Outlined, so that a swatch as light as the page still shows.
                    root.draw(&Rectangle::new(corners, GRID_FRAME))?;
                }
                let text_at = at(x + LEGEND_KEY + LEGEND_KEY_GAP, line_top + LEGEND_LINE_H / 2);
                root.draw(&Text::new(entry.label, text_at, legend_style.clone()))?;
            }
            Ok(())
        })?;

        // Pixels and marks go straight into the buffer: one rectangle element per pixel would
        // be slower and gains nothing, since blocks are axis-aligned and exactly `scale` px
        // wide; and marks need sub-pixel positions and clipping to their panel.
        let mut canvas = Canvas {
            buf: &mut buf,
            width: u64::from(layout.size.0),
        };
        let scale = u64::from(self.scale);
        for ((_, pictures), row) in self.rows.iter().zip(&layout.rows) {
            for (j, picture) in pictures.iter().enumerate() {
                let (x0, y0) = row.origin(layout.pictures_left, j);
                let (h, w) = picture.dim();
                for py in 0..h {
                    for px in 0..w {
                        let (x, y) = (x0 + px as u64 * scale, y0 + py as u64 * scale);
                        canvas.fill_block(x, y, scale, picture.rgb(py, px));
                    }
                }
                let clip = Clip {
                    x0,
                    y0,
                    x1: x0 + row.pic_w,
                    y1: y0 + row.pic_h,
                };
                let s = f64::from(self.scale);
                for mark in picture.marks() {
                    let centre = (x0 as f64 + s * f64::from(mark.x), y0 as f64 + s * f64::from(mark.y));
                    canvas.draw_mark(&clip, centre, s + 0.5, mark.color, mark.shape);
                }
            }
        }
        for (entry, &(x, line_top)) in self.legend.iter().zip(&layout.legend) {
            if let Some(shape) = entry.shape {
                let y = line_top + (LEGEND_LINE_H - LEGEND_KEY) / 2;
                let clip = Clip {
                    x0: x,
                    y0: y,
                    x1: x + LEGEND_KEY,
                    y1: y + LEGEND_KEY,
                };
                let half = LEGEND_KEY as f64 / 2.0;
                // The largest marker whose halo fits the key.
                let radius = half - MARK_HALF_LINE - MARK_HALO - 0.5;
                canvas.draw_mark(&clip, (x as f64 + half, y as f64 + half), radius, entry.color, shape);
            }
        }
        Ok(buf)
    }
}

/// A rectangle of picture pixels, `x0..x1` × `y0..y1`.
struct Clip {
    x0: u64,
    y0: u64,
    x1: u64,
    y1: u64,
}

/// The RGB buffer of a picture `width` px wide, drawn on directly.
struct Canvas<'a> {
    buf: &'a mut [u8],
    width: u64,
}

impl Canvas<'_> {
    fn pixel(&mut self, x: u64, y: u64) -> &mut [u8] {
        let start = ((y * self.width + x) * 3) as usize;
        &mut self.buf[start..start + 3]
    }

    /// Fills the `side`×`side` block whose top-left pixel is (x, y).
    fn fill_block(&mut self, x: u64, y: u64, side: u64, rgb: [u8; 3]) {
        for dy in 0..side {
            let start = (((y + dy) * self.width + x) * 3) as usize;
            for block in self.buf[start..start + 3 * side as usize].chunks_exact_mut(3) {
                block.copy_from_slice(&rgb);
            }
        }
    }

    /// Draws a marker centred at `centre` (picture pixels, sub-pixel), whose lines run
    /// `radius` px from the centre, onto the pixels inside `clip` only.
    ///
    /// Each pixel is covered by how far its centre lies from the lines: fully within half the
    /// line width, fading out over the next pixel (anti-aliased), and likewise for the halo,
    /// which reaches [`MARK_HALO`] px further and is drawn first.
    fn draw_mark(&mut self, clip: &Clip, centre: (f64, f64), radius: f64, color: [u8; 3], shape: MarkShape) {
        let [r, g, b] = color.map(f64::from);
        let halo = if 0.299 * r + 0.587 * g + 0.114 * b > 128.0 {
            [0, 0, 0]
        } else {
            [255, 255, 255]
        };
        let reach = radius + MARK_HALF_LINE + MARK_HALO + 1.0;
        // Clamped in f64 first, so that a mark far outside (any finite coordinate is allowed)
        // gives an empty range instead of overflowing.
        let span = |c: f64, lo: u64, hi: u64| {
            let (lo, hi) = (lo as f64, hi as f64);
            ((c - reach).floor().clamp(lo, hi) as u64)..((c + reach).ceil().clamp(lo, hi) as u64)
        };
        for y in span(centre.1, clip.y0, clip.y1) {
            for x in span(centre.0, clip.x0, clip.x1) {
                let (dx, dy) = (x as f64 + 0.5 - centre.0, y as f64 + 0.5 - centre.1);
                let d = distance_to_lines(shape, dx, dy, radius);
                let halo_cover = (MARK_HALF_LINE + MARK_HALO + 0.5 - d).clamp(0.0, 1.0);
                let line_cover = (MARK_HALF_LINE + 0.5 - d).clamp(0.0, 1.0);
                if halo_cover > 0.0 {
                    let pixel = self.pixel(x, y);
                    mix(pixel, halo, halo_cover);
                    mix(pixel, color, line_cover);
                }
            }
        }
    }
}

/// `pixel` ← `(1 - cover) · pixel + cover · color`.
fn mix(pixel: &mut [u8], color: [u8; 3], cover: f64) {
    for (p, c) in pixel.iter_mut().zip(color) {
        *p = (f64::from(*p) * (1.0 - cover) + f64::from(c) * cover).round() as u8;
    }
}

/// Distance from the point `(dx, dy)`, relative to a marker's centre, to the marker's lines
/// (their middle), for a marker fitting the box `[-radius, radius]²`.
fn distance_to_lines(shape: MarkShape, dx: f64, dy: f64, radius: f64) -> f64 {
    // To a segment of half-length `half` centred at the origin: `along` it and `across` it.
    let segment = |along: f64, across: f64, half: f64| (along.abs() - half).max(0.0).hypot(across);
    match shape {
        MarkShape::Plus => segment(dx, dy, radius).min(segment(dy, dx, radius)),
        MarkShape::Cross => {
            // The diagonals, in coordinates rotated by 45°; they end at the box's corners.
            let (u, v) = (
                (dx + dy) / std::f64::consts::SQRT_2,
                (dx - dy) / std::f64::consts::SQRT_2,
            );
            let half = radius * std::f64::consts::SQRT_2;
            segment(u, v, half).min(segment(v, u, half))
        }
        MarkShape::Circle => (dx.hypot(dy) - radius).abs(),
        MarkShape::Square => {
            // The signed distance to the box (negative inside), then its size.
            let (qx, qy) = (dx.abs() - radius, dy.abs() - radius);
            (qx.max(0.0).hypot(qy.max(0.0)) + qx.max(qy).min(0.0)).abs()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{png_size, temp_dir};

    /// The decoded picture: width, height and RGB bytes.
    struct Picture {
        width: u32,
        height: u32,
        rgb: Vec<u8>,
    }

    impl Picture {
        fn read(path: &Path) -> Picture {
            let bytes = std::fs::read(path).unwrap();
            let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().unwrap();
            let mut rgb = vec![0; reader.output_buffer_size().unwrap()];
            let info = reader.next_frame(&mut rgb).unwrap();
            assert_eq!(info.color_type, png::ColorType::Rgb);
            rgb.truncate(info.buffer_size());
            Picture {
                width: info.width,
                height: info.height,
                rgb,
            }
        }

        fn at(&self, x: u64, y: u64) -> [u8; 3] {
            let i = ((y * u64::from(self.width) + x) * 3) as usize;
            [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
        }
    }
    fn digit_image(h: usize, w: usize, phase: f32) -> Array2<f32> {
        Array2::from_shape_fn((h, w), |(i, j)| {
            ((i as f32 * 0.7 + j as f32 * 0.3 + phase).sin() + 1.0) / 2.0
        })
    }

    #[test]
    fn image_grid_writes_png_of_computed_size() {
        let dir = temp_dir("grid");
        let p = dir.join("grid.png");
        let originals: Vec<_> = (0..4).map(|k| digit_image(8, 8, k as f32)).collect();
        let mut recon: Vec<_> = (0..4).map(|k| digit_image(8, 8, k as f32 + 0.3) * 1.5 - 0.2).collect();
        recon[1][[0, 0]] = f32::NAN;
        image_grid(&p, &[("original", originals), ("reconstruction", recon)], 3).unwrap();
        let (w, h) = png_size(&p);
        // Two rows of 24-px images (label text is shorter) with the fixed gaps and padding.
        assert_eq!(h as u64, GRID_PAD + 24 + GRID_ROW_GAP + 24 + GRID_PAD);
        assert!(w as u64 > 4 * 24 + 3 * GRID_GAP + 3 * GRID_PAD, "width {w}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn image_grid_refuses_bad_input() {
        let dir = temp_dir("grid-err");
        let p = dir.join("x.png");
        let img = || Array2::<f32>::zeros((4, 4));
        assert!(matches!(image_grid(&p, &[], 2), Err(PlotError::Empty { .. })));
        assert!(matches!(
            image_grid(&p, &[("a", vec![])], 2),
            Err(PlotError::Empty { .. })
        ));
        assert!(matches!(
            image_grid(&p, &[("a", vec![Array2::zeros((0, 4))])], 2),
            Err(PlotError::Empty { .. })
        ));
        let err = image_grid(&p, &[("a", vec![img()]), ("b", vec![img(), Array2::zeros((4, 5))])], 2).unwrap_err();
        assert!(matches!(err, PlotError::Mismatch { .. }), "{err}");
        assert!(err.to_string().contains("image 1 is 4×5"), "{err}");
        assert!(matches!(
            image_grid(&p, &[("a", vec![img()])], 0),
            Err(PlotError::Invalid { .. })
        ));
        assert!(matches!(
            image_grid(&p, &[("a", vec![img()])], 100_000),
            Err(PlotError::TooLarge { .. })
        ));
        assert!(!p.exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A panel whose pixel (r, c) is (c / (w - 1), r / (h - 1), 0.5).
    fn ramp(h: usize, w: usize) -> Panel {
        let pixels = Array3::from_shape_fn((h, w, 3), |(r, c, k)| match k {
            0 => c as f32 / (w - 1) as f32,
            1 => r as f32 / (h - 1) as f32,
            _ => 0.5,
        });
        Panel { pixels, marks: vec![] }
    }

    fn mark(x: f32, y: f32, color: [u8; 3], shape: MarkShape) -> Mark {
        Mark { x, y, color, shape }
    }

    const FRAME: [u8; 3] = [170, 170, 170];

    #[test]
    fn panel_grid_lays_out_pixels_marks_and_legend() {
        let dir = temp_dir("panels");
        let p = dir.join("panels.png");
        let a = ramp(10, 12);
        let mut b = ramp(10, 12);
        b.marks = vec![
            mark(6.5, 4.5, [255, 0, 255], MarkShape::Plus),
            mark(2.5, 7.5, [0, 255, 0], MarkShape::Cross),
            // Centre left of the panel: only the part that reaches in is drawn.
            mark(-0.5, 5.0, [0, 0, 255], MarkShape::Circle),
            // Far outside: nothing is drawn, and nothing overflows.
            mark(1e30, -1e30, [0, 0, 255], MarkShape::Square),
        ];
        let mut c = ramp(8, 8);
        c.pixels[[3, 4, 1]] = f32::NAN;
        c.pixels[[0, 0, 0]] = 7.0;
        let legend = [
            LegendEntry {
                label: "a",
                color: [10, 200, 30],
                shape: None,
            },
            LegendEntry {
                label: "b",
                color: [255, 0, 255],
                shape: Some(MarkShape::Plus),
            },
        ];
        // Empty labels take no width, so the width is known without measuring text.
        panel_grid(&p, "T", &[("", vec![a, b]), ("", vec![c])], 3, &legend).unwrap();
        let pic = Picture::read(&p);

        let rows_top = GRID_PAD + GRID_TITLE_H;
        let row2_top = rows_top + 30 + GRID_ROW_GAP;
        let legend_top = row2_top + 24 + GRID_ROW_GAP;
        assert_eq!(u64::from(pic.width), GRID_PAD + GRID_PAD + 2 * 36 + GRID_GAP + GRID_PAD);
        assert_eq!(u64::from(pic.height), legend_top + LEGEND_LINE_H + GRID_PAD);

        // Pixel (r 2, c 5) of panel a is a 3×3 block of its colour, in a grey frame.
        let (ax, ay) = (2 * GRID_PAD, rows_top);
        let expected = [channel_byte(5.0 / 11.0), channel_byte(2.0 / 9.0), 128];
        for dy in 0..3 {
            for dx in 0..3 {
                assert_eq!(pic.at(ax + 15 + dx, ay + 6 + dy), expected);
            }
        }
        assert_eq!(pic.at(ax - 1, ay - 1), FRAME);
        assert_eq!(pic.at(ax + 36, ay + 30), FRAME);

        // Panel b: a mark on a pixel's centre puts its colour on that pixel.
        let bx = ax + 36 + GRID_GAP;
        assert_eq!(pic.at(bx + 19, ay + 13), [255, 0, 255]);
        assert_eq!(pic.at(bx + 7, ay + 22), [0, 255, 0]);
        // The clipped circle reaches in but leaves the frame and panel a alone.
        assert_ne!(
            pic.at(bx + 1, ay + 15),
            [channel_byte(0.0), channel_byte(5.0 / 9.0), 128]
        );
        for y in ay - 1..=ay + 30 {
            assert_eq!(pic.at(bx - 1, y), FRAME, "frame at row {y}");
            assert_eq!(pic.at(bx - 2, y), [255, 255, 255], "gap at row {y}");
        }

        // Panel c: clamped channels, and NaN drawn red.
        let (cx, cy) = (2 * GRID_PAD, row2_top);
        assert_eq!(pic.at(cx, cy), [255, 0, 128]);
        assert_eq!(pic.at(cx + 12 + 1, cy + 9 + 1), NAN_PIXEL);

        // Legend: a swatch of the colour, then a marker sample centred in its key.
        let key_top = legend_top + (LEGEND_LINE_H - LEGEND_KEY) / 2;
        assert_eq!(pic.at(GRID_PAD + 8, key_top + 8), [10, 200, 30]);
        assert_eq!(pic.at(GRID_PAD, key_top), FRAME);
        let second = (0..pic.width as u64)
            .rev()
            .find(|&x| pic.at(x, key_top + 8) == [255, 0, 255])
            .expect("no marker sample in the legend");
        assert!(
            second > GRID_PAD + LEGEND_KEY + LEGEND_KEY_GAP,
            "sample at x = {second}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn column_headers_get_a_band_over_their_columns() {
        let dir = temp_dir("columns");
        let p = dir.join("columns.png");
        let rows = [("", vec![ramp(10, 12), ramp(10, 12)])];
        panel_grid_with_columns(&p, "", &["A", "B"], &rows, 3, &[]).unwrap();
        let pic = Picture::read(&p);
        // The band sits above the panels, which move down by its height.
        let top = GRID_PAD + GRID_COLUMNS_H;
        assert_eq!(u64::from(pic.height), top + 30 + GRID_PAD);
        assert_eq!(pic.at(2 * GRID_PAD - 1, top - 1), FRAME);
        // Each header's ink lies over its own panel, between the panel's edges.
        let inked = |x0: u64, x1: u64| (x0..x1).any(|x| (GRID_PAD..top - 1).any(|y| pic.at(x, y)[0] < 128));
        let (a0, b0) = (2 * GRID_PAD, 2 * GRID_PAD + 36 + GRID_GAP);
        assert!(inked(a0, a0 + 36) && inked(b0, b0 + 36));
        assert!(!inked(0, a0) && !inked(a0 + 36, b0));
        let err = panel_grid_with_columns(&p, "", &["A", "B", "C"], &rows, 3, &[]).unwrap_err();
        assert!(matches!(err, PlotError::Invalid { .. }), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn marks_on_an_even_scale_cover_their_centre() {
        let dir = temp_dir("marks-even");
        let p = dir.join("marks.png");
        let mut panels = vec![];
        for shape in [MarkShape::Plus, MarkShape::Cross] {
            let mut panel = ramp(6, 6);
            panel.marks = vec![mark(1.5, 2.5, [255, 255, 0], shape)];
            panels.push(panel);
        }
        panel_grid(&p, "", &[("", panels)], 4, &[]).unwrap();
        let pic = Picture::read(&p);
        assert_eq!(u64::from(pic.width), 3 * GRID_PAD + 2 * 24 + GRID_GAP);
        assert_eq!(u64::from(pic.height), GRID_PAD + 24 + GRID_PAD);
        // The centre (6, 10) px into the panel is a pixel corner; the pixel below right of it
        // has its centre on both shapes' lines.
        for j in 0..2 {
            let x0 = 2 * GRID_PAD + j * (24 + GRID_GAP);
            assert_eq!(pic.at(x0 + 6, GRID_PAD + 10), [255, 255, 0], "panel {j}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn legend_wraps_onto_more_lines() {
        let dir = temp_dir("legend");
        let p = dir.join("legend.png");
        let entry = LegendEntry {
            label: "a label longer than the grid",
            color: [0, 0, 200],
            shape: None,
        };
        let panel = ramp(40, 2);
        panel_grid(&p, "", &[("", vec![panel])], 1, &[entry; 5]).unwrap();
        let pic = Picture::read(&p);
        // The picture is one entry wide, so each entry takes its own line.
        let legend_top = GRID_PAD + 40 + GRID_ROW_GAP;
        assert_eq!(
            u64::from(pic.height),
            legend_top + 5 * LEGEND_LINE_H + 4 * LEGEND_LINE_GAP + GRID_PAD
        );
        assert!(u64::from(pic.width) > 3 * GRID_PAD + 2);
        let last_key = legend_top + 4 * (LEGEND_LINE_H + LEGEND_LINE_GAP) + (LEGEND_LINE_H - LEGEND_KEY) / 2;
        assert_eq!(pic.at(GRID_PAD + 8, last_key + 8), [0, 0, 200]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn panel_grid_refuses_bad_input() {
        let dir = temp_dir("panels-err");
        let p = dir.join("x.png");
        let ok = || ramp(4, 4);
        let grid = |rows: &[(&str, Vec<Panel>)], scale| panel_grid(&p, "t", rows, scale, &[]);
        let panel = |h, w, c| Panel {
            pixels: Array3::zeros((h, w, c)),
            marks: vec![],
        };
        let with_mark = |x, y| Panel {
            marks: vec![
                mark(1.0, 1.0, [0; 3], MarkShape::Plus),
                mark(x, y, [0; 3], MarkShape::Circle),
            ],
            ..ok()
        };

        assert!(matches!(grid(&[], 2), Err(PlotError::Empty { .. })));
        assert!(matches!(grid(&[("a", vec![])], 2), Err(PlotError::Empty { .. })));
        assert!(matches!(
            grid(&[("a", vec![panel(0, 4, 3)])], 2),
            Err(PlotError::Empty { .. })
        ));
        let err = grid(&[("a", vec![ok(), panel(4, 4, 1)])], 2).unwrap_err();
        assert!(matches!(err, PlotError::Invalid { .. }), "{err}");
        assert!(err.to_string().contains("panel 1: its pixels are 4×4×1"), "{err}");
        let err = grid(&[("a", vec![ok()]), ("b", vec![ok(), panel(4, 5, 3)])], 2).unwrap_err();
        assert!(matches!(err, PlotError::Mismatch { .. }), "{err}");
        assert!(err.to_string().contains("row 1 (\"b\"): panel 1 is 4×5"), "{err}");
        assert!(matches!(grid(&[("a", vec![ok()])], 0), Err(PlotError::Invalid { .. })));
        for (x, y) in [(f32::NAN, 1.0), (1.0, f32::INFINITY), (f32::NEG_INFINITY, 0.0)] {
            let err = grid(&[("a", vec![ok()]), ("b", vec![ok(), with_mark(x, y)])], 2).unwrap_err();
            assert!(matches!(err, PlotError::Invalid { .. }), "{err}");
            assert!(
                err.to_string().contains("row 1 (\"b\"): panel 1: mark 1 is at"),
                "{err}"
            );
        }
        assert!(matches!(
            grid(&[("a", vec![ok()])], 100_000),
            Err(PlotError::TooLarge { .. })
        ));
        assert!(matches!(
            panel_grid(&dir.join("x.jpg"), "t", &[("a", vec![ok()])], 2, &[]),
            Err(PlotError::NotPng { .. })
        ));
        assert!(!p.exists(), "a refused call must not leave a file");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn marker_lines_are_where_the_shapes_say() {
        let r = 4.0;
        for shape in [MarkShape::Plus, MarkShape::Cross, MarkShape::Circle, MarkShape::Square] {
            // Every shape reaches the box's edge and stays inside it.
            let on_edge = [(r, 0.0), (r, r), (0.0, r), (r, r)];
            let shapes = [MarkShape::Plus, MarkShape::Cross, MarkShape::Circle, MarkShape::Square];
            let k = shapes.iter().position(|&s| s == shape).unwrap();
            let (dx, dy) = on_edge[k];
            assert!(distance_to_lines(shape, dx, dy, r) < 1e-9, "{shape:?}");
            assert!(distance_to_lines(shape, r + 2.0, r + 2.0, r) >= 2.0, "{shape:?}");
        }
        assert_eq!(distance_to_lines(MarkShape::Plus, 0.0, 0.0, r), 0.0);
        assert_eq!(distance_to_lines(MarkShape::Circle, 0.0, 0.0, r), r);
        assert_eq!(distance_to_lines(MarkShape::Square, 1.0, 0.0, r), 3.0);
        assert!((distance_to_lines(MarkShape::Cross, 1.0, 0.0, r) - 0.5f64.sqrt()).abs() < 1e-12);
    }
}
