//! Integration tests for `adjoint::data`: IDX parsing (on hand-made bytes and
//! on the real MNIST test set when it is available), the synthetic shape set,
//! dataset splitting and mini-batching.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use adjoint::data::idx::MAX_DATA_BYTES;
use adjoint::data::{
    Batches, DataError, Dataset, ShapeKind, load_mnist_dir, parse_idx_images, parse_idx_labels, read_idx_images,
    read_idx_labels, shapes::MIN_IMAGE_SIZE, synthetic_shapes,
};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use ndarray::{Array4, Axis};

// ---------------------------------------------------------------- helpers

const MNIST_IMAGES: &str = "t10k-images-idx3-ubyte.gz";
const MNIST_LABELS: &str = "t10k-labels-idx1-ubyte.gz";

/// The shared MNIST test set, or `None` (with a note) when it is absent.
fn mnist_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist");
    if dir.join(MNIST_IMAGES).is_file() && dir.join(MNIST_LABELS).is_file() {
        Some(dir)
    } else {
        eprintln!("note: MNIST not found at {}; skipping", dir.display());
        None
    }
}

/// A scratch directory removed on drop; unique per process and test so
/// tests can run in parallel.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("adjoint-data-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// IDX image bytes for `n` images of `rows` x `cols`, pixel value = its
/// position in the file modulo 256 (so every byte's placement is checkable).
fn idx_images(n: u32, rows: u32, cols: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    for word in [2051, n, rows, cols] {
        bytes.extend(word.to_be_bytes());
    }
    bytes.extend((0..n * rows * cols).map(|i| (i % 256) as u8));
    bytes
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend(2049u32.to_be_bytes());
    bytes.extend((labels.len() as u32).to_be_bytes());
    bytes.extend(labels);
    bytes
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

fn bits(images: &Array4<f32>) -> Vec<u32> {
    images.iter().map(|v| v.to_bits()).collect()
}

// ---------------------------------------------------------------- real MNIST

#[test]
fn mnist_test_set_reads_with_expected_shape_values_and_labels() {
    let Some(dir) = mnist_dir() else { return };
    let images = read_idx_images(dir.join(MNIST_IMAGES)).unwrap();
    assert_eq!(images.shape(), &[10_000, 28, 28]);
    let labels = read_idx_labels(dir.join(MNIST_LABELS)).unwrap();
    assert_eq!(labels.len(), 10_000);
    assert_eq!(labels[..10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    assert!(labels.iter().all(|&l| l < 10));

    let data = load_mnist_dir(&dir).unwrap();
    assert_eq!(data.images.shape(), &[10_000, 1, 28, 28]);
    assert_eq!(data.labels.as_deref(), Some(&labels[..]));
    assert!(data.images.iter().all(|&v| (0.0..=1.0).contains(&v)));
    assert_eq!(data.images.iter().cloned().fold(0.0, f32::max), 1.0);
    assert_eq!(data.images[[0, 0, 14, 14]], f32::from(images[[0, 14, 14]]) / 255.0);
    // Digits are centred: the border is dark, the middle is not.
    let first = data.images.index_axis(Axis(0), 0);
    assert_eq!(first[[0, 0, 0]], 0.0);
    assert!(first.iter().filter(|&&v| v > 0.5).count() > 50);

    let (train, valid) = data.split_at(9_000).unwrap();
    assert_eq!((train.len(), valid.len()), (9_000, 1_000));
    assert_eq!(valid.labels.unwrap()[..], labels[9_000..]);
}

#[test]
fn mnist_truncated_gzip_copy_is_reported_as_truncated() {
    let Some(dir) = mnist_dir() else { return };
    let original = std::fs::read(dir.join(MNIST_IMAGES)).unwrap();
    let tmp = TempDir::new("truncated-gz");
    let cut = tmp.write("t10k-images-idx3-ubyte.gz", &original[..original.len() / 3]);
    tmp.write(MNIST_LABELS, &std::fs::read(dir.join(MNIST_LABELS)).unwrap());

    match read_idx_images(&cut) {
        Err(DataError::Truncated { path, expected, found }) => {
            assert_eq!(path, cut);
            assert_eq!(expected, 16 + 10_000 * 28 * 28);
            assert!(found > 0 && found < expected);
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
    let err = load_mnist_dir(&tmp.0).unwrap_err();
    assert!(matches!(err, DataError::Truncated { .. }), "{err}");
}

#[test]
fn mnist_truncated_raw_labels_are_reported_as_truncated() {
    let Some(dir) = mnist_dir() else { return };
    let raw = gunzip(&std::fs::read(dir.join(MNIST_LABELS)).unwrap());
    assert_eq!(raw.len(), 8 + 10_000);
    let tmp = TempDir::new("truncated-raw");
    let cut = tmp.write("t10k-labels-idx1-ubyte", &raw[..5_000]);
    assert!(matches!(
        read_idx_labels(&cut),
        Err(DataError::Truncated {
            expected: 10_008,
            found: 5_000,
            ..
        })
    ));
}

#[test]
fn mnist_file_of_the_wrong_kind_is_a_bad_magic() {
    let Some(dir) = mnist_dir() else { return };
    let images_path = dir.join(MNIST_IMAGES);
    match read_idx_labels(&images_path) {
        Err(DataError::BadMagic { path, expected, found }) => {
            assert_eq!((path, expected, found), (images_path, 2049, 2051))
        }
        other => panic!("expected BadMagic, got {other:?}"),
    }
    let err = read_idx_images(dir.join(MNIST_LABELS)).unwrap_err();
    assert!(matches!(
        err,
        DataError::BadMagic {
            expected: 2051,
            found: 2049,
            ..
        }
    ));
    let message = err.to_string();
    assert!(message.contains(MNIST_LABELS) && message.contains("2051") && message.contains("2049"));
}

// ---------------------------------------------------------------- IDX parsing

#[test]
fn idx_round_trip_raw_and_gzip() {
    let bytes = idx_images(3, 4, 5);
    for input in [bytes.clone(), gzip(&bytes)] {
        let images = parse_idx_images(&input).unwrap();
        assert_eq!(images.shape(), &[3, 4, 5]);
        // Row-major: image 2, row 1, col 3 is byte 2*20 + 1*5 + 3 of the body.
        assert_eq!(images[[2, 1, 3]], 48);
    }
    let labels = idx_labels(&[3, 1, 4, 1, 5]);
    assert_eq!(parse_idx_labels(&labels).unwrap(), [3, 1, 4, 1, 5]);
    assert_eq!(parse_idx_labels(&gzip(&labels)).unwrap(), [3, 1, 4, 1, 5]);
}

#[test]
fn idx_gzip_is_detected_by_content_not_file_name() {
    let tmp = TempDir::new("detect-gzip");
    let bytes = idx_images(2, 3, 3);
    let gz_without_suffix = tmp.write("images", &gzip(&bytes));
    let raw_with_suffix = tmp.write("images.gz", &bytes);
    assert_eq!(
        read_idx_images(gz_without_suffix).unwrap(),
        read_idx_images(raw_with_suffix).unwrap()
    );
}

#[test]
fn idx_truncated_header_and_body() {
    let bytes = idx_images(2, 3, 3);
    assert!(matches!(
        parse_idx_images(&[]),
        Err(DataError::Truncated {
            expected: 16,
            found: 0,
            ..
        })
    ));
    assert!(matches!(
        parse_idx_images(&bytes[..10]),
        Err(DataError::Truncated {
            expected: 16,
            found: 10,
            ..
        })
    ));
    assert!(matches!(
        parse_idx_images(&bytes[..20]),
        Err(DataError::Truncated {
            expected: 34,
            found: 20,
            ..
        })
    ));
    assert!(matches!(
        parse_idx_labels(&idx_labels(&[1, 2, 3])[..9]),
        Err(DataError::Truncated {
            expected: 11,
            found: 9,
            ..
        })
    ));
    // The same cut inside a gzip stream is reported the same way.
    let gz = gzip(&idx_images(50, 28, 28));
    let err = parse_idx_images(&gz[..gz.len() / 2]).unwrap_err();
    assert!(matches!(err, DataError::Truncated { expected: 39_216, .. }), "{err}");
}

#[test]
fn idx_trailing_bytes_are_rejected() {
    let mut bytes = idx_images(2, 3, 3);
    bytes.push(0);
    assert!(matches!(
        parse_idx_images(&bytes),
        Err(DataError::TrailingBytes {
            expected: 34,
            found: 35,
            ..
        })
    ));
}

#[test]
fn idx_wrong_magic_and_zero_dimensions() {
    let mut bytes = idx_images(2, 3, 3);
    bytes[2] = 9;
    assert!(matches!(
        parse_idx_images(&bytes),
        Err(DataError::BadMagic {
            expected: 2051,
            found: 2307,
            ..
        })
    ));
    assert!(matches!(
        parse_idx_images(&idx_images(2, 0, 3)),
        Err(DataError::ZeroDimension { dimension: "rows", .. })
    ));
    assert!(matches!(
        parse_idx_images(&idx_images(0, 3, 3)),
        Err(DataError::ZeroDimension { dimension: "count", .. })
    ));
    assert!(matches!(
        parse_idx_labels(&idx_labels(&[])),
        Err(DataError::ZeroDimension { dimension: "count", .. })
    ));
}

/// The file holds more than its header announces: reading stops one byte past the announced
/// data, raw or gzip, from memory or from a file, however much more there is.
#[test]
fn idx_trailing_data_is_read_only_one_byte_past_the_announced_size() {
    let mut long = idx_images(2, 3, 3);
    long.resize(long.len() + (1 << 20), 0);
    let tmp = TempDir::new("trailing");
    let raw_file = tmp.write("raw", &long);
    let gzip_file = tmp.write("gz", &gzip(&long));
    for (what, result) in [
        ("raw bytes", parse_idx_images(&long)),
        ("gzip bytes", parse_idx_images(&gzip(&long))),
        ("a raw file", read_idx_images(&raw_file)),
        ("a gzip file", read_idx_images(&gzip_file)),
    ] {
        let err = result.unwrap_err();
        assert!(
            matches!(
                err,
                DataError::TrailingBytes {
                    expected: 34,
                    found: 35,
                    ..
                }
            ),
            "{what}: {err}"
        );
    }
}

#[test]
fn idx_huge_header_fails_without_allocating() {
    let header = |words: [u32; 4]| words.iter().flat_map(|w| w.to_be_bytes()).collect::<Vec<u8>>();
    // Sizes whose product overflows usize.
    let err = parse_idx_images(&header([2051, u32::MAX, u32::MAX, u32::MAX])).unwrap_err();
    assert!(
        matches!(&err, DataError::TooLarge { dims, limit: MAX_DATA_BYTES, .. } if *dims == [u32::MAX; 3]),
        "{err}"
    );
    assert!(
        err.to_string().contains("[4294967295, 4294967295, 4294967295]"),
        "{err}"
    );
    // 2 GB of pixels: countable, but past the limit, and refused before any data is read.
    let err = parse_idx_images(&header([2051, 2000, 1000, 1000])).unwrap_err();
    assert!(
        matches!(&err, DataError::TooLarge { dims, .. } if *dims == [2000, 1000, 1000]),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "<in-memory IDX data>: IDX dimensions [2000, 1000, 1000] announce more than {MAX_DATA_BYTES} bytes of data"
        )
    );
    let err = parse_idx_labels(&header([2049, u32::MAX, 0, 0])[..8]).unwrap_err();
    assert!(matches!(err, DataError::TooLarge { .. }), "{err}");
    // Within the limit, a short file is truncated as before.
    assert!(matches!(
        parse_idx_images(&header([2051, 1000, 1000, 1000])),
        Err(DataError::Truncated {
            expected: 1_000_000_016,
            found: 16,
            ..
        })
    ));
}

#[test]
fn idx_corrupt_gzip_is_an_error_not_a_panic() {
    let gz = gzip(&idx_images(2, 3, 3));

    // Garbage after the gzip magic.
    let mut garbage = gz.clone();
    for byte in &mut garbage[10..] {
        *byte = 0xff;
    }
    assert!(matches!(parse_idx_images(&garbage), Err(DataError::Gzip { .. })));

    // Only the CRC/length trailer is missing: the payload is complete, but the
    // file is still damaged and must not load.
    assert!(matches!(
        parse_idx_images(&gz[..gz.len() - 4]),
        Err(DataError::Gzip { .. })
    ));

    // A cut inside the gzip header itself.
    assert!(parse_idx_images(&gz[..5]).is_err());
}

// ---------------------------------------------------------------- load_mnist_dir

#[test]
fn mnist_dir_prefers_train_files_and_accepts_raw_or_gzip() {
    let tmp = TempDir::new("prefer-train");
    tmp.write("t10k-images-idx3-ubyte.gz", &gzip(&idx_images(2, 4, 4)));
    tmp.write("t10k-labels-idx1-ubyte", &idx_labels(&[0, 1]));
    let test_only = load_mnist_dir(&tmp.0).unwrap();
    assert_eq!(test_only.images.shape(), &[2, 1, 4, 4]);
    assert_eq!(test_only.labels.as_deref(), Some(&[0, 1][..]));

    tmp.write("train-images-idx3-ubyte", &idx_images(3, 4, 4));
    tmp.write("train-labels-idx1-ubyte.gz", &gzip(&idx_labels(&[5, 6, 7])));
    let train = load_mnist_dir(&tmp.0).unwrap();
    assert_eq!(train.len(), 3);
    assert_eq!(train.labels.as_deref(), Some(&[5, 6, 7][..]));
    assert_eq!(train.images[[0, 0, 0, 1]], 1.0 / 255.0);
}

#[test]
fn mnist_dir_with_mismatched_counts_fails() {
    let tmp = TempDir::new("mismatch");
    tmp.write("t10k-images-idx3-ubyte", &idx_images(3, 4, 4));
    tmp.write("t10k-labels-idx1-ubyte", &idx_labels(&[0, 1]));
    let err = load_mnist_dir(&tmp.0).unwrap_err();
    assert!(
        matches!(err, DataError::CountMismatch { images: 3, labels: 2 }),
        "{err}"
    );
    assert!(err.to_string().contains('3') && err.to_string().contains('2'));
}

#[test]
fn mnist_dir_missing_or_empty_fails_with_useful_messages() {
    let missing = std::env::temp_dir().join("adjoint-data-no-such-dir/mnist");
    let err = load_mnist_dir(&missing).unwrap_err();
    assert!(
        matches!(err, DataError::Io { ref path, .. } if *path == missing),
        "{err}"
    );
    assert!(err.to_string().contains("adjoint-data-no-such-dir"));

    let tmp = TempDir::new("empty");
    let err = load_mnist_dir(&tmp.0).unwrap_err();
    let message = err.to_string();
    match err {
        DataError::MissingFiles { dir, tried } => {
            assert_eq!(dir, tmp.0);
            assert_eq!(
                tried,
                [
                    "train-images-idx3-ubyte",
                    "train-images-idx3-ubyte.gz",
                    "t10k-images-idx3-ubyte",
                    "t10k-images-idx3-ubyte.gz"
                ]
            );
        }
        other => panic!("expected MissingFiles, got {other:?}"),
    }
    assert!(message.contains(&*tmp.0.to_string_lossy()) && message.contains("t10k-images-idx3-ubyte.gz"));
}

#[test]
fn mnist_dir_with_images_but_no_labels_names_the_missing_labels() {
    let tmp = TempDir::new("no-labels");
    tmp.write("train-images-idx3-ubyte", &idx_images(2, 4, 4));
    // A complete test set must not be silently used instead.
    tmp.write("t10k-images-idx3-ubyte", &idx_images(2, 4, 4));
    tmp.write("t10k-labels-idx1-ubyte", &idx_labels(&[0, 1]));
    let err = load_mnist_dir(&tmp.0).unwrap_err();
    assert!(err.to_string().contains("train-labels-idx1-ubyte.gz"), "{err}");
}

// ---------------------------------------------------------------- Dataset

#[test]
fn dataset_split_keeps_order_and_rejects_oversized_splits() {
    let data = synthetic_shapes(100, 16, 5).unwrap();
    let (train, valid) = data.split_at(90).unwrap();
    assert_eq!((train.len(), valid.len()), (90, 10));
    assert_eq!(valid.images.index_axis(Axis(0), 3), data.images.index_axis(Axis(0), 93));
    assert_eq!(train.labels.unwrap()[..], data.labels.as_ref().unwrap()[..90]);

    let (all, none) = data.split_at(100).unwrap();
    assert_eq!((all.len(), none.len()), (100, 0));
    assert!(none.is_empty());

    let err = data.split_at(101).unwrap_err();
    assert!(matches!(
        err,
        DataError::InvalidArgument {
            param: "n_first",
            value: 101,
            ..
        }
    ));
    assert!(err.to_string().contains("101") && err.to_string().contains("100"));
}

#[test]
fn dataset_select_gathers_in_order_and_checks_bounds() {
    let data = synthetic_shapes(6, 12, 2).unwrap();
    let batch = data.select(&[5, 0, 5]).unwrap();
    assert_eq!(batch.shape(), &[3, 1, 12, 12]);
    assert_eq!(batch.index_axis(Axis(0), 1), data.images.index_axis(Axis(0), 0));
    assert_eq!(batch.index_axis(Axis(0), 2), data.images.index_axis(Axis(0), 5));
    let labels = data.labels.as_ref().unwrap();
    assert_eq!(data.select_labels(&[5, 0]).unwrap(), Some(vec![labels[5], labels[0]]));
    assert!(matches!(
        data.select(&[1, 6]),
        Err(DataError::IndexOutOfRange { index: 6, len: 6 })
    ));
    assert_eq!(data.select(&[]).unwrap().shape(), &[0, 1, 12, 12]);
}

#[test]
fn dataset_label_count_is_checked_even_after_field_edits() {
    let images = Array4::<f32>::zeros((4, 1, 2, 2));
    assert!(matches!(
        Dataset::new(images.clone(), Some(vec![1, 2, 3])),
        Err(DataError::CountMismatch { images: 4, labels: 3 })
    ));
    let mut data = Dataset::new(images, None).unwrap();
    data.labels = Some(vec![1]);
    assert!(data.split_at(2).is_err());
    assert!(data.select_labels(&[3]).is_err());
    assert!(Batches::new(&data, 2, None).is_err());
}

// ---------------------------------------------------------------- synthetic shapes

#[test]
fn synthetic_is_bit_identical_for_a_seed_and_differs_across_seeds() {
    let a = synthetic_shapes(300, 28, 17).unwrap();
    let b = synthetic_shapes(300, 28, 17).unwrap();
    assert_eq!(bits(&a.images), bits(&b.images));
    assert_eq!(a.labels, b.labels);
    let c = synthetic_shapes(300, 28, 18).unwrap();
    assert_ne!(bits(&a.images), bits(&c.images));
    // Every image differs, not just a few.
    for i in 0..300 {
        assert_ne!(a.images.index_axis(Axis(0), i), c.images.index_axis(Axis(0), i));
    }
}

#[test]
fn synthetic_smaller_set_is_a_prefix_of_a_larger_one() {
    let small = synthetic_shapes(10, 28, 3).unwrap();
    let large = synthetic_shapes(50, 28, 3).unwrap();
    let (prefix, _) = large.split_at(10).unwrap();
    assert_eq!(small, prefix);
}

#[test]
fn synthetic_values_in_range_and_no_blank_images() {
    for size in [MIN_IMAGE_SIZE, 16, 28, 64] {
        let data = synthetic_shapes(1_000, size, 11).unwrap();
        assert_eq!(data.images.shape(), &[1_000, 1, size, size]);
        assert!(data.images.iter().all(|&v| (0.0..=1.0).contains(&v)));
        for (i, image) in data.images.outer_iter().enumerate() {
            let lit = image.iter().filter(|&&v| v >= 0.25).count();
            assert!(lit >= 3, "image {i} of size {size} has only {lit} lit pixels");
            let peak = image.iter().cloned().fold(0.0, f32::max);
            assert!(peak >= 0.4, "image {i} of size {size} peaks at {peak}");
            // Shapes stay inside the image and leave background around.
            let dark = image.iter().filter(|&&v| v == 0.0).count();
            assert!(dark * 10 >= size * size, "image {i} of size {size} is mostly lit");
        }
    }
}

#[test]
fn synthetic_draws_every_shape_kind_in_fair_proportions() {
    let data = synthetic_shapes(2_000, 28, 8).unwrap();
    let mut counts = [0usize; 5];
    for &label in data.labels.as_ref().unwrap() {
        let kind = ShapeKind::from_label(label).expect("label in 0..5");
        counts[usize::from(kind.label())] += 1;
    }
    for (kind, &count) in ShapeKind::ALL.iter().zip(&counts) {
        assert!((300..500).contains(&count), "{}: {count} of 2000", kind.name());
    }
}

#[test]
fn synthetic_mean_image_differs_by_kind() {
    // Sanity check that the label means something: filled shapes light more
    // pixels than thin strokes.
    let data = synthetic_shapes(2_000, 28, 4).unwrap();
    let labels = data.labels.as_ref().unwrap();
    let mean_lit = |kind: ShapeKind| {
        let chosen: Vec<usize> = (0..data.len()).filter(|&i| labels[i] == kind.label()).collect();
        let images = data.select(&chosen).unwrap();
        images.iter().filter(|&&v| v > 0.25).count() as f32 / chosen.len() as f32
    };
    assert!(mean_lit(ShapeKind::Disc) > mean_lit(ShapeKind::Stroke));
    assert!(mean_lit(ShapeKind::Rectangle) > mean_lit(ShapeKind::Stroke));
}

/// Lit regions (8-connected pixels ≥ 0.25) of an image, by flood fill.
fn lit_regions(image: ndarray::ArrayView2<f32>) -> usize {
    let (h, w) = image.dim();
    let mut seen = vec![false; h * w];
    let mut regions = 0;
    for start in 0..h * w {
        if seen[start] || image[[start / w, start % w]] < 0.25 {
            continue;
        }
        regions += 1;
        let mut stack = vec![start];
        seen[start] = true;
        while let Some(at) = stack.pop() {
            let (y, x) = (at / w, at % w);
            for (dy, dx) in [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)] {
                let (ny, nx) = (y as isize + dy, x as isize + dx);
                if ny < 0 || nx < 0 || ny >= h as isize || nx >= w as isize {
                    continue;
                }
                let next = ny as usize * w + nx as usize;
                if !seen[next] && image[[next / w, next % w]] >= 0.25 {
                    seen[next] = true;
                    stack.push(next);
                }
            }
        }
    }
    regions
}

/// `single_shapes` draws one shape an image (one lit region in each of 1,000), every kind
/// about equally often, while `synthetic_shapes`, the same generator, shows two separate
/// regions in some of its images (63 of these 1,000; its second shapes mostly overlap the
/// first).
#[test]
fn single_shapes_hold_one_shape_each() {
    use adjoint::data::single_shapes;
    let single = single_shapes(1_000, 28, 5).unwrap();
    let regions: Vec<usize> = single
        .images
        .outer_iter()
        .map(|i| lit_regions(i.index_axis(Axis(0), 0)))
        .collect();
    assert!(
        regions.iter().all(|&r| r == 1),
        "{:?}",
        regions.iter().filter(|&&r| r != 1).count()
    );
    let mut counts = [0usize; 5];
    single
        .labels
        .as_ref()
        .unwrap()
        .iter()
        .for_each(|&l| counts[usize::from(l)] += 1);
    assert!(counts.iter().all(|&c| (150..250).contains(&c)), "{counts:?}");

    let mixed = synthetic_shapes(1_000, 28, 5).unwrap();
    let two = mixed
        .images
        .outer_iter()
        .filter(|i| lit_regions(i.index_axis(Axis(0), 0)) >= 2)
        .count();
    assert!(two > 30, "{two} of 1000 mixed images show two shapes");
    assert!(single_shapes(3, 7, 0).is_err());
}

#[test]
fn synthetic_rejects_bad_sizes_without_panicking() {
    assert!(matches!(
        synthetic_shapes(10, MIN_IMAGE_SIZE - 1, 0),
        Err(DataError::InvalidArgument {
            param: "size",
            value: 7,
            ..
        })
    ));
    assert!(synthetic_shapes(10, 0, 0).is_err());
    assert!(matches!(
        synthetic_shapes(usize::MAX, 28, 0),
        Err(DataError::InvalidArgument { param: "n", .. })
    ));
    let empty = synthetic_shapes(0, 28, 0).unwrap();
    assert!(empty.is_empty());
    assert_eq!(empty.images.shape(), &[0, 1, 28, 28]);
}

// ---------------------------------------------------------------- batches

fn epoch_indices(data: &Dataset, batch_size: usize, seed: Option<u64>) -> Vec<Vec<usize>> {
    Batches::new(data, batch_size, seed)
        .unwrap()
        .map(|b| b.indices)
        .collect()
}

#[test]
fn batches_cover_every_index_once_with_right_sizes() {
    let data = synthetic_shapes(23, 8, 1).unwrap();
    for batch_size in [1, 5, 22, 23, 24, 100] {
        for seed in [None, Some(0), Some(7)] {
            let batches = epoch_indices(&data, batch_size, seed);
            let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
            let full = 23 / batch_size;
            let mut expected = vec![batch_size; full];
            if 23 % batch_size != 0 {
                expected.push(23 % batch_size);
            }
            assert_eq!(sizes, expected, "batch_size {batch_size}");

            let mut seen: Vec<usize> = batches.concat();
            seen.sort_unstable();
            assert_eq!(seen, (0..23).collect::<Vec<_>>());
        }
    }
}

#[test]
fn batches_carry_matching_images_and_labels() {
    let data = synthetic_shapes(20, 8, 2).unwrap();
    let labels = data.labels.as_ref().unwrap();
    for batch in Batches::new(&data, 6, Some(3)).unwrap() {
        assert_eq!(batch.images, data.select(&batch.indices).unwrap());
        let expected: Vec<u8> = batch.indices.iter().map(|&i| labels[i]).collect();
        assert_eq!(batch.labels, Some(expected));
    }
    let unlabelled = Dataset::new(data.images.clone(), None).unwrap();
    assert!(Batches::new(&unlabelled, 6, None).unwrap().all(|b| b.labels.is_none()));
}

#[test]
fn batches_drop_last_keeps_only_full_batches() {
    let data = synthetic_shapes(23, 8, 1).unwrap();
    let batches = Batches::new(&data, 5, Some(1)).unwrap().drop_last(true);
    assert_eq!(batches.len(), 4);
    let sizes: Vec<usize> = batches.map(|b| b.images.shape()[0]).collect();
    assert_eq!(sizes, [5, 5, 5, 5]);
    let too_big = Batches::new(&data, 24, None).unwrap().drop_last(true);
    assert_eq!(too_big.count(), 0);
}

#[test]
fn batches_shuffle_is_seeded_and_differs_per_epoch() {
    let data = synthetic_shapes(50, 8, 1).unwrap();
    assert_eq!(epoch_indices(&data, 8, Some(42)), epoch_indices(&data, 8, Some(42)));

    let base = 1_000;
    let epochs: HashSet<Vec<usize>> = (0..5)
        .map(|epoch| epoch_indices(&data, 8, Some(base + epoch)).concat())
        .collect();
    assert_eq!(epochs.len(), 5, "each epoch should get its own order");

    let in_order = epoch_indices(&data, 8, None).concat();
    assert_eq!(in_order, (0..50).collect::<Vec<_>>());
    assert_ne!(epoch_indices(&data, 8, Some(base)).concat(), in_order);
}

#[test]
fn batches_report_exact_length_and_handle_empty_sets() {
    let data = synthetic_shapes(10, 8, 1).unwrap();
    let mut batches = Batches::new(&data, 4, None).unwrap();
    assert_eq!(batches.len(), 3);
    batches.next();
    assert_eq!(batches.len(), 2);
    assert_eq!(batches.order().len(), 10);

    let empty = synthetic_shapes(0, 8, 1).unwrap();
    assert_eq!(Batches::new(&empty, 4, Some(1)).unwrap().count(), 0);
}

#[test]
fn batches_reject_zero_batch_size() {
    let data = synthetic_shapes(10, 8, 1).unwrap();
    let err = Batches::new(&data, 0, Some(1)).unwrap_err();
    assert!(matches!(
        err,
        DataError::InvalidArgument {
            param: "batch_size",
            value: 0,
            ..
        }
    ));
    assert!(err.to_string().contains("batch_size"));
}

// ---------------------------------------------------------------------------------------------
// Synthetic scenes (segmentation and key points)
// ---------------------------------------------------------------------------------------------

mod scenes {
    use adjoint::data::{DataError, KeypointKind, SceneClass, synthetic_scenes};

    #[test]
    fn scenes_are_determined_by_the_seed_and_a_smaller_set_is_a_prefix() {
        let big = synthetic_scenes(12, 48, 5).unwrap();
        assert_eq!(big, synthetic_scenes(12, 48, 5).unwrap());
        let (first, _) = big.split_at(7).unwrap();
        assert_eq!(first, synthetic_scenes(7, 48, 5).unwrap());
        assert_ne!(big, synthetic_scenes(12, 48, 6).unwrap());
    }

    #[test]
    fn scenes_hold_valid_images_masks_and_points() {
        let scenes = synthetic_scenes(200, 64, 1).unwrap();
        assert_eq!(scenes.images.shape(), &[200, 1, 64, 64]);
        assert_eq!(scenes.masks.shape(), &[200, 64, 64]);
        assert!(scenes.images.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(scenes.masks.iter().all(|&c| usize::from(c) < SceneClass::ALL.len()));
        // Every class occurs, and the background is the largest.
        let mut counts = [0usize; 5];
        scenes.masks.iter().for_each(|&c| counts[usize::from(c)] += 1);
        assert!(counts.iter().all(|&n| n > 0), "{counts:?}");
        assert!(counts[0] > counts[1..].iter().sum::<usize>(), "{counts:?}");
        for points in &scenes.keypoints {
            // 2 to 4 shapes, so at most 4 centres; the last shape's points are never hidden.
            let centres = points.iter().filter(|p| p.kind == KeypointKind::Centre).count();
            assert!((1..=4).contains(&centres), "{points:?}");
            for p in points {
                assert!((0.0..=64.0).contains(&p.x) && (0.0..=64.0).contains(&p.y), "{p:?}");
                assert_ne!(p.class, SceneClass::Background);
                if p.kind == KeypointKind::Corner {
                    assert!(matches!(p.class, SceneClass::Rectangle | SceneClass::Triangle), "{p:?}");
                }
            }
        }
    }

    /// Shapes are brighter than the background on average (0.45–1.0 against 0.15, plus the
    /// same noise), so masks and images agree; and a visible centre of a filled shape lies on
    /// a pixel of its own class (all but the rare pixel whose centre a later shape covers
    /// while the exact point stays outside it).
    #[test]
    fn masks_and_points_agree_with_the_images() {
        let scenes = synthetic_scenes(200, 64, 2).unwrap();
        let (mut shape, mut background) = ((0.0f64, 0usize), (0.0f64, 0usize));
        for (v, &c) in scenes.images.iter().zip(scenes.masks.iter()) {
            let acc = if c == 0 { &mut background } else { &mut shape };
            acc.0 += f64::from(*v);
            acc.1 += 1;
        }
        let (shape, background) = (shape.0 / shape.1 as f64, background.0 / background.1 as f64);
        assert!(
            shape > background + 0.4,
            "shape mean {shape}, background mean {background}"
        );
        let (mut agree, mut total) = (0, 0);
        for (i, points) in scenes.keypoints.iter().enumerate() {
            for p in points {
                if p.kind == KeypointKind::Centre && matches!(p.class, SceneClass::Disc | SceneClass::Triangle) {
                    total += 1;
                    agree += usize::from(scenes.masks[[i, p.y as usize, p.x as usize]] == p.class as u8);
                }
            }
        }
        assert!(total > 100 && agree * 100 >= total * 99, "{agree} of {total}");
    }

    /// Where two shapes of different classes meet, the image shows the edge: the pixels two
    /// steps either side of it differ by more than the noise, not by chance (a third of
    /// overlapping pairs differed by less than 0.1 before shapes were kept 0.2 apart, and
    /// then 16% of these pixel pairs, seed 3, differed by less than 0.05; now 3%).
    #[test]
    fn edges_between_shapes_show_in_the_image() {
        let scenes = synthetic_scenes(300, 64, 3).unwrap();
        let (mut faint, mut total) = (0usize, 0usize);
        for (image, mask) in scenes.images.outer_iter().zip(scenes.masks.outer_iter()) {
            let image = image.index_axis(ndarray::Axis(0), 0);
            for y in 0..64 {
                for x in 2..63 {
                    let (a, b) = (mask[[y, x - 1]], mask[[y, x]]);
                    if a != 0 && b != 0 && a != b && mask[[y, x - 2]] == a && mask[[y, x + 1]] == b {
                        total += 1;
                        faint += usize::from((image[[y, x - 2]] - image[[y, x + 1]]).abs() < 0.05);
                    }
                }
            }
        }
        assert!(total > 1000, "{total} edge pixels");
        assert!(
            faint * 100 < total * 8,
            "{faint} of {total} edge pairs differ by less than 0.05"
        );
    }

    /// MNIST digits on a 64 × 64 canvas: every digit class occurs, each mask pixel of a digit
    /// class is bright ink in the image, and the set is determined by the seed.
    #[test]
    fn digit_scenes_from_mnist() {
        use adjoint::data::{digit_scenes, load_mnist_dir};
        let Some(dir) = super::mnist_dir() else { return };
        let digits = load_mnist_dir(&dir).unwrap();
        let scenes = digit_scenes(&digits, 100, 64, 3).unwrap();
        assert_eq!(scenes, digit_scenes(&digits, 100, 64, 3).unwrap());
        let mut counts = [0usize; 11];
        for (&c, &v) in scenes.masks.iter().zip(scenes.images.iter()) {
            counts[usize::from(c)] += 1;
            assert!(c == 0 || v > 0.5, "class {c} on a pixel of {v}");
        }
        assert!(counts.iter().all(|&n| n > 0), "{counts:?}");
        assert!(scenes.keypoints.iter().all(Vec::is_empty));
        let unlabelled = adjoint::data::Dataset::new(digits.images.clone(), None).unwrap();
        assert!(digit_scenes(&unlabelled, 4, 64, 0).is_err());
        assert!(digit_scenes(&digits, 4, 27, 0).is_err());
    }

    #[test]
    fn bad_scene_sizes_are_refused() {
        for size in [0, 31, 1025, usize::MAX] {
            let err = synthetic_scenes(4, size, 0).unwrap_err();
            assert!(matches!(err, DataError::InvalidArgument { param: "size", .. }), "{err}");
        }
        let err = synthetic_scenes(usize::MAX, 64, 0).unwrap_err();
        assert!(matches!(err, DataError::InvalidArgument { param: "n", .. }), "{err}");
        assert!(synthetic_scenes(0, 64, 0).unwrap().is_empty());
    }

    /// The export is what `numpy.load` reads: checked here by parsing the files' headers and
    /// data by hand (the format is fixed by NumPy's spec); `numpy.load` itself read such an
    /// export when this was written (shapes, dtypes and values as here).
    #[test]
    fn scenes_export_as_npy() {
        let scenes = synthetic_scenes(3, 32, 9).unwrap();
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("scenes-npy-{}", std::process::id()));
        scenes.export(&dir).unwrap();
        let read = |name: &str| {
            let bytes = std::fs::read(dir.join(name)).unwrap();
            assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00", "{name}");
            let len = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
            assert_eq!((10 + len) % 64, 0, "{name}: header not aligned");
            let header = String::from_utf8(bytes[10..10 + len].to_vec()).unwrap();
            (header, bytes[10 + len..].to_vec())
        };
        let (header, data) = read("images.npy");
        assert!(
            header.contains("'descr': '<f4'") && header.contains("'shape': (3, 1, 32, 32)"),
            "{header}"
        );
        let first: Vec<f32> = data[..16]
            .chunks(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(first, scenes.images.iter().take(4).copied().collect::<Vec<_>>());
        let (header, data) = read("masks.npy");
        assert!(
            header.contains("'descr': '|u1'") && header.contains("'shape': (3, 32, 32)"),
            "{header}"
        );
        assert_eq!(data, scenes.masks.iter().copied().collect::<Vec<_>>());
        let (header, data) = read("keypoints.npy");
        let total: usize = scenes.keypoints.iter().map(Vec::len).sum();
        assert!(header.contains(&format!("'shape': ({total}, 5)")), "{header}");
        assert_eq!(data.len(), total * 5 * 4);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
