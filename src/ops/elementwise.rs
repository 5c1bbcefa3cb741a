//! Elementwise ops: binary ones with broadcasting, and unary ones as `f` / `df` pairs sharing one
//! generic node.

#![allow(clippy::should_implement_trait)] // `add`, `mul`, ... return `Result`, so they cannot be `std::ops`.

use ndarray::{ArrayD, Zip};
use rayon::prelude::*;

use super::parallel::PARALLEL_ELEMENTS;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::ops::{broadcast_shape, size};
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
        let shape = broadcast_shape(name, a.shape(), b.shape())?;
        // One closure per op, each its own loop (a shared function pointer would not inline).
        let y = match op {
            Binary::Add => broadcast_map(name, &a, &b, &shape, |a, b| a + b)?,
            Binary::Sub => broadcast_map(name, &a, &b, &shape, |a, b| a - b)?,
            Binary::Mul => broadcast_map(name, &a, &b, &shape, |a, b| a * b)?,
            Binary::Div => broadcast_map(name, &a, &b, &shape, |a, b| a / b)?,
        };
        self.tape().record(y, &[self, other], op)
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
            // Not `x.max(0)`, which drops a NaN for the 0: PyTorch's ReLU keeps NaN (and -0).
            Unary::Relu => {
                if x < T::zero() {
                    T::zero()
                } else {
                    x
                }
            }
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
            Unary::Relu => g.times_slope(Slope::Relu, x),
            Unary::LeakyRelu(a) => g.times_slope(Slope::Leaky(a), x),
            Unary::Sigmoid => g.times_slope(Slope::Sigmoid, y),
            Unary::Tanh => g.times_slope(Slope::Tanh, y),
        }
    }
}

/// `f(a, b)` elementwise over the broadcast `shape` of `a` and `b`: one flat pass when the shapes
/// are equal (the common case); otherwise the output, which broadcasting can make far larger
/// than either input, is checked and reserved first.
fn broadcast_map<T: Float>(
    op: &'static str,
    a: &ArrayD<T>,
    b: &ArrayD<T>,
    shape: &[usize],
    f: impl Fn(T, T) -> T + Sync + Send,
) -> Result<ArrayD<T>> {
    if a.shape() == b.shape() {
        return zip_map(op, a, b, f);
    }
    let mut y = size::zeros(op, "output", shape)?;
    let (Some(a), Some(b)) = (a.broadcast(y.raw_dim()), b.broadcast(y.raw_dim())) else {
        return Err(Error::ShapeMismatch {
            op,
            lhs: a.shape().to_vec(),
            rhs: b.shape().to_vec(),
            reason: "do not broadcast".into(),
        });
    };
    Zip::from(&mut y).and(&a).and(&b).for_each(|y, &a, &b| *y = f(a, b));
    Ok(y)
}

/// `f(a)` elementwise, in one flat pass when `a` is contiguous (tape values always are), into a
/// buffer reserved with `try_reserve`; split over threads for large arrays.
fn map<T: Float>(op: &'static str, a: &ArrayD<T>, f: impl Fn(T) -> T + Sync + Send) -> Result<ArrayD<T>> {
    match a.as_slice() {
        Some(xs) if xs.len() >= PARALLEL_ELEMENTS => {
            let mut out = size::reserve(op, "output", xs.len())?;
            xs.par_iter()
                .with_min_len(PARALLEL_ELEMENTS / 2)
                .map(|&x| f(x))
                .collect_into_vec(&mut out);
            size::array(a.shape(), out)
        }
        Some(xs) => size::array(a.shape(), size::collect(op, "output", xs.iter().map(|&x| f(x)))?),
        None => Ok(a.mapv(f)),
    }
}

/// `f(a, b)` elementwise for two arrays of one shape, as [`map`].
fn zip_map<T: Float>(
    op: &'static str,
    a: &ArrayD<T>,
    b: &ArrayD<T>,
    f: impl Fn(T, T) -> T + Sync + Send,
) -> Result<ArrayD<T>> {
    match (a.as_slice(), b.as_slice()) {
        (Some(xs), Some(ys)) if xs.len() >= PARALLEL_ELEMENTS => {
            let mut out = size::reserve(op, "output", xs.len())?;
            xs.par_iter()
                .zip(ys)
                .with_min_len(PARALLEL_ELEMENTS / 2)
                .map(|(&x, &y)| f(x, y))
                .collect_into_vec(&mut out);
            size::array(a.shape(), out)
        }
        (Some(xs), Some(ys)) => {
            let out = size::collect(op, "output", xs.iter().zip(ys).map(|(&x, &y)| f(x, y)))?;
            size::array(a.shape(), out)
        }
        _ => Ok(Zip::from(a).and(b).map_collect(|&x, &y| f(x, y))),
    }
}

/// An activation's slope, as a function of what its backward keeps: the input `x` for the
/// piecewise-linear ones, the output `y` for sigmoid and tanh.
///
/// At a NaN input the two piecewise slopes differ, as in PyTorch: ReLU's backward asks
/// `x ≤ 0` (false for NaN, so slope 1, passing the gradient on), LeakyReLU's asks `x > 0`
/// (false for NaN, so the negative slope).
#[derive(Clone, Copy, Debug)]
enum Slope {
    /// 0 for `x ≤ 0`, 1 otherwise (NaN included).
    Relu,
    /// 1 for `x > 0`, the given slope otherwise (NaN included).
    Leaky(f64),
    /// σ' = σ(1 − σ), from `y = σ`.
    Sigmoid,
    /// tanh' = 1 − tanh², from `y = tanh`.
    Tanh,
}

impl Slope {
    fn at<T: Float>(self, v: T) -> T {
        match self {
            Slope::Relu => {
                if v <= T::zero() {
                    T::zero()
                } else {
                    T::one()
                }
            }
            Slope::Leaky(a) => {
                if v > T::zero() {
                    T::one()
                } else {
                    T::of(a)
                }
            }
            Slope::Sigmoid => v * (T::one() - v),
            Slope::Tanh => T::one() - v * v,
        }
    }
}

/// `g ⊙ slope(v)`, the backward of an activation as one op: one pass and one array per
/// activation in a training step, where composing `mul`, `neg`, `add_scalar` made four. Its
/// own gradient (for second order) is written with ordinary ops.
#[derive(Clone, Copy, Debug)]
struct TimesSlope(Slope);

impl<T: Float> Op<T> for TimesSlope {
    fn name(&self) -> String {
        format!("times_slope({:?})", self.0).to_lowercase()
    }

    fn backward<'t>(&self, inputs: &[Var<'t, T>], _y: Var<'t, T>, gg: Var<'t, T>) -> Result<Vec<Option<Var<'t, T>>>> {
        let (g, v) = (inputs[0], inputs[1]);
        // Linear in `g`, so its gradient there is the same op; in `v`, the slope's derivative.
        let grad_g = g.requires_grad().then(|| gg.times_slope(self.0, v)).transpose()?;
        let grad_v = match self.0 {
            _ if !v.requires_grad() => None,
            // Piecewise constant: no gradient of its own.
            Slope::Relu | Slope::Leaky(_) => None,
            // d/dv [v(1 − v)] = 1 − 2v
            Slope::Sigmoid => Some(gg.mul(g)?.mul(v.mul_scalar(-2.0)?.add_scalar(1.0)?)?),
            // d/dv [1 − v²] = −2v
            Slope::Tanh => Some(gg.mul(g)?.mul(v)?.mul_scalar(-2.0)?),
        };
        Ok(vec![grad_g, grad_v])
    }
}

impl<'t, T: Float> Var<'t, T> {
    fn times_slope(self, slope: Slope, v: Var<'t, T>) -> Result<Var<'t, T>> {
        let (g, v_value) = (self.value(), v.value());
        // One loop per slope, as in `unary`.
        let y = match slope {
            Slope::Relu => zip_map("times_slope", &g, &v_value, |g, v| g * Slope::Relu.at(v))?,
            Slope::Leaky(a) => zip_map("times_slope", &g, &v_value, |g, v| g * Slope::Leaky(a).at(v))?,
            Slope::Sigmoid => zip_map("times_slope", &g, &v_value, |g, v| g * Slope::Sigmoid.at(v))?,
            Slope::Tanh => zip_map("times_slope", &g, &v_value, |g, v| g * Slope::Tanh.at(v))?,
        };
        self.tape().record(y, &[self, v], TimesSlope(slope))
    }
}

/// The logistic function, stable for large `|x|` (never evaluates `exp` of a large positive).
pub(crate) fn sigmoid<T: Float>(x: T) -> T {
    // One `exp` on either side (`e^(-|x|)` is what each branch needs), so a loop that computes
    // both sides and picks one still calls it once.
    let e = (-x.abs()).exp();
    if x >= T::zero() {
        T::one() / (T::one() + e)
    } else {
        e / (T::one() + e)
    }
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
        let x = self.value();
        // Each function gets a loop of its own: with the `match` of `Unary::f` inside, a loop
        // stays one element at a time (measured: ReLU with its backward ~8% of a small
        // autoencoder's training-step instructions; LeakyReLU took 1.2 ms a call over the
        // DCGAN discriminator's 0.4–0.8 M values, and its own loop made the GAN's step 80 →
        // 75.5 ms).
        let name = "unary";
        let y = match op {
            Unary::Neg => map(name, &x, |v| Unary::Neg.f(v))?,
            Unary::AddScalar(c) => map(name, &x, |v| Unary::AddScalar(c).f(v))?,
            Unary::MulScalar(c) => map(name, &x, |v| Unary::MulScalar(c).f(v))?,
            Unary::Exp => map(name, &x, |v| Unary::Exp.f(v))?,
            Unary::Log => map(name, &x, |v| Unary::Log.f(v))?,
            Unary::Sqrt => map(name, &x, |v| Unary::Sqrt.f(v))?,
            Unary::Powf(p) => map(name, &x, |v| Unary::Powf(p).f(v))?,
            Unary::Relu => map("relu", &x, |v| Unary::Relu.f(v))?,
            Unary::LeakyRelu(a) => map("leaky_relu", &x, |v| Unary::LeakyRelu(a).f(v))?,
            Unary::Sigmoid => map(name, &x, |v| Unary::Sigmoid.f(v))?,
            Unary::Tanh => map(name, &x, |v| Unary::Tanh.f(v))?,
        };
        self.tape().record(y, &[self], op)
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
