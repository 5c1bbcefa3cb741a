//! Running an example's binary from its CLI tests.
//!
//! `cargo test` builds the package's examples before running its tests, so a binary is found
//! beside the test's own executable (`target/<profile>/deps/<test>-<hash>`), in
//! `target/<profile>/examples/`. A `cargo test --test <name>` alone does not build examples:
//! a test then stops, and says so, if the binary is missing or older than its sources.
#![allow(dead_code)] // Each test file uses part of it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary of example `name`, built by `cargo test` in this test's profile.
pub fn binary(name: &str) -> PathBuf {
    let me = std::env::current_exe().unwrap();
    let profile_dir = me.parent().and_then(Path::parent).unwrap();
    let path = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let built = modified(&path);
    // The example's file, and the shared files it includes (`mod common;` is common.rs).
    let main = dir.join(format!("{name}.rs"));
    let text = std::fs::read_to_string(&main).unwrap();
    let modules = text
        .lines()
        .filter_map(|line| line.strip_prefix("mod ")?.strip_suffix(';'))
        .map(|module| dir.join(format!("{module}.rs")));
    for source in std::iter::once(main.clone()).chain(modules) {
        assert!(
            built.is_some() && built >= modified(&source),
            "{} is missing or older than {}: run `cargo test` (which builds the examples), or \
             `cargo build --example {name}` in this profile",
            path.display(),
            source.display()
        );
    }
    path
}

/// A fresh directory for one test, under Cargo's scratch directory for tests.
pub fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs example `name` with `args`.
pub fn run(name: &str, args: &[String]) -> Output {
    Command::new(binary(name)).args(args).output().unwrap()
}

/// Bytes as text, for messages and matching.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The names in `dir`, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `base` flags with `changes` applied (a flag given twice is an error in itself), then
/// `--out-dir out_dir`.
pub fn flags_with(base: &[(&str, &str)], changes: &[(&str, &str)], out_dir: &Path) -> Vec<String> {
    let mut flags: Vec<(&str, &str)> = base.to_vec();
    for &(flag, value) in changes {
        match flags.iter_mut().find(|(f, _)| *f == flag) {
            Some(pair) => pair.1 = value,
            None => flags.push((flag, value)),
        }
    }
    let mut args: Vec<String> = flags
        .iter()
        .flat_map(|&(f, v)| [f.to_string(), v.to_string()])
        .collect();
    args.extend(["--out-dir".to_string(), out_dir.display().to_string()]);
    args
}

/// Raw IDX files of `n` 28×28 images (a bright square in each) and their labels (0, 1, ...,
/// 9, 0, ...), under the names MNIST uses.
pub fn write_idx_dir(dir: &Path, n: u32) {
    std::fs::create_dir_all(dir).unwrap();
    let mut images: Vec<u8> = [2051, n, 28, 28].iter().flat_map(|w: &u32| w.to_be_bytes()).collect();
    for _ in 0..n {
        images.extend((0..28 * 28).map(|i| {
            if (8..20).contains(&(i / 28)) && (8..20).contains(&(i % 28)) {
                255
            } else {
                0
            }
        }));
    }
    let mut labels: Vec<u8> = [2049, n].iter().flat_map(|w: &u32| w.to_be_bytes()).collect();
    labels.extend((0..n).map(|i| (i % 10) as u8));
    std::fs::write(dir.join("train-images-idx3-ubyte"), images).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), labels).unwrap();
}

/// Whether `path` holds a PNG file.
pub fn is_png(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|bytes| bytes.starts_with(b"\x89PNG\r\n\x1a\n"))
}

/// A refused run: the flags changed from the base ones, then the flag and the value the error
/// message must name.
pub type Refusal<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);

/// Runs `example` with `base` flags changed by each refusal's, and asserts that each run is
/// refused before any work (nothing on stdout: the examples print `data: ...` once their data
/// exist), naming the flag and the value, without creating its `--out-dir` (`dir/out-<i>`).
pub fn assert_refused_before_work(example: &str, base: &[(&str, &str)], refusals: &[Refusal], dir: &Path) {
    for (i, (changes, flag, value)) in refusals.iter().enumerate() {
        let out_dir = dir.join(format!("{example}-out-{i}"));
        let out = run(example, &flags_with(base, changes, &out_dir));
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        let case = format!("{example} {changes:?}: status {}, stderr {stderr:?}", out.status);
        assert!(!out.status.success(), "{case}");
        assert!(stderr.contains(flag) && stderr.contains(value), "{case}");
        assert!(stdout.is_empty(), "{case}: work started: {stdout:?}");
        assert!(!out_dir.exists(), "{case}: {} was created", out_dir.display());
    }
}

/// Runs `example` with the `base` flags into `out_dir`, which must succeed and leave exactly
/// `outputs`; then again with `--epochs 2 --lr 1e300`, which must diverge: an error that says
/// so and that nothing was written, and `outputs` as they were, byte for byte.
#[allow(dead_code)] // Not every CLI test file has a training run that can diverge.
pub fn assert_divergence_keeps_outputs(example: &str, base: &[(&str, &str)], out_dir: &Path, outputs: &[&str]) {
    let out = run(example, &flags_with(base, &[], out_dir));
    assert!(out.status.success(), "{example}: {}", text(&out.stderr));
    let read = || -> Vec<Vec<u8>> {
        outputs
            .iter()
            .map(|f| std::fs::read(out_dir.join(f)).unwrap())
            .collect()
    };
    let before = read();
    let out = run(
        example,
        &flags_with(base, &[("--epochs", "2"), ("--lr", "1e300")], out_dir),
    );
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{example}: {}", text(&out.stdout));
    assert!(
        stderr.contains("diverged") && stderr.contains("nothing was written"),
        "{example}: {stderr}"
    );
    assert!(before == read(), "{example}: a failed run changed the outputs");
    assert_eq!(listing(out_dir), outputs, "{example}");
}
