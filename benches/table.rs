//! Prints the conv-family benchmark table (W1–W6, and a training step of two models) in one run,
//! so machines can be compared: median milliseconds per call and GFLOP/s, f32.
//!
//! ```text
//! cargo bench --bench table           # everything
//! cargo bench --bench table -- W6 E2E # only the rows whose names contain one of these
//! ```
//!
//! FLOPs: conv forward `2·N·C_out·Πout·(C_in/g)·Πk`, transposed conv forward
//! `2·N·C_in·Πin·(C_out/g)·Πk`; forward + backward (gradients for input and weight) is 3× forward.

use std::rc::Rc;
use std::time::Instant;

#[path = "common/workloads.rs"]
mod workloads;

use adjoint::optim::Adam;
use adjoint::train::conv_autoencoder;
use ndarray::ArrayD;
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

fn main() -> Result<(), adjoint::Error> {
    // `cargo bench` passes `--bench`; anything else names rows to run.
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let wanted = |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    let mut rng = StdRng::seed_from_u64(0);
    println!("| workload | fwd ms | fwd GFLOP/s | fwd+bwd ms | fwd+bwd GFLOP/s |");
    println!("|---|---|---|---|---|");
    for w in &WORKLOADS {
        // Drawn for every row, so a row's inputs do not depend on the filter.
        let x = Rc::new(random(&w.x, &mut rng));
        let weight = Rc::new(random(&w.w, &mut rng));
        if !wanted(w.name) {
            continue;
        }
        let flops = w.forward_flops() as f64;
        let fwd = median_seconds(1.0, || w.run(&x, &weight, false));
        let both = median_seconds(1.0, || w.run(&x, &weight, true));
        println!(
            "| {} | {:.2} | {:.0} | {:.2} | {:.0} |",
            w.name,
            fwd * 1e3,
            flops / fwd / 1e9,
            both * 1e3,
            3.0 * flops / both / 1e9
        );
    }

    // E2E: one Adam step of Conv(1→16,s2)·ReLU·Conv(16→32,s2)·ReLU·ConvT(32→16,s2,op1)·ReLU·ConvT(16→1,s2,op1)·Sigmoid,
    // then the same for the autoencoder example's model (those layers with a 7×7 conv to a
    // 64-long code and back in the middle).
    let batch = random(&[64, 1, 28, 28], &mut rng).mapv(|v| v.abs());
    let models = [
        (
            "E2E training step, batch 64, 28×28",
            workloads::small_autoencoder(&mut rng)?,
        ),
        ("autoencoder example's step, batch 64", conv_autoencoder(64, &mut rng)?),
    ];
    for (name, mut model) in models {
        if !wanted(name) {
            continue;
        }
        let mut adam = Adam::new(1e-3);
        let step = median_seconds(2.0, || workloads::adam_step(&mut model, &mut adam, &batch));
        println!("| {name} | | | {:.2} | {:.0} steps/s |", step * 1e3, 1.0 / step);
    }
    Ok(())
}
