//! The workloads of the performance issue — W1–W6 and the E2E model — shared by `benches/`
//! and `benches/table.rs` so both time exactly the same thing.

#![allow(dead_code)] // each bench or example that includes this file uses part of it

use std::rc::Rc;

use adjoint::nn::{Conv2d, ConvTranspose2d, Module, Relu, Sequential, Sigmoid};
use adjoint::ops::conv::{ConvOptions, ConvTransposeOptions, conv_transpose2d, conv2d};
use adjoint::optim::{Adam, Optimizer};
use adjoint::{Result, Tape, Var, mse_loss};
use ndarray::ArrayD;

/// One conv or transposed conv, 2-D, f32.
pub struct Workload {
    pub name: &'static str,
    pub transposed: bool,
    pub x: [usize; 4],
    pub w: [usize; 4],
    pub stride: usize,
    pub padding: usize,
    pub output_padding: usize,
}

/// W1–W6.
pub const WORKLOADS: [Workload; 6] = [
    Workload {
        name: "W1_conv_64x1x28_16x1x3_s2",
        transposed: false,
        x: [64, 1, 28, 28],
        w: [16, 1, 3, 3],
        stride: 2,
        padding: 1,
        output_padding: 0,
    },
    Workload {
        name: "W2_conv_64x16x14_32x16x3_s2",
        transposed: false,
        x: [64, 16, 14, 14],
        w: [32, 16, 3, 3],
        stride: 2,
        padding: 1,
        output_padding: 0,
    },
    Workload {
        name: "W3_convT_64x32x7_32x16x3_s2_op1",
        transposed: true,
        x: [64, 32, 7, 7],
        w: [32, 16, 3, 3],
        stride: 2,
        padding: 1,
        output_padding: 1,
    },
    Workload {
        name: "W4_convT_64x16x14_16x1x3_s2_op1",
        transposed: true,
        x: [64, 16, 14, 14],
        w: [16, 1, 3, 3],
        stride: 2,
        padding: 1,
        output_padding: 1,
    },
    Workload {
        name: "W5_conv_8x64x56_64x64x3_s1",
        transposed: false,
        x: [8, 64, 56, 56],
        w: [64, 64, 3, 3],
        stride: 1,
        padding: 1,
        output_padding: 0,
    },
    Workload {
        name: "W6_convT_8x64x28_64x32x4_s2",
        transposed: true,
        x: [8, 64, 28, 28],
        w: [64, 32, 4, 4],
        stride: 2,
        padding: 1,
        output_padding: 0,
    },
];

impl Workload {
    /// Forward FLOPs: conv `2·N·C_out·Πout·(C_in/g)·Πk`, transposed `2·N·C_in·Πin·(C_out/g)·Πk`.
    pub fn forward_flops(&self) -> u64 {
        let taps = (self.w[2] * self.w[3]) as u64;
        if self.transposed {
            2 * (self.x[0] * self.x[1] * self.x[2] * self.x[3] * self.w[1]) as u64 * taps
        } else {
            let o = |i: usize| (i + 2 * self.padding - self.w[2]) / self.stride + 1;
            2 * (self.x[0] * self.w[0] * o(self.x[2]) * o(self.x[3]) * self.w[1]) as u64 * taps
        }
    }

    /// One forward (and, with `backward`, gradients for input and weight) on a fresh tape;
    /// without `backward`, inside [`Tape::no_grad`], as inference runs (PyTorch's
    /// `torch.no_grad()` forward). `x` and `w` are shared with the tape, not copied, as
    /// PyTorch reuses its leaf tensors.
    pub fn run(&self, x: &Rc<ArrayD<f32>>, w: &Rc<ArrayD<f32>>, backward: bool) {
        let tape = Tape::new();
        let (x, w) = (tape.param_shared(Rc::clone(x)), tape.param_shared(Rc::clone(w)));
        if !backward {
            tape.no_grad(|| self.forward(x, w)).unwrap();
            return;
        }
        let y = self.forward(x, w).unwrap();
        // As PyTorch's `y.backward(torch.ones_like(y))`, made inside the timed call.
        let seed = ArrayD::from_elem(y.shape(), 1.0);
        tape.backward_with(y, seed).unwrap();
    }

    /// The workload's conv or transposed conv of `x` with `w`.
    fn forward<'t>(&self, x: Var<'t, f32>, w: Var<'t, f32>) -> Result<Var<'t, f32>> {
        if self.transposed {
            let opts = ConvTransposeOptions::new()
                .stride(self.stride)
                .padding(self.padding)
                .output_padding(self.output_padding);
            conv_transpose2d(x, w, None, &opts)
        } else {
            conv2d(
                x,
                w,
                None,
                &ConvOptions::new().stride(self.stride).padding(self.padding),
            )
        }
    }
}

/// The E2E workload's model: Conv(1→16,s2)·ReLU·Conv(16→32,s2)·ReLU·ConvT(32→16,s2,op1)·ReLU·
/// ConvT(16→1,s2,op1)·Sigmoid, all 3×3 with padding 1.
pub fn small_autoencoder(rng: &mut impl rand::Rng) -> Result<Sequential<f32>> {
    let down = || ConvOptions::new().stride(2).padding(1);
    let up = || ConvTransposeOptions::new().stride(2).padding(1).output_padding(1);
    Ok(Sequential::new()
        .add(Conv2d::new(1, 16, 3, down(), rng)?)
        .add(Relu)
        .add(Conv2d::new(16, 32, 3, down(), rng)?)
        .add(Relu)
        .add(ConvTranspose2d::new(32, 16, 3, up(), rng)?)
        .add(Relu)
        .add(ConvTranspose2d::new(16, 1, 3, up(), rng)?)
        .add(Sigmoid))
}

/// One training step of an autoencoder on `batch`: forward, MSE against the input, backward,
/// Adam.
pub fn adam_step(model: &mut Sequential<f32>, adam: &mut Adam<f32>, batch: &ArrayD<f32>) {
    let grads = {
        let tape = Tape::new();
        let x = tape.constant(batch.clone());
        let loss = mse_loss(model.forward(x).unwrap(), x).unwrap();
        tape.backward(loss).unwrap()
    };
    adam.step(model, &grads);
}
