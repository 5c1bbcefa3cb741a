//! What every training example shares: flag parsers that refuse a meaningless run before any
//! work, the progress bar, step timing, and writing a run's files together or not at all.
//!
//! Each example includes this file as `mod common;`; an example uses only some of it, hence
//! the `allow` below (the unused rest is not dead code, it is another example's).
#![allow(dead_code)]

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Instant;

use adjoint::data::{Dataset, load_mnist_dir, single_shapes, synthetic_shapes};
use adjoint::models::Upsampling;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// A parser for a count that must lie in `min..=max`; clap prints its error after the flag and
/// the value, e.g. `invalid value '0' for '--epochs <EPOCHS>': must be at least 1`.
pub fn count(min: usize, max: usize) -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync + 'static {
    move |text| {
        let rule = if max == usize::MAX {
            format!("must be at least {min}")
        } else {
            format!("must be from {min} to {max}")
        };
        match text.parse::<usize>() {
            Ok(value) if (min..=max).contains(&value) => Ok(value),
            Ok(_) => Err(rule),
            Err(e) => Err(format!("{e}: {rule}")),
        }
    }
}

/// `--lr`: a step of 0 trains nothing, a negative one climbs the loss, and NaN or ∞ turns
/// every weight into NaN at the first step.
pub fn learning_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(lr) if lr.is_finite() && lr > 0.0 => Ok(lr),
        _ => Err("must be a finite number > 0".into()),
    }
}

/// A parser for a number that must lie in `min..=max` (finite, so NaN is refused too).
pub fn number(min: f64, max: f64) -> impl Fn(&str) -> Result<f64, String> + Clone + Send + Sync + 'static {
    move |text| match text.parse::<f64>() {
        Ok(v) if v.is_finite() && (min..=max).contains(&v) => Ok(v),
        _ => Err(format!("must be a number from {min} to {max}")),
    }
}

/// A parser for a path that must exist and be a `what` (`is` tells).
pub fn existing(
    what: &'static str,
    is: fn(&Path) -> bool,
) -> impl Fn(&str) -> Result<PathBuf, String> + Clone + Send + Sync + 'static {
    move |text| {
        let path = PathBuf::from(text);
        if is(&path) {
            Ok(path)
        } else {
            Err(format!("must be an existing {what}"))
        }
    }
}

/// An output directory (`--out-dir`, `--export-data`) may not exist yet, but if it does it must
/// be a directory: found out now, not after training.
pub fn out_dir(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    if path.exists() && !path.is_dir() {
        return Err("exists and is not a directory".into());
    }
    Ok(path)
}

/// Refuses to save weights that are not all finite: a run whose losses stayed finite can
/// still end with a NaN or infinite weight, and such weights must not be written. `label`
/// names the model in the message when a run has several (`"generator "`), else is empty.
///
/// # Errors
/// `the run diverged: <label><first bad value>; nothing was written`.
pub fn refuse_non_finite_weights(model: &impl adjoint::nn::Module<f32>, label: &str) -> Result<(), Box<dyn Error>> {
    match adjoint::nn::io::first_non_finite(model) {
        Some(bad) => Err(format!("the run diverged: {label}{bad}; nothing was written").into()),
        None => Ok(()),
    }
}

/// Writes a run's outputs to `out_dir` together, or not at all: `write` puts the files `names`
/// whole into a fresh staging directory inside `out_dir` (the same file system, so a rename
/// moves a file in one step), and only once all are there are they renamed over the previous
/// run's files. A failure while drawing or writing leaves those as they were. `program` names
/// the staging directory, so two examples writing to one directory do not meet.
pub fn publish(
    out_dir: &Path,
    program: &str,
    names: &[&str],
    write: impl FnOnce(&Path) -> Result<(), Box<dyn Error>>,
) -> Result<(), Box<dyn Error>> {
    std::fs::create_dir_all(out_dir).map_err(failed(out_dir))?;
    let staging = out_dir.join(format!(".{program}-{}.partial", std::process::id()));
    std::fs::create_dir(&staging).map_err(failed(&staging))?;
    let published = write(&staging).and_then(|()| {
        // Renames within one file system do not fail but for a file in the way (a directory
        // named like an output); then the outputs renamed before it stay.
        for name in names {
            let target = out_dir.join(name);
            std::fs::rename(staging.join(name), &target).map_err(failed(&target))?;
        }
        Ok(())
    });
    // Empty after success; after a failure it holds what was written before it.
    let _ = std::fs::remove_dir_all(&staging);
    published
}

/// An I/O error with the path it concerns (the error alone does not name it).
pub fn failed(path: &Path) -> impl FnOnce(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

/// Runs `run`, printing an error with its message (not `Debug`) and exiting non-zero.
pub fn exit_code(run: impl FnOnce() -> Result<(), Box<dyn Error>>) -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The progress bar of one epoch over `len` items.
pub fn epoch_bar(epoch: usize, len: usize) -> Result<ProgressBar, Box<dyn Error>> {
    let style = ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg}")?.progress_chars("=> ");
    Ok(ProgressBar::new(len as u64)
        .with_style(style)
        .with_prefix(epoch.to_string()))
}

/// `0..n` in an order fixed by `seed`: an epoch's shuffle.
pub fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    order
}

/// Wall times of training steps, in milliseconds.
#[derive(Default)]
pub struct StepTimes(Vec<f64>);

impl StepTimes {
    /// Times `step` and records how long it took.
    pub fn time<R>(&mut self, step: impl FnOnce() -> R) -> R {
        let t0 = Instant::now();
        let out = step();
        self.0.push(t0.elapsed().as_secs_f64() * 1e3);
        out
    }

    /// The median step, in ms (robust to the first steps' page faults and to other work on the
    /// machine; NaN before any step).
    pub fn median(&self) -> f64 {
        let mut sorted = self.0.clone();
        sorted.sort_by(f64::total_cmp);
        match sorted.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => sorted[n / 2],
            n => 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]),
        }
    }

    /// Adds another epoch's steps.
    pub fn extend(&mut self, other: &StepTimes) {
        self.0.extend_from_slice(&other.0);
    }
}

/// How a decoder or generator doubles its maps' size, as a flag (`--upsample`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upsample {
    /// A stride-2 transposed convolution (the U-Net's `ConvTranspose2d(k = 2, s = 2)`, the
    /// VAE's and the DCGAN's `k = 4, s = 2, p = 1`).
    Transposed,
    /// A nearest resize followed by a 3×3 convolution (Distill's fix for checkerboards).
    Resize,
}

impl From<Upsample> for Upsampling {
    fn from(u: Upsample) -> Upsampling {
        match u {
            Upsample::Transposed => Upsampling::Transposed,
            Upsample::Resize => Upsampling::Resize,
        }
    }
}

impl std::fmt::Display for Upsample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Upsample::Transposed => "transposed-conv",
            Upsample::Resize => "resize-conv",
        })
    }
}

/// The most images `--train-size` or `--val-size` may ask for: more than any MNIST-format set
/// holds (EMNIST ByClass: 814,255). A synthetic image takes 3 KiB as `f32`, so the largest
/// synthetic set, 2,000,000 images, takes 6 GB, twice (whole, then split).
pub const MAX_IMAGES: usize = 1_000_000;
/// The largest `--batch-size` of the 28×28 examples: an autoencoder step holds about 220 KB per
/// image (activations, the unrolled inputs of the convolutions, gradients; measured: 0.9 GB at
/// 4,096 images), a VAE step less.
pub const MAX_BATCH_SIZE: usize = 4096;

/// The flags of a training run on 28×28 images (the autoencoder, the VAE) besides the model's.
#[derive(clap::Args, Debug)]
pub struct ImageArgs {
    /// Passes over the training set (at least 1).
    #[arg(long, default_value_t = 10, allow_negative_numbers = true, value_parser = count(1, usize::MAX))]
    pub epochs: usize,
    /// Images per optimizer step (1 to 4096).
    #[arg(long, default_value_t = 64, allow_negative_numbers = true, value_parser = count(1, MAX_BATCH_SIZE))]
    pub batch_size: usize,
    /// Adam's learning rate (a finite number > 0).
    #[arg(long, default_value_t = 1e-3, allow_negative_numbers = true, value_parser = learning_rate)]
    pub lr: f64,
    /// Seed of the initial weights, the synthetic data, the shuffling (and a VAE's noise): the
    /// same seed gives the same run, bit for bit.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub seed: u64,
    /// Where the images come from.
    #[command(flatten)]
    pub data: DataArgs,
}

impl ImageArgs {
    /// The training and validation images these flags ask for ([`DataArgs::load`]), after
    /// printing `data: <source>: <n> training, <m> validation images`, the first line of work.
    ///
    /// # Errors
    /// As [`DataArgs::load`].
    pub fn splits(&self) -> Result<(Dataset, Dataset), Box<dyn Error>> {
        let (train, val, source) = self.data.load(self.seed, Synthetic::Shapes)?;
        println!(
            "data: {source}: {} training, {} validation images",
            train.len(),
            val.len()
        );
        Ok((train, val))
    }
}

/// Where the 28×28 images of the autoencoder, the VAE and the GAN come from, as flags.
#[derive(clap::Args, Debug)]
pub struct DataArgs {
    /// Directory with MNIST-format IDX files (train-* or t10k-*, raw or .gz); the first
    /// `--train-size` images train, the rest validate. Without it, synthetic shapes are used.
    #[arg(long, value_parser = existing("directory", Path::is_dir))]
    pub data_dir: Option<PathBuf>,
    /// Training images (1 to 1,000,000; the synthetic set's size is this plus `--val-size`).
    #[arg(long, default_value_t = 9000, allow_negative_numbers = true, value_parser = count(1, MAX_IMAGES))]
    pub train_size: usize,
    /// Validation images for the synthetic set (1 to 1,000,000; with `--data-dir`, all images
    /// after the training ones).
    #[arg(long, default_value_t = 1000, allow_negative_numbers = true, value_parser = count(1, MAX_IMAGES))]
    pub val_size: usize,
}

/// Which synthetic images [`DataArgs::load`] makes when no `--data-dir` is given.
#[derive(Clone, Copy, Debug)]
pub enum Synthetic {
    /// `adjoint::data::synthetic_shapes`: one or two shapes an image (the autoencoder's and
    /// the VAE's data).
    Shapes,
    /// `adjoint::data::single_shapes`: one shape an image, so a classifier of its label can
    /// score a generator's samples (the GAN's data).
    SingleShapes,
}

impl DataArgs {
    /// The training and validation images (`synthetic` ones made from `seed` when there is no
    /// `--data-dir`), and where they come from, for the log.
    ///
    /// # Errors
    /// Files that cannot be read, or a `--train-size` that leaves no image to validate on.
    pub fn load(&self, seed: u64, synthetic: Synthetic) -> Result<(Dataset, Dataset, String), Box<dyn Error>> {
        let (all, source) = match &self.data_dir {
            Some(dir) => {
                let all = load_mnist_dir(dir)?;
                // The images after the first --train-size validate: some must be left.
                if self.train_size >= all.len() {
                    return Err(format!(
                        "--train-size = {}: must be less than the {} images in {}, to leave some to validate on",
                        self.train_size,
                        all.len(),
                        dir.display()
                    )
                    .into());
                }
                (all, dir.display().to_string())
            }
            // Both sizes are at most MAX_IMAGES, so the sum cannot overflow.
            None => {
                let n = self.train_size + self.val_size;
                match synthetic {
                    Synthetic::Shapes => (synthetic_shapes(n, 28, seed)?, "synthetic shapes".to_string()),
                    Synthetic::SingleShapes => (
                        single_shapes(n, 28, seed)?,
                        "synthetic shapes, one an image".to_string(),
                    ),
                }
            }
        };
        let (train, val) = all.split_at(self.train_size)?;
        Ok((train, val, source))
    }
}
