//! Finite-difference gradient checking, for the library's tests and for ops you write yourself.
//!
//! The analytic gradient of `⟨u, f(x)⟩` (for a fixed random `u`) is compared with the central
//! difference `(⟨u, f(x + εeᵢ)⟩ − ⟨u, f(x − εeᵢ)⟩) / 2ε` for every element `i` of every input.
//! A random `u`, rather than all ones, catches rules that transpose or permute the gradient.

use std::fmt;

use ndarray::{ArrayD, IxDyn};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::error::Result;
use crate::ops::unravel;
use crate::tape::{Tape, Var};

/// Tolerances and step of a check; the defaults are PyTorch's `gradcheck` ones.
#[derive(Clone, Debug)]
pub struct GradcheckOptions {
    /// Finite-difference step.
    pub eps: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance: an element passes if `|analytic − numeric| ≤ atol + rtol·|numeric|`.
    pub rtol: f64,
    /// Seed of the random upstream gradient `u` (and of `v` in [`gradgradcheck`]).
    pub seed: u64,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions {
            eps: 1e-6,
            atol: 1e-5,
            rtol: 1e-3,
            seed: 0,
        }
    }
}

/// The outcome of a check: the worst element, and whether every element passed.
#[derive(Clone, Debug)]
pub struct GradcheckReport {
    /// Whether every element was within tolerance.
    pub passed: bool,
    /// Number of gradient elements compared.
    pub checked: usize,
    /// Largest `|analytic − numeric|`.
    pub max_abs_err: f64,
    /// Largest `|analytic − numeric| / max(|numeric|, atol)`.
    pub max_rel_err: f64,
    /// The element that broke the tolerance worst (or the largest error if all passed):
    /// input number, multi-index, analytic and numeric values.
    pub worst: Option<Worst>,
}

/// Where a check's worst error occurred.
#[derive(Clone, Debug)]
pub struct Worst {
    /// Which input (position in the `inputs` slice).
    pub input: usize,
    /// Index of the element in that input.
    pub index: Vec<usize>,
    /// Gradient from `backward`.
    pub analytic: f64,
    /// Gradient from finite differences.
    pub numeric: f64,
}

impl GradcheckReport {
    /// Panics with the report if the check failed: for tests.
    ///
    /// # Panics
    /// If `passed` is false.
    #[track_caller]
    pub fn assert_passed(&self) {
        assert!(self.passed, "gradient check failed: {self}");
    }
}

impl fmt::Display for GradcheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} elements, max abs err {:.3e}, max rel err {:.3e}",
            self.checked, self.max_abs_err, self.max_rel_err
        )?;
        if let Some(w) = &self.worst {
            write!(
                f,
                "; worst at input {} index {:?}: analytic {:.10e}, numeric {:.10e}",
                w.input, w.index, w.analytic, w.numeric
            )?;
        }
        Ok(())
    }
}

/// A function of several values, built on the tape it is given.
pub trait TapeFn: for<'t> Fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Result<Var<'t, f64>> {}
impl<F> TapeFn for F where F: for<'t> Fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Result<Var<'t, f64>> {}

/// Checks the gradients of `f` with respect to each of `inputs` against finite differences.
///
/// `f` receives a fresh tape and the inputs as parameters, and returns any output (a
/// non-scalar output is contracted with a random `u`).
///
/// # Errors
/// Whatever `f` returns; a failed comparison is not an error but `passed == false`.
///
/// # Example
/// ```
/// use adjoint::gradcheck::{gradcheck, GradcheckOptions};
/// use ndarray::{arr1, arr2};
///
/// // d/dx of tanh(x) · w, with w broadcast along the rows
/// let x = arr2(&[[0.1, -0.4], [0.7, 1.2]]).into_dyn();
/// let w = arr1(&[2.0, -3.0]).into_dyn();
/// let report = gradcheck(|_, v| v[0].tanh()?.mul(v[1]), &[x, w], &GradcheckOptions::default())?;
/// assert!(report.passed, "{report}");
/// # Ok::<(), adjoint::Error>(())
/// ```
pub fn gradcheck(f: impl TapeFn, inputs: &[ArrayD<f64>], opts: &GradcheckOptions) -> Result<GradcheckReport> {
    let mut rng = StdRng::seed_from_u64(opts.seed);
    // The upstream gradient: fixed once so every evaluation contracts with the same u.
    let u = {
        let tape = Tape::new();
        let xs: Vec<_> = inputs.iter().map(|x| tape.param(x.clone())).collect();
        random_like(&f(&tape, &xs)?.value(), &mut rng)
    };
    let objective = |xs: &[ArrayD<f64>]| -> Result<f64> {
        let tape = Tape::new();
        // Parameters, not constants: `f` may itself differentiate (see `gradgradcheck`).
        let vars: Vec<_> = xs.iter().map(|x| tape.param(x.clone())).collect();
        let y = f(&tape, &vars)?.value();
        Ok(y.iter().zip(u.iter()).map(|(a, b)| a * b).sum())
    };

    let analytic: Vec<ArrayD<f64>> = {
        let tape = Tape::new();
        let vars: Vec<_> = inputs.iter().map(|x| tape.param(x.clone())).collect();
        let y = f(&tape, &vars)?;
        let grads = tape.backward_with(y, u.clone())?;
        vars.iter()
            .zip(inputs)
            .map(|(&v, x)| grads.get(v).cloned().unwrap_or_else(|| ArrayD::zeros(x.raw_dim())))
            .collect()
    };

    let mut report = GradcheckReport {
        passed: true,
        checked: 0,
        max_abs_err: 0.0,
        max_rel_err: 0.0,
        worst: None,
    };
    let mut worst_score = f64::NEG_INFINITY;
    let mut xs: Vec<ArrayD<f64>> = inputs.to_vec();
    for i in 0..xs.len() {
        let shape = xs[i].shape().to_vec();
        for flat in 0..xs[i].len() {
            let index = unravel(flat, &shape);
            let orig = xs[i][IxDyn(&index)];
            xs[i][IxDyn(&index)] = orig + opts.eps;
            let plus = objective(&xs)?;
            xs[i][IxDyn(&index)] = orig - opts.eps;
            let minus = objective(&xs)?;
            xs[i][IxDyn(&index)] = orig;
            let numeric = (plus - minus) / (2.0 * opts.eps);
            let a = analytic[i][IxDyn(&index)];
            let err = (a - numeric).abs();
            let ok = err <= opts.atol + opts.rtol * numeric.abs();
            report.checked += 1;
            report.passed &= ok;
            report.max_abs_err = report.max_abs_err.max(err);
            report.max_rel_err = report.max_rel_err.max(err / numeric.abs().max(opts.atol));
            // Rank failures above passes, then by how far past the tolerance they are.
            let score = err - (opts.atol + opts.rtol * numeric.abs()) + if ok { 0.0 } else { 1e300 };
            if score > worst_score || a.is_nan() {
                worst_score = score;
                report.worst = Some(Worst {
                    input: i,
                    index,
                    analytic: a,
                    numeric,
                });
            }
            if a.is_nan() || numeric.is_nan() {
                report.passed = false;
            }
        }
    }
    Ok(report)
}

/// Checks second derivatives: the gradients that [`Tape::backward_graph`] records are checked
/// against finite differences of themselves.
///
/// It runs [`gradcheck`] on `x ↦ Σᵢ ⟨vᵢ, ∇ₓᵢ ⟨u, f(x)⟩⟩` for fixed random `u` and `vᵢ`, which
/// is a function whose gradient is a Hessian-vector product of `f`.
///
/// # Errors
/// Whatever `f` returns.
pub fn gradgradcheck(f: impl TapeFn, inputs: &[ArrayD<f64>], opts: &GradcheckOptions) -> Result<GradcheckReport> {
    let mut rng = StdRng::seed_from_u64(opts.seed.wrapping_add(1));
    let u = {
        let tape = Tape::new();
        let xs: Vec<_> = inputs.iter().map(|x| tape.param(x.clone())).collect();
        random_like(&f(&tape, &xs)?.value(), &mut rng)
    };
    let vs: Vec<ArrayD<f64>> = inputs.iter().map(|x| random_like(x, &mut rng)).collect();
    gradcheck(
        |tape, xs| {
            let y = f(tape, xs)?;
            let grads = tape.backward_graph(y, Some(u.clone()))?;
            let mut total: Option<Var<'_, f64>> = None;
            for (x, v) in xs.iter().zip(&vs) {
                if let Some(g) = grads.get(*x) {
                    let term = g.mul(tape.constant(v.clone()))?.sum()?;
                    total = Some(match total {
                        None => term,
                        Some(t) => t.add(term)?,
                    });
                }
            }
            Ok(total.unwrap_or_else(|| tape.constant(ArrayD::zeros(IxDyn(&[])))))
        },
        inputs,
        opts,
    )
}

fn random_like(x: &ArrayD<f64>, rng: &mut StdRng) -> ArrayD<f64> {
    x.mapv(|_| rng.random_range(-1.0..1.0))
}
