//! Weights as `safetensors` files, named as PyTorch's `state_dict` names them, so a model saved
//! here loads into the equivalent PyTorch model with `load_state_dict(safetensors.torch.load_file(..))`.
//!
//! Only finite weights are written or read: a NaN or an infinity is what a diverged run leaves,
//! and a file holding one would load into a model that computes NaN, or a plausible number.

use std::path::Path;

use adjoint_plot::write_atomically;
use ndarray::{ArrayD, IxDyn};
use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};

use super::Module;
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

/// The first parameter value of `model` that is NaN or infinite, described as `"0.weight holds
/// NaN at index 17"` (the index counts in row-major order), or `None` when all are finite.
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
    model
        .parameters()
        .iter()
        .find_map(|(name, p)| first_non_finite_in(name, p.value().iter().map(|&v| Float::to_f64(v))))
}

/// The model's parameters as `safetensors` bytes, in the element type `T` (`F32` or `F64`).
///
/// # Errors
/// [`Error::Weights`] if a parameter holds a NaN or an infinity (naming it and the index), or
/// if serialisation fails (e.g. two parameters with one name).
pub fn to_bytes<T: Float>(model: &impl Module<T>) -> Result<Vec<u8>> {
    encode(model, Path::new(IN_MEMORY))
}

/// [`to_bytes`], with errors naming `path`.
fn encode<T: Float>(model: &impl Module<T>, path: &Path) -> Result<Vec<u8>> {
    if let Some(reason) = first_non_finite(model) {
        return Err(weights_error("save", path, reason));
    }
    let dtype = if T::NAME == "f32" { Dtype::F32 } else { Dtype::F64 };
    let params = model.parameters();
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = params
        .iter()
        .map(|(name, p)| {
            let data = p
                .value()
                .iter()
                .flat_map(|&v| {
                    if dtype == Dtype::F32 {
                        (v.to_f64() as f32).to_le_bytes().to_vec()
                    } else {
                        v.to_f64().to_le_bytes().to_vec()
                    }
                })
                .collect();
            (name.clone(), p.value().shape().to_vec(), data)
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, shape, data)| {
            TensorView::new(dtype, shape.clone(), data)
                .map(|v| (name.as_str(), v))
                .map_err(|e| weights_error("save", path, e))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, None).map_err(|e| weights_error("save", path, e))
}

/// Writes the model's parameters to a `safetensors` file, atomically: the bytes go to a
/// temporary file in the same directory, renamed over `path` once complete, so a failed save
/// never leaves a half-written file nor damages the file it would have replaced.
///
/// # Errors
/// [`Error::Weights`] naming the path if a parameter holds a NaN or an infinity (then nothing
/// is written), or if the file cannot be written.
pub fn save<T: Float>(model: &impl Module<T>, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let bytes = encode(model, path)?;
    write_atomically(path, &bytes).map_err(|e| weights_error("save", path, e))
}

/// Loads parameters from `safetensors` bytes into the model. Every parameter must be present
/// with its exact shape, and nothing else may be (PyTorch's strict `load_state_dict`); `F32`
/// and `F64` files are accepted. All or nothing: on error the model is unchanged.
///
/// # Errors
/// [`Error::Weights`] for a malformed file, a missing name, a wrong shape or dtype, a NaN or
/// an infinity, or an `F64` value too large for `T` (it would become an infinity).
pub fn from_bytes<T: Float>(model: &mut impl Module<T>, bytes: &[u8], path: &Path) -> Result<()> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| weights_error("load", path, e))?;
    // Strict, like PyTorch's `load_state_dict`: a tensor the model lacks means a different model.
    let params = model.parameters();
    let mut unexpected: Vec<&str> = file
        .names()
        .into_iter()
        .filter(|n| !params.iter().any(|(name, _)| name == n))
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
    let mut decoded = Vec::new();
    for (name, p) in params {
        let view = file
            .tensor(&name)
            .map_err(|_| weights_error("load", path, format!("no tensor named {name:?}")))?;
        if view.shape() != p.value().shape() {
            return Err(weights_error(
                "load",
                path,
                format!(
                    "{name}: shape {:?} in the file, {:?} in the model",
                    view.shape(),
                    p.value().shape()
                ),
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
        if let Some(reason) = first_non_finite_in(&name, stored.iter().copied()) {
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
        let array = ArrayD::from_shape_vec(IxDyn(view.shape()), values)
            .map_err(|e| weights_error("load", path, format!("{name}: {e}")))?;
        decoded.push(array);
    }
    for ((_, p), value) in model.parameters_mut().into_iter().zip(decoded) {
        *p.value_mut() = value;
    }
    Ok(())
}

/// Loads parameters from a `safetensors` file (see [`from_bytes`]).
///
/// # Errors
/// [`Error::Weights`] naming the path if it cannot be read, does not match the model, or holds
/// a value that is not finite (see [`from_bytes`]).
pub fn load<T: Float>(model: &mut impl Module<T>, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| weights_error("load", path, e))?;
    from_bytes(model, &bytes, path)
}
