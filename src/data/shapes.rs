//! A synthetic image set that needs no files: bright geometric shapes on a
//! black background.
//!
//! It lets examples and tests train an autoencoder anywhere, and its
//! structure (sharp edges, thin strokes, rings with holes) is exactly what
//! convolution filters learn to detect, so reconstructions are easy to judge
//! by eye.
//!
//! Shapes are rasterised from signed distance functions: a pixel's coverage
//! is `clamp(0.5 - distance, 0, 1)`, which gives one pixel of anti-aliasing
//! on every edge without supersampling.

use std::f32::consts::{PI, TAU};

use ndarray::Array4;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::{DataError, Dataset};

/// Smallest image side [`synthetic_shapes`] accepts; below it the shapes
/// shrink to a pixel or two and stop being recognisable.
pub const MIN_IMAGE_SIZE: usize = 8;

/// The kinds of shape drawn by [`synthetic_shapes`]; the label of an image
/// is the kind of its first shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ShapeKind {
    /// A filled disc.
    Disc = 0,
    /// A circle outline with a visible hole.
    Ring = 1,
    /// A rotated rectangle, filled or outlined.
    Rectangle = 2,
    /// A filled triangle.
    Triangle = 3,
    /// A thick straight line segment.
    Stroke = 4,
}

impl ShapeKind {
    /// All kinds, in label order.
    pub const ALL: [ShapeKind; 5] = [
        ShapeKind::Disc,
        ShapeKind::Ring,
        ShapeKind::Rectangle,
        ShapeKind::Triangle,
        ShapeKind::Stroke,
    ];

    /// The label stored in the dataset (`0..5`).
    pub fn label(self) -> u8 {
        self as u8
    }

    /// The kind for a label, or `None` if the label is not in `0..5`.
    ///
    /// ```
    /// use adjoint::data::ShapeKind;
    ///
    /// assert_eq!(ShapeKind::from_label(1), Some(ShapeKind::Ring));
    /// assert_eq!(ShapeKind::from_label(5), None);
    /// ```
    pub fn from_label(label: u8) -> Option<Self> {
        Self::ALL.get(usize::from(label)).copied()
    }

    /// A lower-case name, for plots and logs.
    pub fn name(self) -> &'static str {
        match self {
            ShapeKind::Disc => "disc",
            ShapeKind::Ring => "ring",
            ShapeKind::Rectangle => "rectangle",
            ShapeKind::Triangle => "triangle",
            ShapeKind::Stroke => "stroke",
        }
    }
}

/// Generates `n` grayscale `size` x `size` images of one or two random
/// shapes each, labelled with the kind of the first shape.
///
/// Positions, sizes, rotations and intensities (0.5 to 1.0 on a black
/// background) are random but fully determined by `seed`: the same seed
/// gives bit-identical images (with this version of `rand`, whose `StdRng`
/// algorithm may change between releases), and a smaller set is a prefix of
/// a larger one with the same seed. Every shape lies entirely inside the
/// image. `size` must be at least [`MIN_IMAGE_SIZE`]; 28 matches MNIST.
///
/// ```
/// use adjoint::data::{synthetic_shapes, ShapeKind};
///
/// let data = synthetic_shapes(64, 28, 42)?;
/// assert_eq!(data.images.shape(), &[64, 1, 28, 28]);
/// assert!(data.images.iter().all(|&v| (0.0..=1.0).contains(&v)));
/// assert_eq!(data, synthetic_shapes(64, 28, 42)?);
///
/// let labels = data.labels.as_ref().unwrap();
/// assert!(labels.iter().all(|&l| ShapeKind::from_label(l).is_some()));
/// # Ok::<(), adjoint::data::DataError>(())
/// ```
pub fn synthetic_shapes(n: usize, size: usize, seed: u64) -> Result<Dataset, DataError> {
    shapes(n, size, seed, true)
}

/// Like [`synthetic_shapes`], but exactly one shape an image, so its label names everything in
/// it: the data for a generator whose samples a classifier scores (with two shapes in half of
/// the images, a classifier of the first shape's kind cannot pass about 55% accuracy, and its
/// confidence says little about a sample).
///
/// ```
/// use adjoint::data::{single_shapes, ShapeKind};
///
/// let data = single_shapes(64, 28, 42)?;
/// assert_eq!(data.images.shape(), &[64, 1, 28, 28]);
/// assert_eq!(data, single_shapes(64, 28, 42)?);
/// assert!(data.labels.unwrap().iter().all(|&l| ShapeKind::from_label(l).is_some()));
/// # Ok::<(), adjoint::data::DataError>(())
/// ```
pub fn single_shapes(n: usize, size: usize, seed: u64) -> Result<Dataset, DataError> {
    shapes(n, size, seed, false)
}

/// The images of [`synthetic_shapes`] (a second shape in half of them when `pairs`) or of
/// [`single_shapes`].
fn shapes(n: usize, size: usize, seed: u64, pairs: bool) -> Result<Dataset, DataError> {
    if size < MIN_IMAGE_SIZE {
        return Err(DataError::InvalidArgument {
            param: "size",
            value: size,
            reason: format!("synthetic images need at least {MIN_IMAGE_SIZE} pixels a side"),
        });
    }
    let pixels = size
        .checked_mul(size)
        .and_then(|per_image| per_image.checked_mul(n))
        .ok_or_else(|| too_large(n, size))?;
    let mut buffer = Vec::new();
    buffer.try_reserve_exact(pixels).map_err(|_| too_large(n, size))?;
    buffer.resize(pixels, 0.0f32);

    let mut rng = StdRng::seed_from_u64(seed);
    let mut labels = Vec::with_capacity(n);
    for image in buffer.chunks_exact_mut(size * size) {
        let mut canvas = Canvas { pixels: image, size };
        // Drawn only for pairs: synthetic_shapes' stream, and so its images, stay as they were.
        let shape_count = if pairs && rng.random_bool(0.5) { 2 } else { 1 };
        for i in 0..shape_count {
            let kind = ShapeKind::ALL[rng.random_range(0..ShapeKind::ALL.len())];
            if i == 0 {
                labels.push(kind.label());
            }
            let shape = Shape::random(kind, size as f32, &mut rng);
            let intensity = rng.random_range(0.5f32..=1.0);
            canvas.paint(&shape, intensity);
        }
    }

    let images = Array4::from_shape_vec((n, 1, size, size), buffer).map_err(|_| too_large(n, size))?;
    Dataset::new(images, Some(labels))
}

fn too_large(n: usize, size: usize) -> DataError {
    DataError::InvalidArgument {
        param: "n",
        value: n,
        reason: format!("{n} images of {size} x {size} pixels do not fit in memory"),
    }
}

/// One grayscale image being drawn into, row-major.
struct Canvas<'a> {
    pixels: &'a mut [f32],
    size: usize,
}

impl Canvas<'_> {
    /// Draws `shape` with the given peak intensity. Overlaps keep the
    /// brighter value, so a second shape never erases the first (whose
    /// kind is the label).
    fn paint(&mut self, shape: &Shape, intensity: f32) {
        // One pixel of slack for the anti-aliased rim outside the bounds.
        let span = |lo: f32, hi: f32| {
            let first = (lo - 1.0).floor().max(0.0) as usize;
            let last = ((hi + 1.0).ceil().max(0.0) as usize).min(self.size);
            first..last
        };
        let (xs, ys) = (
            span(shape.center.x + shape.min.x, shape.center.x + shape.max.x),
            span(shape.center.y + shape.min.y, shape.center.y + shape.max.y),
        );
        for y in ys {
            let row = &mut self.pixels[y * self.size..(y + 1) * self.size];
            for x in xs.clone() {
                let local = Vec2::new(x as f32 + 0.5, y as f32 + 0.5) - shape.center;
                let coverage = (0.5 - shape.geometry.distance(local)).clamp(0.0, 1.0);
                row[x] = row[x].max(intensity * coverage);
            }
        }
    }
}

/// A shape placed in the image: geometry around the origin, its bounding
/// box relative to the origin, and where the origin sits.
struct Shape {
    geometry: Geometry,
    min: Vec2,
    max: Vec2,
    center: Vec2,
}

impl Shape {
    /// Draws random proportions for `kind` (relative to the image side
    /// `s`, so other sizes look alike), then a position that keeps the whole
    /// shape inside the image.
    fn random(kind: ShapeKind, s: f32, rng: &mut StdRng) -> Shape {
        let geometry = Geometry::random(kind, s, rng);
        let (min, max) = geometry.bounds();
        let margin = 0.5;
        let center = Vec2::new(
            uniform(rng, margin - min.x, s - margin - max.x),
            uniform(rng, margin - min.y, s - margin - max.y),
        );
        Shape {
            geometry,
            min,
            max,
            center,
        }
    }
}

/// Shape outlines in pixel units, positioned around the origin.
pub(super) enum Geometry {
    Disc {
        radius: f32,
    },
    Ring {
        radius: f32,
        half_width: f32,
    },
    Rectangle {
        half: Vec2,
        /// Unit vector of the rectangle's local x axis.
        axis: Vec2,
        /// Half the line width for an outline; `None` when filled.
        outline: Option<f32>,
    },
    Triangle {
        vertices: [Vec2; 3],
        /// Outward unit normal and offset of each edge's line.
        edges: [(Vec2, f32); 3],
    },
    Stroke {
        /// The segment runs from `-half_length` to `+half_length`.
        half_length: Vec2,
        half_width: f32,
    },
}

impl Geometry {
    /// Proportions scale with the image side `s`; the absolute floors (in
    /// pixels) only bite on the smallest images, where a shape would
    /// otherwise shrink to a speck.
    pub(super) fn random(kind: ShapeKind, s: f32, rng: &mut StdRng) -> Geometry {
        match kind {
            ShapeKind::Disc => Geometry::Disc {
                radius: uniform(rng, 0.12 * s, 0.3 * s).max(1.5),
            },
            ShapeKind::Ring => Geometry::Ring {
                radius: uniform(rng, 0.2 * s, 0.36 * s),
                half_width: line(uniform(rng, 0.04 * s, 0.07 * s)),
            },
            ShapeKind::Rectangle => {
                let mut side = || uniform(rng, 0.1 * s, 0.3 * s).max(1.0);
                let half = Vec2::new(side(), side());
                let axis = Vec2::from_angle(uniform(rng, 0.0, PI));
                let outline = rng.random_bool(0.5).then(|| line(uniform(rng, 0.035 * s, 0.06 * s)));
                Geometry::Rectangle { half, axis, outline }
            }
            ShapeKind::Triangle => {
                // Vertices roughly 120 degrees apart around the origin: the
                // jitter varies the shape but keeps every gap below 180
                // degrees, so the triangle never degenerates into a sliver.
                let radius = uniform(rng, 0.22 * s, 0.38 * s).max(2.5);
                let start = uniform(rng, 0.0, TAU);
                let vertices = [0.0, 1.0, 2.0].map(|k| {
                    let angle = start + k * TAU / 3.0 + uniform(rng, -0.4, 0.4);
                    Vec2::from_angle(angle) * (radius * uniform(rng, 0.75, 1.0))
                });
                Geometry::triangle(vertices)
            }
            ShapeKind::Stroke => Geometry::Stroke {
                half_length: Vec2::from_angle(uniform(rng, 0.0, PI)) * (0.5 * uniform(rng, 0.45 * s, 0.85 * s)),
                half_width: line(uniform(rng, 0.045 * s, 0.08 * s)),
            },
        }
    }

    /// Precomputes the edge lines of a triangle.
    fn triangle(mut vertices: [Vec2; 3]) -> Geometry {
        // Outward normals below assume counter-clockwise order (positive
        // signed area); increasing angles already give that, but the check
        // is cheap and keeps the distance function right for any input.
        let [a, b, c] = vertices;
        if (b - a).cross(c - a) < 0.0 {
            vertices.swap(1, 2);
        }
        let edges = [0, 1, 2].map(|i| {
            let (a, b) = (vertices[i], vertices[(i + 1) % 3]);
            let d = b - a;
            let normal = Vec2::new(d.y, -d.x) * (1.0 / d.length().max(f32::EPSILON));
            (normal, normal.dot(a))
        });
        Geometry::Triangle { vertices, edges }
    }

    /// Signed distance in pixels from `p` (relative to the shape's origin)
    /// to the shape's edge: negative inside, positive outside.
    pub(super) fn distance(&self, p: Vec2) -> f32 {
        match *self {
            Geometry::Disc { radius } => p.length() - radius,
            Geometry::Ring { radius, half_width } => (p.length() - radius).abs() - half_width,
            Geometry::Rectangle { half, axis, outline } => {
                let local = Vec2::new(p.dot(axis), p.dot(axis.perp()));
                let q = Vec2::new(local.x.abs() - half.x, local.y.abs() - half.y);
                let outside = Vec2::new(q.x.max(0.0), q.y.max(0.0)).length();
                let filled = outside + q.x.max(q.y).min(0.0);
                match outline {
                    // Shift the band inwards so the outline's outer edge is the
                    // rectangle's edge and the bounds stay valid.
                    Some(half_width) => (filled + half_width).abs() - half_width,
                    None => filled,
                }
            }
            // The largest edge-line distance is exact inside and along the
            // edges; beyond a corner it slightly underestimates, which only
            // sharpens the corner's anti-aliasing.
            Geometry::Triangle { edges, .. } => edges
                .iter()
                .map(|&(normal, offset)| normal.dot(p) - offset)
                .fold(f32::NEG_INFINITY, f32::max),
            Geometry::Stroke {
                half_length,
                half_width,
            } => {
                let (a, ab) = (-half_length, half_length * 2.0);
                let t = ((p - a).dot(ab) / ab.dot(ab).max(f32::EPSILON)).clamp(0.0, 1.0);
                (p - a - ab * t).length() - half_width
            }
        }
    }

    /// Axis-aligned bounding box around the origin, as (min, max) corners.
    pub(super) fn bounds(&self) -> (Vec2, Vec2) {
        let extent = match *self {
            Geometry::Disc { radius } => Vec2::new(radius, radius),
            Geometry::Ring { radius, half_width } => Vec2::new(radius + half_width, radius + half_width),
            Geometry::Rectangle { half, axis, .. } => {
                let perp = axis.perp();
                Vec2::new(
                    (half.x * axis.x).abs() + (half.y * perp.x).abs(),
                    (half.x * axis.y).abs() + (half.y * perp.y).abs(),
                )
            }
            Geometry::Triangle { vertices, .. } => {
                let min = vertices
                    .iter()
                    .fold(vertices[0], |m, v| Vec2::new(m.x.min(v.x), m.y.min(v.y)));
                let max = vertices
                    .iter()
                    .fold(vertices[0], |m, v| Vec2::new(m.x.max(v.x), m.y.max(v.y)));
                return (min, max);
            }
            Geometry::Stroke {
                half_length,
                half_width,
            } => Vec2::new(half_length.x.abs() + half_width, half_length.y.abs() + half_width),
        };
        (-extent, extent)
    }
}

/// Keeps lines at least 1.5 pixels wide: a thinner line can fall between
/// pixel centres and vanish, which matters on small images.
fn line(half_width: f32) -> f32 {
    half_width.max(0.75)
}

/// A uniform sample from `[lo, hi)`, or `lo` when the range is empty: a
/// shape as large as the image has exactly one valid position, and
/// `random_range` would panic on the empty range.
pub(super) fn uniform(rng: &mut StdRng, lo: f32, hi: f32) -> f32 {
    if hi > lo { rng.random_range(lo..hi) } else { lo }
}

/// Just enough 2-D vector arithmetic for the distance functions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Vec2 {
    pub(super) x: f32,
    pub(super) y: f32,
}

impl Vec2 {
    pub(super) fn new(x: f32, y: f32) -> Vec2 {
        Vec2 { x, y }
    }

    fn from_angle(angle: f32) -> Vec2 {
        let (sin, cos) = angle.sin_cos();
        Vec2::new(cos, sin)
    }

    fn dot(self, other: Vec2) -> f32 {
        self.x * other.x + self.y * other.y
    }

    fn cross(self, other: Vec2) -> f32 {
        self.x * other.y - self.y * other.x
    }

    fn length(self) -> f32 {
        self.dot(self).sqrt()
    }

    /// The vector rotated by 90 degrees.
    pub(super) fn perp(self) -> Vec2 {
        Vec2::new(-self.y, self.x)
    }
}

impl std::ops::Add for Vec2 {
    type Output = Vec2;
    fn add(self, o: Vec2) -> Vec2 {
        Vec2::new(self.x + o.x, self.y + o.y)
    }
}

impl std::ops::Sub for Vec2 {
    type Output = Vec2;
    fn sub(self, o: Vec2) -> Vec2 {
        Vec2::new(self.x - o.x, self.y - o.y)
    }
}

impl std::ops::Neg for Vec2 {
    type Output = Vec2;
    fn neg(self) -> Vec2 {
        Vec2::new(-self.x, -self.y)
    }
}

impl std::ops::Mul<f32> for Vec2 {
    type Output = Vec2;
    fn mul(self, k: f32) -> Vec2 {
        Vec2::new(self.x * k, self.y * k)
    }
}
