//! Train a convolutional variational autoencoder (`adjoint::models::ConvVae`) on built-in
//! synthetic shapes, or on MNIST-format files with `--data-dir`, and draw what it learned.
//!
//! ```text
//! cargo run --release --example vae                                  # synthetic shapes
//! cargo run --release --example vae -- --data-dir ../shared/data/mnist --epochs 10
//! cargo run --release --example vae -- --latent 2                    # and the 2-D manifold
//! cargo run --release --example vae -- --eval out/vae/vae.safetensors
//! ```
//!
//! Each epoch prints the validation negative ELBO in nats per image (one sample of the code per
//! image, with the same noise every epoch) with its reconstruction and KL parts, and the median
//! training step. Writes to `--out-dir`: `vae.safetensors` (the names of the PyTorch twin,
//! `tools/twin_vae.py`), `loss.png`, `reconstructions.png`, `samples.png` (decoded codes drawn
//! from the prior N(0, 1)), `interpolation.png` (decoded codes on the line between two
//! validation images' means) and, with `--latent 2`, `manifold.png` (the decoder over a grid of
//! codes).
//!
//! A run that cannot mean anything is refused before any work: every flag is checked as it is
//! parsed. The files are written together, and only after a run that succeeded, so a run that
//! fails or diverges leaves the previous run's files as they were. The same seed gives the same
//! files, byte for byte.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Instant;

mod common;

use adjoint::Tape;
use adjoint::data::Dataset;
use adjoint::data::npy::write_npy;
use adjoint::models::{ConvVae, VAE_IMAGE_SIZE};
use adjoint::nn::{Module, io, normal};
use adjoint::optim::{Adam, Optimizer};
use adjoint::plot::{image_grid, line_chart};
use clap::Parser;
use common::{
    ImageArgs, StepTimes, Upsample, count, epoch_bar, existing, exit_code, out_dir, publish, refuse_non_finite_weights,
    shuffled,
};
use ndarray::{Array2, ArrayD, Axis, Ix2, IxDyn};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// The largest `--latent`: a code as long as the image has pixels squeezes nothing.
const MAX_LATENT: usize = VAE_IMAGE_SIZE * VAE_IMAGE_SIZE;
/// Images per batch when scoring (no gradients are kept, so larger than a training batch).
const EVAL_BATCH: usize = 256;
/// Mixed into `--seed` for the training noise and the pictures' codes, so they are not the
/// stream that made the weights or the data.
const NOISE_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// The files a run writes to `--out-dir`.
const WEIGHTS: &str = "vae.safetensors";
const LOSS_PNG: &str = "loss.png";
const RECONSTRUCTIONS_PNG: &str = "reconstructions.png";
const SAMPLES_PNG: &str = "samples.png";
const INTERPOLATION_PNG: &str = "interpolation.png";
const MANIFOLD_PNG: &str = "manifold.png";

/// Train a convolutional VAE and draw what it learned.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    run: ImageArgs,
    /// Size of the code (1 to 784); 2 also draws the decoder's 2-D manifold.
    #[arg(long, default_value_t = 16, allow_negative_numbers = true, value_parser = count(1, MAX_LATENT))]
    latent: usize,
    /// How the decoder doubles its maps' size: a 4×4 stride-2 transposed conv, or a nearest
    /// resize and a 3×3 conv.
    #[arg(long, value_enum, default_value_t = Upsample::Transposed)]
    upsample: Upsample,
    /// Where the weights and pictures are written (created if missing).
    #[arg(long, default_value = "out/vae", value_parser = out_dir)]
    out_dir: PathBuf,
    /// Write the training and validation images as DIR/train/images.npy and DIR/val/images.npy
    /// (for the PyTorch twin, `tools/twin_vae.py --data DIR`) and stop.
    #[arg(long, value_name = "DIR", value_parser = out_dir)]
    export_data: Option<PathBuf>,
    /// Skip training: load these weights (of a model with these --latent and --upsample) and
    /// report the validation negative ELBO.
    #[arg(long, value_parser = existing("file", Path::is_file))]
    eval: Option<PathBuf>,
}

/// The negative ELBO of a set and its two parts, in nats per image.
#[derive(Clone, Copy, Debug)]
struct Elbo {
    total: f64,
    reconstruction: f64,
    kl: f64,
}

impl std::fmt::Display for Elbo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "-ELBO {:.2} nats (rec {:.2}, KL {:.2})",
            self.total, self.reconstruction, self.kl
        )
    }
}

/// The images `[n, 1, 28, 28]` as a `[n, ..]` array on no tape.
fn batch(data: &Dataset, indices: &[usize]) -> Result<ArrayD<f32>, Box<dyn Error>> {
    Ok(data.select(indices)?.into_dyn())
}

/// The validation negative ELBO of `vae` over `data`, one code sample per image with noise from
/// `seed` (the same noise every call, so epochs compare), without recording gradients.
fn score(vae: &ConvVae<f32>, data: &Dataset, seed: u64) -> Result<Elbo, Box<dyn Error>> {
    let mut noise = StdRng::seed_from_u64(seed ^ NOISE_SEED);
    let mut sums = [0.0; 3];
    let all: Vec<usize> = (0..data.len()).collect();
    for indices in all.chunks(EVAL_BATCH) {
        let x = batch(data, indices)?;
        let tape = Tape::new();
        let parts = tape.no_grad(|| -> adjoint::Result<[f64; 3]> {
            let loss = vae.loss(tape.constant(x), &mut noise)?;
            Ok([loss.total, loss.reconstruction, loss.kl].map(|v| f64::from(v.value()[[]])))
        })?;
        for (sum, part) in sums.iter_mut().zip(parts) {
            *sum += part * indices.len() as f64;
        }
    }
    let n = data.len() as f64;
    Ok(Elbo {
        total: sums[0] / n,
        reconstruction: sums[1] / n,
        kl: sums[2] / n,
    })
}

/// Trains `vae` for `--epochs` epochs with a progress bar, printing the validation score and the
/// median step after each; returns the training and validation negative ELBO of each epoch.
///
/// # Errors
/// A loss that is not finite: the run diverged.
fn train(
    args: &Args,
    vae: &mut ConvVae<f32>,
    train: &Dataset,
    val: &Dataset,
) -> Result<(Vec<f64>, Vec<f64>), Box<dyn Error>> {
    let mut optimizer = Adam::new(args.run.lr);
    let mut noise = StdRng::seed_from_u64(args.run.seed ^ NOISE_SEED.rotate_left(1));
    let (mut train_curve, mut val_curve) = (Vec::new(), Vec::new());
    for epoch in 1..=args.run.epochs {
        let t0 = Instant::now();
        let bar = epoch_bar(epoch, train.len())?;
        let mut steps = StepTimes::default();
        let (mut seen, mut total) = (0usize, 0.0);
        for indices in shuffled(train.len(), args.run.seed.wrapping_add(epoch as u64)).chunks(args.run.batch_size) {
            let x = batch(train, indices)?;
            let value = steps.time(|| -> adjoint::Result<f64> {
                let (grads, value) = {
                    let tape = Tape::new();
                    let loss = vae.loss(tape.constant(x), &mut noise)?;
                    (tape.backward(loss.total)?, f64::from(loss.total.value()[[]]))
                };
                // The tape is gone, so Adam updates the weights in place without copies.
                optimizer.step(vae, &grads);
                Ok(value)
            })?;
            seen += indices.len();
            total += value * indices.len() as f64;
            bar.set_position(seen as u64);
            bar.set_message(format!("-ELBO {value:.1}"));
        }
        bar.finish_and_clear();
        let train_loss = total / seen as f64;
        let val_elbo = score(vae, val, args.run.seed)?;
        if !(train_loss.is_finite() && val_elbo.total.is_finite()) {
            return Err(format!(
                "epoch {epoch}: training -ELBO {train_loss:.2}, validation {val_elbo}: the run diverged \
                 (try a smaller --lr than {:e}); nothing was written",
                args.run.lr
            )
            .into());
        }
        train_curve.push(train_loss);
        val_curve.push(val_elbo.total);
        println!(
            "epoch {epoch:>3}: train -ELBO {train_loss:.2}  validation {val_elbo}  step {:.1} ms  ({:.1} s)",
            steps.median(),
            t0.elapsed().as_secs_f64()
        );
    }
    Ok((train_curve, val_curve))
}

/// `[n, 1, h, w]` logits to n images of `[h, w]` in [0, 1] (the Bernoulli means).
fn images(logits: &ArrayD<f32>) -> Result<Vec<Array2<f32>>, ndarray::ShapeError> {
    logits
        .axis_iter(Axis(0))
        .map(|img| {
            img.index_axis(Axis(0), 0)
                .mapv(|v| 1.0 / (1.0 + (-v).exp()))
                .into_dimensionality::<Ix2>()
        })
        .collect()
}

/// The decoder's images for codes `z: [n, latent]`.
fn decode(vae: &ConvVae<f32>, z: ArrayD<f32>) -> Result<Vec<Array2<f32>>, Box<dyn Error>> {
    let tape = Tape::new();
    let logits = tape.no_grad(|| vae.decode(tape.constant(z)))?;
    Ok(images(&logits.value())?)
}

/// The codes' means `μ: [n, latent]` of `x: [n, 1, 28, 28]`.
fn means(vae: &ConvVae<f32>, x: ArrayD<f32>) -> Result<ArrayD<f32>, Box<dyn Error>> {
    let tape = Tape::new();
    let mu = tape.no_grad(|| vae.encode(tape.constant(x)))?.0;
    Ok((*mu.value()).clone())
}

/// The first validation image and the first one after it of another label (of another kind of
/// shape, another digit); the second image when the set has no labels or one label only.
fn two_kinds(val: &Dataset) -> Option<[usize; 2]> {
    if val.len() < 2 {
        return None;
    }
    let other = match &val.labels {
        Some(labels) => labels.iter().position(|&l| l != labels[0]).unwrap_or(1),
        None => 1,
    };
    Some([0, other])
}

/// Draws the pictures into `dir`: the loss curves, reconstructions, prior samples, the
/// interpolation and, for a 2-D code, the manifold.
fn draw(
    dir: &Path,
    args: &Args,
    vae: &ConvVae<f32>,
    val: &Dataset,
    train_curve: &[f64],
    val_curve: &[f64],
) -> Result<(), Box<dyn Error>> {
    line_chart(
        &dir.join(LOSS_PNG),
        "VAE: negative ELBO per epoch",
        "epoch",
        "-ELBO, nats per image",
        &[("train", train_curve), ("validation", val_curve)],
    )?;
    let shown: Vec<usize> = (0..val.len().min(10)).collect();
    let originals = batch(val, &shown)?;
    let tape = Tape::new();
    let rebuilt = tape.no_grad(|| vae.forward(tape.constant(originals.clone())))?;
    image_grid(
        &dir.join(RECONSTRUCTIONS_PNG),
        &[
            ("original", images(&originals.mapv(logit))?),
            ("reconstruction", images(&rebuilt.value())?),
        ],
        3,
    )?;

    let mut noise = StdRng::seed_from_u64(args.run.seed ^ NOISE_SEED.rotate_left(2));
    let rows: Vec<(&str, Vec<Array2<f32>>)> = (0..4)
        .map(|_| -> Result<_, Box<dyn Error>> { Ok(("", decode(vae, normal(&[10, args.latent], 1.0, &mut noise)?)?)) })
        .collect::<Result<_, _>>()?;
    image_grid(&dir.join(SAMPLES_PNG), &rows, 3)?;

    // The line from one validation image's mean code to another's, ends included.
    let [a, b] = two_kinds(val).unwrap_or([0, 0]);
    let ends = batch(val, &[a, b])?;
    let mu = means(vae, ends.clone())?;
    const STEPS: usize = 10;
    let line = ArrayD::from_shape_fn(IxDyn(&[STEPS, args.latent]), |i| {
        let t = i[0] as f32 / (STEPS - 1) as f32;
        (1.0 - t) * mu[[0, i[1]]] + t * mu[[1, i[1]]]
    });
    let ends = images(&ends.mapv(logit))?;
    image_grid(
        &dir.join(INTERPOLATION_PNG),
        &[
            ("decoded", decode(vae, line)?),
            ("ends", vec![ends[0].clone(), ends[1].clone()]),
        ],
        3,
    )?;

    if args.latent == 2 {
        // Codes on a 15×15 grid over [−2, 2]², z₂ falling down the rows.
        const SIDE: usize = 15;
        let at = |k: usize| -2.0 + 4.0 * k as f32 / (SIDE - 1) as f32;
        let rows: Vec<(&str, Vec<Array2<f32>>)> = (0..SIDE)
            .map(|r| -> Result<_, Box<dyn Error>> {
                let z = ArrayD::from_shape_fn(
                    IxDyn(&[SIDE, 2]),
                    |i| if i[1] == 0 { at(i[0]) } else { at(SIDE - 1 - r) },
                );
                Ok(("", decode(vae, z)?))
            })
            .collect::<Result<_, _>>()?;
        image_grid(&dir.join(MANIFOLD_PNG), &rows, 2)?;
    }
    Ok(())
}

/// The logit of a pixel, so that [`images`] draws an original image as it is (clamped off the
/// infinities at 0 and 1).
fn logit(p: f32) -> f32 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}

/// `--export-data`: both splits as `.npy` files, each written atomically.
fn export(dir: &Path, train: &Dataset, val: &Dataset) -> Result<(), Box<dyn Error>> {
    for (name, data) in [("train", train), ("val", val)] {
        let split = dir.join(name);
        std::fs::create_dir_all(&split).map_err(common::failed(&split))?;
        let images = data.images.as_standard_layout();
        let values = images.as_slice().ok_or("images are not contiguous")?;
        write_npy(&split.join("images.npy"), images.shape(), values)?;
    }
    println!("wrote {0}/train/images.npy and {0}/val/images.npy", dir.display());
    Ok(())
}

fn main() -> std::process::ExitCode {
    exit_code(run)
}

fn run() -> Result<(), Box<dyn Error>> {
    // Every flag is checked here, by its parser, before any work.
    let args = Args::parse();
    let (train_set, val) = args.run.splits()?;
    if let Some(dir) = &args.export_data {
        return export(dir, &train_set, &val);
    }
    let mut rng = StdRng::seed_from_u64(args.run.seed);
    let mut vae = ConvVae::<f32>::new(args.latent, args.upsample.into(), &mut rng)?;
    println!(
        "model: convolutional VAE, latent {}, {} decoder, {} parameters",
        args.latent,
        args.upsample,
        vae.parameter_count()
    );

    if let Some(weights) = &args.eval {
        // Refuses weights that are not finite, or not of this --latent and --upsample.
        io::load(&mut vae, weights)?;
        let elbo = score(&vae, &val, args.run.seed)?;
        if !elbo.total.is_finite() {
            return Err(format!(
                "{}: validation {elbo}: the weights compute no number",
                weights.display()
            )
            .into());
        }
        println!("validation {elbo}");
        return Ok(());
    }

    let started = Instant::now();
    let (train_curve, val_curve) = train(&args, &mut vae, &train_set, &val)?;
    // Finite losses with weights that are not are unlikely, but such weights must not be saved.
    refuse_non_finite_weights(&vae, "")?;
    let mut names = vec![WEIGHTS, LOSS_PNG, RECONSTRUCTIONS_PNG, SAMPLES_PNG, INTERPOLATION_PNG];
    if args.latent == 2 {
        names.push(MANIFOLD_PNG);
    }
    publish(&args.out_dir, "vae", &names, |dir| {
        io::save(&vae, dir.join(WEIGHTS))?;
        draw(dir, &args, &vae, &val, &train_curve, &val_curve)
    })?;
    let pictures: Vec<String> = names[1..]
        .iter()
        .map(|name| args.out_dir.join(name).display().to_string())
        .collect();
    println!("pictures: {}", pictures.join(", "));
    println!(
        "done in {:.1} s: validation -ELBO {:.2} nats per image; weights in {}",
        started.elapsed().as_secs_f64(),
        val_curve.last().copied().unwrap_or(f64::NAN),
        args.out_dir.join(WEIGHTS).display()
    );
    Ok(())
}
