//! NumPy `.npy` files (format version 1.0), so data made here can be read by
//! `numpy.load` and a PyTorch twin can train on exactly the same arrays.
//!
//! A `.npy` file is the magic `\x93NUMPY`, the version `1 0`, a little-endian `u16` header
//! length, an ASCII header (a Python dict literal: dtype, order, shape) padded with spaces to
//! a multiple of 64 bytes and ending in `\n`, then the raw little-endian data in C order.

use std::path::Path;

use super::DataError;

/// An element type `.npy` files can hold here: its NumPy dtype and its little-endian bytes.
pub trait NpyElement: Copy {
    /// The dtype string (`"<f4"`, `"|u1"`, ...).
    const DTYPE: &'static str;
    /// Appends the value's little-endian bytes.
    fn put(self, out: &mut Vec<u8>);
}

impl NpyElement for f32 {
    const DTYPE: &'static str = "<f4";
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl NpyElement for u8 {
    const DTYPE: &'static str = "|u1";
    fn put(self, out: &mut Vec<u8>) {
        out.push(self);
    }
}

/// The bytes of a `.npy` file holding `values` (C order) with `shape`.
///
/// # Errors
/// [`DataError::InvalidArgument`] if `values` does not hold `shape`'s element count.
///
/// # Example
/// ```
/// use adjoint::data::npy::npy_bytes;
/// let bytes = npy_bytes(&[2, 3], &[0u8, 1, 2, 3, 4, 5])?;
/// assert_eq!(&bytes[..6], b"\x93NUMPY");
/// assert_eq!(bytes.len() % 64, 6 % 64); // a 64-byte-aligned header, then 6 bytes of data
/// # Ok::<(), adjoint::data::DataError>(())
/// ```
pub fn npy_bytes<E: NpyElement>(shape: &[usize], values: &[E]) -> Result<Vec<u8>, DataError> {
    let count = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if count != Some(values.len()) {
        return Err(DataError::InvalidArgument {
            param: "values",
            value: values.len(),
            reason: format!("an array of shape {shape:?} holds {count:?} values"),
        });
    }
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    // Python's tuple syntax: a one-element tuple needs its trailing comma.
    let tuple = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {tuple}, }}",
        E::DTYPE
    );
    // Magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + std::mem::size_of_val(values));
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for &v in values {
        v.put(&mut out);
    }
    Ok(out)
}

/// Writes a `.npy` file atomically (a temporary file in the same directory, renamed into place).
///
/// # Errors
/// As [`npy_bytes`], or [`DataError::Io`] if the file cannot be written.
pub fn write_npy<E: NpyElement>(path: &Path, shape: &[usize], values: &[E]) -> Result<(), DataError> {
    let bytes = npy_bytes(shape, values)?;
    crate::plot::write_atomically(path, &bytes).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}
