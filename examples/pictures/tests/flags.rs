//! The teaching examples refuse flags that cannot mean anything, before any work: each bad
//! flag exits non-zero at once, naming the flag and its value, and writes nothing.
//!
//! The binaries are the ones `cargo test` builds beside this test (`target/<profile>/examples/`);
//! a `cargo test --test flags` alone does not build examples, and the test then says so.

use std::path::{Path, PathBuf};
use std::process::Command;

fn binary(name: &str) -> PathBuf {
    let me = std::env::current_exe().unwrap();
    let profile_dir = me.parent().and_then(Path::parent).unwrap();
    let path = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run `cargo test`, which builds the examples",
        path.display()
    );
    path
}

#[test]
fn bad_flags_are_refused_before_any_work() {
    let huge = usize::MAX.to_string();
    let cases: &[(&str, &[&str], &str)] = &[
        ("duality", &["--size", "100000"], "--size 100000"),
        ("duality", &["--stride", &huge], "--stride 18446744073709551615"),
        ("duality", &["--padding", &huge], "--padding 18446744073709551615"),
        ("duality", &["--dilation", &huge], "--dilation 18446744073709551615"),
        ("duality", &["--kernel", "0"], "--kernel"),
        ("duality", &["--stride", "0"], "stride = [0]"),
        ("animate", &["--input", &huge], "--input 18446744073709551615"),
        (
            "animate",
            &["--output-padding", &huge],
            "--output-padding 18446744073709551615",
        ),
        ("animate", &["--stride", "0"], "stride = [0, 0]"),
        ("checkerboard", &["--size", &huge], "--size 18446744073709551615"),
        ("checkerboard", &["--size", "0"], "size = 0"),
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
        assert!(!out_dir.exists(), "{what}: wrote {}", out_dir.display());
        assert!(started.elapsed().as_secs() < 10, "{what}: took {:?}", started.elapsed());
    }
}
