//! Semantic segmentation with a U-Net (`adjoint::models::UNet`): every pixel of a scene gets a
//! class. Its decoder doubles the maps' size with transposed convolutions (or, with
//! `--upsample resize`, with a nearest resize and a 3×3 conv): the two ways of upsampling the
//! project teaches, compared on one task.
//!
//! ```text
//! cargo run --release --example segmentation                       # synthetic scenes, 5 classes
//! cargo run --release --example segmentation -- --upsample resize
//! cargo run --release --example segmentation -- --data-dir ../shared/data/mnist   # digits on a canvas
//! cargo run --release --example segmentation -- --export-data scenes             # for the PyTorch twin
//! cargo run --release --example segmentation -- --eval out/segmentation/segmentation.safetensors
//! ```
//!
//! Reports pixel accuracy, per-class IoU and mean IoU on the validation scenes after each
//! epoch, and writes `loss.png`, `predictions.png` (images, true and predicted masks coloured
//! by class, with a legend) and `segmentation.safetensors` (the U-Net twin's `state_dict`
//! names, see `UNet`'s docs) to `--out-dir`, together and only after a run that succeeded.
//! `tools/twin_segmentation.py` trains the PyTorch twin on data written by `--export-data`.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Instant;

mod allocator;
mod common;
mod scenes;

use adjoint::Tape;
use adjoint::cross_entropy;
use adjoint::data::SceneClass;
use adjoint::metrics::{Confusion, argmax_classes};
use adjoint::models::UNet;
use adjoint::nn::io;
use adjoint::ops::loss::{CrossEntropyOptions, Reduction};
use adjoint::plot::{LegendEntry, Panel, class_colors, gray_to_rgb, line_chart, palette, panel_grid};
use clap::Parser;
use common::{StepTimes, exit_code};
use ndarray::{Array2, Array3, Axis, Zip, s};
use scenes::{LOSS_PNG, PREDICTIONS_PNG, SceneArgs, Split, predict, ranges, train_epoch};

/// Scenes shown in `predictions.png`.
const SHOWN: usize = 8;
/// Scenes per forward pass when evaluating (no gradients are kept, so this only bounds memory).
const EVAL_BATCH: usize = 64;

/// Train a U-Net to label every pixel of a scene, and draw what it learned.
#[derive(Parser, Debug)]
struct Args {
    /// Passes over the training scenes (at least 1) [default: 9, or 7 with --data-dir]. On the
    /// synthetic scenes 9 take about 1¾ minutes on 2 cores and end at mean IoU 0.906 on seed
    /// 0; on the digits' 6,000 scenes 7 take under 5 minutes.
    #[arg(long, allow_negative_numbers = true, value_parser = common::count(1, usize::MAX))]
    epochs: Option<usize>,
    /// Adam's learning rate (a finite number > 0).
    #[arg(long, default_value_t = 3e-3, allow_negative_numbers = true, value_parser = common::learning_rate)]
    lr: f64,
    #[command(flatten)]
    scenes: SceneArgs,
    /// Directory with MNIST-format IDX files (train-* or t10k-*, raw or .gz): scenes of 2-3
    /// digits on a canvas, a pixel's class being its digit + 1 where the ink is bright. The
    /// first 90% of the digits make the training scenes, the rest the validation scenes.
    /// Without it, synthetic scenes of discs, rings, rectangles and triangles are used.
    #[arg(long, value_parser = common::existing("directory", Path::is_dir))]
    data_dir: Option<PathBuf>,
    /// Where loss.png, predictions.png and the weights are written (created if missing).
    #[arg(long, default_value = "out/segmentation", value_parser = common::out_dir)]
    out_dir: PathBuf,
}

impl Args {
    /// `--epochs`, or its default for the data in use.
    fn epochs(&self) -> usize {
        self.epochs.unwrap_or(if self.data_dir.is_some() { 7 } else { 9 })
    }
}

/// The class names of the data in use, background first.
fn class_names(args: &Args) -> Vec<String> {
    if args.data_dir.is_some() {
        std::iter::once("background".to_string())
            .chain((0..10).map(|d| format!("digit {d}")))
            .collect()
    } else {
        SceneClass::ALL.iter().map(|c| c.name().to_string()).collect()
    }
}

/// Per-class and overall scores of a model on a split.
struct Scores {
    loss: f64,
    confusion: Confusion,
}

impl Scores {
    /// `"pixel acc 0.9512  mIoU 0.8123  IoU [background 0.98, disc 0.90, ...]"`.
    fn line(&self, names: &[String]) -> String {
        let per_class: Vec<String> = self
            .confusion
            .iou()
            .iter()
            .zip(names)
            .map(|(iou, name)| match iou {
                Some(v) => format!("{name} {v:.3}"),
                None => format!("{name} -"),
            })
            .collect();
        format!(
            "pixel acc {:.4}  mIoU {:.4}  IoU [{}]",
            self.confusion.pixel_accuracy(),
            self.confusion.mean_iou(),
            per_class.join(", ")
        )
    }
}

/// The model's mean per-pixel cross-entropy and confusion counts over `split`, in eval mode.
fn evaluate(model: &mut UNet<f32>, split: &Split, classes: usize) -> Result<Scores, Box<dyn Error>> {
    let mut confusion = Confusion::new(classes)?;
    let (mut total, mut pixels) = (0.0, 0usize);
    let sum = CrossEntropyOptions::new().reduction(Reduction::Sum);
    for range in ranges(split.len(), EVAL_BATCH) {
        let masks = split.scenes.masks.slice(s![range.clone(), .., ..]);
        let logits = predict(model, split, range)?;
        let tape = Tape::new();
        let loss =
            tape.no_grad(|| cross_entropy(tape.constant(logits.clone().into_dyn()), &masks.mapv(i64::from), &sum))?;
        total += f64::from(loss.value()[[]]);
        pixels += masks.len();
        let predicted = argmax_classes(logits.view())?;
        confusion.add(
            masks.as_standard_layout().as_slice().unwrap_or(&[]),
            predicted.as_slice().unwrap_or(&[]),
        )?;
    }
    Ok(Scores {
        loss: total / pixels as f64,
        confusion,
    })
}

/// Per-epoch curves of a training run.
#[derive(Default)]
struct Curves {
    train_loss: Vec<f64>,
    val_loss: Vec<f64>,
    mean_iou: Vec<f64>,
    steps: StepTimes,
}

/// Trains `model` for `--epochs` epochs with a progress bar, scoring it on `val` after each.
///
/// # Errors
/// A loss that is not finite: the run diverged, and the epochs after it would only compute NaN.
fn train(
    args: &Args,
    model: &mut UNet<f32>,
    train: &Split,
    val: &Split,
    names: &[String],
) -> Result<Curves, Box<dyn Error>> {
    let mut optimizer = scenes::Optimizer::new(
        args.lr,
        args.scenes.schedule,
        args.epochs(),
        train.len(),
        args.scenes.batch_size,
    );
    let mut curves = Curves::default();
    let mean = CrossEntropyOptions::new();
    for epoch in 1..=args.epochs() {
        let t0 = Instant::now();
        let seed = args.scenes.seed.wrapping_add(epoch as u64);
        let (train_loss, steps) = train_epoch(
            model,
            &mut optimizer,
            train,
            args.scenes.batch_size,
            seed,
            epoch,
            |logits, batch| {
                cross_entropy(
                    logits,
                    &train.scenes.masks.select(Axis(0), batch).mapv(i64::from),
                    &mean,
                )
            },
        )?;
        let scores = evaluate(model, val, names.len())?;
        if !(train_loss.is_finite() && scores.loss.is_finite()) {
            return Err(format!(
                "epoch {epoch}: training loss {train_loss:.4}, validation loss {:.4}: the run diverged \
                 (try a smaller --lr than {:e}); nothing was written",
                scores.loss, args.lr
            )
            .into());
        }
        println!(
            "epoch {epoch:>2}: train loss {train_loss:.4}  val loss {:.4}  {}  step {:.0} ms  ({:.1} s)",
            scores.loss,
            scores.line(names),
            steps.median(),
            t0.elapsed().as_secs_f64()
        );
        curves.train_loss.push(train_loss);
        curves.val_loss.push(scores.loss);
        curves.mean_iou.push(scores.confusion.mean_iou());
        curves.steps.extend(&steps);
    }
    Ok(curves)
}

/// Draws `loss.png` and `predictions.png` into `dir`.
fn draw(
    dir: &Path,
    model: &mut UNet<f32>,
    val: &Split,
    curves: &Curves,
    names: &[String],
) -> Result<(), Box<dyn Error>> {
    line_chart(
        &dir.join(LOSS_PNG),
        "segmentation: per-pixel cross-entropy",
        "epoch",
        "cross-entropy",
        &[("train", &curves.train_loss), ("validation", &curves.val_loss)],
    )?;
    let shown = val.len().min(SHOWN);
    let predicted = argmax_classes(predict(model, val, 0..shown)?.view())?;
    let colours = palette(names.len());
    let mask_panel = |mask: Array2<u8>| -> Result<Panel, Box<dyn Error>> {
        Ok(Panel {
            pixels: class_colors(&mask, &colours)?,
            marks: Vec::new(),
        })
    };
    let (mut images, mut truths, mut predictions, mut errors) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..shown {
        let image = val.scenes.images.slice(s![i, 0, .., ..]).to_owned();
        let truth = val.scenes.masks.index_axis(Axis(0), i).to_owned();
        let guess = predicted.index_axis(Axis(0), i).to_owned();
        let image: Array3<f32> = gray_to_rgb(&image);
        // The image, with each wrongly labelled pixel painted red.
        let mut wrong = image.clone();
        Zip::indexed(&truth).and(&guess).for_each(|(y, x), &t, &p| {
            if t != p {
                wrong.slice_mut(s![y, x, ..]).assign(&ndarray::arr1(&[1.0, 0.1, 0.1]));
            }
        });
        images.push(Panel {
            pixels: image,
            marks: Vec::new(),
        });
        truths.push(mask_panel(truth)?);
        predictions.push(mask_panel(guess)?);
        errors.push(Panel {
            pixels: wrong,
            marks: Vec::new(),
        });
    }
    let legend: Vec<LegendEntry> = names
        .iter()
        .zip(&colours)
        .map(|(name, &color)| LegendEntry {
            label: name,
            color,
            shape: None,
        })
        .collect();
    let last_iou = curves.mean_iou.last().copied().unwrap_or(f64::NAN);
    panel_grid(
        &dir.join(PREDICTIONS_PNG),
        &format!("validation scenes: mean IoU {last_iou:.3}"),
        &[
            ("image", images),
            ("true mask", truths),
            ("predicted", predictions),
            ("wrong pixels", errors),
        ],
        3,
        &legend,
    )?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    exit_code(run)
}

fn run() -> Result<(), Box<dyn Error>> {
    // Every flag is checked here, by its parser, before any work; then their combination.
    let args = Args::parse();
    let Some((train_set, val)) = scenes::load(&args.scenes, args.data_dir.as_deref())? else {
        return Ok(());
    };
    let names = class_names(&args);
    let mut model = scenes::unet(&args.scenes, names.len(), "classes")?;

    if let Some(weights) = &args.scenes.eval {
        // Refuses weights that are not finite, or of another model.
        io::load(&mut model, weights)?;
        let scores = evaluate(&mut model, &val, names.len())?;
        println!("validation: loss {:.4}  {}", scores.loss, scores.line(&names));
        return Ok(());
    }

    let started = Instant::now();
    let curves = train(&args, &mut model, &train_set, &val, &names)?;
    scenes::save_run(&args.out_dir, "segmentation", &mut model, |dir, model| {
        draw(dir, model, &val, &curves, &names)
    })?;
    println!(
        "done in {:.1} s: validation mean IoU {:.4}, median step {:.0} ms",
        started.elapsed().as_secs_f64(),
        curves.mean_iou.last().copied().unwrap_or(f64::NAN),
        curves.steps.median(),
    );
    Ok(())
}
