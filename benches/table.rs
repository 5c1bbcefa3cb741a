//! Prints the benchmark table in one run, so machines can be compared: W1–W6 (the conv family),
//! the ops of the dense-prediction models (pooling, resizing, batch norm, concat, per-pixel
//! cross-entropy) and a training step of two models, each on 1 and on 2 threads. Median
//! milliseconds per call, and GFLOP/s where FLOPs are defined; f32.
//!
//! ```text
//! cargo bench --bench table                        # everything
//! cargo bench --bench table -- W6 E2E              # only the rows whose names contain one of these
//! BENCH_THREADS=2 cargo bench --bench table        # only the 2-thread rows
//! ```
//!
//! `fwd` is a forward inside [`Tape::no_grad`] on a fresh tape (inference, evaluation,
//! sampling; PyTorch's `torch.no_grad()` forward); `fwd+bwd` records the forward and adds the
//! gradients of every input (for the convs: input and weight) from an upstream gradient of ones.
//! Each thread count runs in a rayon pool of exactly that many threads (`tools/bench_torch.py`
//! sets `torch.set_num_threads` alike).
//!
//! FLOPs: conv forward `2·N·C_out·Πout·(C_in/g)·Πk`, transposed conv forward
//! `2·N·C_in·Πin·(C_out/g)·Πk`; forward + backward (gradients for input and weight) is 3× forward.

use std::rc::Rc;
use std::time::Instant;

#[path = "common/workloads.rs"]
mod workloads;

use adjoint::ops::loss::CrossEntropyOptions;
use adjoint::ops::norm::{BatchNormOptions, RunningStats, batch_norm};
use adjoint::ops::pool::{PoolOptions, max_pool2d};
use adjoint::ops::upsample::{UpsampleOptions, upsample_linear, upsample_nearest};
use adjoint::optim::Adam;
use adjoint::train::conv_autoencoder;
use adjoint::{Result, Tape, Var, concat, cross_entropy};
use ndarray::{ArrayD, IxDyn};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use workloads::WORKLOADS;

// glibc's malloc hands freed activations back to the system between steps and faults them in
// again (measured: a fresh process ran the E2E step at ~20 ms with it, ~10 ms with mimalloc).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn random(shape: &[usize], rng: &mut StdRng) -> ArrayD<f32> {
    ArrayD::from_shape_simple_fn(shape.to_vec(), || rng.random_range(-1.0..1.0))
}

/// Median seconds of `f` over enough runs to fill about `budget` seconds (at least 5).
fn median_seconds(budget: f64, mut f: impl FnMut()) -> f64 {
    f();
    let t0 = Instant::now();
    f();
    let once = t0.elapsed().as_secs_f64().max(1e-6);
    let runs = ((budget / once) as usize).clamp(5, 200);
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[runs / 2]
}

/// An op on the handles of its inputs.
type OpFn = Box<dyn for<'t> Fn(&[Var<'t, f32>]) -> Result<Var<'t, f32>> + Sync>;

/// An op of the dense-prediction models on fixed inputs: `op` maps their handles to its
/// output (a scalar loss, or any array, whose upstream gradient is then all ones).
struct OpRow {
    name: &'static str,
    inputs: Vec<Vec<usize>>,
    op: OpFn,
}

/// The ops of the U-Net, VAE and DCGAN examples, on a U-Net's sizes (batch 16, 32 channels,
/// 64×64 and 32×32 maps), the same as `tools/bench_torch.py`'s.
fn op_rows() -> Vec<OpRow> {
    let map = vec![16, 32, 64, 64];
    let half = vec![16, 32, 32, 32];
    let twice = || UpsampleOptions::new().scale_factor(2.0);
    // Classes 0–4 in a fixed pattern: the same targets as PyTorch's.
    let target = ArrayD::from_shape_fn(IxDyn(&[16, 64, 64]), |i| ((i[0] + i[1] * 3 + i[2] * 7) % 5) as i64);
    vec![
        OpRow {
            name: "max_pool2d 2×2 x[16,32,64,64]",
            inputs: vec![map.clone()],
            op: Box::new(|v| max_pool2d(v[0], &PoolOptions::new(2))),
        },
        OpRow {
            name: "upsample nearest ×2 x[16,32,32,32]",
            inputs: vec![half.clone()],
            op: Box::new(move |v| upsample_nearest(v[0], &twice())),
        },
        OpRow {
            name: "upsample bilinear ×2 x[16,32,32,32]",
            inputs: vec![half],
            op: Box::new(move |v| upsample_linear(v[0], &twice())),
        },
        OpRow {
            name: "batch_norm train x[16,32,64,64]",
            inputs: vec![map.clone(), vec![32], vec![32]],
            op: Box::new(|v| {
                let (mut mean, mut var) = (ArrayD::zeros(IxDyn(&[32])), ArrayD::ones(IxDyn(&[32])));
                let running = RunningStats {
                    mean: &mut mean,
                    var: &mut var,
                };
                let opts = BatchNormOptions::new().training(true);
                batch_norm(v[0], Some(v[1]), Some(v[2]), Some(running), &opts)
            }),
        },
        OpRow {
            name: "concat channels 2× x[16,32,64,64]",
            inputs: vec![map.clone(), map],
            op: Box::new(|v| concat(&v[..2], 1)),
        },
        OpRow {
            name: "cross_entropy per pixel x[16,5,64,64]",
            inputs: vec![vec![16, 5, 64, 64]],
            op: Box::new(move |v| cross_entropy(v[0], &target, &CrossEntropyOptions::default())),
        },
    ]
}

/// One call of `row` on a fresh tape: inside `no_grad`, or recorded and differentiated.
fn run_op(row: &OpRow, inputs: &[Rc<ArrayD<f32>>], backward: bool) {
    let tape = Tape::new();
    let vars: Vec<Var<'_, f32>> = inputs.iter().map(|x| tape.param_shared(Rc::clone(x))).collect();
    if !backward {
        tape.no_grad(|| (row.op)(&vars)).unwrap();
        return;
    }
    let y = (row.op)(&vars).unwrap();
    let seed = ArrayD::from_elem(y.shape(), 1.0);
    tape.backward_with(y, seed).unwrap();
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool")
}

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; anything else names rows to run.
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let wanted = |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    let threads: Vec<usize> = std::env::var("BENCH_THREADS")
        .unwrap_or_else(|_| "1,2".into())
        .split(',')
        .map(|t| t.trim().parse().expect("BENCH_THREADS: thread counts, e.g. 1,2"))
        .collect();
    let pools: Vec<(usize, rayon::ThreadPool)> = threads.iter().map(|&t| (t, pool(t))).collect();
    let mut rng = StdRng::seed_from_u64(0);
    println!("| workload | threads | fwd ms | fwd GFLOP/s | fwd+bwd ms | fwd+bwd GFLOP/s |");
    println!("|---|---|---|---|---|---|");
    for w in &WORKLOADS {
        // Drawn for every row, so a row's inputs do not depend on the filter.
        let (x, weight) = (random(&w.x, &mut rng), random(&w.w, &mut rng));
        if !wanted(w.name) {
            continue;
        }
        let flops = w.forward_flops() as f64;
        for (t, pool) in &pools {
            let (fwd, both) = pool.install(|| {
                let (x, weight) = (Rc::new(x.clone()), Rc::new(weight.clone()));
                (
                    median_seconds(0.5, || w.run(&x, &weight, false)),
                    median_seconds(0.5, || w.run(&x, &weight, true)),
                )
            });
            println!(
                "| {} | {t} | {:.3} | {:.0} | {:.3} | {:.0} |",
                w.name,
                fwd * 1e3,
                flops / fwd / 1e9,
                both * 1e3,
                3.0 * flops / both / 1e9
            );
        }
    }

    for row in op_rows() {
        let inputs: Vec<ArrayD<f32>> = row.inputs.iter().map(|s| random(s, &mut rng)).collect();
        if !wanted(row.name) {
            continue;
        }
        for (t, pool) in &pools {
            let (fwd, both) = pool.install(|| {
                let inputs: Vec<Rc<ArrayD<f32>>> = inputs.iter().cloned().map(Rc::new).collect();
                (
                    median_seconds(0.5, || run_op(&row, &inputs, false)),
                    median_seconds(0.5, || run_op(&row, &inputs, true)),
                )
            });
            println!("| {} | {t} | {:.3} | | {:.3} | |", row.name, fwd * 1e3, both * 1e3);
        }
    }

    // E2E: one Adam step of Conv(1→16,s2)·ReLU·Conv(16→32,s2)·ReLU·ConvT(32→16,s2,op1)·ReLU·ConvT(16→1,s2,op1)·Sigmoid,
    // then the same for the autoencoder example's model (those layers with a 7×7 conv to a
    // 64-long code and back in the middle). Each pool builds the models from the same seed.
    let batch = random(&[64, 1, 28, 28], &mut rng).mapv(|v| v.abs());
    let names = [
        "E2E training step, batch 64, 28×28",
        "autoencoder example's step, batch 64",
    ];
    for (k, name) in names.into_iter().enumerate() {
        if !wanted(name) {
            continue;
        }
        for (t, pool) in &pools {
            let step = pool.install(|| -> Result<f64> {
                let mut rng = StdRng::seed_from_u64(1);
                let mut model = if k == 0 {
                    workloads::small_autoencoder(&mut rng)?
                } else {
                    conv_autoencoder(64, &mut rng)?
                };
                let mut adam = Adam::new(1e-3);
                Ok(median_seconds(1.0, || {
                    workloads::adam_step(&mut model, &mut adam, &batch)
                }))
            })?;
            println!("| {name} | {t} | | | {:.3} | {:.0} steps/s |", step * 1e3, 1.0 / step);
        }
    }
    Ok(())
}
