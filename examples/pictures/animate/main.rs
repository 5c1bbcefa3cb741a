//! Animations of a 2-D convolution and its transpose, in the style of Dumoulin & Visin's
//! *A guide to convolution arithmetic for deep learning*: one frame per output cell.
//!
//! ```text
//! cargo run --release --example animate                      # i=5 k=3 s=2 p=1 d=1
//! cargo run --release --example animate -- --input 7 --kernel 3 --dilation 2 --stride 1
//! ```
//!
//! Writes `conv.gif` (the kernel's taps sliding over the padded input, the output filling in,
//! and the cells no tap reads crossed out: red on input, orange on padding)
//! and `conv_transpose.gif` (the transposed conv of the conv's output, drawn as a stride-1 conv
//! over the input stretched by inserted zeros, padded by `d(k−1)−p`, with the kernel flipped),
//! one frame per output cell, and `conv_transpose_scatter.gif` (the same transposed conv as a
//! scatter: each input cell stamps the kernel, scaled by its value, into the output, and
//! overlapping stamps add), one frame per input cell.
//! Every position comes from `adjoint::ops::conv::geometry` and the zero-insertion view, so any
//! setting the library accepts can be drawn; a setting it refuses prints the rule it breaks,
//! naming the flag.

mod draw;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Draw a 2-D convolution and its transpose as animated GIFs: the conv and the transposed conv
/// one frame per output cell, the transposed conv's scatter one frame per input cell.
#[derive(Parser, Debug)]
struct Args {
    /// Side of the square, single-channel input of the conv.
    #[arg(long, default_value_t = 5)]
    input: usize,
    /// Side of the square kernel.
    #[arg(long, default_value_t = 3)]
    kernel: usize,
    /// Stride.
    #[arg(long, default_value_t = 2)]
    stride: usize,
    /// Zero padding on every side.
    #[arg(long, default_value_t = 1)]
    padding: usize,
    /// Dilation: kernel taps are this many cells apart.
    #[arg(long, default_value_t = 1)]
    dilation: usize,
    /// Output padding of the transposed conv. By default the one that gives back exactly the
    /// conv's input size, `(i + 2p − k_e) mod s`.
    #[arg(long)]
    output_padding: Option<usize>,
    /// How long each frame shows, in milliseconds (the last one shows four times as long).
    #[arg(long, default_value_t = 600)]
    frame_ms: u16,
    /// Where conv.gif, conv_transpose.gif and conv_transpose_scatter.gif are written.
    #[arg(long, default_value = "out/animate")]
    out_dir: PathBuf,
}

fn run(args: &Args) -> Result<(), draw::Error> {
    let settings = draw::Settings {
        input: args.input,
        kernel: args.kernel,
        stride: args.stride,
        padding: args.padding,
        dilation: args.dilation,
        output_padding: args.output_padding,
    };
    let written = draw::write_gifs(&args.out_dir, &settings, args.frame_ms)?;
    // What conv.gif says, and crosses out, about the cells the conv never reads.
    let (captions, _) = draw::unread_captions(&settings)?;
    for line in &captions[1..] {
        println!("conv: {line}");
    }
    for (path, w) in written {
        println!(
            "wrote {} ({} frames, one per {}, {}×{} px, {:.0} KB)",
            path.display(),
            w.frames,
            w.frame_cells.trim_end_matches('s'),
            w.width,
            w.height,
            w.bytes as f64 / 1024.0
        );
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
