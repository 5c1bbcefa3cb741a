//! The weight gradient both ops share: the correlation of the conv's input side (`big`) with
//! its output side (`small`). For a conv, `big = x` and `small = grad_y`; for a transposed conv
//! the roles swap: `big = grad_y`, `small = x`.

use super::conv::{conv_with, record_conv};
use super::conv_transpose::conv_transpose_with;
use super::describe;
use super::kernels::{self, ConvShape};
use crate::error::Result;
use crate::float::Float;
use crate::ops::contiguous;
use crate::ops::size;
use crate::tape::{Op, Var};

struct Correlate {
    shape: ConvShape,
}

impl<T: Float> Op<T> for Correlate {
    fn name(&self) -> String {
        describe("correlate", &self.shape)
    }

    /// `w = corr(big, small)` is defined by `⟨w', corr(big, small)⟩ = ⟨small, conv(big, w')⟩`
    /// for every `w'`. So with upstream `G` (a weight-shaped gradient):
    /// `∂/∂big = conv_transpose(small, G)` and `∂/∂small = conv(big, G)` — the pair again.
    fn backward<'t>(&self, inputs: &[Var<'t, T>], _y: Var<'t, T>, g: Var<'t, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        let (big, small) = (inputs[0], inputs[1]);
        let grad_big = big
            .requires_grad()
            .then(|| conv_transpose_with(small, g, self.shape.clone()))
            .transpose()?;
        let grad_small = small
            .requires_grad()
            .then(|| conv_with(big, g, self.shape.clone()))
            .transpose()?;
        Ok(vec![grad_big, grad_small])
    }
}

/// `big: [n, c_big, big..]`, `small: [n, c_small, small..]` → `[c_small, c_big/g, k..]`.
pub(crate) fn correlate<'t, T: Float>(big: Var<'t, T>, small: Var<'t, T>, shape: ConvShape) -> Result<Var<'t, T>> {
    let (bv, sv) = (big.value(), small.value());
    let w = kernels::correlate(&shape, contiguous(&bv), contiguous(&sv))?;
    record_correlate(big, small, w, shape)
}

/// The transposed conv's backward: [`conv_with`]`(big, w)` and [`correlate`]`(big, small)`,
/// recorded as exactly those two nodes, but computed from one unroll of `big` (the upstream
/// gradient), which both would otherwise unroll alike.
pub(crate) fn conv_and_correlate<'t, T: Float>(
    big: Var<'t, T>,
    w: Var<'t, T>,
    small: Var<'t, T>,
    shape: ConvShape,
) -> Result<(Var<'t, T>, Var<'t, T>)> {
    let (bv, wv, sv) = (big.value(), w.value(), small.value());
    let (y, grad_w) = kernels::gather_and_correlate(&shape, contiguous(&bv), contiguous(&wv), contiguous(&sv))?;
    Ok((
        record_conv(big, w, y, shape.clone())?,
        record_correlate(big, small, grad_w, shape)?,
    ))
}

fn record_correlate<'t, T: Float>(
    big: Var<'t, T>,
    small: Var<'t, T>,
    w: Vec<T>,
    shape: ConvShape,
) -> Result<Var<'t, T>> {
    let dims: Vec<usize> = [shape.c_small, shape.c_big / shape.groups]
        .into_iter()
        .chain(shape.axes.iter().map(|a| a.kernel))
        .collect();
    let w = size::array(&dims, w)?;
    big.tape().record(w, &[big, small], Correlate { shape })
}
