//! Checkerboard artifacts (Odena, Dumoulin & Olah, 2016), counted: how often a stack of
//! transposed convs writes each output pixel, against nearest-neighbour resize followed by a
//! conv, and the same pattern in the gradient of a strided conv, taken from the tape.
//!
//! ```text
//! cargo run --release --example checkerboard
//! cargo run --release --example checkerboard -- --kernel 3 --stride 2 --layers 4 --size 6
//! ```
//!
//! By default five kernel/stride pairs, with the kernel a multiple of the stride (4/2, 3/3, 6/3)
//! and not (3/2, 5/2); `--kernel` and `--stride` pick one pair instead. For 1 to `--layers`
//! stacked layers on a `--size` × `--size` input of ones, every count comes from
//! `adjoint::ops::conv::views`: `coverage` for the two upsamplings, and `input_gradient_counts`
//! for `∂L/∂x` of the stack of strided convs with all-ones kernels and `L = Σ y` (the tape's
//! backward pass, which is the transposed conv, so its counts are the transposed conv's).
//! Prints the max/min ratio of the counts away from the borders (1 = even), checks the
//! gradient against the coverage counts, and writes one picture per pair,
//! `checkerboard_k{k}_s{s}.png`: a row per number of layers, a column per computation.

use std::path::PathBuf;
use std::process::ExitCode;

use adjoint::ops::conv::views::{Upsampling, coverage, input_gradient_counts};
use adjoint::plot::{LegendEntry, Panel, gray_to_rgb, panel_grid_with_columns};
use clap::Parser;
use ndarray::{Array2, s};

#[path = "user_error.rs"]
mod user_error;

/// Count how evenly transposed convs and resize-convs cover their output, and find the same
/// pattern in a strided conv's input gradient.
#[derive(Parser, Debug)]
struct Args {
    /// Side of the square input of ones that the layers upsample (and the side of the strided
    /// convs' output whose gradient is drawn).
    #[arg(long, default_value_t = 16)]
    size: usize,
    /// Kernel side: draw this one pair instead of the five default pairs (stride 2 unless
    /// --stride is given).
    #[arg(long)]
    kernel: Option<usize>,
    /// Stride: draw this one pair instead of the five default pairs (kernel 3 unless --kernel is
    /// given).
    #[arg(long)]
    stride: Option<usize>,
    /// Stacked layers: the picture has one row for each count from 1 to this.
    #[arg(long, default_value_t = 3)]
    layers: usize,
    /// Where the checkerboard_k*_s*.png pictures are written.
    #[arg(long, default_value = "out/checkerboard")]
    out_dir: PathBuf,
}

/// (kernel, stride): kernels that are multiples of the stride and kernels that are not.
const PAIRS: [(usize, usize); 5] = [(3, 2), (4, 2), (5, 2), (3, 3), (6, 3)];
/// Bounds on the flags: beyond them the pictures only get bigger, not clearer, and a stack of
/// 4 layers of stride 4 already multiplies the side by 256.
const MAX_SIZE: usize = 32;
const MAX_KERNEL: usize = 8;
const MAX_STRIDE: usize = 4;
const MAX_LAYERS: usize = 4;
/// The largest count map side computed (the last layer's output): 4 million pixels.
const MAX_MAP_SIDE: usize = 2048;
/// Every panel shows the same window of its map: the whole of the one-layer map, or its centre
/// `MAX_WINDOW` cells a side; scaled up by whole pixels to about `PANEL_PX`, so that every
/// count stays one flat square and all panels are the same size.
const MAX_WINDOW: usize = 48;
const PANEL_PX: usize = 240;

/// Grey of the largest relative count in the picture: not white, so that an evenly covered
/// panel shows as a grey square instead of vanishing into the page.
const BRIGHTEST: f64 = 0.9;

const COLUMNS: [&str; 3] = ["transposed conv", "strided conv's ∂L/∂x", "resize-conv"];

/// One kernel/stride pair: per number of layers, the three count maps and the max/min ratios
/// (transposed, resize-conv).
struct Pair {
    kernel: usize,
    stride: usize,
    maps: Vec<[Array2<f64>; 3]>,
    ratios: Vec<(f64, f64)>,
}

fn layers_text(layers: usize) -> String {
    format!("{layers} layer{}", if layers == 1 { "" } else { "s" })
}

/// The side of the last layer's map, or the flag-named reason it is too large to compute.
fn check_map_side(size: usize, k: usize, st: usize, layers: usize) -> Result<(), String> {
    let mut side = size;
    for _ in 0..layers {
        side = (side.saturating_sub(1)).saturating_mul(st).saturating_add(k);
        if side > MAX_MAP_SIDE {
            return Err(format!(
                "--size {size} --kernel {k} --stride {st} --layers {layers} gives a map more than {MAX_MAP_SIDE} pixels a side: pick smaller values"
            ));
        }
    }
    Ok(())
}

fn count(args: &Args, k: usize, st: usize) -> Result<Pair, Box<dyn std::error::Error>> {
    let size = args.size;
    let flags = [
        ("size", "--size", size),
        ("kernel", "--kernel", k),
        ("stride", "--stride", st),
        ("layers", "--layers", args.layers),
    ];
    let user_terms = |e: adjoint::Error| user_error::in_flag_terms(&e, &flags);
    let (mut maps, mut ratios) = (Vec::new(), Vec::new());
    for layers in 1..=args.layers {
        let transposed = coverage(size, k, st, layers, Upsampling::Transposed).map_err(user_terms)?;
        let resized = coverage(size, k, st, layers, Upsampling::ResizeConv).map_err(user_terms)?;
        let gradient = input_gradient_counts(size, k, st, layers).map_err(user_terms)?;
        // Two computations of one thing: the tape's backward pass and the forward scatter.
        if gradient != transposed.counts {
            return Err(format!(
                "k={k} s={st}, {}: the strided conv's input gradient differs from the transposed conv's counts",
                layers_text(layers)
            )
            .into());
        }
        ratios.push((transposed.interior_ratio, resized.interior_ratio));
        maps.push([transposed.counts, gradient, resized.counts]);
    }
    Ok(Pair {
        kernel: k,
        stride: st,
        maps,
        ratios,
    })
}

/// A count divided by its map's mean count: 1 where a pixel gets its fair share of paths.
/// Each layer multiplies the counts by about (k/s)², so only relative counts compare across
/// rows.
fn relative(counts: &Array2<f64>) -> Array2<f64> {
    let mean = counts.mean().unwrap_or(1.0);
    counts / mean
}

/// The centre `w × w` cells of a relative count map, each repeated `scale × scale` times, grey
/// on the picture's one scale: black = 0, [`BRIGHTEST`] = `top`.
fn panel(relative: &Array2<f64>, w: usize, scale: usize, top: f64) -> Panel {
    let (r0, c0) = ((relative.nrows() - w) / 2, (relative.ncols() - w) / 2);
    let window = relative.slice(s![r0..r0 + w, c0..c0 + w]);
    let gray = Array2::from_shape_fn((w * scale, w * scale), |(y, x)| {
        (BRIGHTEST * window[[y / scale, x / scale]] / top) as f32
    });
    Panel {
        pixels: gray_to_rgb(&gray),
        marks: vec![],
    }
}

/// Writes the picture of one pair.
fn draw(args: &Args, p: &Pair) -> Result<PathBuf, Box<dyn std::error::Error>> {
    // One window for every panel, as large as the smallest map (the one-layer map) allows.
    let smallest = p.maps.iter().flatten().map(Array2::nrows).min().unwrap_or(1);
    let w = smallest.min(MAX_WINDOW);
    let scale = (PANEL_PX / w).max(1);
    let relatives: Vec<Vec<Array2<f64>>> = p.maps.iter().map(|maps| maps.iter().map(relative).collect()).collect();
    // The shared scale: the largest relative count in any panel's window.
    let top = relatives
        .iter()
        .flatten()
        .map(|r| {
            let (r0, c0) = ((r.nrows() - w) / 2, (r.ncols() - w) / 2);
            r.slice(s![r0..r0 + w, c0..c0 + w]).iter().copied().fold(0.0, f64::max)
        })
        .fold(0.0, f64::max);
    let labels: Vec<String> = p
        .ratios
        .iter()
        .enumerate()
        .map(|(l, (t, r))| format!("{}; max/min: transposed {t:.2}, resize {r:.2}", layers_text(l + 1)))
        .collect();
    let rows: Vec<(&str, Vec<Panel>)> = labels
        .iter()
        .zip(&relatives)
        .map(|(label, maps)| (label.as_str(), maps.iter().map(|m| panel(m, w, scale, top)).collect()))
        .collect();
    let title = format!(
        "Coverage counts, kernel {} stride {}, {}×{} input of ones (centre {w}×{w} of each map)",
        p.kernel, p.stride, args.size, args.size
    );
    // The scale as swatches: what a few greys mean, on every panel alike.
    let shade = |v: f64| {
        let g = (BRIGHTEST * v / top * 255.0).round().clamp(0.0, 255.0) as u8;
        [g, g, g]
    };
    let marks: Vec<(String, [u8; 3])> = [0.0, 0.5, 1.0, 2.0]
        .into_iter()
        .filter(|&v| v < 0.95 * top)
        .chain([top])
        .map(|v| (format!("{v:.2}× the map's mean count"), shade(v)))
        .collect();
    let legend: Vec<LegendEntry> = marks
        .iter()
        .map(|(label, color)| LegendEntry {
            label,
            color: *color,
            shape: None,
        })
        .collect();
    let path = args
        .out_dir
        .join(format!("checkerboard_k{}_s{}.png", p.kernel, p.stride));
    panel_grid_with_columns(&path, &title, &COLUMNS, &rows, 1, &legend)?;
    Ok(path)
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    for (flag, value, max) in [
        ("--size", args.size, MAX_SIZE),
        ("--kernel", args.kernel.unwrap_or(1), MAX_KERNEL),
        ("--stride", args.stride.unwrap_or(1), MAX_STRIDE),
        ("--layers", args.layers, MAX_LAYERS),
    ] {
        if value > max {
            return Err(format!("{flag} {value} is more than needed to show the pattern (at most {max})").into());
        }
    }
    // The library refuses the other zeros itself; zero layers would never reach it.
    if args.layers == 0 {
        return Err("--layers 0: layers = 0: must be at least 1".into());
    }
    let pairs: Vec<(usize, usize)> = if args.kernel.is_some() || args.stride.is_some() {
        vec![(args.kernel.unwrap_or(3), args.stride.unwrap_or(2))]
    } else {
        PAIRS.to_vec()
    };
    for &(k, st) in &pairs {
        check_map_side(args.size, k, st, args.layers)?;
    }
    // Everything is counted before anything is printed or written, so a refused setting fails
    // cleanly.
    let counted = pairs
        .iter()
        .map(|&(k, st)| count(args, k, st))
        .collect::<Result<Vec<_>, _>>()?;

    println!(
        "max/min of the coverage counts away from the borders (1 = even, - = no cells away from them), {0}×{0} input of ones:",
        args.size
    );
    let n = args.layers;
    let block = 9 * n;
    println!(
        "{:>22} | {:^block$} | {:^block$}",
        "", "transposed conv", "resize + conv"
    );
    let heads: String = (1..=n)
        .map(|l| {
            if l == 1 {
                format!("{:>8}", "1 layer")
            } else {
                format!("{l:>9}")
            }
        })
        .collect();
    println!("{:>6} {:>6} {:>8} | {heads} | {heads}", "kernel", "stride", "k mod s");
    for p in &counted {
        let cells = |pick: fn(&(f64, f64)) -> f64| -> String {
            p.ratios
                .iter()
                .map(pick)
                .enumerate()
                .map(|(l, v)| {
                    let width = if l == 0 { 8 } else { 9 };
                    if v.is_finite() {
                        format!("{v:>width$.2}")
                    } else {
                        format!("{:>width$}", "-")
                    }
                })
                .collect()
        };
        println!(
            "{:>6} {:>6} {:>8} | {} | {}",
            p.kernel,
            p.stride,
            p.kernel % p.stride,
            cells(|r| r.0),
            cells(|r| r.1)
        );
    }
    println!(
        "the strided convs' input gradients (Tape::backward of L = Σ y, all-ones kernels) equal the transposed convs' counts, pixel for pixel, in every case above"
    );

    std::fs::create_dir_all(&args.out_dir).map_err(|e| format!("{}: {e}", args.out_dir.display()))?;
    for p in &counted {
        let path = draw(args, p)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
