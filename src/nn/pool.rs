//! Pooling layers, max and average side by side: no parameters, the settings, and a `forward`
//! that calls the op.

use super::Module;
use crate::error::{Result, invalid};
use crate::float::Float;
use crate::ops::pool::{
    PoolOptions, avg_pool1d, avg_pool2d, avg_pool3d, check_layer, max_pool1d, max_pool2d, max_pool3d,
};
use crate::tape::Var;

/// The rank-specific pooling op of a layer.
type PoolFn<T> = for<'t> fn(Var<'t, T>, &PoolOptions) -> Result<Var<'t, T>>;

/// Refuses a rank other than 1, 2 or 3 and settings any input would be refused with.
fn check(layer: &'static str, max: bool, rank: usize, options: &PoolOptions) -> Result<()> {
    if !(1..=3).contains(&rank) {
        return Err(invalid(layer, "rank", rank, "must be 1, 2 or 3"));
    }
    check_layer(layer, max, rank, options)
}

/// A max-pooling layer of any rank (PyTorch's `nn.MaxPool{1,2,3}d`), calling
/// [`max_pool1d`], [`max_pool2d`] or [`max_pool3d`]: it takes batched and unbatched inputs.
#[derive(Clone, Debug)]
pub struct MaxPool {
    rank: usize,
    /// Kernel size, stride, padding, dilation, ceil mode.
    pub options: PoolOptions,
}

impl MaxPool {
    /// A max-pooling layer over `rank` spatial axes.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] for a rank other than 1 to 3, or settings
    /// [`max_pool1d`] and the others refuse whatever the input (a size of 0, padding above
    /// half the kernel, a per-axis setting of the wrong length, an avg-pool setting).
    ///
    /// # Example
    /// ```
    /// use adjoint::nn::{MaxPool2d, Module};
    /// use adjoint::ops::pool::PoolOptions;
    /// use adjoint::Tape;
    /// use ndarray::ArrayD;
    ///
    /// let pool = MaxPool2d::new(PoolOptions::new(2))?;
    /// let tape = Tape::<f32>::new();
    /// let y = pool.forward(tape.constant(ArrayD::zeros(vec![8, 16, 64, 64])))?;
    /// assert_eq!(y.shape(), vec![8, 16, 32, 32]);
    /// assert!(MaxPool2d::new(PoolOptions::new(3).padding(2)).is_err()); // more than k/2
    /// # Ok::<(), adjoint::Error>(())
    /// ```
    pub fn new(rank: usize, options: PoolOptions) -> Result<Self> {
        check("MaxPool", true, rank, &options)?;
        Ok(MaxPool { rank, options })
    }

    /// The number of spatial axes.
    pub fn rank(&self) -> usize {
        self.rank
    }
}

/// An average-pooling layer of any rank (PyTorch's `nn.AvgPool{1,2,3}d`), calling
/// [`avg_pool1d`], [`avg_pool2d`] or [`avg_pool3d`]: it takes batched and unbatched inputs.
#[derive(Clone, Debug)]
pub struct AvgPool {
    rank: usize,
    /// Kernel size, stride, padding, ceil mode, `count_include_pad`, `divisor_override`.
    pub options: PoolOptions,
}

impl AvgPool {
    /// An average-pooling layer over `rank` spatial axes.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] for a rank other than 1 to 3, or settings
    /// [`avg_pool1d`] and the others refuse whatever the input (a size or divisor of 0,
    /// padding above half the kernel, a per-axis setting of the wrong length, a dilation).
    ///
    /// # Example
    /// ```
    /// use adjoint::nn::{AvgPool1d, Module};
    /// use adjoint::ops::pool::PoolOptions;
    /// use adjoint::Tape;
    /// use ndarray::arr2;
    ///
    /// let pool = AvgPool1d::new(PoolOptions::new(2))?;
    /// let tape = Tape::<f64>::new();
    /// let y = pool.forward(tape.constant(arr2(&[[1.0, 3.0, 5.0, 9.0]]).into_dyn()))?; // unbatched
    /// assert_eq!(y.value().as_slice().unwrap(), &[2.0, 7.0]);
    /// # Ok::<(), adjoint::Error>(())
    /// ```
    pub fn new(rank: usize, options: PoolOptions) -> Result<Self> {
        check("AvgPool", false, rank, &options)?;
        Ok(AvgPool { rank, options })
    }

    /// The number of spatial axes.
    pub fn rank(&self) -> usize {
        self.rank
    }
}

/// The rank-specific op of a max (`max`) or average pooling layer of `rank` (checked, 1 to 3).
fn op<T: Float>(max: bool, rank: usize) -> PoolFn<T> {
    match (max, rank) {
        (true, 1) => max_pool1d,
        (true, 2) => max_pool2d,
        (true, _) => max_pool3d,
        (false, 1) => avg_pool1d,
        (false, 2) => avg_pool2d,
        (false, _) => avg_pool3d,
    }
}

impl<T: Float> Module<T> for MaxPool {
    fn forward<'t>(&self, x: Var<'t, T>) -> Result<Var<'t, T>> {
        op(true, self.rank)(x, &self.options)
    }
}

impl<T: Float> Module<T> for AvgPool {
    fn forward<'t>(&self, x: Var<'t, T>) -> Result<Var<'t, T>> {
        op(false, self.rank)(x, &self.options)
    }
}

macro_rules! ranked {
    ($name:ident, $inner:ident, $max:literal, $rank:literal, $torch:literal) => {
        #[doc = concat!("PyTorch's `nn.", $torch, "`: a [`", stringify!($inner), "`] over ", stringify!($rank), " spatial axes.")]
        pub struct $name;

        impl $name {
            #[doc = concat!("A new `", $torch, "` layer with these settings.")]
            ///
            /// # Errors
            #[doc = concat!("As [`", stringify!($inner), "::new`].")]
            #[allow(clippy::new_ret_no_self)] // the rank is all this type adds
            pub fn new(options: PoolOptions) -> Result<$inner> {
                check($torch, $max, $rank, &options)?;
                Ok($inner { rank: $rank, options })
            }
        }
    };
}

ranked!(MaxPool1d, MaxPool, true, 1, "MaxPool1d");
ranked!(MaxPool2d, MaxPool, true, 2, "MaxPool2d");
ranked!(MaxPool3d, MaxPool, true, 3, "MaxPool3d");
ranked!(AvgPool1d, AvgPool, false, 1, "AvgPool1d");
ranked!(AvgPool2d, AvgPool, false, 2, "AvgPool2d");
ranked!(AvgPool3d, AvgPool, false, 3, "AvgPool3d");
