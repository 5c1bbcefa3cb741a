//! Shape arithmetic of the conv family: Dumoulin & Visin's fifteen relationships, PyTorch's and
//! TensorFlow's size rules, and the shapes the ops actually return.
//!
//! Every expected value is computed here from the formula as written in the paper or in
//! `CONV_SEMANTICS.md` (signed arithmetic, explicit floor), never by calling the code under test.

use adjoint::Tape;
use adjoint::ops::conv::geometry::{
    tf_same, tf_transpose_axis, tf_transpose_default_size, tf_transpose_sizes, tf_valid,
};
use adjoint::ops::conv::views::{conv_matrix, conv_transpose_by_zero_insertion};
use adjoint::ops::conv::{
    AxisGeometry, ConvOptions, ConvTransposeOptions, conv, conv_transpose, conv_transpose1d, conv_transpose2d,
    conv_transpose3d, conv1d, conv2d, conv3d,
};
use ndarray::{ArrayD, IxDyn};

/// Input sizes, kernels, strides, paddings and dilations the tables sweep.
const I: std::ops::RangeInclusive<usize> = 1..=14;
const K: std::ops::RangeInclusive<usize> = 1..=5;
const S: std::ops::RangeInclusive<usize> = 1..=4;
const P: std::ops::RangeInclusive<usize> = 0..=4;
const D: std::ops::RangeInclusive<usize> = 1..=3;

fn ax(k: usize, s: usize, p: usize, d: usize) -> AxisGeometry {
    AxisGeometry::new(k, s, p, d)
}

/// ⌊a / b⌋ for signed `a`, positive `b`.
fn floor_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b)
}

/// Deterministic values in [-1, 1), so the zero-insertion view has something to move around.
fn values(shape: &[usize], seed: u64) -> ArrayD<f64> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    ArrayD::from_shape_fn(IxDyn(shape), |_| {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    })
}

fn max_abs_diff(a: &ArrayD<f64>, b: &ArrayD<f64>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

// ---------------------------------------------------------------------------------------------
// Dumoulin & Visin, relationships 1–7 and 15: the conv.
// ---------------------------------------------------------------------------------------------

#[test]
fn dv_relationship_01_no_padding_unit_stride() {
    for k in K {
        for i in I {
            let expected = (i as i64 - k as i64) + 1;
            let got = ax(k, 1, 0, 1).conv_output_size(i);
            if expected >= 1 {
                assert_eq!(got, Some(expected as usize), "i{i} k{k}");
            } else {
                assert_eq!(got, None, "i{i} k{k}: kernel larger than the input");
            }
        }
    }
}

#[test]
fn dv_relationship_02_padding_unit_stride() {
    for k in K {
        for p in P {
            for i in I {
                let expected = (i as i64 - k as i64) + 2 * p as i64 + 1;
                let got = ax(k, 1, p, 1).conv_output_size(i);
                assert_eq!(got, (expected >= 1).then_some(expected as usize), "i{i} k{k} p{p}");
            }
        }
    }
}

#[test]
fn dv_relationship_03_half_padding() {
    for k in (1..=9).filter(|k| k % 2 == 1) {
        let p = k / 2;
        for i in I {
            assert_eq!(ax(k, 1, p, 1).conv_output_size(i), Some(i), "i{i} k{k}");
        }
    }
}

#[test]
fn dv_relationship_04_full_padding() {
    for k in K {
        for i in I {
            assert_eq!(ax(k, 1, k - 1, 1).conv_output_size(i), Some(i + (k - 1)), "i{i} k{k}");
        }
    }
}

#[test]
fn dv_relationship_05_no_padding_stride() {
    for k in K {
        for s in S {
            for i in I {
                let got = ax(k, s, 0, 1).conv_output_size(i);
                if i >= k {
                    let expected = floor_div(i as i64 - k as i64, s as i64) + 1;
                    assert_eq!(got, Some(expected as usize), "i{i} k{k} s{s}");
                } else {
                    assert_eq!(got, None, "i{i} k{k} s{s}");
                }
            }
        }
    }
}

#[test]
fn dv_relationship_06_padding_and_stride() {
    for k in K {
        for s in S {
            for p in P {
                for i in I {
                    let got = ax(k, s, p, 1).conv_output_size(i);
                    if i + 2 * p >= k {
                        let expected = floor_div(i as i64 + 2 * p as i64 - k as i64, s as i64) + 1;
                        assert_eq!(got, Some(expected as usize), "i{i} k{k} s{s} p{p}");
                    } else {
                        assert_eq!(got, None, "i{i} k{k} s{s} p{p}");
                    }
                }
            }
        }
    }
}

/// Pooling windows: count the windows `[j·s, j·s + k)` that fit in the input, by brute force,
/// and compare with `⌊(i − k)/s⌋ + 1` and with the conv size.
#[test]
fn dv_relationship_07_pooling() {
    for k in K {
        for s in S {
            for i in I.filter(|&i| i >= k) {
                let windows = (0..i).filter(|j| j * s + k <= i).count();
                let formula = floor_div(i as i64 - k as i64, s as i64) + 1;
                assert_eq!(windows as i64, formula, "i{i} k{k} s{s}");
                assert_eq!(ax(k, s, 0, 1).conv_output_size(i), Some(windows), "i{i} k{k} s{s}");
            }
        }
    }
}

#[test]
fn dv_relationship_15_dilation() {
    for k in K {
        for s in S {
            for p in P {
                for d in D {
                    for i in I {
                        let num = i as i64 + 2 * p as i64 - k as i64 - (k as i64 - 1) * (d as i64 - 1);
                        let got = ax(k, s, p, d).conv_output_size(i);
                        if num >= 0 {
                            let expected = floor_div(num, s as i64) + 1;
                            assert_eq!(got, Some(expected as usize), "i{i} k{k} s{s} p{p} d{d}");
                        } else {
                            assert_eq!(got, None, "i{i} k{k} s{s} p{p} d{d}");
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Dumoulin & Visin, relationships 8–14: the transposed conv, as a size and as the
// stretched-input conv of the zero-insertion view.
// ---------------------------------------------------------------------------------------------

/// Runs the zero-insertion view on a 1-D input of size `i_prime` and checks the D&V description:
/// the stretched input has `s(i' − 1) + 1` cells, the padded one `p'` more on each side plus `a`
/// at the end, the stride-1 conv of it has size `o'`, and its values are the transposed conv's.
fn check_stretched(k: usize, s: usize, p: usize, d: usize, a: usize, i_prime: usize, o_prime: usize) {
    let what = format!("k{k} s{s} p{p} d{d} a{a} i'{i_prime}");
    let x = values(&[1, 2, i_prime], (k * 1000 + s * 100 + p * 10 + i_prime) as u64);
    let w = values(&[2, 3, k], (k * 7 + d) as u64);
    let opts = ConvTransposeOptions::new()
        .stride(s)
        .padding(p)
        .dilation(d)
        .output_padding(a);
    let steps = conv_transpose_by_zero_insertion(&x, &w, &opts).unwrap_or_else(|e| panic!("{what}: {e}"));
    let stretched = s * (i_prime - 1) + 1;
    assert_eq!(steps.stretched.shape(), &[1, 2, stretched], "{what}");
    // Zeros between the input cells, the input cells at multiples of s.
    for (j, &v) in steps.stretched.iter().enumerate() {
        let pos = j % stretched;
        let ch = j / stretched;
        if pos.is_multiple_of(s) {
            assert_eq!(v, x[[0, ch, pos / s]], "{what}");
        } else {
            assert_eq!(v, 0.0, "{what}");
        }
    }
    let p_prime = (d * (k - 1)) as i64 - p as i64;
    let padded = stretched as i64 + 2 * p_prime + a as i64;
    assert_eq!(steps.padded.shape(), &[1, 2, padded as usize], "{what}");
    assert_eq!(steps.y.shape(), &[1, 3, o_prime], "{what}");
    // The stride-1 conv on the padded input has size padded − k_e + 1 = o'.
    assert_eq!(padded - (d * (k - 1) + 1) as i64 + 1, o_prime as i64, "{what}");
    // And it is the transposed conv.
    let tape = Tape::<f64>::new();
    let y = conv_transpose1d(tape.constant(x), tape.constant(w), None, &opts).unwrap();
    assert!(max_abs_diff(&y.value(), &steps.y) < 1e-12, "{what}");
}

#[test]
fn dv_relationship_08_transpose_of_no_padding_unit_stride() {
    for k in K {
        for i_prime in 1..=10 {
            // The transpose of a (k, s = 1, p = 0) conv: a conv with p' = k − 1.
            let o_prime = i_prime + (k - 1);
            let g = ax(k, 1, 0, 1);
            assert_eq!(
                g.conv_transpose_output_size(i_prime, 0),
                Some(o_prime),
                "k{k} i'{i_prime}"
            );
            // It is the full-padding conv of relationship 4.
            assert_eq!(ax(k, 1, k - 1, 1).conv_output_size(i_prime), Some(o_prime));
            // And it inverts the conv's size map.
            assert_eq!(g.conv_output_size(o_prime), Some(i_prime));
            check_stretched(k, 1, 0, 1, 0, i_prime, o_prime);
        }
    }
}

#[test]
fn dv_relationship_09_transpose_of_padding_unit_stride() {
    for k in K {
        for p in 0..k {
            for i_prime in 1..=10 {
                let o_prime = i_prime as i64 + (k as i64 - 1) - 2 * p as i64;
                let got = ax(k, 1, p, 1).conv_transpose_output_size(i_prime, 0);
                if o_prime < 1 {
                    assert_eq!(got, None, "k{k} p{p} i'{i_prime}");
                    continue;
                }
                assert_eq!(got, Some(o_prime as usize), "k{k} p{p} i'{i_prime}");
                // D&V's p' = k − p − 1 padding on a unit-stride conv gives the same size.
                assert_eq!(ax(k, 1, k - p - 1, 1).conv_output_size(i_prime), Some(o_prime as usize));
                check_stretched(k, 1, p, 1, 0, i_prime, o_prime as usize);
            }
        }
    }
}

#[test]
fn dv_relationship_10_transpose_of_half_padding() {
    for k in (1..=7).filter(|k| k % 2 == 1) {
        let p = k / 2;
        for i_prime in 1..=10 {
            assert_eq!(ax(k, 1, p, 1).conv_transpose_output_size(i_prime, 0), Some(i_prime));
            // p' = k − p − 1 = p: the transpose of half padding is half padding.
            assert_eq!(k - p - 1, p);
            check_stretched(k, 1, p, 1, 0, i_prime, i_prime);
        }
    }
}

#[test]
fn dv_relationship_11_transpose_of_full_padding() {
    for k in K {
        for i_prime in 1..=12 {
            let o_prime = i_prime as i64 - (k as i64 - 1);
            let got = ax(k, 1, k - 1, 1).conv_transpose_output_size(i_prime, 0);
            if o_prime < 1 {
                assert_eq!(got, None, "k{k} i'{i_prime}");
                continue;
            }
            assert_eq!(got, Some(o_prime as usize), "k{k} i'{i_prime}");
            // p' = 0: the transpose of full padding is the no-padding conv.
            assert_eq!(ax(k, 1, 0, 1).conv_output_size(i_prime), Some(o_prime as usize));
            check_stretched(k, 1, k - 1, 1, 0, i_prime, o_prime as usize);
        }
    }
}

#[test]
fn dv_relationship_12_transpose_of_stride_no_padding() {
    for k in K {
        for s in S {
            for i in I.filter(|&i| i >= k && (i - k) % s == 0) {
                let conv = ax(k, s, 0, 1);
                let i_prime = conv.conv_output_size(i).unwrap();
                let o_prime = s * (i_prime - 1) + k;
                assert_eq!(o_prime, i, "the transpose recovers the conv's input size");
                assert_eq!(conv.conv_transpose_output_size(i_prime, 0), Some(o_prime));
                assert_eq!(conv.past_last_window(i), Some(0));
                check_stretched(k, s, 0, 1, 0, i_prime, o_prime);
            }
        }
    }
}

#[test]
fn dv_relationship_13_transpose_of_stride_and_padding() {
    for k in K {
        for s in S {
            for p in 0..k {
                for i in I.filter(|&i| i + 2 * p >= k && (i + 2 * p - k) % s == 0) {
                    let conv = ax(k, s, p, 1);
                    let i_prime = conv.conv_output_size(i).unwrap();
                    let o_prime = (s * (i_prime - 1) + k) as i64 - 2 * p as i64;
                    assert_eq!(o_prime, i as i64);
                    assert_eq!(conv.conv_transpose_output_size(i_prime, 0), Some(i));
                    check_stretched(k, s, p, 1, 0, i_prime, i);
                }
            }
        }
    }
}

#[test]
fn dv_relationship_14_transpose_general_output_padding_is_the_cells_past_the_last_window() {
    for k in K {
        for s in S {
            for p in 0..k {
                for i in I.filter(|&i| i + 2 * p >= k) {
                    let conv = ax(k, s, p, 1);
                    let i_prime = conv.conv_output_size(i).unwrap();
                    let a = (i + 2 * p - k) % s;
                    assert_eq!(conv.past_last_window(i), Some(a), "k{k} s{s} p{p} i{i}");
                    let o_prime = (s * (i_prime - 1) + a + k) as i64 - 2 * p as i64;
                    assert_eq!(o_prime, i as i64, "D&V's o' is the conv's input size");
                    assert_eq!(conv.conv_transpose_output_size(i_prime, a), Some(i));
                    // a is the only output padding below s that gives back i.
                    for op in 0..s {
                        let size = conv.conv_transpose_output_size(i_prime, op);
                        assert_eq!(size == Some(i), op == a, "k{k} s{s} p{p} i{i} op{op}");
                    }
                    check_stretched(k, s, p, 1, a, i_prime, i);
                    // Through the op, as PyTorch's output_padding.
                    let tape = Tape::<f64>::new();
                    let x = tape.constant(values(&[1, 1, i_prime], 3));
                    let w = tape.constant(values(&[1, 1, k], 4));
                    let opts = ConvTransposeOptions::new().stride(s).padding(p).output_padding(a);
                    assert_eq!(conv_transpose1d(x, w, None, &opts).unwrap().shape(), vec![1, 1, i]);
                }
            }
        }
    }
}

/// Relationship 14 with dilation, the way PyTorch generalises it: p' = d(k − 1) − p, and padding
/// beyond d(k − 1) crops (p' < 0).
#[test]
fn dv_relationship_14_with_dilation_and_cropping() {
    for k in 1..=4 {
        for s in 1..=3 {
            for d in D {
                for p in 0..=(d * (k - 1) + 2) {
                    for i in 1..=9 {
                        let conv = ax(k, s, p, d);
                        let Some(i_prime) = conv.conv_output_size(i) else {
                            continue;
                        };
                        let k_e = d * (k - 1) + 1;
                        let a = (i + 2 * p - k_e) % s;
                        assert_eq!(conv.past_last_window(i), Some(a));
                        assert_eq!(conv.conv_transpose_output_size(i_prime, a), Some(i));
                        check_stretched(k, s, p, d, a, i_prime, i);
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// PyTorch's size rules.
// ---------------------------------------------------------------------------------------------

/// The conv output size, brute force: count the kernel positions whose last tap lies inside the
/// padded input.
#[test]
fn pytorch_conv_output_size_with_dilation_and_asymmetric_padding() {
    for g in asymmetric_axes() {
        let (k, s, d, pb, pa) = (g.kernel, g.stride, g.dilation, g.pad_before, g.pad_after);
        assert_eq!(g.effective_kernel(), d * (k - 1) + 1);
        for i in I {
            let padded = i + pb + pa;
            let positions = (0..padded).filter(|o| o * s + d * (k - 1) < padded).count();
            let expected = (positions > 0).then_some(positions);
            assert_eq!(g.conv_output_size(i), expected, "i{i} k{k} s{s} d{d} p({pb},{pa})");
        }
    }
}

/// Every kernel, stride and dilation of the sweep, with every padding before and after in 0..=3.
fn asymmetric_axes() -> impl Iterator<Item = AxisGeometry> {
    K.flat_map(|kernel| {
        S.flat_map(move |stride| D.flat_map(move |dilation| (0..16).map(move |p| (kernel, stride, dilation, p))))
    })
    .map(|(kernel, stride, dilation, p)| AxisGeometry {
        kernel,
        stride,
        dilation,
        pad_before: p / 4,
        pad_after: p % 4,
    })
}

#[test]
fn pytorch_conv_transpose_output_size() {
    for k in K {
        for s in S {
            for d in D {
                for p in P {
                    for op in 0..s.max(d) {
                        for i in 0..=8 {
                            let got = ax(k, s, p, d).conv_transpose_output_size(i, op);
                            let expected =
                                (i as i64 - 1) * s as i64 - 2 * p as i64 + d as i64 * (k as i64 - 1) + op as i64 + 1;
                            if i == 0 || expected < 1 {
                                assert_eq!(got, None, "i{i} k{k} s{s} d{d} p{p} op{op}");
                            } else {
                                assert_eq!(got, Some(expected as usize), "i{i} k{k} s{s} d{d} p{p} op{op}");
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `conv_input_sizes(o)` is exactly the set of sizes the conv maps to `o`, found by brute force;
/// it holds `s` consecutive sizes unless the smallest would be below 1.
#[test]
fn pytorch_conv_input_sizes_is_the_many_to_one_run() {
    for k in K {
        for s in S {
            for d in D {
                for (pb, pa) in [(0, 0), (1, 1), (2, 2), (0, 2), (3, 1), (6, 6)] {
                    let g = AxisGeometry {
                        kernel: k,
                        stride: s,
                        dilation: d,
                        pad_before: pb,
                        pad_after: pa,
                    };
                    for o in 1..=8 {
                        let brute: Vec<usize> = (1..=80).filter(|&i| g.conv_output_size(i) == Some(o)).collect();
                        let what = format!("k{k} s{s} d{d} p({pb},{pa}) o{o}");
                        match g.conv_input_sizes(o) {
                            Some(range) => assert_eq!(range.collect::<Vec<_>>(), brute, "{what}"),
                            None => assert!(brute.is_empty(), "{what}: {brute:?}"),
                        }
                        let smallest = (o as i64 - 1) * s as i64 + g.effective_kernel() as i64 - (pb + pa) as i64;
                        if smallest >= 1 {
                            assert_eq!(brute.len(), s, "{what}");
                            assert_eq!(brute[0] as i64, smallest, "{what}");
                        }
                        // Every size of the run comes back from its own count past the last window.
                        for &i in &brute {
                            let a = g.past_last_window(i).unwrap();
                            assert!(a < s);
                            // i − a is the run's smallest size, even when that is below 1 (a
                            // then counts padding cells too).
                            assert_eq!(i as i64 - a as i64, smallest, "{what} i{i}");
                            assert_eq!(g.conv_transpose_output_size(o, a), Some(i), "{what} i{i}");
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// TensorFlow's size rules, written independently.
// ---------------------------------------------------------------------------------------------

fn ceil_div(a: i64, b: i64) -> i64 {
    -floor_div(-a, b)
}

/// TF `SAME`: `(o, before, after)`.
fn my_tf_same(i: usize, k: usize, s: usize, d: usize) -> (usize, usize, usize) {
    let k_e = (d * (k - 1) + 1) as i64;
    let o = ceil_div(i as i64, s as i64);
    let total = ((o - 1) * s as i64 + k_e - i as i64).max(0);
    (o as usize, (total / 2) as usize, (total - total / 2) as usize)
}

/// TF `VALID` output size (0 when the kernel does not fit).
fn my_tf_valid(i: usize, k: usize, s: usize, d: usize) -> usize {
    let k_e = (d * (k - 1) + 1) as i64;
    ceil_div(i as i64 - k_e + 1, s as i64).max(0) as usize
}

#[test]
fn tensorflow_same_and_valid_conv() {
    for k in K {
        for s in S {
            for d in D {
                for i in I {
                    let (o, b, a) = my_tf_same(i, k, s, d);
                    assert_eq!(tf_same(i, k, s, d), Some((o, b, a)), "i{i} k{k} s{s} d{d}");
                    assert!(a == b || a == b + 1, "the extra cell goes after");
                    // The padding it gives makes an ordinary conv produce that size.
                    let g = AxisGeometry {
                        kernel: k,
                        stride: s,
                        dilation: d,
                        pad_before: b,
                        pad_after: a,
                    };
                    assert_eq!(g.conv_output_size(i), Some(o), "i{i} k{k} s{s} d{d}");
                    let v = my_tf_valid(i, k, s, d);
                    assert_eq!(tf_valid(i, k, s, d), v, "i{i} k{k} s{s} d{d}");
                    // VALID is the unpadded conv.
                    assert_eq!(
                        ax(k, s, 0, d).conv_output_size(i).unwrap_or(0),
                        v,
                        "i{i} k{k} s{s} d{d}"
                    );
                }
            }
        }
    }
}

#[test]
fn tensorflow_transpose_default_size_and_allowed_sizes() {
    for k in K {
        for s in S {
            for d in D {
                let k_e = d * (k - 1) + 1;
                for i in 1..=9 {
                    assert_eq!(tf_transpose_default_size(true, i, k, s, d), Some(i * s));
                    assert_eq!(
                        tf_transpose_default_size(false, i, k, s, d),
                        Some(i * s + k_e.saturating_sub(s))
                    );
                    let same = (i - 1) * s + 1..=i * s;
                    let valid = (i - 1) * s + k_e..=(i - 1) * s + k_e + s - 1;
                    assert_eq!(tf_transpose_sizes(true, i, k, s, d), Some(same.clone()));
                    assert_eq!(tf_transpose_sizes(false, i, k, s, d), Some(valid.clone()));
                    // Brute force: exactly the sizes the forward conv of the same mode maps to i.
                    let by_same: Vec<usize> = (1..=80).filter(|&n| my_tf_same(n, k, s, d).0 == i).collect();
                    let by_valid: Vec<usize> = (1..=80).filter(|&n| my_tf_valid(n, k, s, d) == i).collect();
                    assert_eq!(by_same, same.clone().collect::<Vec<_>>(), "SAME i{i} k{k} s{s} d{d}");
                    assert_eq!(by_valid, valid.clone().collect::<Vec<_>>(), "VALID i{i} k{k} s{s} d{d}");
                    // The default is one of the allowed sizes.
                    assert!(same.contains(&tf_transpose_default_size(true, i, k, s, d).unwrap()));
                    assert!(valid.contains(&tf_transpose_default_size(false, i, k, s, d).unwrap()));
                }
            }
        }
    }
}

#[test]
fn tensorflow_transpose_axis_is_the_forward_convs_padding() {
    for k in K {
        for s in S {
            for d in D {
                for i in 1..=9 {
                    for same in [true, false] {
                        for n in tf_transpose_sizes(same, i, k, s, d).unwrap() {
                            let (g, op) = tf_transpose_axis(same, i, n, k, s, d).unwrap();
                            let what = format!("same={same} i{i} n{n} k{k} s{s} d{d}");
                            let (b, a) = if same {
                                let (_, b, a) = my_tf_same(n, k, s, d);
                                (b, a)
                            } else {
                                (0, 0)
                            };
                            assert_eq!(
                                (g.kernel, g.stride, g.dilation, g.pad_before, g.pad_after),
                                (k, s, d, b, a),
                                "{what}"
                            );
                            let expected_op =
                                n as i64 + (b + a) as i64 - ((i as i64 - 1) * s as i64 + (d * (k - 1) + 1) as i64);
                            assert_eq!(op as i64, expected_op, "{what}");
                            assert!(op < s, "{what}: op {op}");
                            assert_eq!(g.conv_output_size(n), Some(i), "{what}");
                            assert_eq!(g.conv_transpose_output_size(i, op), Some(n), "{what}");
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// PyTorch's 'same' padding, through the op.
// ---------------------------------------------------------------------------------------------

/// Output size = input size for odd and even kernels and dilation 1–3; the total `d(k − 1)` is
/// split with `total // 2` before. The split is read off the op's values: with a one-hot kernel
/// on its first tap, `y[o] = x[o − p_before]`; on its last tap, `y[o] = x[o + total − p_before]`.
#[test]
fn pytorch_same_padding_keeps_the_size_and_splits_left_total_div_2() {
    for k in 1..=6 {
        for d in D {
            for i in 1..=9 {
                let total = d * (k - 1);
                let (before, after) = (total / 2, total - total / 2);
                let tape = Tape::<f64>::new();
                let xv = ArrayD::from_shape_fn(IxDyn(&[1, 1, i]), |ix| ix[2] as f64 + 1.0);
                let x = tape.constant(xv);
                let opts = ConvOptions::new().same().dilation(d);
                for (tap, shift) in [(0, -(before as i64)), (k - 1, total as i64 - before as i64)] {
                    let mut wv = ArrayD::zeros(IxDyn(&[1, 1, k]));
                    wv[[0, 0, tap]] = 1.0;
                    let y = conv1d(x, tape.constant(wv), None, &opts).unwrap();
                    assert_eq!(y.shape(), vec![1, 1, i], "k{k} d{d} i{i}");
                    for o in 0..i {
                        let src = o as i64 + shift;
                        let expected = if (0..i as i64).contains(&src) {
                            src as f64 + 1.0
                        } else {
                            0.0
                        };
                        assert_eq!(y.value()[[0, 0, o]], expected, "k{k} d{d} i{i} tap{tap} o{o}");
                    }
                }
                // The same counts through the size formula.
                let g = AxisGeometry {
                    kernel: k,
                    stride: 1,
                    dilation: d,
                    pad_before: before,
                    pad_after: after,
                };
                assert_eq!(g.conv_output_size(i), Some(i));
            }
        }
    }
    // 2-D and 3-D with per-axis kernels and dilations.
    let tape = Tape::<f64>::new();
    let x = tape.constant(values(&[2, 3, 5, 4], 1));
    let w = tape.constant(values(&[4, 3, 2, 5], 2));
    let y = conv2d(x, w, None, &ConvOptions::new().same().dilation([3, 1])).unwrap();
    assert_eq!(y.shape(), vec![2, 4, 5, 4]);
    let x = tape.constant(values(&[1, 2, 3, 4, 5], 3));
    let w = tape.constant(values(&[2, 1, 4, 3, 2], 4));
    let y = conv3d(x, w, None, &ConvOptions::new().same().dilation([1, 2, 3]).groups(2)).unwrap();
    assert_eq!(y.shape(), vec![1, 2, 3, 4, 5]);
}

// ---------------------------------------------------------------------------------------------
// End to end: the shapes the ops return.
// ---------------------------------------------------------------------------------------------

/// `(n, c_in, c_out, g, [h, w], [kh, kw], [sh, sw], [ph, pw], [dh, dw])`.
type Row = (
    usize,
    usize,
    usize,
    usize,
    [usize; 2],
    [usize; 2],
    [usize; 2],
    [usize; 2],
    [usize; 2],
);

const TABLE: &[Row] = &[
    (1, 1, 1, 1, [5, 5], [3, 3], [1, 1], [0, 0], [1, 1]),
    (2, 3, 4, 1, [7, 6], [3, 2], [2, 1], [1, 0], [1, 1]),
    (1, 4, 6, 2, [9, 9], [3, 3], [2, 3], [1, 2], [2, 1]),
    (3, 6, 6, 6, [8, 5], [2, 4], [3, 2], [0, 1], [1, 2]),
    (1, 2, 3, 1, [4, 11], [1, 5], [1, 4], [2, 3], [3, 1]),
    (2, 3, 3, 3, [1, 1], [1, 1], [1, 1], [0, 0], [1, 1]),
    (1, 2, 4, 2, [6, 10], [4, 3], [4, 2], [3, 0], [1, 3]),
    (1, 1, 2, 1, [2, 3], [3, 3], [5, 1], [1, 1], [1, 1]),
];

fn conv_out(i: usize, k: usize, s: usize, p: usize, d: usize) -> usize {
    ((i as i64 + 2 * p as i64 - (d as i64 * (k as i64 - 1) + 1)).div_euclid(s as i64) + 1) as usize
}

fn conv_transpose_out(i: usize, k: usize, s: usize, p: usize, d: usize, op: usize) -> usize {
    ((i as i64 - 1) * s as i64 - 2 * p as i64 + d as i64 * (k as i64 - 1) + op as i64 + 1) as usize
}

#[test]
fn conv2d_and_conv_transpose2d_shapes_over_a_table() {
    for (row, &(n, c_in, c_out, g, hw, k, s, p, d)) in TABLE.iter().enumerate() {
        let tape = Tape::<f64>::new();
        let x = tape.constant(values(&[n, c_in, hw[0], hw[1]], row as u64));
        let w = tape.constant(values(&[c_out, c_in / g, k[0], k[1]], 100 + row as u64));
        let b = tape.constant(values(&[c_out], 200 + row as u64));
        let opts = ConvOptions::new().stride(s).padding(p).dilation(d).groups(g);
        let o = [0, 1].map(|a| conv_out(hw[a], k[a], s[a], p[a], d[a]));
        let y = conv2d(x, w, Some(b), &opts).unwrap();
        assert_eq!(y.shape(), vec![n, c_out, o[0], o[1]], "row {row}");
        // The transposed conv, with every output padding the axis allows.
        for op0 in 0..s[0].max(d[0]) {
            for op1 in 0..s[1].max(d[1]) {
                let op = [op0, op1];
                let full = [0, 1].map(|a| conv_transpose_out(o[a], k[a], s[a], p[a], d[a], op[a]));
                let w_t = tape.constant(values(&[c_out, c_in / g, k[0], k[1]], 300));
                let t_opts = ConvTransposeOptions::new()
                    .stride(s)
                    .padding(p)
                    .dilation(d)
                    .groups(g)
                    .output_padding(op);
                let z = conv_transpose2d(y, w_t, None, &t_opts).unwrap();
                assert_eq!(z.shape(), vec![n, c_in, full[0], full[1]], "row {row} op {op:?}");
                // The cells past the last window as output padding give back x's size.
                if op[0] == (hw[0] + 2 * p[0] - (d[0] * (k[0] - 1) + 1)) % s[0]
                    && op[1] == (hw[1] + 2 * p[1] - (d[1] * (k[1] - 1) + 1)) % s[1]
                {
                    assert_eq!(z.shape(), x.shape(), "row {row}");
                }
            }
        }
    }
}

#[test]
fn rank_1_and_3_shapes_and_the_generic_ops() {
    let tape = Tape::<f64>::new();
    let x = tape.constant(values(&[2, 4, 11], 1));
    let w = tape.constant(values(&[6, 2, 3], 2));
    let opts = ConvOptions::new().stride(3).padding(2).dilation(2).groups(2);
    let y = conv1d(x, w, None, &opts).unwrap();
    assert_eq!(y.shape(), vec![2, 6, conv_out(11, 3, 3, 2, 2)]);
    assert_eq!(conv(x, w, None, &opts).unwrap().shape(), y.shape());
    let t = ConvTransposeOptions::new().stride(3).padding(2).dilation(2).groups(2);
    let z = conv_transpose1d(y, w, None, &t).unwrap();
    assert_eq!(z.shape(), vec![2, 4, conv_transpose_out(y.shape()[2], 3, 3, 2, 2, 0)]);
    assert_eq!(conv_transpose(y, w, None, &t).unwrap().shape(), z.shape());

    let x = tape.constant(values(&[1, 3, 5, 6, 7], 3));
    let w = tape.constant(values(&[2, 3, 2, 3, 1], 4));
    let opts = ConvOptions::new()
        .stride([1, 2, 3])
        .padding([0, 1, 2])
        .dilation([2, 1, 1]);
    let y = conv3d(x, w, None, &opts).unwrap();
    let o = [
        conv_out(5, 2, 1, 0, 2),
        conv_out(6, 3, 2, 1, 1),
        conv_out(7, 1, 3, 2, 1),
    ];
    assert_eq!(y.shape(), vec![1, 2, o[0], o[1], o[2]]);
    assert_eq!(conv(x, w, None, &opts).unwrap().shape(), y.shape());
    let t = ConvTransposeOptions::new()
        .stride([1, 2, 3])
        .padding([0, 1, 2])
        .dilation([2, 1, 1])
        .output_padding([1, 1, 2]);
    let z = conv_transpose3d(y, w, None, &t).unwrap();
    let full = [
        conv_transpose_out(o[0], 2, 1, 0, 2, 1),
        conv_transpose_out(o[1], 3, 2, 1, 1, 1),
        conv_transpose_out(o[2], 1, 3, 2, 1, 2),
    ];
    assert_eq!(z.shape(), vec![1, 3, full[0], full[1], full[2]]);
}

#[test]
fn unbatched_inputs_give_unbatched_outputs() {
    let tape = Tape::<f64>::new();
    // conv1d / conv2d / conv3d, and their transposes.
    let x1 = tape.constant(values(&[3, 9], 1));
    let w1 = tape.constant(values(&[5, 3, 3], 2));
    let y1 = conv1d(
        x1,
        w1,
        Some(tape.constant(values(&[5], 3))),
        &ConvOptions::new().stride(2),
    )
    .unwrap();
    assert_eq!(y1.shape(), vec![5, 4]);
    let t1 = conv_transpose1d(y1, w1, None, &ConvTransposeOptions::new().stride(2)).unwrap();
    assert_eq!(t1.shape(), vec![3, 9]);

    let x2 = tape.constant(values(&[4, 6, 7], 4));
    let w2 = tape.constant(values(&[2, 2, 3, 2], 5));
    let opts = ConvOptions::new().padding([1, 0]).groups(2);
    let y2 = conv2d(x2, w2, None, &opts).unwrap();
    assert_eq!(y2.shape(), vec![2, 6, 6]);
    let batched = conv2d(tape.constant(values(&[1, 4, 6, 7], 4)), w2, None, &opts).unwrap();
    assert_eq!(*batched.value(), (*y2.value()).clone().insert_axis(ndarray::Axis(0)));
    let t2 = conv_transpose2d(
        y2,
        w2,
        Some(tape.constant(values(&[4], 6))),
        &ConvTransposeOptions::new().padding([1, 0]).groups(2),
    )
    .unwrap();
    assert_eq!(t2.shape(), vec![4, 6, 7]);

    let x3 = tape.constant(values(&[1, 4, 4, 4], 7));
    let w3 = tape.constant(values(&[2, 1, 2, 2, 2], 8));
    let y3 = conv3d(x3, w3, None, &ConvOptions::new().stride(2)).unwrap();
    assert_eq!(y3.shape(), vec![2, 2, 2, 2]);
    let t3 = conv_transpose3d(y3, w3, None, &ConvTransposeOptions::new().stride(2).tf_same()).unwrap();
    assert_eq!(t3.shape(), vec![1, 4, 4, 4]);
}

#[test]
fn batch_of_zero_gives_batch_of_zero() {
    let tape = Tape::<f64>::new();
    let x = tape.constant(ArrayD::zeros(IxDyn(&[0, 2, 5, 6])));
    let w = tape.constant(values(&[3, 2, 3, 3], 1));
    let b = tape.constant(values(&[3], 2));
    let y = conv2d(x, w, Some(b), &ConvOptions::new().stride(2).padding(1)).unwrap();
    assert_eq!(y.shape(), vec![0, 3, 3, 3]);
    let w_t = tape.constant(values(&[2, 3, 3, 3], 3));
    let z = conv_transpose2d(
        x,
        w_t,
        Some(b),
        &ConvTransposeOptions::new().stride(2).output_padding(1),
    )
    .unwrap();
    assert_eq!(z.shape(), vec![0, 3, 12, 14]);
    let x1 = tape.constant(ArrayD::zeros(IxDyn(&[0, 2, 4])));
    let w1 = tape.constant(values(&[2, 1, 2], 4));
    assert_eq!(
        conv1d(x1, w1, None, &ConvOptions::new().groups(2)).unwrap().shape(),
        vec![0, 2, 3]
    );
    assert_eq!(
        conv_transpose1d(x1, w1, None, &ConvTransposeOptions::new().groups(2).tf_valid())
            .unwrap()
            .shape(),
        vec![0, 2, 5]
    );
    let x3 = tape.constant(ArrayD::zeros(IxDyn(&[0, 1, 2, 3, 4])));
    let w3 = tape.constant(values(&[1, 1, 1, 2, 3], 5));
    assert_eq!(
        conv3d(x3, w3, None, &ConvOptions::new()).unwrap().shape(),
        vec![0, 1, 2, 2, 2]
    );
}

/// PyTorch's `output_size=`: every size in `[o_min, o_min + s − 1]` is produced, and equals the
/// transposed conv with `output_padding = size − o_min`.
#[test]
fn conv_transpose_output_size_picks_each_size_in_range() {
    for (k, s, p, d) in [
        (3, 2, 1, 1),
        (4, 3, 0, 1),
        (2, 4, 1, 2),
        (3, 1, 0, 1),
        (5, 3, 2, 1),
        (1, 3, 0, 1),
    ] {
        for i in 1..=5 {
            let o_min = conv_transpose_out(i, k, s, p, d, 0) as i64;
            let tape = Tape::<f64>::new();
            let x = tape.constant(values(&[1, 2, i, i], (i * k) as u64));
            let w = tape.constant(values(&[2, 1, k, k], 9));
            for size in o_min.max(1)..o_min + s as i64 {
                let size = size as usize;
                let opts = ConvTransposeOptions::new()
                    .stride(s)
                    .padding(p)
                    .dilation(d)
                    .output_size([size, size]);
                let y = conv_transpose2d(x, w, None, &opts).unwrap();
                assert_eq!(y.shape(), vec![1, 1, size, size], "k{k} s{s} p{p} d{d} i{i}");
                let op = size - o_min as usize;
                let by_op = conv_transpose2d(
                    x,
                    w,
                    None,
                    &ConvTransposeOptions::new()
                        .stride(s)
                        .padding(p)
                        .dilation(d)
                        .output_padding(op),
                )
                .unwrap();
                assert_eq!(*y.value(), *by_op.value(), "k{k} s{s} p{p} d{d} i{i} size{size}");
            }
            // Per-axis sizes differ independently.
            if s > 1 && o_min >= 1 {
                let sizes = [o_min as usize, o_min as usize + s - 1];
                let y = conv_transpose2d(
                    x,
                    w,
                    None,
                    &ConvTransposeOptions::new()
                        .stride(s)
                        .padding(p)
                        .dilation(d)
                        .output_size(sizes),
                )
                .unwrap();
                assert_eq!(y.shape(), vec![1, 1, sizes[0], sizes[1]]);
            }
        }
    }
}

#[test]
fn tensorflow_same_and_valid_default_and_explicit_sizes() {
    let tape = Tape::<f64>::new();
    let x = tape.constant(values(&[1, 1, 3], 1));
    let w = tape.constant(values(&[1, 1, 3], 2));
    let s2 = ConvTransposeOptions::new().stride(2);
    let same = conv_transpose1d(x, w, None, &s2.clone().tf_same()).unwrap();
    assert_eq!(same.shape(), vec![1, 1, 6]);
    let valid = conv_transpose1d(x, w, None, &s2.clone().tf_valid()).unwrap();
    assert_eq!(valid.shape(), vec![1, 1, 7]);
    // VALID without output size is PyTorch's padding-0 transposed conv.
    let pytorch = conv_transpose1d(x, w, None, &s2).unwrap();
    assert_eq!(*valid.value(), *pytorch.value());

    for k in 1..=4 {
        for s in 1..=3 {
            for d in 1..=2 {
                let k_e = d * (k - 1) + 1;
                for i in 1..=5 {
                    let x = tape.constant(values(&[2, 2, i, i + 1], (k * s * i) as u64));
                    let w = tape.constant(values(&[2, 3, k, k], 5));
                    let base = ConvTransposeOptions::new().stride(s).dilation(d);
                    let what = format!("k{k} s{s} d{d} i{i}");
                    let y = conv_transpose2d(x, w, None, &base.clone().tf_same()).unwrap();
                    assert_eq!(y.shape(), vec![2, 3, i * s, (i + 1) * s], "{what}");
                    let y = conv_transpose2d(x, w, None, &base.clone().tf_valid()).unwrap();
                    let v = |i: usize| i * s + k_e.saturating_sub(s);
                    assert_eq!(y.shape(), vec![2, 3, v(i), v(i + 1)], "{what}");
                    // Every explicit size in range.
                    for n in (i - 1) * s + 1..=i * s {
                        let m = n + s; // in axis 2's range [i·s + 1, (i + 1)·s]
                        let y = conv_transpose2d(x, w, None, &base.clone().tf_same().output_size([n, m])).unwrap();
                        assert_eq!(y.shape(), vec![2, 3, n, m], "SAME {what} n{n} m{m}");
                    }
                    for n in (i - 1) * s + k_e..(i - 1) * s + k_e + s {
                        let m = n + s; // in axis 2's range, shifted by s
                        let y = conv_transpose2d(x, w, None, &base.clone().tf_valid().output_size([n, m])).unwrap();
                        assert_eq!(y.shape(), vec![2, 3, n, m], "VALID {what} n{n} m{m}");
                    }
                }
            }
        }
    }
}

/// The zero-insertion view when the padding crops more than `d(k − 1)` (p' < 0), which PyTorch
/// accepts as long as the output keeps at least one cell: it must agree with the op, not panic.
/// Sweeps symmetric and asymmetric paddings and every output padding the axis allows.
#[test]
fn zero_insertion_view_with_heavy_cropping_matches_the_op() {
    let mut failures = Vec::new();
    for k in 1..=3 {
        for s in 1..=4 {
            for d in 1..=5 {
                for i in 1..=3 {
                    for pb in 0..=6 {
                        for pa in 0..=6 {
                            for op in 0..s.max(d) {
                                let g = AxisGeometry {
                                    kernel: k,
                                    stride: s,
                                    dilation: d,
                                    pad_before: pb,
                                    pad_after: pa,
                                };
                                if g.conv_transpose_output_size(i, op).is_none() {
                                    continue;
                                }
                                let x = values(&[1, 1, i], 1);
                                let w = values(&[1, 1, k], 2);
                                let opts = ConvTransposeOptions::new()
                                    .stride(s)
                                    .dilation(d)
                                    .padding_asymmetric(&[(pb, pa)])
                                    .output_padding(op);
                                let tape = Tape::<f64>::new();
                                let y =
                                    conv_transpose1d(tape.constant(x.clone()), tape.constant(w.clone()), None, &opts)
                                        .unwrap();
                                let view = std::panic::catch_unwind(|| conv_transpose_by_zero_insertion(&x, &w, &opts));
                                let ok = matches!(&view, Ok(Ok(z)) if max_abs_diff(&z.y, &y.value()) < 1e-12);
                                if !ok {
                                    failures.push(format!("k{k} s{s} d{d} i{i} p({pb},{pa}) op{op}"));
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} settings where the zero-insertion view panics or disagrees, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(6)]
    );
}

// ---------------------------------------------------------------------------------------------
// Which cells the conv never reads: `a` counts the padded input's cells past the last window;
// the input cells no tap reads are the zero columns of `A`.
// ---------------------------------------------------------------------------------------------

/// The matrix of a 1-D conv by naive loops, over the padded axis: entry `[o][q]` is `t + 1` if
/// tap `t` of window `o` lands on padded cell `q = o·s + t·d` (the gather formula), windows
/// counted by trying each start. `None` if not one window fits.
fn naive_padded_matrix(i: usize, k: usize, s: usize, (p_b, p_a): (usize, usize), d: usize) -> Option<Vec<Vec<usize>>> {
    let padded = i + p_b + p_a;
    let k_e = d * (k - 1) + 1;
    let windows = (0..).take_while(|o| o * s + k_e <= padded).count();
    (windows > 0).then(|| {
        (0..windows)
            .map(|o| {
                let mut row = vec![0; padded];
                for t in 0..k {
                    row[o * s + t * d] = t + 1;
                }
                row
            })
            .collect()
    })
}

#[test]
fn unread_inputs_are_the_zero_columns_of_a_and_past_last_window_the_trailing_unread_cells() {
    let (mut with_unread_inputs, mut past_window_is_padding) = (0, 0);
    for g in asymmetric_axes() {
        let (k, s, d, p_b, p_a) = (g.kernel, g.stride, g.dilation, g.pad_before, g.pad_after);
        for i in 1..=12 {
            let what = format!("i{i} k{k} s{s} p{p_b},{p_a} d{d}");
            let Some(a) = naive_padded_matrix(i, k, s, (p_b, p_a), d) else {
                assert_eq!(g.unread_inputs(i), None, "{what}");
                assert_eq!(g.unread_cells(i), None, "{what}");
                assert_eq!(g.past_last_window(i), None, "{what}");
                continue;
            };
            let zero = |q: usize| a.iter().all(|row| row[q] == 0);
            let cells: Vec<usize> = (0..i + p_b + p_a).filter(|&q| zero(q)).collect();
            let inputs: Vec<usize> = (0..i).filter(|&j| zero(j + p_b)).collect();
            assert_eq!(g.unread_cells(i).as_ref(), Some(&cells), "{what}");
            assert_eq!(g.unread_inputs(i).as_ref(), Some(&inputs), "{what}");
            // The trailing run of unread cells is what `past_last_window` counts.
            let last_read = a.last().unwrap().iter().rposition(|&t| t != 0).unwrap();
            let trailing = i + p_b + p_a - 1 - last_read;
            assert_eq!(g.past_last_window(i), Some(trailing), "{what}");
            with_unread_inputs += usize::from(!inputs.is_empty());
            past_window_is_padding += usize::from(trailing > 0 && trailing <= p_a);
        }
    }
    // The sweep holds both cases the old docs got wrong.
    assert!(with_unread_inputs > 100 && past_window_is_padding > 100);
}

#[test]
fn unread_inputs_match_the_library_matrix_a() {
    // The zero columns of `views::conv_matrix` (a kernel of taps 1..k, none zero), symmetric
    // padding, over the same sweep.
    for k in K {
        for s in S {
            for d in D {
                for p in 0..=3 {
                    let g = ax(k, s, p, d);
                    for i in (1..=12).filter(|&i| i + 2 * p > d * (k - 1)) {
                        let w = ArrayD::from_shape_fn(IxDyn(&[1, 1, k]), |t| (t[2] + 1) as f64);
                        let opts = ConvOptions::new().stride(s).padding(p).dilation(d);
                        let a = conv_matrix(&w, &[1, i], &opts).unwrap();
                        let zero: Vec<usize> = (0..i).filter(|&j| a.column(j).iter().all(|&v| v == 0.0)).collect();
                        assert_eq!(g.unread_inputs(i), Some(zero), "i{i} k{k} s{s} p{p} d{d}");
                    }
                }
            }
        }
    }
}

#[test]
fn dilation_leaves_input_cells_unread_with_nothing_past_the_last_window() {
    // duality --size 8 --kernel 4 --stride 3 --padding 1 --dilation 2: k_e = 7, padded 10, two
    // windows with taps at padded cells 0 2 4 6 and 3 5 7 9. a = (8 + 2 − 7) mod 3 = 0, yet
    // input cells 0 and 7 (padded 1 and 8) fall between taps: columns 0 and 7 of A are zero.
    let g = ax(4, 3, 1, 2);
    assert_eq!(g.past_last_window(8), Some(0));
    let w = ArrayD::from_shape_vec(IxDyn(&[1, 1, 4]), vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    let opts = ConvOptions::new().stride(3).padding(1).dilation(2);
    let a = conv_matrix(&w, &[1, 8], &opts).unwrap();
    let zero: Vec<usize> = (0..8).filter(|&j| a.column(j).iter().all(|&v| v == 0.0)).collect();
    assert_eq!(zero, [0, 7]);
    assert_eq!(g.unread_inputs(8), Some(vec![0, 7]));
    assert_eq!(g.unread_cells(8), Some(vec![1, 8]));
}

#[test]
fn the_cell_past_the_last_window_can_be_padding_with_every_input_read() {
    // animate --input 6 (k 3, s 2, p 1): windows over padded cells 0..3, 2..5, 4..7 of 8. The
    // one cell past the last window, 7, is the right padding; all six input cells are read.
    let g = ax(3, 2, 1, 1);
    assert_eq!(g.past_last_window(6), Some(1));
    assert_eq!(g.unread_cells(6), Some(vec![7]));
    assert_eq!(g.unread_inputs(6), Some(vec![]));
    // Without padding the same count is an input cell: i = 6, k 3, s 2 reads 0..5, not 5.
    let g = ax(3, 2, 0, 1);
    assert_eq!(g.past_last_window(6), Some(1));
    assert_eq!(g.unread_inputs(6), Some(vec![5]));
}

#[test]
fn the_guides_worked_tensorflow_sizes() {
    // docs/guide.md, section 4's table, for k = 3, s = 2 (d = 1), against the formulas written
    // here: VALID ⌈(i − k_e + 1)/s⌉; SAME ⌈i/s⌉ with total padding (o − 1)·s + k_e − i, the
    // smaller half before; transposed defaults i·s + max(k_e − s, 0) and i·s.
    assert_eq!((my_tf_valid(7, 3, 2, 1), tf_valid(7, 3, 2, 1)), (3, 3));
    assert_eq!((my_tf_valid(8, 3, 2, 1), tf_valid(8, 3, 2, 1)), (3, 3));
    assert_eq!(
        (my_tf_same(7, 3, 2, 1), tf_same(7, 3, 2, 1)),
        ((4, 1, 1), Some((4, 1, 1)))
    );
    assert_eq!(
        (my_tf_same(8, 3, 2, 1), tf_same(8, 3, 2, 1)),
        ((4, 0, 1), Some((4, 0, 1)))
    );
    assert_eq!(tf_transpose_default_size(false, 3, 3, 2, 1), Some(3 * 2 + 1));
    assert_eq!(tf_transpose_default_size(true, 3, 3, 2, 1), Some(3 * 2));
    assert_eq!(tf_transpose_sizes(false, 3, 3, 2, 1), Some(7..=8));
    assert_eq!(tf_transpose_sizes(true, 3, 3, 2, 1), Some(5..=6));
    // PyTorch's transposed size, o' = (i' − 1)·s − 2p + d(k − 1) + 1 + output_padding.
    assert_eq!(
        ax(3, 2, 1, 1).conv_transpose_output_size(3, 1),
        Some(2 * 2 - 2 + 2 + 1 + 1)
    );
}

/// The cell-by-cell walks answer `None` on sizes too large to walk, at once, instead of running
/// for hours (and still answer just below the bound).
#[test]
fn unread_walks_refuse_huge_axes() {
    use adjoint::ops::conv::geometry::MAX_UNREAD_WALK;
    let g = AxisGeometry::new(3, 2, 1, 1);
    let start = std::time::Instant::now();
    assert_eq!(g.unread_inputs(usize::MAX / 4), None);
    assert_eq!(g.unread_cells(usize::MAX / 4), None);
    let wide_kernel = AxisGeometry::new(MAX_UNREAD_WALK, 1, 0, 1);
    assert_eq!(wide_kernel.unread_inputs(MAX_UNREAD_WALK + 1), None);
    assert!(start.elapsed().as_secs() < 1);
    let i = MAX_UNREAD_WALK / 3;
    assert_eq!(g.unread_inputs(i), Some(vec![]));
}
