//! A guided tour of the conv ⇄ transposed-conv duality, with real numbers from the library.
//!
//! ```text
//! cargo run --release --example duality                       # input 7, kernel 3, stride 2
//! cargo run --release --example duality -- --size 8 --kernel 4 --stride 3 --padding 1 --dilation 2
//! cargo run --release --example duality -- --size 4 --stride 1 --channels 2 --groups 2
//! ```
//!
//! Its sections are those of `docs/guide.md`, with the same numbers:
//!
//! 1. the matrix `A` of a 1-D conv and `y = A x`; which cells the conv never reads; and a heat
//!    map of the matrix of the same conv in 2-D (`--size`² input, the same settings on both
//!    axes, `--channels` and `--groups`), written to `--out-dir` as `A.png`;
//! 2. the transposed conv's matrix `Aᵀ` and `Aᵀ y`: the shape comes back, the values don't
//!    (and `A_T.png`);
//! 3. the tape's gradient of the conv is the transposed conv's forward (and the reverse);
//! 4. the many-to-one size problem, and how `output_padding` / TensorFlow's modes pick a size;
//! 5. the zero-insertion recipe, step by step, gives `Aᵀ y` again.
//!
//! (Section 6 of the guide, checkerboards, is the `checkerboard` example.)

use adjoint::Tape;
use adjoint::ops::conv::geometry::{tf_same, tf_transpose_default_size, tf_transpose_sizes, tf_valid};
use adjoint::ops::conv::views::{conv_matrix, conv_transpose_by_zero_insertion, conv_transpose_matrix};
use adjoint::ops::conv::{AxisGeometry, ConvOptions, ConvTransposeOptions, conv_transpose1d, conv1d};
use clap::{CommandFactory, FromArgMatches, Parser};
use ndarray::{Array1, Array2, ArrayD, IxDyn};
use std::path::PathBuf;

#[path = "user_error.rs"]
mod user_error;

/// Walk through why the transposed convolution is the gradient of the convolution.
#[derive(Parser, Debug)]
struct Args {
    /// Input length of the conv.
    #[arg(long, default_value_t = 7)]
    size: usize,
    /// Kernel length (at most 26 taps, printed w0 … w25).
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
    /// Output padding of the transposed conv in sections 2 and 5 (section 3's gradient always
    /// uses a). By default a = (i + 2p − k_e) mod s, which gives back exactly --size cells;
    /// another value gives back another size of the many-to-one run (section 4).
    #[arg(long)]
    output_padding: Option<usize>,
    /// Channels of the 2-D conv drawn in A.png and A_T.png, in and out (the printed 1-D example
    /// has one): A becomes a block matrix, one block per (output channel, input channel).
    #[arg(long, default_value_t = 1)]
    channels: usize,
    /// Groups of the 2-D conv drawn in A.png and A_T.png: each output channel reads only the
    /// input channels of its group, so the blocks off the diagonal are zero. Must divide
    /// --channels.
    #[arg(long, default_value_t = 1)]
    groups: usize,
    /// Where A.png and A_T.png are written: heat maps of the matrix of the 2-D version of the
    /// printed conv (a --size × --size input, the same kernel, stride, padding and dilation on
    /// both axes, --channels and --groups) and of its transpose.
    #[arg(long, default_value = "out/duality")]
    out_dir: PathBuf,
}

/// Heat maps of a matrix with more entries than this are not drawn: past it the picture is
/// all thin lines, and building it (c²·o²·i² entries) gets slow.
const MAX_HEAT_ENTRIES: usize = 100_000;

/// The most channels the heat maps draw: past it the blocks are too small to read.
const MAX_CHANNELS: usize = 8;

/// The dense matrix of a square 2-D conv and of its transpose, drawn as heat maps in sections
/// 1 and 2. Taps are numbered 1, 2, … over the whole weight, so each one has its own colour.
struct HeatMaps {
    /// What the 2-D conv is, printed with the first map and written under its title.
    about: String,
    /// `(A, Aᵀ)`, or `None` when they are too large for a readable picture.
    matrices: Option<(Array2<f64>, Array2<f64>)>,
    size: usize,
    out: usize,
    channels: usize,
    /// The settings, for the subtitles.
    settings: String,
}

/// Builds the 2-D conv's `A` and `Aᵀ` (before anything is printed, so a refused setting prints
/// only its error): the printed 1-D conv's settings on both axes.
fn heat_maps(args: &Args) -> Result<HeatMaps, Box<dyn std::error::Error>> {
    let (size, k, c, g) = (args.size, args.kernel, args.channels, args.groups);
    let axis = AxisGeometry::new(k, args.stride, args.padding, args.dilation);
    // Defined: section 1's 1-D conv of the same settings was accepted before this is called.
    let o = axis
        .conv_output_size(size)
        .ok_or("no kernel window fits the padded input")?;
    let (rows, cols) = (c * o * o, c * size * size);
    let taps = c * (c / g) * k * k;
    let channels = if c == 1 {
        String::new()
    } else {
        format!(", {c} channels in and out, groups {g}")
    };
    let settings = format!(
        "kernel {k}×{k} (taps numbered 1..{taps}), stride {}, padding {}, dilation {}{channels}",
        args.stride, args.padding, args.dilation
    );
    let about = format!("2-D pictures: the same conv on a {size}×{size} input, {settings} → {o}×{o} output");
    if rows.saturating_mul(cols) > MAX_HEAT_ENTRIES {
        return Ok(HeatMaps {
            about: format!(
                "{about}\nA would be {rows}×{cols}: too large for a readable heat map, so none is drawn (pick a smaller --size)."
            ),
            matrices: None,
            size,
            out: o,
            channels: c,
            settings,
        });
    }
    let w = ArrayD::from_shape_fn(IxDyn(&[c, c / g, k, k]), |i| {
        (((i[0] * (c / g) + i[1]) * k + i[2]) * k + i[3] + 1) as f64
    });
    let opts = ConvOptions::new()
        .stride(args.stride)
        .padding(args.padding)
        .dilation(args.dilation)
        .groups(g);
    let t_opts = ConvTransposeOptions::new()
        .stride(args.stride)
        .padding(args.padding)
        .dilation(args.dilation)
        .groups(g)
        .output_padding(axis.past_last_window(size).unwrap_or(0));
    let user_terms = |e: adjoint::Error| user_error::in_flag_terms(&e, &flags(args));
    let a = conv_matrix(&w, &[c, size, size], &opts).map_err(user_terms)?;
    let a_t = conv_transpose_matrix(&w, &[c, o, o], &t_opts).map_err(user_terms)?;
    Ok(HeatMaps {
        about,
        matrices: Some((a, a_t)),
        size,
        out: o,
        channels: c,
        settings,
    })
}

impl HeatMaps {
    /// Section 1's picture, `A.png`, or with `transposed` section 2's, `A_T.png`.
    fn draw(&self, out_dir: &std::path::Path, transposed: bool) -> Result<(), Box<dyn std::error::Error>> {
        if !transposed {
            println!("{}", self.about);
        }
        let Some((a, a_t)) = &self.matrices else { return Ok(()) };
        let (n, o, c) = (self.size, self.out, self.channels);
        let (matrix, name, title, block) = if transposed {
            let diff = a_t
                .iter()
                .zip(a.t().iter())
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max);
            println!(
                "conv_transpose_matrix gives the {}×{} matrix Aᵀ of the 2-D conv (max difference from A transposed: {diff:e}).",
                a_t.nrows(),
                a_t.ncols()
            );
            let title = format!("Aᵀ: transposed conv, {o}×{o} → {n}×{n}");
            (a_t, "A_T.png", title, (n * n, o * o))
        } else {
            println!(
                "A is {}×{}: row r holds the taps that output cell r reads, one kernel position per row{}.",
                a.nrows(),
                a.ncols(),
                if c == 1 {
                    ""
                } else {
                    "; one block per (output channel, input channel)"
                }
            );
            (a, "A.png", format!("A: conv, {n}×{n} → {o}×{o}"), (o * o, n * n))
        };
        std::fs::create_dir_all(out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
        let path = out_dir.join(name);
        let options = adjoint::plot::HeatMapOptions {
            subtitle: &self.settings,
            block: if c == 1 { (0, 0) } else { block },
        };
        // Rows are outputs for both maps, as in `y = M x`: Aᵀ's outputs are the conv's inputs.
        let (rows, cols) = if c == 1 {
            (OUTPUT_AXIS, INPUT_AXIS)
        } else {
            (OUTPUT_AXIS_CHANNELS, INPUT_AXIS_CHANNELS)
        };
        adjoint::plot::heat_map_with(&path, &title, matrix, rows, cols, &options)?;
        println!("wrote {}", path.display());
        Ok(())
    }
}

const OUTPUT_AXIS: &str = "output cell (row-major)";
const INPUT_AXIS: &str = "input cell (row-major)";
const OUTPUT_AXIS_CHANNELS: &str = "output (channel, cell), row-major";
const INPUT_AXIS_CHANNELS: &str = "input (channel, cell), row-major";

/// The library's names for the settings, with the flags that set them and their values.
fn flags(args: &Args) -> [(&'static str, &'static str, usize); 7] {
    [
        ("groups", "--groups", args.groups),
        ("output_padding", "--output-padding", args.output_padding.unwrap_or(0)),
        ("x", "--size", args.size),
        ("w", "--kernel", args.kernel),
        ("stride", "--stride", args.stride),
        ("padding", "--padding", args.padding),
        ("dilation", "--dilation", args.dilation),
    ]
}

/// The name of input cell `j`: `a`, `b`, … (`x26`, `x27`, … past the alphabet).
fn input_name(j: usize) -> String {
    match u8::try_from(j) {
        Ok(j) if j < 26 => char::from(b'a' + j).to_string(),
        _ => format!("x{j}"),
    }
}

/// The most kernel taps the printed matrices name, `w0` … `w25`.
const MAX_TAPS: usize = 26;

/// The largest `--size`, `--stride`, `--padding` or `--dilation` (see [`run`]).
const MAX_SETTING: usize = 64;

fn vector(values: &[f64]) -> String {
    let cells: Vec<String> = values.iter().map(|v| format!("{v:>6.1}")).collect();
    format!("[{}]", cells.join(""))
}

/// A matrix with its columns and rows named, each entry named by its kernel tap (tap values
/// are 1, 2, … so the entry `t + 1` is tap `w_t`) or 0.
fn print_matrix(name: &str, a: &Array2<f64>, rows: &[String], cols: &[String]) {
    println!("{name} ({}×{}):", a.nrows(), a.ncols());
    let tap = |v: f64| {
        if v == 0.0 {
            "0".to_string()
        } else {
            format!("w{}", v as usize - 1)
        }
    };
    let width = cols.iter().chain(rows).map(|n| n.len()).max().unwrap_or(1).max(2) + 1;
    let label = rows.iter().map(String::len).max().unwrap_or(0);
    let header: String = cols.iter().map(|c| format!("{c:>width$}")).collect();
    println!("{:label$}  {header}", "");
    for (row, r) in a.rows().into_iter().zip(rows) {
        let cells: String = row.iter().map(|&v| format!("{:>width$}", tap(v))).collect();
        println!("{r:>label$} [{cells} ]");
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
    if args.kernel == 0 || args.kernel > MAX_TAPS {
        return Err(format!("--kernel {} must be in 1..={MAX_TAPS}", args.kernel).into());
    }
    for (flag, value) in [("--channels", args.channels), ("--groups", args.groups)] {
        if value == 0 || value > MAX_CHANNELS {
            return Err(format!("{flag} {value} must be in 1..={MAX_CHANNELS}").into());
        }
    }
    // Every matrix is printed row by row: past a few dozen cells it is no longer readable, and
    // the sizes would otherwise reach the library unbounded (its errors still name the rest).
    for (flag, value) in [
        ("--size", args.size),
        ("--stride", args.stride),
        ("--padding", args.padding),
        ("--dilation", args.dilation),
        ("--output-padding", args.output_padding.unwrap_or(0)),
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
    let user_terms = |e: adjoint::Error| user_error::in_flag_terms(&e, &flags(&args));
    // Let the library judge the settings first, so a bad flag gets its precise error.
    conv_matrix(
        &ArrayD::<f64>::zeros(IxDyn(&[1, 1, args.kernel])),
        &[1, args.size],
        &conv_opts,
    )
    .map_err(user_terms)?;
    let axis = AxisGeometry::new(args.kernel, args.stride, args.padding, args.dilation);
    let defined = "the padded input is smaller than the dilated kernel: pick a larger --size";
    let o = axis.conv_output_size(args.size).ok_or(defined)?;
    let past = axis.past_last_window(args.size).ok_or(defined)?;
    let unread_inputs = axis.unread_inputs(args.size).ok_or(defined)?;
    // The transposed conv that is exactly Aᵀ, the conv's input gradient: it must return the
    // conv's input size. Sections 2 and 5 take --output-padding instead, if given.
    let transposed = |op: usize| {
        ConvTransposeOptions::new()
            .stride(args.stride)
            .padding(args.padding)
            .dilation(args.dilation)
            .output_padding(op)
    };
    let (t_opts, op) = (transposed(past), args.output_padding.unwrap_or(past));
    let shown_opts = transposed(op);
    // Judged now, so that a refused --output-padding prints only its error.
    let a_t = conv_transpose_matrix(&w_taps(args.kernel), &[1, o], &shown_opts).map_err(user_terms)?;
    // The 2-D pictures of sections 1 and 2, the same conv on both axes.
    let pictures = heat_maps(&args)?;

    let w = w_taps(args.kernel);
    let x: Vec<f64> = (1..=args.size).map(|v| v as f64).collect();
    let input_names: Vec<String> = (0..args.size).map(input_name).collect();
    let output_names: Vec<String> = (0..o).map(|j| format!("y{j}")).collect();
    let taps: Vec<String> = (0..args.kernel).map(|t| format!("w{t}")).collect();

    println!("== 1. A convolution is a matrix");
    println!(
        "input x = [{}] ({} cells), kernel w = [{}], stride {}, padding {}, dilation {}: output of {o} cells",
        input_names.join(", "),
        args.size,
        taps.join(", "),
        args.stride,
        args.padding,
        args.dilation
    );
    let a = conv_matrix(&w, &[1, args.size], &conv_opts).map_err(user_terms)?;
    print_matrix("A, entries named by kernel tap", &a, &output_names, &input_names);
    println!("Each row is one position of the kernel: the same taps, shifted by the stride.");
    let y = a.dot(&Array1::from(x.clone()));
    println!("with w = [1, 2, 3, …] and x = {}:", vector(&x));
    println!("  y  = A x  = {}", vector(y.as_slice().unwrap()));
    println!("What the conv never reads:");
    let k_e = axis.effective_kernel();
    let (i, p) = (args.size, args.padding);
    let trailing = if past == 0 {
        "none".to_string()
    } else if past <= p {
        "padding".to_string()
    } else if p == 0 {
        format!("input {}", names(&input_names, i - past..i))
    } else {
        format!(
            "input {}, then the {p} of padding",
            names(&input_names, i + p - past..i)
        )
    };
    println!(
        "  a = (i + 2p − k_e) mod s = ({i} + {} − {k_e}) mod {} = {past} cell{} of the padded input past the last window: {trailing}",
        2 * p,
        args.stride,
        if past == 1 { "" } else { "s" }
    );
    let listed = if unread_inputs.is_empty() {
        "none: every input cell is read".to_string()
    } else {
        names(&input_names, unread_inputs.iter().copied())
    };
    println!("  input cells no tap reads (the zero columns of A, AxisGeometry::unread_inputs): {listed}");
    pictures.draw(&args.out_dir, false)?;

    println!("\n== 2. A transposed convolution is Aᵀ");
    let back = a_t.nrows();
    let back_names: Vec<String> = (0..back).map(input_name).collect();
    if op == past {
        print_matrix("Aᵀ (the transposed conv's matrix)", &a_t, &back_names, &output_names);
    } else {
        print_matrix(
            &format!("the transposed conv's matrix with --output-padding {op} (not a = {past})"),
            &a_t,
            &back_names,
            &output_names,
        );
        println!(
            "It returns {back} cells, not {}: it is the transpose of the matrix of the conv on {back} cells (which gives {o} outputs too), not of A above.",
            args.size
        );
    }
    let aty = a_t.dot(&y);
    println!("  Aᵀ y      = {}", vector(aty.as_slice().unwrap()));
    println!("  x         = {}", vector(&x));
    if op == past {
        println!(
            "Aᵀ y has x's shape ({} cells) but not its values: a transposed conv restores the shape, it does not invert the conv.",
            aty.len()
        );
    }
    pictures.draw(&args.out_dir, true)?;

    println!("\n== 3. The gradient of a convolution is a transposed convolution");
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
        "max difference {diff:e} (output_padding = a = {past} brings back exactly {} cells)",
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

    println!("\n== 4. The shape problem: many input sizes, one output size");
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
    tensorflow_sizes(&args, o);

    println!("\n== 5. The transposed convolution as an ordinary convolution");
    let y_arr = ArrayD::from_shape_vec(IxDyn(&[1, 1, o]), y.to_vec())?;
    let steps = conv_transpose_by_zero_insertion(&y_arr, &w, &shown_opts).map_err(user_terms)?;
    let reach = (args.dilation * (args.kernel - 1)) as isize - args.padding as isize;
    println!(
        "y                                        = {}",
        vector(y.as_slice().unwrap())
    );
    println!(
        "insert stride−1 = {} zeros between cells  = {}",
        args.stride - 1,
        vector(steps.stretched.as_slice().unwrap())
    );
    let pad = if reach >= 0 {
        format!("pad d(k−1)−p = {reach} each side")
    } else {
        format!("crop p−d(k−1) = {} each side", -reach)
    };
    println!(
        "{pad} (+{op} at the end) = {}",
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
    Ok(())
}

/// The kernel `w`, taps `w0, w1, … = 1, 2, 3, …`, so each matrix entry names its tap.
fn w_taps(k: usize) -> ArrayD<f64> {
    ArrayD::from_shape_fn(IxDyn(&[1, 1, k]), |i| (i[2] + 1) as f64)
}

/// The names of some input cells, with their indices: `a (0), h (7)`.
fn names(input_names: &[String], cells: impl IntoIterator<Item = usize>) -> String {
    let named: Vec<String> = cells.into_iter().map(|j| format!("{} ({j})", input_names[j])).collect();
    named.join(", ")
}

/// Section 4's TensorFlow part: its SAME and VALID are forward convs of their own, and its
/// transposed convs pick their sizes by mode.
fn tensorflow_sizes(args: &Args, o: usize) {
    let (i, k, s, d) = (args.size, args.kernel, args.stride, args.dilation);
    println!("TensorFlow / Keras pick sizes by a mode instead of a padding. SAME and VALID are forward convs of");
    println!(
        "their own, equal to this one only when their padding is --padding {}:",
        args.padding
    );
    println!(
        "  VALID pads nothing: {i} cells → {} output{}",
        tf_valid(i, k, s, d),
        if tf_valid(i, k, s, d) == 1 { "" } else { "s" }
    );
    // The flags are bounded to small sizes, so every size here fits.
    if let Some((same_o, before, after)) = tf_same(i, k, s, d) {
        println!(
            "  SAME pads max((⌈i/s⌉ − 1)·s + k_e − i, 0) = {} in total, the smaller half before: {i} cells → ⌈{i}/{s}⌉ = {same_o} outputs, padded {before} before and {after} after{}",
            before + after,
            if before == after { "" } else { " (asymmetric)" }
        );
    }
    println!("Their transposed convs of a {o}-cell input:");
    for (mode, same) in [("SAME", true), ("VALID", false)] {
        let default = tf_transpose_default_size(same, o, k, s, d);
        let allowed = tf_transpose_sizes(same, o, k, s, d);
        println!(
            "  {mode:<5}: {} cells by default (Keras, output_padding=None); an explicit output shape may be any of {}",
            default.map_or("beyond usize".into(), |n| n.to_string()),
            allowed.map_or("nothing".into(), |r| format!("{r:?}"))
        );
    }
    println!(
        "Keras's Conv2DTranspose takes output_padding, as PyTorch does; tf.nn.conv2d_transpose takes the output shape itself."
    );
}
