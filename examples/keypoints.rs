//! Key points from heat maps: a U-Net (`adjoint::models::UNet`) whose output has one channel
//! per key-point kind (shape centres, corners) learns a Gaussian peak at every visible point;
//! its transposed convolutions carry the coarse features back up to full resolution, where a
//! peak can be placed to a fraction of a pixel.
//!
//! ```text
//! cargo run --release --example keypoints                        # synthetic scenes
//! cargo run --release --example keypoints -- --upsample resize
//! cargo run --release --example keypoints -- --export-data scenes  # for the PyTorch twin
//! cargo run --release --example keypoints -- --eval out/keypoints/keypoints.safetensors
//! ```
//!
//! Points are found as 3×3 local maxima of the predicted heat map above `--threshold`, refined
//! to sub-pixel position (`adjoint::metrics::decode_heatmap`), and scored on the validation
//! scenes after each epoch: precision, recall and F1 of the points found within 2 pixels of a
//! true one, and their mean distance to it. Writes `loss.png`, `predictions.png` (scenes with
//! the true and found points marked, and the predicted heat maps) and `keypoints.safetensors`
//! (the U-Net twin's names) to `--out-dir`, together and only after a run that succeeded.
//! `tools/twin_keypoints.py` trains the PyTorch twin on data written by `--export-data`.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Instant;

mod allocator;
mod common;
mod scenes;

use adjoint::Var;
use adjoint::data::{Keypoint, KeypointKind};
use adjoint::metrics::{KeypointScores, decode_heatmap, heatmap_targets};
use adjoint::models::UNet;
use adjoint::nn::io;
use adjoint::ops::loss::bce_with_logits_weighted;
use adjoint::plot::{LegendEntry, Mark, MarkShape, Panel, gray_to_rgb, line_chart, panel_grid, sequential_colors};
use clap::Parser;
use common::{exit_code, number};
use ndarray::{Array4, Axis, s};
use scenes::{LOSS_PNG, PREDICTIONS_PNG, SceneArgs, Split, predict, ranges, train_epoch};

/// Scenes shown in `predictions.png`.
const SHOWN: usize = 8;
/// Scenes per forward pass when evaluating.
const EVAL_BATCH: usize = 64;
/// A found point within this many pixels of a true point of its kind counts as right.
const RADIUS: f32 = 2.0;
/// Heat-map channels: one per key-point kind.
const KINDS: usize = KeypointKind::ALL.len();

/// Train a heat-map head to find the centres and corners of shapes, and draw what it found.
#[derive(Parser, Debug)]
struct Args {
    /// Passes over the training scenes (at least 1).
    #[arg(long, default_value_t = 7, allow_negative_numbers = true, value_parser = common::count(1, usize::MAX))]
    epochs: usize,
    /// Adam's learning rate (a finite number > 0).
    #[arg(long, default_value_t = 3e-3, allow_negative_numbers = true, value_parser = common::learning_rate)]
    lr: f64,
    /// Width σ of the Gaussian peak a point is trained as, in pixels (0.5 to 8).
    #[arg(long, default_value_t = 1.5, allow_negative_numbers = true, value_parser = number(0.5, 8.0))]
    sigma: f64,
    /// A heat-map peak above this value (0 to 1, after the sigmoid) is a found point.
    #[arg(long, default_value_t = 0.4, allow_negative_numbers = true, value_parser = number(0.0, 1.0))]
    threshold: f64,
    /// How much more a heat-map pixel counts in the loss at a peak: its weight is
    /// `1 + weight·target` (0 to 1000; 0 is plain BCE). The peaks cover a few pixels in a
    /// thousand, and without it the model learns to predict them too faint.
    #[arg(long, default_value_t = 10.0, allow_negative_numbers = true, value_parser = number(0.0, 1000.0))]
    weight: f64,
    #[command(flatten)]
    scenes: SceneArgs,
    /// Where loss.png, predictions.png and the weights are written (created if missing).
    #[arg(long, default_value = "out/keypoints", value_parser = common::out_dir)]
    out_dir: PathBuf,
}

/// A scene's points as `(kind, x, y)`, the form the metrics take.
fn points(scene: &[Keypoint]) -> Vec<(usize, f32, f32)> {
    scene.iter().map(|p| (p.kind as usize, p.x, p.y)).collect()
}

/// The training targets of every scene of `split`: `[n, kinds, size, size]` Gaussian peaks.
fn targets(split: &Split, sigma: f32) -> Result<Array4<f32>, Box<dyn Error>> {
    let size = split.scenes.images.dim().2;
    let mut all = Array4::zeros((split.len(), KINDS, size, size));
    for (scene, mut target) in split.scenes.keypoints.iter().zip(all.outer_iter_mut()) {
        target.assign(&heatmap_targets(&points(scene), KINDS, size, sigma)?);
    }
    Ok(all)
}

/// The training loss of heat-map logits against their `target` peaks: binary cross-entropy
/// with each pixel weighted `1 + weight·target`, so the few pixels of a peak count more.
fn loss<'t>(logits: Var<'t, f32>, target: Array4<f32>, weight: f64) -> adjoint::Result<Var<'t, f32>> {
    let weights = target.mapv(|t| 1.0 + weight as f32 * t).into_dyn();
    bce_with_logits_weighted(logits, logits.tape().constant(target.into_dyn()), &weights)
}

/// `σ(z)`: logits to heat-map values in (0, 1).
fn sigmoid(logits: &Array4<f32>) -> Array4<f32> {
    logits.mapv(|z| 1.0 / (1.0 + (-z).exp()))
}

/// Scores of a model on a split.
struct Scores {
    loss: f64,
    points: KeypointScores,
}

impl Scores {
    fn line(&self) -> String {
        let p = &self.points;
        format!(
            "precision {:.4}  recall {:.4}  F1 {:.4}  error {:.3} px",
            p.precision(),
            p.recall(),
            p.f1(),
            p.mean_error()
        )
    }
}

/// The model's loss and detection scores over `split` (whose heat-map `targets` are given).
fn evaluate(
    model: &mut UNet<f32>,
    split: &Split,
    targets: &Array4<f32>,
    threshold: f32,
    weight: f64,
) -> Result<Scores, Box<dyn Error>> {
    let mut found = KeypointScores::default();
    let mut total = 0.0;
    for range in ranges(split.len(), EVAL_BATCH) {
        let logits = predict(model, split, range.clone())?;
        let tape = adjoint::Tape::new();
        let target = targets.slice(s![range.clone(), .., .., ..]).to_owned();
        let loss = tape.no_grad(|| loss(tape.constant(logits.clone().into_dyn()), target, weight))?;
        total += f64::from(loss.value()[[]]) * range.len() as f64;
        for (heat, scene) in sigmoid(&logits).outer_iter().zip(&split.scenes.keypoints[range]) {
            found.add(&decode_heatmap(heat, threshold), &points(scene), RADIUS);
        }
    }
    Ok(Scores {
        loss: total / split.len() as f64,
        points: found,
    })
}

/// Per-epoch curves of a training run.
#[derive(Default)]
struct Curves {
    train_loss: Vec<f64>,
    val_loss: Vec<f64>,
    f1: Vec<f64>,
    steps: common::StepTimes,
}

/// Trains `model` for `--epochs` epochs, scoring it on `val` after each.
///
/// # Errors
/// A loss that is not finite: the run diverged.
fn train(args: &Args, model: &mut UNet<f32>, train: &Split, val: &Split) -> Result<Curves, Box<dyn Error>> {
    let sigma = args.sigma as f32;
    let (train_targets, val_targets) = (targets(train, sigma)?, targets(val, sigma)?);
    let mut optimizer = scenes::Optimizer::new(
        args.lr,
        args.scenes.schedule,
        args.epochs,
        train.len(),
        args.scenes.batch_size,
    );
    let mut curves = Curves::default();
    for epoch in 1..=args.epochs {
        let t0 = Instant::now();
        let seed = args.scenes.seed.wrapping_add(epoch as u64);
        let (train_loss, steps) = train_epoch(
            model,
            &mut optimizer,
            train,
            args.scenes.batch_size,
            seed,
            epoch,
            |logits, batch| loss(logits, train_targets.select(Axis(0), batch), args.weight),
        )?;
        let scores = evaluate(model, val, &val_targets, args.threshold as f32, args.weight)?;
        if !(train_loss.is_finite() && scores.loss.is_finite()) {
            return Err(format!(
                "epoch {epoch}: training loss {train_loss:.5}, validation loss {:.5}: the run diverged \
                 (try a smaller --lr than {:e}); nothing was written",
                scores.loss, args.lr
            )
            .into());
        }
        println!(
            "epoch {epoch:>2}: train loss {train_loss:.5}  val loss {:.5}  {}  step {:.0} ms  ({:.1} s)",
            scores.loss,
            scores.line(),
            steps.median(),
            t0.elapsed().as_secs_f64()
        );
        curves.train_loss.push(train_loss);
        curves.val_loss.push(scores.loss);
        curves.f1.push(scores.points.f1());
        curves.steps.extend(&steps);
    }
    Ok(curves)
}

/// Colours of the key-point kinds (centre, corner), for marks and legend.
const KIND_COLOURS: [[u8; 3]; KINDS] = [[255, 200, 0], [0, 200, 255]];

/// Draws `loss.png` and `predictions.png` into `dir`.
fn draw(dir: &Path, model: &mut UNet<f32>, val: &Split, curves: &Curves, threshold: f32) -> Result<(), Box<dyn Error>> {
    line_chart(
        &dir.join(LOSS_PNG),
        "key points: weighted binary cross-entropy per heat-map pixel",
        "epoch",
        "BCE",
        &[("train", &curves.train_loss), ("validation", &curves.val_loss)],
    )?;
    let shown = val.len().min(SHOWN);
    let heat = sigmoid(&predict(model, val, 0..shown)?);
    let mark = |kind: usize, x: f32, y: f32, shape| Mark {
        x,
        y,
        color: KIND_COLOURS[kind],
        shape,
    };
    let mut scenes = Vec::new();
    let mut maps: Vec<Vec<Panel>> = (0..KINDS).map(|_| Vec::new()).collect();
    for (i, heat) in heat.outer_iter().enumerate() {
        let truth = points(&val.scenes.keypoints[i])
            .into_iter()
            .map(|(k, x, y)| mark(k, x, y, MarkShape::Circle));
        let found = decode_heatmap(heat, threshold)
            .into_iter()
            .map(|d| mark(d.kind, d.x, d.y, MarkShape::Plus));
        scenes.push(Panel {
            pixels: gray_to_rgb(&val.scenes.images.slice(s![i, 0, .., ..]).to_owned()),
            marks: truth.chain(found).collect(),
        });
        for (k, plane) in heat.outer_iter().enumerate() {
            maps[k].push(Panel {
                pixels: sequential_colors(&plane.to_owned()),
                marks: Vec::new(),
            });
        }
    }
    let mut rows = vec![("scene", scenes)];
    let labels: Vec<String> = KeypointKind::ALL.iter().map(|k| format!("{} heat", k.name())).collect();
    rows.extend(labels.iter().map(String::as_str).zip(maps));
    let names: Vec<(String, usize, MarkShape)> = KeypointKind::ALL
        .iter()
        .flat_map(|&k| {
            [
                (format!("true {}", k.name()), k as usize, MarkShape::Circle),
                (format!("found {}", k.name()), k as usize, MarkShape::Plus),
            ]
        })
        .collect();
    let legend: Vec<LegendEntry> = names
        .iter()
        .map(|(label, k, shape)| LegendEntry {
            label,
            color: KIND_COLOURS[*k],
            shape: Some(*shape),
        })
        .collect();
    let f1 = curves.f1.last().copied().unwrap_or(f64::NAN);
    panel_grid(
        &dir.join(PREDICTIONS_PNG),
        &format!("validation scenes: F1 {f1:.3} within {RADIUS} px"),
        &rows,
        4,
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
    let Some((train_set, val)) = scenes::load(&args.scenes, None)? else {
        return Ok(());
    };
    let mut model = scenes::unet(&args.scenes, KINDS, "heat maps")?;
    let threshold = args.threshold as f32;

    if let Some(weights) = &args.scenes.eval {
        io::load(&mut model, weights)?;
        let scores = evaluate(
            &mut model,
            &val,
            &targets(&val, args.sigma as f32)?,
            threshold,
            args.weight,
        )?;
        println!("validation: loss {:.5}  {}", scores.loss, scores.line());
        return Ok(());
    }

    let started = Instant::now();
    let curves = train(&args, &mut model, &train_set, &val)?;
    scenes::save_run(&args.out_dir, "keypoints", &mut model, |dir, model| {
        draw(dir, model, &val, &curves, threshold)
    })?;
    println!(
        "done in {:.1} s: validation F1 {:.4} within {RADIUS} px, median step {:.0} ms",
        started.elapsed().as_secs_f64(),
        curves.f1.last().copied().unwrap_or(f64::NAN),
        curves.steps.median(),
    );
    Ok(())
}
