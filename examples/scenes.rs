//! The flags and data the dense-prediction examples (segmentation, key points) share: scenes
//! made from the seed or from MNIST-format digits, split into training and validation, the
//! U-Net's shape, and `--export-data` for the PyTorch twins.
#![allow(dead_code)] // Each example uses part of it; see common.rs.

use std::error::Error;
use std::ops::Range;
use std::path::{Path, PathBuf};

use adjoint::data::{MAX_SCENE_SIZE, MIN_SCENE_SIZE, Scenes, digit_scenes, load_mnist_dir, synthetic_scenes};
use adjoint::models::UNet;
use adjoint::nn::{Module, io};
use adjoint::optim::{Adam, Optimizer as _, cosine_annealing};
use adjoint::{Tape, Var};
use ndarray::{Array4, Axis, Ix4, s};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::common::{
    StepTimes, Upsample, count, epoch_bar, existing, out_dir, publish, refuse_non_finite_weights, shuffled,
};

/// The most scenes `--train-size` or `--val-size` may ask for.
const MAX_SCENES: usize = 1_000_000;
/// The most pixels all scenes together may hold: 1 GiB of `f32` images and a quarter of that
/// in masks (2,500 default scenes hold 10 M).
const MAX_PIXELS: usize = 1 << 28;
/// The most pixels of one batch: a training step of the default U-Net keeps about 2.5 K
/// floats per pixel (activations and their gradients at every level), so 2^20 pixels (256
/// scenes of 64×64) take about 10 GB.
const MAX_BATCH_PIXELS: usize = 1 << 20;
/// The largest scene side the examples accept (the library's limit is larger, but a U-Net
/// step over even one such scene would outgrow [`MAX_BATCH_PIXELS`]).
const MAX_SIZE: usize = 256;
/// The most channels of one U-Net level.
const MAX_WIDTH: usize = 512;

/// The flags of a dense-prediction run besides the task's own.
#[derive(clap::Args, Debug)]
pub struct SceneArgs {
    /// Scenes per optimizer step (1 to 1024; with --size, at most 2^20 pixels a batch).
    #[arg(long, default_value_t = 16, allow_negative_numbers = true, value_parser = count(1, 1024))]
    pub batch_size: usize,
    /// Seed of the initial weights, the scenes and the shuffling: the same seed gives the same
    /// run, bit for bit.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Training scenes (1 to 1,000,000) [default: 2000, or 6000 from digits with --data-dir].
    #[arg(long, allow_negative_numbers = true, value_parser = count(1, MAX_SCENES))]
    pub train_size: Option<usize>,
    /// Validation scenes (1 to 1,000,000).
    #[arg(long, default_value_t = 500, allow_negative_numbers = true, value_parser = count(1, MAX_SCENES))]
    pub val_size: usize,
    /// Side of a scene in pixels (32 to 256).
    #[arg(long, default_value_t = 64, allow_negative_numbers = true, value_parser = count(MIN_SCENE_SIZE, MAX_SIZE.min(MAX_SCENE_SIZE)))]
    pub size: usize,
    /// Channels of the U-Net's levels, comma-separated, the last being the bottom (2 to 5
    /// levels, 1 to 512 channels each).
    #[arg(long, default_value = "16,32,64", value_delimiter = ',', value_parser = count(1, MAX_WIDTH))]
    pub widths: Vec<usize>,
    /// How the decoder doubles the maps' size.
    #[arg(long, value_enum, default_value_t = Upsample::Transposed)]
    pub upsample: Upsample,
    /// How the learning rate moves over the run.
    #[arg(long, value_enum, default_value_t = Schedule::Cosine)]
    pub schedule: Schedule,
    /// Write the training and validation scenes as NumPy files to DIR/train and DIR/val (for
    /// the PyTorch twin) and stop.
    #[arg(long, value_name = "DIR", value_parser = out_dir)]
    pub export_data: Option<PathBuf>,
    /// Skip training: load these weights and report the validation scores.
    #[arg(long, value_parser = existing("file", Path::is_file))]
    pub eval: Option<PathBuf>,
}

/// Training scenes without `--train-size`, synthetic.
const SYNTHETIC_TRAIN_SIZE: usize = 2000;
/// Training scenes without `--train-size`, of digits.
const DIGITS_TRAIN_SIZE: usize = 6000;

impl SceneArgs {
    /// `--train-size`, or its default for the data: digits, with 11 classes of shapes far more
    /// varied than the synthetic ones, need more scenes (2,000 reach mean IoU 0.51 in 9 epochs,
    /// 6,000 reach 0.76 in 7; `docs/dense_prediction.md`).
    pub fn train_size(&self, digits: bool) -> usize {
        self.train_size.unwrap_or(if digits {
            DIGITS_TRAIN_SIZE
        } else {
            SYNTHETIC_TRAIN_SIZE
        })
    }

    /// The checks that concern several flags at once, made before any work; `digits` says
    /// whether the scenes are made of digits (`--data-dir`).
    ///
    /// # Errors
    /// Too many or too few levels, or sets or batches too large for memory.
    pub fn check(&self, digits: bool) -> Result<(), String> {
        if !(2..=5).contains(&self.widths.len()) {
            return Err(format!(
                "--widths {:?}: needs 2 to 5 levels (the last is the bottom)",
                self.widths
            ));
        }
        let pixels = self.size * self.size;
        let train_size = self.train_size(digits);
        // Each size is at most MAX_SCENES and pixels at most 2^16: no overflow.
        if (train_size + self.val_size) * pixels > MAX_PIXELS {
            return Err(format!(
                "--train-size {} + --val-size {} scenes of --size {} hold more than 2^28 pixels (1 GiB of images); \
                 use fewer or smaller scenes",
                train_size, self.val_size, self.size
            ));
        }
        if self.batch_size * pixels > MAX_BATCH_PIXELS {
            return Err(format!(
                "--batch-size {} scenes of --size {} hold more than 2^20 pixels, about 10 GB for a training step; \
                 use a smaller batch",
                self.batch_size, self.size
            ));
        }
        Ok(())
    }
}

/// Scenes for training or validation, and where they come from.
pub struct Split {
    /// Images `[n, 1, size, size]`, masks and key points.
    pub scenes: Scenes,
    /// A description for the log.
    pub source: String,
}

impl Split {
    /// The number of scenes.
    pub fn len(&self) -> usize {
        self.scenes.len()
    }
}

/// Synthetic scenes: `--train-size + --val-size` from the seed, the first for training.
pub fn synthetic(args: &SceneArgs) -> Result<(Split, Split), Box<dyn Error>> {
    let train_size = args.train_size(false);
    let all = synthetic_scenes(train_size + args.val_size, args.size, args.seed)?;
    let (train, val) = all.split_at(train_size)?;
    let source = format!("synthetic scenes (seed {})", args.seed);
    Ok((
        Split {
            scenes: train,
            source: source.clone(),
        },
        Split { scenes: val, source },
    ))
}

/// Scenes of MNIST-format digits from `dir`: the first 90% of the digits make the training
/// scenes, the rest the validation scenes, so no digit image is in both.
pub fn digits(args: &SceneArgs, dir: &Path) -> Result<(Split, Split), Box<dyn Error>> {
    let all = load_mnist_dir(dir)?;
    if all.len() < 10 {
        return Err(format!(
            "{}: {} digit images; at least 10 are needed (9 to make training scenes, 1 validation)",
            dir.display(),
            all.len()
        )
        .into());
    }
    let (train_digits, val_digits) = all.split_at(all.len() * 9 / 10)?;
    let train = digit_scenes(&train_digits, args.train_size(true), args.size, args.seed)?;
    // Another seed, so the validation scenes are not laid out as the first training ones.
    let val = digit_scenes(&val_digits, args.val_size, args.size, args.seed ^ 0x9e37_79b9_7f4a_7c15)?;
    let source = format!("digits from {}", dir.display());
    Ok((
        Split {
            scenes: train,
            source: source.clone(),
        },
        Split { scenes: val, source },
    ))
}

/// Writes both splits to `dir/train` and `dir/val` (each file atomically) and says so.
pub fn export(dir: &Path, train: &Split, val: &Split) -> Result<(), Box<dyn Error>> {
    train.scenes.export(&dir.join("train"))?;
    val.scenes.export(&dir.join("val"))?;
    println!(
        "wrote {0}/train and {0}/val: images.npy, masks.npy, keypoints.npy",
        dir.display()
    );
    Ok(())
}

/// How the learning rate moves over a run, as a flag.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// From `--lr` down to 0 on a cosine over all steps (`adjoint::optim::cosine_annealing`).
    Cosine,
    /// `--lr` throughout.
    Constant,
}

/// Adam at learning rate `lr`, moved by `schedule` over `epochs` epochs of `train_size`
/// scenes in batches of `batch_size`.
pub struct Optimizer {
    adam: Adam<f32>,
    lr: f64,
    schedule: Schedule,
    step: usize,
    total_steps: usize,
}

impl Optimizer {
    /// The optimizer of a run.
    pub fn new(lr: f64, schedule: Schedule, epochs: usize, train_size: usize, batch_size: usize) -> Self {
        Optimizer {
            adam: Adam::new(lr),
            lr,
            schedule,
            step: 0,
            total_steps: epochs.saturating_mul(train_size.div_ceil(batch_size)),
        }
    }

    /// One update of `model` with the learning rate of this step.
    fn step(&mut self, model: &mut UNet<f32>, grads: &adjoint::Grads<f32>) {
        self.adam.lr = match self.schedule {
            Schedule::Cosine => cosine_annealing(self.lr, 0.0, self.step, self.total_steps),
            Schedule::Constant => self.lr,
        };
        self.adam.step(model, grads);
        self.step += 1;
    }
}

/// One epoch over `train` in an order fixed by `seed`, in batches of `batch_size`: each step
/// records the model on a fresh tape, takes `loss(outputs, batch)` (`batch` holds the scenes'
/// indices), back-propagates and updates. Shows a progress bar. Returns the mean loss per
/// scene and the steps' times.
pub fn train_epoch(
    model: &mut UNet<f32>,
    optimizer: &mut Optimizer,
    train: &Split,
    batch_size: usize,
    seed: u64,
    epoch: usize,
    loss: impl for<'t> Fn(Var<'t, f32>, &[usize]) -> adjoint::Result<Var<'t, f32>>,
) -> Result<(f64, StepTimes), Box<dyn Error>> {
    let bar = epoch_bar(epoch, train.len())?;
    let (mut seen, mut total) = (0usize, 0.0);
    let mut steps = StepTimes::default();
    for batch in shuffled(train.len(), seed).chunks(batch_size) {
        let images = train.scenes.images.select(Axis(0), batch).into_dyn();
        let value = steps.time(|| -> adjoint::Result<f64> {
            let (grads, value) = {
                let tape = Tape::new();
                let loss = loss(model.forward(tape.constant(images))?, batch)?;
                let value = f64::from(loss.value()[[]]);
                (tape.backward(loss)?, value)
            };
            // The tape is gone, so the optimizer updates the parameters in place.
            optimizer.step(model, &grads);
            Ok(value)
        })?;
        total += value * batch.len() as f64;
        seen += batch.len();
        bar.set_position(seen as u64);
        bar.set_message(format!("loss {value:.4}, {:.0} ms/step", steps.median()));
    }
    bar.finish_and_clear();
    Ok((total / seen as f64, steps))
}

/// The model's outputs `[n, c, h, w]` on scenes `range` of `split`, in eval mode (batch norm
/// with its running statistics) and without gradients; the model is back in training mode
/// after.
pub fn predict(model: &mut UNet<f32>, split: &Split, range: Range<usize>) -> Result<Array4<f32>, Box<dyn Error>> {
    model.eval();
    let tape = Tape::new();
    let images = split.scenes.images.slice(s![range, .., .., ..]).to_owned().into_dyn();
    let out = tape.no_grad(|| model.forward(tape.constant(images)));
    model.train();
    Ok((*out?.value()).clone().into_dimensionality::<Ix4>()?)
}

/// `0..n` in consecutive ranges of at most `batch` (evaluation batches).
pub fn ranges(n: usize, batch: usize) -> impl Iterator<Item = Range<usize>> {
    (0..n).step_by(batch).map(move |start| start..(start + batch).min(n))
}

/// Checks the flags' combination, makes the scenes (from `data_dir`'s digits, or synthetic)
/// and says where they come from. With `--export-data` it writes them and returns `None`: the
/// run ends there.
pub fn load(args: &SceneArgs, data_dir: Option<&Path>) -> Result<Option<(Split, Split)>, Box<dyn Error>> {
    args.check(data_dir.is_some())?;
    let (train, val) = match data_dir {
        Some(dir) => digits(args, dir)?,
        None => synthetic(args)?,
    };
    println!(
        "data: {}: {} training, {} validation scenes",
        train.source,
        train.len(),
        val.len()
    );
    match &args.export_data {
        Some(dir) => {
            export(dir, &train, &val)?;
            Ok(None)
        }
        None => Ok(Some((train, val))),
    }
}

/// The U-Net the flags describe, for 1-channel scenes and `outputs` output maps (`what` they
/// are, for the log), initialised from the seed.
pub fn unet(args: &SceneArgs, outputs: usize, what: &str) -> Result<UNet<f32>, Box<dyn Error>> {
    let mut rng = StdRng::seed_from_u64(args.seed);
    let model = UNet::new(1, outputs, &args.widths, args.upsample.into(), &mut rng)?;
    println!(
        "model: U-Net {:?}, {} upsampling, {outputs} {what}, {} parameters",
        args.widths,
        args.upsample,
        model.parameter_count()
    );
    Ok(model)
}

/// The training curves a run draws (`loss.png`).
pub const LOSS_PNG: &str = "loss.png";
/// What the model predicts on the first validation scenes.
pub const PREDICTIONS_PNG: &str = "predictions.png";

/// Saves a trained `model` as `out_dir/{program}.safetensors` with the pictures `draw` makes
/// (`LOSS_PNG` and `PREDICTIONS_PNG`), all together or none (see [`publish`]), and says where.
///
/// # Errors
/// A weight that is not finite (finite losses with such weights are unlikely, but they must
/// not be saved), or a failure to draw or write.
pub fn save_run(
    out_dir: &Path,
    program: &str,
    model: &mut UNet<f32>,
    draw: impl FnOnce(&Path, &mut UNet<f32>) -> Result<(), Box<dyn Error>>,
) -> Result<(), Box<dyn Error>> {
    refuse_non_finite_weights(model, "")?;
    let weights = format!("{program}.safetensors");
    publish(out_dir, program, &[&weights, LOSS_PNG, PREDICTIONS_PNG], |dir| {
        io::save(model, dir.join(&weights))?;
        draw(dir, model)
    })?;
    let path = |name: &str| out_dir.join(name).display().to_string();
    println!(
        "pictures: {} and {}; weights: {}",
        path(LOSS_PNG),
        path(PREDICTIONS_PNG),
        path(&weights)
    );
    Ok(())
}
