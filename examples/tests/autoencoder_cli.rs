//! The autoencoder example as users run it: the binary itself, on tiny runs.

use std::path::Path;
use std::process::Output;

mod support;

use support::{
    Refusal, assert_divergence_keeps_outputs, assert_refused_before_work, flags_with, is_png, listing, scratch, text,
    write_idx_dir,
};

fn run(args: &[String]) -> Output {
    support::run("autoencoder", args)
}

/// What a successful run leaves in `--out-dir`, and nothing else.
const OUTPUTS: [&str; 3] = ["autoencoder.safetensors", "loss.png", "reconstructions.png"];

/// The flags of a run of a fraction of a second, as `(flag, value)` pairs.
const TINY: [(&str, &str); 4] = [
    ("--epochs", "1"),
    ("--train-size", "64"),
    ("--val-size", "32"),
    ("--latent", "8"),
];

/// The tiny run's flags with `changes` applied, and `--out-dir out_dir`.
fn tiny_with(changes: &[(&str, &str)], out_dir: &Path) -> Vec<String> {
    flags_with(&TINY, changes, out_dir)
}

/// Each flag that makes a run meaningless is refused before any work — nothing loaded (the
/// example prints `data: ...` once its data is loaded), no output directory — with a message
/// naming the flag and the value.
#[test]
fn meaningless_flags_are_refused_before_any_work() {
    let dir = scratch("bad-flags");
    let mnist_like = dir.join("ten-images");
    write_idx_dir(&mnist_like, 10);
    let data_dir = mnist_like.display().to_string();
    let huge = usize::MAX.to_string();
    let cases: Vec<Refusal> = vec![
        (vec![("--lr", "0")], "--lr", "0"),
        (vec![("--lr", "-1")], "--lr", "-1"),
        (vec![("--lr", "NaN")], "--lr", "NaN"),
        (vec![("--lr", "inf")], "--lr", "inf"),
        (vec![("--epochs", "0")], "--epochs", "0"),
        (vec![("--batch-size", "0")], "--batch-size", "0"),
        (vec![("--batch-size", "100000")], "--batch-size", "100000"),
        (
            vec![("--train-size", &huge), ("--val-size", "1")],
            "--train-size",
            &huge,
        ),
        (vec![("--train-size", "1"), ("--val-size", &huge)], "--val-size", &huge),
        (vec![("--latent", "1000000000000")], "--latent", "1000000000000"),
        (vec![("--latent", "785")], "--latent", "785"),
        (vec![("--latent", "0")], "--latent", "0"),
        (vec![("--train-size", "0")], "--train-size", "0"),
        (vec![("--val-size", "0")], "--val-size", "0"),
        // All ten images would train, none would validate.
        (
            vec![("--data-dir", &data_dir), ("--train-size", "10")],
            "--train-size",
            "10",
        ),
    ];
    assert_refused_before_work("autoencoder", &TINY, &cases, &dir);
    // The same data directory with one image to spare is a run (so the refusal above was the
    // split's, not the directory's).
    let out_dir = dir.join("out-nine");
    let out = run(&tiny_with(
        &[("--data-dir", &data_dir), ("--train-size", "9")],
        &out_dir,
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("9 training, 1 validation images"));
    std::fs::remove_dir_all(dir).unwrap();
}

/// A tiny run writes its three files and reports as before; `--eval` reads its weights back,
/// and refuses a copy holding a NaN or an infinity instead of printing a number.
#[test]
fn a_tiny_run_writes_its_outputs_and_eval_refuses_non_finite_weights() {
    let dir = scratch("tiny-run");
    let out_dir = dir.join("out");
    let out = run(&tiny_with(&[], &out_dir));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for line in [
        "data: synthetic shapes: 64 training, 32 validation images",
        "epoch   1: train ",
        "pictures: ",
        "done in ",
    ] {
        assert!(stdout.contains(line), "no {line:?} in {stdout:?}");
    }
    assert_eq!(listing(&out_dir), OUTPUTS);
    for png in ["loss.png", "reconstructions.png"] {
        assert!(is_png(&out_dir.join(png)), "{png}");
    }

    let weights = out_dir.join("autoencoder.safetensors");
    let eval = |path: &Path| run(&tiny_with(&[("--eval", &path.display().to_string())], &out_dir));
    let out = eval(&weights);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("validation MSE 0."), "{}", text(&out.stdout));

    // A safetensors file ends with the data of its tensors: its last 4 bytes are one f32 weight.
    let good = std::fs::read(&weights).unwrap();
    for (value, printed) in [(f32::NAN, "holds NaN"), (f32::INFINITY, "holds inf")] {
        let mut bad = good.clone();
        let end = bad.len();
        bad[end - 4..].copy_from_slice(&value.to_le_bytes());
        let bad_path = dir.join("bad.safetensors");
        std::fs::write(&bad_path, bad).unwrap();
        let out = eval(&bad_path);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{printed}: {}", text(&out.stdout));
        assert!(
            stderr.contains(printed) && stderr.contains("bad.safetensors"),
            "{stderr}"
        );
        assert!(!text(&out.stdout).contains("validation MSE"));
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// A run that diverges (a learning rate no `f32` holds turns the weights into NaN at the first
/// step) is an error, and the previous run's files stay as they were.
#[test]
fn a_diverged_run_is_an_error_and_leaves_the_previous_outputs() {
    let dir = scratch("diverged");
    assert_divergence_keeps_outputs("autoencoder", &TINY, &dir, &OUTPUTS);
    std::fs::remove_dir_all(dir).unwrap();
}
