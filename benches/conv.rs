//! The conv family on the workloads W1–W6 of the performance issue, forward and forward +
//! backward (gradients for input and weight), f32. Throughput is reported in FLOP/s:
//! conv forward `2·N·C_out·Πout·(C_in/g)·Πk`, transposed conv forward `2·N·C_in·Πin·(C_out/g)·Πk`,
//! forward + backward 3× forward.

#[path = "common/workloads.rs"]
mod workloads;

use std::rc::Rc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ndarray::{ArrayD, Dimension};

use workloads::WORKLOADS;

// As in benches/table.rs: glibc's malloc returns freed activations to the system between
// steps and faults them back in, which would be measured here instead of adjoint.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn conv_family(c: &mut Criterion) {
    for workload in &WORKLOADS {
        let x = Rc::new(ArrayD::from_shape_fn(workload.x.to_vec(), |i| {
            (i.slice().iter().sum::<usize>() % 7) as f32 * 0.1
        }));
        let w = Rc::new(ArrayD::from_shape_fn(workload.w.to_vec(), |i| {
            (i.slice().iter().sum::<usize>() % 5) as f32 * 0.1
        }));
        let mut group = c.benchmark_group(workload.name);
        group.sample_size(20);
        group.throughput(Throughput::Elements(workload.forward_flops()));
        group.bench_function("fwd (FLOP)", |b| b.iter(|| workload.run(&x, &w, false)));
        group.throughput(Throughput::Elements(3 * workload.forward_flops()));
        group.bench_function("fwd+bwd (FLOP)", |b| b.iter(|| workload.run(&x, &w, true)));
        group.finish();
    }
}

criterion_group!(benches, conv_family);
criterion_main!(benches);
