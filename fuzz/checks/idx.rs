//! What the IDX reader must do with any bytes, checked by the `idx` fuzz target and replayed on
//! the committed corpus by `tests/fuzz_corpus.rs` (both include this file).
//!
//! The first input byte picks how the rest reaches the parsers:
//!
//! | `byte0 % 3` | file given to the parsers | IDX bytes the parsers must see |
//! |---|---|---|
//! | 0 | the rest, raw (it may itself start with the gzip magic) | the rest, or its inflation |
//! | 1 | the rest, gzipped | the rest |
//! | 2 | the rest gzipped, then cut to `byte1/256` of its length | the rest, or a refusal |
//!
//! Both parsers run on every input and must return `Ok` or `Err`, never panic. When `Ok`, the
//! result is exactly what the header announces: `[n, rows, cols]` images or `n` labels, with
//! the bytes after the header as data. When the IDX bytes are well formed (right magic, no zero
//! size, exactly `n·rows·cols` data bytes), the parser must accept them. Memory is bounded by
//! libFuzzer's `-rss_limit_mb` / `-malloc_limit_mb`, not here.

use std::io::{Read, Write};

use adjoint::data::{parse_idx_images, parse_idx_labels};
use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;

const IMAGES_MAGIC: u32 = 2051;
const LABELS_MAGIC: u32 = 2049;

/// Runs both parsers on the file `input` describes and checks the results.
pub fn check(input: &[u8]) {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    match mode % 3 {
        0 => check_file(rest, raw_contents(rest).as_deref()),
        1 => check_file(&gzip(rest), Some(rest)),
        _ => {
            let Some((&cut, rest)) = rest.split_first() else {
                return;
            };
            let mut file = gzip(rest);
            let keep = file.len() * usize::from(cut) / 256;
            file.truncate(keep);
            check_cut_gzip(&file, rest);
        }
    }
}

/// Inflating more than this to know what a raw gzip file holds is left to the parsers alone,
/// so that the check itself never allocates much.
const MAX_INFLATED: u64 = 1 << 24;

/// The IDX bytes a raw file stands for: itself, or its inflation if it is gzip (`None` if it
/// starts like gzip but does not inflate cleanly or inflates to more than [`MAX_INFLATED`]
/// bytes: then only self-consistency is checked).
fn raw_contents(file: &[u8]) -> Option<Vec<u8>> {
    if !file.starts_with(&[0x1f, 0x8b]) {
        return Some(file.to_vec());
    }
    let mut out = Vec::new();
    MultiGzDecoder::new(file)
        .take(MAX_INFLATED + 1)
        .read_to_end(&mut out)
        .ok()?;
    (out.len() as u64 <= MAX_INFLATED).then_some(out)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).expect("writing to a Vec");
    encoder.finish().expect("writing to a Vec")
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// The header sizes of well-formed IDX bytes with `magic` and `ndim` sizes, `None` otherwise.
fn well_formed(idx: &[u8], magic: u32, ndim: usize) -> Option<Vec<usize>> {
    if be_u32(idx, 0)? != magic {
        return None;
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|d| be_u32(idx, 4 + 4 * d).map(|v| v as usize))
        .collect::<Option<_>>()?;
    let data_len = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))?;
    let exact = (idx.len() as u64).checked_sub(4 + 4 * ndim as u64) == Some(data_len);
    (exact && !dims.contains(&0)).then_some(dims)
}

/// Parses `file` both ways; `idx` is the IDX content it stands for, when known.
fn check_file(file: &[u8], idx: Option<&[u8]>) {
    let images = parse_idx_images(file);
    let labels = parse_idx_labels(file);
    if let Ok(images) = &images {
        let [n, rows, cols] = images.shape() else {
            unreachable!("an Array3")
        };
        assert!(
            n * rows * cols > 0,
            "accepted images with a zero size: {:?}",
            images.shape()
        );
        assert!(images.is_standard_layout());
        if let Some(idx) = idx {
            let dims = well_formed(idx, IMAGES_MAGIC, 3)
                .unwrap_or_else(|| panic!("accepted malformed IDX images ({} bytes)", idx.len()));
            assert_eq!(images.shape(), dims.as_slice(), "image shape differs from the header");
            assert_eq!(images.as_slice(), Some(&idx[16..]), "image data differs from the file");
        }
    }
    if let Ok(labels) = &labels {
        assert!(!labels.is_empty(), "accepted zero labels");
        if let Some(idx) = idx {
            let dims = well_formed(idx, LABELS_MAGIC, 1)
                .unwrap_or_else(|| panic!("accepted malformed IDX labels ({} bytes)", idx.len()));
            assert_eq!(labels.len(), dims[0], "label count differs from the header");
            assert_eq!(labels.as_slice(), &idx[8..], "label data differs from the file");
        }
    }
    if let Some(idx) = idx {
        if well_formed(idx, IMAGES_MAGIC, 3).is_some() {
            assert!(images.is_ok(), "refused well-formed IDX images: {:?}", images.err());
        }
        if well_formed(idx, LABELS_MAGIC, 1).is_some() {
            assert!(labels.is_ok(), "refused well-formed IDX labels: {:?}", labels.err());
        }
    }
}

/// A gzip stream cut short: refusing it is right (the file is damaged); accepting it is
/// acceptable only if it gives exactly what the whole stream holds.
fn check_cut_gzip(file: &[u8], idx: &[u8]) {
    if let Ok(images) = parse_idx_images(file) {
        let whole = parse_idx_images(&gzip(idx)).expect("a cut stream parsed but the whole one does not");
        assert_eq!(images, whole, "a cut gzip stream parsed to other images");
    }
    if let Ok(labels) = parse_idx_labels(file) {
        let whole = parse_idx_labels(&gzip(idx)).expect("a cut stream parsed but the whole one does not");
        assert_eq!(labels, whole, "a cut gzip stream parsed to other labels");
    }
}

/// Small valid inputs to start the fuzzer from, named for the corpus: images and labels, raw
/// and gzipped (byte 0 picks the mode, see the module docs).
#[allow(dead_code)] // used by tests/fuzz_corpus.rs, not by the fuzz target
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let images = |n: u32, rows: u32, cols: u32| -> Vec<u8> {
        let mut bytes: Vec<u8> = [IMAGES_MAGIC, n, rows, cols]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        bytes.extend((0..n * rows * cols).map(|i| (i * 37 % 256) as u8));
        bytes
    };
    let labels = |n: u32| -> Vec<u8> {
        let mut bytes: Vec<u8> = [LABELS_MAGIC, n].iter().flat_map(|v| v.to_be_bytes()).collect();
        bytes.extend((0..n).map(|i| (i % 10) as u8));
        bytes
    };
    let mut seeds = Vec::new();
    for (name, idx) in [
        ("images-1x2x2", images(1, 2, 2)),
        ("images-3x4x5", images(3, 4, 5)),
        ("labels-3", labels(3)),
        ("labels-17", labels(17)),
    ] {
        seeds.push((format!("seed-raw-{name}"), [&[0u8][..], &idx].concat()));
        seeds.push((format!("seed-gzip-{name}"), [&[1u8][..], &idx].concat()));
        seeds.push((format!("seed-cut-{name}"), [&[2u8, 200][..], &idx].concat()));
        seeds.push((format!("seed-rawgzip-{name}"), [&[0u8][..], &gzip(&idx)].concat()));
    }
    seeds
}
