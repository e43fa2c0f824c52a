//! Interop with a real browser: headless Chromium (Debian's package, installed by
//! `.ci/interop-setup`) loads the demo page of `sockeye serve` from the engine, whose WebSocket
//! negotiates permessage-deflate, echoes text, binary and a 64 KiB text, and closes with 1000.
//! The results are read from the browser through the DevTools protocol by
//! `tests/interop/cdp.py` (on the pinned Python `websockets`), which prints one JSON line.
//!
//! Over TLS, the page comes from `https://localhost:PORT/` and opens `wss://`; the browser
//! trusts the test server's certificate by its key (`--ignore-certificate-errors-spki-list`).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sockeye_tests::interop::{self, Chromium, EchoServer, TestCa};

/// The longest the DevTools driver may take (it bounds itself at 20 s).
const LIMIT: Duration = Duration::from_secs(30);

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
    let browser = Chromium::start(chromium, spki);
    let mut driver = Command::new(python);
    driver
        .arg(interop::script("cdp.py"))
        .arg(browser.devtools_port().to_string())
        .arg(page);
    let run = interop::run_client(driver, LIMIT);
    let report = run.json();
    assert_eq!(
        report.get("error").as_str(),
        None,
        "{run}\n--- chromium log\n{}",
        browser.log()
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
