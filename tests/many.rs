//! Many concurrent connections over real loopback sockets: every one upgrades and echoes.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sockeye::proto::{Message, Request as UpgradeRequest};
use sockeye::server::{Accept, Handler, Outbox, Reject};
use sockeye_tests::client::{
    Client, Echo, Pending, Request, TIMEOUT, join_within, start, test_config,
};

/// Connections open at once (each takes two descriptors in this process: client and server).
const CONNECTIONS: usize = 1_000;

/// More connections than one accept turn takes (256 per listener).
const BURST: usize = 300;

/// The soft limit on open files, from `/proc/self/limits` (unknown elsewhere).
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[test]
fn a_thousand_concurrent_connections_each_echo() {
    let mut count = CONNECTIONS;
    if let Some(limit) = open_files_limit() {
        let fits = limit.saturating_sub(64) / 2;
        if fits < count {
            eprintln!("open-file limit {limit}: testing {fits} connections instead of {count}");
            count = fits;
        }
    }
    let mut config = test_config();
    config.workers = 2;
    let (running, addr) = start(config, Echo);
    let handle = running.handle();

    // Every request is written before any answer is read: the workers see a burst of
    // connections (more than one accept turn's worth) and upgrade them all.
    let pending: Vec<Pending> = (0..count)
        .map(|i| Pending::send(addr, &Request::default()).unwrap_or_else(|e| panic!("{i}: {e}")))
        .collect();
    let mut clients: Vec<Client> = pending
        .into_iter()
        .enumerate()
        .map(|(i, p)| p.finish().unwrap_or_else(|e| panic!("upgrade {i}: {e}")))
        .collect();
    for (i, client) in clients.iter_mut().enumerate() {
        client
            .send(Message::Text(&format!("hello from {i}")))
            .unwrap();
    }
    for (i, client) in clients.iter_mut().enumerate() {
        assert_eq!(client.recv_text(), format!("hello from {i}"));
    }
    // Every echo left in a loop turn after the one that upgraded its connection, so every
    // upgrade is counted by now.
    let stats = handle.stats();
    assert_eq!(stats.upgraded, count as u64);
    assert_eq!(stats.connections_open, count as u64);
    assert_eq!(stats.messages_in, count as u64);
    let per_worker = handle.worker_stats();
    assert_eq!(per_worker.len(), 2);

    drop(clients);
    handle.shutdown();
    join_within(running, Duration::from_secs(5));
}

/// Connections of the ten-thousand test. The clients live in a child process (this test binary
/// run again for [`child_clients`]): both ends in one process would pass the usual 20 000
/// open-file limit.
const MANY: usize = 10_000;

/// Where the child finds the server.
const ADDR_VAR: &str = "SOCKEYE_MANY_ADDR";

#[test]
fn ten_thousand_connections_from_another_process() {
    let mut config = test_config();
    config.workers = 2;
    let (running, addr) = start(config, Echo);
    let handle = running.handle();
    let exe = std::env::current_exe().expect("this test binary");
    let mut child = std::process::Command::new(exe)
        .args([
            "child_clients",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ADDR_VAR, addr.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the client process");
    let stdout = child.stdout.take().expect("child stdout");
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines_tx.send(line);
        }
    });
    let ready = loop {
        match lines.recv_timeout(Duration::from_secs(120)) {
            // The harness prints `test child_clients ... ` on the same line first.
            Ok(line) if line.contains("READY ") => break true,
            Ok(_) => {}
            Err(_) => break false,
        }
    };
    let stats = handle.stats();
    // Closing the child's stdin lets it drop its connections and exit.
    drop(child.stdin.take());
    let status = child.wait().expect("wait for the client process");
    assert!(ready, "the client process did not open {MANY} connections");
    assert!(status.success(), "the client process failed: {status}");
    assert_eq!(stats.upgraded, MANY as u64);
    assert_eq!(stats.connections_open, MANY as u64);
    assert_eq!(stats.messages_in, MANY as u64);
    handle.shutdown();
    join_within(running, Duration::from_secs(10));
}

/// The client side of [`ten_thousand_connections_from_another_process`], run only by it.
#[test]
#[ignore = "the client process of ten_thousand_connections_from_another_process"]
fn child_clients() {
    let addr = std::env::var(ADDR_VAR)
        .expect("run by ten_thousand_connections_from_another_process")
        .parse()
        .expect("an address");
    let mut clients = Vec::with_capacity(MANY);
    for chunk in 0..MANY.div_ceil(1000) {
        let pending: Vec<Pending> = (0..1000.min(MANY - chunk * 1000))
            .map(|i| {
                Pending::send(addr, &Request::default()).unwrap_or_else(|e| panic!("{i}: {e}"))
            })
            .collect();
        for (i, p) in pending.into_iter().enumerate() {
            clients.push(p.finish().unwrap_or_else(|e| panic!("upgrade {i}: {e}")));
        }
    }
    for (i, client) in clients.iter_mut().enumerate() {
        client.send(Message::Text(&format!("{i}"))).unwrap();
    }
    for (i, client) in clients.iter_mut().enumerate() {
        assert_eq!(client.recv_text(), format!("{i}"));
    }
    // A ping round trip on every connection: each worker has finished (and published the
    // counters of) the turns that handled its echoes by the time the parent reads them.
    for client in &mut clients {
        client.sync();
    }
    println!("READY {}", clients.len());
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

/// Echoes, except that the text "hold" keeps the worker inside the handler until the test lets
/// it go (bounded by [`TIMEOUT`]).
#[derive(Debug, Clone)]
struct Gate {
    entered: Sender<()>,
    release: Arc<Mutex<Receiver<()>>>,
}

impl Handler for Gate {
    type Conn = ();

    fn on_upgrade(
        &mut self,
        _req: &UpgradeRequest<'_>,
        _accept: &mut Accept<'_>,
    ) -> Result<(), Reject> {
        Ok(())
    }

    fn on_message(&mut self, _conn: &mut (), msg: Message<'_>, out: &mut Outbox<'_>) {
        if msg == Message::Text("hold") {
            let _ = self.entered.send(());
            let _ = self.release.lock().unwrap().recv_timeout(TIMEOUT);
        }
        let _ = out.send(msg);
    }
}

#[test]
fn a_burst_larger_than_one_accept_turn_is_all_served() {
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let gate = Gate {
        entered: entered_tx,
        release: Arc::new(Mutex::new(release_rx)),
    };
    let (running, addr) = start(test_config(), gate);
    let handle = running.handle();
    let mut holder = Client::connect(addr);
    holder.send(Message::Text("hold")).unwrap();
    entered.recv_timeout(TIMEOUT).expect("the worker is held");

    // The kernel completes these handshakes and queues them in the backlog while the worker
    // is busy: its next accept turn finds them all at once, with one readiness edge.
    let pending: Vec<Pending> = (0..BURST)
        .map(|i| Pending::send(addr, &Request::default()).unwrap_or_else(|e| panic!("{i}: {e}")))
        .collect();
    release.send(()).unwrap();
    assert_eq!(holder.recv_text(), "hold");
    let mut clients: Vec<Client> = pending
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            p.finish()
                .unwrap_or_else(|e| panic!("upgrade {i} of the burst: {e}"))
        })
        .collect();
    for client in &mut clients[BURST - 3..] {
        client.send(Message::Binary(b"late")).unwrap();
        assert_eq!(
            client.recv().unwrap(),
            sockeye_tests::client::OwnedEvent::Binary(b"late".to_vec())
        );
    }
    assert_eq!(handle.stats().upgraded, BURST as u64 + 1);
    drop((holder, clients));
    handle.shutdown();
    join_within(running, Duration::from_secs(5));
}
