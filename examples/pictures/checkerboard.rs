//! Checkerboard artifacts (Odena, Dumoulin & Olah, 2016), counted: how often a stack of
//! transposed convs writes each output pixel, against nearest-neighbour resize followed by a
//! conv.
//!
//! ```text
//! cargo run --release --example checkerboard
//! cargo run --release --example checkerboard -- --size 24 --out-dir /tmp/checkerboard
//! ```
//!
//! For kernel/stride pairs with the kernel a multiple of the stride (4/2, 3/3, 6/3) and not
//! (3/2, 5/2), and 1, 2, 3 stacked layers, every count comes from
//! `adjoint::ops::conv::views::coverage`. Prints the max/min ratio of the counts away from the
//! borders (1 = even) and writes one picture per pair, `checkerboard_k{k}_s{s}.png`: a row per
//! number of layers, the transposed conv's counts on the left, resize-conv's on the right.

use std::path::PathBuf;
use std::process::ExitCode;

use adjoint::ops::conv::views::{Coverage, Upsampling, coverage};
use adjoint::plot::image_grid;
use clap::Parser;
use ndarray::{Array2, s};

#[path = "user_error.rs"]
mod user_error;

/// Count how evenly transposed convs and resize-convs cover their output.
#[derive(Parser, Debug)]
struct Args {
    /// Side of the square input of ones that the layers upsample.
    #[arg(long, default_value_t = 16)]
    size: usize,
    /// Where the checkerboard_k*_s*.png pictures are written.
    #[arg(long, default_value = "out/checkerboard")]
    out_dir: PathBuf,
}

/// (kernel, stride): kernels that are multiples of the stride and kernels that are not.
const PAIRS: [(usize, usize); 5] = [(3, 2), (4, 2), (5, 2), (3, 3), (6, 3)];
const LAYERS: [usize; 3] = [1, 2, 3];
/// Larger inputs only make bigger pictures of the same pattern, and 3 layers of stride 3
/// already multiply the side by 27.
const MAX_SIZE: usize = 32;
/// The picture shows at most this many cells a side of each map, and scales them up to about
/// `PANEL_PX` pixels, by whole pixels so that every count stays one flat square.
const MAX_WINDOW: usize = 24;
const PANEL_PX: usize = 240;

/// Grey of the most-covered cell of a panel: not white, so that an evenly covered panel shows
/// as a grey square instead of vanishing into the page.
const BRIGHTEST: f64 = 0.85;

/// The centre `w × w` cells of a count map, each repeated `scale × scale` times, with grey
/// proportional to the count (black = 0, [`BRIGHTEST`] = the panel's maximum): the darkest cell
/// is `1/ratio` as bright as the brightest.
fn panel(counts: &Array2<f64>, w: usize, scale: usize) -> Array2<f32> {
    let (r0, c0) = ((counts.nrows() - w) / 2, (counts.ncols() - w) / 2);
    let window = counts.slice(s![r0..r0 + w, c0..c0 + w]);
    let max = window.iter().copied().fold(0.0, f64::max);
    Array2::from_shape_fn((w * scale, w * scale), |(y, x)| {
        (BRIGHTEST * window[[y / scale, x / scale]] / max) as f32
    })
}

/// The part of a count map `coverage` measures its ratio on: `margin` cells in from every side,
/// where `margin = (k − 1)·(1 + s + … + s^(layers − 1))` is the reach of the border effects.
fn interior_side(c: &Coverage, kernel: usize, stride: usize, layers: usize) -> usize {
    let margin = (kernel - 1) * (0..layers).map(|j| stride.pow(j as u32)).sum::<usize>();
    c.counts.nrows().saturating_sub(2 * margin)
}

fn layers_text(layers: usize) -> String {
    format!("{layers} layer{}", if layers == 1 { "" } else { "s" })
}

/// One kernel/stride pair: its max/min ratios per number of layers (transposed, resize-conv)
/// and the rows of its picture.
struct Pair {
    kernel: usize,
    stride: usize,
    ratios: Vec<(f64, f64)>,
    rows: Vec<(String, Vec<Array2<f32>>)>,
}

fn count(size: usize, k: usize, st: usize) -> Result<Pair, Box<dyn std::error::Error>> {
    let (mut ratios, mut rows) = (Vec::new(), Vec::new());
    for layers in LAYERS {
        let user_terms = |e: adjoint::Error| user_error::in_flag_terms(&e, &[("size", "--size", size)]);
        let transposed = coverage(size, k, st, layers, Upsampling::Transposed).map_err(user_terms)?;
        let resized = coverage(size, k, st, layers, Upsampling::ResizeConv).map_err(user_terms)?;
        // One window for both maps, so the two images of a row compare cell by cell.
        let w = interior_side(&transposed, k, st, layers)
            .min(interior_side(&resized, k, st, layers))
            .min(MAX_WINDOW);
        if w == 0 {
            return Err(format!(
                "--size {size} leaves no cells away from the borders for kernel {k}, stride {st}, {}: pick a larger size",
                layers_text(layers)
            )
            .into());
        }
        let scale = (PANEL_PX / w).max(1);
        let (t, r) = (transposed.interior_ratio, resized.interior_ratio);
        let label = format!(
            "k={k} s={st}, {}. max/min: transposed conv {t:.2} | resize-conv {r:.2}",
            layers_text(layers)
        );
        ratios.push((t, r));
        rows.push((
            label,
            vec![panel(&transposed.counts, w, scale), panel(&resized.counts, w, scale)],
        ));
    }
    Ok(Pair {
        kernel: k,
        stride: st,
        ratios,
        rows,
    })
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    if args.size > MAX_SIZE {
        return Err(format!(
            "--size {} is more than needed to show the pattern (at most {MAX_SIZE})",
            args.size
        )
        .into());
    }
    // Everything is counted before anything is printed or written, so a refused size fails
    // cleanly.
    let pairs = PAIRS
        .iter()
        .map(|&(k, st)| count(args.size, k, st))
        .collect::<Result<Vec<_>, _>>()?;

    println!(
        "max/min of the coverage counts away from the borders (1 = even), {0}×{0} input of ones:",
        args.size
    );
    println!("{:>22} | {:^26} | {:^26}", "", "transposed conv", "resize + conv");
    println!(
        "{:>6} {:>6} {:>8} | {:>8}{:>9}{:>9} | {:>8}{:>9}{:>9}",
        "kernel", "stride", "k mod s", "1 layer", "2", "3", "1 layer", "2", "3"
    );
    for p in &pairs {
        let cells = |pick: fn(&(f64, f64)) -> f64| -> String {
            let v: Vec<f64> = p.ratios.iter().map(pick).collect();
            format!("{:>8.2}{:>9.2}{:>9.2}", v[0], v[1], v[2])
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

    std::fs::create_dir_all(&args.out_dir).map_err(|e| format!("{}: {e}", args.out_dir.display()))?;
    for p in &pairs {
        let path = args
            .out_dir
            .join(format!("checkerboard_k{}_s{}.png", p.kernel, p.stride));
        let rows: Vec<(&str, Vec<Array2<f32>>)> = p.rows.iter().map(|(l, imgs)| (l.as_str(), imgs.clone())).collect();
        image_grid(&path, &rows, 1)?;
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
