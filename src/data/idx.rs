//! Reader for the IDX format used by MNIST and Fashion-MNIST.
//!
//! An IDX file is a big-endian header — a `u32` magic number (2051 for
//! images, 2049 for labels) and one `u32` per dimension — followed by the
//! raw `u8` data. Files may be gzip-compressed; compression is detected by
//! the gzip magic bytes, so a renamed file still loads.

use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use ndarray::Array3;

use super::{DataError, Dataset};

/// Magic number of an IDX file of `u8` images (`[n, rows, cols]`).
pub const IMAGES_MAGIC: u32 = 2051;
/// Magic number of an IDX file of `u8` labels (`[n]`).
pub const LABELS_MAGIC: u32 = 2049;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Byte-slice parsers have no file to name in their errors; this stands in.
const IN_MEMORY: &str = "<in-memory IDX data>";

/// The MNIST file-name stems, in order of preference: the training set if
/// present, else the test set.
const STEMS: [(&str, &str); 2] = [
    ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
];

/// Reads an IDX image file (raw or gzip) into an `[n, rows, cols]` array.
///
/// Fails if the file cannot be read, the magic is not 2051, a dimension is
/// zero, or the data is shorter or longer than the header announces.
pub fn read_idx_images(path: impl AsRef<Path>) -> Result<Array3<u8>, DataError> {
    let path = path.as_ref();
    images_from_bytes(&read_file(path)?, path)
}

/// Reads an IDX label file (raw or gzip) into one byte per label.
///
/// Fails under the same conditions as [`read_idx_images`], with magic 2049.
pub fn read_idx_labels(path: impl AsRef<Path>) -> Result<Vec<u8>, DataError> {
    let path = path.as_ref();
    labels_from_bytes(&read_file(path)?, path)
}

/// Parses IDX image bytes (raw or gzip) already in memory.
///
/// ```
/// use adjoint::data::{parse_idx_images, DataError};
///
/// // Header: magic 2051, 1 image of 2 x 2; then 4 pixel bytes.
/// let mut bytes = vec![0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2];
/// bytes.extend([0, 64, 128, 255]);
/// let images = parse_idx_images(&bytes)?;
/// assert_eq!(images.shape(), &[1, 2, 2]);
/// assert_eq!(images[[0, 1, 1]], 255);
///
/// let cut = parse_idx_images(&bytes[..18]);
/// assert!(matches!(cut, Err(DataError::Truncated { expected: 20, found: 18, .. })));
/// # Ok::<(), DataError>(())
/// ```
pub fn parse_idx_images(bytes: &[u8]) -> Result<Array3<u8>, DataError> {
    let origin = Path::new(IN_MEMORY);
    images_from_bytes(&decompress(bytes, origin)?, origin)
}

/// Parses IDX label bytes (raw or gzip) already in memory.
///
/// ```
/// use adjoint::data::{parse_idx_labels, DataError};
///
/// let bytes = [0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1];
/// assert_eq!(parse_idx_labels(&bytes)?, vec![7, 2, 1]);
///
/// let mut wrong = bytes;
/// wrong[3] = 3; // the image magic, 2051
/// assert!(matches!(
///     parse_idx_labels(&wrong),
///     Err(DataError::BadMagic { expected: 2049, found: 2051, .. })
/// ));
/// # Ok::<(), DataError>(())
/// ```
pub fn parse_idx_labels(bytes: &[u8]) -> Result<Vec<u8>, DataError> {
    let origin = Path::new(IN_MEMORY);
    labels_from_bytes(&decompress(bytes, origin)?, origin)
}

/// Loads an MNIST-style directory into a labelled [`Dataset`].
///
/// Looks for `train-images-idx3-ubyte` / `train-labels-idx1-ubyte` first,
/// then `t10k-images-idx3-ubyte` / `t10k-labels-idx1-ubyte`, each with or
/// without `.gz`. The first stem whose images file exists is used, and its
/// labels file must exist too: silently falling back to the test set when
/// only the training labels are missing would be a nasty surprise. The same
/// names are used by Fashion-MNIST.
///
/// ```
/// use adjoint::data::{load_mnist_dir, DataError};
///
/// let err = load_mnist_dir(std::env::temp_dir()).unwrap_err();
/// assert!(matches!(err, DataError::MissingFiles { .. }));
/// ```
pub fn load_mnist_dir(dir: impl AsRef<Path>) -> Result<Dataset, DataError> {
    let dir = dir.as_ref();
    // Distinguish "no such directory" from "directory without MNIST files".
    std::fs::read_dir(dir).map_err(|source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    })?;

    let mut tried = Vec::new();
    for (images_stem, labels_stem) in STEMS {
        let Some(images_path) = find_variant(dir, images_stem, &mut tried) else {
            continue;
        };
        let mut tried_labels = Vec::new();
        let labels_path = find_variant(dir, labels_stem, &mut tried_labels).ok_or_else(|| DataError::MissingFiles {
            dir: dir.to_path_buf(),
            tried: tried_labels,
        })?;
        let images = read_idx_images(&images_path)?;
        let labels = read_idx_labels(&labels_path)?;
        return Dataset::from_u8_images(&images, Some(labels));
    }
    Err(DataError::MissingFiles {
        dir: dir.to_path_buf(),
        tried,
    })
}

/// Returns the first existing `stem` or `stem.gz` in `dir`, recording the
/// names looked for so a failure can list them.
fn find_variant(dir: &Path, stem: &str, tried: &mut Vec<String>) -> Option<PathBuf> {
    [stem.to_string(), format!("{stem}.gz")].into_iter().find_map(|name| {
        let path = dir.join(&name);
        tried.push(name);
        path.is_file().then_some(path)
    })
}

fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decompress(&bytes, path)
}

/// Inflates gzip data; returns anything else unchanged.
///
/// A stream that ends early keeps what was inflated, so that the IDX parser
/// can report the cut as `Truncated` with the sizes involved — far more
/// useful than the decoder's bare "unexpected end of file".
fn decompress(bytes: &[u8], origin: &Path) -> Result<Vec<u8>, DataError> {
    if !bytes.starts_with(&GZIP_MAGIC) {
        return Ok(bytes.to_vec());
    }
    let mut out = Vec::new();
    match MultiGzDecoder::new(bytes).read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
            // Only the gzip trailer may be missing while the IDX payload is
            // complete; the file is still damaged, so it must not pass.
            if idx_payload_is_complete(&out) {
                Err(DataError::Gzip {
                    path: origin.to_path_buf(),
                    source: e,
                })
            } else {
                Ok(out)
            }
        }
        Err(source) => Err(DataError::Gzip {
            path: origin.to_path_buf(),
            source,
        }),
    }
}

/// True when `bytes` hold at least the data their own header announces.
fn idx_payload_is_complete(bytes: &[u8]) -> bool {
    let Some(&ndim) = bytes.get(3) else {
        return false;
    };
    let header_len = 4 + 4 * u64::from(ndim);
    let data_len = (0..usize::from(ndim))
        .map(|d| be_u32(bytes, 4 + 4 * d).map(u64::from))
        .try_fold(1u64, |acc, dim| dim.map(|dim| acc.saturating_mul(dim)));
    data_len.is_some_and(|len| bytes.len() as u64 >= header_len.saturating_add(len))
}

fn images_from_bytes(bytes: &[u8], path: &Path) -> Result<Array3<u8>, DataError> {
    let (dims, data) = split_idx(bytes, path, IMAGES_MAGIC, &["count", "rows", "cols"])?;
    let shape = (dims[0], dims[1], dims[2]);
    // split_idx has checked data.len() == count * rows * cols.
    Array3::from_shape_vec(shape, data.to_vec()).map_err(|_| DataError::Truncated {
        path: path.to_path_buf(),
        expected: dims.iter().map(|&d| d as u64).product(),
        found: data.len() as u64,
    })
}

fn labels_from_bytes(bytes: &[u8], path: &Path) -> Result<Vec<u8>, DataError> {
    let (_, data) = split_idx(bytes, path, LABELS_MAGIC, &["count"])?;
    Ok(data.to_vec())
}

/// Validates an IDX header against `magic` and the expected dimensions and
/// returns the dimension sizes and the data bytes.
///
/// Sizes are checked before anything is allocated, so a corrupt header
/// announcing gigabytes costs nothing.
fn split_idx<'a>(
    bytes: &'a [u8],
    path: &Path,
    magic: u32,
    dim_names: &[&'static str],
) -> Result<(Vec<usize>, &'a [u8]), DataError> {
    let header_len = 4 + 4 * dim_names.len();
    let truncated = |expected: u64| DataError::Truncated {
        path: path.to_path_buf(),
        expected,
        found: bytes.len() as u64,
    };

    let found = be_u32(bytes, 0).ok_or_else(|| truncated(header_len as u64))?;
    if found != magic {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            expected: magic,
            found,
        });
    }
    if bytes.len() < header_len {
        return Err(truncated(header_len as u64));
    }

    let mut dims = Vec::with_capacity(dim_names.len());
    let mut data_len = 1u64;
    for (d, &dimension) in dim_names.iter().enumerate() {
        let size = be_u32(bytes, 4 + 4 * d).ok_or_else(|| truncated(header_len as u64))?;
        if size == 0 {
            return Err(DataError::ZeroDimension {
                path: path.to_path_buf(),
                dimension,
            });
        }
        data_len = data_len.saturating_mul(u64::from(size));
        dims.push(size as usize);
    }

    let expected = (header_len as u64).saturating_add(data_len);
    let found = bytes.len() as u64;
    if found < expected {
        return Err(truncated(expected));
    }
    if found > expected {
        return Err(DataError::TrailingBytes {
            path: path.to_path_buf(),
            expected,
            found,
        });
    }
    Ok((dims, &bytes[header_len..]))
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(word.try_into().ok()?))
}
