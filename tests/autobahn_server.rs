//! The Autobahn TestSuite's cases (1.* … 13.*, through kosoku) against the engine serving the
//! echo handler of `sockeye serve`, with permessage-deflate on. Every case must be OK or
//! INFORMATIONAL and match `tests/autobahn/expected-server.json`.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use sockeye::deflate::DeflateConfig;
use sockeye::server::{Server, ServerConfig};
use sockeye_tests::autobahn::{
    self, check, config, group_table, number, read_reports, run_bounded, strings,
};
use sockeye_tests::interop::{DemoEcho, found};

#[test]
fn autobahn_fuzzing_client_against_the_server() {
    let Some(kosoku) = found(autobahn::kosoku()) else {
        return;
    };
    let cfg = config();
    let mut server_config = ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    server_config.workers = number(&cfg, &["server", "workers"]) as usize;
    // Every limit at the engine's default.
    let mut deflate = DeflateConfig::default();
    deflate.threshold = number(&cfg, &["server", "deflate_threshold"]) as usize;
    server_config.deflate = Some(deflate);
    let running = Server::bind(server_config, DemoEcho)
        .expect("bind")
        .spawn()
        .expect("spawn");
    let addr = running.local_addrs()[0];

    let reports_dir = autobahn::reports_dir("server");
    let mut command = Command::new(kosoku);
    command
        .arg(addr.to_string())
        .arg("-p")
        .arg(number(&cfg, &["parallelism"]).to_string())
        .arg("-o")
        .arg(&reports_dir);
    for case in strings(&cfg, "include") {
        command.arg("-i").arg(case);
    }
    for case in strings(&cfg, "exclude") {
        command.arg("-x").arg(case);
    }
    let started = Instant::now();
    let limit = Duration::from_secs(number(&cfg, &["timeout_secs"]));
    let output = run_bounded(command, limit);
    let elapsed = started.elapsed();
    running.handle().shutdown();
    running.join().expect("no worker died");

    let reports = read_reports(&reports_dir);
    println!(
        "Autobahn, server role: {} cases in {:.0} s\n{}",
        reports.len(),
        elapsed.as_secs_f64(),
        group_table(&reports)
    );
    if let Err(differences) = check(&reports, "expected-server.json") {
        panic!("{differences}\nkosoku's output ends with:\n{output}");
    }
}
