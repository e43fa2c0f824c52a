//! The Autobahn TestSuite's cases against sockeye's client role: kosoku's fuzzing server drives
//! a client on `Connection::client` with permessage-deflate (the role `sockeye load` uses) that
//! echoes every message. Every case must be OK or INFORMATIONAL and match
//! `tests/autobahn/expected-client.json`.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sockeye_tests::autobahn::{self, check, config, group_table, number, read_reports};
use sockeye_tests::case_client::CaseClient;
use sockeye_tests::interop::found;

const AGENT: &str = "sockeye";

#[test]
fn autobahn_fuzzing_server_against_the_client() {
    let Some(kosoku) = found(autobahn::kosoku()) else {
        return;
    };
    let cfg = config();
    let limit = Duration::from_secs(number(&cfg, &["timeout_secs"]));
    let reports_dir = autobahn::reports_dir("client");
    let mut child = Command::new(kosoku)
        .args(["-m", "fuzzingserver", "127.0.0.1:0", "-o"])
        .arg(&reports_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kosoku");
    let (lines_tx, lines) = mpsc::channel::<String>();
    for pipe in [
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = lines_tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let mut output = Vec::new();
    let addr = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("kosoku announces its address");
        output.push(line.clone());
        if let Some(url) = line.split("ws://").nth(1) {
            break url.trim().parse::<SocketAddr>().expect("kosoku's address");
        }
    };

    let started = Instant::now();
    let deadline = started + limit;
    let case_limit = Duration::from_secs(60);
    let count = CaseClient::connect(addr, "/getCaseCount", 1)
        .and_then(|c| c.run(false, case_limit))
        .expect("getCaseCount")
        .texts
        .first()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .expect("a case count");
    for case in 1..=count {
        assert!(Instant::now() < deadline, "the suite ran past {limit:?}");
        let path = format!("/runCase?case={case}&agent={AGENT}");
        // A case may refuse the upgrade or break the connection on purpose: the report says
        // whether that was right.
        if let Ok(client) = CaseClient::connect(addr, &path, case) {
            let _ = client.run(true, case_limit);
        }
    }
    let path = format!("/updateReports?agent={AGENT}");
    if let Ok(client) = CaseClient::connect(addr, &path, 0) {
        let _ = client.run(false, case_limit);
    }
    let exit_deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait for kosoku").is_none() {
        if Instant::now() >= exit_deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kosoku did not finish after the last case");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    output.extend(lines.try_iter());
    let elapsed = started.elapsed();

    let reports = read_reports(&reports_dir);
    println!(
        "Autobahn, client role: {count} cases announced, {} reported in {:.0} s\n{}",
        reports.len(),
        elapsed.as_secs_f64(),
        group_table(&reports)
    );
    if let Err(differences) = check(&reports, "expected-client.json") {
        let tail = output[output.len().saturating_sub(20)..].join("\n");
        panic!("{differences}\nkosoku's output ends with:\n{tail}");
    }
}
