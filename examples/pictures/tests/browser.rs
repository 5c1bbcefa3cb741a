//! The explorer's page in headless Chromium, driven through chromedriver (W3C WebDriver over
//! plain HTTP): change settings in the form, read what the page shows, compare it with the
//! library's own numbers, and take a screenshot.
//!
//! Needs `chromium` and `chromedriver` on `PATH` (Debian: `apt-get install chromium
//! chromium-driver`). Without them the test is skipped with a message — unless
//! `ADJOINT_BROWSER_TESTS=1` (set by `.ci/run`), where a missing browser is a failure.
//! `ADJOINT_EXPLORER_SCREENSHOT=PATH` also writes the screenshot there (how
//! `docs/img/explorer.png` is made).

mod support;

use adjoint::ops::conv::views::conv_matrix;
use adjoint::ops::conv::{
    AxisGeometry, ConvOptions, ConvTransposeOptions, conv_output_shape, conv_transpose_output_shape,
};
use ndarray::{ArrayD, IxDyn};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The W3C name of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The first `name` on `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Chromium and chromedriver, or `None` (skip) where they are missing and the browser tests
/// were not asked for.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let found = on_path("chromium").zip(on_path("chromedriver"));
    if found.is_none() {
        let required = std::env::var("ADJOINT_BROWSER_TESTS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "ADJOINT_BROWSER_TESTS=1 but chromium or chromedriver is not on PATH: apt-get install chromium chromium-driver"
        );
        eprintln!(
            "skipping the explorer's browser test: chromium and chromedriver are not both on PATH \
             (apt-get install chromium chromium-driver; ADJOINT_BROWSER_TESTS=1 makes this a failure)"
        );
    }
    found
}

/// A WebDriver session on a chromedriver child; ended, and the child killed, when dropped.
struct Driver {
    addr: String,
    session: String,
    profile: PathBuf,
    // Dropped last, after the session is deleted (fields drop in declaration order).
    _child: support::Killed,
}

impl Driver {
    fn start(chromium: &PathBuf, chromedriver: &PathBuf) -> Driver {
        let port = support::free_port();
        let child = support::Killed(
            Command::new(chromedriver)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromedriver"),
        );
        let addr = format!("127.0.0.1:{port}");
        wait_for("chromedriver to listen", Duration::from_secs(10), || {
            let (status, body) = support::http(&addr, "GET", "/status", None).ok()?;
            (status == 200 && body.contains("\"ready\":true")).then_some(())
        });
        // A fresh profile, and nothing that reaches for the network: this machine's closed
        // network refuses background connections, and a test must not wait on them.
        let profile = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("chromium-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1400,1900",
            &format!("--user-data-dir={}", profile.display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let (status, body) = support::http(&addr, "POST", "/session", Some(&caps.to_string())).expect("new session");
        assert_eq!(status, 200, "new session: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let session = v["value"]["sessionId"].as_str().expect("a session id").to_string();
        Driver {
            addr,
            session,
            profile,
            _child: child,
        }
    }

    /// One WebDriver command on the session; its `value`.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("/session/{}{path}", self.session);
        let body = body.map(|b| b.to_string());
        let (status, text) =
            support::http(&self.addr, method, &url, body.as_deref()).unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {url}: {e}: {text}"));
        assert_eq!(status, 200, "{method} {url}: {text}");
        v["value"].clone()
    }

    /// The element matching a CSS selector, if there is one now.
    fn find(&self, css: &str) -> Option<String> {
        let url = format!("/session/{}/element", self.session);
        let body = json!({"using": "css selector", "value": css}).to_string();
        let (status, text) = support::http(&self.addr, "POST", &url, Some(&body)).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        (status == 200).then(|| v["value"][ELEMENT].as_str().map(str::to_string))?
    }

    /// The text the page shows for a CSS selector ("" if no such element).
    fn text(&self, css: &str) -> String {
        self.find(css).map_or(String::new(), |id| {
            self.call("GET", &format!("/element/{id}/text"), None)
                .as_str()
                .unwrap_or("")
                .to_string()
        })
    }

    /// Types `value` into the form field `id`, as a learner would: clear it, then type.
    fn set(&self, id: &str, value: &str) {
        let element = self.find(&format!("#{id}")).unwrap_or_else(|| panic!("no field #{id}"));
        self.call("POST", &format!("/element/{element}/clear"), Some(json!({})));
        self.call(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({"text": value})),
        );
    }

    /// Picks `value` in the drop-down `id`, by clicking its option.
    fn choose(&self, id: &str, value: &str) {
        let option = self
            .find(&format!("#{id} option[value=\"{value}\"]"))
            .unwrap_or_else(|| panic!("no option {value} in #{id}"));
        self.call("POST", &format!("/element/{option}/click"), Some(json!({})));
    }

    /// Waits until the page has drawn the answer to what its form now says (typing sends a
    /// request per pause, and an earlier answer can look like the awaited one).
    fn settled(&self) {
        let script = "return document.body.dataset.state !== 'busy' && document.body.dataset.query === query();";
        let found = wait_until(Duration::from_secs(8), || {
            let v = self.call("POST", "/execute/sync", Some(json!({"script": script, "args": []})));
            (v == Value::Bool(true)).then_some(())
        });
        assert!(found.is_some(), "the page never drew the answer to its form");
    }

    /// Waits until the page shows `want` at `css`, and returns what it showed last.
    fn wait_text(&self, css: &str, want: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        let found = wait_until(Duration::from_secs(8), || {
            last = self.text(css);
            want(&last).then_some(())
        });
        assert!(found.is_some(), "{css} shows {last:?}");
        last
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = support::http(&self.addr, "DELETE", &format!("/session/{}", self.session), None);
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn wait_until<T>(limit: Duration, mut poll: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = poll() {
            return Some(v);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_for(what: &str, limit: Duration, poll: impl FnMut() -> Option<()>) {
    assert!(wait_until(limit, poll).is_some(), "waited {limit:?} for {what}");
}

/// Standard base64 (the screenshot's encoding) to bytes.
fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .map(value)
        .collect();
    digits
        .chunks(4)
        .flat_map(|q| {
            let n = q
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, &d)| acc | (d as u32) << (18 - 6 * i));
            let bytes = n.to_be_bytes();
            bytes[1..q.len()].to_vec()
        })
        .collect()
}

#[test]
fn the_page_shows_the_librarys_numbers() {
    let Some((chromium, chromedriver)) = browser() else {
        return;
    };
    let started = Instant::now();
    let explorer = support::Explorer::start();
    let driver = Driver::start(&chromium, &chromedriver);
    driver.call(
        "POST",
        "/url",
        Some(json!({"url": format!("http://{}/", explorer.addr)})),
    );

    // The defaults: i = 7, k = 3, s = 2.
    let o = AxisGeometry::new(3, 2, 0, 1).conv_output_size(7).unwrap();
    driver.wait_text("#conv-out", |t| t == o.to_string());

    // A learner sets input 10, stride 3, padding 1 before and 2 after.
    for (field, value) in [("size", "10"), ("stride", "3"), ("pad_before", "1"), ("pad_after", "2")] {
        driver.set(field, value);
    }
    let axis = AxisGeometry {
        kernel: 3,
        stride: 3,
        dilation: 1,
        pad_before: 1,
        pad_after: 2,
    };
    driver.settled();
    let o = axis.conv_output_size(10).unwrap();
    assert_eq!(driver.text("#conv-out"), o.to_string());
    let a = axis.past_last_window(10).unwrap();
    assert_eq!(driver.text("#a"), a.to_string());
    assert_eq!(
        driver.text("#transpose-out"),
        axis.conv_transpose_output_size(o, a).unwrap().to_string()
    );
    // The output paddings the library's transposed conv accepts here.
    let legal: Vec<String> = (0..=16)
        .filter(|&op| {
            let opts = ConvTransposeOptions::new()
                .stride(3)
                .padding_asymmetric(&[(1, 2)])
                .output_padding(op);
            conv_transpose_output_shape(&[1, 1, o], &[1, 1, 3], &opts).is_ok()
        })
        .map(|op| op.to_string())
        .collect();
    assert_eq!(driver.text("#legal-op"), legal.join(", "));

    // A matrix cell: the library's A for the same settings, weights numbered 1, 2, 3.
    let w = ArrayD::from_shape_fn(IxDyn(&[1, 1, 3]), |i| (i[2] + 1) as f64);
    let opts = ConvOptions::new().stride(3).padding_asymmetric(&[(1, 2)]);
    let matrix = conv_matrix(&w, &[1, 10], &opts).unwrap();
    let (r, c) = (1, (0..10).find(|&c| matrix[[1, c]] != 0.0).unwrap());
    let cell = driver.text(&format!("#svg-a text[data-r=\"{r}\"][data-c=\"{c}\"]"));
    assert_eq!(cell, format!("{}", matrix[[r, c]]), "A[{r}, {c}] on the page");

    // The duality on the tape: the page's difference is 0.
    assert_eq!(driver.text("#dual-diff"), "0");

    // The scatter view, stepped to its end with the keyboard (End on the slider): one stamp
    // per output cell of the conv, and the sum is the transposed conv's forward.
    let scatter = driver
        .find("input[name=view][value=scatter]")
        .expect("the scatter view's button");
    driver.call("POST", &format!("/element/{scatter}/click"), Some(json!({})));
    let slider = driver.find("#step").expect("the slider");
    driver.call(
        "POST",
        &format!("/element/{slider}/value"),
        Some(json!({"text": "\u{E010}"})),
    );
    driver.wait_text("#step-label", |t| t == format!("step {o} of {o}"));
    let caption = driver.text("#view-caption");
    assert!(caption.contains("largest difference 0."), "{caption}");

    // An invalid setting: the library's own message in the error box.
    driver.set("stride", "0");
    let message = conv_output_shape(
        &[1, 1, 10],
        &[1, 1, 3],
        &ConvOptions::new().stride(0).padding_asymmetric(&[(1, 2)]),
    )
    .unwrap_err()
    .to_string();
    let shown = driver.wait_text("#error", |t| t.contains(&message));
    assert!(shown.contains("stride = 0"), "names the parameter: {shown}");
    // Back to a valid setting: the error goes away, the sizes come back.
    driver.set("stride", "2");
    driver.settled();
    let o = AxisGeometry { stride: 2, ..axis }.conv_output_size(10).unwrap();
    assert_eq!(driver.text("#conv-out"), o.to_string());
    assert_eq!(driver.text("#error"), "");

    // 2-D, and the screenshot (of a 5×5 input, small enough for A's values to show).
    driver.choose("rank", "2");
    driver.settled();
    assert_eq!(driver.text("#conv-out"), format!("{o}×{o}"));
    driver.set("size", "5");
    driver.settled();
    let o = AxisGeometry { stride: 2, ..axis }.conv_output_size(5).unwrap();
    assert_eq!(driver.text("#conv-out"), format!("{o}×{o}"));
    let png = base64(driver.call("GET", "/screenshot", None).as_str().expect("base64 PNG"));
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 20_000, "a screenshot of {} bytes is blank", png.len());
    std::fs::write(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("explorer.png"), &png).unwrap();
    if let Some(path) = std::env::var_os("ADJOINT_EXPLORER_SCREENSHOT") {
        std::fs::write(path, &png).unwrap();
    }
    drop(driver);
    drop(explorer);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}
