//! The teaching examples refuse flags that cannot mean anything, before any work: each bad
//! flag exits non-zero at once, naming the flag and its value (and not the library function
//! that refused it), and writes nothing.
//!
//! The binaries are the ones `cargo test` builds beside this test (`target/<profile>/examples/`);
//! a `cargo test --test flags` alone does not build examples, and the test then says so.

mod support;

use std::path::Path;
use std::process::Command;

use support::example_binary as binary;

#[test]
fn bad_flags_are_refused_before_any_work() {
    let huge = usize::MAX.to_string();
    let cases: &[(&str, &[&str], &str)] = &[
        ("duality", &["--size", "100000"], "--size 100000"),
        ("duality", &["--stride", &huge], "--stride 18446744073709551615"),
        ("duality", &["--padding", &huge], "--padding 18446744073709551615"),
        ("duality", &["--dilation", &huge], "--dilation 18446744073709551615"),
        ("duality", &["--kernel", "0"], "--kernel"),
        (
            "duality",
            &["--stride", "0"],
            "--stride 0: stride = [0]: must be at least 1",
        ),
        (
            "duality",
            &["--output-padding", "2"],
            "--output-padding 2: output_padding = [2]: must be smaller",
        ),
        (
            "duality",
            &["--size", "2", "--kernel", "5"],
            "--size 2: the input has shape [1, 1, 2]: padded input size 2 is smaller",
        ),
        ("duality", &["--channels", "0"], "--channels 0 must be in 1..=8"),
        (
            "duality",
            &["--groups", &huge],
            "--groups 18446744073709551615 must be in 1..=8",
        ),
        (
            "duality",
            &["--channels", "2", "--groups", "3"],
            "--groups 3: groups = 3: in_channels = 2 is not divisible by it",
        ),
        ("animate", &["--input", &huge], "--input 18446744073709551615"),
        (
            "animate",
            &["--output-padding", &huge],
            "--output-padding 18446744073709551615",
        ),
        (
            "animate",
            &["--stride", "0"],
            "--stride 0: stride = [0, 0]: must be at least 1",
        ),
        (
            "animate",
            &["--output-padding", "2"],
            "--output-padding 2: output_padding = [2, 2]: must be smaller",
        ),
        ("checkerboard", &["--size", &huge], "--size 18446744073709551615"),
        ("checkerboard", &["--kernel", "9"], "--kernel 9 is more than needed"),
        ("checkerboard", &["--stride", &huge], "--stride 18446744073709551615"),
        ("checkerboard", &["--layers", "5"], "--layers 5 is more than needed"),
        (
            "checkerboard",
            &["--layers", "0"],
            "--layers 0: layers = 0: must be at least 1",
        ),
        (
            "checkerboard",
            &["--kernel", "0"],
            "--kernel 0: kernel = 0: must be at least 1",
        ),
        (
            "checkerboard",
            &["--stride", "0"],
            "--stride 0: stride = 0: must be at least 1",
        ),
        (
            "checkerboard",
            &["--size", "32", "--kernel", "8", "--stride", "4", "--layers", "4"],
            "gives a map more than 2048 pixels a side",
        ),
        (
            "checkerboard",
            &["--size", "0"],
            "--size 0: size = 0: must be at least 1",
        ),
    ];
    for (name, args, needle) in cases {
        let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("flags-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out_dir);
        let started = std::time::Instant::now();
        let output = Command::new(binary(name))
            .args(*args)
            .arg("--out-dir")
            .arg(&out_dir)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let what = format!("{name} {args:?}");
        assert!(!output.status.success(), "{what}: accepted");
        assert_eq!(
            output.status.code(),
            Some(1),
            "{what}: not an error exit (a crash?): {stderr}"
        );
        assert!(stderr.contains(needle), "{what}: message {stderr:?} lacks {needle:?}");
        for internal in ["conv_matrix", "conv2d", "conv_transpose", "coverage", "unread"] {
            assert!(
                !stderr.contains(internal),
                "{what}: message {stderr:?} names {internal}"
            );
        }
        assert!(!out_dir.exists(), "{what}: wrote {}", out_dir.display());
        assert!(started.elapsed().as_secs() < 10, "{what}: took {:?}", started.elapsed());
    }
}

/// `duality`'s standard output for these flags (it writes its pictures to a fresh directory).
fn duality(args: &[&str]) -> String {
    let out_dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("duality-{}-{}", std::process::id(), args.join("")));
    let output = Command::new(binary("duality"))
        .args(args)
        .arg("--out-dir")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = std::fs::remove_dir_all(&out_dir);
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn duality_tells_the_cells_past_the_last_window_from_the_input_cells_never_read() {
    // Dilation: a = 0, yet input cells 0 and 7 fall between taps (columns 0 and 7 of A are zero).
    let out = duality(&[
        "--size",
        "8",
        "--kernel",
        "4",
        "--stride",
        "3",
        "--padding",
        "1",
        "--dilation",
        "2",
    ]);
    assert!(
        out.contains(
            "a = (i + 2p − k_e) mod s = (8 + 2 − 7) mod 3 = 0 cells of the padded input past the last window: none"
        ),
        "{out}"
    );
    assert!(
        out.contains("input cells no tap reads (the zero columns of A, AxisGeometry::unread_inputs): a (0), h (7)"),
        "{out}"
    );
    // The printed A has the input names as column headers and zero columns 0 and 7.
    let lines: Vec<&str> = out.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("A, entries named by kernel tap"))
        .unwrap();
    let header: Vec<&str> = lines[at + 1].split_whitespace().collect();
    assert_eq!(header, ["a", "b", "c", "d", "e", "f", "g", "h"]);
    for row in &lines[at + 2..at + 4] {
        let cells: Vec<&str> = row.split(['[', ']']).nth(1).unwrap().split_whitespace().collect();
        assert_eq!((cells.len(), cells[0], cells[7]), (8, "0", "0"), "{row}");
    }
    // Padding: the one cell past the last window is padding, and every input cell is read.
    let out = duality(&["--size", "6", "--padding", "1"]);
    assert!(
        out.contains("= 1 cell of the padded input past the last window: padding\n"),
        "{out}"
    );
    assert!(out.contains("input cells no tap reads (the zero columns of A, AxisGeometry::unread_inputs): none: every input cell is read"), "{out}");
    // No padding: it is input cell f.
    let out = duality(&["--size", "6"]);
    assert!(
        out.contains("= 1 cell of the padded input past the last window: input f (5)\n"),
        "{out}"
    );
}

#[test]
fn duality_numbers_its_sections_as_the_guide_does() {
    let out = duality(&[]);
    let sections: Vec<String> = out
        .lines()
        .filter_map(|l| l.strip_prefix("== "))
        .map(String::from)
        .collect();
    let guide = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/guide.md")).unwrap();
    let headings: Vec<String> = guide
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| h.replace('`', ""))
        .collect();
    assert_eq!(sections.len(), 5, "{sections:?}");
    assert_eq!(sections, headings[..5], "duality's sections against the guide's");
    // The kernel's taps are w0, w1, w2: no tap shares a name with the input x or its cells.
    assert!(
        out.contains("input x = [a, b, c, d, e, f, g] (7 cells), kernel w = [w0, w1, w2]"),
        "{out}"
    );
}

#[test]
fn duality_output_padding_picks_another_size_of_the_run() {
    // i = 7, k = 3, s = 2: a = 0, and the run is 7..=8; output padding 1 gives back 8 cells.
    let out = duality(&["--output-padding", "1"]);
    assert!(
        out.contains("the transposed conv's matrix with --output-padding 1 (not a = 0) (8×3):"),
        "{out}"
    );
    assert!(
        out.contains("It returns 8 cells, not 7: it is the transpose of the matrix of the conv on 8 cells"),
        "{out}"
    );
    assert!(out.contains("(+1 at the end)"), "{out}");
    // The gradient of section 3 still uses a, and matches.
    assert!(
        out.contains("max difference 0e0 (output_padding = a = 0 brings back exactly 7 cells)"),
        "{out}"
    );
}

/// The heat maps draw the printed conv in 2-D, and say so: `--size 6` with the default stride 2
/// draws a stride-2 conv of a 6×6 input, not some other conv.
#[test]
fn duality_pictures_draw_the_printed_conv() {
    let out = duality(&["--size", "6"]);
    assert!(
        out.contains("input x = [a, b, c, d, e, f] (6 cells), kernel w = [w0, w1, w2], stride 2, padding 0, dilation 1: output of 2 cells"),
        "{out}"
    );
    assert!(
        out.contains("2-D pictures: the same conv on a 6×6 input, kernel 3×3 (taps numbered 1..9), stride 2, padding 0, dilation 1 → 2×2 output"),
        "{out}"
    );
    assert!(out.contains("A is 4×36:"), "{out}");
    let out = duality(&["--size", "4", "--stride", "1", "--channels", "2", "--groups", "2"]);
    assert!(
        out.contains(
            "taps numbered 1..18), stride 1, padding 0, dilation 1, 2 channels in and out, groups 2 → 2×2 output"
        ),
        "{out}"
    );
    assert!(out.contains("A is 8×32:"), "{out}");
}

/// `checkerboard`'s one-pair run: its table and picture follow --kernel, --stride, --layers and
/// --size, and the picture changes with --size.
#[test]
fn checkerboard_flags_pick_the_pair_the_layers_and_the_size() {
    let run = |size: &str| {
        let out_dir =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("checkerboard-{}-{size}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out_dir);
        let output = Command::new(binary("checkerboard"))
            .args([
                "--kernel",
                "3",
                "--stride",
                "2",
                "--layers",
                "4",
                "--size",
                size,
                "--out-dir",
            ])
            .arg(&out_dir)
            .output()
            .unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(output.status.success(), "{stdout}");
        let files: Vec<String> = std::fs::read_dir(&out_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(files, ["checkerboard_k3_s2.png"], "{stdout}");
        let png = std::fs::read(out_dir.join(&files[0])).unwrap();
        std::fs::remove_dir_all(&out_dir).unwrap();
        (stdout, png)
    };
    let (out, small) = run("6");
    // One row, k = 3, s = 2, k mod s = 1, and the one-layer ratio 4 (rows and columns
    // alternate 1 and 2 paths).
    let row: Vec<&str> = out
        .lines()
        .find(|l| l.trim_start().starts_with("3      2"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(row[..4], ["3", "2", "1", "|"], "{out}");
    assert_eq!(row[4], "4.00", "{out}");
    assert!(out.contains("6×6 input of ones"), "{out}");
    assert!(out.contains("equal the transposed convs' counts"), "{out}");
    let (_, large) = run("12");
    assert_ne!(small, large, "--size changed nothing in the picture");
}
