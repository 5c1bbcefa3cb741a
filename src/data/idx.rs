//! Reader for the IDX format used by MNIST and Fashion-MNIST.
//!
//! An IDX file is a big-endian header — a `u32` magic number (2051 for
//! images, 2049 for labels) and one `u32` per dimension — followed by the
//! raw `u8` data. Files may be gzip-compressed; compression is detected by
//! the gzip magic bytes, so a renamed file still loads.
//!
//! The header is read first and the data after it only up to the size the
//! header announces (plus one byte, to notice a file that is too long), so a
//! small `.gz` file that would inflate to gigabytes is refused after a few
//! kilobytes.

use std::fs::File;
use std::io::{Cursor, ErrorKind, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use ndarray::Array3;

use super::{DataError, Dataset};

/// Magic number of an IDX file of `u8` images (`[n, rows, cols]`).
pub const IMAGES_MAGIC: u32 = 2051;
/// Magic number of an IDX file of `u8` labels (`[n]`).
pub const LABELS_MAGIC: u32 = 2049;

/// The most data bytes an IDX file may announce: 1 GiB. The largest
/// MNIST-format set, EMNIST ByClass, holds 814,255 images of 28 x 28 (638 MB);
/// a dataset keeps each byte as an `f32`, so 1 GiB of pixels already takes
/// 4 GiB of memory. A header announcing more is refused before any data is read.
pub const MAX_DATA_BYTES: usize = 1 << 30;

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
/// zero, the dimensions announce more than [`MAX_DATA_BYTES`], or the data is
/// shorter or longer than the header announces.
pub fn read_idx_images(path: impl AsRef<Path>) -> Result<Array3<u8>, DataError> {
    let path = path.as_ref();
    images_from(open(path)?, path)
}

/// Reads an IDX label file (raw or gzip) into one byte per label.
///
/// Fails under the same conditions as [`read_idx_images`], with magic 2049.
pub fn read_idx_labels(path: impl AsRef<Path>) -> Result<Vec<u8>, DataError> {
    let path = path.as_ref();
    labels_from(open(path)?, path)
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
    images_from(bytes, Path::new(IN_MEMORY))
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
    labels_from(bytes, Path::new(IN_MEMORY))
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

fn open(path: &Path) -> Result<File, DataError> {
    File::open(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn images_from(source: impl Read, path: &Path) -> Result<Array3<u8>, DataError> {
    let (dims, data) = read_idx(source, path, IMAGES_MAGIC, &["count", "rows", "cols"])?;
    let shape = (dims[0], dims[1], dims[2]);
    // read_idx has checked data.len() == count * rows * cols.
    let found = data.len() as u64;
    Array3::from_shape_vec(shape, data).map_err(|_| DataError::Truncated {
        path: path.to_path_buf(),
        expected: dims.iter().map(|&d| d as u64).product(),
        found,
    })
}

fn labels_from(source: impl Read, path: &Path) -> Result<Vec<u8>, DataError> {
    let (_, data) = read_idx(source, path, LABELS_MAGIC, &["count"])?;
    Ok(data)
}

/// Reads one IDX file from `source` (raw or gzip): checks the header against
/// `magic` and the expected dimensions, then reads the data, and returns the
/// dimension sizes and the data bytes.
///
/// The data is read only up to the size the header announces, plus one byte
/// to tell a file that is too long; the size is checked against
/// [`MAX_DATA_BYTES`] before any of it is read. So neither a corrupt header
/// announcing gigabytes nor a small gzip stream inflating to gigabytes costs
/// more than the file's announced, bounded size.
fn read_idx(
    source: impl Read,
    path: &Path,
    magic: u32,
    dim_names: &[&'static str],
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let mut input = IdxInput::new(source, path)?;
    let header_len = 4 + 4 * dim_names.len();
    let truncated = |expected: usize, found: usize| DataError::Truncated {
        path: path.to_path_buf(),
        expected: expected as u64,
        found: found as u64,
    };

    let mut header = Vec::with_capacity(header_len);
    input.read_up_to(&mut header, 4)?;
    let found = be_u32(&header, 0).ok_or_else(|| truncated(header_len, header.len()))?;
    if found != magic {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            expected: magic,
            found,
        });
    }
    input.read_up_to(&mut header, header_len - 4)?;
    if header.len() < header_len {
        return Err(truncated(header_len, header.len()));
    }

    let mut dims = Vec::with_capacity(dim_names.len());
    for (d, &dimension) in dim_names.iter().enumerate() {
        let size = be_u32(&header, 4 + 4 * d).ok_or_else(|| truncated(header_len, header.len()))?;
        if size == 0 {
            return Err(DataError::ZeroDimension {
                path: path.to_path_buf(),
                dimension,
            });
        }
        dims.push(size);
    }
    // Checked: three u32 sizes can multiply past any usize.
    let data_len = dims
        .iter()
        .try_fold(1usize, |len, &size| len.checked_mul(usize::try_from(size).ok()?))
        .filter(|&len| len <= MAX_DATA_BYTES)
        .ok_or_else(|| DataError::TooLarge {
            path: path.to_path_buf(),
            dims: dims.clone(),
            limit: MAX_DATA_BYTES,
        })?;

    let mut data = Vec::new();
    input.read_up_to(&mut data, data_len + 1)?;
    let (expected, found) = (header_len + data_len, header_len + data.len());
    if data.len() < data_len {
        return Err(truncated(expected, found));
    }
    if data.len() > data_len {
        return Err(DataError::TrailingBytes {
            path: path.to_path_buf(),
            expected: expected as u64,
            found: found as u64,
        });
    }
    input.check_complete()?;
    // Each size is a u32 that fitted the checked product, so fits a usize.
    Ok((dims.into_iter().map(|d| d as usize).collect(), data))
}

/// The bytes of an IDX file as they are read: inflated on the way if they
/// start with the gzip magic, with read errors turned into [`DataError`]s
/// naming the file.
struct IdxInput<'a> {
    bytes: Box<dyn Read + 'a>,
    gzip: bool,
    path: &'a Path,
    /// Set when a gzip stream ended before its end was announced. What was
    /// inflated up to the cut is kept, so that a cut in the IDX data is
    /// reported as `Truncated`, with the sizes involved — far more useful than
    /// the decoder's bare "unexpected end of file".
    cut: Option<std::io::Error>,
}

impl<'a> IdxInput<'a> {
    fn new(mut source: impl Read + 'a, path: &'a Path) -> Result<Self, DataError> {
        // Look at the first two bytes, then put them back in front of the rest.
        let mut start = Vec::with_capacity(GZIP_MAGIC.len());
        (&mut source)
            .take(GZIP_MAGIC.len() as u64)
            .read_to_end(&mut start)
            .map_err(|source| DataError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        let gzip = start == GZIP_MAGIC;
        let whole = Cursor::new(start).chain(source);
        let bytes: Box<dyn Read + 'a> = if gzip {
            Box::new(MultiGzDecoder::new(whole))
        } else {
            Box::new(whole)
        };
        Ok(Self {
            bytes,
            gzip,
            path,
            cut: None,
        })
    }

    /// Appends up to `n` more bytes to `buf`; fewer only where the data ends.
    fn read_up_to(&mut self, buf: &mut Vec<u8>, n: usize) -> Result<(), DataError> {
        if self.cut.is_some() {
            return Ok(());
        }
        match (&mut self.bytes).take(n as u64).read_to_end(buf) {
            Ok(_) => Ok(()),
            // read_to_end has appended what came before the error.
            Err(e) if self.gzip && e.kind() == ErrorKind::UnexpectedEof => {
                self.cut = Some(e);
                Ok(())
            }
            Err(source) if self.gzip => Err(DataError::Gzip {
                path: self.path.to_path_buf(),
                source,
            }),
            Err(source) => Err(DataError::Io {
                path: self.path.to_path_buf(),
                source,
            }),
        }
    }

    /// Fails if the gzip stream was cut although all the IDX data came
    /// through: only its trailer (checksum and length) is missing, but the
    /// file is still damaged, so it must not pass.
    fn check_complete(self) -> Result<(), DataError> {
        match self.cut {
            Some(source) => Err(DataError::Gzip {
                path: self.path.to_path_buf(),
                source,
            }),
            None => Ok(()),
        }
    }
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(word.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    /// Counts the bytes read through it.
    struct Counting<'a> {
        bytes: &'a [u8],
        read: usize,
    }

    impl Read for Counting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.bytes.read(buf)?;
            self.read += n;
            Ok(n)
        }
    }

    fn read_images(source: &mut Counting) -> Result<(Vec<usize>, Vec<u8>), DataError> {
        read_idx(source, Path::new("test"), IMAGES_MAGIC, &["count", "rows", "cols"])
    }

    /// One 2 x 2 image: the header, then 20 bytes in all with the pixels.
    fn one_image_header() -> Vec<u8> {
        [IMAGES_MAGIC, 1, 2, 2].iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    /// Reads `bytes`, which hold more than their header announces, checks that they are
    /// refused as too long, and returns how many bytes were read from them.
    fn bytes_read_to_refuse(bytes: &[u8]) -> usize {
        let mut source = Counting { bytes, read: 0 };
        let err = read_images(&mut source).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::TrailingBytes {
                    expected: 20,
                    found: 21,
                    ..
                }
            ),
            "{err}"
        );
        source.read
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    /// A header announcing one 2 x 2 image, its 4 pixels, then 1 GiB of zeros, as about
    /// 1 MiB of gzip: one member per MiB of zeros (a gzip file may hold several members, read
    /// one after the other), so that compressing it takes one MiB's work.
    fn gzip_bomb() -> Vec<u8> {
        const MIB: usize = 1 << 20;
        let mut first = one_image_header();
        first.extend([0, 64, 128, 255]);
        first.resize(first.len() + MIB, 0);
        let mut bomb = gzip(&first);
        let zeros = gzip(&vec![0; MIB]);
        for _ in 1..1024 {
            bomb.extend(&zeros);
        }
        bomb
    }

    #[test]
    fn a_gzip_bomb_is_inflated_only_one_byte_past_its_announced_data() {
        let bomb = gzip_bomb();
        let read = bytes_read_to_refuse(&bomb);
        // The decoder reads its input in buffers of 32 KiB; the whole bomb is 30 times that.
        assert!(read <= 64 << 10, "{read} of the bomb's {} bytes were read", bomb.len());
    }

    #[test]
    fn a_raw_file_is_read_only_one_byte_past_its_announced_data() {
        let mut bytes = one_image_header();
        bytes.resize(16 + 4 + 1000, 7);
        assert_eq!(bytes_read_to_refuse(&bytes), 21);
        // Without the extra bytes the same file reads, and no further than its end.
        let mut source = Counting {
            bytes: &bytes[..20],
            read: 0,
        };
        assert_eq!(read_images(&mut source).unwrap(), (vec![1, 2, 2], vec![7; 4]));
        assert_eq!(source.read, 20);
    }
}
