//! The `Handle` from other threads: sends that report their outcome, closures run on a
//! connection's worker with its state, a bounded command channel, and broadcasts.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sockeye::proto::{Message, Request as UpgradeRequest};
use sockeye::server::{
    Accept, BackpressurePolicy, ConnId, HandleError, Handler, Outbox, Reject, SendOutcome,
};
use sockeye_tests::client::{Client, OwnedEvent, TIMEOUT, start, test_config};

/// Counts the messages of each connection, tells the test each id, and on the text "block"
/// holds its worker until the test says go.
#[derive(Clone)]
struct Counter {
    ids: Sender<ConnId>,
    gate: Arc<Mutex<Receiver<()>>>,
}

impl Handler for Counter {
    /// Messages received.
    type Conn = u64;

    fn on_upgrade(&mut self, _: &UpgradeRequest<'_>, _: &mut Accept<'_>) -> Result<u64, Reject> {
        Ok(0)
    }

    fn on_open(&mut self, _: &mut u64, out: &mut Outbox<'_>) {
        let _ = self.ids.send(out.id());
    }

    fn on_message(&mut self, count: &mut u64, msg: Message<'_>, _: &mut Outbox<'_>) {
        *count += 1;
        if msg == Message::Text("block") {
            let _ = self.gate.lock().unwrap().recv_timeout(TIMEOUT);
        }
    }
}

fn counter() -> (Counter, Receiver<ConnId>, Sender<()>) {
    let (ids_tx, ids) = mpsc::channel();
    let (go, gate) = mpsc::channel();
    let counter = Counter {
        ids: ids_tx,
        gate: Arc::new(Mutex::new(gate)),
    };
    (counter, ids, go)
}

#[test]
fn tracked_sends_report_queued_refused_dropped_and_gone() {
    let mut config = test_config();
    config.backpressure.limit = 64 << 10;
    config.backpressure.high_water = 1 << 20;
    let (handler, ids, _go) = counter();
    let (running, addr) = start(config.clone(), handler.clone());
    let handle = running.handle();
    let mut client = Client::connect(addr);
    let id = ids.recv_timeout(TIMEOUT).unwrap();
    let wait = |r: sockeye::server::Receipt| r.wait_timeout(TIMEOUT).expect("run in time");

    let hello = handle.send_tracked(id, Message::Text("hello")).unwrap();
    assert_eq!(wait(hello), SendOutcome::Queued);
    assert_eq!(client.recv_text(), "hello");
    let long = handle.send_tracked(id, Message::Ping(&[0; 126])).unwrap();
    assert_eq!(wait(long), SendOutcome::ControlTooLong);

    // The client stops reading: sends fill the socket, then the queue, then are refused.
    let big = vec![7u8; 32 << 10];
    let mut outcomes = Vec::new();
    for _ in 0..1000 {
        let receipt = handle.send_tracked(id, Message::Binary(&big)).unwrap();
        let outcome = wait(receipt);
        outcomes.push(outcome);
        if outcome != SendOutcome::Queued {
            break;
        }
    }
    assert_eq!(
        outcomes.last(),
        Some(&SendOutcome::Backpressure),
        "{outcomes:?}"
    );

    drop(client);
    // Once the connection is gone, a send reaches nobody, and says so.
    let gone = loop {
        let outcome = wait(handle.send_tracked(id, Message::Text("x")).unwrap());
        if outcome == SendOutcome::NoConnection {
            break outcome;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(gone, SendOutcome::NoConnection);
    handle.shutdown();
    running.join().expect("no worker died");

    // Policy Drop: dropped sends say so.
    config.backpressure.policy = BackpressurePolicy::Drop;
    let (handler, ids, _go) = counter();
    let (running, addr) = start(config, handler);
    let handle = running.handle();
    let _client = Client::connect(addr);
    let id = ids.recv_timeout(TIMEOUT).unwrap();
    let last = (0..1000)
        .map(|_| wait(handle.send_tracked(id, Message::Binary(&big)).unwrap()))
        .find(|outcome| *outcome != SendOutcome::Queued);
    assert_eq!(last, Some(SendOutcome::Dropped));
    handle.shutdown();
    running.join().expect("no worker died");
}

#[test]
fn a_closure_runs_on_the_worker_with_the_connections_state() {
    let (handler, ids, _go) = counter();
    let (running, addr) = start(test_config(), handler);
    let handle = running.handle();
    let mut client = Client::connect(addr);
    let id = ids.recv_timeout(TIMEOUT).unwrap();
    for text in ["a", "b", "c"] {
        client.send(Message::Text(text)).unwrap();
    }
    client.sync();
    let (tx, rx) = mpsc::channel();
    handle
        .with_conn(id, move |count: &mut u64, out: &mut Outbox<'_>| {
            let reply = format!("you sent {count}");
            let sent = out.send(Message::Text(&reply));
            let _ = tx.send((*count, out.buffered_amount(), sent));
        })
        .unwrap();
    let (count, _buffered, sent) = rx.recv_timeout(TIMEOUT).unwrap();
    assert_eq!((count, sent), (3, Ok(())));
    assert_eq!(client.recv_text(), "you sent 3");

    // For a connection that is gone the closure is dropped unrun: its sender goes with it.
    client.close(1000).unwrap();
    assert_eq!(
        client.recv().unwrap(),
        OwnedEvent::Close(Some(1000), String::new())
    );
    client.expect_eof().unwrap();
    // The worker ends the connection once the close handshake is done (published each turn).
    let deadline = std::time::Instant::now() + TIMEOUT;
    while handle.stats().connections_open > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the connection never ended"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let (probe_tx, probe_rx) = mpsc::channel::<u64>();
    handle
        .with_conn(id, move |count: &mut u64, _: &mut Outbox<'_>| {
            let _ = probe_tx.send(*count);
        })
        .unwrap();
    assert_eq!(
        probe_rx.recv_timeout(TIMEOUT),
        Err(mpsc::RecvTimeoutError::Disconnected),
        "dropped unrun"
    );
    handle.shutdown();
    running.join().expect("no worker died");
}

#[test]
fn a_full_command_channel_refuses_at_once_and_the_worker_catches_up() {
    let mut config = test_config();
    config.workers = 1;
    config.command_queue = 8;
    let (handler, ids, go) = counter();
    let (running, addr) = start(config, handler);
    let handle = running.handle();
    let mut client = Client::connect(addr);
    let id = ids.recv_timeout(TIMEOUT).unwrap();
    // The worker is held inside a callback: nothing drains its channel.
    client.send(Message::Text("block")).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut sent = 0;
    let refused = loop {
        match handle.send(id, Message::Text("queued")) {
            Ok(()) => sent += 1,
            Err(err) => break err,
        }
        assert!(sent <= 8, "the channel holds 8");
    };
    assert_eq!(refused, HandleError::Full);
    assert_eq!(sent, 8);
    go.send(()).unwrap();
    for _ in 0..sent {
        assert_eq!(client.recv_text(), "queued");
    }
    handle.send(id, Message::Text("again")).unwrap();
    assert_eq!(client.recv_text(), "again");
    handle.shutdown();
    running.join().expect("no worker died");
}
