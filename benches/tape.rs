//! The tape's own overhead: recording and back-propagating a chain of 1,000 ops on 4-element
//! values, where the arithmetic is negligible. Divide the time by 1,000 for the cost per op.

use adjoint::Tape;
use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::{ArrayD, arr1};

// As in benches/table.rs: glibc's malloc returns freed activations to the system between
// steps and faults them back in, which would be measured here instead of adjoint.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn chain(x0: &ArrayD<f64>) {
    let tape = Tape::new();
    let x = tape.param(x0.clone());
    let mut y = x;
    for i in 0..1000 {
        y = match i % 4 {
            0 => y.mul(x),
            1 => y.add(x),
            2 => y.tanh(),
            _ => y.mul_scalar(0.5),
        }
        .unwrap();
    }
    let loss = y.sum().unwrap();
    tape.backward(loss).unwrap();
}

fn tape_overhead(c: &mut Criterion) {
    let x0 = arr1(&[0.1, 0.2, 0.3, 0.4]).into_dyn();
    c.bench_function("tape_chain_1000_ops_record_and_backward", |b| b.iter(|| chain(&x0)));
}

criterion_group!(benches, tape_overhead);
criterion_main!(benches);
