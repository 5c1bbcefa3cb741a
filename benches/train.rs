//! One training step (forward, MSE, backward, Adam) of the small conv autoencoder of the
//! performance issue, and of the main example's model, batch 64, 28×28, f32.

#[path = "common/workloads.rs"]
mod workloads;

use adjoint::optim::Adam;
use adjoint::train::conv_autoencoder;
use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::ArrayD;
use rand::SeedableRng;
use rand::rngs::StdRng;
use workloads::adam_step;

// As in benches/table.rs: glibc's malloc returns freed activations to the system between
// steps and faults them back in, which would be measured here instead of adjoint.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn training_step(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(0);
    let mut small = workloads::small_autoencoder(&mut rng).unwrap();
    let mut example = conv_autoencoder::<f32>(64, &mut rng).unwrap();
    let batch = ArrayD::from_shape_fn(vec![64, 1, 28, 28], |i| {
        ((i[2] * 31 + i[3] * 17 + i[0]) % 11) as f32 / 10.0
    });
    let mut group = c.benchmark_group("training_step");
    group.sample_size(30);
    let mut adam = Adam::new(1e-3);
    group.bench_function("E2E_conv4_batch64", |b| {
        b.iter(|| adam_step(&mut small, &mut adam, &batch))
    });
    let mut adam = Adam::new(1e-3);
    group.bench_function("autoencoder_example_batch64", |b| {
        b.iter(|| adam_step(&mut example, &mut adam, &batch))
    });
    group.finish();
}

criterion_group!(benches, training_step);
criterion_main!(benches);
