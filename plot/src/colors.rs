//! Colour for [`panel_grid`](crate::panel_grid)'s RGB panels, so that callers need no colour
//! code of their own: a categorical [`palette`] and [`class_colors`] for class maps,
//! [`gray_to_rgb`], [`sequential_colors`] for heat maps, and [`blend`] to lay one over another.
//!
//! Every RGB picture here is `[h, w, 3]` with channels in [0, 1], as [`Panel`](crate::Panel)
//! takes it.

use ndarray::{Array2, Array3, ArrayView1, Axis, Zip};

use crate::{PALETTE, PlotError};

/// Entry 0 of [`palette`]: near-black rather than black, so that a background region still
/// reads as a colour next to a black frame or a black marker halo.
const BACKGROUND: [u8; 3] = [26, 26, 26];

/// The light halves of matplotlib's "tab20", in tab10's order: the same hues as tab10, told
/// apart from them by lightness.
const TAB10_LIGHT: [u32; 10] = [
    0xaec7e8, 0xffbb78, 0x98df8a, 0xff9896, 0xc5b0d5, 0xc49c94, 0xf7b6d2, 0xc7c7c7, 0xdbdb8d, 0x9edae5,
];

/// matplotlib's viridis at 0, 1/8, ..., 1, as published (#440154, ..., #fde725): perceptually
/// uniform and monotonic in lightness, so that brighter always means more.
const VIRIDIS: [u32; 9] = [
    0x440154, 0x472d7b, 0x3b528b, 0x2c728e, 0x21918c, 0x28ae80, 0x5ec962, 0xaddc30, 0xfde725,
];

/// A categorical palette of `n` distinct, readable colours; entry 0 is near-black (26, 26, 26),
/// for the background class.
///
/// Entries 1 to 10 are matplotlib's "tab10" (the colours of [`line_chart`](crate::line_chart)'s
/// series), entries 11 to 20 their light versions from "tab20"; from entry 21 on, hues step by
/// the golden ratio around the colour wheel, alternating between two saturations and two
/// brightnesses, all bright enough to stand out from the background. The colours are the same
/// for every call, and `palette(n)` is the start of `palette(n + 1)`. All are distinct (tested
/// up to n = 1000), but beyond about 20 some pairs become hard to tell apart by eye, as with
/// any palette.
///
/// # Example
/// ```
/// let colors = adjoint_plot::palette(12);
/// assert_eq!(colors.len(), 12);
/// assert_eq!(colors[0], [26, 26, 26]);
/// assert_eq!(colors[1], [31, 119, 180]); // tab10 blue
/// assert_eq!(colors[11], [174, 199, 232]); // its light version
/// assert_eq!(adjoint_plot::palette(3), colors[..3]);
/// ```
pub fn palette(n: usize) -> Vec<[u8; 3]> {
    let tab10 = PALETTE.iter().map(|c| [c.0, c.1, c.2]);
    std::iter::once(BACKGROUND)
        .chain(tab10)
        .chain(TAB10_LIGHT.map(from_hex))
        .chain((0..).map(generated_color))
        .take(n)
        .collect()
}

/// Colour `k` after tab20. Steps of the golden ratio (mod 1) keep every new hue far from all
/// earlier ones, however many there are.
fn generated_color(k: usize) -> [u8; 3] {
    let hue = (0.05 + k as f64 * 0.618_033_988_749_895).fract();
    let saturation = [0.85, 0.55][k % 2];
    let value = [0.95, 0.75][(k / 2) % 2];
    hsv_to_rgb(hue, saturation, value)
}

/// `0xRRGGBB` as `[r, g, b]`.
fn from_hex(rgb: u32) -> [u8; 3] {
    let [_, r, g, b] = rgb.to_be_bytes();
    [r, g, b]
}

/// HSV (each in [0, 1]) to 8-bit RGB.
fn hsv_to_rgb(hue: f64, saturation: f64, value: f64) -> [u8; 3] {
    let h = hue * 6.0;
    let f = h - h.floor();
    let (p, q, t) = (
        value * (1.0 - saturation),
        value * (1.0 - saturation * f),
        value * (1.0 - saturation * (1.0 - f)),
    );
    let (r, g, b) = match h.floor() as u32 % 6 {
        0 => (value, t, p),
        1 => (q, value, p),
        2 => (p, value, t),
        3 => (p, q, value),
        4 => (t, p, value),
        _ => (value, p, q),
    };
    [r, g, b].map(|c| (c * 255.0).round() as u8)
}

/// A class map of class indices as an RGB picture, class `k` drawn as `palette[k]`.
///
/// Shapes: `classes: [h, w]` → `[h, w, 3]` in [0, 1]. Use [`palette`] for the colours, or
/// any list of your own.
///
/// # Errors
/// [`PlotError::Invalid`] for a class index with no colour (`>= palette.len()`), naming the
/// first such index in row-major order and its position.
///
/// # Example
/// ```
/// use ndarray::array;
///
/// let rgb = adjoint_plot::class_colors(&array![[0, 2]], &[[0, 0, 0], [255, 0, 0], [0, 0, 255]])?;
/// assert_eq!(rgb.shape(), [1, 2, 3]);
/// assert_eq!(rgb[[0, 1, 2]], 1.0);
/// assert!(adjoint_plot::class_colors(&array![[0, 3]], &[[0, 0, 0]]).is_err());
/// # Ok::<(), adjoint_plot::PlotError>(())
/// ```
pub fn class_colors(classes: &Array2<u8>, palette: &[[u8; 3]]) -> Result<Array3<f32>, PlotError> {
    if let Some(((r, c), k)) = classes.indexed_iter().find(|&(_, &k)| usize::from(k) >= palette.len()) {
        return Err(PlotError::Invalid {
            op: "class_colors",
            what: format!(
                "class {k} at (row {r}, column {c}) has no colour: the palette has {} colours",
                palette.len()
            ),
        });
    }
    Ok(to_rgb(classes, |k| {
        palette[usize::from(k)].map(|c| f32::from(c) / 255.0)
    }))
}

/// A grayscale image as RGB: each value clamped to [0, 1] and copied into all three channels.
///
/// Shapes: `image: [h, w]` → `[h, w, 3]`. NaN stays NaN, so that [`panel_grid`](crate::panel_grid)
/// draws it red, as [`image_grid`](crate::image_grid) does.
///
/// # Example
/// ```
/// use ndarray::{array, s};
///
/// let rgb = adjoint_plot::gray_to_rgb(&array![[0.25, 2.0, f32::NAN]]);
/// assert_eq!(rgb.slice(s![0, 0, ..]).to_vec(), [0.25, 0.25, 0.25]);
/// assert_eq!(rgb.slice(s![0, 1, ..]).to_vec(), [1.0, 1.0, 1.0]);
/// assert!(rgb[[0, 2, 0]].is_nan());
/// ```
pub fn gray_to_rgb(image: &Array2<f32>) -> Array3<f32> {
    // `clamp` keeps NaN.
    to_rgb(image, |v| [v.clamp(0.0, 1.0); 3])
}

/// A heat map through viridis: 0 dark purple, 0.5 teal, 1 yellow.
///
/// Values are clamped to [0, 1] and interpolated linearly between nine published anchors of
/// matplotlib's viridis (at 0, 1/8, ..., 1), which is perceptually uniform and grows
/// monotonically in lightness, so that brighter always means more; NaN stays NaN (drawn red by
/// [`panel_grid`](crate::panel_grid)). Scale the values to [0, 1] first, e.g. by their maximum.
///
/// Shapes: `values: [h, w]` → `[h, w, 3]`.
///
/// # Example
/// ```
/// use ndarray::{array, s};
///
/// let rgb = adjoint_plot::sequential_colors(&array![[0.0, 1.0]]);
/// assert_eq!(rgb.slice(s![0, 0, ..]).to_vec(), [68.0 / 255.0, 1.0 / 255.0, 84.0 / 255.0]);
/// assert_eq!(rgb.slice(s![0, 1, ..]).to_vec(), [253.0 / 255.0, 231.0 / 255.0, 37.0 / 255.0]);
/// ```
pub fn sequential_colors(values: &Array2<f32>) -> Array3<f32> {
    to_rgb(values, viridis)
}

fn viridis(v: f32) -> [f32; 3] {
    if v.is_nan() {
        return [f32::NAN; 3];
    }
    let steps = (VIRIDIS.len() - 1) as f32;
    let at = v.clamp(0.0, 1.0) * steps;
    // At v = 1 the segment is the last one, at its end.
    let i = (at.floor() as usize).min(VIRIDIS.len() - 2);
    let t = at - i as f32;
    let (a, b) = (from_hex(VIRIDIS[i]), from_hex(VIRIDIS[i + 1]));
    [0, 1, 2].map(|c| (f32::from(a[c]) + (f32::from(b[c]) - f32::from(a[c])) * t) / 255.0)
}

/// `weight` of `overlay` laid over `base`: `(1 - weight) · base + weight · overlay`, channel by
/// channel, e.g. a class map over the input image at `weight = 0.4`.
///
/// Shapes: `base, overlay: [h, w, 3]` → `[h, w, 3]`. NaN in either gives NaN.
///
/// # Errors
/// - [`PlotError::Invalid`]: `weight` outside [0, 1] or NaN; a last axis other than 3;
/// - [`PlotError::Mismatch`]: `base` and `overlay` of different shapes.
///
/// # Example
/// ```
/// use ndarray::Array3;
///
/// let (black, white) = (Array3::zeros((2, 2, 3)), Array3::ones((2, 2, 3)));
/// let grey = adjoint_plot::blend(&black, &white, 0.25)?;
/// assert!(grey.iter().all(|&v| v == 0.25));
/// assert!(adjoint_plot::blend(&black, &white, 1.5).is_err());
/// # Ok::<(), adjoint_plot::PlotError>(())
/// ```
pub fn blend(base: &Array3<f32>, overlay: &Array3<f32>, weight: f32) -> Result<Array3<f32>, PlotError> {
    const OP: &str = "blend";
    if !(0.0..=1.0).contains(&weight) {
        return Err(PlotError::Invalid {
            op: OP,
            what: format!("weight {weight} is not in [0, 1]"),
        });
    }
    if base.dim() != overlay.dim() {
        let ((h, w, c), (h2, w2, c2)) = (base.dim(), overlay.dim());
        return Err(PlotError::Mismatch {
            op: OP,
            what: format!("base is {h}×{w}×{c} but overlay is {h2}×{w2}×{c2}"),
        });
    }
    if let Some(why) = not_rgb(base) {
        return Err(PlotError::Invalid {
            op: OP,
            what: format!("base and overlay: {why}"),
        });
    }
    Ok(Zip::from(base)
        .and(overlay)
        .map_collect(|&b, &o| (1.0 - weight) * b + weight * o))
}

/// Why `pixels` is not an RGB picture, if it is not.
pub(crate) fn not_rgb(pixels: &Array3<f32>) -> Option<String> {
    let (h, w, c) = pixels.dim();
    (c != 3).then(|| format!("its pixels are {h}×{w}×{c}; the last axis must hold 3 channels (RGB)"))
}

/// `[h, w]` → `[h, w, 3]`, each entry through `color`.
fn to_rgb<T: Copy>(values: &Array2<T>, color: impl Fn(T) -> [f32; 3]) -> Array3<f32> {
    let (h, w) = values.dim();
    let mut rgb = Array3::zeros((h, w, 3));
    Zip::from(rgb.lanes_mut(Axis(2)))
        .and(values)
        .for_each(|mut pixel, &v| pixel.assign(&ArrayView1::from(&color(v))));
    rgb
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, s};

    /// Relative luminance (WCAG) of an RGB colour with channels in [0, 1].
    fn luminance(rgb: [f32; 3]) -> f32 {
        let linear = |c: f32| {
            if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * linear(rgb[0]) + 0.7152 * linear(rgb[1]) + 0.0722 * linear(rgb[2])
    }

    #[test]
    fn palette_colors_are_distinct_and_stable() {
        for n in [0, 1, 12, 40, 1000] {
            let colors = palette(n);
            assert_eq!(colors.len(), n);
            let mut unique = colors.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), n, "palette({n}) repeats a colour");
            assert_eq!(colors, palette(1000)[..n], "palette({n}) is not a prefix");
        }
        let colors = palette(100);
        assert!(
            luminance(colors[0].map(|c| f32::from(c) / 255.0)) < 0.02,
            "entry 0 is not dark"
        );
        // Every other entry stands out from the background.
        for (k, color) in colors.iter().enumerate().skip(1) {
            let l = luminance(color.map(|c| f32::from(c) / 255.0));
            assert!(l > 0.05, "entry {k} {color:?} is too dark: luminance {l}");
        }
    }

    #[test]
    fn class_colors_maps_indices_and_refuses_missing_ones() {
        let colors = [[0, 0, 0], [255, 0, 0], [0, 51, 255]];
        let rgb = class_colors(&array![[0, 1], [2, 1]], &colors).unwrap();
        assert_eq!(rgb.shape(), [2, 2, 3]);
        assert_eq!(rgb.slice(s![1, 0, ..]).to_vec(), [0.0, 0.2, 1.0]);
        assert_eq!(rgb.slice(s![0, 1, ..]).to_vec(), [1.0, 0.0, 0.0]);
        let err = class_colors(&array![[0, 1], [2, 3]], &colors).unwrap_err();
        assert!(matches!(err, PlotError::Invalid { .. }), "{err}");
        assert!(err.to_string().contains("class 3 at (row 1, column 1)"), "{err}");
        assert!(class_colors(&array![[0u8]], &[]).is_err());
        assert_eq!(class_colors(&Array2::zeros((0, 3)), &[]).unwrap().shape(), [0, 3, 3]);
    }

    #[test]
    fn sequential_colors_grow_in_luminance_between_the_ends() {
        let n = 1001;
        let values = Array2::from_shape_fn((1, n), |(_, j)| j as f32 / (n - 1) as f32);
        let rgb = sequential_colors(&values);
        let at = |j: usize| [0, 1, 2].map(|c| rgb[[0, j, c]]);
        assert_eq!(at(0), from_hex(VIRIDIS[0]).map(|c| f32::from(c) / 255.0));
        assert_eq!(at(n - 1), from_hex(VIRIDIS[8]).map(|c| f32::from(c) / 255.0));
        for j in 1..n {
            assert!(
                luminance(at(j)) > luminance(at(j - 1)),
                "luminance falls between {} and {}",
                j - 1,
                j
            );
        }
        // Clamped outside [0, 1]; NaN stays NaN.
        let rgb = sequential_colors(&array![[-3.0, 7.0, f32::NAN]]);
        assert_eq!(
            rgb.slice(s![0, 0, ..]),
            sequential_colors(&array![[0.0]]).slice(s![0, 0, ..])
        );
        assert_eq!(
            rgb.slice(s![0, 1, ..]),
            sequential_colors(&array![[1.0]]).slice(s![0, 0, ..])
        );
        assert!(rgb.slice(s![0, 2, ..]).iter().all(|v| v.is_nan()));
    }

    #[test]
    fn gray_to_rgb_clamps_and_copies() {
        let rgb = gray_to_rgb(&array![[-1.0, 0.5], [f32::NAN, 1.5]]);
        assert_eq!(rgb.shape(), [2, 2, 3]);
        assert_eq!(rgb.slice(s![0, 0, ..]).to_vec(), [0.0; 3]);
        assert_eq!(rgb.slice(s![0, 1, ..]).to_vec(), [0.5; 3]);
        assert_eq!(rgb.slice(s![1, 1, ..]).to_vec(), [1.0; 3]);
        assert!(rgb.slice(s![1, 0, ..]).iter().all(|v| v.is_nan()));
    }

    #[test]
    fn blend_mixes_and_refuses_bad_input() {
        let base = Array3::from_elem((1, 2, 3), 0.2f32);
        let overlay = Array3::from_elem((1, 2, 3), 1.0f32);
        let mixed = blend(&base, &overlay, 0.5).unwrap();
        assert!(mixed.iter().all(|&v| (v - 0.6).abs() < 1e-6), "{mixed}");
        assert_eq!(blend(&base, &overlay, 0.0).unwrap(), base);
        assert_eq!(blend(&base, &overlay, 1.0).unwrap(), overlay);
        for weight in [-0.1, 1.1, f32::NAN] {
            let err = blend(&base, &overlay, weight).unwrap_err();
            assert!(matches!(err, PlotError::Invalid { .. }), "{err}");
        }
        let err = blend(&base, &Array3::zeros((2, 1, 3)), 0.5).unwrap_err();
        assert!(matches!(err, PlotError::Mismatch { .. }), "{err}");
        let two = Array3::zeros((1, 2, 2));
        let err = blend(&two, &two, 0.5).unwrap_err();
        assert!(matches!(err, PlotError::Invalid { .. }), "{err}");
        assert!(err.to_string().contains("3 channels"), "{err}");
    }
}
