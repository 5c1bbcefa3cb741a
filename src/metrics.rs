//! How well a dense-prediction model does, as the examples report it: per-pixel class scores
//! for segmentation, and detection scores for key points found in heat maps.
//!
//! | task | from | scores |
//! |---|---|---|
//! | segmentation | predicted and true class maps | [`Confusion`]: pixel accuracy, per-class IoU, mean IoU |
//! | key points | heat maps `[kinds, h, w]` | [`heatmap_targets`] (Gaussian peaks) to train on; [`decode_heatmap`] (3×3 local maxima, refined to sub-pixel); [`KeypointScores`]: precision, recall, F1 within a radius, mean localisation error |
//!
//! Key points are in pixel coordinates with `(0, 0)` the image's top-left corner, so pixel
//! `(x, y)` has its centre at `(x + 0.5, y + 0.5)` (as [`crate::data::Keypoint`]).

use ndarray::{Array3, ArrayView2, ArrayView3, ArrayView4};

use crate::error::{Result, bad_shape, invalid};

/// Counts of (true class, predicted class) over pixels, for segmentation scores.
#[derive(Clone, Debug, PartialEq)]
pub struct Confusion {
    classes: usize,
    /// Row-major `[true, predicted]`.
    counts: Vec<u64>,
}

impl Confusion {
    /// An empty matrix for `classes` classes.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] if `classes` is 0 or above 256 (classes are `u8`).
    pub fn new(classes: usize) -> Result<Self> {
        if !(1..=256).contains(&classes) {
            return Err(invalid("Confusion", "classes", classes, "must be in 1..=256"));
        }
        Ok(Confusion {
            classes,
            counts: vec![0; classes * classes],
        })
    }

    /// Adds the pixels of one or more maps: `truth` and `predicted` of one shape.
    ///
    /// # Errors
    /// [`crate::Error::BadShape`] if the lengths differ, [`crate::Error::InvalidArgument`] for
    /// a class outside `0..classes`.
    pub fn add(&mut self, truth: &[u8], predicted: &[u8]) -> Result<()> {
        if truth.len() != predicted.len() {
            return Err(bad_shape(
                "Confusion::add",
                "predicted",
                &[predicted.len()],
                format!("must have as many pixels as truth ({})", truth.len()),
            ));
        }
        if let Some(&c) = truth.iter().chain(predicted).find(|&&c| usize::from(c) >= self.classes) {
            return Err(invalid(
                "Confusion::add",
                "class",
                c,
                format!("must be below classes = {}", self.classes),
            ));
        }
        for (&t, &p) in truth.iter().zip(predicted) {
            self.counts[usize::from(t) * self.classes + usize::from(p)] += 1;
        }
        Ok(())
    }

    /// Pixels of true class `t` predicted as `p`.
    pub fn count(&self, t: usize, p: usize) -> u64 {
        self.counts[t * self.classes + p]
    }

    /// The share of pixels predicted right (NaN for no pixels).
    pub fn pixel_accuracy(&self) -> f64 {
        let right: u64 = (0..self.classes).map(|c| self.count(c, c)).sum();
        right as f64 / self.counts.iter().sum::<u64>() as f64
    }

    /// Per class, its intersection over union `TP / (TP + FP + FN)`: `None` for a class that
    /// neither occurs nor is predicted (no pixels to score it on).
    pub fn iou(&self) -> Vec<Option<f64>> {
        (0..self.classes)
            .map(|c| {
                let tp = self.count(c, c);
                let fn_: u64 = (0..self.classes).map(|p| self.count(c, p)).sum::<u64>() - tp;
                let fp: u64 = (0..self.classes).map(|t| self.count(t, c)).sum::<u64>() - tp;
                let union = tp + fp + fn_;
                (union > 0).then(|| tp as f64 / union as f64)
            })
            .collect()
    }

    /// The mean of the defined per-class IoUs, background included (NaN if none is defined).
    pub fn mean_iou(&self) -> f64 {
        let defined: Vec<f64> = self.iou().into_iter().flatten().collect();
        defined.iter().sum::<f64>() / defined.len() as f64
    }
}

/// The class of each pixel: the arg-max over axis 1 of `logits: [n, classes, h, w]`, as
/// `[n, h, w]`. Ties go to the lower class (PyTorch's `argmax`); a NaN logit wins its pixel
/// (as in PyTorch, where NaN compares greatest), so a diverged model scores as wrong, not as
/// background.
///
/// # Errors
/// [`crate::Error::BadShape`] for no class or more than 256 classes.
pub fn argmax_classes(logits: ArrayView4<'_, f32>) -> Result<Array3<u8>> {
    let (n, classes, h, w) = logits.dim();
    if !(1..=256).contains(&classes) {
        return Err(bad_shape(
            "argmax_classes",
            "logits",
            logits.shape(),
            "must hold 1 to 256 classes on axis 1",
        ));
    }
    Ok(Array3::from_shape_fn((n, h, w), |(i, y, x)| {
        let mut best = 0;
        for c in 1..classes {
            let (v, b) = (logits[[i, c, y, x]], logits[[i, best, y, x]]);
            if b.is_nan() {
                break;
            }
            if v > b || v.is_nan() {
                best = c;
            }
        }
        best as u8
    }))
}

/// A key point found in a heat map.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detection {
    /// Its heat-map channel (key-point kind).
    pub kind: usize,
    /// Column, in pixels from the left edge (sub-pixel).
    pub x: f32,
    /// Row, in pixels from the top edge (sub-pixel).
    pub y: f32,
    /// The heat-map value at the peak.
    pub score: f32,
}

/// Training targets for a heat-map head: per kind, a Gaussian peak `exp(−d²/2σ²)` of height 1
/// at every point of that kind (the maximum where peaks overlap), evaluated at pixel centres
/// and cut to 0 beyond `3σ`.
/// `points` are `(kind, x, y)`. Shape `[kinds, size, size]`.
///
/// # Errors
/// [`crate::Error::InvalidArgument`] if `sigma` is not finite and above 0, a kind is not
/// below `kinds`, or the maps would hold more than `ops::size::MAX_ELEMENTS` values.
pub fn heatmap_targets(points: &[(usize, f32, f32)], kinds: usize, size: usize, sigma: f32) -> Result<Array3<f32>> {
    if !(sigma.is_finite() && sigma > 0.0) {
        return Err(invalid(
            "heatmap_targets",
            "sigma",
            sigma,
            "must be a finite number above 0",
        ));
    }
    if let Some(&(k, ..)) = points.iter().find(|p| p.0 >= kinds) {
        return Err(invalid(
            "heatmap_targets",
            "kind",
            k,
            format!("must be below kinds = {kinds}"),
        ));
    }
    crate::ops::size::elements("heatmap_targets", "shape", &[kinds, size, size])?;
    let mut heat = Array3::<f32>::zeros((kinds, size, size));
    // Beyond 3σ a peak is below 0.011 and is cut to 0, so each point touches few pixels.
    let reach = 3.0 * sigma;
    for &(k, px, py) in points {
        let span = |c: f32| {
            let lo = (c - reach - 0.5).floor().max(0.0) as usize;
            let hi = ((c + reach + 0.5).ceil().max(0.0) as usize).min(size);
            lo..hi
        };
        for y in span(py) {
            for x in span(px) {
                let (dx, dy) = (x as f32 + 0.5 - px, y as f32 + 0.5 - py);
                let d2 = dx * dx + dy * dy;
                if d2 > reach * reach {
                    continue;
                }
                let v = (-d2 / (2.0 * sigma * sigma)).exp();
                let cell = &mut heat[[k, y, x]];
                *cell = cell.max(v);
            }
        }
    }
    Ok(heat)
}

/// The key points of one heat map `[kinds, h, w]`: every pixel above `threshold` that is the
/// maximum of its 3×3 neighbourhood (ties go to the first in row-major order), strongest first,
/// each refined to sub-pixel position along each axis from the peak and its two neighbours:
/// by the vertex of the parabola through their logarithms when all three are positive (exact
/// for a Gaussian peak, the shape [`heatmap_targets`] trains), by their value-weighted mean
/// otherwise (a neighbour off the map counts as 0). The refinement stays within the pixel.
pub fn decode_heatmap(heat: ArrayView3<'_, f32>, threshold: f32) -> Vec<Detection> {
    let (kinds, h, w) = heat.dim();
    let mut found = Vec::new();
    for k in 0..kinds {
        let plane = heat.index_axis(ndarray::Axis(0), k);
        for y in 0..h {
            for x in 0..w {
                let v = plane[[y, x]];
                // `v > threshold` is false for NaN too: a NaN is never a peak.
                let above = v > threshold;
                if !above || !is_peak(plane, y, x) {
                    continue;
                }
                let at = |yy: Option<usize>, xx: Option<usize>| match (yy, xx) {
                    (Some(yy), Some(xx)) if yy < h && xx < w => plane[[yy, xx]],
                    _ => 0.0,
                };
                let dx = refine(at(Some(y), x.checked_sub(1)), v, at(Some(y), Some(x + 1)));
                let dy = refine(at(y.checked_sub(1), Some(x)), v, at(Some(y + 1), Some(x)));
                found.push(Detection {
                    kind: k,
                    x: x as f32 + 0.5 + dx,
                    y: y as f32 + 0.5 + dy,
                    score: v,
                });
            }
        }
    }
    found.sort_by(|a, b| b.score.total_cmp(&a.score));
    found
}

/// The offset of a peak from its pixel's centre along one axis, from the values before (`l`),
/// at (`c`) and after (`r`) it; see [`decode_heatmap`].
fn refine(l: f32, c: f32, r: f32) -> f32 {
    let offset = if l > 0.0 && r > 0.0 && c > 0.0 {
        // ln of a Gaussian is a parabola: its vertex is the peak.
        let (ll, lc, lr) = (l.ln(), c.ln(), r.ln());
        let curvature = ll - 2.0 * lc + lr;
        if curvature < 0.0 {
            0.5 * (ll - lr) / curvature
        } else {
            0.0
        }
    } else {
        let (l, c, r) = (l.max(0.0), c.max(0.0), r.max(0.0));
        (r - l) / (l + c + r)
    };
    offset.clamp(-0.5, 0.5)
}

/// The in-bounds cells of the 3×3 neighbourhood of `(y, x)`, itself included.
fn neighbours(y: usize, x: usize, h: usize, w: usize) -> impl Iterator<Item = (usize, usize)> {
    (y.saturating_sub(1)..(y + 2).min(h))
        .flat_map(move |ny| (x.saturating_sub(1)..(x + 2).min(w)).map(move |nx| (ny, nx)))
}

/// Whether `(y, x)` is the 3×3 maximum: no neighbour is larger, and no earlier neighbour (in
/// row-major order) is equal, so a plateau yields one peak.
fn is_peak(plane: ArrayView2<'_, f32>, y: usize, x: usize) -> bool {
    let v = plane[[y, x]];
    neighbours(y, x, plane.nrows(), plane.ncols()).all(|(ny, nx)| {
        let u = plane[[ny, nx]];
        u < v || (u == v && (ny, nx) >= (y, x))
    })
}

/// Detection scores summed over images: true positives (a detection matched to a true point
/// of its kind within the radius, each true point matched at most once, strongest detections
/// first, each to its nearest unmatched point), false positives, false negatives, and the
/// summed distance of the matches.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct KeypointScores {
    /// Matched detections.
    pub true_positives: usize,
    /// Unmatched detections.
    pub false_positives: usize,
    /// Unmatched true points.
    pub false_negatives: usize,
    /// Sum of the matched detections' distances to their points, in pixels.
    pub distance_sum: f64,
}

impl KeypointScores {
    /// Adds one image: `detections` (as [`decode_heatmap`] gives them, strongest first) against
    /// the true `(kind, x, y)` points, matching within `radius` pixels.
    pub fn add(&mut self, detections: &[Detection], truth: &[(usize, f32, f32)], radius: f32) {
        let mut taken = vec![false; truth.len()];
        for d in detections {
            let nearest = truth
                .iter()
                .enumerate()
                .filter(|&(i, t)| !taken[i] && t.0 == d.kind)
                .map(|(i, t)| (i, (t.1 - d.x).hypot(t.2 - d.y)))
                .filter(|&(_, dist)| dist <= radius)
                .min_by(|a, b| a.1.total_cmp(&b.1));
            match nearest {
                Some((i, dist)) => {
                    taken[i] = true;
                    self.true_positives += 1;
                    self.distance_sum += f64::from(dist);
                }
                None => self.false_positives += 1,
            }
        }
        self.false_negatives += taken.iter().filter(|&&t| !t).count();
    }

    /// `TP / (TP + FP)` (NaN without detections).
    pub fn precision(&self) -> f64 {
        self.true_positives as f64 / (self.true_positives + self.false_positives) as f64
    }

    /// `TP / (TP + FN)` (NaN without true points).
    pub fn recall(&self) -> f64 {
        self.true_positives as f64 / (self.true_positives + self.false_negatives) as f64
    }

    /// The harmonic mean of precision and recall, `2TP / (2TP + FP + FN)`.
    pub fn f1(&self) -> f64 {
        let tp = 2.0 * self.true_positives as f64;
        tp / (tp + (self.false_positives + self.false_negatives) as f64)
    }

    /// The mean distance of the matched detections, in pixels (NaN without matches).
    pub fn mean_error(&self) -> f64 {
        self.distance_sum / self.true_positives as f64
    }
}
