//! Weights as `safetensors` files, named as PyTorch's `state_dict` names them, so a model saved
//! here loads into the equivalent PyTorch model with `load_state_dict(safetensors.torch.load_file(..))`.

use std::path::Path;

use ndarray::{ArrayD, IxDyn};
use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};

use super::Module;
use crate::error::{Error, Result};
use crate::float::Float;

fn weights_error(op: &'static str, path: &Path, reason: impl ToString) -> Error {
    Error::Weights {
        op,
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// The model's parameters as `safetensors` bytes, in the element type `T` (`F32` or `F64`).
///
/// # Errors
/// [`Error::Weights`] if serialisation fails (e.g. two parameters with one name).
pub fn to_bytes<T: Float>(model: &impl Module<T>) -> Result<Vec<u8>> {
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
                .map_err(|e| weights_error("save", Path::new("<memory>"), e))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, None).map_err(|e| weights_error("save", Path::new("<memory>"), e))
}

/// Writes the model's parameters to a `safetensors` file.
///
/// # Errors
/// [`Error::Weights`] naming the path if it cannot be written.
pub fn save<T: Float>(model: &impl Module<T>, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let bytes = to_bytes(model)?;
    std::fs::write(path, bytes).map_err(|e| weights_error("save", path, e))
}

/// Loads parameters from `safetensors` bytes into the model. Every parameter must be present
/// with its exact shape, and nothing else may be (PyTorch's strict `load_state_dict`); `F32`
/// and `F64` files are accepted. All or nothing: on error the model is unchanged.
///
/// # Errors
/// [`Error::Weights`] for a malformed file, a missing name, a wrong shape or dtype.
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
        let values: Vec<T> = match view.dtype() {
            Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|c| T::of(f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64))
                .collect(),
            Dtype::F64 => view
                .data()
                .chunks_exact(8)
                .map(|c| T::of(f64::from_le_bytes(c.try_into().expect("8 bytes"))))
                .collect(),
            other => {
                return Err(weights_error(
                    "load",
                    path,
                    format!("{name}: dtype {other:?}, expected F32 or F64"),
                ));
            }
        };
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
/// [`Error::Weights`] naming the path if it cannot be read or does not match the model.
pub fn load<T: Float>(model: &mut impl Module<T>, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| weights_error("load", path, e))?;
    from_bytes(model, &bytes, path)
}
