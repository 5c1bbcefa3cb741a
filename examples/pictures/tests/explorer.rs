//! The explorer's server, tested without a browser: its request handler called directly
//! (every number it answers against a naive loop written here), its refusals (each naming the
//! parameter and the value, never a panic), and the built binary serving over real TCP.

#[path = "../explorer/api.rs"]
mod api;
mod support;

use adjoint::ops::conv::{ConvOptions, conv_output_shape};
use serde_json::Value;
use std::process::Command;

/// The settings of one explorer query, to compute the expected answer independently.
#[derive(Clone, Copy, Debug)]
struct Case {
    rank: usize,
    i: usize,
    k: usize,
    s: usize,
    d: usize,
    pb: usize,
    pa: usize,
    /// `None`: `auto`.
    op: Option<usize>,
    c_in: usize,
    c_out: usize,
    g: usize,
}

impl Case {
    const fn new(rank: usize, i: usize, k: usize, s: usize, d: usize, pb: usize, pa: usize) -> Case {
        Case {
            rank,
            i,
            k,
            s,
            d,
            pb,
            pa,
            op: None,
            c_in: 1,
            c_out: 1,
            g: 1,
        }
    }

    fn query(&self) -> String {
        format!(
            "/api/explore?rank={}&size={}&kernel={}&stride={}&dilation={}&pad_before={}&pad_after={}&output_padding={}&c_in={}&c_out={}&groups={}",
            self.rank,
            self.i,
            self.k,
            self.s,
            self.d,
            self.pb,
            self.pa,
            self.op.map_or("auto".to_string(), |v| v.to_string()),
            self.c_in,
            self.c_out,
            self.g
        )
    }

    fn span(&self) -> usize {
        self.d * (self.k - 1) + 1
    }

    /// `⌊(i + p_b + p_a − k_e)/s⌋ + 1`, by counting windows one by one.
    fn out(&self, i: usize) -> Option<usize> {
        let padded = i + self.pb + self.pa;
        let windows = (0..).take_while(|w| w * self.s + self.span() <= padded).count();
        (windows > 0).then_some(windows)
    }

    fn spatial(&self, n: usize) -> usize {
        n.pow(self.rank as u32)
    }

    /// Flat index `j` of an `n`-sided grid as one coordinate per axis.
    fn coords(&self, j: usize, n: usize) -> Vec<usize> {
        if self.rank == 2 { vec![j / n, j % n] } else { vec![j] }
    }

    /// The conv's matrix on input size `i`, from the gather formula
    /// `y[oc, o] += w[oc, c, t] · x[g·c_in/g + c, o·s + t·d − p_b]`, weights numbered 1, 2, …
    fn matrix(&self, i: usize) -> Vec<Vec<f64>> {
        let o = self.out(i).expect("a defined conv");
        let (cig, cog) = (self.c_in / self.g, self.c_out / self.g);
        let taps = self.spatial(self.k);
        let mut a = vec![vec![0.0; self.c_in * self.spatial(i)]; self.c_out * self.spatial(o)];
        for oc in 0..self.c_out {
            for out in 0..self.spatial(o) {
                for c in 0..cig {
                    for t in 0..taps {
                        let w = ((oc * cig + c) * taps + t + 1) as f64;
                        let at: Option<Vec<usize>> = self
                            .coords(out, o)
                            .iter()
                            .zip(self.coords(t, self.k))
                            .map(|(&oa, ta)| (oa * self.s + ta * self.d).checked_sub(self.pb).filter(|&p| p < i))
                            .collect();
                        if let Some(at) = at {
                            let col = at.iter().fold(0, |acc, &p| acc * i + p);
                            a[oc * self.spatial(o) + out][((oc / cog) * cig + c) * self.spatial(i) + col] += w;
                        }
                    }
                }
            }
        }
        a
    }

    /// The transposed conv's output size with output padding `op`, from the size the conv
    /// maps back: the input size `i'` with `out(i') = o` and `i' = smallest + op`.
    fn transpose_size(&self, o: usize, op: usize) -> usize {
        let smallest = (1..400).find(|&j| self.out(j) == Some(o)).expect("some input size");
        smallest + op
    }
}

fn explore(case: &Case) -> Value {
    let r = api::handle(&case.query());
    assert_eq!(r.status, 200, "{case:?}: {}", r.body);
    assert_eq!(r.content_type, "application/json");
    serde_json::from_str(&r.body).expect("JSON")
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    numbers(v).into_iter().map(|x| x as usize).collect()
}

fn flat(m: &[Vec<f64>]) -> Vec<f64> {
    m.iter().flatten().copied().collect()
}

fn transpose(m: &[Vec<f64>]) -> Vec<Vec<f64>> {
    (0..m[0].len()).map(|c| m.iter().map(|row| row[c]).collect()).collect()
}

/// `mᵀ v`: the transposed conv of `v`, as a matrix product.
fn t_times(m: &[Vec<f64>], v: &[f64]) -> Vec<f64> {
    (0..m[0].len())
        .map(|c| m.iter().zip(v).map(|(row, x)| row[c] * x).sum())
        .collect()
}

fn assert_close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (n, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() < 1e-9, "{what}[{n}]: {g} vs {w}");
    }
}

/// Every number of the answer for `case` against the naive loops above.
fn check(case: &Case) {
    let v = explore(case);
    let sizes = &v["sizes"];
    let o = case.out(case.i).expect("the case is a defined conv");
    let a = (case.i + case.pb + case.pa - case.span()) % case.s;
    let op = case.op.unwrap_or(a);
    let t = case.transpose_size(o, op);
    assert_eq!(usizes(&sizes["conv_output"]), vec![o; case.rank], "{case:?}");
    assert_eq!(usizes(&sizes["transpose_output"]), vec![t; case.rank], "{case:?}");
    assert_eq!(sizes["past_last_window"], a, "{case:?}");
    let legal: Vec<usize> = (0..=16).filter(|&p| p < case.s || p < case.d).collect();
    assert_eq!(usizes(&sizes["legal_output_paddings"]), legal, "{case:?}");
    let same: Vec<usize> = (1..400).filter(|&j| case.out(j) == Some(o)).collect();
    assert_eq!(
        usizes(&sizes["same_output_inputs"]),
        vec![same[0], same[same.len() - 1]],
        "{case:?}"
    );
    let unread: Vec<usize> = (0..case.i)
        .filter(|&j| (0..o).all(|w| (0..case.k).all(|tap| w * case.s + tap * case.d != j + case.pb)))
        .collect();
    assert_eq!(usizes(&sizes["unread_inputs"]), unread, "{case:?}");

    let m = &v["matrix"];
    let a_naive = case.matrix(case.i);
    assert_eq!(usizes(&m["a"]["shape"]), vec![a_naive.len(), a_naive[0].len()]);
    assert_close(&numbers(&m["a"]["data"]), &flat(&a_naive), "A");
    // The chosen transposed conv is the transpose of the conv on its own output size.
    let at_naive = transpose(&case.matrix(t));
    assert_close(&numbers(&m["at"]["data"]), &flat(&at_naive), "Aᵀ");

    // The scatter view's stamps add up to Aᵀ g, and so does the zero-insertion recipe.
    let g = numbers(&m["scatter"]["g"]["data"]);
    let want = t_times(&case.matrix(t), &g);
    let frames = m["scatter"]["frames"].as_array().unwrap();
    assert_eq!(frames.len(), g.len(), "one stamp per input cell");
    let last = frames.last().unwrap();
    assert_close(&numbers(&last["sum"]), &want, "scatter sum");
    assert_close(&numbers(&m["scatter"]["forward"]["data"]), &want, "conv_transpose");
    assert_close(&numbers(&v["zero_insertion"]["y"]["data"]), &want, "zero insertion");
    // Stamp j is g_j times the kernel's copy for cell j: column j of Aᵀ.
    let j = g.len() / 2;
    let column: Vec<f64> = at_naive.iter().map(|row| row[j] * g[j]).collect();
    assert_close(&numbers(&frames[j]["stamp"]), &column, "stamp");

    // The tape: ∂L/∂x for upstream g is Aᵀ g with the conv's own A.
    let d = &v["duality"];
    let g = numbers(&d["g"]["data"]);
    let want = t_times(&a_naive, &g);
    assert_close(&numbers(&d["grad_x"]["data"]), &want, "grad_x");
    assert_close(&numbers(&d["conv_transpose_g"]["data"]), &want, "conv_transpose(g)");
    assert_eq!(d["max_difference"].as_f64(), Some(0.0), "{case:?}");

    // The sliding view: output cell `out`, tap `t` sits at padded cell out·s + t·d.
    let frames = v["sliding"]["frames"].as_array().unwrap();
    assert_eq!(frames.len(), case.spatial(o));
    for (n, frame) in frames.iter().enumerate() {
        let out = case.coords(n, o);
        assert_eq!(usizes(&frame["out"]), out);
        for (tap, cell) in frame["taps"].as_array().unwrap().iter().enumerate() {
            let pos: Vec<usize> = out
                .iter()
                .zip(case.coords(tap, case.k))
                .map(|(&oa, ta)| oa * case.s + ta * case.d)
                .collect();
            assert_eq!(usizes(&cell["pos"]), pos, "{case:?} frame {n} tap {tap}");
            let inside = pos.iter().all(|&p| p >= case.pb && p < case.pb + case.i);
            assert_eq!(cell["input"], inside, "{case:?} frame {n} tap {tap}");
        }
    }
}

const CASES: [Case; 7] = [
    Case::new(1, 7, 3, 2, 1, 0, 0),
    Case::new(1, 8, 4, 3, 2, 1, 1),
    Case::new(1, 6, 3, 2, 1, 1, 1),
    Case::new(1, 9, 2, 3, 1, 0, 2),
    Case::new(1, 5, 3, 1, 2, 2, 0),
    Case::new(2, 5, 3, 2, 1, 1, 1),
    Case::new(2, 6, 2, 2, 2, 0, 1),
];

#[test]
fn sizes_matrices_views_and_gradients_match_naive_loops() {
    for case in CASES {
        check(&case);
    }
}

#[test]
fn an_output_padding_other_than_a_gives_another_size_and_its_matrix() {
    // i = 7, k = 3, s = 3: the conv maps 6, 7, 8 to 2; op = 2 gives back 8, not 7.
    let mut case = Case::new(1, 7, 3, 3, 1, 0, 0);
    case.op = Some(2);
    check(&case);
    let v = explore(&case);
    assert_eq!(v["sizes"]["transpose_output"][0], 8);
    assert!(v["matrix"]["at_minus_a_transposed"].is_null(), "Aᵀ is of another size");
}

#[test]
fn channels_and_groups_make_a_block_matrix() {
    let mut case = Case::new(1, 5, 3, 1, 1, 1, 1);
    (case.c_in, case.c_out, case.g) = (2, 4, 2);
    check(&case);
    // Output channel 0 (group 0) never reads input channel 1 (group 1): a zero block.
    let v = explore(&case);
    let a = numbers(&v["matrix"]["a"]["data"]);
    let cols = 2 * 5;
    for row in 0..5 {
        assert!(a[row * cols + 5..row * cols + 10].iter().all(|&x| x == 0.0));
        assert!(a[row * cols..row * cols + 5].iter().any(|&x| x != 0.0));
    }
    let mut twod = Case::new(2, 4, 2, 2, 1, 0, 1);
    (twod.c_in, twod.c_out, twod.g) = (2, 2, 1);
    check(&twod);
}

#[test]
fn tensorflow_modes_pad_as_tensorflow_does() {
    for (i, k, s) in [(7usize, 3usize, 2usize), (10, 4, 3), (5, 1, 2), (6, 5, 1)] {
        let same = api::handle(&format!("/api/explore?mode=tf_same&size={i}&kernel={k}&stride={s}"));
        assert_eq!(same.status, 200, "{}", same.body);
        let v: Value = serde_json::from_str(&same.body).unwrap();
        let o = i.div_ceil(s);
        let total = ((o - 1) * s + k).saturating_sub(i);
        assert_eq!(v["sizes"]["conv_output"][0], o, "SAME i{i} k{k} s{s}");
        assert_eq!(usizes(&v["sizes"]["padding"]), vec![total / 2, total - total / 2]);
        // TensorFlow's transposed conv is given the conv's input size as its output shape.
        assert_eq!(v["sizes"]["transpose_output"][0], i);
        check(&Case::new(1, i, k, s, 1, total / 2, total - total / 2));
        let valid = api::handle(&format!("/api/explore?mode=tf_valid&size={i}&kernel={k}&stride={s}"));
        let v: Value = serde_json::from_str(&valid.body).unwrap();
        assert_eq!(
            v["sizes"]["conv_output"][0],
            (i - k + 1).div_ceil(s),
            "VALID i{i} k{k} s{s}"
        );
        assert_eq!(v["sizes"]["transpose_output"][0], i);
    }
}

/// Paths of the transposed conv's zero-insertion view: the input's values sit `s` apart
/// after `d(k − 1) − p_b` cells.
#[test]
fn zero_insertion_puts_the_input_s_apart() {
    let case = Case::new(1, 7, 3, 3, 1, 1, 1);
    let v = explore(&case);
    let z = &v["zero_insertion"];
    let g = numbers(&v["duality"]["g"]["data"]);
    let padded = numbers(&z["padded"]["data"]);
    let kinds: Vec<&str> = z["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    let before = case.d * (case.k - 1) - case.pb;
    for (n, &x) in g.iter().enumerate() {
        assert_eq!(kinds[before + n * case.s], "x");
        assert_eq!(padded[before + n * case.s], x);
    }
    assert_eq!(kinds.iter().filter(|k| **k == "x").count(), g.len());
    assert_eq!(kinds[before + 1], "zero");
    assert_eq!(kinds[0], "padding");
}

/// Counts of the overlap maps against a naive 2-D scatter of ones.
#[test]
fn overlap_maps_count_paths() {
    let (k, s, layers) = (3, 2, 2);
    let r = api::handle(&format!("/api/explore?kernel={k}&stride={s}&layers={layers}&size=9"));
    let v: Value = serde_json::from_str(&r.body).unwrap();
    let mut counts = vec![vec![1.0; 4]; 4];
    for _ in 0..layers {
        let n = (counts.len() - 1) * s + k;
        let mut next = vec![vec![0.0; n]; n];
        for (y, row) in counts.iter().enumerate() {
            for (x, &c) in row.iter().enumerate() {
                for ty in 0..k {
                    for tx in 0..k {
                        next[y * s + ty][x * s + tx] += c;
                    }
                }
            }
        }
        counts = next;
    }
    assert_close(
        &numbers(&v["coverage"]["transposed"]["counts"]["data"]),
        &flat(&counts),
        "coverage",
    );
    assert!(v["coverage"]["transposed"]["interior_ratio"].as_f64().unwrap() > 1.0);
    assert_eq!(v["coverage"]["resize_conv"]["interior_ratio"].as_f64(), Some(1.0));
}

/// Every kernel, stride and layer count of the overlap maps answers: the maps, or a note
/// saying why not (too large, or all border), never a crash.
#[test]
fn every_overlap_setting_answers() {
    for k in [1, 2, 3, 4, 5, 7, 8, 16] {
        for s in [1, 2, 3, 4, 16] {
            for layers in 1..=4 {
                let r = api::handle(&format!("/api/explore?kernel={k}&stride={s}&layers={layers}&size=64"));
                assert_eq!(r.status, 200, "k{k} s{s} layers{layers}: {}", r.body);
                let v: Value = serde_json::from_str(&r.body).unwrap();
                let c = &v["coverage"];
                assert!(
                    c["note"].is_string() || c["transposed"]["counts"]["data"].is_array(),
                    "k{k} s{s} layers{layers}: {c}"
                );
            }
        }
    }
}

/// The library's own message for a conv it refuses.
fn library_message(x: &[usize], w: &[usize], opts: &ConvOptions) -> String {
    conv_output_shape(x, w, opts).unwrap_err().to_string()
}

#[test]
fn bad_parameters_name_the_parameter_and_the_value() {
    let huge = "99999999999999999999999";
    let cases: Vec<(String, &str, &str, String)> = vec![
        // (query, parameter, value, a part of the message)
        ("size=".into(), "size", "", "whole number".into()),
        ("size".into(), "size", "", "whole number".into()),
        ("stride=abc".into(), "stride", "abc", "whole number".into()),
        ("stride=-1".into(), "stride", "-1", "whole number".into()),
        ("stride=1.5".into(), "stride", "1.5", "whole number".into()),
        (format!("size={huge}"), "size", huge, "whole number".into()),
        ("size=65".into(), "size", "65", "at most 64".into()),
        ("kernel=17".into(), "kernel", "17", "at most 16".into()),
        ("pad_before=33".into(), "pad_before", "33", "at most 32".into()),
        ("c_in=9".into(), "c_in", "9", "at most 8".into()),
        ("layers=5".into(), "layers", "5", "at most 4".into()),
        ("rank=3".into(), "rank", "3", "at most 2".into()),
        ("rank=0".into(), "rank", "0", "1 (1-D) or 2".into()),
        (
            "mode=same".into(),
            "mode",
            "same",
            "explicit, tf_same or tf_valid".into(),
        ),
        ("bogus=1".into(), "bogus", "1", "unknown parameter".into()),
        ("stride=2&stride=3".into(), "stride", "3", "given twice".into()),
        ("size=%37".into(), "size", "%37", "whole number".into()),
        ("output_padding=x".into(), "output_padding", "x", "whole number".into()),
        // Refused by the library, with its own message.
        (
            "stride=0".into(),
            "stride",
            "0",
            library_message(&[1, 1, 7], &[1, 1, 3], &ConvOptions::new().stride(0)),
        ),
        (
            "dilation=0".into(),
            "dilation",
            "0",
            library_message(&[1, 1, 7], &[1, 1, 3], &ConvOptions::new().stride(2).dilation(0)),
        ),
        (
            "kernel=0".into(),
            "kernel",
            "0",
            library_message(&[1, 1, 7], &[1, 1, 0], &ConvOptions::new().stride(2)),
        ),
        (
            "size=3&kernel=5".into(),
            "size",
            "3",
            library_message(&[1, 1, 3], &[1, 1, 5], &ConvOptions::new().stride(2)),
        ),
        (
            "groups=2&c_in=3&c_out=2".into(),
            "groups",
            "2",
            library_message(&[1, 3, 7], &[2, 1, 3], &ConvOptions::new().stride(2).groups(2)),
        ),
        (
            "groups=2&c_in=2&c_out=3".into(),
            "groups",
            "2",
            library_message(&[1, 2, 7], &[3, 1, 3], &ConvOptions::new().stride(2).groups(2)),
        ),
        ("groups=0".into(), "groups", "0", "must be at least 1".into()),
        ("layers=0".into(), "layers", "0", "must be at least 1".into()),
        // Output padding must be below the stride or the dilation.
        (
            "output_padding=2".into(),
            "output_padding",
            "2",
            "must be smaller".into(),
        ),
        (
            "stride=1&dilation=2&output_padding=2".into(),
            "output_padding",
            "2",
            "must be smaller".into(),
        ),
    ];
    for (query, param, value, message) in cases {
        let r = api::handle(&format!("/api/explore?{query}"));
        assert_eq!(r.status, 400, "{query}: {}", r.body);
        let v: Value = serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{query}: {e}: {}", r.body));
        assert_eq!(v["param"], param, "{query}: {v}");
        assert_eq!(v["value"], value, "{query}: {v}");
        assert!(
            v["error"].as_str().unwrap().contains(&message),
            "{query}: {v} should say {message:?}"
        );
    }
}

#[test]
fn unknown_paths_answer_404_in_json() {
    for path in [
        "",
        "/api",
        "/api/explore/x",
        "//",
        "/../etc/passwd",
        "/favicon.ico",
        "?size=3",
    ] {
        let r = api::handle(path);
        assert_eq!(r.status, 404, "{path:?}");
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["param"], "path");
    }
    let page = api::handle("/");
    assert_eq!((page.status, page.content_type), (200, "text/html; charset=utf-8"));
    assert!(page.body.contains("<script src=\"/explorer.js\">"));
    let js = api::handle("/explorer.js");
    assert!(js.body.contains("/api/explore?"));
    // Nothing is fetched from the network at run time: no URL but the server's own paths (the
    // SVG namespace is a name, never fetched).
    for text in [&page.body, &js.body] {
        let text = text.replace("http://www.w3.org/2000/svg", "");
        assert!(!text.contains("http://") && !text.contains("https://") && !text.contains("//cdn"));
    }
}

/// Random queries over the parameters' edges, 400 of them: every answer is 200 or 400 and JSON.
#[test]
fn random_queries_never_crash() {
    let keys = [
        "rank",
        "size",
        "kernel",
        "stride",
        "dilation",
        "pad_before",
        "pad_after",
        "output_padding",
        "groups",
        "c_in",
        "c_out",
        "layers",
        "mode",
    ];
    let values = [
        "0",
        "1",
        "2",
        "3",
        "4",
        "7",
        "8",
        "16",
        "32",
        "64",
        "65",
        "-1",
        "x",
        "",
        "auto",
        "tf_same",
        "tf_valid",
        "18446744073709551616",
    ];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let mut ok = 0;
    for _ in 0..400 {
        let query: Vec<String> = (0..1 + next(5))
            .map(|_| format!("{}={}", keys[next(keys.len())], values[next(values.len())]))
            .collect();
        let r = api::handle(&format!("/api/explore?{}", query.join("&")));
        assert!(r.status == 200 || r.status == 400, "{query:?}: {}", r.status);
        let v: Value = serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{query:?}: {e}"));
        if r.status == 200 {
            ok += 1;
            assert!(v["sizes"]["conv_output"].is_array());
        } else {
            assert!(v["error"].is_string() && v["param"].is_string(), "{v}");
        }
    }
    assert!(
        ok > 20,
        "only {ok} of 400 random queries were valid: the test explores too little"
    );
}

#[test]
fn the_binary_serves_the_page_over_tcp() {
    let explorer = support::Explorer::start();
    let (status, body) = support::http(&explorer.addr, "GET", "/", None).unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("adjoint explorer"));
    let (status, body) = support::http(&explorer.addr, "GET", "/api/explore?rank=2&stride=1", None).unwrap();
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["sizes"]["conv_output"], serde_json::json!([5, 5]));
    let (status, body) = support::http(&explorer.addr, "GET", "/api/explore?stride=0", None).unwrap();
    assert_eq!(status, 400);
    assert!(body.contains("\"param\":\"stride\""));
    let (status, _) = support::http(&explorer.addr, "POST", "/api/explore", Some("{}")).unwrap();
    assert_eq!(status, 405);
    // Still serving after all that.
    let (status, _) = support::http(&explorer.addr, "GET", "/explorer.js", None).unwrap();
    assert_eq!(status, 200);
}

#[test]
fn bad_flags_exit_1_naming_the_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    for (args, needle) in [
        (vec!["--port", "70000"], "--port".to_string()),
        (vec!["--port", "abc"], "--port".to_string()),
        (vec!["--bogus"], "--bogus".to_string()),
        (vec!["--port", &port], format!("--port {port}")),
    ] {
        let out = Command::new(support::example_binary("explorer"))
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(&needle), "{args:?}: {stderr}");
    }
}
