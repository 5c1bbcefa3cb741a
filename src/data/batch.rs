//! Mini-batches over a [`Dataset`], optionally in a seeded random order.

use ndarray::{Array4, Axis};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::{DataError, Dataset};

/// One mini-batch: the images, their labels if the set has any, and the
/// dataset indices they came from (handy for plotting a reconstruction next
/// to its original).
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Images, `[batch, 1, h, w]`.
    pub images: Array4<f32>,
    /// Labels in the same order as `images`, if the dataset is labelled.
    pub labels: Option<Vec<u8>>,
    /// Position of each image in the dataset.
    pub indices: Vec<usize>,
}

/// An iterator over one epoch of mini-batches.
///
/// Each index of the dataset appears in exactly one batch. With
/// `shuffle_seed: Some(seed)` the order is a permutation drawn from a
/// `StdRng` seeded with `seed`, so the same seed always gives the same
/// batches; pass a different seed per epoch (for example `base + epoch`) to
/// get a fresh order each epoch. With `None` the dataset order is kept.
/// The last, smaller batch is yielded unless [`Batches::drop_last`] asks
/// otherwise.
///
/// ```
/// use adjoint::data::{synthetic_shapes, Batches};
///
/// let data = synthetic_shapes(10, 16, 0)?;
/// let mut seen = Vec::new();
/// for batch in Batches::new(&data, 4, Some(99))? {
///     assert_eq!(batch.images.shape()[1..], [1, 16, 16]);
///     seen.extend(batch.indices);
/// }
/// seen.sort();
/// assert_eq!(seen, (0..10).collect::<Vec<_>>());
///
/// let full_only = Batches::new(&data, 4, Some(99))?.drop_last(true);
/// assert_eq!(full_only.count(), 2);
/// assert!(Batches::new(&data, 0, None).is_err());
/// # Ok::<(), adjoint::data::DataError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    dataset: &'a Dataset,
    order: Vec<usize>,
    batch_size: usize,
    next: usize,
    drop_last: bool,
}

impl<'a> Batches<'a> {
    /// Starts an epoch over `dataset` in batches of `batch_size`.
    ///
    /// Fails if `batch_size` is zero, or if the dataset's label count does
    /// not match its image count.
    pub fn new(dataset: &'a Dataset, batch_size: usize, shuffle_seed: Option<u64>) -> Result<Self, DataError> {
        if batch_size == 0 {
            return Err(DataError::InvalidArgument {
                param: "batch_size",
                value: batch_size,
                reason: "must be at least 1".to_string(),
            });
        }
        // Checked once here so that iterating can never fail.
        dataset.check_labels()?;
        let mut order: Vec<usize> = (0..dataset.len()).collect();
        if let Some(seed) = shuffle_seed {
            order.shuffle(&mut StdRng::seed_from_u64(seed));
        }
        Ok(Self {
            dataset,
            order,
            batch_size,
            next: 0,
            drop_last: false,
        })
    }

    /// Whether to skip a final batch smaller than `batch_size` (useful when
    /// a batch statistic should not be skewed by a tiny batch).
    #[must_use]
    pub fn drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }

    /// The order in which this epoch visits the dataset.
    pub fn order(&self) -> &[usize] {
        &self.order
    }
}

impl Iterator for Batches<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let remaining = self.order.len() - self.next;
        if remaining == 0 || (self.drop_last && remaining < self.batch_size) {
            return None;
        }
        let end = self.next + remaining.min(self.batch_size);
        let indices = self.order[self.next..end].to_vec();
        self.next = end;

        // The order is a permutation of 0..len and the labels were checked
        // in `new`, so plain indexing cannot go out of bounds.
        let images = self.dataset.images.select(Axis(0), &indices);
        let labels = self
            .dataset
            .labels
            .as_ref()
            .map(|labels| indices.iter().map(|&i| labels[i]).collect());
        Some(Batch {
            images,
            labels,
            indices,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = self.order.len() - self.next;
        let batches = if self.drop_last {
            remaining / self.batch_size
        } else {
            remaining.div_ceil(self.batch_size)
        };
        (batches, Some(batches))
    }
}

impl ExactSizeIterator for Batches<'_> {}
