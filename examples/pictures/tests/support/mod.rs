//! What the explorer's tests share: the built binary, started on a free port and killed on
//! every path, and a minimal HTTP/1.1 client over `TcpStream` (enough for the explorer and
//! chromedriver's W3C WebDriver endpoints; no async runtime).

#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// An example binary that `cargo test` built beside this test (`target/<profile>/examples/`).
pub fn example_binary(name: &str) -> PathBuf {
    let me = std::env::current_exe().expect("the test binary's path");
    let profile_dir = me.parent().and_then(Path::parent).expect("target/<profile>/deps/..");
    let path = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run `cargo test` (which builds the examples), not `cargo test --test ..` alone",
        path.display()
    );
    path
}

/// A child process killed (and reaped) when dropped, so a failing assertion leaves nothing
/// running.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The explorer binary serving on a free port (`--port 0`), and the address it printed.
pub struct Explorer {
    /// The running binary, killed on drop.
    pub child: Killed,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Explorer {
    /// Starts the binary and reads the address from the URL it prints first.
    pub fn start() -> Explorer {
        let mut child = Command::new(example_binary("explorer"))
            .args(["--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the explorer");
        let stdout = child.stdout.take().expect("piped stdout");
        let child = Killed(child);
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the explorer's first line");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("the explorer printed no URL: {line:?}"))
            .to_string();
        assert!(addr.starts_with("127.0.0.1:"), "serves on loopback only: {line}");
        Explorer { child, addr }
    }
}

/// A port nobody listens on right now (the OS's pick; freed again for the caller to use).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("its address").port()
}

/// One HTTP/1.1 request to `addr` (`127.0.0.1:PORT`), `Connection: close`; returns the status
/// and the body (chunked bodies decoded).
pub fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    // Read until the body is complete by its length: a server may keep the connection open
    // (chromedriver does, whatever `Connection: close` says).
    let (mut raw, mut buf) = (Vec::new(), [0u8; 16384]);
    let end = loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::other(format!(
                "no header end in {:?}",
                String::from_utf8_lossy(&raw)
            )));
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {head:?}")))?;
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
    };
    let chunked = header("transfer-encoding:").is_some_and(|v| v.contains("chunked"));
    let length: Option<usize> = header("content-length:").and_then(|v| v.parse().ok());
    let complete = |body: &[u8]| match (chunked, length) {
        (true, _) => body.ends_with(b"0\r\n\r\n"),
        (false, Some(n)) => body.len() >= n,
        (false, None) => false,
    };
    while !complete(&raw[end + 4..]) {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let rest = &raw[end + 4..];
    let body = if chunked {
        dechunk(rest)
    } else {
        rest[..length.unwrap_or(rest.len()).min(rest.len())].to_vec()
    };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// A chunked body's data: `SIZE-in-hex\r\nDATA\r\n` until size 0 (bytes: a chunk may end
/// inside a character).
fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&rest[..line_end]);
        let n = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        let data = &rest[line_end + 2..];
        if n == 0 || data.len() < n {
            break;
        }
        out.extend_from_slice(&data[..n]);
        rest = data[n..].strip_prefix(b"\r\n").unwrap_or(&data[n..]);
    }
    out
}
