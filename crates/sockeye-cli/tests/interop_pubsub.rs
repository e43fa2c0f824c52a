//! Interop through the `/pubsub` endpoint of the `sockeye` binary (`serve` with two workers,
//! permessage-deflate for the clients that offer it): Python `websockets` and Node `ws` run the
//! same scenario (`tests/interop/python_pubsub.py`, `tests/interop/node_pubsub.js`: four
//! subscribers on exact topics and wildcards, one publisher, 200 numbered publishes per topic,
//! `pubx`, error replies) and print one JSON line of checks; headless Chromium chats in the
//! demo page's room chat from three tabs (`tests/interop/cdp.py ... chat`).
//!
//! The clients are the ones `.ci/interop-setup` installs; a missing one fails the test when the
//! `CI` environment variable is set, and skips it elsewhere.

use std::net::SocketAddr;
use std::process::{Child, Command};
use std::time::Duration;

use sockeye_tests::interop::{self, Chromium, ClientRun, Json, NODE_WS, PYTHON_WEBSOCKETS};

const BIN: &str = env!("CARGO_BIN_EXE_sockeye");

/// How long `sockeye serve` may take to print its start line.
const STARTUP: Duration = Duration::from_secs(20);

/// The longest a pub/sub client may take (it bounds itself at 60 s).
const CLIENT_LIMIT: Duration = Duration::from_secs(90);

/// The longest the DevTools driver may take for the chat (it bounds itself at 30 s).
const CHAT_LIMIT: Duration = Duration::from_secs(45);

/// The checks of `python_pubsub.py` and `node_pubsub.js`; each is `true` when it passed.
const PUBSUB_CHECKS: [&str; 13] = [
    "bad_topic_error",
    "publish_wildcard_error",
    "unknown_command_error",
    "binary_error",
    "open_after_errors",
    "unsub",
    "ok_sub",
    "exact_a_once_in_order",
    "exact_b_once_in_order",
    "star_once_in_order",
    "overlap_once_in_order",
    "wildcard_literal_topic",
    "pubx_not_echoed",
];

/// A running `sockeye serve` on a free port with two workers (so that the kernel spreads the
/// connections over both), stopped by its PID when dropped.
struct Serve {
    child: Child,
    addr: SocketAddr,
}

impl Serve {
    fn start() -> Serve {
        let (child, addr, _, _) = interop::start_serve(
            Command::new(BIN)
                .args(["serve", "--addr", "127.0.0.1:0", "--threads", "2"])
                .args(["--deflate", "--deflate-threshold", "0"]),
            STARTUP,
        );
        Serve { child, addr }
    }

    fn pubsub_url(&self) -> String {
        format!("ws://{}/pubsub", self.addr)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn python_websockets_pubsub() {
    let Some(python) = interop::found(interop::python_websockets()) else {
        return;
    };
    let serve = Serve::start();
    let mut command = Command::new(python);
    command
        .arg(interop::script("python_pubsub.py"))
        .arg(serve.pubsub_url());
    let run = interop::run_client(command, CLIENT_LIMIT);
    check_pubsub(&run, PYTHON_WEBSOCKETS);
    eprintln!(
        "python websockets {PYTHON_WEBSOCKETS} pubsub: {:.1?}",
        run.elapsed
    );
}

#[test]
fn node_ws_pubsub() {
    let Some((node, modules)) = interop::found(interop::node_ws()) else {
        return;
    };
    let serve = Serve::start();
    let mut command = Command::new(node);
    command
        .env("NODE_PATH", modules)
        .arg(interop::script("node_pubsub.js"))
        .arg(serve.pubsub_url());
    let run = interop::run_client(command, CLIENT_LIMIT);
    check_pubsub(&run, NODE_WS);
    eprintln!("node ws {NODE_WS} pubsub: {:.1?}", run.elapsed);
}

/// Checks the result line of a pub/sub client at `version`.
fn check_pubsub(run: &ClientRun, version: &str) {
    let results = run.json();
    assert_eq!(results.get("version").as_str(), Some(version), "{run}");
    assert_eq!(results.get("error").as_str(), None, "{run}");
    let checks = results.get("checks");
    interop::assert_checks(checks, "pubsub", &PUBSUB_CHECKS, run);
    assert_eq!(
        checks.as_object().map(<[_]>::len),
        Some(PUBSUB_CHECKS.len()),
        "{run}"
    );
    // Two subscribers offered permessage-deflate and got it, two did not offer it.
    let extensions = results.get("details").get("extensions");
    for (name, deflate) in [
        ("exact_a", true),
        ("exact_b", false),
        ("star", true),
        ("overlap", false),
    ] {
        let answered = extensions.get(name).as_str().unwrap_or_default();
        assert_eq!(
            answered.contains("permessage-deflate"),
            deflate,
            "{name}: {run}"
        );
    }
    assert!(run.status.success(), "{run}");
}

#[test]
fn chromium_room_chat() {
    let Some(chromium) = interop::found(interop::chromium()) else {
        return;
    };
    let Some(python) = interop::found(interop::python_websockets()) else {
        return;
    };
    let serve = Serve::start();
    let browser = Chromium::start(&chromium, None);
    let mut driver = Command::new(python);
    driver
        .arg(interop::script("cdp.py"))
        .arg(browser.devtools_port().to_string())
        .arg(format!("http://{}/", serve.addr))
        .arg("chat");
    let run = interop::run_client(driver, CHAT_LIMIT);
    let report = run.json();
    assert_eq!(
        report.get("error").as_str(),
        None,
        "{run}\n--- chromium log\n{}",
        browser.log()
    );
    let chat = report.get("chat");
    let lobby = ["ann: <b>hi</b> & hello", "bo: bye"];
    // (tab, its room, the lines it shows: its room's, never the other room's)
    let table: [(&str, &str, &[&str]); 3] = [
        ("ann", "lobby", &lobby),
        ("bo", "lobby", &lobby),
        ("cy", "other", &["cy: only here"]),
    ];
    for (name, room, lines) in table {
        let tab = chat.get(name);
        assert_eq!(tab.get("joined").as_str(), Some(room), "{name}: {run}");
        assert_eq!(strings(tab.get("lines")), lines, "{name}: {run}");
        assert_eq!(strings(tab.get("errors")), [""; 0], "{name}: {run}");
        // Shown as text: the markup in ann's line made no element.
        let elements = report.get("markup_elements").get(name).as_f64();
        assert_eq!(elements, Some(0.0), "{name}: {run}");
        let text = report
            .get("log_text")
            .get(name)
            .as_str()
            .unwrap_or_default();
        assert!(
            lines.iter().all(|line| text.contains(line)),
            "{name}: {run}"
        );
    }
    assert!(run.status.success(), "{run}");
    eprintln!(
        "{} room chat: {:.1?}",
        report.get("browser").as_str().unwrap_or("chromium"),
        run.elapsed
    );
}

/// The strings of a JSON array (empty when it is not one).
fn strings(json: &Json) -> Vec<&str> {
    json.as_array()
        .unwrap_or_default()
        .iter()
        .filter_map(Json::as_str)
        .collect()
}
