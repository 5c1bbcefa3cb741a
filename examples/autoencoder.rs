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

use std::path::PathBuf;
use std::time::Instant;

use adjoint::data::{Dataset, load_mnist_dir, synthetic_shapes};
use adjoint::nn::{Module, io};
use adjoint::optim::Adam;
use adjoint::plot::{image_grid, loss_curves};
use adjoint::train::{conv_autoencoder, mean_image_mse, reconstruct, reconstruction_mse, train_autoencoder_epoch};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{Array2, Axis, s};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Train a convolutional autoencoder and draw what it learned.
#[derive(Parser, Debug)]
struct Args {
    /// Passes over the training set.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Images per optimizer step.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Seed of the initial weights, the synthetic data and the shuffling: the same seed gives the
    /// same run, bit for bit.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Directory with MNIST-format IDX files (train-* or t10k-*, raw or .gz); the first
    /// `--train-size` images train, the rest validate. Without it, synthetic shapes are used.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Training images (synthetic set size is this plus `--val-size`).
    #[arg(long, default_value_t = 9000)]
    train_size: usize,
    /// Validation images for the synthetic set (with `--data-dir`, all images after the training ones).
    #[arg(long, default_value_t = 1000)]
    val_size: usize,
    /// Size of the code the encoder squeezes each image into.
    #[arg(long, default_value_t = 64)]
    latent: usize,
    /// Where loss.png, reconstructions.png and the weights are written.
    #[arg(long, default_value = "out")]
    out_dir: PathBuf,
    /// Skip training: load these weights and report the validation loss.
    #[arg(long)]
    eval: Option<PathBuf>,
}

fn load_data(args: &Args) -> Result<(Dataset, Dataset), Box<dyn std::error::Error>> {
    let all = match &args.data_dir {
        Some(dir) => load_mnist_dir(dir)?,
        None => synthetic_shapes(args.train_size + args.val_size, 28, args.seed)?,
    };
    Ok(all.split_at(args.train_size.min(all.len()))?)
}

/// `loss.png` (both curves per epoch) and `reconstructions.png` (the first validation images
/// above their reconstructions).
fn draw(
    args: &Args,
    model: &impl Module<f32>,
    val: &Dataset,
    train_curve: &[f64],
    val_curve: &[f64],
) -> Result<(), Box<dyn std::error::Error>> {
    let loss_png = args.out_dir.join("loss.png");
    loss_curves(
        &loss_png,
        "autoencoder: mean squared error per pixel",
        &[("train", train_curve), ("validation", val_curve)],
    )?;
    let shown = val.len().min(10);
    let originals = val.images.slice(s![..shown, .., .., ..]).to_owned();
    let rebuilt = reconstruct(model, originals.clone())?;
    let images = |batch: &ndarray::ArrayD<f32>| -> Vec<Array2<f32>> {
        batch
            .axis_iter(Axis(0))
            .map(|img| {
                img.index_axis(Axis(0), 0)
                    .to_owned()
                    .into_dimensionality()
                    .expect("2-D")
            })
            .collect()
    };
    let recon_png = args.out_dir.join("reconstructions.png");
    image_grid(
        &recon_png,
        &[
            ("original", images(&originals.into_dyn())),
            ("reconstruction", images(&rebuilt)),
        ],
        3,
    )?;
    println!("pictures: {} and {}", loss_png.display(), recon_png.display());
    Ok(())
}

/// Prints errors with their message (not `Debug`) and exits non-zero.
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let (train, val) = load_data(&args)?;
    let source = args
        .data_dir
        .as_ref()
        .map_or("synthetic shapes".into(), |d| d.display().to_string());
    println!(
        "data: {source}: {} training, {} validation images",
        train.len(),
        val.len()
    );
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut model = conv_autoencoder::<f32>(args.latent, &mut rng)?;
    println!("model: {} parameters", model.parameter_count());
    let baseline = mean_image_mse(&train, &val)?;

    if let Some(weights) = &args.eval {
        io::load(&mut model, weights)?;
        let mse = reconstruction_mse(&model, &val, args.batch_size)?;
        println!("validation MSE {mse:.5} (mean-image baseline {baseline:.5})");
        return Ok(());
    }

    std::fs::create_dir_all(&args.out_dir)?;
    let mut optimizer = Adam::new(args.lr);
    let (mut train_curve, mut val_curve) = (Vec::new(), Vec::new());
    let style = ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg}")?.progress_chars("=> ");
    let started = Instant::now();
    for epoch in 1..=args.epochs {
        let t0 = Instant::now();
        let bar = ProgressBar::new(train.len() as u64)
            .with_style(style.clone())
            .with_prefix(epoch.to_string());
        let (mut seen, mut recent) = (0usize, f64::NAN);
        let train_loss = train_autoencoder_epoch(
            &mut model,
            &mut optimizer,
            &train,
            args.batch_size,
            args.seed.wrapping_add(epoch as u64),
            |loss, n| {
                seen += n;
                recent = loss;
                bar.set_position(seen as u64);
                let rate = seen as f64 / t0.elapsed().as_secs_f64();
                bar.set_message(format!("loss {recent:.5}, {rate:.0} images/s"));
            },
        )?;
        bar.finish_and_clear();
        let val_loss = reconstruction_mse(&model, &val, 256)?;
        train_curve.push(train_loss);
        val_curve.push(val_loss);
        println!(
            "epoch {epoch:>3}: train {train_loss:.5}  validation {val_loss:.5}  ({:.1} s)",
            t0.elapsed().as_secs_f64()
        );
    }
    let weights = args.out_dir.join("autoencoder.safetensors");
    io::save(&model, &weights)?;
    draw(&args, &model, &val, &train_curve, &val_curve)?;
    let final_val = val_curve.last().copied().unwrap_or(f64::NAN);
    println!(
        "done in {:.1} s: validation MSE {final_val:.5}, mean-image baseline {baseline:.5}; weights in {}",
        started.elapsed().as_secs_f64(),
        weights.display()
    );
    Ok(())
}
