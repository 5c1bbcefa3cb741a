//! The segmentation and key-point examples as users run them: the binaries themselves, on
//! tiny runs (scenes of 32×32, a two-level U-Net of 4 and 8 channels).

mod support;

use support::{
    Refusal, assert_divergence_keeps_outputs, assert_refused_before_work, flags_with, is_png, listing, run, scratch,
    text, write_idx_dir,
};

/// A run of a fraction of a second.
const TINY: [(&str, &str); 6] = [
    ("--epochs", "1"),
    ("--train-size", "8"),
    ("--val-size", "4"),
    ("--size", "32"),
    ("--widths", "4,8"),
    ("--batch-size", "4"),
];

/// What a successful run of `example` leaves in `--out-dir`, and nothing else.
fn outputs(example: &str) -> Vec<String> {
    let mut names = vec![
        format!("{example}.safetensors"),
        "loss.png".into(),
        "predictions.png".into(),
    ];
    names.sort();
    names
}

/// Each flag, or combination of flags, that makes a run meaningless is refused before any work
/// (the examples print `data: ...` once their data exist), with a message naming the flag and
/// the value; no output directory is created.
#[test]
fn meaningless_flags_are_refused_before_any_work() {
    let dir = scratch("dense-bad-flags");
    let a_file = dir.join("a-file");
    std::fs::write(&a_file, b"").unwrap();
    let a_file = a_file.display().to_string();
    let missing = dir.join("missing").display().to_string();
    let both: Vec<Refusal> = vec![
        (vec![("--lr", "0")], "--lr", "0"),
        (vec![("--lr", "NaN")], "--lr", "NaN"),
        (vec![("--epochs", "0")], "--epochs", "0"),
        (vec![("--batch-size", "0")], "--batch-size", "0"),
        (vec![("--batch-size", "1025")], "--batch-size", "1025"),
        (vec![("--train-size", "0")], "--train-size", "0"),
        (vec![("--val-size", "-1")], "--val-size", "-1"),
        (vec![("--size", "31")], "--size", "31"),
        (vec![("--size", "257")], "--size", "257"),
        (vec![("--widths", "8")], "--widths", "[8]"),
        (vec![("--widths", "4,8,16,32,64,128")], "--widths", "128"),
        (vec![("--widths", "4,0")], "--widths", "0"),
        (vec![("--widths", "4,513")], "--widths", "513"),
        (vec![("--upsample", "bilinear")], "--upsample", "bilinear"),
        (vec![("--schedule", "linear")], "--schedule", "linear"),
        (vec![("--eval", &missing)], "--eval", &missing),
        (vec![("--export-data", &a_file)], "--export-data", &a_file),
        // 1,024 scenes of 64×64 pixels in one step: about 40 GB.
        (vec![("--batch-size", "1024"), ("--size", "64")], "--batch-size", "1024"),
        // 2^28 pixels and more of scenes.
        (
            vec![("--train-size", "1000000"), ("--size", "256")],
            "--train-size",
            "1000000",
        ),
    ];
    let segmentation: Vec<Refusal> = vec![(vec![("--data-dir", &missing)], "--data-dir", &missing)];
    let keypoints: Vec<Refusal> = vec![
        (vec![("--sigma", "0.1")], "--sigma", "0.1"),
        (vec![("--sigma", "inf")], "--sigma", "inf"),
        (vec![("--threshold", "1.5")], "--threshold", "1.5"),
        (vec![("--threshold", "NaN")], "--threshold", "NaN"),
        (vec![("--weight", "-1")], "--weight", "-1"),
        (vec![("--weight", "inf")], "--weight", "inf"),
    ];
    for (example, own) in [("segmentation", segmentation), ("keypoints", keypoints)] {
        let refusals: Vec<Refusal> = both.iter().chain(&own).cloned().collect();
        assert_refused_before_work(example, &TINY, &refusals, &dir);
    }
    // Key points need the synthetic scenes' labelled points: MNIST digits have none.
    let out = run(
        "keypoints",
        &flags_with(&TINY, &[("--data-dir", &missing)], &dir.join("kp")),
    );
    assert!(!out.status.success() && text(&out.stderr).contains("--data-dir"));
    std::fs::remove_dir_all(dir).unwrap();
}

/// A tiny run of each example writes its three files, the same bytes for the same seed;
/// `--eval` reads the weights back and reports the scores again.
#[test]
fn tiny_runs_write_their_outputs_deterministically_and_eval_reads_them() {
    let dir = scratch("dense-tiny");
    for (example, score) in [("segmentation", "mIoU "), ("keypoints", "F1 ")] {
        let weights = format!("{example}.safetensors");
        let mut runs = Vec::new();
        for (r, upsample) in ["transposed", "transposed", "resize"].iter().enumerate() {
            let out_dir = dir.join(format!("{example}-{r}"));
            let out = run(example, &flags_with(&TINY, &[("--upsample", upsample)], &out_dir));
            let stdout = text(&out.stdout);
            assert!(out.status.success(), "{example}: {}", text(&out.stderr));
            for line in [
                "data: synthetic scenes (seed 0): 8 training, 4 validation scenes",
                "epoch  1: train loss ",
                score,
                "pictures: ",
                "done in ",
            ] {
                assert!(stdout.contains(line), "{example}: no {line:?} in {stdout:?}");
            }
            assert_eq!(listing(&out_dir), outputs(example));
            assert!(is_png(&out_dir.join("loss.png")) && is_png(&out_dir.join("predictions.png")));
            runs.push(std::fs::read(out_dir.join(&weights)).unwrap());
        }
        assert!(runs[0] == runs[1], "{example}: the same seed gave other weights");
        assert!(
            runs[0] != runs[2],
            "{example}: resize-conv weights equal transposed-conv ones"
        );

        let eval_flags = flags_with(
            &TINY,
            &[(
                "--eval",
                &dir.join(format!("{example}-0")).join(&weights).display().to_string(),
            )],
            &dir.join("unused"),
        );
        let out = run(example, &eval_flags);
        assert!(out.status.success(), "{example}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("validation: loss "), "{}", text(&out.stdout));
        assert!(!dir.join("unused").exists());
        // Resize-conv weights do not fit a transposed-conv U-Net: refused, naming the file.
        let resize_weights = dir.join(format!("{example}-2")).join(&weights).display().to_string();
        let out = run(
            example,
            &flags_with(&TINY, &[("--eval", &resize_weights)], &dir.join("unused")),
        );
        assert!(!out.status.success());
        assert!(text(&out.stderr).contains(&resize_weights), "{}", text(&out.stderr));
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// `--export-data` writes both splits as NumPy files and trains nothing.
#[test]
fn export_data_writes_both_splits_and_stops() {
    let dir = scratch("dense-export");
    for example in ["segmentation", "keypoints"] {
        let data = dir.join(example);
        let out_dir = dir.join(format!("{example}-out"));
        let out = run(
            example,
            &flags_with(&TINY, &[("--export-data", &data.display().to_string())], &out_dir),
        );
        assert!(out.status.success(), "{example}: {}", text(&out.stderr));
        assert!(!text(&out.stdout).contains("epoch"), "{}", text(&out.stdout));
        assert!(!out_dir.exists());
        for split in ["train", "val"] {
            assert_eq!(listing(&data.join(split)), ["images.npy", "keypoints.npy", "masks.npy"]);
            // The NumPy header, then (for 8 or 4 images of 32×32 f32) the pixels.
            let images = std::fs::read(data.join(split).join("images.npy")).unwrap();
            assert!(images.starts_with(b"\x93NUMPY"));
            let n = if split == "train" { 8 } else { 4 };
            assert!(images.len() > n * 32 * 32 * 4 && images.len() < n * 32 * 32 * 4 + 256);
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// Segmentation of digits on a canvas from MNIST-format files: 11 classes (background and ten
/// digits), 6,000 training scenes by default against the synthetic set's 2,000; too few
/// digits, or a directory without IDX files, are refused with the path.
#[test]
fn segmentation_reads_mnist_format_digits() {
    let dir = scratch("dense-digits");
    let digits = dir.join("digits");
    write_idx_dir(&digits, 20);
    let out_dir = dir.join("out");
    let out = run(
        "segmentation",
        &flags_with(&TINY, &[("--data-dir", &digits.display().to_string())], &out_dir),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!("data: digits from {}", digits.display())),
        "{stdout}"
    );
    assert!(stdout.contains("digit 9 "), "{stdout}");
    assert_eq!(listing(&out_dir), outputs("segmentation"));

    // Without --train-size, digits make 6,000 training scenes and synthetic shapes 2,000 (seen
    // through --export-data, which stops before training; 32×32 scenes keep it quick).
    for (data_dir, expected) in [
        (Some(&digits), "6000 training, 500 validation"),
        (None, "2000 training, 500 validation"),
    ] {
        let mut args = vec!["--size".to_string(), "32".to_string(), "--export-data".to_string()];
        args.push(dir.join("defaults").display().to_string());
        if let Some(d) = data_dir {
            args.extend(["--data-dir".to_string(), d.display().to_string()]);
        }
        let out = run("segmentation", &args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stdout).contains(expected), "{}", text(&out.stdout));
    }

    let few = dir.join("few");
    write_idx_dir(&few, 5);
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    for bad in [few, empty] {
        let out = run(
            "segmentation",
            &flags_with(
                &TINY,
                &[("--data-dir", &bad.display().to_string())],
                &dir.join("bad-out"),
            ),
        );
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains(&bad.display().to_string()),
            "{}",
            text(&out.stderr)
        );
        assert!(!dir.join("bad-out").exists());
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// A run that diverges is an error, and the previous run's files stay as they were.
#[test]
fn a_diverged_run_is_an_error_and_leaves_the_previous_outputs() {
    let dir = scratch("dense-diverged");
    for example in ["segmentation", "keypoints"] {
        let outputs = outputs(example);
        let outputs: Vec<&str> = outputs.iter().map(|s| s.as_ref()).collect();
        assert_divergence_keeps_outputs(example, &TINY, &dir.join(example), &outputs);
    }
    std::fs::remove_dir_all(dir).unwrap();
}
