//! How well a model does, as the examples report it: per-pixel class scores for
//! segmentation, detection scores for key points found in heat maps, and for a generator the
//! quality of its samples and its checkerboard artefacts.
//!
//! | task | from | scores |
//! |---|---|---|
//! | segmentation | predicted and true class maps | [`Confusion`]: pixel accuracy, per-class IoU, mean IoU |
//! | key points | heat maps `[kinds, h, w]` | [`heatmap_targets`] (Gaussian peaks) to train on; [`decode_heatmap`] (3×3 local maxima, refined to sub-pixel); [`KeypointScores`]: precision, recall, F1 within a radius, mean localisation error |
//! | generation | a classifier's logits on samples `[n, classes]` | [`sample_scores`]: mean top-class confidence, entropy of the predicted classes |
//! | checkerboards | images `[n, h, w]` | [`checkerboard_score`]: share of energy at the 2×2 period; [`power_spectrum`] to draw |
//!
//! Key points are in pixel coordinates with `(0, 0)` the image's top-left corner, so pixel
//! `(x, y)` has its centre at `(x + 0.5, y + 0.5)` (as [`crate::data::Keypoint`]).

use ndarray::{Array2, Array3, ArrayView2, ArrayView3, ArrayView4};

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

/// How a classifier sees a generator's samples: [`sample_scores`].
#[derive(Clone, Debug, PartialEq)]
pub struct SampleScores {
    /// The mean over samples of the top class's softmax probability: high when the samples
    /// look like *some* class (sharp, recognisable), low for blurs and in-between shapes.
    pub mean_confidence: f64,
    /// The entropy, in nats, of the histogram of predicted (arg-max) classes: `ln classes`
    /// when every class is predicted equally often, lower when the generator favours some
    /// classes, 0 when every sample is one class (mode collapse).
    pub class_entropy: f64,
    /// How many samples were predicted as each class.
    pub histogram: Vec<usize>,
}

/// Scores a generator's samples by a classifier trained on the real images: from the
/// classifier's `logits: [n, classes]` on `n` samples, the mean top-class confidence and the
/// entropy of the predicted classes' histogram ([`SampleScores`]). The two catch different
/// failures: unrecognisable samples lower the confidence, mode collapse lowers the entropy.
/// (They are the two halves of the Inception Score's reasoning, kept apart and in plain
/// units.)
///
/// The softmax is computed in `f64` after subtracting each row's largest logit; ties in the
/// arg-max go to the lower class, as PyTorch's `argmax`.
///
/// # Errors
/// [`crate::Error::InvalidArgument`] for no sample, no class, or a logit that is not finite
/// (a diverged classifier scores nothing).
///
/// # Example
/// ```
/// use adjoint::metrics::sample_scores;
/// use ndarray::arr2;
///
/// // Two samples, sure of classes 0 and 1: confidence ≈ 1, entropy ln 2.
/// let scores = sample_scores(arr2(&[[30.0f32, 0.0], [0.0, 30.0]]).view())?;
/// assert!((scores.mean_confidence - 1.0).abs() < 1e-12);
/// assert!((scores.class_entropy - 2f64.ln()).abs() < 1e-12);
/// assert_eq!(scores.histogram, vec![1, 1]);
/// # Ok::<(), adjoint::Error>(())
/// ```
pub fn sample_scores(logits: ArrayView2<'_, f32>) -> Result<SampleScores> {
    let (n, classes) = logits.dim();
    if n == 0 || classes == 0 {
        return Err(bad_shape(
            "sample_scores",
            "logits",
            logits.shape(),
            "must hold at least one sample and one class",
        ));
    }
    if let Some(bad) = logits.iter().find(|v| !v.is_finite()) {
        return Err(invalid("sample_scores", "logits", bad, "must all be finite"));
    }
    let mut histogram = vec![0usize; classes];
    let mut confidence = 0.0;
    for row in logits.rows() {
        let mut best = 0;
        for c in 1..classes {
            if row[c] > row[best] {
                best = c;
            }
        }
        let top = f64::from(row[best]);
        // The top class's probability: 1 / Σ exp(z_c − z_top).
        confidence += 1.0 / row.iter().map(|&z| (f64::from(z) - top).exp()).sum::<f64>();
        histogram[best] += 1;
    }
    let class_entropy = -histogram
        .iter()
        .filter(|&&count| count > 0)
        .map(|&count| {
            let p = count as f64 / n as f64;
            p * p.ln()
        })
        .sum::<f64>();
    Ok(SampleScores {
        mean_confidence: confidence / n as f64,
        class_entropy: class_entropy.max(0.0),
        histogram,
    })
}

/// Refuses images that [`checkerboard_score`] and [`power_spectrum`] cannot take: none, an
/// empty side, or an odd side (the 2-pixel period's frequency π is on the discrete Fourier
/// grid only for even sides).
fn check_even_sides(op: &'static str, shape: &[usize]) -> Result<()> {
    let sides = &shape[shape.len() - 2..];
    if shape.contains(&0) || sides.iter().any(|s| s % 2 == 1) {
        return Err(bad_shape(
            op,
            "images",
            shape,
            "must hold at least one image, with even, non-zero sides",
        ));
    }
    Ok(())
}

/// The checkerboard score of images `[n, h, w]`: per image, the share of its energy (about its
/// mean) at the 2×2 period, averaged over the images. It is 1 for a pure checkerboard, 0 for
/// an image without any 2-pixel periodicity.
///
/// A stride-2 transposed conv paints output pixels of different parities with different
/// taps of its kernel (with a 4×4 kernel, even pixels get taps 1 and 3 of each axis, odd ones
/// 0 and 2; with an odd kernel they even get different numbers of taps), so whatever differs
/// between those taps repeats every 2 pixels: in the discrete Fourier transform it sits
/// exactly at the frequencies `(π, π)`, `(π, 0)` and `(0, π)`. With `d = x − mean(x)` and
/// `N = h·w`:
///
/// ```text
/// X(π,π) = Σ d[i,j]·(−1)^(i+j)    X(π,0) = Σ d[i,j]·(−1)^i    X(0,π) = Σ d[i,j]·(−1)^j
/// share  = (X(π,π)² + X(π,0)² + X(0,π)²) / (N · Σ d[i,j]²)
/// ```
///
/// By Parseval, `N·Σd²` is the sum of `|X(k)|²` over all frequencies, and each of the three is
/// a single real bin, so the share lies in [0, 1]. Natural images and smooth generators put
/// very little there (a random image puts `3/N`, about 0.4% at 28×28). The score ignores the
/// images' mean and scale, so it compares generators with different output ranges. An image
/// without any contrast (constant) scores 0.
///
/// # Errors
/// [`crate::Error::BadShape`] for no image, or a side that is 0 or odd.
///
/// # Example
/// ```
/// use adjoint::metrics::checkerboard_score;
/// use ndarray::Array3;
///
/// let board = Array3::from_shape_fn((1, 4, 6), |(_, i, j)| ((i + j) % 2) as f32);
/// assert!((checkerboard_score(board.view())? - 1.0).abs() < 1e-12);
/// let stripes = Array3::from_shape_fn((1, 4, 8), |(_, _, j)| ((j / 2) % 2) as f32); // period 4
/// assert!(checkerboard_score(stripes.view())? < 1e-12);
/// # Ok::<(), adjoint::Error>(())
/// ```
pub fn checkerboard_score(images: ArrayView3<'_, f32>) -> Result<f64> {
    check_even_sides("checkerboard_score", images.shape())?;
    let (n, h, w) = images.dim();
    let total: f64 = images
        .outer_iter()
        .map(|image| {
            let mean = image.iter().map(|&v| f64::from(v)).sum::<f64>() / (h * w) as f64;
            let (mut energy, mut both, mut rows, mut cols) = (0.0, 0.0, 0.0, 0.0);
            for ((i, j), &v) in image.indexed_iter() {
                let d = f64::from(v) - mean;
                let (si, sj) = (sign(i), sign(j));
                energy += d * d;
                both += d * si * sj;
                rows += d * si;
                cols += d * sj;
            }
            if energy > 0.0 {
                (both * both + rows * rows + cols * cols) / ((h * w) as f64 * energy)
            } else {
                0.0
            }
        })
        .sum();
    Ok(total / n as f64)
}

/// `(−1)^i`.
fn sign(i: usize) -> f64 {
    if i.is_multiple_of(2) { 1.0 } else { -1.0 }
}

/// The power spectrum of an image `[h, w]` about its mean, as shares of its energy (the
/// entries sum to 1; all are 0 for a constant image), with the zero frequency at the centre
/// `(h/2, w/2)` (NumPy's `fftshift`): entry `(a, b)` is `|X(u, v)|² / (N·Σd²)` for the
/// frequencies `u = 2π(a − h/2)/h`, `v = 2π(b − w/2)/w`. The corner `(0, 0)` is `(π, π)`,
/// and `(0, w/2)`, `(h/2, 0)` are `(π, 0)` and `(0, π)`: a checkerboard artefact lights up the
/// corners and the middles of the edges. Sum those three for [`checkerboard_score`]'s share.
///
/// Computed as a direct DFT along each axis in turn, `O(h·w·(h + w))`: for pictures of small
/// images, not for large ones.
///
/// # Errors
/// [`crate::Error::BadShape`] for a side that is 0 or odd.
pub fn power_spectrum(image: ArrayView2<'_, f32>) -> Result<Array2<f64>> {
    check_even_sides("power_spectrum", image.shape())?;
    let (h, w) = image.dim();
    let mean = image.iter().map(|&v| f64::from(v)).sum::<f64>() / (h * w) as f64;
    // Along the rows (each row's DFT over j), then along the columns.
    let along_w = dft_rows(&image.mapv(|v| (f64::from(v) - mean, 0.0)));
    let along_h = dft_rows(&along_w.reversed_axes().as_standard_layout().to_owned()).reversed_axes();
    let power = along_h.mapv(|(re, im)| re * re + im * im);
    let total: f64 = power.sum();
    Ok(Array2::from_shape_fn((h, w), |(a, b)| {
        let p = power[[(a + h / 2) % h, (b + w / 2) % w]];
        if total > 0.0 { p / total } else { 0.0 }
    }))
}

/// The DFT of each row of a complex matrix `(re, im)`: `X[r, k] = Σ_j x[r, j]·e^(−2πi·jk/w)`.
fn dft_rows(x: &Array2<(f64, f64)>) -> Array2<(f64, f64)> {
    let (h, w) = x.dim();
    Array2::from_shape_fn((h, w), |(r, k)| {
        (0..w).fold((0.0, 0.0), |(re, im), j| {
            let angle = -std::f64::consts::TAU * ((j * k) % w) as f64 / w as f64;
            let (s, c) = angle.sin_cos();
            let (a, b) = x[[r, j]];
            (re + a * c - b * s, im + a * s + b * c)
        })
    })
}
