//! The Autobahn TestSuite's cases against sockeye's client: kosoku's fuzzing server drives
//! `sockeye-client` offering permessage-deflate, once through the blocking `WebSocket` and once
//! through the tokio `AsyncWebSocket`; each echoes every message. Every case must be OK or
//! INFORMATIONAL and match `tests/autobahn/expected-client.json`.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use sockeye_client::{AsyncWebSocket, DeflateConfig, Message, Options, WebSocket};
use sockeye_tests::autobahn::{self, check, config, group_table, number, read_reports};
use sockeye_tests::interop::found;

const AGENT: &str = "sockeye";

/// The longest one case may take.
const CASE_LIMIT: Duration = Duration::from_secs(60);

/// Which front end runs the cases.
#[derive(Debug, Clone, Copy)]
enum Front {
    Blocking,
    Async,
}

/// The options of every case: permessage-deflate offered with both client parameters (the
/// server may then ask for a smaller window or no context takeover: 13.2, 13.5, 13.6 do), and
/// every message compressed (see `tests/autobahn/config.json`).
fn options() -> Options {
    let mut deflate = DeflateConfig::default();
    deflate.threshold = 0;
    deflate.client_no_context_takeover = true;
    Options::default()
        .deflate(deflate)
        .handshake_timeout(CASE_LIMIT)
}

/// Runs one connection to `url`: every text and binary message is echoed when `echo`, else
/// kept; returns the texts kept. A refused upgrade or a broken connection ends it (the report
/// says whether that was right).
fn session(front: Front, runtime: &tokio::runtime::Runtime, url: &str, echo: bool) -> Vec<String> {
    let mut texts = Vec::new();
    match front {
        Front::Blocking => {
            let Ok(mut ws) = WebSocket::connect_with(url, &options()) else {
                return texts;
            };
            ws.set_read_timeout(Some(CASE_LIMIT));
            while let Ok(message) = ws.recv() {
                let reply = match message {
                    Message::Text(text) if !echo => {
                        texts.push(text);
                        continue;
                    }
                    Message::Text(_) | Message::Binary(_) => message,
                    _ => continue,
                };
                // A send refused after a close still lets the close arrive.
                let _ = ws.send(&reply);
            }
        }
        Front::Async => runtime.block_on(async {
            let Ok(mut ws) = AsyncWebSocket::connect_with(url, &options()).await else {
                return;
            };
            while let Ok(Some(Ok(message))) = tokio::time::timeout(CASE_LIMIT, ws.next()).await {
                let reply = match message {
                    Message::Text(text) if !echo => {
                        texts.push(text);
                        continue;
                    }
                    Message::Text(_) | Message::Binary(_) => message,
                    _ => continue,
                };
                let _ = ws.send(reply).await;
            }
        }),
    }
    texts
}

#[test]
fn autobahn_fuzzing_server_against_the_blocking_client() {
    run_suite(Front::Blocking, "client");
}

#[test]
fn autobahn_fuzzing_server_against_the_async_client() {
    run_suite(Front::Async, "client-async");
}

fn run_suite(front: Front, role: &str) {
    let Some(kosoku) = found(autobahn::kosoku()) else {
        return;
    };
    let cfg = config();
    let limit = Duration::from_secs(number(&cfg, &["timeout_secs"]));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let reports_dir = autobahn::reports_dir(role);
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
    let count = session(front, &runtime, &format!("ws://{addr}/getCaseCount"), false)
        .first()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .expect("a case count");
    for case in 1..=count {
        assert!(Instant::now() < deadline, "the suite ran past {limit:?}");
        let url = format!("ws://{addr}/runCase?case={case}&agent={AGENT}");
        session(front, &runtime, &url, true);
    }
    let url = format!("ws://{addr}/updateReports?agent={AGENT}");
    session(front, &runtime, &url, false);
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
        "Autobahn, client ({front:?}): {count} cases announced, {} reported in {:.0} s\n{}",
        reports.len(),
        elapsed.as_secs_f64(),
        group_table(&reports)
    );
    if let Err(differences) = check(&reports, "expected-client.json") {
        let tail = output[output.len().saturating_sub(20)..].join("\n");
        panic!("{differences}\nkosoku's output ends with:\n{tail}");
    }
}
