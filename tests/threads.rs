//! Results do not depend on the number of threads: every op that splits its work over rayon's
//! pool cuts it by the shapes alone, so a pool of 1, 2, 3 or 8 threads gives the same bits.
//! The sizes here are above the thresholds where the work is split (`2^15` elements; the conv
//! kernels cut a batch into one piece per `2^20` multiply-adds, up to 8, and split a batch of
//! one's products from `2^22`), and the split paths are compared with plain loops.

use adjoint::models::{UNet, Upsampling};
use adjoint::nn::{Module, normal};
use adjoint::ops::loss::CrossEntropyOptions;
use adjoint::ops::pool::{PoolOptions, avg_pool2d, max_pool2d};
use adjoint::optim::{Adam, Optimizer};
use adjoint::{Tape, concat, cross_entropy};
use ndarray::{Array4, ArrayD, Axis, IxDyn, Slice};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const THREADS: [usize; 4] = [1, 2, 3, 8];

fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool")
        .install(f)
}

/// Every array of `run`, bit for bit the same in each pool size.
fn same_bits_in_every_pool(what: &str, run: impl Fn() -> Vec<ArrayD<f32>> + Sync) {
    let reference = in_pool(1, &run);
    for threads in THREADS {
        let got = in_pool(threads, &run);
        assert_eq!(got.len(), reference.len());
        for (k, (a, b)) in got.iter().zip(&reference).enumerate() {
            assert_eq!(a.shape(), b.shape(), "{what}: array {k}, {threads} threads");
            let differ = a.iter().zip(b).filter(|(x, y)| x.to_bits() != y.to_bits()).count();
            assert_eq!(
                differ, 0,
                "{what}: array {k} differs in {differ} values with {threads} threads"
            );
        }
    }
}

fn random(shape: &[usize], seed: u64) -> ArrayD<f32> {
    normal(shape, 1.0, &mut StdRng::seed_from_u64(seed)).unwrap()
}

/// Three training steps of a U-Net (convs, batch norm, max-pool, transposed convs, concat,
/// per-pixel cross-entropy, Adam): the losses, the logits and every parameter after the steps.
#[test]
fn a_unet_training_step_is_the_same_on_any_number_of_threads() {
    same_bits_in_every_pool("U-Net steps", || {
        let mut rng = StdRng::seed_from_u64(5);
        let mut net = UNet::<f32>::new(1, 5, &[8, 16, 32], Upsampling::Transposed, &mut rng).unwrap();
        let mut adam = Adam::new(3e-3);
        let x = random(&[4, 1, 48, 48], 6);
        let target = ArrayD::from_shape_fn(IxDyn(&[4, 48, 48]), |_| rng.random_range(0..5i64));
        let mut out = Vec::new();
        for _ in 0..3 {
            let tape = Tape::new();
            let logits = net.forward(tape.constant(x.clone())).unwrap();
            let loss = cross_entropy(logits, &target, &CrossEntropyOptions::default()).unwrap();
            let grads = tape.backward(loss).unwrap();
            out.push(loss.value().as_ref().clone());
            out.push(logits.value().as_ref().clone());
            adam.step(&mut net, &grads);
        }
        out.extend(net.parameters().into_iter().map(|(_, p)| p.value().clone()));
        out
    });
}

/// Pooling, concat, slice and padding on arrays large enough to be split, forward and backward
/// (with a non-uniform upstream gradient, so each cell's route shows).
#[test]
fn pooling_and_reshaping_are_the_same_on_any_number_of_threads() {
    same_bits_in_every_pool("pool and reshape", || {
        let tape = Tape::<f32>::new();
        let x = tape.param(random(&[3, 16, 40, 40], 7));
        let pair = max_pool2d(x, &PoolOptions::new(2)).unwrap();
        let general = max_pool2d(x, &PoolOptions::new(3).stride(2).padding(1)).unwrap();
        let avg = avg_pool2d(x, &PoolOptions::new(3).stride(2).padding(1)).unwrap();
        let joined = concat(&[x, x.mul_scalar(2.0).unwrap()], 1).unwrap();
        let cut = joined.slice(1, 5, 27).unwrap();
        let padded = x.pad_axis(2, 3, 4).unwrap();
        let mut total = tape.constant(ArrayD::zeros(IxDyn(&[])));
        for (v, seed) in [(pair, 8), (general, 9), (avg, 10), (cut, 11), (padded, 12)] {
            let w = tape.constant(random(&v.shape(), seed));
            total = total.add(v.mul(w).unwrap().sum().unwrap()).unwrap();
        }
        let grads = tape.backward(total).unwrap();
        vec![
            pair.value().as_ref().clone(),
            general.value().as_ref().clone(),
            avg.value().as_ref().clone(),
            cut.value().as_ref().clone(),
            padded.value().as_ref().clone(),
            grads[x].clone(),
        ]
    });
}

/// The split max-pool, concat, slice and padding against plain loops and ndarray's own
/// slicing, on the same large arrays.
#[test]
fn split_pooling_and_reshaping_match_plain_loops() {
    let value = random(&[3, 16, 40, 40], 7);
    let x4 = value.clone().into_dimensionality::<ndarray::Ix4>().unwrap();
    let tape = Tape::<f32>::new();
    let x = tape.param(value.clone());

    // 2×2 max-pool: the first maximum of each window in row-major order; its gradient (from an
    // upstream of ones) is 1 at that cell.
    let y = max_pool2d(x, &PoolOptions::new(2)).unwrap();
    let grads = tape.backward(y.sum().unwrap()).unwrap();
    let mut expected = Array4::<f32>::zeros((3, 16, 20, 20));
    let mut routed = Array4::<f32>::zeros((3, 16, 40, 40));
    for ((n, c, i, j), out) in expected.indexed_iter_mut() {
        let cells = [
            (2 * i, 2 * j),
            (2 * i, 2 * j + 1),
            (2 * i + 1, 2 * j),
            (2 * i + 1, 2 * j + 1),
        ];
        let mut best = cells[0];
        for &cell in &cells[1..] {
            if x4[[n, c, cell.0, cell.1]] > x4[[n, c, best.0, best.1]] {
                best = cell;
            }
        }
        *out = x4[[n, c, best.0, best.1]];
        routed[[n, c, best.0, best.1]] += 1.0;
    }
    assert_eq!(*y.value(), expected.into_dyn());
    assert_eq!(grads[x], routed.into_dyn());

    let doubled = value.mapv(|v| v * 2.0);
    let joined = concat(&[x, tape.constant(doubled.clone())], 1).unwrap();
    let reference = ndarray::concatenate(Axis(1), &[value.view(), doubled.view()]).unwrap();
    assert_eq!(*joined.value(), reference);
    let cut = joined.slice(1, 5, 27).unwrap();
    assert_eq!(*cut.value(), reference.slice_axis(Axis(1), Slice::from(5..27)));
    let padded = x.pad_axis(2, 3, 4).unwrap();
    let mut reference = ArrayD::<f32>::zeros(IxDyn(&[3, 16, 47, 40]));
    reference.slice_axis_mut(Axis(2), Slice::from(3..43)).assign(&value);
    assert_eq!(*padded.value(), reference);
}

/// Per-pixel cross-entropy over `[n, classes, h, w]` large enough to be split (forward by
/// element, gradient by sample), against its definition computed in plain f64 loops.
#[test]
fn split_cross_entropy_matches_its_definition() {
    let (n, classes, h, w) = (4, 5, 48, 48);
    let logits = random(&[n, classes, h, w], 13).mapv(f64::from);
    let mut rng = StdRng::seed_from_u64(14);
    // Some pixels ignored (-100, PyTorch's default ignore_index).
    let target = ArrayD::from_shape_fn(IxDyn(&[n, h, w]), |_| match rng.random_range(0..12i64) {
        11 => -100,
        t => t % 5,
    });
    let tape = Tape::<f64>::new();
    let x = tape.param(logits.clone());
    let loss = cross_entropy(x, &target, &CrossEntropyOptions::default()).unwrap();
    let grads = tape.backward(loss).unwrap();

    let mut total = 0.0;
    let mut counted = 0.0;
    let mut expected = ArrayD::<f64>::zeros(IxDyn(&[n, classes, h, w]));
    for b in 0..n {
        for i in 0..h {
            for j in 0..w {
                let t = target[[b, i, j]];
                if t < 0 {
                    continue;
                }
                let z: Vec<f64> = (0..classes).map(|c| logits[[b, c, i, j]]).collect();
                let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = z.iter().map(|v| (v - m).exp()).sum();
                total += -(z[t as usize] - m - sum.ln());
                counted += 1.0;
                for c in 0..classes {
                    let p = (z[c] - m).exp() / sum;
                    expected[[b, c, i, j]] = p - if c == t as usize { 1.0 } else { 0.0 };
                }
            }
        }
    }
    let mean = total / counted;
    expected.mapv_inplace(|v| v / counted);
    assert!(
        (loss.value()[[]] - mean).abs() < 1e-12 * mean.abs(),
        "{} vs {mean}",
        loss.value()[[]]
    );
    let worst = grads[x]
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-15, "largest gradient difference {worst}");
}

/// The conv family on work large enough to split (the kernels' batch halves, the bias add, the
/// cleared outputs): values and the gradients of input, weight and bias, for convs and
/// transposed convs of rank 1 to 3, with stride, padding, dilation, groups and output padding,
/// a batch of one, and batches cut into 2 and 8 pieces of unequal sizes (7 images: 3 and 4;
/// 10 images: 1 or 2 each).
#[test]
fn the_conv_family_is_the_same_on_any_number_of_threads() {
    use adjoint::ops::conv::{ConvOptions, ConvTransposeOptions, conv, conv_transpose};
    same_bits_in_every_pool("conv family", || {
        let mut out = Vec::new();
        let cases: [(&[usize], &[usize], usize); 7] = [
            (&[6, 8, 300], &[16, 4, 5], 2),
            (&[4, 16, 30, 30], &[32, 16, 3, 3], 1),
            (&[1, 32, 48, 48], &[32, 32, 3, 3], 1),
            (&[4, 8, 24, 24], &[16, 4, 4, 4], 2),
            (&[2, 4, 10, 12, 12], &[8, 4, 3, 3, 3], 1),
            (&[7, 16, 24, 24], &[16, 16, 3, 3], 1),
            (&[10, 16, 40, 40], &[32, 16, 3, 3], 1),
        ];
        for (k, &(x_shape, w_shape, groups)) in cases.iter().enumerate() {
            let seed = 20 + 3 * k as u64;
            let tape = Tape::<f32>::new();
            let x = tape.param(random(x_shape, seed));
            let w = tape.param(random(w_shape, seed + 1));
            let b = tape.param(random(&[w_shape[0]], seed + 2));
            let opts = ConvOptions::new()
                .stride(2)
                .padding(1)
                .dilation(1 + k % 2)
                .groups(groups);
            let y = conv(x, w, Some(b), &opts).unwrap();
            // The transposed conv maps y back to x's channels: the conv weight's shape, read as
            // the transposed layout [c_in, c_out/g, k..].
            let wt = tape.param(random(w_shape, seed + 3));
            let topts = ConvTransposeOptions::new()
                .stride(2)
                .padding(1)
                .output_padding(1)
                .dilation(1 + k % 2)
                .groups(groups);
            let z = conv_transpose(y, wt, None, &topts).unwrap();
            let u = tape.constant(random(&z.shape(), seed + 4));
            let grads = tape.backward(z.mul(u).unwrap().sum().unwrap()).unwrap();
            out.extend([y.value().as_ref().clone(), z.value().as_ref().clone()]);
            out.extend([&grads[x], &grads[w], &grads[b], &grads[wt]].map(|g| g.clone()));
        }
        out
    });
}
