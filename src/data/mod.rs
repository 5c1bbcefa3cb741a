//! Image data for training convolutional models: MNIST-format IDX files,
//! a built-in synthetic shape set, and seeded mini-batching.
//!
//! Everything here ends in a [`Dataset`]: images as an `[n, 1, h, w]` tensor
//! of `f32` in `[0, 1]` (the layout the convolution layers expect), plus
//! optional `u8` labels.
//!
//! ```
//! use adjoint::data::{synthetic_shapes, Batches};
//!
//! let data = synthetic_shapes(100, 28, 7)?;
//! let (train, valid) = data.split_at(90)?;
//! assert_eq!((train.len(), valid.len()), (90, 10));
//!
//! let epoch = 0;
//! let batches = Batches::new(&train, 32, Some(1234 + epoch))?;
//! let sizes: Vec<usize> = batches.map(|b| b.images.shape()[0]).collect();
//! assert_eq!(sizes, [32, 32, 26]);
//! # Ok::<(), adjoint::data::DataError>(())
//! ```

use std::path::PathBuf;

use ndarray::{Array3, Array4, Axis, s};
use thiserror::Error;

pub mod batch;
pub mod idx;
pub mod npy;
pub mod scenes;
pub mod shapes;

pub use batch::{Batch, Batches};
pub use idx::{load_mnist_dir, parse_idx_images, parse_idx_labels, read_idx_images, read_idx_labels};
pub use scenes::{
    Keypoint, KeypointKind, MAX_SCENE_SIZE, MIN_SCENE_SIZE, SceneClass, Scenes, digit_scenes, synthetic_scenes,
};
pub use shapes::{ShapeKind, single_shapes, synthetic_shapes};

/// Everything that can go wrong while loading or slicing data.
///
/// Loading never panics on a bad file or a bad argument; it returns one of
/// these, naming the file or parameter and the offending values.
#[derive(Debug, Error)]
pub enum DataError {
    /// A file or directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or directory that failed.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },

    /// A gzip stream was corrupt (a gzip stream that merely ends early is
    /// reported as [`DataError::Truncated`] when that cut the IDX data short).
    #[error("{}: corrupt gzip data: {source}", path.display())]
    Gzip {
        /// The file holding the gzip stream.
        path: PathBuf,
        /// The decoder's error.
        source: std::io::Error,
    },

    /// The IDX magic number is not the one for the requested kind of file.
    #[error("{}: bad IDX magic number: expected {expected}, found {found}", path.display())]
    BadMagic {
        /// The file that was read.
        path: PathBuf,
        /// 2051 for images, 2049 for labels.
        expected: u32,
        /// What the first four bytes held (big-endian).
        found: u32,
    },

    /// The file ends before the header or the data it announces.
    #[error("{}: truncated IDX data: expected {expected} bytes, found {found}", path.display())]
    Truncated {
        /// The file that was read.
        path: PathBuf,
        /// Bytes the header (or a full header) requires.
        expected: u64,
        /// Bytes actually present (after decompression).
        found: u64,
    },

    /// The file holds more bytes than its header announces, so the header
    /// and the data disagree about the shape.
    #[error("{}: IDX size mismatch: header announces {expected} bytes, file holds at least {found}", path.display())]
    TrailingBytes {
        /// The file that was read.
        path: PathBuf,
        /// Bytes the header requires.
        expected: u64,
        /// Bytes read (after decompression): reading stops at the first byte
        /// past `expected`, so a file far too long costs no more to refuse.
        found: u64,
    },

    /// A header announces more data than [`idx::MAX_DATA_BYTES`] (or than
    /// `usize` can count); the file is refused before any data is read.
    #[error("{}: IDX dimensions {dims:?} announce more than {limit} bytes of data", path.display())]
    TooLarge {
        /// The file that was read.
        path: PathBuf,
        /// The dimension sizes the header announces.
        dims: Vec<u32>,
        /// [`idx::MAX_DATA_BYTES`].
        limit: usize,
    },

    /// A header declares a zero-sized dimension.
    #[error("{}: IDX dimension `{dimension}` is zero", path.display())]
    ZeroDimension {
        /// The file that was read.
        path: PathBuf,
        /// Which dimension: `count`, `rows` or `cols`.
        dimension: &'static str,
    },

    /// Images and labels do not pair up one to one.
    #[error("image/label count mismatch: {images} images but {labels} labels")]
    CountMismatch {
        /// Number of images.
        images: usize,
        /// Number of labels.
        labels: usize,
    },

    /// None of the standard MNIST file names exist in a directory.
    #[error("no MNIST files in {}: tried {}", dir.display(), tried.join(", "))]
    MissingFiles {
        /// The directory searched.
        dir: PathBuf,
        /// The file names looked for, in order of preference.
        tried: Vec<String>,
    },

    /// A numeric argument (batch size, split point, image size...) is out of range.
    #[error("invalid {param} = {value}: {reason}")]
    InvalidArgument {
        /// The parameter's name.
        param: &'static str,
        /// The value passed.
        value: usize,
        /// Why it was rejected.
        reason: String,
    },

    /// An index passed to [`Dataset::select`] is past the end of the set.
    #[error("index {index} out of range for a dataset of {len} images")]
    IndexOutOfRange {
        /// The offending index.
        index: usize,
        /// The dataset's length.
        len: usize,
    },
}

/// A set of single-channel images with optional labels.
///
/// `images` has shape `[n, 1, h, w]` and values in `[0, 1]`; `labels`, when
/// present, has exactly `n` entries. Build one with [`Dataset::new`] to have
/// that checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Images, `[n, 1, h, w]`, values in `[0, 1]`.
    pub images: Array4<f32>,
    /// One label per image, if the source had labels.
    pub labels: Option<Vec<u8>>,
}

impl Dataset {
    /// Pairs images with labels, checking that the counts agree.
    ///
    /// ```
    /// use adjoint::data::Dataset;
    /// use ndarray::Array4;
    ///
    /// let ok = Dataset::new(Array4::zeros((3, 1, 4, 4)), Some(vec![0, 1, 2]))?;
    /// assert_eq!(ok.len(), 3);
    /// assert!(Dataset::new(Array4::zeros((3, 1, 4, 4)), Some(vec![0])).is_err());
    /// # Ok::<(), adjoint::data::DataError>(())
    /// ```
    pub fn new(images: Array4<f32>, labels: Option<Vec<u8>>) -> Result<Self, DataError> {
        let data = Self { images, labels };
        data.check_labels()?;
        Ok(data)
    }

    /// Converts `[n, h, w]` bytes (as stored in IDX files) to a dataset,
    /// scaling each pixel to `v / 255`.
    ///
    /// ```
    /// use adjoint::data::Dataset;
    /// use ndarray::Array3;
    ///
    /// let raw = Array3::from_shape_vec((1, 1, 2), vec![0u8, 255])?;
    /// let data = Dataset::from_u8_images(&raw, None)?;
    /// assert_eq!(data.images.shape(), &[1, 1, 1, 2]);
    /// assert_eq!(data.images[[0, 0, 0, 1]], 1.0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_u8_images(images: &Array3<u8>, labels: Option<Vec<u8>>) -> Result<Self, DataError> {
        let scaled = images.mapv(|v| f32::from(v) / 255.0).insert_axis(Axis(1));
        Self::new(scaled, labels)
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.len_of(Axis(0))
    }

    /// True when the set holds no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Image height and width in pixels.
    pub fn image_size(&self) -> (usize, usize) {
        (self.images.len_of(Axis(2)), self.images.len_of(Axis(3)))
    }

    /// Splits into the first `n_first` images and the rest, keeping order.
    ///
    /// The usual MNIST-style hold-out ("first 9,000 train, last 1,000
    /// validation") is `split_at(9000)`. `n_first` may equal `len()`, which
    /// leaves the second part empty; larger values are an error.
    ///
    /// ```
    /// use adjoint::data::synthetic_shapes;
    ///
    /// let data = synthetic_shapes(10, 16, 1)?;
    /// let (train, valid) = data.split_at(8)?;
    /// assert_eq!((train.len(), valid.len()), (8, 2));
    /// assert_eq!(valid.images.index_axis(ndarray::Axis(0), 0),
    ///            data.images.index_axis(ndarray::Axis(0), 8));
    /// assert!(data.split_at(11).is_err());
    /// # Ok::<(), adjoint::data::DataError>(())
    /// ```
    pub fn split_at(&self, n_first: usize) -> Result<(Dataset, Dataset), DataError> {
        self.check_labels()?;
        let len = self.len();
        if n_first > len {
            return Err(DataError::InvalidArgument {
                param: "n_first",
                value: n_first,
                reason: format!("larger than the dataset ({len} images)"),
            });
        }
        let part = |range: std::ops::Range<usize>| Dataset {
            images: self.images.slice(s![range.clone(), .., .., ..]).to_owned(),
            labels: self.labels.as_ref().map(|l| l[range].to_vec()),
        };
        Ok((part(0..n_first), part(n_first..len)))
    }

    /// Gathers the images at `indices` (in that order, repeats allowed) into
    /// a `[indices.len(), 1, h, w]` batch.
    ///
    /// ```
    /// use adjoint::data::synthetic_shapes;
    ///
    /// let data = synthetic_shapes(5, 16, 3)?;
    /// let batch = data.select(&[4, 0])?;
    /// assert_eq!(batch.shape(), &[2, 1, 16, 16]);
    /// assert!(data.select(&[5]).is_err());
    /// # Ok::<(), adjoint::data::DataError>(())
    /// ```
    pub fn select(&self, indices: &[usize]) -> Result<Array4<f32>, DataError> {
        self.check_indices(indices)?;
        Ok(self.images.select(Axis(0), indices))
    }

    /// Gathers the labels at `indices`, or `None` for an unlabelled set.
    pub fn select_labels(&self, indices: &[usize]) -> Result<Option<Vec<u8>>, DataError> {
        self.check_labels()?;
        self.check_indices(indices)?;
        Ok(self
            .labels
            .as_ref()
            .map(|labels| indices.iter().map(|&i| labels[i]).collect()))
    }

    /// The fields are public, so the one-label-per-image invariant that
    /// [`Dataset::new`] checks can be broken afterwards; slicing re-checks it
    /// rather than panicking on a short label vector.
    pub(crate) fn check_labels(&self) -> Result<(), DataError> {
        match &self.labels {
            Some(labels) if labels.len() != self.len() => Err(DataError::CountMismatch {
                images: self.len(),
                labels: labels.len(),
            }),
            _ => Ok(()),
        }
    }

    fn check_indices(&self, indices: &[usize]) -> Result<(), DataError> {
        let len = self.len();
        match indices.iter().find(|&&i| i >= len) {
            Some(&index) => Err(DataError::IndexOutOfRange { index, len }),
            None => Ok(()),
        }
    }
}
