//! Replays every fuzz seed (`fuzz/seeds/<target>/`) and saved crash (`fuzz/regressions/<target>/`)
//! through the invariant checks of the fuzz targets, on every `cargo test`, so that a fixed
//! crash stays fixed without a fuzzer run. The checks are the targets' own (`fuzz/checks/`).
//! With `SOCKEYE_FUZZ_KEPT=1` the kept corpora (`fuzz/kept/<target>/`, thousands of inputs) are
//! replayed too: after a change to a check or to what it checks.

use std::fs;
use std::io::ErrorKind;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

#[path = "../fuzz/checks/client.rs"]
mod client;
#[path = "../fuzz/checks/client_session.rs"]
mod client_session;
#[path = "../fuzz/checks/connection.rs"]
mod connection;
#[path = "../fuzz/checks/deflate_connection.rs"]
mod deflate_connection;
#[path = "../fuzz/checks/driver.rs"]
mod driver;
#[path = "../fuzz/checks/frame.rs"]
mod frame;
#[path = "../fuzz/checks/handshake.rs"]
mod handshake;
#[path = "../fuzz/checks/inflate.rs"]
mod inflate;
#[path = "../fuzz/checks/offers.rs"]
mod offers;
#[path = "../fuzz/checks/tls.rs"]
mod tls;
#[path = "../fuzz/checks/tls_session.rs"]
mod tls_session;
#[path = "../fuzz/checks/upgrade_differential.rs"]
mod upgrade_differential;

/// The regular files of `dir` (dotfiles such as `.gitkeep` skipped); none when it is missing.
fn files(dir: &Path) -> Vec<PathBuf> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == ErrorKind::NotFound => return Vec::new(),
        Err(err) => panic!("reading {}: {err}", dir.display()),
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_file())
        .filter(|path| {
            !path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    paths.sort();
    paths
}

/// Runs `check` on every seed and regression of `target` (and kept input, when asked), naming
/// each input that fails.
fn replay(target: &str, check: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let seeds = files(&fuzz.join("seeds").join(target));
    assert!(!seeds.is_empty(), "no seeds in fuzz/seeds/{target}/");
    let regressions = files(&fuzz.join("regressions").join(target));
    let kept = match std::env::var_os("SOCKEYE_FUZZ_KEPT") {
        Some(v) if v == "1" => files(&fuzz.join("kept").join(target)),
        _ => Vec::new(),
    };
    let failed: Vec<String> = seeds
        .iter()
        .chain(&regressions)
        .chain(&kept)
        .filter(|path| {
            let data = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            catch_unwind(AssertUnwindSafe(|| check(&data))).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{target} invariants broken by: {failed:#?}"
    );
}

#[test]
fn handshake_seeds_and_regressions() {
    replay("handshake", handshake::check);
}

#[test]
fn frame_seeds_and_regressions() {
    replay("frame", frame::check);
}

#[test]
fn connection_seeds_and_regressions() {
    replay("connection", connection::check);
}

#[test]
fn inflate_seeds_and_regressions() {
    replay("inflate", inflate::check);
}

#[test]
fn offers_seeds_and_regressions() {
    replay("offers", offers::check);
}

#[test]
fn tls_seeds_and_regressions() {
    replay("tls", tls::check);
}

#[test]
fn tls_session_seeds_and_regressions() {
    replay("tls_session", tls_session::check);
}

#[test]
fn upgrade_differential_seeds_and_regressions() {
    replay("upgrade_differential", upgrade_differential::check);
}

#[test]
fn client_seeds_and_regressions() {
    replay("client", client::check);
}

#[test]
fn client_session_seeds_and_regressions() {
    replay("client_session", client_session::check);
}

#[test]
fn deflate_connection_seeds_and_regressions() {
    replay("deflate_connection", deflate_connection::check);
}

#[test]
fn driver_seeds_and_regressions() {
    replay("driver", driver::check);
}

#[test]
fn tls_seeds_reach_the_handshake() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/tls");
    let read = |name: &str| fs::read(seeds.join(name)).unwrap();
    // A real ClientHello, whole or a byte at a time, gets the server's first flight.
    for seed in ["client-hello-tls13", "client-hello-tls12"] {
        let outcome = tls::run(&read(seed)).unwrap();
        assert!(outcome.error.is_none(), "{seed}: {:?}", outcome.error);
        assert!(outcome.written > 100, "{seed}: wrote {}", outcome.written);
    }
    // Plain HTTP on the TLS port, and a client offering only h2, fail with a TLS error.
    for seed in ["plain-http", "client-hello-alpn-h2-then-garbage"] {
        let outcome = tls::run(&read(seed)).unwrap();
        let error = outcome.error.expect(seed);
        assert!(
            sockeye_server::socket::tls_failure(&error).is_some(),
            "{seed}: {error}"
        );
    }
}
