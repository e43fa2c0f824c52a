//! Interop with a real browser: headless Chromium (Debian's package, installed by
//! `.ci/interop-setup`) loads the demo page of `sockeye serve` from the engine, whose WebSocket
//! negotiates permessage-deflate, echoes text, binary and a 64 KiB text, and closes with 1000.
//! The results are read from the browser through the DevTools protocol by
//! `tests/interop/cdp.py` (on the pinned Python `websockets`), which prints one JSON line.
//!
//! Over TLS, the page comes from `https://localhost:PORT/` and opens `wss://`; the browser
//! trusts the test server's certificate by its key (`--ignore-certificate-errors-spki-list`).

use std::fs::{self, File};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sockeye_tests::interop::{self, EchoServer, ProcessGroup, TempDir, TestCa};

/// How long the browser may take to open its DevTools port.
const STARTUP: Duration = Duration::from_secs(20);

/// The longest the DevTools driver may take (it bounds itself at 20 s).
const LIMIT: Duration = Duration::from_secs(30);

/// How often the DevTools port file is looked for while the browser starts.
const POLL: Duration = Duration::from_millis(20);

#[test]
fn chromium_demo_page() {
    let Some(chromium) = interop::found(interop::chromium()) else {
        return;
    };
    let Some(python) = interop::found(interop::python_websockets()) else {
        return;
    };
    let server = EchoServer::start();
    run_demo_page(&chromium, &python, &server, &server.http_url(), None);
}

#[test]
fn chromium_demo_page_over_wss() {
    let Some(chromium) = interop::found(interop::chromium()) else {
        return;
    };
    let Some(python) = interop::found(interop::python_websockets()) else {
        return;
    };
    let ca = TestCa::new("chromium-wss");
    let server = ca.start_server();
    let page = format!("https://localhost:{}/", server.addr().port());
    let spki = ca.server().spki_sha256_base64();
    run_demo_page(&chromium, &python, &server, &page, Some(&spki));
}

/// Loads `page` from `server` in a headless Chromium, drives the demo page through DevTools
/// and checks its results; `spki`: the base64 SHA-256 of the server certificate's public key,
/// which the browser then trusts.
fn run_demo_page(
    chromium: &Path,
    python: &Path,
    server: &EchoServer,
    page: &str,
    spki: Option<&str>,
) {
    let dir = TempDir::new("chromium");
    let profile = dir.path().join("profile");
    let log_path = dir.path().join("chromium.log");
    let log = File::create(&log_path).expect("create the browser log");
    let mut command = Command::new(chromium);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(spki.map(|spki| format!("--ignore-certificate-errors-spki-list={spki}")))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("share the browser log"))
        .stderr(log);
    let mut browser = ProcessGroup::spawn(command).expect("start chromium");
    let port = devtools_port(&profile, &mut browser, &log_path);

    let mut driver = Command::new(python);
    driver
        .arg(interop::script("cdp.py"))
        .arg(port.to_string())
        .arg(page);
    let run = interop::run_client(driver, LIMIT);
    drop(browser);
    let report = run.json();
    let browser_log = || fs::read_to_string(&log_path).unwrap_or_default();
    assert_eq!(
        report.get("error").as_str(),
        None,
        "{run}\n--- chromium log\n{}",
        browser_log()
    );
    let results = report.get("results");
    assert_eq!(results.get("open").as_bool(), Some(true), "{run}");
    let extensions = results.get("extensions").as_str().unwrap_or_default();
    assert!(extensions.contains("permessage-deflate"), "{run}");
    let echoes: Vec<&str> = results
        .get("echoes")
        .as_array()
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    assert_eq!(echoes, ["hello", "[1 2 3]"], "{run}");
    assert_eq!(report.get("large_text_ok").as_bool(), Some(true), "{run}");
    assert_eq!(
        report.get("large_text_len").as_f64(),
        Some(65536.0),
        "{run}"
    );
    let closed = results.get("closed");
    assert_eq!(closed.get("code").as_f64(), Some(1000.0), "{run}");
    assert_eq!(closed.get("clean").as_bool(), Some(true), "{run}");
    assert!(run.status.success(), "{run}");
    let stats = server.stats();
    // The page, and maybe a favicon.ico (404).
    assert!(stats.http_requests >= 1, "the page was served: {stats:?}");
    assert_eq!(stats.upgraded, 1, "{stats:?}");
    eprintln!(
        "{}: {:.1?}",
        report.get("browser").as_str().unwrap_or("chromium"),
        run.elapsed
    );
}

/// The port from `<profile>/DevToolsActivePort` (its first line), once the browser wrote it.
///
/// # Panics
///
/// When the browser exits first or takes longer than [`STARTUP`], with its log.
fn devtools_port(profile: &Path, browser: &mut ProcessGroup, log: &Path) -> u16 {
    let file = profile.join("DevToolsActivePort");
    let started = Instant::now();
    loop {
        let text = fs::read_to_string(&file).unwrap_or_default();
        // The file is complete once its second line (the browser's target path) is there.
        if let Some((port, _)) = text.split_once('\n') {
            if let Ok(port) = port.trim().parse() {
                return port;
            }
        }
        let log = || fs::read_to_string(log).unwrap_or_default();
        if let Some(status) = browser.exited() {
            panic!(
                "chromium exited ({status}) before opening DevTools\n{}",
                log()
            );
        }
        assert!(
            started.elapsed() < STARTUP,
            "chromium (pid {}) wrote no {} within {STARTUP:?}\n{}",
            browser.id(),
            file.display(),
            log()
        );
        std::thread::sleep(POLL);
    }
}
