//! Synthetic scenes for dense prediction: several overlapping shapes on a noisy background,
//! each image with its per-pixel class mask and its key points. No files needed; every value
//! is determined by the seed.
//!
//! - **Segmentation**: the class of a pixel is the kind of the topmost shape covering it
//!   ([`SceneClass`]: background 0, disc 1, ring 2, rectangle 3, triangle 4). A shape covers
//!   the pixels whose centre lies inside it; the image blends the same edges anti-aliased.
//! - **Key points** ([`KeypointKind`]): every shape's centre, and the corners of rectangles and
//!   triangles, at sub-pixel positions. A point covered by a shape painted later is hidden and
//!   not labelled (a ring's hole hides nothing: a point seen through it is visible).
//!
//! Shapes are drawn from the signed distance functions of [`super::shapes`], so edges look as
//! in the autoencoder's data. Coordinates are in pixels with `(0, 0)` the top-left corner of
//! the image and pixel `(x, y)` spanning `[x, x + 1) × [y, y + 1)`; its centre is
//! `(x + 0.5, y + 0.5)`.

use ndarray::{Array3, Array4, Axis};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::DataError;
use super::shapes::{Geometry, ShapeKind, Vec2, uniform};

/// Smallest scene side [`synthetic_scenes`] accepts: below it a shape is a few pixels and
/// its kind can no longer be told from its outline.
pub const MIN_SCENE_SIZE: usize = 32;

/// The largest scene side: a bound that keeps every size product far from `usize`'s limits.
pub const MAX_SCENE_SIZE: usize = 1024;

/// The classes of a scene's mask, with background 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SceneClass {
    /// No shape.
    Background = 0,
    /// A filled disc.
    Disc = 1,
    /// A circle outline.
    Ring = 2,
    /// A rotated rectangle, filled or outlined.
    Rectangle = 3,
    /// A filled triangle.
    Triangle = 4,
}

impl SceneClass {
    /// All classes, in mask order.
    pub const ALL: [SceneClass; 5] = [
        SceneClass::Background,
        SceneClass::Disc,
        SceneClass::Ring,
        SceneClass::Rectangle,
        SceneClass::Triangle,
    ];

    /// A lower-case name, for legends and logs.
    pub fn name(self) -> &'static str {
        match self {
            SceneClass::Background => "background",
            SceneClass::Disc => "disc",
            SceneClass::Ring => "ring",
            SceneClass::Rectangle => "rectangle",
            SceneClass::Triangle => "triangle",
        }
    }

    /// The shape kind this class draws, `None` for the background.
    fn shape(self) -> Option<ShapeKind> {
        match self {
            SceneClass::Background => None,
            SceneClass::Disc => Some(ShapeKind::Disc),
            SceneClass::Ring => Some(ShapeKind::Ring),
            SceneClass::Rectangle => Some(ShapeKind::Rectangle),
            SceneClass::Triangle => Some(ShapeKind::Triangle),
        }
    }
}

/// The kinds of key point, one heat-map channel each in a key-point model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum KeypointKind {
    /// The centre of a shape (a disc's or ring's centre, a rectangle's centre, a triangle's
    /// centroid).
    Centre = 0,
    /// A corner of a rectangle or a triangle.
    Corner = 1,
}

impl KeypointKind {
    /// All kinds, in channel order.
    pub const ALL: [KeypointKind; 2] = [KeypointKind::Centre, KeypointKind::Corner];

    /// A lower-case name, for legends and logs.
    pub fn name(self) -> &'static str {
        match self {
            KeypointKind::Centre => "centre",
            KeypointKind::Corner => "corner",
        }
    }
}

/// One visible key point of a scene, in pixel coordinates (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Keypoint {
    /// Its kind (heat-map channel).
    pub kind: KeypointKind,
    /// The class of the shape it belongs to.
    pub class: SceneClass,
    /// Column, in pixels from the left edge.
    pub x: f32,
    /// Row, in pixels from the top edge.
    pub y: f32,
}

/// A set of scenes: images, class masks and key points.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenes {
    /// `[n, 1, size, size]`, values in `[0, 1]`.
    pub images: Array4<f32>,
    /// `[n, size, size]`, each pixel's [`SceneClass`] as `u8`.
    pub masks: Array3<u8>,
    /// Per image, its visible key points.
    pub keypoints: Vec<Vec<Keypoint>>,
}

impl Scenes {
    /// Number of scenes.
    pub fn len(&self) -> usize {
        self.keypoints.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.keypoints.is_empty()
    }

    /// Writes the scenes as NumPy files into `dir` (created if needed), for a PyTorch twin to
    /// train on exactly the same data: `images.npy` (`float32 [n, 1, size, size]`),
    /// `masks.npy` (`uint8 [n, size, size]`) and `keypoints.npy` (`float32 [points, 5]`, one
    /// row per visible key point: image index, kind, class, x, y). Each file is written
    /// atomically.
    ///
    /// # Errors
    /// [`DataError::Io`] if `dir` or a file cannot be written.
    pub fn export(&self, dir: &std::path::Path) -> Result<(), DataError> {
        use super::npy::write_npy;
        std::fs::create_dir_all(dir).map_err(|source| DataError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let images = self.images.as_standard_layout();
        let masks = self.masks.as_standard_layout();
        let (images, masks) = (images.as_slice().unwrap_or(&[]), masks.as_slice().unwrap_or(&[]));
        write_npy(&dir.join("images.npy"), self.images.shape(), images)?;
        write_npy(&dir.join("masks.npy"), self.masks.shape(), masks)?;
        let rows: Vec<f32> = self
            .keypoints
            .iter()
            .enumerate()
            .flat_map(|(i, points)| {
                points
                    .iter()
                    .flat_map(move |p| [i as f32, p.kind as u8 as f32, p.class as u8 as f32, p.x, p.y])
            })
            .collect();
        write_npy(&dir.join("keypoints.npy"), &[rows.len() / 5, 5], &rows)
    }

    /// The first `n_first` scenes and the rest.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] if `n_first` is past the end.
    pub fn split_at(&self, n_first: usize) -> Result<(Scenes, Scenes), DataError> {
        if n_first > self.len() {
            return Err(DataError::InvalidArgument {
                param: "n_first",
                value: n_first,
                reason: format!("past the end of {} scenes", self.len()),
            });
        }
        let part = |range: std::ops::Range<usize>| Scenes {
            images: self.images.slice_axis(Axis(0), range.clone().into()).to_owned(),
            masks: self.masks.slice_axis(Axis(0), range.clone().into()).to_owned(),
            keypoints: self.keypoints[range].to_vec(),
        };
        Ok((part(0..n_first), part(n_first..self.len())))
    }
}

/// `n` scenes of `size × size` pixels, each with 2 to 4 shapes (discs, rings, rectangles,
/// triangles) that may overlap, on a background of Gaussian noise; the same seed gives the
/// same scenes, bit for bit, and a smaller set is a prefix of a larger one.
///
/// Each shape has an intensity of 0.45 to 1.0 over a background around 0.15, and the whole
/// image gets the same noise (σ = 0.06), so a shape's class must be told by its outline, not
/// by a threshold. A shape that touches an earlier one differs from it in intensity by at
/// least 0.2 where the range allows, so that which shape lies on top, and so the class of the
/// pixels they share, can be seen in the image. 64 is the default size of the segmentation and key-point examples.
///
/// # Errors
/// [`DataError::InvalidArgument`] if `size` is outside `MIN_SCENE_SIZE..=MAX_SCENE_SIZE` or
/// the set does not fit in memory.
///
/// # Example
/// ```
/// use adjoint::data::{synthetic_scenes, SceneClass};
///
/// let scenes = synthetic_scenes(8, 64, 1)?;
/// assert_eq!(scenes.images.shape(), &[8, 1, 64, 64]);
/// assert_eq!(scenes.masks.shape(), &[8, 64, 64]);
/// assert!(scenes.masks.iter().all(|&c| (c as usize) < SceneClass::ALL.len()));
/// assert!(scenes.keypoints.iter().all(|points| !points.is_empty()));
/// assert_eq!(scenes, synthetic_scenes(8, 64, 1)?);
/// # Ok::<(), adjoint::data::DataError>(())
/// ```
pub fn synthetic_scenes(n: usize, size: usize, seed: u64) -> Result<Scenes, DataError> {
    let (mut images, mut masks) = blank_scenes(n, size)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let keypoints = images
        .chunks_exact_mut(size * size)
        .zip(masks.chunks_exact_mut(size * size))
        .map(|(image, mask)| draw_scene(image, mask, size, &mut rng))
        .collect();
    scenes(n, size, images, masks, keypoints)
}

/// Zeroed pixels and mask cells for `n` scenes of `size × size`, checked: `size` in range and
/// the set within memory.
fn blank_scenes(n: usize, size: usize) -> Result<(Vec<f32>, Vec<u8>), DataError> {
    if !(MIN_SCENE_SIZE..=MAX_SCENE_SIZE).contains(&size) {
        return Err(DataError::InvalidArgument {
            param: "size",
            value: size,
            reason: format!("scenes have {MIN_SCENE_SIZE} to {MAX_SCENE_SIZE} pixels a side"),
        });
    }
    let pixels = n.checked_mul(size * size).ok_or_else(|| too_large(n, size))?;
    let mut images = Vec::new();
    images.try_reserve_exact(pixels).map_err(|_| too_large(n, size))?;
    images.resize(pixels, 0.0f32);
    let mut masks = Vec::new();
    masks.try_reserve_exact(pixels).map_err(|_| too_large(n, size))?;
    masks.resize(pixels, 0u8);
    Ok((images, masks))
}

/// The arrays of [`blank_scenes`]' buffers, once drawn.
fn scenes(
    n: usize,
    size: usize,
    images: Vec<f32>,
    masks: Vec<u8>,
    keypoints: Vec<Vec<Keypoint>>,
) -> Result<Scenes, DataError> {
    let images = Array4::from_shape_vec((n, 1, size, size), images).map_err(|_| too_large(n, size))?;
    let masks = Array3::from_shape_vec((n, size, size), masks).map_err(|_| too_large(n, size))?;
    Ok(Scenes {
        images,
        masks,
        keypoints,
    })
}

fn too_large(n: usize, size: usize) -> DataError {
    DataError::InvalidArgument {
        param: "n",
        value: n,
        reason: format!("{n} scenes of {size} x {size} pixels do not fit in memory"),
    }
}

/// `n` scenes of `size × size` pixels made of 2 or 3 digits from `digits` (an MNIST-format
/// [`super::Dataset`] with labels) pasted at random positions: a pixel's class is the digit
/// plus 1 where that digit's ink is bright (above 0.5), and 0 (background) elsewhere; where
/// digits overlap the brighter ink wins the image and the later digit the mask. Key points are
/// not labelled (the lists are empty). Determined by `seed`.
///
/// # Errors
/// [`DataError::InvalidArgument`] if `digits` is empty or unlabelled, its images are larger
/// than the scene, `size` is outside `MIN_SCENE_SIZE..=MAX_SCENE_SIZE`, or the set does not
/// fit in memory.
///
/// # Example
/// ```
/// use adjoint::data::{digit_scenes, Dataset};
/// use ndarray::Array4;
///
/// // Two fake 28×28 "digits": a bright square labelled 3 and one labelled 7.
/// let mut images = Array4::<f32>::zeros((2, 1, 28, 28));
/// images.slice_mut(ndarray::s![.., .., 8..20, 8..20]).fill(1.0);
/// let digits = Dataset::new(images, Some(vec![3, 7]))?;
/// let scenes = digit_scenes(&digits, 4, 64, 0)?;
/// assert_eq!(scenes.masks.shape(), &[4, 64, 64]);
/// assert!(scenes.masks.iter().all(|&c| [0, 4, 8].contains(&c)));
/// # Ok::<(), adjoint::data::DataError>(())
/// ```
pub fn digit_scenes(digits: &super::Dataset, n: usize, size: usize, seed: u64) -> Result<Scenes, DataError> {
    let Some(labels) = digits.labels.as_ref().filter(|l| !l.is_empty()) else {
        return Err(DataError::InvalidArgument {
            param: "digits",
            value: digits.len(),
            reason: "digit scenes need a non-empty, labelled dataset".into(),
        });
    };
    let (h, w) = digits.image_size();
    if h > size || w > size {
        return Err(DataError::InvalidArgument {
            param: "size",
            value: size,
            reason: format!("smaller than the digits' {h} x {w} images"),
        });
    }
    if let Some(&bad) = labels.iter().find(|&&l| l > 9) {
        return Err(DataError::InvalidArgument {
            param: "digits",
            value: usize::from(bad),
            reason: "labels must be digits 0..=9".into(),
        });
    }
    let (mut images, mut masks) = blank_scenes(n, size)?;
    let mut rng = StdRng::seed_from_u64(seed);
    for (image, mask) in images
        .chunks_exact_mut(size * size)
        .zip(masks.chunks_exact_mut(size * size))
    {
        for _ in 0..rng.random_range(2..=3) {
            let k = rng.random_range(0..digits.len());
            let (top, left) = (rng.random_range(0..=size - h), rng.random_range(0..=size - w));
            let digit = digits.images.index_axis(Axis(0), k);
            let class = labels[k] + 1;
            for ((y, x), &v) in digit.index_axis(Axis(0), 0).indexed_iter() {
                let at = (top + y) * size + left + x;
                image[at] = image[at].max(v);
                if v > 0.5 {
                    mask[at] = class;
                }
            }
        }
    }
    scenes(n, size, images, masks, vec![Vec::new(); n])
}

/// A shape placed in a scene.
struct Placed {
    class: SceneClass,
    geometry: Geometry,
    centre: Vec2,
    intensity: f32,
}

impl Placed {
    /// Whether point `p` (image coordinates) lies inside the painted shape.
    fn covers(&self, p: Vec2) -> bool {
        self.geometry.distance(p - self.centre) < 0.0
    }

    /// Its key points, before any are hidden: the centre, then corners.
    fn keypoints(&self) -> Vec<Keypoint> {
        let at = |kind, p: Vec2| Keypoint {
            kind,
            class: self.class,
            x: self.centre.x + p.x,
            y: self.centre.y + p.y,
        };
        match &self.geometry {
            Geometry::Rectangle { half, axis, .. } => {
                let (u, v) = (*axis * half.x, axis.perp() * half.y);
                let mut points = vec![at(KeypointKind::Centre, Vec2::new(0.0, 0.0))];
                points.extend([u + v, u - v, -u - v, -u + v].map(|c| at(KeypointKind::Corner, c)));
                points
            }
            Geometry::Triangle { vertices, .. } => {
                let [a, b, c] = *vertices;
                let centroid = (a + b + c) * (1.0 / 3.0);
                let mut points = vec![at(KeypointKind::Centre, centroid)];
                points.extend((*vertices).map(|c| at(KeypointKind::Corner, c)));
                points
            }
            _ => vec![at(KeypointKind::Centre, Vec2::new(0.0, 0.0))],
        }
    }
}

/// Draws one scene into `image` and `mask` (row-major `size × size`) and returns its visible
/// key points.
fn draw_scene(image: &mut [f32], mask: &mut [u8], size: usize, rng: &mut StdRng) -> Vec<Keypoint> {
    let s = size as f32;
    // Shapes sized for a scene of several objects: the autoencoder's proportions at 55% of
    // the side (a disc of radius 4–10 px on 64 × 64).
    let scale = 0.55 * s;
    let count = rng.random_range(2..=4);
    let shapes: Vec<Placed> = (0..count)
        .map(|_| {
            let class = SceneClass::ALL[rng.random_range(1..SceneClass::ALL.len())];
            let kind = class.shape().unwrap_or(ShapeKind::Disc);
            let geometry = Geometry::random(kind, scale, rng);
            let (min, max) = geometry.bounds();
            // Wholly inside the image, with half a pixel to spare.
            let centre = Vec2::new(
                uniform(rng, 0.5 - min.x, s - 0.5 - max.x),
                uniform(rng, 0.5 - min.y, s - 0.5 - max.y),
            );
            let intensity = rng.random_range(0.45f32..=1.0);
            Placed {
                class,
                geometry,
                centre,
                intensity,
            }
        })
        .collect();
    let shapes = separate_intensities(shapes, size, rng);

    for (i, (value, class)) in image.iter_mut().zip(mask.iter_mut()).enumerate() {
        let p = Vec2::new((i % size) as f32 + 0.5, (i / size) as f32 + 0.5);
        let mut v = 0.15f32;
        for shape in &shapes {
            let coverage = (0.5 - shape.geometry.distance(p - shape.centre)).clamp(0.0, 1.0);
            // Painter's order: a later shape occludes what is under it.
            v = v * (1.0 - coverage) + shape.intensity * coverage;
            if shape.covers(p) {
                *class = shape.class as u8;
            }
        }
        *value = v;
    }
    // The same noise over the whole image, after the shapes, drawn in pixel order.
    for value in image.iter_mut() {
        *value = (*value + 0.06 * normal(rng)).clamp(0.0, 1.0);
    }

    let mut visible = Vec::new();
    for (i, shape) in shapes.iter().enumerate() {
        for point in shape.keypoints() {
            let p = Vec2::new(point.x, point.y);
            if !shapes[i + 1..].iter().any(|later| later.covers(p)) {
                visible.push(point);
            }
        }
    }
    visible
}

/// The least difference of intensity between a shape and any earlier shape it touches: 0.2
/// is over three times the noise's σ, so every occluding edge shows in the image. Without it
/// a third of overlapping pairs differed by less than 0.1, and where a shape lies over another
/// of the same brightness, which one is on top, and so the class of the pixels they share, can
/// not be told from the image (most of the U-Net's wrong pixels were there).
const MIN_CONTRAST: f32 = 0.2;

/// Re-draws the intensity of each shape that touches an earlier one of nearly the same
/// brightness: uniformly among the intensities (0.45 to 1.0, in steps of 0.01) at least
/// [`MIN_CONTRAST`] from all of those it touches, or, where none is (three neighbours spread
/// over the range), the one farthest from them.
fn separate_intensities(mut shapes: Vec<Placed>, size: usize, rng: &mut StdRng) -> Vec<Placed> {
    for i in 1..shapes.len() {
        let (earlier, rest) = shapes.split_at_mut(i);
        let shape = &mut rest[0];
        let touched: Vec<f32> = earlier
            .iter()
            .filter(|other| touch(shape, other, size))
            .map(|other| other.intensity)
            .collect();
        let gap = |v: f32| touched.iter().map(|t| (v - t).abs()).fold(f32::INFINITY, f32::min);
        if gap(shape.intensity) >= MIN_CONTRAST {
            continue;
        }
        let levels: Vec<f32> = (45..=100).map(|l| l as f32 / 100.0).collect();
        let apart: Vec<f32> = levels.iter().copied().filter(|&v| gap(v) >= MIN_CONTRAST).collect();
        shape.intensity = if apart.is_empty() {
            levels
                .into_iter()
                .fold(0.45, |best, v| if gap(v) > gap(best) { v } else { best })
        } else {
            apart[rng.random_range(0..apart.len())]
        };
    }
    shapes
}

/// Whether two shapes blend into a common pixel of a `size × size` image (their anti-aliased
/// edges included).
fn touch(a: &Placed, b: &Placed, size: usize) -> bool {
    let (a_min, a_max) = a.geometry.bounds();
    let (b_min, b_max) = b.geometry.bounds();
    let lo = |c: f32| (c - 1.0).floor().clamp(0.0, size as f32) as usize;
    let hi = |c: f32| (c + 1.0).ceil().clamp(0.0, size as f32) as usize;
    let (x0, x1) = (
        lo((a.centre.x + a_min.x).max(b.centre.x + b_min.x)),
        hi((a.centre.x + a_max.x).min(b.centre.x + b_max.x)),
    );
    let (y0, y1) = (
        lo((a.centre.y + a_min.y).max(b.centre.y + b_min.y)),
        hi((a.centre.y + a_max.y).min(b.centre.y + b_max.y)),
    );
    (y0..y1).any(|y| {
        (x0..x1).any(|x| {
            let p = Vec2::new(x as f32 + 0.5, y as f32 + 0.5);
            a.geometry.distance(p - a.centre) < 0.5 && b.geometry.distance(p - b.centre) < 0.5
        })
    })
}

/// A standard normal sample (Box–Muller; one of the pair).
fn normal(rng: &mut StdRng) -> f32 {
    let u1 = rng.random_range(f32::EPSILON..1.0f32);
    let u2 = rng.random_range(0.0..1.0f32);
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disc(x: f32, y: f32, radius: f32, intensity: f32) -> Placed {
        Placed {
            class: SceneClass::Disc,
            geometry: Geometry::Disc { radius },
            centre: Vec2::new(x, y),
            intensity,
        }
    }

    fn intensities(shapes: Vec<Placed>) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(7);
        separate_intensities(shapes, 64, &mut rng)
            .iter()
            .map(|s| s.intensity)
            .collect()
    }

    #[test]
    fn overlapping_shapes_of_like_brightness_are_pulled_apart() {
        // Two discs sharing pixels, 0.05 apart: the later one moves, the earlier one stays.
        let v = intensities(vec![disc(20.0, 20.0, 6.0, 0.6), disc(27.0, 20.0, 6.0, 0.65)]);
        assert_eq!(v[0], 0.6);
        assert!(
            (v[1] - 0.6).abs() >= MIN_CONTRAST && (0.45..=1.0).contains(&v[1]),
            "{v:?}"
        );
        // Touching only by their anti-aliased rims counts too: discs 0.8 apart, both 0.4 from
        // the centre of pixel (26, 20), which blends both.
        let v = intensities(vec![disc(20.1, 20.5, 6.0, 0.6), disc(32.9, 20.5, 6.0, 0.6)]);
        assert!((v[1] - 0.6).abs() >= MIN_CONTRAST, "{v:?}");
    }

    #[test]
    fn apart_or_already_contrasting_shapes_keep_their_brightness() {
        let v = intensities(vec![disc(10.0, 10.0, 5.0, 0.6), disc(40.0, 40.0, 5.0, 0.61)]);
        assert_eq!(v, [0.6, 0.61]);
        let v = intensities(vec![disc(20.0, 20.0, 6.0, 0.5), disc(25.0, 20.0, 6.0, 0.9)]);
        assert_eq!(v, [0.5, 0.9]);
    }

    #[test]
    fn with_no_level_far_enough_the_farthest_is_taken() {
        // Neighbours at 0.45, 0.72 and 1.0 leave no level 0.2 from all three; the best gap
        // is 0.135, at 0.585 (or 0.865 — the first found, 0.58 or 0.59, by rounding).
        let v = intensities(vec![
            disc(20.0, 20.0, 6.0, 0.45),
            disc(30.0, 20.0, 6.0, 0.72),
            disc(25.0, 28.0, 6.0, 1.0),
            disc(25.0, 22.0, 6.0, 0.73),
        ]);
        let gap = [0.45f32, 0.72, 1.0]
            .iter()
            .map(|t| (v[3] - t).abs())
            .fold(f32::INFINITY, f32::min);
        assert!((gap - 0.135).abs() < 0.011, "{v:?}");
    }
}
