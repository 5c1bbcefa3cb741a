//! An interactive explorer of convolution and transposed convolution, in the browser.
//!
//! ```text
//! cargo run --release --example explorer                 # http://127.0.0.1:8017/
//! cargo run --release --example explorer -- --port 0     # any free port, printed
//! ```
//!
//! Serves one page on `127.0.0.1`: set rank, input size, kernel, stride, padding (before /
//! after, or TensorFlow's modes), dilation, output padding, groups and channels, and see the
//! sizes, `A` and `Aᵀ`, the sliding, scatter and zero-insertion views, the overlap maps and the
//! duality on the tape — every number computed by the library on the server (`api.rs`); the
//! page (`page.html`, `page.js`, inside the binary) only draws. Nothing is fetched from the
//! network.

mod api;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

/// Serve the conv / transposed-conv explorer on 127.0.0.1.
#[derive(Parser, Debug)]
struct Args {
    /// Port to listen on; 0 picks a free one (printed).
    #[arg(long, default_value_t = 8017)]
    port: u16,
}

fn main() -> ExitCode {
    // clap exits with 2 on a bad flag; the teaching examples exit with 1, naming the flag.
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) if !e.use_stderr() => {
            // --help, --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::FAILURE;
        }
    };
    let server = match tiny_http::Server::http(("127.0.0.1", args.port)) {
        Ok(server) => server,
        Err(e) => {
            eprintln!(
                "error: --port {}: cannot listen on 127.0.0.1:{}: {e}",
                args.port, args.port
            );
            return ExitCode::FAILURE;
        }
    };
    let port = server.server_addr().to_ip().map_or(args.port, |a| a.port());
    println!("explorer: serving on http://127.0.0.1:{port}/ (Ctrl-C to stop)");
    // Tests read the URL from a pipe, which is block-buffered.
    let _ = std::io::stdout().flush();
    for request in server.incoming_requests() {
        let answer = match request.method() {
            tiny_http::Method::Get | tiny_http::Method::Head => api::handle(request.url()),
            _ => api::Response {
                status: 405,
                content_type: "text/plain; charset=utf-8",
                body: "the explorer answers GET only\n".into(),
            },
        };
        let response = tiny_http::Response::from_string(answer.body)
            .with_status_code(answer.status)
            .with_header(header("Content-Type", answer.content_type))
            // Every answer is computed afresh; a cached page would hide a rebuilt binary's.
            .with_header(header("Cache-Control", "no-store"));
        // A browser that went away mid-answer is no reason to stop serving.
        let _ = request.respond(response);
    }
    ExitCode::SUCCESS
}

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("ASCII header")
}
