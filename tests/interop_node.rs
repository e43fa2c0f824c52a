//! Interop with a real client: Node `ws` (pinned by `.ci/interop-setup`) runs
//! `tests/interop/node_client.js` against the engine's echo handler with permessage-deflate on,
//! once per compression setting, and prints one JSON line of results checked here; over plain
//! TCP, and over TLS trusting only a test CA.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sockeye_tests::interop::{self, EchoServer, Json, NODE_WS, TestCa};

/// The longest the client may take for all its runs.
const LIMIT: Duration = Duration::from_secs(60);

/// A permessage-deflate parameter as ws reports it.
type Param = (&'static str, Json);

/// 1 MiB plus its frame header: the size of the large text echo when it is not compressed.
const UNCOMPRESSED_LARGE: f64 = (1 << 20) as f64 + 10.0;

#[test]
fn node_ws_client() {
    let Some((node, modules)) = interop::found(interop::node_ws()) else {
        return;
    };
    run_checks(&node, &modules, &EchoServer::start(), None);
}

#[test]
fn node_ws_client_over_wss() {
    let Some((node, modules)) = interop::found(interop::node_ws()) else {
        return;
    };
    let ca = TestCa::new("node-wss");
    let server = ca.start_server();
    run_checks(&node, &modules, &server, Some(ca.ca_file()));
    assert_eq!(server.stats().tls_errors, 0, "{:?}", server.stats());
}

/// Runs the client against `server` (over TLS trusting `ca` when given) and checks every run.
fn run_checks(node: &Path, modules: &Path, server: &EchoServer, ca: Option<&Path>) {
    let mut command = Command::new(node);
    command
        .env("NODE_PATH", modules)
        .arg(interop::script("node_client.js"))
        .arg(server.ws_url());
    if let Some(ca) = ca {
        command.arg("--ca").arg(ca);
    }
    let run = interop::run_client(command, LIMIT);
    let results = run.json();
    assert_eq!(results.get("version").as_str(), Some(NODE_WS), "{run}");
    let runs = results.get("runs");
    let small = [
        ("server_no_context_takeover", Json::Bool(true)),
        ("client_no_context_takeover", Json::Bool(true)),
        ("server_max_window_bits", Json::Number(10.0)),
        ("client_max_window_bits", Json::Number(9.0)),
    ];
    // (run, the negotiated parameters as ws reports them; None: not negotiated)
    let table: [(&str, Option<&[Param]>); 3] = [
        ("plain", None),
        ("deflate", Some(&[])),
        ("deflate_small", Some(&small)),
    ];
    for (name, params) in table {
        let r = runs.get(name);
        assert_eq!(r.get("error").as_str(), None, "{name}: {run}");
        interop::assert_checks(r, name, &interop::CLIENT_CHECKS, &run);
        assert_eq!(r.get("close_code").as_f64(), Some(1000.0), "{name}: {run}");
        interop::assert_transport(r, name, ca.is_some(), &run);
        let extensions = r.get("extensions").as_str().unwrap_or_default();
        let wire = r.get("large_text_wire_bytes").as_f64().unwrap_or(0.0);
        match params {
            None => {
                assert_eq!(extensions, "", "{name}: {run}");
                assert_eq!(wire, UNCOMPRESSED_LARGE, "{name}: {run}");
            }
            Some(params) => {
                assert!(extensions.contains("permessage-deflate"), "{name}: {run}");
                let got = r.get("deflate_params").as_object().unwrap_or_default();
                let expected: Vec<(String, Json)> = params
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.clone()))
                    .collect();
                assert_eq!(got, expected.as_slice(), "{name}: {run}");
                assert!(
                    wire < UNCOMPRESSED_LARGE / 4.0,
                    "{name}: {wire} bytes: {run}"
                );
            }
        }
    }
    assert!(run.status.success(), "{run}");
    let transport = if ca.is_some() { "wss" } else { "ws" };
    eprintln!("node ws {NODE_WS} ({transport}): {:.1?}", run.elapsed);
}
