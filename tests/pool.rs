//! Max and average pooling: values and input gradients against PyTorch
//! (`tests/fixtures/pool_reference.json`, written by `tools/gen_pool_fixtures.py`) and against a
//! naive loop over many random settings; gradients against finite differences (first and second
//! order); the average against the depthwise conv it equals; NaN and ±∞ as PyTorch; every
//! refused setting (PyTorch's refusals from the fixture, and huge `usize` values); the layers.
//! No Python is needed to run this.

use std::panic::{AssertUnwindSafe, catch_unwind};

use adjoint::gradcheck::{GradcheckOptions, TapeFn, gradcheck, gradgradcheck};
use adjoint::nn::{
    AvgPool, AvgPool1d, AvgPool2d, AvgPool3d, Conv2d, MaxPool, MaxPool1d, MaxPool2d, MaxPool3d, Module, Relu,
    Sequential,
};
use adjoint::ops::conv::{ConvOptions, PerAxis, conv};
use adjoint::ops::pool::{
    PoolOptions, avg_pool, avg_pool1d, avg_pool2d, avg_pool3d, max_pool, max_pool1d, max_pool2d, max_pool3d,
};
use adjoint::{Error, Result, Tape, Var};
use ndarray::{ArrayD, Dimension, IxDyn};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use serde::Deserialize;

const NAN: f64 = f64::NAN;
const INF: f64 = f64::INFINITY;

type PoolFn = for<'t> fn(Var<'t, f64>, &PoolOptions) -> Result<Var<'t, f64>>;

/// The rank-specific op and its name.
fn ranked(max: bool, rank: usize) -> (&'static str, PoolFn) {
    match (max, rank) {
        (true, 1) => ("max_pool1d", max_pool1d::<f64>),
        (true, 2) => ("max_pool2d", max_pool2d::<f64>),
        (true, _) => ("max_pool3d", max_pool3d::<f64>),
        (false, 1) => ("avg_pool1d", avg_pool1d::<f64>),
        (false, 2) => ("avg_pool2d", avg_pool2d::<f64>),
        (false, _) => ("avg_pool3d", avg_pool3d::<f64>),
    }
}

/// The rank-generic op and its name.
fn generic(max: bool) -> (&'static str, PoolFn) {
    if max {
        ("max_pool", max_pool::<f64>)
    } else {
        ("avg_pool", avg_pool::<f64>)
    }
}

fn array(shape: &[usize], data: Vec<f64>) -> ArrayD<f64> {
    ArrayD::from_shape_vec(IxDyn(shape), data).unwrap()
}

/// `y = f(x)` and `grad_x` for the upstream gradient `grad_y` (or all ones).
fn run(f: PoolFn, x: &ArrayD<f64>, opts: &PoolOptions, grad_y: Option<&ArrayD<f64>>) -> (ArrayD<f64>, ArrayD<f64>) {
    let tape = Tape::new();
    let xv = tape.param(x.clone());
    let y = f(xv, opts).unwrap_or_else(|e| panic!("refused {opts:?} on {:?}: {e}", x.shape()));
    let seed = grad_y.cloned().unwrap_or_else(|| ArrayD::ones(y.shape()));
    let grads = tape.backward_with(y, seed).unwrap();
    (y.value().as_ref().clone(), grads[xv].clone())
}

/// Equal as PyTorch prints them: NaN matches NaN, ±∞ match exactly, finite values exactly if
/// `exact`, else to 1e-12 relative to `max(1, |expected|)`.
#[track_caller]
fn same(got: &ArrayD<f64>, want: &ArrayD<f64>, exact: bool, what: &str) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    for (i, (&g, &w)) in got.iter().zip(want.iter()).enumerate() {
        let ok = if w.is_nan() {
            g.is_nan()
        } else if exact || w.is_infinite() {
            g == w
        } else {
            (g - w).abs() <= 1e-12 * w.abs().max(1.0)
        };
        assert!(ok, "{what}[{i}]: got {g:?}, expected {w:?}");
    }
}

// ------------------------------------------------------------------------------------ fixtures

/// Values as strings: `repr` of each float, `"nan"`, `"inf"`, `"-inf"` — parsed by
/// `str::parse`, exactly (serde_json's float parsing may miss by an ulp).
#[derive(Deserialize)]
struct Tensor {
    shape: Vec<usize>,
    data: Vec<String>,
}

impl Tensor {
    fn array(&self) -> ArrayD<f64> {
        let parse = |v: &String| v.parse().unwrap_or_else(|_| panic!("not a number: {v:?}"));
        array(&self.shape, self.data.iter().map(parse).collect())
    }
}

/// PyTorch's arguments, each per-axis one a list of one value or one per axis.
#[derive(Deserialize, Clone, Debug)]
struct Settings {
    kernel: Vec<usize>,
    stride: Option<Vec<usize>>,
    padding: Vec<usize>,
    dilation: Vec<usize>,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: Option<usize>,
}

impl Settings {
    fn options(&self) -> PoolOptions {
        let mut opts = PoolOptions::new(self.kernel.clone())
            .padding(self.padding.clone())
            .dilation(self.dilation.clone())
            .ceil_mode(self.ceil_mode)
            .count_include_pad(self.count_include_pad);
        if let Some(s) = &self.stride {
            opts = opts.stride(s.clone());
        }
        if let Some(d) = self.divisor_override {
            opts = opts.divisor_override(d);
        }
        opts
    }
}

#[derive(Deserialize)]
struct Case {
    name: String,
    op: String,
    rank: usize,
    kind: String,
    #[serde(flatten)]
    settings: Settings,
    x: Tensor,
    grad_y: Tensor,
    y: Tensor,
    grad_x: Tensor,
}

#[derive(Deserialize)]
struct Refusal {
    name: String,
    op: String,
    rank: usize,
    x_shape: Vec<usize>,
    #[serde(flatten)]
    settings: Settings,
    param: String,
    torch_error: String,
}

#[derive(Deserialize)]
struct Fixtures {
    torch_version: String,
    cases: Vec<Case>,
    errors: Vec<Refusal>,
}

fn fixtures() -> Fixtures {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pool_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn values_and_gradients_match_pytorch() {
    let fx = fixtures();
    assert!(fx.torch_version.starts_with('2'), "{}", fx.torch_version);
    let kinds = ["distinct", "ties", "nonfinite"];
    for kind in kinds {
        assert!(fx.cases.iter().any(|c| c.kind == kind), "no {kind} case");
    }
    for case in &fx.cases {
        let max = case.op == "max";
        let (x, grad_y) = (case.x.array(), case.grad_y.array());
        let opts = case.settings.options();
        let mut ops = vec![ranked(max, case.rank)];
        if x.ndim() == case.rank + 2 {
            ops.push(generic(max));
        }
        for (name, f) in ops {
            let (y, grad_x) = run(f, &x, &opts, Some(&grad_y));
            let what = format!("{} via {name}", case.name);
            // A max is one of the inputs, and its gradient sums `grad_y` in PyTorch's order
            // (output cells in row-major order): both exact, ties included.
            same(&y, &case.y.array(), max, &format!("{what}: y"));
            same(&grad_x, &case.grad_x.array(), max, &format!("{what}: grad_x"));
        }
    }
}

// ------------------------------------------------------------------------------ a naive loop

/// An independent pooling, written the slow way: every window of every output cell found by
/// brute force, every tap tried, indices through `IxDyn`.
struct Naive {
    max: bool,
    kernel: Vec<usize>,
    stride: Vec<usize>,
    padding: Vec<usize>,
    dilation: Vec<usize>,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: Option<usize>,
}

impl Naive {
    fn options(&self) -> PoolOptions {
        let o = PoolOptions::new(self.kernel.clone())
            .stride(self.stride.clone())
            .padding(self.padding.clone())
            .ceil_mode(self.ceil_mode);
        match self.divisor_override {
            _ if self.max => o.dilation(self.dilation.clone()),
            Some(d) => o.count_include_pad(self.count_include_pad).divisor_override(d),
            None => o.count_include_pad(self.count_include_pad),
        }
    }

    /// Window `o` of axis `a` exists if it fits in the padded input — in ceil mode, in it
    /// and `s − 1` more cells, if it starts on the input or its left padding.
    fn windows(&self, a: usize, i: usize) -> usize {
        let (k, s, p, d) = (self.kernel[a], self.stride[a], self.padding[a], self.dilation[a]);
        let reach = i + 2 * p + if self.ceil_mode { s - 1 } else { 0 };
        (0..)
            .take_while(|o| {
                let start = o * s;
                start + d * (k - 1) < reach && (!self.ceil_mode || start < i + p)
            })
            .count()
    }

    /// `y`, and for each output cell the input cells it reads with their weights (the max's
    /// one cell with weight 1, the average's with `1/D`): the row of the matrix `A`.
    fn apply(&self, x: &ArrayD<f64>, rank: usize) -> Option<(ArrayD<f64>, Vec<Row>)> {
        let lead = x.ndim() - rank;
        let input = &x.shape()[lead..];
        let out: Vec<usize> = (0..rank).map(|a| self.windows(a, input[a])).collect();
        if out.contains(&0) {
            return None;
        }
        let y_shape: Vec<usize> = x.shape()[..lead].iter().copied().chain(out.iter().copied()).collect();
        let mut y = ArrayD::zeros(IxDyn(&y_shape));
        let mut rows = Vec::new();
        let taps: Vec<Vec<usize>> = cartesian(&self.kernel[..rank]);
        for (y_index, y_cell) in y.indexed_iter_mut() {
            let y_index = y_index.slice().to_vec();
            let (mut best, mut at): (f64, Option<Vec<usize>>) = (-INF, None);
            let (mut sum, mut cells, mut padded) = (0.0, Vec::new(), 1usize);
            for a in 0..rank {
                let start = y_index[lead + a] * self.stride[a];
                let end = (start + self.kernel[a]).min(input[a] + 2 * self.padding[a]);
                padded *= end - start;
            }
            for t in &taps {
                let mut x_index = y_index[..lead].to_vec();
                for a in 0..rank {
                    let pos =
                        (y_index[lead + a] * self.stride[a] + t[a] * self.dilation[a]) as i64 - self.padding[a] as i64;
                    if pos < 0 || pos >= input[a] as i64 {
                        break;
                    }
                    x_index.push(pos as usize);
                }
                if x_index.len() < x.ndim() {
                    continue;
                }
                let v = x[IxDyn(&x_index)];
                // PyTorch's search: from −∞ at the first input cell, taking `v > best` or NaN.
                if at.is_none() || v > best || v.is_nan() {
                    at = Some(x_index.clone());
                }
                if v > best || v.is_nan() {
                    best = v;
                }
                sum += v;
                cells.push(x_index);
            }
            if self.max {
                *y_cell = best;
                rows.push(at.into_iter().map(|i| (i, 1.0)).collect());
            } else {
                let divisor = match (self.divisor_override, self.count_include_pad) {
                    (Some(n), _) => n,
                    (None, true) => padded,
                    (None, false) => cells.len(),
                } as f64;
                *y_cell = sum / divisor;
                rows.push(cells.into_iter().map(|i| (i, 1.0 / divisor)).collect());
            }
        }
        Some((y, rows))
    }
}

/// One row of the matrix `A`: the input cells an output cell reads, with their weights.
type Row = Vec<(Vec<usize>, f64)>;

/// Every multi-index below `sizes`, in row-major order.
fn cartesian(sizes: &[usize]) -> Vec<Vec<usize>> {
    sizes.iter().fold(vec![vec![]], |acc, &n| {
        acc.into_iter()
            .flat_map(|prefix| {
                (0..n).map(move |i| {
                    let mut v = prefix.clone();
                    v.push(i);
                    v
                })
            })
            .collect()
    })
}

#[test]
fn values_and_gradients_match_a_naive_loop_over_random_settings() {
    let mut rng = StdRng::seed_from_u64(5);
    let mut checked = [0usize; 2];
    for n in 0..900 {
        let rank = 1 + n % 3;
        let max = n % 2 == 0;
        let per_axis = |rng: &mut StdRng, lo: usize, hi: usize| (0..rank).map(|_| rng.random_range(lo..=hi)).collect();
        let kernel: Vec<usize> = per_axis(&mut rng, 1, 3);
        let padding = kernel.iter().map(|&k| rng.random_range(0..=k / 2)).collect();
        let naive = Naive {
            max,
            stride: per_axis(&mut rng, 1, 3),
            dilation: if max { per_axis(&mut rng, 1, 2) } else { vec![1; rank] },
            kernel,
            padding,
            ceil_mode: rng.random_range(0..2) == 1,
            count_include_pad: rng.random_range(0..3) > 0,
            divisor_override: (rng.random_range(0..4) == 0).then(|| rng.random_range(1..6)),
        };
        let size = [0, 9, 6, 4][rank];
        let batched = rng.random_range(0..4) > 0;
        let lead: &[usize] = if batched { &[2, 2] } else { &[2] };
        let shape: Vec<usize> = lead
            .iter()
            .copied()
            .chain((0..rank).map(|_| rng.random_range(1..=size)))
            .collect();
        // Small integers: ties everywhere, to check PyTorch's choice among them.
        let x = ArrayD::from_shape_simple_fn(IxDyn(&shape), || rng.random_range(0..4) as f64);
        let opts = naive.options();
        let (name, f) = ranked(max, rank);
        let tape = Tape::new();
        let result = f(tape.param(x.clone()), &opts);
        // PyTorch's avg_pool3d alone refuses an input smaller than the kernel, padding or not.
        if !max && rank == 3 && (0..rank).any(|a| shape[lead.len() + a] < naive.kernel[a]) {
            assert!(result.is_err_and(|e| e.to_string().contains("smaller than kernel_size")));
            continue;
        }
        match (naive.apply(&x, rank), result) {
            (Some((want, rows)), Ok(_)) => {
                let grad_y = ArrayD::from_shape_simple_fn(want.raw_dim(), || rng.random_range(-1.0..1.0));
                let (y, grad_x) = run(f, &x, &opts, Some(&grad_y));
                let what = format!("{name} {opts:?} on {shape:?}");
                same(&y, &want, max, &format!("{what}: y"));
                // grad_x = Aᵀ·grad_y, row by row.
                let mut expected = ArrayD::zeros(x.raw_dim());
                for (row, &g) in rows.iter().zip(grad_y.iter()) {
                    for (cell, weight) in row {
                        expected[IxDyn(cell)] += g * weight;
                    }
                }
                same(&grad_x, &expected, false, &format!("{what}: grad_x"));
                checked[usize::from(max)] += 1;
            }
            (None, Err(e)) => assert!(e.to_string().starts_with(name), "{e}"),
            (Some(_), Err(e)) => panic!("{name} {opts:?} on {shape:?}: refused: {e}"),
            (None, Ok(y)) => panic!("{name} {opts:?} on {shape:?}: no window fits, got {:?}", y.shape()),
        }
    }
    assert!(checked.iter().all(|&c| c > 250), "{checked:?}");
}

// --------------------------------------------------------------------- finite differences

/// Pooling settings for the gradient checks: every rank, batched and unbatched, padding,
/// stride unlike the kernel, dilation, ceil mode, `count_include_pad = false`, a divisor.
/// (max, rank, x shape, settings).
fn grad_cases() -> Vec<(bool, usize, Vec<usize>, PoolOptions)> {
    fn o(kernel: impl Into<PerAxis>) -> PoolOptions {
        PoolOptions::new(kernel)
    }
    vec![
        (true, 1, vec![2, 2, 7], o(3).stride(2).padding(1)),
        (true, 1, vec![1, 2, 8], o(2)),
        (
            true,
            1,
            vec![1, 1, 9],
            o(3).stride(2).padding(1).dilation(2).ceil_mode(true),
        ),
        (true, 1, vec![2, 5], o(2).stride(1).padding(1)),
        (true, 2, vec![1, 2, 5, 6], o([3, 2]).stride([2, 1]).padding([1, 0])),
        (true, 2, vec![1, 1, 7, 7], o(3).stride(2).padding(1).ceil_mode(true)),
        (true, 2, vec![1, 1, 8, 7], o(2).stride(1).padding(1).dilation([2, 3])),
        (true, 2, vec![1, 2, 4, 6], o(2)),
        (
            true,
            3,
            vec![1, 1, 4, 5, 4],
            o(2).stride([1, 2, 1]).padding(1).ceil_mode(true),
        ),
        (
            true,
            3,
            vec![1, 5, 4, 4],
            o([3, 2, 2]).dilation([2, 1, 1]).padding([1, 0, 1]),
        ),
        (false, 1, vec![2, 2, 7], o(3).stride(2).padding(1)),
        (
            false,
            1,
            vec![1, 1, 9],
            o(3).stride(2).padding(1).ceil_mode(true).count_include_pad(false),
        ),
        (false, 1, vec![1, 1, 8], o(4).stride(3).padding(2).divisor_override(5)),
        (
            false,
            2,
            vec![1, 2, 5, 6],
            o([3, 2]).stride([2, 1]).padding([1, 0]).ceil_mode(true),
        ),
        (
            false,
            2,
            vec![1, 1, 7, 7],
            o(3).stride(2).padding(1).count_include_pad(false),
        ),
        (
            false,
            3,
            vec![1, 1, 4, 5, 4],
            o(2).stride([1, 2, 1]).padding(1).ceil_mode(true),
        ),
        (
            false,
            3,
            vec![1, 1, 5, 4, 4],
            o([3, 2, 2]).padding([1, 0, 1]).divisor_override(3),
        ),
        (false, 2, vec![2, 6, 5], o(2).stride(1)),
    ]
}

/// Values 0.1 apart, shuffled: no two within a finite-difference step, so the arg-max of
/// every window stays put while the checker perturbs.
fn distinct(shape: &[usize], rng: &mut StdRng) -> ArrayD<f64> {
    let n: usize = shape.iter().product();
    let mut values: Vec<f64> = (0..n).map(|i| 0.1 * i as f64 - 0.05 * n as f64).collect();
    values.shuffle(rng);
    array(shape, values)
}

#[track_caller]
fn passes(what: &str, f: impl TapeFn, x: &ArrayD<f64>, second: bool) {
    let opts = GradcheckOptions {
        seed: 3,
        ..GradcheckOptions::default()
    };
    let report = if second {
        gradgradcheck(&f, std::slice::from_ref(x), &opts)
    } else {
        gradcheck(&f, std::slice::from_ref(x), &opts)
    }
    .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(report.checked, x.len(), "{what}");
    assert!(report.passed, "{what} (second order: {second}): {report}");
}

#[test]
fn first_and_second_derivatives_pass_finite_differences() {
    let mut rng = StdRng::seed_from_u64(11);
    for (max, rank, shape, opts) in grad_cases() {
        let (name, f) = ranked(max, rank);
        let x = distinct(&shape, &mut rng);
        let what = format!("{name} {opts:?} on {shape:?}");
        passes(&what, |_, v| f(v[0], &opts), &x, false);
        // Linear (a max once its arg-max is fixed), so the second derivative is 0 — reached
        // through recorded gradient rules all the same.
        passes(&what, |_, v| f(v[0], &opts), &x, true);
        // `pool(x)²`: its gradient, `2·pool(x)` sent back by the pooling's transpose, depends
        // on `x`, so differentiating it again runs the transpose's own backward (the gather by
        // the arg-max, or `A`).
        let square = format!("{what}, squared");
        passes(
            &square,
            |_, v| {
                let y = f(v[0], &opts)?;
                y.mul(y)
            },
            &x,
            true,
        );
    }
}

#[test]
fn the_tape_shows_each_pooling_and_its_transpose() {
    let tape = Tape::<f64>::new();
    let x = tape.param(ArrayD::zeros(IxDyn(&[1, 1, 4, 4])));
    let y = max_pool2d(x, &PoolOptions::new(2)).unwrap();
    let z = avg_pool2d(
        y,
        &PoolOptions::new(2).padding(1).ceil_mode(true).count_include_pad(false),
    )
    .unwrap();
    tape.backward_graph(z.mul(z).unwrap().sum().unwrap(), None).unwrap();
    let printed = tape.to_string();
    for line in [
        "max_pool2d(k=[2, 2], s=[2, 2], p=[0, 0], d=[1, 1])",
        "avg_pool2d(k=[2, 2], s=[2, 2], p=[1, 1], count_include_pad=false, ceil)",
        "avg_pool2d_backward(k=[2, 2]",
        "max_pool2d_backward(k=[2, 2]",
    ] {
        assert!(printed.contains(line), "no {line:?} in\n{printed}");
    }
}

// --------------------------------------------------------------- the average is a depthwise conv

#[test]
fn average_pooling_counting_padding_is_a_depthwise_conv_with_a_constant_kernel() {
    let mut rng = StdRng::seed_from_u64(13);
    for (shape, k, s, p) in [
        (vec![2, 3, 9], vec![3], vec![2], vec![1]),
        (vec![1, 2, 7, 6], vec![3, 2], vec![2, 1], vec![1, 0]),
        (vec![2, 2, 4, 5, 6], vec![2, 3, 2], vec![1, 2, 2], vec![1, 1, 0]),
    ] {
        let rank = k.len();
        let c = shape[1];
        let x = distinct(&shape, &mut rng);
        let opts = PoolOptions::new(k.clone()).stride(s.clone()).padding(p.clone());
        let (y, grad_x) = run(avg_pool, &x, &opts, None);
        // w: [c, 1, k..] of 1/Πk, one channel per group.
        let w_shape: Vec<usize> = [c, 1].into_iter().chain(k.iter().copied()).collect();
        let taps: usize = k.iter().product();
        let tape = Tape::new();
        let xv = tape.param(x.clone());
        let w = tape.constant(ArrayD::from_elem(IxDyn(&w_shape), 1.0 / taps as f64));
        let conv_opts = ConvOptions::new().stride(s).padding(p).groups(c);
        let z = conv(xv, w, None, &conv_opts).unwrap();
        let grads = tape.backward(z.sum().unwrap()).unwrap();
        same(&y, &z.value(), false, &format!("{rank}-D avg_pool vs conv"));
        same(
            &grad_x,
            &grads[xv],
            false,
            &format!("{rank}-D avg_pool vs conv: grad_x"),
        );
    }
}

// ------------------------------------------------------------------------------ NaN and ±∞

/// `max_pool1d` of `x` (`[1, 1, len]` or the given shape) with PyTorch's results:
/// `y`, and `grad_x` for the upstream gradient `1, 2, 3, ..`.
#[track_caller]
fn max_1d(x: &[f64], opts: PoolOptions, y: &[f64], grad_x: &[f64]) {
    let x = array(&[1, 1, x.len()], x.to_vec());
    let tape = Tape::new();
    let xv = tape.param(x.clone());
    let yv = max_pool1d(xv, &opts).unwrap();
    let seed = array(&yv.shape(), (1..=y.len()).map(|v| v as f64).collect());
    let grads = tape.backward_with(yv, seed).unwrap();
    same(&yv.value(), &array(&[1, 1, y.len()], y.to_vec()), true, "y");
    same(&grads[xv], &array(x.shape(), grad_x.to_vec()), true, "grad_x");
}

#[test]
fn max_pool_propagates_nan_and_picks_as_pytorch() {
    // Each line: PyTorch 2.x, float64, `F.max_pool1d(x, ..., return_indices=True)` and
    // `y.backward(arange(1, n + 1))`.
    // A NaN wins its window; of several, the last (PyTorch's rule `v > best || isnan(v)`).
    max_1d(
        &[1.0, NAN, 3.0, NAN],
        PoolOptions::new(4),
        &[NAN],
        &[0.0, 0.0, 0.0, 1.0],
    );
    max_1d(
        &[NAN, 1.0, 3.0, NAN, 5.0, 6.0],
        PoolOptions::new(3),
        &[NAN, NAN],
        &[1.0, 0.0, 0.0, 2.0, 0.0, 0.0],
    );
    // A NaN then +∞: NaN stays; +∞ then NaN: NaN takes over.
    max_1d(
        &[INF, NAN, INF, 2.0],
        PoolOptions::new(2).stride(1),
        &[NAN, NAN, INF],
        &[0.0, 3.0, 3.0, 0.0],
    );
    // −∞ everywhere: the first input cell (never the −∞ padding).
    max_1d(
        &[-INF, -INF, -INF, 2.0],
        PoolOptions::new(2).padding(1),
        &[-INF, -INF, 2.0],
        &[1.0, 2.0, 0.0, 3.0],
    );
    // Ties: the first maximum, also where windows overlap.
    max_1d(
        &[1.0, 5.0, 5.0, 5.0, 1.0],
        PoolOptions::new(3).stride(1),
        &[5.0, 5.0, 5.0],
        &[0.0, 3.0, 3.0, 0.0, 0.0],
    );
    // 2-D and 3-D: the last NaN in row-major order (F.max_pool2d / 3d, kernel 2).
    let (y, g) = run(
        max_pool2d,
        &array(&[1, 1, 2, 2], vec![1.0, NAN, NAN, 2.0]),
        &PoolOptions::new(2),
        None,
    );
    same(&y, &array(&[1, 1, 1, 1], vec![NAN]), true, "2-D y");
    same(&g, &array(&[1, 1, 2, 2], vec![0.0, 0.0, 1.0, 0.0]), true, "2-D grad");
    let x3 = array(&[1, 1, 2, 2, 2], vec![1.0, NAN, NAN, 2.0, 2.0, 2.0, 2.0, 2.0]);
    let (y, g) = run(max_pool3d, &x3, &PoolOptions::new(2), None);
    same(&y, &array(&[1, 1, 1, 1, 1], vec![NAN]), true, "3-D y");
    assert_eq!(
        g.iter().copied().collect::<Vec<_>>(),
        [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    );
    // All −∞ in 2-D with padding: F.max_pool2d(x, 2, padding=1), each window its input cell.
    let (y, g) = run(
        max_pool2d,
        &array(&[1, 1, 2, 2], vec![-INF; 4]),
        &PoolOptions::new(2).padding(1),
        None,
    );
    same(&y, &array(&[1, 1, 2, 2], vec![-INF; 4]), true, "2-D −∞ y");
    same(&g, &array(&[1, 1, 2, 2], vec![1.0; 4]), true, "2-D −∞ grad");
}

#[test]
fn a_max_pool_window_between_the_input_cells_gives_minus_infinity_and_no_gradient() {
    // Input 2, kernel 2, dilation 3, padding 1: taps at −1 and 2, neither in the input.
    // PyTorch (F.max_pool1d(x, 2, stride=1, padding=1, dilation=3)) gives −∞ too, but its
    // arg-max index 2 lies past the channel, and `backward` adds the gradient to the next
    // channel's first cell: x.grad = [[0, 0], [10, 0], [10, 0]] for an upstream gradient of 10.
    // Here the output is a constant and its gradient goes nowhere.
    let x = array(&[3, 2], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let opts = PoolOptions::new(2).stride(1).padding(1).dilation(3);
    let (y, g) = run(max_pool1d, &x, &opts, None);
    same(&y, &array(&[3, 1], vec![-INF; 3]), true, "y");
    same(&g, &ArrayD::zeros(IxDyn(&[3, 2])), true, "grad_x");
    let x2 = array(&[1, 2, 2, 2], (1..=8).map(f64::from).collect());
    let (y, g) = run(max_pool2d, &x2, &opts, None);
    same(&y, &array(&[1, 2, 1, 1], vec![-INF; 2]), true, "2-D y");
    same(&g, &ArrayD::zeros(IxDyn(&[1, 2, 2, 2])), true, "2-D grad_x");
}

#[test]
fn average_pooling_propagates_nan_and_infinities() {
    // F.avg_pool1d(x, 2) with x = [1, nan, inf, 2, -inf, inf] and y.backward([1, 2, 3]).
    let x = array(&[1, 1, 6], vec![1.0, NAN, INF, 2.0, -INF, INF]);
    let grad_y = array(&[1, 1, 3], vec![1.0, 2.0, 3.0]);
    let (y, g) = run(avg_pool1d, &x, &PoolOptions::new(2), Some(&grad_y));
    same(&y, &array(&[1, 1, 3], vec![NAN, INF, NAN]), true, "y");
    same(
        &g,
        &array(&[1, 1, 6], vec![0.5, 0.5, 1.0, 1.0, 1.5, 1.5]),
        true,
        "grad_x",
    );
}

// ------------------------------------------------------------------------------ refusals

/// Runs `call`, which must return an error (no panic) reported by `op`, whose message starts
/// with `op: `, naming `param` (`InvalidArgument`) or, for `"x"`, the input (`BadShape`), and
/// containing every needle; the tape must be as long as before.
#[track_caller]
fn refused<'t>(
    tape: &'t Tape<f64>,
    (op, case): (&str, &str),
    param: &str,
    needles: &[&str],
    call: impl FnOnce() -> Result<Var<'t, f64>>,
) {
    let before = tape.len();
    let context = format!("{op} {case} expecting {param} {needles:?}");
    let result = catch_unwind(AssertUnwindSafe(call)).unwrap_or_else(|_| panic!("{context}: panicked"));
    let err = match result {
        Ok(y) => panic!("{context}: accepted, output {:?}", y.shape()),
        Err(e) => e,
    };
    let msg = err.to_string();
    let context = format!("{context}: got {err:?} / \"{msg}\"");
    assert!(msg.starts_with(&format!("{op}: ")), "{context}");
    match &err {
        Error::BadShape { op: o, input, .. } if param == "x" => assert_eq!((*o, *input), (op, "x"), "{context}"),
        Error::InvalidArgument { op: o, param: p, .. } => assert_eq!((*o, *p), (op, param), "{context}"),
        _ => panic!("{context}: wrong variant"),
    }
    for needle in needles {
        assert!(msg.contains(needle), "{context}: lacks {needle:?}");
    }
    assert_eq!(tape.len(), before, "{context}: the tape grew");
}

fn leaf<'t>(tape: &'t Tape<f64>, shape: &[usize]) -> Var<'t, f64> {
    tape.param(ArrayD::from_elem(IxDyn(shape), 0.5))
}

#[test]
fn refused_settings_pytorch_refuses() {
    let fx = fixtures();
    assert!(fx.errors.len() > 90);
    for e in &fx.errors {
        let max = e.op == "max";
        let opts = e.settings.options();
        let mut ops = vec![ranked(max, e.rank)];
        // The generic op takes `[n, c, i..]` only: check it where the shape is one.
        if e.x_shape.len() == e.rank + 2 {
            ops.push(generic(max));
        }
        for (op, f) in ops {
            let tape = Tape::new();
            let x = leaf(&tape, &e.x_shape);
            let case = format!("{} (PyTorch: {})", e.name, e.torch_error);
            refused(&tape, (op, &case), &e.param, &[], || f(x, &opts));
        }
    }
}

#[test]
fn refused_settings_pytorch_has_no_name_for() {
    for rank in 1..=3 {
        let shape: Vec<usize> = [1, 2].into_iter().chain(std::iter::repeat_n(6, rank)).collect();
        let wrong = vec![1; rank + 1];
        let wrong_text = format!("{wrong:?}");
        for max in [true, false] {
            for (op, f) in [ranked(max, rank), generic(max)] {
                let tape = Tape::new();
                let x = leaf(&tape, &shape);
                let base = PoolOptions::new(2);
                for (param, opts) in [
                    ("stride", base.clone().stride(wrong.clone())),
                    ("padding", base.clone().padding(wrong.clone())),
                    ("dilation", base.clone().dilation(wrong.clone())),
                ] {
                    refused(&tape, (op, ""), param, &[&wrong_text, "needs 1 or"], || f(x, &opts));
                }
                if max {
                    // The average's settings mean nothing to a max.
                    refused(&tape, (op, ""), "divisor_override", &["avg_pool"], || {
                        f(x, &base.clone().divisor_override(2))
                    });
                    refused(&tape, (op, ""), "count_include_pad", &["avg_pool"], || {
                        f(x, &base.clone().count_include_pad(false))
                    });
                } else {
                    // PyTorch's average has no dilation.
                    refused(&tape, (op, ""), "dilation", &["[2"], || f(x, &base.clone().dilation(2)));
                }
            }
        }
    }
    // The generic ops take 1 to 3 spatial axes after [n, c].
    for max in [true, false] {
        let (op, f) = generic(max);
        for shape in [&[4, 4][..], &[1, 1, 2, 2, 2, 2]] {
            let tape = Tape::new();
            let x = leaf(&tape, shape);
            refused(&tape, (op, ""), "x", &["1 to 3 spatial axes"], || {
                f(x, &PoolOptions::new(1))
            });
        }
    }
}

#[test]
fn refused_huge_settings_and_sizes() {
    const MAX: usize = usize::MAX;
    for max in [true, false] {
        for rank in 1..=3 {
            let (op, f) = ranked(max, rank);
            let shape: Vec<usize> = [1, 1].into_iter().chain(std::iter::repeat_n(5, rank)).collect();
            let tape = Tape::new();
            let x = leaf(&tape, &shape);
            // No window fits a kernel of 2^64 − 1, or one of 2 taps 2^64 − 1 apart. (A 3-D
            // average refuses any input smaller than its kernel first.)
            let avg3d = !max && rank == 3;
            let no_window = if avg3d {
                "smaller than kernel_size"
            } else {
                "no window fits"
            };
            refused(&tape, (op, ""), "x", &[no_window], || f(x, &PoolOptions::new(MAX)));
            if max {
                refused(&tape, (op, ""), "x", &["no window fits"], || {
                    f(x, &PoolOptions::new(2).stride(1).dilation(MAX))
                });
            }
            // Padding of half of 2^64 − 1: allowed by the kernel, but past 2^63 − 1 cells.
            let (param, needle) = if avg3d { ("x", no_window) } else { ("padding", "2^63") };
            refused(&tape, (op, ""), param, &[needle], || {
                f(x, &PoolOptions::new(MAX).padding(MAX / 2))
            });
            refused(&tape, (op, ""), "padding", &["more than half"], || {
                f(x, &PoolOptions::new(MAX - 1).padding(MAX / 2 + 1))
            });
            if !max {
                refused(&tape, (op, ""), "divisor_override", &["zero"], || {
                    f(x, &PoolOptions::new(2).divisor_override(0))
                });
            }
        }
        // An empty batch of 2^40 channels: no values, but an output past the 2^40 bound.
        let (op, f) = ranked(max, 1);
        let tape = Tape::new();
        let x = leaf(&tape, &[0, 1 << 40, 4]);
        refused(&tape, (op, ""), "output", &["2^40"], || f(x, &PoolOptions::new(2)));
    }
}

#[test]
fn huge_settings_that_fit_give_the_right_shape_and_values() {
    const MAX: usize = usize::MAX;
    let x = array(&[1, 1, 5], vec![0.5, 3.0, -1.0, 2.0, 1.5]);
    // Kernel 2^62 over padding 2^61: six windows, each holding the whole input. (PyTorch hangs
    // here: it steps its window start up to the input one cell at a time.)
    let opts = PoolOptions::new(1usize << 62).stride(1).padding(1usize << 61);
    let (y, g) = run(max_pool1d, &x, &opts, None);
    same(&y, &array(&[1, 1, 6], vec![3.0; 6]), true, "max y");
    same(&g, &array(&[1, 1, 5], vec![0.0, 6.0, 0.0, 0.0, 0.0]), true, "max grad");
    let (y, _) = run(avg_pool1d, &x, &opts.clone().count_include_pad(false), None);
    same(&y, &array(&[1, 1, 6], vec![1.2; 6]), false, "avg y");
    // Counting the padding: every window holds 2^62 cells of the padded input.
    let (y, g) = run(avg_pool1d, &x, &opts, None);
    same(
        &y,
        &array(&[1, 1, 6], vec![6.0 / 2f64.powi(62); 6]),
        true,
        "avg y with padding",
    );
    same(
        &g,
        &array(&[1, 1, 5], vec![6.0 / 2f64.powi(62); 5]),
        true,
        "avg grad with padding",
    );
    // Ceil mode with the default stride (the kernel, 2^64 − 1): `s − 1` cells past the end
    // make room for one window, which starts on the input: PyTorch's rule (its
    // F.max_pool1d(randn(1, 1, 1), 3, ceil_mode=True) has one value too).
    let (y, _) = run(max_pool1d, &x, &PoolOptions::new(MAX).ceil_mode(true), None);
    same(&y, &array(&[1, 1, 1], vec![3.0]), true, "kernel 2^64 − 1, ceil mode");
    let (y, _) = run(avg_pool1d, &x, &PoolOptions::new(MAX).ceil_mode(true), None);
    same(
        &y,
        &array(&[1, 1, 1], vec![1.2]),
        false,
        "avg kernel 2^64 − 1, ceil mode",
    );
    // A stride of 2^64 − 1: one window, ceil mode or not.
    for ceil in [false, true] {
        let (y, _) = run(max_pool1d, &x, &PoolOptions::new(2).stride(MAX).ceil_mode(ceil), None);
        same(&y, &array(&[1, 1, 1], vec![3.0]), true, "stride 2^64 − 1");
        let x2 = array(&[1, 2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let (y, _) = run(
            avg_pool2d,
            &x2,
            &PoolOptions::new([1, 2]).stride([MAX, 1]).ceil_mode(ceil),
            None,
        );
        same(&y, &array(&[1, 1, 2], vec![1.5, 2.5]), true, "2-D stride 2^64 − 1");
    }
    // A one-tap kernel spaced 2^64 − 1 apart is the identity.
    let (y, g) = run(max_pool1d, &x, &PoolOptions::new(1).dilation(MAX), None);
    same(&y, &x, true, "dilated 1-tap");
    same(&g, &ArrayD::ones(IxDyn(&[1, 1, 5])), true, "dilated 1-tap grad");
}

// ------------------------------------------------------------------------------ layers

#[test]
fn layers_call_their_op_and_have_no_parameters() {
    let mut rng = StdRng::seed_from_u64(21);
    let x2 = distinct(&[2, 3, 7, 6], &mut rng);
    let opts = PoolOptions::new(3).stride(2).padding(1).ceil_mode(true);
    let two = PoolOptions::new(2);
    type Layer<'o> = (Box<dyn Module<f64>>, PoolFn, &'o PoolOptions, ArrayD<f64>);
    let layers: Vec<Layer> = vec![
        (
            Box::new(MaxPool2d::new(opts.clone()).unwrap()),
            max_pool2d,
            &opts,
            x2.clone(),
        ),
        (
            Box::new(AvgPool2d::new(opts.clone()).unwrap()),
            avg_pool2d,
            &opts,
            x2.clone(),
        ),
        (
            Box::new(MaxPool::new(2, opts.clone()).unwrap()),
            max_pool2d,
            &opts,
            x2.clone(),
        ),
        (Box::new(AvgPool::new(2, opts.clone()).unwrap()), avg_pool2d, &opts, x2),
        // Unbatched inputs, as PyTorch's layers take them.
        (
            Box::new(MaxPool1d::new(two.clone()).unwrap()),
            max_pool1d,
            &two,
            distinct(&[3, 8], &mut rng),
        ),
        (
            Box::new(AvgPool1d::new(two.clone()).unwrap()),
            avg_pool1d,
            &two,
            distinct(&[3, 8], &mut rng),
        ),
        (
            Box::new(MaxPool3d::new(two.clone()).unwrap()),
            max_pool3d,
            &two,
            distinct(&[2, 4, 4, 4], &mut rng),
        ),
        (
            Box::new(AvgPool3d::new(two.clone()).unwrap()),
            avg_pool3d,
            &two,
            distinct(&[2, 4, 4, 4], &mut rng),
        ),
    ];
    for (layer, op, opts, x) in layers {
        assert!(layer.parameters().is_empty());
        assert_eq!(layer.parameter_count(), 0);
        let tape = Tape::new();
        let got = layer.forward(tape.constant(x.clone())).unwrap().value();
        let (direct, _) = run(op, &x, opts, None);
        same(&got, &direct, true, "layer vs op");
    }
    assert_eq!(MaxPool2d::new(PoolOptions::new(2)).unwrap().rank(), 2);
    assert_eq!(AvgPool3d::new(PoolOptions::new(2)).unwrap().rank(), 3);
}

#[test]
fn layers_refuse_bad_settings_when_made() {
    let cases: Vec<(Result<()>, &str, &str)> = vec![
        (MaxPool::new(0, PoolOptions::new(2)).map(drop), "MaxPool", "rank"),
        (AvgPool::new(4, PoolOptions::new(2)).map(drop), "AvgPool", "rank"),
        (
            MaxPool2d::new(PoolOptions::new(3).padding(2)).map(drop),
            "MaxPool2d",
            "padding",
        ),
        (
            MaxPool1d::new(PoolOptions::new([2, 2])).map(drop),
            "MaxPool1d",
            "kernel_size",
        ),
        (
            MaxPool3d::new(PoolOptions::new(2).stride(0)).map(drop),
            "MaxPool3d",
            "stride",
        ),
        (
            MaxPool2d::new(PoolOptions::new(2).divisor_override(3)).map(drop),
            "MaxPool2d",
            "divisor_override",
        ),
        (
            AvgPool1d::new(PoolOptions::new(2).dilation(2)).map(drop),
            "AvgPool1d",
            "dilation",
        ),
        (
            AvgPool2d::new(PoolOptions::new(0)).map(drop),
            "AvgPool2d",
            "kernel_size",
        ),
        (
            AvgPool3d::new(PoolOptions::new(2).divisor_override(0)).map(drop),
            "AvgPool3d",
            "divisor_override",
        ),
    ];
    for (result, layer, param) in cases {
        match result {
            Err(Error::InvalidArgument { op, param: p, .. }) => assert_eq!((op, p), (layer, param)),
            other => panic!("{layer} {param}: {other:?}"),
        }
    }
}

#[test]
fn a_max_pool_layer_trains_in_a_sequential_model() {
    let mut rng = StdRng::seed_from_u64(22);
    let model = Sequential::<f64>::new()
        .add(Conv2d::new(1, 2, 3, ConvOptions::new().padding(1), &mut rng).unwrap())
        .add(Relu)
        .add(MaxPool2d::new(PoolOptions::new(2)).unwrap())
        .add(AvgPool2d::new(PoolOptions::new(2)).unwrap());
    let x = distinct(&[2, 1, 8, 8], &mut rng);
    let tape = Tape::new();
    let y = model.forward(tape.constant(x)).unwrap();
    assert_eq!(y.shape(), vec![2, 2, 2, 2]);
    let grads = tape.backward(y.sum().unwrap()).unwrap();
    let names: Vec<String> = model.parameters().iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(names, ["0.weight", "0.bias"]);
    for (_, p) in model.parameters() {
        let g = p.grad(&grads).expect("a gradient through both poolings");
        assert!(g.iter().any(|&v| v != 0.0));
    }
}
