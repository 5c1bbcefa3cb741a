//! Elementwise ops: binary ones with broadcasting, and unary ones as `f` / `df` pairs sharing one
//! generic node.

#![allow(clippy::should_implement_trait)] // `add`, `mul`, ... return `Result`, so they cannot be `std::ops`.

use ndarray::ArrayD;

use crate::error::Result;
use crate::float::Float;
use crate::ops::broadcast_shape;
use crate::tape::{Op, Var};

#[derive(Clone, Copy, Debug)]
enum Binary {
    Add,
    Sub,
    Mul,
    Div,
}

impl<T: Float> Op<T> for Binary {
    fn name(&self) -> String {
        format!("{self:?}").to_lowercase()
    }

    /// Each rule gives the gradient at the broadcast shape; `sum_to` folds it back onto each
    /// input's own shape (a broadcast copies, so its gradient sums).
    fn backward<'t>(&self, inputs: &[Var<'t, T>], y: Var<'t, T>, g: Var<'t, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        let (a, b) = (inputs[0], inputs[1]);
        let (grad_a, grad_b) = match self {
            Binary::Add => (g, g),
            Binary::Sub => (g, g.neg()?),
            Binary::Mul => (g.mul(b)?, g.mul(a)?),
            // d(a/b)/db = -a/b² = -y/b
            Binary::Div => (g.div(b)?, g.mul(y)?.div(b)?.neg()?),
        };
        Ok(vec![
            a.requires_grad().then(|| grad_a.sum_to(&a.shape())).transpose()?,
            b.requires_grad().then(|| grad_b.sum_to(&b.shape())).transpose()?,
        ])
    }
}

impl<'t, T: Float> Var<'t, T> {
    fn binary(self, other: Var<'t, T>, op: Binary, name: &'static str) -> Result<Var<'t, T>> {
        let (a, b) = (self.value(), other.value());
        broadcast_shape(name, a.shape(), b.shape())?;
        let y = match op {
            Binary::Add => &*a + &*b,
            Binary::Sub => &*a - &*b,
            Binary::Mul => &*a * &*b,
            Binary::Div => &*a / &*b,
        };
        Ok(self.tape().record(y, &[self, other], op))
    }

    /// `self + other`, elementwise with broadcasting.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] if the shapes do not broadcast.
    pub fn add(self, other: Var<'t, T>) -> Result<Var<'t, T>> {
        self.binary(other, Binary::Add, "add")
    }

    /// `self - other`, elementwise with broadcasting.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] if the shapes do not broadcast.
    pub fn sub(self, other: Var<'t, T>) -> Result<Var<'t, T>> {
        self.binary(other, Binary::Sub, "sub")
    }

    /// `self * other`, elementwise with broadcasting.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] if the shapes do not broadcast.
    pub fn mul(self, other: Var<'t, T>) -> Result<Var<'t, T>> {
        self.binary(other, Binary::Mul, "mul")
    }

    /// `self / other`, elementwise with broadcasting.
    ///
    /// # Errors
    /// [`crate::Error::ShapeMismatch`] if the shapes do not broadcast.
    pub fn div(self, other: Var<'t, T>) -> Result<Var<'t, T>> {
        self.binary(other, Binary::Div, "div")
    }
}

/// Elementwise functions of one value. `f` is the function, `df` multiplies the upstream
/// gradient by its derivative, written with ops so it can be differentiated again.
#[derive(Clone, Copy, Debug)]
enum Unary {
    Neg,
    AddScalar(f64),
    MulScalar(f64),
    Exp,
    Log,
    Sqrt,
    Powf(f64),
    Relu,
    LeakyRelu(f64),
    Sigmoid,
    Tanh,
}

impl Unary {
    fn f<T: Float>(self, x: T) -> T {
        match self {
            Unary::Neg => -x,
            Unary::AddScalar(c) => x + T::of(c),
            Unary::MulScalar(c) => x * T::of(c),
            Unary::Exp => x.exp(),
            Unary::Log => x.ln(),
            Unary::Sqrt => x.sqrt(),
            Unary::Powf(p) => x.powf(T::of(p)),
            Unary::Relu => x.max(T::zero()),
            Unary::LeakyRelu(a) => {
                if x > T::zero() {
                    x
                } else {
                    x * T::of(a)
                }
            }
            Unary::Sigmoid => sigmoid(x),
            Unary::Tanh => x.tanh(),
        }
    }

    /// `g · f'(x)`; where `f'` is cheaper from the output `y = f(x)`, it uses `y`.
    fn df<'t, T: Float>(self, x: Var<'t, T>, y: Var<'t, T>, g: Var<'t, T>) -> Result<Var<'t, T>> {
        match self {
            Unary::Neg => g.neg(),
            Unary::AddScalar(_) => Ok(g),
            Unary::MulScalar(c) => g.mul_scalar(c),
            Unary::Exp => g.mul(y),
            Unary::Log => g.div(x),
            Unary::Sqrt => g.div(y)?.mul_scalar(0.5),
            Unary::Powf(p) => g.mul(x.powf(p - 1.0)?)?.mul_scalar(p),
            // The slope is piecewise constant: a mask, which has no gradient of its own.
            Unary::Relu => g.mul(slope_mask(x, 0.0)),
            Unary::LeakyRelu(a) => g.mul(slope_mask(x, a)),
            // σ' = σ(1 − σ)
            Unary::Sigmoid => g.mul(y.mul(y.neg()?.add_scalar(1.0)?)?),
            // tanh' = 1 − tanh²
            Unary::Tanh => g.mul(y.mul(y)?.neg()?.add_scalar(1.0)?),
        }
    }
}

/// The logistic function, stable for large `|x|` (never evaluates `exp` of a large positive).
pub(crate) fn sigmoid<T: Float>(x: T) -> T {
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}

/// 1 where `x > 0`, `negative_slope` elsewhere, as a constant.
fn slope_mask<'t, T: Float>(x: Var<'t, T>, negative_slope: f64) -> Var<'t, T> {
    let low = T::of(negative_slope);
    x.constant(x.value().mapv(|v| if v > T::zero() { T::one() } else { low }))
}

impl<T: Float> Op<T> for Unary {
    fn name(&self) -> String {
        match self {
            Unary::AddScalar(c) => format!("add_scalar({c})"),
            Unary::MulScalar(c) => format!("mul_scalar({c})"),
            Unary::Powf(p) => format!("powf({p})"),
            Unary::LeakyRelu(a) => format!("leaky_relu({a})"),
            other => format!("{other:?}").to_lowercase(),
        }
    }

    fn backward<'t>(&self, inputs: &[Var<'t, T>], y: Var<'t, T>, g: Var<'t, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        Ok(vec![Some(self.df(inputs[0], y, g)?)])
    }
}

impl<'t, T: Float> Var<'t, T> {
    fn unary(self, op: Unary) -> Result<Var<'t, T>> {
        let y: ArrayD<T> = self.value().mapv(|x| op.f(x));
        Ok(self.tape().record(y, &[self], op))
    }

    /// `-self`.
    pub fn neg(self) -> Result<Var<'t, T>> {
        self.unary(Unary::Neg)
    }

    /// `self + c` for a scalar `c`.
    pub fn add_scalar(self, c: f64) -> Result<Var<'t, T>> {
        self.unary(Unary::AddScalar(c))
    }

    /// `self · c` for a scalar `c`.
    pub fn mul_scalar(self, c: f64) -> Result<Var<'t, T>> {
        self.unary(Unary::MulScalar(c))
    }

    /// `eˣ`.
    pub fn exp(self) -> Result<Var<'t, T>> {
        self.unary(Unary::Exp)
    }

    /// Natural logarithm (NaN below 0, −∞ at 0, as in IEEE arithmetic).
    pub fn log(self) -> Result<Var<'t, T>> {
        self.unary(Unary::Log)
    }

    /// `√x`.
    pub fn sqrt(self) -> Result<Var<'t, T>> {
        self.unary(Unary::Sqrt)
    }

    /// `xᵖ` for a constant exponent `p`.
    pub fn powf(self, p: f64) -> Result<Var<'t, T>> {
        self.unary(Unary::Powf(p))
    }

    /// `max(x, 0)`; its gradient at 0 is taken as 0, as in PyTorch.
    pub fn relu(self) -> Result<Var<'t, T>> {
        self.unary(Unary::Relu)
    }

    /// `x` for `x > 0`, `negative_slope · x` otherwise (PyTorch's default slope is 0.01).
    pub fn leaky_relu(self, negative_slope: f64) -> Result<Var<'t, T>> {
        self.unary(Unary::LeakyRelu(negative_slope))
    }

    /// The logistic function `1 / (1 + e⁻ˣ)`.
    pub fn sigmoid(self) -> Result<Var<'t, T>> {
        self.unary(Unary::Sigmoid)
    }

    /// Hyperbolic tangent.
    pub fn tanh(self) -> Result<Var<'t, T>> {
        self.unary(Unary::Tanh)
    }
}
