//! The VAE example as users run it: the binary itself, on tiny runs.

use std::path::Path;
use std::process::Output;

mod support;

use support::{
    Refusal, assert_divergence_keeps_outputs, assert_refused_before_work, flags_with, is_png, listing, scratch, text,
    write_idx_dir,
};

fn run(args: &[String]) -> Output {
    support::run("vae", args)
}

/// What a successful run leaves in `--out-dir` (sorted), and nothing else; `--latent 2` adds
/// `manifold.png`.
const OUTPUTS: [&str; 5] = [
    "interpolation.png",
    "loss.png",
    "reconstructions.png",
    "samples.png",
    "vae.safetensors",
];

/// A run of a fraction of a second.
const TINY: [(&str, &str); 4] = [
    ("--epochs", "1"),
    ("--train-size", "32"),
    ("--val-size", "16"),
    ("--batch-size", "16"),
];

fn tiny_with(changes: &[(&str, &str)], out_dir: &Path) -> Vec<String> {
    flags_with(&TINY, changes, out_dir)
}

/// Each flag that makes a run meaningless is refused before any work (the example prints
/// `data: ...` once its data exist), with a message naming the flag and the value; no output
/// directory is created.
#[test]
fn meaningless_flags_are_refused_before_any_work() {
    let dir = scratch("vae-bad-flags");
    let ten = dir.join("ten-images");
    write_idx_dir(&ten, 10);
    let ten = ten.display().to_string();
    let missing = dir.join("missing").display().to_string();
    let a_file = dir.join("a-file");
    std::fs::write(&a_file, b"").unwrap();
    let a_file = a_file.display().to_string();
    let refusals: Vec<Refusal> = vec![
        (vec![("--lr", "0")], "--lr", "0"),
        (vec![("--lr", "-1")], "--lr", "-1"),
        (vec![("--lr", "NaN")], "--lr", "NaN"),
        (vec![("--lr", "inf")], "--lr", "inf"),
        (vec![("--epochs", "0")], "--epochs", "0"),
        (vec![("--epochs", "-2")], "--epochs", "-2"),
        (vec![("--batch-size", "0")], "--batch-size", "0"),
        (vec![("--batch-size", "4097")], "--batch-size", "4097"),
        (vec![("--latent", "0")], "--latent", "0"),
        (vec![("--latent", "785")], "--latent", "785"),
        (vec![("--latent", "two")], "--latent", "two"),
        (vec![("--train-size", "0")], "--train-size", "0"),
        (vec![("--val-size", "1000001")], "--val-size", "1000001"),
        (vec![("--upsample", "bilinear")], "--upsample", "bilinear"),
        (vec![("--seed", "-1")], "--seed", "-1"),
        (vec![("--data-dir", &missing)], "--data-dir", &missing),
        (vec![("--eval", &missing)], "--eval", &missing),
        (vec![("--export-data", &a_file)], "--export-data", &a_file),
        // All ten images would train, none would validate.
        (vec![("--data-dir", &ten), ("--train-size", "10")], "--train-size", "10"),
    ];
    assert_refused_before_work("vae", &TINY, &refusals, &dir);
    // An --out-dir that is a file (not through the helper, which sets its own --out-dir).
    let mut args = flags_with(&TINY, &[], &dir);
    args.truncate(args.len() - 2);
    args.extend(["--out-dir".into(), a_file.clone()]);
    let out = run(&args);
    assert!(!out.status.success() && text(&out.stdout).is_empty());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("--out-dir") && stderr.contains(&a_file), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A tiny run writes its five files, byte for byte the same for the same seed (another seed and
/// the resize-conv decoder give other weights); `--latent 2` adds the manifold; `--eval` reads
/// the weights back and refuses those of another decoder, naming the file.
#[test]
fn tiny_runs_write_their_outputs_deterministically_and_eval_reads_them() {
    let dir = scratch("vae-tiny");
    let mut runs = Vec::new();
    for (r, changes) in [vec![], vec![], vec![("--seed", "1")], vec![("--upsample", "resize")]]
        .iter()
        .enumerate()
    {
        let out_dir = dir.join(format!("run-{r}"));
        let out = run(&tiny_with(changes, &out_dir));
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{changes:?}: {}", text(&out.stderr));
        for line in [
            "data: synthetic shapes: 32 training, 16 validation images",
            "epoch   1: train -ELBO ",
            "validation -ELBO ",
            " nats (rec ",
            ", KL ",
            " ms  (",
            "pictures: ",
            "done in ",
        ] {
            assert!(stdout.contains(line), "{changes:?}: no {line:?} in {stdout:?}");
        }
        assert_eq!(listing(&out_dir), OUTPUTS);
        for png in &OUTPUTS[..4] {
            assert!(is_png(&out_dir.join(png)), "{png}");
        }
        runs.push(
            OUTPUTS
                .iter()
                .map(|f| std::fs::read(out_dir.join(f)).unwrap())
                .collect::<Vec<_>>(),
        );
    }
    assert!(runs[0] == runs[1], "the same seed gave other files");
    assert!(runs[0][4] != runs[2][4], "another seed gave the same weights");
    assert!(
        runs[0][4] != runs[3][4],
        "resize-conv weights equal transposed-conv ones"
    );

    let out_dir = dir.join("latent-2");
    let out = run(&tiny_with(&[("--latent", "2")], &out_dir));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(is_png(&out_dir.join("manifold.png")));
    assert_eq!(listing(&out_dir).len(), OUTPUTS.len() + 1);

    let weights = |r: usize| {
        dir.join(format!("run-{r}"))
            .join("vae.safetensors")
            .display()
            .to_string()
    };
    let out = run(&tiny_with(&[("--eval", &weights(0))], &dir.join("unused")));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("validation -ELBO "), "{}", text(&out.stdout));
    assert!(!dir.join("unused").exists());
    let out = run(&tiny_with(&[("--eval", &weights(3))], &dir.join("unused")));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains(&weights(3)), "{}", text(&out.stderr));
    std::fs::remove_dir_all(dir).unwrap();
}

/// MNIST-format files: the first `--train-size` images train, the rest validate; a directory
/// without IDX files is refused with its path, and nothing is written.
#[test]
fn reads_mnist_format_files_and_refuses_a_directory_without_them() {
    let dir = scratch("vae-mnist");
    let digits = dir.join("digits");
    write_idx_dir(&digits, 20);
    let out_dir = dir.join("out");
    let flags = [
        ("--data-dir", digits.display().to_string()),
        ("--train-size", "15".into()),
    ];
    let flags: Vec<(&str, &str)> = flags.iter().map(|(f, v)| (*f, v.as_str())).collect();
    let out = run(&tiny_with(&flags, &out_dir));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!("data: {}: 15 training, 5 validation images", digits.display())),
        "{stdout}"
    );
    assert_eq!(listing(&out_dir), OUTPUTS);

    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = run(&tiny_with(
        &[("--data-dir", &empty.display().to_string())],
        &dir.join("bad-out"),
    ));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(&empty.display().to_string()),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.join("bad-out").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

/// `--export-data` writes both splits as NumPy files for the twin and trains nothing.
#[test]
fn export_data_writes_both_splits_and_stops() {
    let dir = scratch("vae-export");
    let data = dir.join("data");
    let out = run(&tiny_with(
        &[("--export-data", &data.display().to_string())],
        &dir.join("out"),
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("epoch"), "{}", text(&out.stdout));
    assert!(!dir.join("out").exists());
    for (split, n) in [("train", 32), ("val", 16)] {
        let images = std::fs::read(data.join(split).join("images.npy")).unwrap();
        assert!(images.starts_with(b"\x93NUMPY"));
        // The header, then n images of 28×28 f32.
        assert!(
            images.len() > n * 784 * 4 && images.len() < n * 784 * 4 + 256,
            "{split}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// A run that diverges is an error, and the previous run's files stay as they were.
#[test]
fn a_diverged_run_is_an_error_and_leaves_the_previous_outputs() {
    let dir = scratch("vae-diverged");
    assert_divergence_keeps_outputs("vae", &TINY, &dir, &OUTPUTS);
    std::fs::remove_dir_all(dir).unwrap();
}
