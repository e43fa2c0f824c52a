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
