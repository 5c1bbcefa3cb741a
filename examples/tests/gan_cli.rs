//! The DCGAN example as users run it: the binary itself, on tiny runs (64 synthetic images,
//! one epoch of one or two steps).

mod support;

use support::{assert_divergence_keeps_outputs, flags_with, is_png, listing, run, scratch, text, write_idx_dir};

/// A run of a second or two.
const TINY: [(&str, &str); 6] = [
    ("--epochs", "1"),
    ("--classifier-epochs", "1"),
    ("--train-size", "64"),
    ("--val-size", "16"),
    ("--batch-size", "32"),
    ("--samples", "64"),
];

/// What a successful run leaves in `--out-dir`, and nothing else.
const OUTPUTS: [&str; 7] = [
    "checkerboard.png",
    "classifier.safetensors",
    "discriminator.safetensors",
    "generator.safetensors",
    "loss.png",
    "samples.gif",
    "samples.png",
];

/// Each flag that makes a run meaningless is refused before any work (the example prints
/// `data: ...` once its data exist), with a message naming the flag and the value; no output
/// directory is created.
#[test]
fn meaningless_flags_are_refused_before_any_work() {
    let dir = scratch("gan-bad-flags");
    let a_file = dir.join("a-file");
    std::fs::write(&a_file, b"").unwrap();
    let a_file = a_file.display().to_string();
    let missing = dir.join("missing").display().to_string();
    let cases: Vec<(&str, &str)> = vec![
        ("--lr", "0"),
        ("--lr", "inf"),
        ("--epochs", "0"),
        ("--classifier-epochs", "-1"),
        ("--batch-size", "0"),
        ("--batch-size", "2049"),
        ("--latent", "0"),
        ("--latent", "1025"),
        ("--upsample", "bilinear"),
        ("--samples", "63"),
        ("--samples", "10001"),
        ("--train-size", "0"),
        ("--val-size", "0"),
        ("--data-dir", &missing),
        ("--out-dir", &a_file),
    ];
    for (i, (flag, value)) in cases.into_iter().enumerate() {
        let out_dir = dir.join(format!("out-{i}"));
        // --out-dir is the case itself or a fresh directory.
        let mut args = flags_with(&TINY, &[(flag, value)], &out_dir);
        if flag == "--out-dir" {
            args.truncate(args.len() - 2);
        }
        let out = run("gan", &args);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        let case = format!("{flag} {value}: status {}, stderr {stderr:?}", out.status);
        assert!(!out.status.success(), "{case}");
        assert!(stderr.contains(flag) && stderr.contains(value), "{case}");
        assert!(stdout.is_empty(), "{case}: work started: {stdout:?}");
        assert!(!out_dir.exists(), "{case}: {} was created", out_dir.display());
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// A tiny run prints the classifier's accuracy, the scores before and after its epoch, and
/// writes its files; the same seed gives the same bytes, the other upsampling other weights.
#[test]
fn tiny_runs_write_their_outputs_deterministically() {
    let dir = scratch("gan-tiny");
    let mut runs = Vec::new();
    for (r, upsample) in ["transposed", "transposed", "resize"].iter().enumerate() {
        let out_dir = dir.join(format!("run-{r}"));
        let out = run("gan", &flags_with(&TINY, &[("--upsample", upsample)], &out_dir));
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{}", text(&out.stderr));
        for line in [
            "data: synthetic shapes, one an image: 64 training, 16 validation images",
            "classifier epoch 1: loss ",
            "untrained: confidence ",
            "epoch   1: D ",
            "class entropy ",
            "(ln 5 = 1.609)",
            "checkerboard ",
            "pictures: ",
            "done in ",
        ] {
            assert!(stdout.contains(line), "no {line:?} in {stdout:?}");
        }
        assert_eq!(listing(&out_dir), OUTPUTS);
        for png in ["samples.png", "loss.png", "checkerboard.png"] {
            assert!(is_png(&out_dir.join(png)), "{png}");
        }
        let gif = std::fs::read(out_dir.join("samples.gif")).unwrap();
        assert!(gif.starts_with(b"GIF89a"));
        let files: Vec<Vec<u8>> = OUTPUTS
            .iter()
            .map(|f| std::fs::read(out_dir.join(f)).unwrap())
            .collect();
        runs.push(files);
    }
    assert!(runs[0] == runs[1], "the same seed gave other files");
    assert!(
        runs[0][3] != runs[2][3],
        "resize-conv weights equal transposed-conv ones"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// The scores of a run's epoch lines, without the step times (which vary from run to run).
fn epoch_scores(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter(|l| l.starts_with("untrained: ") || l.starts_with("epoch "))
        .map(|l| l.split("  step ").next().unwrap().to_string())
        .collect()
}

/// --compare-upsampling trains the other kind after the first, from the same seed: its lines
/// are those of that kind's own run, the summary names both, and the files are the first's
/// (the same generator weights as a run without the flag).
#[test]
fn compare_upsampling_trains_both_kinds_as_their_own_runs_do() {
    let dir = scratch("gan-compare");
    let alone = |upsample: &str| {
        let out_dir = dir.join(upsample);
        let out = run("gan", &flags_with(&TINY, &[("--upsample", upsample)], &out_dir));
        assert!(out.status.success(), "{}", text(&out.stderr));
        (
            epoch_scores(&text(&out.stdout)),
            std::fs::read(out_dir.join("generator.safetensors")).unwrap(),
        )
    };
    let (transposed, transposed_weights) = alone("transposed");
    let (resize, _) = alone("resize");
    let out_dir = dir.join("both");
    let mut args = flags_with(&TINY, &[("--upsample", "transposed")], &out_dir);
    args.push("--compare-upsampling".into());
    let out = run("gan", &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let both: Vec<String> = transposed.iter().chain(&resize).cloned().collect();
    assert_eq!(epoch_scores(&stdout), both);
    for line in [
        "model: DCGAN, resize-conv upsampling",
        "checkerboard score, untrained → trained: transposed-conv ",
        "; resize-conv ",
    ] {
        assert!(stdout.contains(line), "no {line:?} in {stdout:?}");
    }
    assert_eq!(listing(&out_dir), OUTPUTS);
    assert!(is_png(&out_dir.join("checkerboard.png")));
    assert_eq!(
        std::fs::read(out_dir.join("generator.safetensors")).unwrap(),
        transposed_weights
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// MNIST-format files: ten classes from their labels; a directory without them is refused
/// with its path, and so is a --train-size that leaves nothing to validate.
#[test]
fn reads_mnist_format_files() {
    let dir = scratch("gan-idx");
    let digits = dir.join("digits");
    write_idx_dir(&digits, 80);
    let digits_flag = digits.display().to_string();
    let out = run(
        "gan",
        &flags_with(&TINY, &[("--data-dir", &digits_flag)], &dir.join("out")),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!("data: {digits_flag}: 64 training, 16 validation")),
        "{stdout}"
    );
    assert!(stdout.contains("(ln 10 = 2.303)"), "{stdout}");

    let out = run(
        "gan",
        &flags_with(
            &TINY,
            &[("--data-dir", &digits_flag), ("--train-size", "80")],
            &dir.join("bad"),
        ),
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("--train-size") && stderr.contains(&digits_flag),
        "{stderr}"
    );
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = run(
        "gan",
        &flags_with(&TINY, &[("--data-dir", &empty.display().to_string())], &dir.join("bad")),
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(&empty.display().to_string()),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.join("bad").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

/// A run that diverges is an error, and the previous run's files stay as they were.
#[test]
fn a_diverged_run_is_an_error_and_leaves_the_previous_outputs() {
    let dir = scratch("gan-diverged");
    assert_divergence_keeps_outputs("gan", &TINY, &dir.join("out"), &OUTPUTS);
    std::fs::remove_dir_all(dir).unwrap();
}
