//! Train a DCGAN (`adjoint::models::dcgan_generator` and `dcgan_discriminator`) on built-in
//! synthetic shapes (one an image, `adjoint::data::single_shapes`), or on MNIST-format files
//! with `--data-dir`, and measure its samples.
//!
//! ```text
//! cargo run --release --example gan                                  # synthetic shapes
//! cargo run --release --example gan -- --data-dir ../shared/data/mnist --epochs 10
//! cargo run --release --example gan -- --upsample resize             # Distill's resize-conv
//! cargo run --release --example gan -- --compare-upsampling          # both, one picture
//! ```
//!
//! First a small classifier (`adjoint::models::digit_classifier`) learns the data's labels;
//! its validation accuracy is printed, and it then judges the generator's samples. The GAN
//! trains with BCE on logits, Adam (`--lr`, betas 0.5 and 0.999): per batch a discriminator
//! step on the real batch and a batch of samples (real = 1, fake = 0), then a generator step on
//! fresh samples from the same noise (the non-saturating loss: BCE against "real"), batch norm
//! in training mode. After each epoch, with the generator in eval mode, it prints both losses,
//! how the classifier sees `--samples` samples from fixed noise (mean top-class confidence and
//! the entropy of the predicted classes: `ln classes` when all are equally present, lower under
//! mode collapse; `adjoint::metrics::sample_scores`), their checkerboard score (share of energy
//! at the 2×2 period, `adjoint::metrics::checkerboard_score`) and the median step time.
//!
//! Writes to `--out-dir`, together and only after a run that succeeded: `samples.png` (64
//! samples from fixed noise), `samples.gif` (the same noise after every epoch), `loss.png`,
//! `checkerboard.png` (samples and their power spectra, untrained and trained, headed by the
//! checkerboard scores; with `--compare-upsampling` a column for each kind), and the weights
//! with the PyTorch twin's names (`tools/twin_gan.py`): `generator.safetensors`,
//! `discriminator.safetensors`, `classifier.safetensors`.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Instant;

mod allocator;
mod common;

use adjoint::data::Dataset;
use adjoint::metrics::{SampleScores, checkerboard_score, power_spectrum, sample_scores};
use adjoint::models::{MAX_LATENT, dcgan_discriminator, dcgan_generator, digit_classifier};
use adjoint::nn::{Module, Sequential, io, normal};
use adjoint::optim::{Adam, Optimizer};
use adjoint::plot::{Panel, gray_to_rgb, image_grid, line_chart, panel_grid_with_columns};
use adjoint::{Tape, bce_with_logits, cross_entropy};
use clap::Parser;
use common::{
    DataArgs, StepTimes, Synthetic, Upsample, count, epoch_bar, exit_code, learning_rate, out_dir, publish,
    refuse_non_finite_weights, shuffled,
};
use ndarray::{Array1, Array2, Array3, ArrayD, Axis, Ix2, Ix4, s};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// The largest `--batch-size`: a GAN step holds the activations, unrolled inputs and gradients
/// of three passes of its batch (D on real and fake, G then D); estimated from the layers'
/// sizes at under 1 MB an image, so at most about 2 GB.
const MAX_BATCH_SIZE: usize = 2048;
/// The most samples `--samples` may score (the generator makes them in one batch).
const MAX_SAMPLES: usize = 10_000;
/// Side of the sample grid: 8 × 8 samples from fixed noise.
const GRID: usize = 8;

/// The files a run writes to `--out-dir`.
const GENERATOR: &str = "generator.safetensors";
const DISCRIMINATOR: &str = "discriminator.safetensors";
const CLASSIFIER: &str = "classifier.safetensors";
const SAMPLES_PNG: &str = "samples.png";
const SAMPLES_GIF: &str = "samples.gif";
const LOSS_PNG: &str = "loss.png";
const CHECKERBOARD_PNG: &str = "checkerboard.png";

/// Train a DCGAN, score its samples with a classifier, and measure its checkerboards.
#[derive(Parser, Debug)]
struct Args {
    /// Passes of the GAN over the training set (at least 1; the default run, 6 of them and the
    /// classifier's 5, took 73 s on 2 idle cores).
    #[arg(long, default_value_t = 6, allow_negative_numbers = true, value_parser = count(1, usize::MAX))]
    epochs: usize,
    /// Passes of the classifier over the training set, before the GAN trains (at least 1; 5,
    /// as the PyTorch twin: on the synthetic shapes it then tells about 86% of them apart, 71%
    /// after 2).
    #[arg(long, default_value_t = 5, allow_negative_numbers = true, value_parser = count(1, usize::MAX))]
    classifier_epochs: usize,
    /// Images per optimizer step, for the GAN and the classifier (1 to 2048).
    #[arg(long, default_value_t = 64, allow_negative_numbers = true, value_parser = count(1, MAX_BATCH_SIZE))]
    batch_size: usize,
    /// Adam's learning rate for both networks of the GAN (a finite number > 0; the classifier
    /// uses 1e-3).
    #[arg(long, default_value_t = 2e-4, allow_negative_numbers = true, value_parser = learning_rate)]
    lr: f64,
    /// Size of the generator's noise vector z (1 to 1024).
    #[arg(long, default_value_t = 32, allow_negative_numbers = true, value_parser = count(1, MAX_LATENT))]
    latent: usize,
    /// How the generator doubles its maps' size (7 → 14 → 28).
    #[arg(long, value_enum, default_value_t = Upsample::Transposed)]
    upsample: Upsample,
    /// Also train a second GAN with the other upsampling, after the first: the same seed, data
    /// and classifier, so it prints what `--upsample` of the other kind alone prints. Both go
    /// into `checkerboard.png`, side by side; the other files are the first GAN's. Takes
    /// twice as long.
    #[arg(long)]
    compare_upsampling: bool,
    /// Seed of the initial weights, the synthetic data, the noise and the shuffling: the same
    /// seed gives the same run, bit for bit.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where the images come from.
    #[command(flatten)]
    images: DataArgs,
    /// Samples from fixed noise that the classifier and the checkerboard score judge after each
    /// epoch (64 to 10,000).
    #[arg(long, default_value_t = 1000, allow_negative_numbers = true, value_parser = count(GRID * GRID, MAX_SAMPLES))]
    samples: usize,
    /// Where the pictures and weights are written (created if missing).
    #[arg(long, default_value = "out", value_parser = out_dir)]
    out_dir: PathBuf,
}

/// The training and validation images, and where they come from.
fn load_data(args: &Args) -> Result<(Dataset, Dataset, String), Box<dyn Error>> {
    let (train, val, source) = args.images.load(args.seed, Synthetic::SingleShapes)?;
    if train.image_size() != (28, 28) {
        let (h, w) = train.image_size();
        return Err(format!("{source}: images are {h}×{w}; the DCGAN makes and judges 28×28 images").into());
    }
    Ok((train, val, source))
}

/// The labels of `data` as class indices, and how many classes there are (at least 2).
fn labels(data: &Dataset, source: &str) -> Result<(Vec<i64>, usize), Box<dyn Error>> {
    let labels = data
        .labels
        .as_ref()
        .ok_or_else(|| format!("{source}: no labels; the classifier that scores the samples needs them"))?;
    let classes = labels.iter().map(|&l| usize::from(l) + 1).max().unwrap_or(0).max(2);
    Ok((labels.iter().map(|&l| i64::from(l)).collect(), classes))
}

/// Trains the classifier for `--classifier-epochs` (Adam 1e-3, cross-entropy) and returns its
/// validation accuracy.
fn train_classifier(
    args: &Args,
    model: &mut Sequential<f32>,
    (train, train_labels): (&Dataset, &[i64]),
    (val, val_labels): (&Dataset, &[i64]),
) -> Result<f64, Box<dyn Error>> {
    let mut optimizer = Adam::new(1e-3);
    let mut accuracy = f64::NAN;
    for epoch in 1..=args.classifier_epochs {
        let bar = epoch_bar(epoch, train.len())?;
        let (mut seen, mut total) = (0usize, 0.0);
        for batch in shuffled(train.len(), args.seed ^ 0x5eed ^ epoch as u64).chunks(args.batch_size) {
            let target: Array1<i64> = batch.iter().map(|&i| train_labels[i]).collect();
            let (grads, loss) = {
                let tape = Tape::new();
                let logits = model.forward(tape.constant(train.images.select(Axis(0), batch).into_dyn()))?;
                let loss = cross_entropy(logits, &target, &Default::default())?;
                let value = f64::from(loss.value()[[]]);
                (tape.backward(loss)?, value)
            };
            optimizer.step(model, &grads);
            total += loss * batch.len() as f64;
            seen += batch.len();
            bar.set_position(seen as u64);
            bar.set_message(format!("classifier loss {loss:.4}"));
        }
        bar.finish_and_clear();
        let predicted = predict_classes(model, &val.images.clone().into_dyn())?;
        let right = predicted.iter().zip(val_labels).filter(|(p, t)| p == t).count();
        accuracy = right as f64 / val.len() as f64;
        let mean = total / seen as f64;
        if !mean.is_finite() {
            return Err(format!("classifier epoch {epoch}: loss {mean}: the classifier diverged").into());
        }
        println!("classifier epoch {epoch}: loss {mean:.4}, validation accuracy {accuracy:.4}");
    }
    Ok(accuracy)
}

/// The model's outputs on `x`, without gradients, in batches of 500.
fn infer(model: &Sequential<f32>, x: &ArrayD<f32>) -> Result<ArrayD<f32>, Box<dyn Error>> {
    let mut parts = Vec::new();
    for start in (0..x.shape()[0]).step_by(500) {
        let end = (start + 500).min(x.shape()[0]);
        let tape = Tape::new();
        let chunk = x.slice_axis(Axis(0), (start..end).into()).to_owned();
        let y = tape.no_grad(|| model.forward(tape.constant(chunk)))?;
        parts.push((*y.value()).clone());
    }
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    Ok(ndarray::concatenate(Axis(0), &views)?)
}

/// The arg-max class of each image of `x: [n, 1, 28, 28]`.
fn predict_classes(model: &Sequential<f32>, x: &ArrayD<f32>) -> Result<Vec<i64>, Box<dyn Error>> {
    let logits = infer(model, x)?.into_dimensionality::<Ix2>()?;
    Ok(logits
        .rows()
        .into_iter()
        .map(|row| {
            let best = (1..row.len()).fold(0, |best, c| if row[c] > row[best] { c } else { best });
            best as i64
        })
        .collect())
}

/// The generator's samples for `noise`, in eval mode (batch norm with its running statistics),
/// as images in [−1, 1]; the generator is back in training mode after.
fn sample(generator: &mut Sequential<f32>, noise: &ArrayD<f32>) -> Result<Array3<f32>, Box<dyn Error>> {
    generator.eval();
    let images = infer(generator, noise);
    generator.train();
    Ok(images?.into_dimensionality::<Ix4>()?.index_axis_move(Axis(1), 0))
}

/// How the classifier and the checkerboard score see a set of samples.
struct Judged {
    scores: SampleScores,
    checkerboard: f64,
}

impl Judged {
    fn of(classifier: &Sequential<f32>, images: &Array3<f32>) -> Result<Self, Box<dyn Error>> {
        // The classifier learnt images in [0, 1].
        let x = images.mapv(|v| (v + 1.0) / 2.0).insert_axis(Axis(1)).into_dyn();
        let logits = infer(classifier, &x)?.into_dimensionality::<Ix2>()?;
        Ok(Judged {
            scores: sample_scores(logits.view())?,
            checkerboard: checkerboard_score(images.view())?,
        })
    }

    fn line(&self, classes: usize) -> String {
        format!(
            "confidence {:.3}  class entropy {:.3} (ln {classes} = {:.3})  checkerboard {:.5}",
            self.scores.mean_confidence,
            self.scores.class_entropy,
            (classes as f64).ln(),
            self.checkerboard
        )
    }
}

/// The losses of one GAN epoch, per image, and its steps' times.
struct Epoch {
    d_loss: f64,
    g_loss: f64,
    steps: StepTimes,
}

/// Both networks, their optimizers, and the noise stream.
struct Gan {
    generator: Sequential<f32>,
    discriminator: Sequential<f32>,
    opt_g: Adam<f32>,
    opt_d: Adam<f32>,
    noise: StdRng,
    latent: usize,
}

impl Gan {
    /// One D step and one G step on `real` (images in [−1, 1]); returns both losses.
    fn step(&mut self, real: ArrayD<f32>) -> Result<(f64, f64), Box<dyn Error>> {
        let n = real.shape()[0];
        let z = normal::<f32>(&[n, self.latent], 1.0, &mut self.noise)?;
        let ones = ArrayD::ones(vec![n, 1]);
        let (grads, d_loss) = {
            let tape = Tape::new();
            let fake = tape.no_grad(|| self.generator.forward(tape.constant(z.clone())))?;
            let fake = tape.constant((*fake.value()).clone());
            let on_real = bce_with_logits(
                self.discriminator.forward(tape.constant(real))?,
                tape.constant(ones.clone()),
            )?;
            let zeros = tape.constant(ArrayD::zeros(vec![n, 1]));
            let on_fake = bce_with_logits(self.discriminator.forward(fake)?, zeros)?;
            let loss = on_real.add(on_fake)?;
            let value = f64::from(loss.value()[[]]);
            (tape.backward(loss)?, value)
        };
        self.opt_d.step(&mut self.discriminator, &grads);
        let (grads, g_loss) = {
            let tape = Tape::new();
            let fake = self.generator.forward(tape.constant(z))?;
            let loss = bce_with_logits(self.discriminator.forward(fake)?, tape.constant(ones))?;
            let value = f64::from(loss.value()[[]]);
            (tape.backward(loss)?, value)
        };
        self.opt_g.step(&mut self.generator, &grads);
        Ok((d_loss, g_loss))
    }

    /// One pass over `real` (images in [−1, 1]) in an order fixed by `seed`, with a progress bar.
    fn epoch(
        &mut self,
        real: &Array3<f32>,
        batch_size: usize,
        seed: u64,
        epoch: usize,
    ) -> Result<Epoch, Box<dyn Error>> {
        let bar = epoch_bar(epoch, real.shape()[0])?;
        let (mut seen, mut d_total, mut g_total) = (0usize, 0.0, 0.0);
        let mut steps = StepTimes::default();
        for batch in shuffled(real.shape()[0], seed).chunks(batch_size) {
            let images = real.select(Axis(0), batch).insert_axis(Axis(1)).into_dyn();
            let (d_loss, g_loss) = steps.time(|| self.step(images))?;
            d_total += d_loss * batch.len() as f64;
            g_total += g_loss * batch.len() as f64;
            seen += batch.len();
            bar.set_position(seen as u64);
            bar.set_message(format!("D {d_loss:.3}  G {g_loss:.3}, {:.0} ms/step", steps.median()));
        }
        bar.finish_and_clear();
        Ok(Epoch {
            d_loss: d_total / seen as f64,
            g_loss: g_total / seen as f64,
            steps,
        })
    }
}

/// 64 images in [−1, 1] as one 8 × 8 picture in [0, 1], with 2-pixel gaps of grey.
fn mosaic(images: &Array3<f32>) -> Array2<f32> {
    let (side, gap) = (images.shape()[1], 2);
    let cell = side + gap;
    let mut out = Array2::from_elem((GRID * cell - gap, GRID * cell - gap), 0.5f32);
    for (k, image) in images.outer_iter().take(GRID * GRID).enumerate() {
        let (r, c) = (k / GRID * cell, k % GRID * cell);
        out.slice_mut(s![r..r + side, c..c + side])
            .assign(&image.mapv(|v| (v + 1.0) / 2.0));
    }
    out
}

/// The frames (pictures in [0, 1], all one size) as a looping grayscale GIF, each pixel drawn
/// as `scale`×`scale`, `ms` per frame and four times that on the last.
fn gif_bytes(frames: &[Array2<f32>], scale: usize, ms: u16) -> Result<Vec<u8>, Box<dyn Error>> {
    let (h, w) = frames.first().map(Array2::dim).ok_or("no frame to animate")?;
    let palette: Vec<u8> = (0..=255u8).flat_map(|g| [g, g, g]).collect();
    let (big_w, big_h) = (u16::try_from(w * scale)?, u16::try_from(h * scale)?);
    let mut encoder = gif::Encoder::new(Vec::new(), big_w, big_h, &palette)?;
    encoder.set_repeat(gif::Repeat::Infinite)?;
    for (k, frame) in frames.iter().enumerate() {
        let pixels: Vec<u8> = (0..h * scale)
            .flat_map(|y| (0..w * scale).map(move |x| (y, x)))
            .map(|(y, x)| (frame[[y / scale, x / scale]].clamp(0.0, 1.0) * 255.0).round() as u8)
            .collect();
        let mut gif_frame = gif::Frame::from_indexed_pixels(big_w, big_h, pixels, None);
        let last = k + 1 == frames.len();
        gif_frame.delay = if last { ms * 4 } else { ms }.div_ceil(10);
        encoder.write_frame(&gif_frame)?;
    }
    Ok(encoder.into_inner()?)
}

/// Samples shown per kind and stage in `checkerboard.png`.
const SHOWN: usize = 6;

/// The first [`SHOWN`] samples as pictures in [0, 1], and their power spectra: each spectrum on
/// a log scale from 10⁻⁶ (black) to 1 (white) of the image's energy, the zero frequency in the
/// middle; a checkerboard lights the corners and the middles of the edges. With `stretch` each
/// sample's own range is drawn from black to white (an untrained generator's samples differ
/// from grey by a few hundredths, too little to see its checkerboards otherwise).
fn shown_and_spectra(images: &Array3<f32>, stretch: bool) -> Result<[Array2<f32>; 2], Box<dyn Error>> {
    let shown: Vec<Array2<f32>> = images
        .outer_iter()
        .take(SHOWN)
        .map(|image| {
            let (lo, hi) = image.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
            if stretch && hi > lo {
                image.mapv(|v| (v - lo) / (hi - lo))
            } else {
                image.mapv(|v| (v + 1.0) / 2.0)
            }
        })
        .collect();
    let spectra = shown
        .iter()
        .map(|image| {
            let power = power_spectrum(image.view())?;
            Ok(power.mapv(|p| ((p.max(1e-6).log10() + 6.0) / 6.0) as f32))
        })
        .collect::<Result<Vec<_>, adjoint::Error>>()?;
    Ok([strip(&shown)?, strip(&spectra)?])
}

/// Pictures of one shape side by side, 2 px of mid grey apart.
fn strip(pictures: &[Array2<f32>]) -> Result<Array2<f32>, Box<dyn Error>> {
    let (h, w) = pictures.first().map(Array2::dim).ok_or("no sample to show")?;
    let gap = 2;
    let mut out = Array2::from_elem((h, pictures.len() * (w + gap) - gap), 0.5f32);
    for (k, picture) in pictures.iter().enumerate() {
        out.slice_mut(s![.., k * (w + gap)..k * (w + gap) + w]).assign(picture);
    }
    Ok(out)
}

/// One generator's samples from the fixed noise, before and after training, for
/// `checkerboard.png`.
struct Checkerboards {
    upsample: Upsample,
    untrained: Array3<f32>,
    trained: Array3<f32>,
}

/// `checkerboard.png`: a column per generator, headed by its checkerboard score untrained →
/// trained; rows of samples and their spectra, untrained (stretched) above trained.
fn draw_checkerboards(path: &Path, runs: &[Checkerboards]) -> Result<(), Box<dyn Error>> {
    let mut headers = Vec::new();
    let mut rows: [Vec<Panel>; 4] = Default::default();
    for run in runs {
        let (before, after) = (
            checkerboard_score(run.untrained.view())?,
            checkerboard_score(run.trained.view())?,
        );
        headers.push(format!("{}: {before:.4} → {after:.5}", run.upsample));
        let [untrained, untrained_spectra] = shown_and_spectra(&run.untrained, true)?;
        let [trained, trained_spectra] = shown_and_spectra(&run.trained, false)?;
        for (row, picture) in rows
            .iter_mut()
            .zip([untrained, untrained_spectra, trained, trained_spectra])
        {
            row.push(Panel {
                pixels: gray_to_rgb(&picture),
                marks: Vec::new(),
            });
        }
    }
    let labels = ["untrained (stretched)", "power spectra", "trained", "power spectra"];
    let rows: Vec<(&str, Vec<Panel>)> = labels.into_iter().zip(rows).collect();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    panel_grid_with_columns(
        path,
        "Checkerboard score (energy at the 2-pixel period), untrained → trained",
        &headers,
        &rows,
        3,
        &[],
    )?;
    Ok(())
}

/// Everything a finished run draws and saves.
struct Outputs<'a> {
    frames: &'a [Array2<f32>],
    d_curve: &'a [f64],
    g_curve: &'a [f64],
    checkerboards: &'a [Checkerboards],
}

/// Draws the pictures into `dir`.
fn draw(dir: &Path, out: &Outputs) -> Result<(), Box<dyn Error>> {
    let last = out.frames.last().ok_or("no epoch was trained")?;
    image_grid(
        &dir.join(SAMPLES_PNG),
        &[(&format!("epoch {}", out.frames.len() - 1), vec![last.clone()])],
        2,
    )?;
    std::fs::write(dir.join(SAMPLES_GIF), gif_bytes(out.frames, 2, 500)?)?;
    line_chart(
        &dir.join(LOSS_PNG),
        "DCGAN: BCE-with-logits loss per image",
        "epoch",
        "loss",
        &[("discriminator", out.d_curve), ("generator", out.g_curve)],
    )?;
    draw_checkerboards(&dir.join(CHECKERBOARD_PNG), out.checkerboards)
}

/// A GAN trained to the end, and what its pictures need.
struct Trained {
    gan: Gan,
    frames: Vec<Array2<f32>>,
    d_curve: Vec<f64>,
    g_curve: Vec<f64>,
    checkerboards: Checkerboards,
    steps: StepTimes,
}

/// What every GAN of a run shares: the classifier that judges it, and the data.
struct Setting<'a> {
    args: &'a Args,
    classifier: &'a Sequential<f32>,
    classes: usize,
    /// The training images in [−1, 1].
    real: &'a Array3<f32>,
}

/// Builds a GAN with `upsample` and trains it, printing a line per epoch. Its weights, noise
/// and shuffling depend on the seed alone, not on what ran before, so a second GAN of a run is
/// the run its kind makes alone.
fn train_gan(setting: &Setting, upsample: Upsample) -> Result<Trained, Box<dyn Error>> {
    let (args, classes) = (setting.args, setting.classes);
    let mut rng = StdRng::seed_from_u64(args.seed ^ 0xbb67_ae85_84ca_a73b);
    let generator = dcgan_generator::<f32>(args.latent, upsample.into(), &mut rng)?;
    let discriminator = dcgan_discriminator::<f32>(&mut rng)?;
    println!(
        "model: DCGAN, {upsample} upsampling, generator {} and discriminator {} parameters",
        generator.parameter_count(),
        discriminator.parameter_count()
    );
    let mut noise = StdRng::seed_from_u64(args.seed ^ 0x6a09_e667_f3bc_c908);
    // Fixed noise: the first GRID² codes draw the pictures, all of them are scored.
    let fixed = normal::<f32>(&[args.samples, args.latent], 1.0, &mut noise)?;
    let mut gan = Gan {
        generator,
        discriminator,
        opt_g: Adam::new(args.lr).betas(0.5, 0.999),
        opt_d: Adam::new(args.lr).betas(0.5, 0.999),
        noise,
        latent: args.latent,
    };
    let untrained = sample(&mut gan.generator, &fixed)?;
    println!(
        "untrained: {}",
        Judged::of(setting.classifier, &untrained)?.line(classes)
    );
    let mut frames = vec![mosaic(&untrained)];

    let (mut d_curve, mut g_curve) = (Vec::new(), Vec::new());
    let mut steps = StepTimes::default();
    let mut trained = untrained.clone();
    for epoch in 1..=args.epochs {
        let t0 = Instant::now();
        let result = gan.epoch(
            setting.real,
            args.batch_size,
            args.seed.wrapping_add(epoch as u64),
            epoch,
        )?;
        if !(result.d_loss.is_finite() && result.g_loss.is_finite()) {
            return Err(format!(
                "epoch {epoch}: D loss {}, G loss {}: the run diverged (try a smaller --lr than {:e}); nothing was written",
                result.d_loss, result.g_loss, args.lr
            )
            .into());
        }
        trained = sample(&mut gan.generator, &fixed)?;
        let judged = Judged::of(setting.classifier, &trained)?;
        println!(
            "epoch {epoch:>3}: D {:.4}  G {:.4}  {}  step {:.1} ms  ({:.1} s)",
            result.d_loss,
            result.g_loss,
            judged.line(classes),
            result.steps.median(),
            t0.elapsed().as_secs_f64()
        );
        frames.push(mosaic(&trained));
        d_curve.push(result.d_loss);
        g_curve.push(result.g_loss);
        steps.extend(&result.steps);
    }
    refuse_non_finite_weights(&gan.generator, "generator ")?;
    refuse_non_finite_weights(&gan.discriminator, "discriminator ")?;
    Ok(Trained {
        gan,
        frames,
        d_curve,
        g_curve,
        checkerboards: Checkerboards {
            upsample,
            untrained,
            trained,
        },
        steps,
    })
}

fn main() -> std::process::ExitCode {
    exit_code(run)
}

fn run() -> Result<(), Box<dyn Error>> {
    // Every flag is checked here, by its parser, before any work.
    let args = Args::parse();
    let started = Instant::now();
    let (train, val, source) = load_data(&args)?;
    println!(
        "data: {source}: {} training, {} validation images",
        train.len(),
        val.len()
    );
    let (train_labels, classes) = labels(&train, &source)?;
    let (val_labels, val_classes) = labels(&val, &source)?;
    let classes = classes.max(val_classes);

    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut classifier = digit_classifier::<f32>(classes, &mut rng)?;
    let accuracy = train_classifier(&args, &mut classifier, (&train, &train_labels), (&val, &val_labels))?;

    let real = train.images.index_axis(Axis(1), 0).mapv(|v| 2.0 * v - 1.0);
    let setting = Setting {
        args: &args,
        classifier: &classifier,
        classes,
        real: &real,
    };
    let first = train_gan(&setting, args.upsample)?;
    let mut checkerboards = Vec::new();
    if args.compare_upsampling {
        let other = match args.upsample {
            Upsample::Transposed => Upsample::Resize,
            Upsample::Resize => Upsample::Transposed,
        };
        let second = train_gan(&setting, other)?;
        checkerboards.push(second.checkerboards);
    }
    let Trained {
        gan,
        frames,
        d_curve,
        g_curve,
        checkerboards: own,
        steps: all_steps,
    } = first;
    checkerboards.insert(0, own);
    // Transposed on the left, whichever trained first.
    checkerboards.sort_by_key(|c| c.upsample != Upsample::Transposed);
    let scores = checkerboards
        .iter()
        .map(|c| {
            let (before, after) = (
                checkerboard_score(c.untrained.view())?,
                checkerboard_score(c.trained.view())?,
            );
            Ok(format!("{} {before:.4} → {after:.5}", c.upsample))
        })
        .collect::<Result<Vec<_>, adjoint::Error>>()?;
    println!("checkerboard score, untrained → trained: {}", scores.join("; "));
    let outputs = Outputs {
        frames: &frames,
        d_curve: &d_curve,
        g_curve: &g_curve,
        checkerboards: &checkerboards,
    };
    let names = [
        GENERATOR,
        DISCRIMINATOR,
        CLASSIFIER,
        SAMPLES_PNG,
        SAMPLES_GIF,
        LOSS_PNG,
        CHECKERBOARD_PNG,
    ];
    publish(&args.out_dir, "gan", &names, |dir| {
        io::save(&gan.generator, dir.join(GENERATOR))?;
        io::save(&gan.discriminator, dir.join(DISCRIMINATOR))?;
        io::save(&classifier, dir.join(CLASSIFIER))?;
        draw(dir, &outputs)
    })?;
    let path = |name: &str| args.out_dir.join(name).display().to_string();
    println!(
        "pictures: {}, {}, {}, {}; weights: {}, {}, {}",
        path(SAMPLES_PNG),
        path(SAMPLES_GIF),
        path(LOSS_PNG),
        path(CHECKERBOARD_PNG),
        path(GENERATOR),
        path(DISCRIMINATOR),
        path(CLASSIFIER)
    );
    println!(
        "done in {:.1} s: classifier validation accuracy {accuracy:.4}; median step {:.1} ms",
        started.elapsed().as_secs_f64(),
        all_steps.median()
    );
    Ok(())
}
