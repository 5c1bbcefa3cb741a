//! The animations of `examples/pictures/animate`, checked as real GIF files: written to a temporary
//! directory by the example's own drawing module, decoded, and compared with the geometry.

#[path = "../examples/pictures/animate/draw.rs"]
mod draw;

use std::path::{Path, PathBuf};

use adjoint::ops::conv::AxisGeometry;
use draw::{Settings, Written, legends, unread_captions, write_gifs};

/// A fresh directory per test, so tests running in parallel never share files.
fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pictures").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn settings(input: usize, kernel: usize, stride: usize, padding: usize, dilation: usize) -> Settings {
    Settings {
        input,
        kernel,
        stride,
        padding,
        dilation,
        output_padding: None,
    }
}

/// A decoded GIF: screen size, and every frame composited onto the ones before it (all frames
/// are written with `DisposalMethod::Keep`), as RGBA.
struct Decoded {
    width: usize,
    height: usize,
    frames: Vec<Vec<u8>>,
    delays: Vec<u16>,
}

fn decode(path: &Path) -> Decoded {
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::RGBA);
    let mut decoder = options.read_info(std::fs::File::open(path).unwrap()).unwrap();
    let (width, height) = (usize::from(decoder.width()), usize::from(decoder.height()));
    assert_eq!(decoder.repeat(), gif::Repeat::Infinite, "{}", path.display());
    let mut canvas = vec![255u8; width * height * 4];
    let (mut frames, mut delays) = (Vec::new(), Vec::new());
    while let Some(frame) = decoder.read_next_frame().unwrap() {
        let (left, top) = (usize::from(frame.left), usize::from(frame.top));
        let (w, h) = (usize::from(frame.width), usize::from(frame.height));
        assert!(left + w <= width && top + h <= height, "frame outside the picture");
        if frames.is_empty() {
            assert_eq!((w, h), (width, height), "the first frame must cover the picture");
        }
        for y in 0..h {
            let src = &frame.buffer[y * w * 4..(y + 1) * w * 4];
            let at = ((top + y) * width + left) * 4;
            canvas[at..at + w * 4].copy_from_slice(src);
        }
        frames.push(canvas.clone());
        delays.push(frame.delay);
    }
    Decoded {
        width,
        height,
        frames,
        delays,
    }
}

// The example's colours (draw.rs), as the decoded file must show them.
const WHITE: (u8, u8, u8) = (255, 255, 255);
const INPUT: (u8, u8, u8) = (110, 160, 225);
const INSERTED: (u8, u8, u8) = (222, 222, 222);
const TAP_ON_INPUT: (u8, u8, u8) = (25, 60, 140);
const TAP_ON_ZERO: (u8, u8, u8) = (150, 170, 210);
const OUT_PENDING: (u8, u8, u8) = (245, 245, 245);
const OUT_DONE: (u8, u8, u8) = (130, 215, 200);
const OUT_CURRENT: (u8, u8, u8) = (20, 140, 125);
const NEVER_READ: (u8, u8, u8) = (200, 60, 60);
const PADDING_NEVER_READ: (u8, u8, u8) = (235, 150, 40);
const OUTPUT_PADDING: (u8, u8, u8) = (250, 235, 180);

/// The colour of grid cell (row, col) of a grid at `origin`, sampled a fifth of a cell in from
/// its top-left corner: inside a kernel tap's square, clear of grid lines and tap numbers.
fn cell_color(gif: &Decoded, frame: usize, w: &Written, origin: (u16, u16), row: usize, col: usize) -> (u8, u8, u8) {
    let cell = usize::from(w.cell);
    let x = usize::from(origin.0) + col * cell + cell / 5;
    let y = usize::from(origin.1) + row * cell + cell / 5;
    let p = &gif.frames[frame][(y * gif.width + x) * 4..];
    (p[0], p[1], p[2])
}

/// What the picture shows in each cell of the input grid: its own colour in a frame where no
/// tap covers it. Returns (input cells, inserted zeros, padding zeros, tap-covered every frame).
fn input_grid_census(gif: &Decoded, w: &Written) -> [usize; 4] {
    let mut census = [0; 4];
    for row in 0..w.in_side {
        for col in 0..w.in_side {
            let own = (0..w.frames)
                .map(|f| cell_color(gif, f, w, w.in_origin, row, col))
                .find(|c| ![TAP_ON_INPUT, TAP_ON_ZERO].contains(c));
            match own {
                Some(INPUT) => census[0] += 1,
                Some(INSERTED) => census[1] += 1,
                Some(WHITE | OUTPUT_PADDING) => census[2] += 1,
                None => census[3] += 1,
                Some(other) => panic!("cell ({row}, {col}) has colour {other:?}"),
            }
        }
    }
    census
}

/// Writes both animations for `s` and checks each file against the geometry: one frame per
/// output cell (`o²` for the conv, `n²` for the transposed conv), the reported picture size,
/// the output grid filling in row-major order (done, current, pending), the input grid holding
/// `inputs[j]` input cells and `inserted[j]` inserted zeros, and in every frame as many taps
/// on input cells as the library's index map `source` pairs with that output cell.
fn check(name: &str, s: Settings, o: usize, n: usize, inputs: [usize; 2], inserted: [usize; 2]) {
    let axis = AxisGeometry::new(s.kernel, s.stride, s.padding, s.dilation);
    assert_eq!(axis.conv_output_size(s.input), Some(o));
    let op = s
        .output_padding
        .unwrap_or_else(|| axis.past_last_window(s.input).unwrap());
    // Per axis of the conv's padded grid, by naive loops: whether some tap `t` of some window
    // `r` lands on cell `q = r·s + t·d`, and whether the cell is input (not padding).
    let padded = s.input + 2 * s.padding;
    let read: Vec<bool> = (0..padded)
        .map(|q| (0..o).any(|r| (0..s.kernel).any(|t| r * s.stride + t * s.dilation == q)))
        .collect();
    let is_input = |q: usize| (s.padding..s.padding + s.input).contains(&q);
    assert_eq!(axis.conv_transpose_output_size(o, op), Some(n));

    // Per axis, how many (input cell, tap) pairs meet output cell `r`: for the conv, the taps
    // of position `r` that read the input; for the transposed conv, the scatter's writes to `r`.
    let conv_reads = |r: usize| (0..s.kernel).filter(|&t| axis.source(r, t, s.input).is_some()).count();
    let scatter_writes = |r: usize| {
        let pairs = (0..o).flat_map(|j| (0..s.kernel).map(move |t| (j, t)));
        pairs.filter(|&(j, t)| axis.source(j, t, n) == Some(r)).count()
    };

    let dir = temp_dir(name);
    let written = write_gifs(&dir, &s, 100).unwrap();
    let names: Vec<_> = written.iter().map(|(p, _)| p.file_name().unwrap().to_owned()).collect();
    assert_eq!(names, ["conv.gif", "conv_transpose.gif", "conv_transpose_scatter.gif"]);
    for (j, ((path, w), side)) in written.iter().zip([o, n]).enumerate() {
        let gif = decode(path);
        let what = path.display();
        assert_eq!((w.out_side, w.frames), (side, side * side), "{what}");
        assert_eq!(gif.frames.len(), side * side, "{what}");
        assert_eq!((gif.width, gif.height), (usize::from(w.width), usize::from(w.height)));
        assert_eq!(w.bytes as u64, std::fs::metadata(path).unwrap().len());
        assert!(w.bytes < 300 * 1024, "{what}: {} bytes", w.bytes);
        // 100 ms a frame, the last one held four times as long.
        assert!(gif.delays[..w.frames - 1].iter().all(|&d| d == 10));
        assert_eq!(gif.delays[w.frames - 1], 40);
        for f in 0..w.frames {
            for cell in 0..w.frames {
                let expected = match cell.cmp(&f) {
                    std::cmp::Ordering::Less => OUT_DONE,
                    std::cmp::Ordering::Equal => OUT_CURRENT,
                    std::cmp::Ordering::Greater => OUT_PENDING,
                };
                let got = cell_color(&gif, f, w, w.out_origin, cell / side, cell % side);
                assert_eq!(got, expected, "{what}: frame {f}, output cell {cell}");
            }
        }
        for f in 0..w.frames {
            let (r, c) = (f / side, f % side);
            let expected = if j == 0 {
                conv_reads(r) * conv_reads(c)
            } else {
                scatter_writes(r) * scatter_writes(c)
            };
            let cells =
                (0..w.in_side * w.in_side).map(|q| cell_color(&gif, f, w, w.in_origin, q / w.in_side, q % w.in_side));
            let taps = cells.filter(|&color| color == TAP_ON_INPUT).count();
            assert_eq!(taps, expected, "{what}: frame {f}, taps on input cells");
        }
        // The conv's cells no tap reads are crossed out, red on input and orange on padding; the
        // centre of a cell lies on its cross, and no tap ever covers such a cell.
        if j == 0 {
            let last = w.frames - 1;
            let cell = usize::from(w.cell);
            for row in 0..padded {
                for col in 0..padded {
                    let x = usize::from(w.in_origin.0) + col * cell + cell / 2;
                    let y = usize::from(w.in_origin.1) + row * cell + cell / 2;
                    let px = &gif.frames[last][(y * gif.width + x) * 4..];
                    let got = (px[0], px[1], px[2]);
                    let expected = match (read[row] && read[col], is_input(row) && is_input(col)) {
                        (true, _) => None,
                        (false, true) => Some(NEVER_READ),
                        (false, false) => Some(PADDING_NEVER_READ),
                    };
                    match expected {
                        Some(cross) => assert_eq!(got, cross, "{what}: cell ({row}, {col})"),
                        None => assert!(
                            ![NEVER_READ, PADDING_NEVER_READ].contains(&got),
                            "{what}: read cell ({row}, {col}) is crossed out"
                        ),
                    }
                }
            }
        }
        let [input, zeros, padding, hidden] = input_grid_census(&gif, w);
        assert_eq!((input, zeros, hidden), (inputs[j], inserted[j], 0), "{what}");
        assert_eq!(input + zeros + padding, w.in_side * w.in_side);
    }
}

#[test]
fn dumoulin_visin_padded_strided_conv_and_its_transpose() {
    // D&V's "padding, strides" figure and its transpose: i = 5, k = 3, s = 2, p = 1 → o = 3,
    // and back to 5. The transposed view stretches the 3×3 input to 5×5 with s − 1 = 1 zero
    // between cells.
    check("strided", settings(5, 3, 2, 1, 1), 3, 5, [25, 9], [0, 25 - 9]);
}

#[test]
fn the_cell_past_the_last_window_is_given_back_by_output_padding() {
    // i = 6: (6 + 2 − 3) mod 2 = 1 cell past the last window, the right padding; output
    // padding 1 returns 6 cells.
    check("past_last_window", settings(6, 3, 2, 1, 1), 3, 6, [36, 9], [0, 16]);
    // An explicit output padding of 0 returns the smallest size, 5.
    let s = Settings {
        output_padding: Some(0),
        ..settings(6, 3, 2, 1, 1)
    };
    check("output_padding_0", s, 3, 5, [36, 9], [0, 16]);
}

#[test]
fn dilated_stride_1_conv_has_no_inserted_zeros() {
    // D&V's dilated-convolution figure: i = 7, k = 3, d = 2 → o = 3; padding d(k − 1) = 4
    // brings it back to 7.
    check("dilated", settings(7, 3, 1, 0, 2), 3, 7, [49, 9], [0, 0]);
}

#[test]
fn padding_beyond_the_kernel_crops_the_stretched_input() {
    // p = 3 > d(k − 1) = 2: the 5×5 input stretched to 9×9 loses one cell a side, an input
    // row and column at each end, leaving 3×3 inputs among 7×7 cells.
    check("cropped", settings(5, 3, 2, 3, 1), 5, 5, [25, 9], [0, 49 - 9]);
}

#[test]
fn refused_settings_give_the_library_error_and_write_nothing() {
    // The message names the flag and the value given, then the library's rule, and never the
    // library function that refused (conv2d, conv_transpose_by_zero_insertion, ...).
    let cases = [
        (
            settings(2, 5, 1, 0, 1),
            "--input 2: the input has shape [1, 1, 2, 2]: padded input size 2 is smaller than the effective kernel",
        ),
        (
            settings(5, 3, 0, 1, 1),
            "--stride 0: stride = [0, 0]: must be at least 1",
        ),
        (
            settings(5, 0, 1, 1, 1),
            "--kernel 0: the kernel has shape [1, 1, 0, 0]: kernel sizes must be at least 1",
        ),
        (
            Settings {
                output_padding: Some(2),
                ..settings(5, 3, 2, 1, 1)
            },
            "--output-padding 2: output_padding = [2, 2]: must be smaller than",
        ),
        (settings(1000, 3, 1, 0, 1), "more than a picture can show"),
        (settings(60, 3, 1, 0, 1), "frames"),
    ];
    for (i, (s, message)) in cases.into_iter().enumerate() {
        let dir = temp_dir(&format!("refused_{i}"));
        let err = write_gifs(&dir, &s, 100).unwrap_err().to_string();
        assert!(err.contains(message), "{s:?}: {err}");
        for internal in [
            "conv2d",
            "conv_transpose",
            "zero_insertion",
            "conv_output_size",
            "unread",
        ] {
            assert!(!err.contains(internal), "{s:?}: {err}");
        }
        assert!(!dir.exists(), "{s:?} left files behind");
    }
}

#[test]
fn the_caption_calls_padding_past_the_last_window_padding_and_every_input_cell_read() {
    // animate --input 6 (its default padding 1): the cell past the last window is padding, and
    // every input cell is read; the old caption said "the last row and column are never read".
    let (lines, legend) = unread_captions(&settings(6, 3, 2, 1, 1)).unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("a = (i + 2p − k_e) mod s = 1:") && l.ends_with("window: padding (crossed orange)")),
        "{lines:?}"
    );
    assert!(lines.contains(&"every input cell is read".to_string()), "{lines:?}");
    assert!(legend.contains(&"padding never read".to_string()), "{legend:?}");
    assert!(!legend.contains(&"input never read".to_string()), "{legend:?}");
    // Without padding the same cell is input.
    let (lines, legend) = unread_captions(&settings(6, 3, 2, 0, 1)).unwrap();
    assert!(lines.iter().any(|l| l.ends_with("window: input")), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("input row and column 5 (from 0)")),
        "{lines:?}"
    );
    assert!(legend.contains(&"input never read".to_string()), "{legend:?}");
    // Nothing unread: no line about it but "every input cell is read", no cross in the legend.
    let (lines, legend) = unread_captions(&settings(5, 3, 2, 1, 1)).unwrap();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(!legend.iter().any(|l| l.contains("never read")), "{legend:?}");
}

#[test]
fn dilation_leaves_input_cells_between_taps_unread() {
    // i = 8, k = 4, s = 3, p = 1, d = 2 (the guide's case): nothing lies past the last window
    // (a = 0), yet input rows and columns 0 and 7 fall between taps.
    let (lines, legend) = unread_captions(&settings(8, 4, 3, 1, 2)).unwrap();
    assert!(!lines.iter().any(|l| l.starts_with("a = ")), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("input rows and columns 0, 7 (from 0) are never read")),
        "{lines:?}"
    );
    assert!(legend.contains(&"input never read".to_string()), "{legend:?}");
    assert!(legend.contains(&"padding never read".to_string()), "{legend:?}");
    // Its transposed picture has 64 frames, too many for the size budget of `check`; a smaller
    // case, drawn and decoded: i = 7, k = 2, s = 3, p = 1, d = 2 reads padded cells 0 2, 3 5 and
    // 6 8 of 9 (a = 0), so input cells 0, 3 and 6 are never read. The transposed conv of the
    // 3×3 output gives back (3 − 1)·3 + 3 − 2 = 7; its 3×3 input is stretched to 7×7 with 40
    // inserted zeros.
    let s = settings(7, 2, 3, 1, 2);
    let (lines, _) = unread_captions(&s).unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("input rows and columns 0, 3, 6 (from 0) are never read")),
        "{lines:?}"
    );
    check("dilated_unread", s, 3, 7, [49, 9], [0, 40]);
}

/// The guide's table of Dumoulin & Visin's named cases: each row's command draws the conv it
/// names, and the sizes it states are the library's.
#[test]
fn the_guides_dumoulin_visin_table_matches_the_geometry() {
    let guide = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/guide.md")).unwrap();
    let at = guide
        .find("### Dumoulin & Visin's named cases")
        .expect("the table's heading");
    let numbers = |text: &str| -> Vec<usize> {
        text.split(|c: char| !c.is_ascii_digit())
            .filter(|t| !t.is_empty())
            .map(|t| t.parse().unwrap())
            .collect()
    };
    let mut rows = 0;
    for line in guide[at..].lines().skip_while(|l| !l.starts_with("|---")).skip(1) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (conv, transposed, command) = (numbers(cells[2]), numbers(cells[3]), cells[4]);
        let [i, k, s, p, d, o] = conv[..] else { panic!("{line}") };
        let [o_t, back, op] = transposed[..] else {
            panic!("{line}")
        };
        // The command's flags are the row's settings (dilation 1 when not given).
        let flag = |name: &str, default: usize| {
            let words: Vec<&str> = command.trim_matches('`').split_whitespace().collect();
            words
                .iter()
                .position(|w| *w == name)
                .map_or(default, |j| words[j + 1].parse().unwrap())
        };
        assert_eq!(
            [
                flag("--input", 0),
                flag("--kernel", 0),
                flag("--stride", 0),
                flag("--padding", 0),
                flag("--dilation", 1)
            ],
            [i, k, s, p, d],
            "{line}"
        );
        let axis = AxisGeometry::new(k, s, p, d);
        assert_eq!(axis.conv_output_size(i), Some(o), "{line}");
        assert_eq!(o_t, o, "{line}");
        assert_eq!(axis.past_last_window(i), Some(op), "{line}");
        assert_eq!(axis.conv_transpose_output_size(o, op), Some(back), "{line}");
        assert_eq!(back, i, "{line}");
        // And the animation the command writes has those sizes.
        let dir = temp_dir(&format!("dv-{rows}"));
        let written = write_gifs(&dir, &settings(i, k, s, p, d), 10).unwrap();
        assert_eq!(written[0].1.out_side, o, "{line}");
        assert_eq!(written[1].1.out_side, back, "{line}");
        std::fs::remove_dir_all(dir).unwrap();
        rows += 1;
    }
    assert_eq!(rows, 8, "the table's rows");
}

/// Every kind of cell drawn has its key in the legend, and only those: output padding (pale
/// yellow behind the dashes), cropped cells (hatched, outside the grid), taps on zeros.
#[test]
fn the_legend_has_a_key_for_every_kind_of_cell_drawn() {
    // i = 6, p = 1: a = 1, so the transposed view ends with one row and column of output
    // padding. Its padded axis is [pad, 5 stretched, pad, output pad]: output padding fills
    // the last row and column except where they cross the padding, 5 + 5 + 1 cells.
    let s = settings(6, 3, 2, 1, 1);
    let [conv, transposed] = legends(&s).unwrap();
    assert_eq!(
        conv,
        [
            "input",
            "padding zero",
            "tap on an input cell",
            "tap on a zero (adds nothing)",
            "padding never read",
            "computed",
            "this frame"
        ]
    );
    assert_eq!(
        transposed,
        [
            "input",
            "padding zero",
            "output padding zero",
            "inserted zero",
            "tap on an input cell",
            "tap on a zero (adds nothing)",
            "computed",
            "this frame"
        ]
    );
    let dir = temp_dir("legend-output-padding");
    let written = write_gifs(&dir, &s, 10).unwrap();
    let (path, w) = &written[1];
    let gif = decode(path);
    let side = w.in_side;
    let yellow: Vec<(usize, usize)> = (0..side * side)
        .map(|q| (q / side, q % side))
        .filter(|&(r, c)| (0..w.frames).any(|f| cell_color(&gif, f, w, w.in_origin, r, c) == OUTPUT_PADDING))
        .collect();
    assert_eq!(yellow.len(), 11, "{yellow:?}");
    assert!(yellow.iter().all(|&(r, c)| r == 7 || c == 7), "{yellow:?}");
    std::fs::remove_dir_all(dir).unwrap();

    // p = 3 > d(k − 1) = 2: one stretched cell cropped at each end, drawn hatched around the
    // grid; no padding or output padding is left, and a conv without padding has no taps on
    // zeros.
    let s = settings(5, 3, 2, 3, 1);
    let [_, transposed] = legends(&s).unwrap();
    assert!(
        transposed.contains(&"cropped: p > d(k−1)".to_string()),
        "{transposed:?}"
    );
    assert!(!transposed.iter().any(|l| l.contains("padding")), "{transposed:?}");
    let dir = temp_dir("legend-cropped");
    let written = write_gifs(&dir, &s, 10).unwrap();
    let (path, w) = &written[1];
    let gif = decode(path);
    let cell = usize::from(w.cell);
    let (x0, y0) = (usize::from(w.in_origin.0), usize::from(w.in_origin.1));
    let hatch = (x0 - cell..x0)
        .flat_map(|x| (y0..y0 + cell * w.in_side).map(move |y| (x, y)))
        .filter(|&(x, y)| gif.frames[0][(y * gif.width + x) * 4..][..3] == [175, 175, 175])
        .count();
    assert!(
        hatch > cell * w.in_side / 2,
        "no hatched column left of the grid: {hatch} px"
    );
    std::fs::remove_dir_all(dir).unwrap();
    let [conv, _] = legends(&settings(5, 3, 1, 0, 1)).unwrap();
    assert!(!conv.iter().any(|l| l.contains("zero")), "{conv:?}");
}

/// The scatter view's shades: how many stamps have written to each output cell, by plain
/// loops (input cell `j` and tap `t` write to `j·s + t·d − p` on each axis).
const SHADES: [(u8, u8, u8); 5] = [
    (255, 255, 255),
    (215, 240, 234),
    (150, 212, 198),
    (70, 170, 150),
    (20, 110, 95),
];

/// `conv_transpose_scatter.gif`: one frame per input cell of the transposed conv, and after
/// frame `f` every output cell shaded by how many of the first `f + 1` stamps wrote to it,
/// counted here by loops; cropped and output-padding cells sit where the geometry puts them.
#[test]
fn the_scatter_view_shades_each_output_cell_by_its_stamps() {
    for (name, s) in [
        ("scatter-strided", settings(5, 3, 2, 1, 1)),
        ("scatter-output-padding", settings(6, 3, 2, 1, 1)),
        ("scatter-cropped", settings(5, 3, 2, 3, 1)),
        ("scatter-dilated", settings(7, 3, 1, 0, 2)),
        ("scatter-wide", settings(4, 4, 2, 0, 1)),
    ] {
        let axis = AxisGeometry::new(s.kernel, s.stride, s.padding, s.dilation);
        let o = axis.conv_output_size(s.input).unwrap();
        let op = axis.past_last_window(s.input).unwrap();
        let n = axis.conv_transpose_output_size(o, op).unwrap();
        let dir = temp_dir(name);
        let written = write_gifs(&dir, &s, 10).unwrap();
        let (path, w) = &written[2];
        assert_eq!(path.file_name().unwrap(), "conv_transpose_scatter.gif");
        let gif = decode(path);
        assert_eq!((w.frames, gif.frames.len(), w.in_side), (o * o, o * o, o), "{name}");
        // The canvas spans output positions −p .. max(last reached, n − 1).
        let reach = (o - 1) * s.stride + s.dilation * (s.kernel - 1);
        assert_eq!(w.out_side, (reach + 1).max(n + s.padding), "{name}");
        // The last output position a stamp reaches; past it, output padding.
        let last = reach as isize - s.padding as isize;
        for f in [0, o * o / 2, o * o - 1] {
            for r in 0..n {
                for c in 0..n {
                    // Writes of the first f + 1 input cells (row-major) to output (r, c).
                    let mut count = 0;
                    for j in 0..=f {
                        let (jr, jc) = (j / o, j % o);
                        for tr in 0..s.kernel {
                            for tc in 0..s.kernel {
                                let at =
                                    |j: usize, t: usize| (j * s.stride + t * s.dilation) as isize - s.padding as isize;
                                count += usize::from(at(jr, tr) == r as isize && at(jc, tc) == c as isize);
                            }
                        }
                    }
                    let got = cell_color(&gif, f, w, w.out_origin, r + s.padding, c + s.padding);
                    let expected = if r as isize > last || c as isize > last {
                        OUTPUT_PADDING
                    } else {
                        SHADES[count.min(4)]
                    };
                    assert_eq!(got, expected, "{name}: frame {f}, output ({r}, {c}), {count} stamps");
                }
            }
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
