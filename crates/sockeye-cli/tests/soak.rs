//! `sockeye load soak` against `sockeye serve --deflate`: a 60-second mixed population whose
//! every echo is checked and whose server must end with the descriptors and connections it
//! started with; and a soak whose server dies, which must fail.

use std::io::Read as _;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sockeye_tests::interop::start_serve;
use sockeye_tests::json::Json;

const BIN: &str = env!("CARGO_BIN_EXE_sockeye");

/// A running `sockeye serve`, stopped by its PID when dropped.
struct Serve {
    child: Child,
    url: String,
}

impl Serve {
    fn start() -> Serve {
        let (child, addr, _, _) = start_serve(
            Command::new(BIN).args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--threads",
                "2",
                "--deflate",
            ]),
            Duration::from_secs(20),
        );
        Serve {
            child,
            url: format!("ws://{addr}/"),
        }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `sockeye load soak ARGS`; its output is collected by [`finish`].
fn soak(args: &[&str]) -> Child {
    Command::new(BIN)
        .args(["load", "soak"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sockeye load soak")
}

/// Waits for `child` to end, killing it (by its PID) after `limit`.
fn finish(mut child: Child, limit: Duration) -> Output {
    let (tx, done) = mpsc::channel();
    let pipes: [(bool, Box<dyn std::io::Read + Send>); 2] = [
        (true, Box::new(child.stdout.take().expect("stdout"))),
        (false, Box::new(child.stderr.take().expect("stderr"))),
    ];
    for (is_stdout, mut pipe) in pipes {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            let _ = tx.send((is_stdout, text));
        });
    }
    let deadline = Instant::now() + limit;
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok((is_stdout, text)) = done.recv_timeout(left) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("sockeye load soak still running after {limit:?}");
        };
        if is_stdout {
            stdout = text;
        } else {
            stderr = text;
        }
    }
    let status = child.wait().expect("wait for sockeye load soak");
    Output {
        status,
        stdout,
        stderr,
    }
}

fn number(json: &Json, key: &str) -> f64 {
    json.get(key)
        .as_f64()
        .unwrap_or_else(|| panic!("`{key}` is not a number"))
}

#[test]
fn a_minute_of_mixed_clients_leaves_the_server_as_it_found_it() {
    let serve = Serve::start();
    let pid = serve.pid();
    let dir = std::env::temp_dir().join(format!("sockeye-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let svg = dir.join("soak.svg");
    let child = soak(&[
        "--url",
        &serve.url,
        "--duration",
        "60",
        "--warmup",
        "10",
        "--clients",
        "8",
        "--server-pid",
        &pid,
        "--json",
        "--plot",
        svg.to_str().expect("utf-8 path"),
    ]);
    // 60 s of traffic, then at most 3 × 30 s for sessions to wind down and 10 s to settle.
    let output = finish(child, Duration::from_secs(240));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the soak failed: {stdout}\n{stderr}"
    );
    let json = Json::parse(stdout.trim()).unwrap_or_else(|e| panic!("bad JSON ({e}): {stdout}"));
    assert_eq!(number(&json, "wrong"), 0.0);
    assert_eq!(number(&json, "failed"), 0.0);
    assert!(number(&json, "echoes") >= 200.0, "{stdout}");
    for key in [
        "compressed_sessions",
        "fragmented",
        "pings",
        "clean_closes",
        "unclean",
        "resets",
        "stalls",
        "violations",
        "pings_answered",
    ] {
        assert!(number(&json, key) > 0.0, "no {key}: {stdout}");
    }
    let sessions = json.get("sessions").as_object().expect("sessions");
    for (kind, count) in sessions {
        assert!(count.as_f64() > Some(0.0), "no {kind} session: {stdout}");
    }
    // Every descriptor and connection of the clients is gone again.
    assert!(number(&json, "fds_after") <= number(&json, "fds_before") + 4.0);
    let server = json.get("server");
    assert_eq!(
        server.get("connections_open").as_f64(),
        Some(1.0),
        "the /stats request"
    );
    assert!(number(server, "upgraded") >= number(&json, "clean_closes"));
    let samples = json.get("samples").as_array().expect("samples");
    assert!(samples.len() >= 50, "{} samples", samples.len());
    assert!(samples.iter().all(|s| s.get("rss").as_f64() > Some(0.0)));
    let picture = std::fs::read_to_string(&svg).expect("the plot");
    assert!(picture.starts_with("<svg") && picture.contains("<polyline"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_server_that_dies_fails_the_soak() {
    let mut serve = Serve::start();
    let pid = serve.pid();
    let child = soak(&[
        "--url",
        &serve.url,
        "--duration",
        "30",
        "--clients",
        "4",
        "--server-pid",
        &pid,
        "--timeout",
        "5",
    ]);
    std::thread::sleep(Duration::from_secs(3));
    serve.child.kill().expect("kill the server");
    let _ = serve.child.wait();
    let output = finish(child, Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "the soak passed: {stdout}");
    assert!(stdout.contains("FAIL: "), "{stdout}");
}

#[test]
fn soak_refuses_what_it_cannot_do() {
    let output = Command::new(BIN)
        .args(["load", "soak", "--url", "wss://127.0.0.1:1/"])
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("ws:// only"));
}
