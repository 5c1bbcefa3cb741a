//! Replays the committed fuzz corpora through the fuzz targets' own checks, on stable Rust:
//! every file in `fuzz/corpus/{idx,safetensors,conv_options}/` must still pass (see
//! `fuzz/README.md`). The checks are the files the targets include, not copies; a
//! `conv_options` file is decoded as libFuzzer's typed targets decode it
//! (`Arbitrary::arbitrary_take_rest`), with the fuzz crate's version of `arbitrary`.
//!
//! `cargo test --release --test fuzz_corpus -- --ignored` writes the seed inputs (small valid
//! files) into the corpus directories.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

#[path = "../fuzz/checks/conv_options.rs"]
mod conv_options;
#[path = "../fuzz/checks/idx.rs"]
mod idx;
#[path = "../fuzz/checks/safetensors.rs"]
mod safetensors;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target)
}

/// Runs `check` on every file of the target's corpus and names each file that fails.
fn replay(target: &str, check: fn(&[u8])) {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    let failed: Vec<String> = files
        .iter()
        .filter(|path| {
            let bytes = std::fs::read(path).expect("a corpus file");
            catch_unwind(AssertUnwindSafe(|| check(&bytes))).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} {target} corpus files fail (reproduce one with `cargo +nightly fuzz run {target} FILE`):\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

#[test]
fn idx_corpus_passes() {
    replay("idx", idx::check);
}

#[test]
fn safetensors_corpus_passes() {
    replay("safetensors", safetensors::check);
}

/// Includes the inputs that once crashed, hung or returned a wrong shape (overflowing settings,
/// empty outputs of huge spatial sizes): fixed, and kept fixed.
#[test]
fn conv_options_corpus_passes() {
    use arbitrary::{Arbitrary, Unstructured};
    replay("conv_options", |bytes| {
        // Bytes that decode to no case are skipped by the fuzz target too.
        if let Ok(case) = conv_options::Case::arbitrary_take_rest(Unstructured::new(bytes)) {
            conv_options::check(&case);
        }
    });
}

#[test]
fn the_seeds_are_valid_files() {
    for (name, bytes) in idx::seeds() {
        idx::check(&bytes);
        if name.starts_with("seed-cut") {
            continue; // a damaged gzip stream on purpose
        }
        let file = &bytes[1..];
        let parsed = if name.contains("images") {
            adjoint::data::parse_idx_images(file).map(drop)
        } else {
            adjoint::data::parse_idx_labels(file).map(drop)
        };
        assert!(parsed.is_ok(), "{name}: {parsed:?}");
    }
    for (name, bytes) in safetensors::seeds() {
        let mut model = safetensors::model::<f32>();
        let loaded = adjoint::nn::io::from_bytes(&mut model, &bytes, Path::new(&name));
        assert!(loaded.is_ok(), "{name}: {loaded:?}");
    }
}

#[test]
#[ignore = "writes the seed inputs into fuzz/corpus/"]
fn write_seeds() {
    for (target, seeds) in [("idx", idx::seeds()), ("safetensors", safetensors::seeds())] {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).expect("the corpus directory");
        for (name, bytes) in seeds {
            std::fs::write(dir.join(name), bytes).expect("a seed file");
        }
    }
}
