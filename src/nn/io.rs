//! Weights as `safetensors` files, named as PyTorch's `state_dict` names them, so a model saved
//! here loads into the equivalent PyTorch model with `load_state_dict(safetensors.torch.load_file(..))`.
//! A file holds the parameters and the buffers (a batch norm's running statistics, and its
//! `num_batches_tracked` as PyTorch's `int64`), as a `state_dict` does.
//!
//! Only finite weights are written or read: a NaN or an infinity is what a diverged run leaves,
//! and a file holding one would load into a model that computes NaN, or a plausible number.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use adjoint_plot::write_atomically;
use ndarray::{ArrayD, IxDyn};
use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};

use super::{Buffer, BufferMut, Module};
use crate::error::{Error, Result};
use crate::float::Float;

/// Stands in for a file name where the bytes are not a file's.
const IN_MEMORY: &str = "<memory>";

fn weights_error(op: &'static str, path: &Path, reason: impl ToString) -> Error {
    Error::Weights {
        op,
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// The first value of tensor `name` that is NaN or infinite, as `"0.weight holds NaN at index
/// 17"`: the index counts in row-major order, as in the file and in `ndarray`'s iteration.
fn first_non_finite_in(name: &str, values: impl IntoIterator<Item = f64>) -> Option<String> {
    let (index, value) = values.into_iter().enumerate().find(|(_, v)| !v.is_finite())?;
    Some(format!("{name} holds {value} at index {index}"))
}

/// One `state_dict` entry as a file stores it: an array of the model's type (a parameter, or a
/// buffer such as `running_mean`), or a count (`num_batches_tracked`).
enum Entry<'a, T: Float> {
    Floats(Cow<'a, ArrayD<T>>),
    Count(i64),
}

/// The model's parameters and buffers by name, in PyTorch's `state_dict` order
/// ([`Module::state_dict_keys`]); a name the keys leave out comes last.
fn state_dict<T: Float>(model: &impl Module<T>) -> Vec<(String, Entry<'_, T>)> {
    let parameters = model
        .parameters()
        .into_iter()
        .map(|(name, p)| (name, Entry::Floats(Cow::Borrowed(p.value()))));
    let buffers = model.buffers().into_iter().map(|(name, b)| match b {
        Buffer::Float(values) => (name, Entry::Floats(Cow::Owned(values))),
        Buffer::Count(n) => (name, Entry::Count(n)),
    });
    let mut entries: Vec<_> = parameters.chain(buffers).collect();
    let keys = model.state_dict_keys();
    let position: HashMap<&str, usize> = keys.iter().enumerate().map(|(i, k)| (k.as_str(), i)).collect();
    entries.sort_by_key(|(name, _)| position.get(name.as_str()).copied().unwrap_or(keys.len()));
    entries
}

/// The first parameter or buffer value of `model` that is NaN or infinite, described as
/// `"0.weight holds NaN at index 17"` (the index counts in row-major order; tensors are taken
/// in `state_dict` order), or `None` when all are finite.
///
/// [`save`] and [`to_bytes`] refuse such a model; a training loop can ask first, to stop a
/// diverged run with its own message.
///
/// ```
/// use adjoint::nn::{io, Linear, Module};
/// use rand::{rngs::StdRng, SeedableRng};
///
/// let mut layer = Linear::<f32>::new(3, 2, true, &mut StdRng::seed_from_u64(0))?;
/// assert_eq!(io::first_non_finite(&layer), None);
/// layer.parameters_mut()[0].1.value_mut()[[1, 2]] = f32::NAN;
/// assert_eq!(io::first_non_finite(&layer).as_deref(), Some("weight holds NaN at index 5"));
/// # Ok::<(), adjoint::Error>(())
/// ```
pub fn first_non_finite<T: Float>(model: &impl Module<T>) -> Option<String> {
    state_dict(model).iter().find_map(|(name, entry)| match entry {
        Entry::Floats(values) => first_non_finite_in(name, values.iter().map(|&v| Float::to_f64(v))),
        Entry::Count(_) => None,
    })
}

/// The model's parameters and buffers as `safetensors` bytes, under PyTorch's `state_dict`
/// names: arrays in the element type `T` (`F32` or `F64`), counts such as
/// `num_batches_tracked` as 0-d `I64`, as PyTorch stores them.
///
/// # Errors
/// [`Error::Weights`] if a parameter or buffer holds a NaN or an infinity (naming it and the
/// index), or if serialisation fails (e.g. two parameters with one name).
pub fn to_bytes<T: Float>(model: &impl Module<T>) -> Result<Vec<u8>> {
    encode(model, Path::new(IN_MEMORY))
}

/// [`to_bytes`], with errors naming `path`.
fn encode<T: Float>(model: &impl Module<T>, path: &Path) -> Result<Vec<u8>> {
    if let Some(reason) = first_non_finite(model) {
        return Err(weights_error("save", path, reason));
    }
    let float = if T::NAME == "f32" { Dtype::F32 } else { Dtype::F64 };
    let tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = state_dict(model)
        .into_iter()
        .map(|(name, entry)| match entry {
            Entry::Floats(values) => {
                let data = values
                    .iter()
                    .flat_map(|&v| {
                        if float == Dtype::F32 {
                            (v.to_f64() as f32).to_le_bytes().to_vec()
                        } else {
                            v.to_f64().to_le_bytes().to_vec()
                        }
                    })
                    .collect();
                (name, float, values.shape().to_vec(), data)
            }
            Entry::Count(n) => (name, Dtype::I64, Vec::new(), n.to_le_bytes().to_vec()),
        })
        .collect();
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            TensorView::new(*dtype, shape.clone(), data)
                .map(|v| (name.as_str(), v))
                .map_err(|e| weights_error("save", path, e))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, None).map_err(|e| weights_error("save", path, e))
}

/// Writes the model's parameters and buffers to a `safetensors` file (as [`to_bytes`]),
/// atomically: the bytes go to a temporary file in the same directory, renamed over `path`
/// once complete, so a failed save never leaves a half-written file nor damages the file it
/// would have replaced.
///
/// # Errors
/// [`Error::Weights`] naming the path if a parameter or buffer holds a NaN or an infinity
/// (then nothing is written), or if the file cannot be written.
pub fn save<T: Float>(model: &impl Module<T>, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let bytes = encode(model, path)?;
    write_atomically(path, &bytes).map_err(|e| weights_error("save", path, e))
}

/// The values of tensor `name` in the model's type `T`, from an `F32` or `F64` tensor of
/// `shape`: refused if any is NaN or infinite, or becomes infinite in `T`.
fn decode_floats<T: Float>(view: &TensorView<'_>, name: &str, shape: &[usize], path: &Path) -> Result<ArrayD<T>> {
    if view.shape() != shape {
        return Err(weights_error(
            "load",
            path,
            format!("{name}: shape {:?} in the file, {shape:?} in the model", view.shape()),
        ));
    }
    let stored: Vec<f64> = match view.dtype() {
        Dtype::F32 => view
            .data()
            .as_chunks::<4>()
            .0
            .iter()
            .map(|&c| f32::from_le_bytes(c) as f64)
            .collect(),
        Dtype::F64 => view
            .data()
            .as_chunks::<8>()
            .0
            .iter()
            .map(|&c| f64::from_le_bytes(c))
            .collect(),
        other => {
            return Err(weights_error(
                "load",
                path,
                format!("{name}: dtype {other:?}, expected F32 or F64"),
            ));
        }
    };
    if let Some(reason) = first_non_finite_in(name, stored.iter().copied()) {
        return Err(weights_error("load", path, reason));
    }
    let values: Vec<T> = stored.iter().map(|&v| T::of(v)).collect();
    // An F64 file read into an f32 model: a finite value beyond f32's range becomes ±inf.
    if let Some(index) = values.iter().position(|v| !v.is_finite()) {
        return Err(weights_error(
            "load",
            path,
            format!(
                "{name} holds {:e} at index {index}, beyond the range of {}",
                stored[index],
                T::NAME
            ),
        ));
    }
    ArrayD::from_shape_vec(IxDyn(view.shape()), values).map_err(|e| weights_error("load", path, format!("{name}: {e}")))
}

/// The count in tensor `name`: a 0-d `I64`, as PyTorch stores `num_batches_tracked`, and not
/// negative (no training run leaves a negative count).
fn decode_count(view: &TensorView<'_>, name: &str, path: &Path) -> Result<i64> {
    if view.dtype() != Dtype::I64 {
        return Err(weights_error(
            "load",
            path,
            format!("{name}: dtype {:?}, expected I64 (PyTorch's int64)", view.dtype()),
        ));
    }
    let bytes: Option<[u8; 8]> = view.data().try_into().ok();
    let (true, Some(bytes)) = (view.shape().is_empty(), bytes) else {
        return Err(weights_error(
            "load",
            path,
            format!("{name}: shape {:?} in the file, [] in the model", view.shape()),
        ));
    };
    match i64::from_le_bytes(bytes) {
        n if n < 0 => Err(weights_error(
            "load",
            path,
            format!("{name} holds {n}: a count cannot be negative"),
        )),
        n => Ok(n),
    }
}

/// What [`from_bytes`] read for one entry, before anything is written.
enum Decoded<T: Float> {
    Floats(ArrayD<T>),
    Count(i64),
}

/// Loads parameters and buffers from `safetensors` bytes into the model. Every one must be
/// present with its exact shape, and nothing else may be (PyTorch's strict `load_state_dict`);
/// arrays may be `F32` or `F64`, counts must be `I64`. All or nothing: on error the model is
/// unchanged.
///
/// # Errors
/// [`Error::Weights`] for a malformed file, a missing name, a wrong shape or dtype, a NaN or
/// an infinity, an `F64` value too large for `T` (it would become an infinity), or a negative
/// count.
pub fn from_bytes<T: Float>(model: &mut impl Module<T>, bytes: &[u8], path: &Path) -> Result<()> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| weights_error("load", path, e))?;
    // Strict, like PyTorch's `load_state_dict`: a tensor the model lacks means a different model.
    let entries = state_dict(&*model);
    let mut unexpected: Vec<&str> = file
        .names()
        .into_iter()
        .filter(|n| !entries.iter().any(|(name, _)| name == n))
        .collect();
    if !unexpected.is_empty() {
        unexpected.sort_unstable();
        return Err(weights_error(
            "load",
            path,
            format!("unexpected tensors {unexpected:?}"),
        ));
    }
    // Decode everything first, so a bad tensor leaves the model untouched.
    let mut decoded = HashMap::new();
    for (name, entry) in &entries {
        let view = file
            .tensor(name)
            .map_err(|_| weights_error("load", path, format!("no tensor named {name:?}")))?;
        let value = match entry {
            Entry::Floats(values) => Decoded::Floats(decode_floats(&view, name, values.shape(), path)?),
            Entry::Count(_) => Decoded::Count(decode_count(&view, name, path)?),
        };
        decoded.insert(name.clone(), value);
    }
    drop(entries);
    for (name, p) in model.parameters_mut() {
        if let Some(Decoded::Floats(values)) = decoded.remove(&name) {
            *p.value_mut() = values;
        }
    }
    for (name, buffer) in model.buffers_mut() {
        match (buffer, decoded.remove(&name)) {
            (BufferMut::Float(b), Some(Decoded::Floats(values))) => *b = values,
            (BufferMut::Count(b), Some(Decoded::Count(n))) => *b = n,
            // Decoded from this model's own lists: every name and kind matches.
            _ => {}
        }
    }
    Ok(())
}

/// Loads parameters and buffers from a `safetensors` file (see [`from_bytes`]).
///
/// # Errors
/// [`Error::Weights`] naming the path if it cannot be read, does not match the model, or holds
/// a value that is not finite (see [`from_bytes`]).
pub fn load<T: Float>(model: &mut impl Module<T>, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| weights_error("load", path, e))?;
    from_bytes(model, &bytes, path)
}
