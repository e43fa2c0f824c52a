//! Interop with a real client: Python `websockets` (pinned by `.ci/interop-setup`) runs
//! `tests/interop/python_client.py` against the engine's echo handler with permessage-deflate
//! on, once per compression setting, and prints one JSON line of results checked here; over
//! plain TCP, and over TLS trusting only a test CA.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sockeye_tests::interop::{self, EchoServer, PYTHON_WEBSOCKETS, TestCa};

/// The longest the client may take for all its runs.
const LIMIT: Duration = Duration::from_secs(60);

/// 1 MiB plus its frame header: the size of the large text echo when it is not compressed.
const UNCOMPRESSED_LARGE: f64 = (1 << 20) as f64 + 10.0;

#[test]
fn python_websockets_client() {
    let Some(python) = interop::found(interop::python_websockets()) else {
        return;
    };
    run_checks(&python, &EchoServer::start(), None);
}

#[test]
fn python_websockets_client_over_wss() {
    let Some(python) = interop::found(interop::python_websockets()) else {
        return;
    };
    let ca = TestCa::new("python-wss");
    let server = ca.start_server();
    run_checks(&python, &server, Some(ca.ca_file()));
    assert_eq!(server.stats().tls_errors, 0, "{:?}", server.stats());
}

/// Runs the client against `server` (over TLS trusting `ca` when given) and checks every run.
fn run_checks(python: &Path, server: &EchoServer, ca: Option<&Path>) {
    let mut command = Command::new(python);
    command
        .arg(interop::script("python_client.py"))
        .arg(server.ws_url());
    if let Some(ca) = ca {
        command.arg("--ca").arg(ca);
    }
    let run = interop::run_client(command, LIMIT);
    let results = run.json();
    assert_eq!(
        results.get("version").as_str(),
        Some(PYTHON_WEBSOCKETS),
        "{run}"
    );
    let runs = results.get("runs");
    // (run, the extensions answered, whether the server's echoes are compressed)
    let table = [
        ("plain", "", false),
        ("deflate", "permessage-deflate", true),
        (
            "deflate_small",
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=9",
            true,
        ),
        // No 8-bit compressor exists: the server accepts and sends uncompressed (RFC 7692
        // always allows that); the client's compressed messages are still read.
        (
            "deflate_server_8_bits",
            "permessage-deflate; server_max_window_bits=8",
            false,
        ),
    ];
    for (name, extensions, compressed) in table {
        let r = runs.get(name);
        assert_eq!(r.get("error").as_str(), None, "{name}: {run}");
        interop::assert_checks(r, name, &interop::CLIENT_CHECKS, &run);
        assert_eq!(
            r.get("extensions").as_str(),
            Some(extensions),
            "{name}: {run}"
        );
        assert_eq!(r.get("close_code").as_f64(), Some(1000.0), "{name}: {run}");
        // The asyncio TLS transport hands the protocol plaintext: the byte counts are the same.
        interop::assert_transport(r, name, ca.is_some(), &run);
        let wire = r.get("large_text_wire_bytes").as_f64().unwrap_or(0.0);
        if compressed {
            assert!(
                wire < UNCOMPRESSED_LARGE / 4.0,
                "{name}: {wire} bytes: {run}"
            );
        } else {
            assert_eq!(wire, UNCOMPRESSED_LARGE, "{name}: {run}");
        }
    }
    assert_eq!(runs.as_object().map(<[_]>::len), Some(table.len()), "{run}");
    assert!(run.status.success(), "{run}");
    let stats = server.stats();
    assert_eq!(stats.upgraded, table.len() as u64, "{stats:?}");
    let transport = if ca.is_some() { "wss" } else { "ws" };
    eprintln!(
        "python websockets {PYTHON_WEBSOCKETS} ({transport}): {:.1?}",
        run.elapsed
    );
}
