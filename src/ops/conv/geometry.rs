//! All size arithmetic of the conv family, in one place.
//!
//! Per spatial axis, with input size `i`, kernel `k`, stride `s`, dilation `d`, padding
//! `p_b` (before) and `p_a` (after), the effective kernel is `k_e = d·(k − 1) + 1` and
//!
//! ```text
//! conv:            o = ⌊(i + p_b + p_a − k_e) / s⌋ + 1
//! transposed conv: i = (o − 1)·s + k_e − p_b − p_a + op        (op = output_padding)
//! ```
//!
//! The floor makes the conv many-to-one: the `s` sizes `i, i+1, …, i+s−1` starting at the
//! smallest one give the same `o`. `a = (i + p_b + p_a − k_e) mod s` counts the trailing input
//! cells the conv never reads; a transposed conv with `op = a` returns exactly size `i`. That
//! is how the backward of a conv gets its input's size back.

use std::ops::RangeInclusive;

/// One spatial axis of a convolution, described as the conv sees it (input → output).
/// The transposed conv with the same settings maps the other way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AxisGeometry {
    /// Kernel size `k`.
    pub kernel: usize,
    /// Stride `s ≥ 1`.
    pub stride: usize,
    /// Dilation `d ≥ 1`: kernel taps are `d` cells apart.
    pub dilation: usize,
    /// Zeros added before the input (top/left).
    pub pad_before: usize,
    /// Zeros added after the input (bottom/right).
    pub pad_after: usize,
}

impl AxisGeometry {
    /// An axis with symmetric padding `p`.
    pub fn new(kernel: usize, stride: usize, padding: usize, dilation: usize) -> Self {
        AxisGeometry {
            kernel,
            stride,
            dilation,
            pad_before: padding,
            pad_after: padding,
        }
    }

    /// The span the kernel covers: `k_e = d·(k − 1) + 1`.
    pub fn effective_kernel(&self) -> usize {
        self.dilation * (self.kernel.max(1) - 1) + 1
    }

    /// Conv output size `⌊(i + p_b + p_a − k_e)/s⌋ + 1`, or `None` when the padded input is
    /// smaller than the effective kernel.
    pub fn conv_output_size(&self, i: usize) -> Option<usize> {
        let padded = i + self.pad_before + self.pad_after;
        let k_e = self.effective_kernel();
        (padded >= k_e && self.stride > 0).then(|| (padded - k_e) / self.stride + 1)
    }

    /// Transposed conv output size `(o − 1)·s + k_e − p_b − p_a + op`, or `None` if it is
    /// below 1 (or `o` is 0).
    pub fn conv_transpose_output_size(&self, o: usize, output_padding: usize) -> Option<usize> {
        let full = (o.checked_sub(1)? * self.stride + self.effective_kernel() + output_padding) as isize;
        let size = full - (self.pad_before + self.pad_after) as isize;
        (size >= 1).then_some(size as usize)
    }

    /// The trailing input cells a conv of input size `i` never reads:
    /// `a = (i + p_b + p_a − k_e) mod s`, the output padding that recovers `i`.
    /// `None` if the conv is not defined for `i`.
    pub fn unread(&self, i: usize) -> Option<usize> {
        self.conv_output_size(i)?;
        Some((i + self.pad_before + self.pad_after - self.effective_kernel()) % self.stride)
    }

    /// Every input size the conv maps to output size `o` (the many-to-one relation): `s`
    /// consecutive sizes, fewer if the smallest would be below 1. `None` if there are none.
    pub fn conv_input_sizes(&self, o: usize) -> Option<RangeInclusive<usize>> {
        let smallest = self.conv_transpose_output_size(o, 0);
        let largest = self.conv_transpose_output_size(o, self.stride.checked_sub(1)?)?;
        Some(smallest.unwrap_or(1)..=largest)
    }

    /// The shared index map of conv and transposed conv: output cell `o` and kernel tap `t`
    /// meet input cell `o·s + t·d − p_b`, or the padding (`None`).
    pub fn source(&self, o: usize, t: usize, i: usize) -> Option<usize> {
        let pos = (o * self.stride + t * self.dilation) as isize - self.pad_before as isize;
        (0..i as isize).contains(&pos).then_some(pos as usize)
    }
}

/// The TensorFlow helpers below are plain formulas; a kernel, stride or dilation of 0 (which
/// no conv has, and which the ops refuse before using them) is read as 1 so they never panic.
fn tf_effective_kernel(kernel: usize, dilation: usize) -> usize {
    dilation.max(1) * (kernel.max(1) - 1) + 1
}

/// TensorFlow's `SAME` for a conv: output `⌈i/s⌉`; the total padding
/// `max((o − 1)·s + k_e − i, 0)` is split with the smaller half before.
/// Returns `(o, pad_before, pad_after)`.
pub fn tf_same(i: usize, kernel: usize, stride: usize, dilation: usize) -> (usize, usize, usize) {
    let (k_e, stride) = (tf_effective_kernel(kernel, dilation), stride.max(1));
    let o = i.div_ceil(stride);
    let total = ((o.saturating_sub(1)) * stride + k_e).saturating_sub(i);
    (o, total / 2, total - total / 2)
}

/// TensorFlow's `VALID` for a conv: no padding, output `⌈(i − k_e + 1)/s⌉` (0 if the kernel
/// does not fit).
pub fn tf_valid(i: usize, kernel: usize, stride: usize, dilation: usize) -> usize {
    let k_e = tf_effective_kernel(kernel, dilation);
    (i + 1).saturating_sub(k_e).div_ceil(stride.max(1))
}

/// The default output size of a TensorFlow/Keras transposed conv with no explicit output
/// shape: `SAME` gives `i·s`, `VALID` gives `i·s + max(k_e − s, 0)`.
pub fn tf_transpose_default_size(same: bool, i: usize, kernel: usize, stride: usize, dilation: usize) -> usize {
    let k_e = tf_effective_kernel(kernel, dilation);
    if same {
        i * stride
    } else {
        i * stride + k_e.saturating_sub(stride)
    }
}

/// The explicit output sizes a TensorFlow transposed conv accepts: those the forward conv with
/// the same mode maps back to `i`. `SAME`: `[(i−1)s + 1, i·s]`; `VALID`:
/// `[(i−1)s + k_e, (i−1)s + k_e + s − 1]`.
pub fn tf_transpose_sizes(
    same: bool,
    i: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
) -> RangeInclusive<usize> {
    let k_e = dilation * (kernel - 1) + 1;
    let base = i.saturating_sub(1) * stride;
    if same {
        base + 1..=i * stride
    } else {
        base + k_e..=base + k_e + stride - 1
    }
}

/// For a TensorFlow transposed conv of input size `i` and chosen output size `n`, the padding
/// and output padding in adjoint's terms: the padding of the forward conv that maps `n` to
/// `i`, and `op = n − ((i − 1)·s + k_e − p_b − p_a)`. Returns `(axis, output_padding)`.
pub fn tf_transpose_axis(
    same: bool,
    i: usize,
    n: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
) -> (AxisGeometry, usize) {
    let (pad_before, pad_after) = if same {
        let (_, b, a) = tf_same(n, kernel, stride, dilation);
        (b, a)
    } else {
        (0, 0)
    };
    let axis = AxisGeometry {
        kernel,
        stride,
        dilation,
        pad_before,
        pad_after,
    };
    // Saturates at 0 for an `n` outside `tf_transpose_sizes`, which callers check first.
    let op = (n + pad_before + pad_after).saturating_sub(i.saturating_sub(1) * stride + axis.effective_kernel());
    (axis, op)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_size_in_the_run_maps_to_the_same_output_and_back() {
        for k in 1..5 {
            for s in 1..4 {
                for p in 0..3 {
                    for d in 1..3 {
                        let ax = AxisGeometry::new(k, s, p, d);
                        for i in 1..20 {
                            let Some(o) = ax.conv_output_size(i) else { continue };
                            let a = ax.unread(i).unwrap();
                            assert_eq!(ax.conv_transpose_output_size(o, a), Some(i));
                            assert!(ax.conv_input_sizes(o).unwrap().contains(&i));
                            for j in ax.conv_input_sizes(o).unwrap() {
                                assert_eq!(ax.conv_output_size(j), Some(o), "k{k} s{s} p{p} d{d} i{i} j{j}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn tf_same_and_valid_follow_tensorflow() {
        // SAME: 5 with stride 2 → 3, total padding (3−1)·2 + 3 − 5 = 2, split 1/1.
        assert_eq!(tf_same(5, 3, 2, 1), (3, 1, 1));
        // Even total split with the extra cell after: 6, k 4, s 2 → 3, total 2+... = (2·2+4−6)=2.
        assert_eq!(tf_same(6, 4, 2, 1), (3, 1, 1));
        assert_eq!(tf_same(6, 3, 2, 1), (3, 0, 1));
        assert_eq!(tf_valid(5, 3, 2, 1), 2);
        assert_eq!(tf_valid(2, 3, 1, 1), 0);
        assert_eq!(tf_transpose_default_size(true, 3, 3, 2, 1), 6);
        assert_eq!(tf_transpose_default_size(false, 3, 3, 2, 1), 7);
        for same in [true, false] {
            for n in tf_transpose_sizes(same, 3, 3, 2, 1) {
                let (ax, op) = tf_transpose_axis(same, 3, n, 3, 2, 1);
                assert_eq!(ax.conv_output_size(n), Some(3));
                assert_eq!(ax.conv_transpose_output_size(3, op), Some(n));
            }
        }
    }
}
