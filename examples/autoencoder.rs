//! Train the classic convolutional autoencoder (see `adjoint::train::conv_autoencoder`) on
//! built-in synthetic shapes, or on MNIST-format files with `--data-dir`.
//!
//! ```text
//! cargo run --release --example autoencoder                          # synthetic shapes
//! cargo run --release --example autoencoder -- --data-dir ../shared/data/mnist --epochs 10
//! cargo run --release --example autoencoder -- --eval out/autoencoder.safetensors
//! ```
//!
//! Writes `loss.png`, `reconstructions.png` and `autoencoder.safetensors` to `--out-dir`. The
//! weights load unchanged into the PyTorch `nn.Sequential` shown in `conv_autoencoder`'s docs.
//!
//! A run that cannot mean anything is refused before any work: every flag is checked as it is
//! parsed. The three files are written together, and only after a run that succeeded, so a run
//! that fails or diverges (a loss or a weight that is not finite) leaves the previous run's
//! files as they were.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Instant;

mod common;

use adjoint::data::Dataset;
use adjoint::nn::{Module, io};
use adjoint::optim::Adam;
use adjoint::plot::{image_grid, loss_curves};
use adjoint::train::{conv_autoencoder, mean_image_mse, reconstruct, reconstruction_mse, train_autoencoder_epoch};
use clap::Parser;
use common::{ImageArgs, count, epoch_bar, existing, exit_code, out_dir, publish, refuse_non_finite_weights};
use ndarray::{Array2, ArrayD, Axis, Ix2, s};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// The largest `--latent`: the code squeezes a 28×28 image, 784 pixels, and a longer code would
/// not squeeze it (the two layers next to the code grow by 12 KB of weights per code value).
const MAX_LATENT: usize = 28 * 28;

/// The files a run writes to `--out-dir`.
const WEIGHTS: &str = "autoencoder.safetensors";
const LOSS_PNG: &str = "loss.png";
const RECONSTRUCTIONS_PNG: &str = "reconstructions.png";

/// Train a convolutional autoencoder and draw what it learned.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    run: ImageArgs,
    /// Size of the code the encoder squeezes each image into (1 to 784, the pixels of an image).
    #[arg(long, default_value_t = 64, allow_negative_numbers = true, value_parser = count(1, MAX_LATENT))]
    latent: usize,
    /// Where loss.png, reconstructions.png and the weights are written (created if missing).
    #[arg(long, default_value = "out", value_parser = out_dir)]
    out_dir: PathBuf,
    /// Skip training: load these weights and report the validation loss.
    #[arg(long, value_parser = existing("file", Path::is_file))]
    eval: Option<PathBuf>,
}

/// Trains `model` for `--epochs` epochs with a progress bar; returns the training and
/// validation loss of each epoch.
///
/// # Errors
/// A loss that is not finite: the run diverged, and the epochs after it would only compute NaN.
fn train(
    args: &Args,
    model: &mut impl Module<f32>,
    train: &Dataset,
    val: &Dataset,
) -> Result<(Vec<f64>, Vec<f64>), Box<dyn Error>> {
    let mut optimizer = Adam::new(args.run.lr);
    let (mut train_curve, mut val_curve) = (Vec::new(), Vec::new());
    for epoch in 1..=args.run.epochs {
        let t0 = Instant::now();
        let bar = epoch_bar(epoch, train.len())?;
        let (mut seen, mut recent) = (0usize, f64::NAN);
        let train_loss = train_autoencoder_epoch(
            model,
            &mut optimizer,
            train,
            args.run.batch_size,
            args.run.seed.wrapping_add(epoch as u64),
            |loss, n| {
                seen += n;
                recent = loss;
                bar.set_position(seen as u64);
                let rate = seen as f64 / t0.elapsed().as_secs_f64();
                bar.set_message(format!("loss {recent:.5}, {rate:.0} images/s"));
            },
        )?;
        bar.finish_and_clear();
        let val_loss = reconstruction_mse(model, val, 256)?;
        if !(train_loss.is_finite() && val_loss.is_finite()) {
            return Err(format!(
                "epoch {epoch}: training loss {train_loss:.5}, validation loss {val_loss:.5}: the run diverged \
                 (try a smaller --lr than {:e}); nothing was written",
                args.run.lr
            )
            .into());
        }
        train_curve.push(train_loss);
        val_curve.push(val_loss);
        println!(
            "epoch {epoch:>3}: train {train_loss:.5}  validation {val_loss:.5}  ({:.1} s)",
            t0.elapsed().as_secs_f64()
        );
    }
    Ok((train_curve, val_curve))
}

/// Draws `loss.png` (both curves per epoch) and `reconstructions.png` (the first validation
/// images above their reconstructions) into `dir`.
fn draw(
    dir: &Path,
    model: &impl Module<f32>,
    val: &Dataset,
    train_curve: &[f64],
    val_curve: &[f64],
) -> Result<(), Box<dyn Error>> {
    loss_curves(
        &dir.join(LOSS_PNG),
        "autoencoder: mean squared error per pixel",
        &[("train", train_curve), ("validation", val_curve)],
    )?;
    let shown = val.len().min(10);
    let originals = val.images.slice(s![..shown, .., .., ..]).to_owned();
    let rebuilt = reconstruct(model, originals.clone())?;
    // `[n, 1, h, w]` to n images of `[h, w]`.
    let images = |batch: &ArrayD<f32>| -> Result<Vec<Array2<f32>>, ndarray::ShapeError> {
        batch
            .axis_iter(Axis(0))
            .map(|img| img.index_axis(Axis(0), 0).to_owned().into_dimensionality::<Ix2>())
            .collect()
    };
    image_grid(
        &dir.join(RECONSTRUCTIONS_PNG),
        &[
            ("original", images(&originals.into_dyn())?),
            ("reconstruction", images(&rebuilt)?),
        ],
        3,
    )?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    exit_code(run)
}

fn run() -> Result<(), Box<dyn Error>> {
    // Every flag is checked here, by its parser, before any work.
    let args = Args::parse();
    let (train_set, val) = args.run.splits()?;
    let mut rng = StdRng::seed_from_u64(args.run.seed);
    let mut model = conv_autoencoder::<f32>(args.latent, &mut rng)?;
    println!("model: {} parameters", model.parameter_count());
    let baseline = mean_image_mse(&train_set, &val)?;

    if let Some(weights) = &args.eval {
        // Refuses weights that are not finite.
        io::load(&mut model, weights)?;
        let mse = reconstruction_mse(&model, &val, args.run.batch_size)?;
        if !mse.is_finite() {
            return Err(format!(
                "{}: validation MSE {mse}: the weights compute no number",
                weights.display()
            )
            .into());
        }
        println!("validation MSE {mse:.5} (mean-image baseline {baseline:.5})");
        return Ok(());
    }

    let started = Instant::now();
    let (train_curve, val_curve) = train(&args, &mut model, &train_set, &val)?;
    // Finite losses with weights that are not are unlikely, but such weights must not be saved.
    refuse_non_finite_weights(&model, "")?;
    publish(
        &args.out_dir,
        "autoencoder",
        &[WEIGHTS, LOSS_PNG, RECONSTRUCTIONS_PNG],
        |dir| {
            io::save(&model, dir.join(WEIGHTS))?;
            draw(dir, &model, &val, &train_curve, &val_curve)
        },
    )?;
    let path = |name| args.out_dir.join(name).display().to_string();
    println!("pictures: {} and {}", path(LOSS_PNG), path(RECONSTRUCTIONS_PNG));
    let final_val = val_curve.last().copied().unwrap_or(f64::NAN);
    println!(
        "done in {:.1} s: validation MSE {final_val:.5}, mean-image baseline {baseline:.5}; weights in {}",
        started.elapsed().as_secs_f64(),
        path(WEIGHTS)
    );
    Ok(())
}
