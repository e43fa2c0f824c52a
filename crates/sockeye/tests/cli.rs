//! The `sockeye` binary end to end, as the README runs it: `serve` answers the demo page and
//! echoes; `load` measures it in each mode and verifies every echo.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_sockeye");

/// A running `sockeye serve`, stopped by its PID when dropped.
struct Serve {
    child: Child,
    addr: SocketAddr,
}

impl Serve {
    fn start(extra: &[&str]) -> Serve {
        let mut child = Command::new(BIN)
            .args(["serve", "--addr", "127.0.0.1:0", "--threads", "1"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sockeye serve");
        let stderr = child.stderr.take().expect("stderr");
        let mut line = String::new();
        BufReader::new(stderr)
            .read_line(&mut line)
            .expect("the start line");
        // "sockeye serve: listening on 127.0.0.1:PORT with 1 worker(s)..."
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(|a| a.trim_end_matches(','))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Serve { child, addr }
    }

    fn url(&self) -> String {
        format!("ws://{}/echo", self.addr)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn load(serve: &Serve, args: &[&str]) -> String {
    let output: Output = Command::new(BIN)
        .arg("load")
        .args(args)
        .args(["--url", &serve.url(), "--json"])
        .output()
        .expect("run sockeye load");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "sockeye load {args:?} failed: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The number after `"key":` in a one-line JSON summary.
fn number(json: &str, key: &str) -> f64 {
    let pattern = format!("\"{key}\":");
    let rest = json
        .split(&pattern)
        .nth(1)
        .unwrap_or_else(|| panic!("no {key} in {json}"));
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end]
        .parse()
        .unwrap_or_else(|_| panic!("{key} in {json}"))
}

#[test]
fn serve_answers_the_demo_page() {
    let serve = Serve::start(&[]);
    let mut stream = TcpStream::connect(serve.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("request");
    let mut page = String::new();
    stream
        .read_to_string(&mut page)
        .expect("the page, then EOF");
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.contains("<title>sockeye echo</title>"));
    assert!(page.contains("new WebSocket("));
}

#[test]
fn load_measures_serve_in_every_mode() {
    let serve = Serve::start(&[]);
    let echo = load(
        &serve,
        &["echo", "-c", "4", "-s", "1KiB", "-d", "1", "--warmup", "0"],
    );
    assert!(number(&echo, "echoes") > 0.0, "{echo}");
    assert_eq!(number(&echo, "mismatches"), 0.0, "{echo}");
    assert_eq!(number(&echo, "errors"), 0.0, "{echo}");
    let latency = load(&serve, &["latency", "-c", "2", "-d", "1", "--warmup", "0"]);
    assert!(number(&latency, "echoes") > 0.0, "{latency}");
    let connect = load(&serve, &["connect", "-c", "50", "--hold", "0.5"]);
    assert_eq!(number(&connect, "established"), 50.0, "{connect}");
    assert_eq!(number(&connect, "still_open"), 50.0, "{connect}");
}

#[test]
fn load_and_serve_negotiate_deflate() {
    let serve = Serve::start(&["--deflate", "--deflate-threshold", "0"]);
    let args = [
        "echo",
        "-c",
        "2",
        "-s",
        "4KiB",
        "--text",
        "--deflate",
        "-d",
        "1",
        "--warmup",
        "0",
    ];
    let echo = load(&serve, &args);
    assert_eq!(number(&echo, "deflate_negotiated"), 2.0, "{echo}");
    assert_eq!(number(&echo, "mismatches"), 0.0, "{echo}");
    assert!(number(&echo, "compression_ratio") > 1.5, "{echo}");
}

#[test]
fn help_explains_both_commands() {
    let output = Command::new(BIN).arg("--help").output().expect("help");
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(help.contains("serve") && help.contains("load"), "{help}");
}
