//! A guided tour of the conv ⇄ transposed-conv duality, with real numbers from the library.
//!
//! ```text
//! cargo run --release --example duality                       # input 7, kernel 3, stride 2
//! cargo run --release --example duality -- --size 8 --kernel 4 --stride 3 --padding 1 --dilation 2
//! ```
//!
//! 1. the matrix `A` of a 1-D conv, `y = A x`, and `Aᵀ y`: the shape comes back, the values don't;
//! 2. the tape's gradient of the conv is the transposed conv's forward (and the reverse);
//! 3. the zero-insertion recipe, step by step, gives `Aᵀ y` again;
//! 4. the many-to-one size problem, and how `output_padding` / TensorFlow's modes pick a size;
//! 5. heat maps of the matrix `A` of a small 2-D conv and of `Aᵀ`, written to `--out-dir` as
//!    `A.png` and `A_T.png`.

use adjoint::Tape;
use adjoint::ops::conv::geometry::{tf_transpose_default_size, tf_transpose_sizes};
use adjoint::ops::conv::views::{conv_matrix, conv_transpose_by_zero_insertion, conv_transpose_matrix};
use adjoint::ops::conv::{AxisGeometry, ConvOptions, ConvTransposeOptions, conv_transpose1d, conv1d};
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};
use ndarray::{Array1, Array2, ArrayD, IxDyn};
use std::path::PathBuf;

/// Walk through why the transposed convolution is the gradient of the convolution.
#[derive(Parser, Debug)]
struct Args {
    /// Input length of the conv.
    #[arg(long, default_value_t = 7)]
    size: usize,
    /// Kernel length (at most 26: kernel taps are printed as letters).
    #[arg(long, default_value_t = 3)]
    kernel: usize,
    /// Stride.
    #[arg(long, default_value_t = 2)]
    stride: usize,
    /// Zero padding on each side.
    #[arg(long, default_value_t = 0)]
    padding: usize,
    /// Dilation.
    #[arg(long, default_value_t = 1)]
    dilation: usize,
    /// Where A.png and A_T.png, heat maps of a 2-D conv's matrix and its transpose, are
    /// written. The 2-D conv takes the flags above, square, except that without --size its
    /// input is 4×4 (larger if the kernel needs it) and without --stride its stride is 1, so
    /// that the default A is a readable 4×16.
    #[arg(long, default_value = "out/duality")]
    out_dir: PathBuf,
}

/// Heat maps of a matrix with more entries than this are not drawn: past it the picture is
/// all thin lines, and building it (o²·i² entries) gets slow.
const MAX_HEAT_ENTRIES: usize = 100_000;

/// Section 5: the dense matrix of a square, single-channel 2-D conv and of its transpose, as
/// heat maps. Taps are numbered 1..k² so each one has its own colour.
fn heat_maps(args: &Args, size: usize, stride: usize) -> Result<(), Box<dyn std::error::Error>> {
    let k = args.kernel;
    let axis = AxisGeometry::new(k, stride, args.padding, args.dilation);
    let o = axis
        .conv_output_size(size)
        .ok_or("the 2-D conv's padded input is smaller than the dilated kernel")?;
    let (rows, cols) = (o.saturating_mul(o), size.saturating_mul(size));
    println!(
        "2-D conv: {size}×{size} input, {k}×{k} kernel (taps 1..{}), stride {stride}, padding {}, dilation {} → {o}×{o} output",
        k * k,
        args.padding,
        args.dilation
    );
    if rows.saturating_mul(cols) > MAX_HEAT_ENTRIES {
        println!(
            "A would be {rows}×{cols}: too large for a readable heat map, so none is drawn (pick a smaller --size)."
        );
        return Ok(());
    }
    let w = ArrayD::from_shape_fn(IxDyn(&[1, 1, k, k]), |i| (i[2] * k + i[3] + 1) as f64);
    let opts = ConvOptions::new()
        .stride(stride)
        .padding(args.padding)
        .dilation(args.dilation);
    let t_opts = ConvTransposeOptions::new()
        .stride(stride)
        .padding(args.padding)
        .dilation(args.dilation)
        .output_padding(axis.unread(size).unwrap_or(0));
    let a = conv_matrix(&w, &[1, size, size], &opts)?;
    let a_t = conv_transpose_matrix(&w, &[1, o, o], &t_opts)?;
    let diff = a_t
        .iter()
        .zip(a.t().iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    println!("A is {rows}×{cols}: row r holds the taps that output cell r reads, one kernel position per row.");
    println!(
        "conv_transpose_matrix gives the {}×{} matrix Aᵀ (max difference from A transposed: {diff:e}).",
        a_t.nrows(),
        a_t.ncols()
    );
    std::fs::create_dir_all(&args.out_dir).map_err(|e| format!("{}: {e}", args.out_dir.display()))?;
    let (input, output) = ("input cell (row-major)", "output cell (row-major)");
    let path = args.out_dir.join("A.png");
    let settings = format!("k={k} s={stride} p={} d={}", args.padding, args.dilation);
    let title = format!("A: conv of {size}×{size} → {o}×{o}, {settings}");
    adjoint::plot::heat_map(&path, &title, &a, output, input)?;
    println!("wrote {}", path.display());
    let path = args.out_dir.join("A_T.png");
    let title = format!("Aᵀ: transposed conv of {o}×{o} → {size}×{size}, {settings}");
    // Rows are outputs for both maps, as in `y = M x`: Aᵀ's outputs are the conv's inputs.
    adjoint::plot::heat_map(&path, &title, &a_t, output, input)?;
    println!("wrote {}", path.display());
    Ok(())
}

const TAPS: &str = "xyzuvwpqrstabcdefghijklmno";

/// The largest `--size`, `--stride`, `--padding` or `--dilation` (see [`run`]).
const MAX_SETTING: usize = 64;

fn vector(values: &[f64]) -> String {
    let cells: Vec<String> = values.iter().map(|v| format!("{v:>6.1}")).collect();
    format!("[{}]", cells.join(""))
}

fn print_matrix(name: &str, a: &Array2<f64>, symbol: impl Fn(f64) -> String) {
    println!("{name} ({}×{}):", a.nrows(), a.ncols());
    for row in a.rows() {
        let cells: Vec<String> = row.iter().map(|&v| format!("{:>3}", symbol(v))).collect();
        println!("    [{} ]", cells.join(""));
    }
}

/// Prints errors with their message (not `Debug`) and exits non-zero.
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let matches = Args::command().get_matches();
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let given = |flag: &str| matches.value_source(flag) == Some(ValueSource::CommandLine);
    if args.kernel == 0 || args.kernel > TAPS.len() {
        return Err(format!("--kernel must be in 1..={}", TAPS.len()).into());
    }
    // Every matrix is printed row by row: past a few dozen cells it is no longer readable, and
    // the sizes would otherwise reach the library unbounded (its errors still name the rest).
    for (flag, value) in [
        ("--size", args.size),
        ("--stride", args.stride),
        ("--padding", args.padding),
        ("--dilation", args.dilation),
    ] {
        if value > MAX_SETTING {
            return Err(
                format!("{flag} {value} is more than a printed matrix can show (at most {MAX_SETTING})").into(),
            );
        }
    }
    let conv_opts = ConvOptions::new()
        .stride(args.stride)
        .padding(args.padding)
        .dilation(args.dilation);
    // Let the library judge the settings first, so a bad flag gets its precise error.
    conv_matrix(
        &ArrayD::<f64>::zeros(IxDyn(&[1, 1, args.kernel])),
        &[1, args.size],
        &conv_opts,
    )?;
    let axis = AxisGeometry::new(args.kernel, args.stride, args.padding, args.dilation);
    let o = axis
        .conv_output_size(args.size)
        .ok_or("the padded input is smaller than the dilated kernel: pick a larger --size")?;
    let unread = axis.unread(args.size).expect("defined when the output is");
    // The transposed conv that is exactly Aᵀ: it must return the conv's input size.
    let t_opts = ConvTransposeOptions::new()
        .stride(args.stride)
        .padding(args.padding)
        .dilation(args.dilation)
        .output_padding(unread);

    // Kernel taps 1, 2, 3, ... so each matrix entry names its tap; inputs 1, 2, 3, ...
    let w = ArrayD::from_shape_fn(IxDyn(&[1, 1, args.kernel]), |i| (i[2] + 1) as f64);
    let x: Vec<f64> = (1..=args.size).map(|v| v as f64).collect();
    let letter = |set: &str, v: f64| {
        if v == 0.0 {
            "0".into()
        } else {
            set[v as usize - 1..v as usize].to_string()
        }
    };

    println!("== 1. A convolution is a matrix product");
    println!(
        "input of {} cells, kernel of {}, stride {}, padding {}, dilation {}: output of {o} cells",
        args.size, args.kernel, args.stride, args.padding, args.dilation
    );
    let a = conv_matrix(&w, &[1, args.size], &conv_opts)?;
    print_matrix("A, entries named by kernel tap", &a, |v| letter(TAPS, v));
    println!("Each row is one position of the kernel: the same taps, shifted by the stride.");
    let y = a.dot(&Array1::from(x.clone()));
    println!("with the kernel taps = 1, 2, 3, ... and x = {}:", vector(&x));
    println!("  y  = A x  = {}", vector(y.as_slice().unwrap()));
    let a_t = conv_transpose_matrix(&w, &[1, o], &t_opts)?;
    print_matrix("Aᵀ (the transposed conv's matrix)", &a_t, |v| letter(TAPS, v));
    let aty = a_t.dot(&y);
    println!("  Aᵀ y      = {}", vector(aty.as_slice().unwrap()));
    println!("  x         = {}", vector(&x));
    println!(
        "Aᵀ y has x's shape ({} cells) but not its values: a transposed conv restores the shape, it does not invert the conv.",
        aty.len()
    );

    println!("\n== 2. The gradient of a conv is a transposed conv");
    let tape = Tape::<f64>::new();
    let x_var = tape.param(ArrayD::from_shape_vec(IxDyn(&[1, 1, args.size]), x.clone())?);
    let w_var = tape.constant(w.clone());
    let y_var = conv1d(x_var, w_var, None, &conv_opts)?;
    let grad_y: Vec<f64> = (0..o).map(|i| [1.0, -2.0, 0.5, 3.0][i % 4]).collect();
    let grad_y_arr = ArrayD::from_shape_vec(IxDyn(&[1, 1, o]), grad_y.clone())?;
    let grads = tape.backward_with(y_var, grad_y_arr.clone())?;
    let by_tape = grads[x_var].clone();
    let by_forward = conv_transpose1d(tape.constant(grad_y_arr), w_var, None, &t_opts)?.value();
    let diff = by_tape
        .iter()
        .zip(by_forward.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    println!("upstream gradient ∂L/∂y          = {}", vector(&grad_y));
    println!(
        "∂L/∂x from the tape              = {}",
        vector(by_tape.as_slice().unwrap())
    );
    println!(
        "conv_transpose1d(∂L/∂y).forward  = {}",
        vector(by_forward.as_slice().unwrap())
    );
    println!(
        "max difference {diff:e} (output_padding = {unread} brings back exactly {} cells)",
        args.size
    );

    let x_t = tape.param(ArrayD::from_shape_vec(IxDyn(&[1, 1, o]), grad_y.clone())?);
    let y_t = conv_transpose1d(x_t, w_var, None, &t_opts)?;
    let upstream = ArrayD::from_shape_fn(IxDyn(&[1, 1, args.size]), |i| ((i[2] % 3) as f64) - 1.0);
    let grads = tape.backward_with(y_t, upstream.clone())?;
    let by_forward = conv1d(tape.constant(upstream.clone()), w_var, None, &conv_opts)?.value();
    let diff = grads[x_t]
        .iter()
        .zip(by_forward.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    println!("and the reverse: the transposed conv's input gradient = conv1d(upstream).forward");
    println!("  from the tape {}", vector(grads[x_t].as_slice().unwrap()));
    println!(
        "  conv1d        {}   max difference {diff:e}",
        vector(by_forward.as_slice().unwrap())
    );

    println!("\n== 3. The zero-insertion recipe");
    let y_arr = ArrayD::from_shape_vec(IxDyn(&[1, 1, o]), y.to_vec())?;
    let steps = conv_transpose_by_zero_insertion(&y_arr, &w, &t_opts)?;
    let reach = args.dilation * (args.kernel - 1);
    println!(
        "y                                        = {}",
        vector(y.as_slice().unwrap())
    );
    println!(
        "insert stride−1 = {} zeros between cells  = {}",
        args.stride - 1,
        vector(steps.stretched.as_slice().unwrap())
    );
    println!(
        "pad d(k−1)−p = {} each side (+{unread} at the end) = {}",
        reach as isize - args.padding as isize,
        vector(steps.padded.as_slice().unwrap())
    );
    println!(
        "flip the kernel                          = {}",
        vector(steps.flipped_w.as_slice().unwrap())
    );
    println!(
        "stride-1 conv (dilation {})               = {}",
        args.dilation,
        vector(steps.y.as_slice().unwrap())
    );
    let diff = steps
        .y
        .iter()
        .zip(aty.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    println!(
        "Aᵀ y                                     = {}   max difference {diff:e}",
        vector(aty.as_slice().unwrap())
    );

    println!("\n== 4. Many input sizes, one output size");
    let sizes = axis.conv_input_sizes(o).ok_or("no input size maps to this output")?;
    println!("a conv with these settings maps every input size in {sizes:?} to {o}:");
    for n in sizes.clone() {
        let op = n - sizes.start();
        let legal = op < args.stride || op < args.dilation;
        println!(
            "  {n:>3} cells: PyTorch output_padding = {op}{}",
            if legal {
                ""
            } else {
                " (not allowed: must be below stride or dilation)"
            }
        );
    }
    println!(
        "the transposed conv of a {o}-cell input returns {} cells by default (output_padding 0).",
        sizes.start()
    );
    if args.padding == 0 {
        for (mode, same) in [("SAME", true), ("VALID", false)] {
            // The flags are bounded to small sizes, so both fit; `None` would be a size past usize.
            let default = tf_transpose_default_size(same, o, args.kernel, args.stride, args.dilation);
            let allowed = tf_transpose_sizes(same, o, args.kernel, args.stride, args.dilation);
            println!(
                "  TensorFlow {mode}: default output {}, explicit output_shape allowed in {}",
                default.map_or("beyond usize".into(), |n| n.to_string()),
                allowed.map_or("nothing".into(), |r| format!("{r:?}"))
            );
        }
    }

    println!("\n== 5. The matrix of a 2-D conv, drawn");
    // The smallest input from 4 up that the dilated kernel fits, unless --size says otherwise.
    let size = if given("size") {
        args.size
    } else {
        4.max(axis.effective_kernel().saturating_sub(2 * args.padding))
    };
    let stride = if given("stride") { args.stride } else { 1 };
    heat_maps(&args, size, stride)
}
