//! A callback is a fault boundary: a panic in the application's code for one connection
//! closes that connection with 1011 and counts it; the worker, and every other connection on
//! it, goes on.

use std::sync::mpsc;

use sockeye::proto::handshake::Head;
use sockeye::proto::{Message, Request as UpgradeRequest};
use sockeye::server::{Accept, CloseReason, Handler, HttpResponse, Outbox, Reject};
use sockeye_tests::client::{
    Client, OwnedEvent, Pending, Request, http_exchange, start, test_config,
};

/// Echoes, but panics on the text "boom", in `on_upgrade` for the path `/boom`, and in
/// `on_http`; reports every `on_close`.
#[derive(Debug, Clone)]
struct Fragile(mpsc::Sender<String>);

impl Handler for Fragile {
    type Conn = ();

    fn on_upgrade(&mut self, req: &UpgradeRequest<'_>, _: &mut Accept<'_>) -> Result<(), Reject> {
        assert!(req.path() != "/boom", "a bug in on_upgrade");
        Ok(())
    }

    fn on_message(&mut self, _: &mut (), msg: Message<'_>, out: &mut Outbox<'_>) {
        assert!(msg != Message::Text("boom"), "a bug in on_message");
        let _ = out.send(msg);
    }

    fn on_close(&mut self, _: (), why: CloseReason<'_>) {
        let _ = self.0.send(format!("{why:?}"));
    }

    fn on_http(&mut self, _: &Head<'_>, _: &sockeye::server::Handle) -> HttpResponse {
        panic!("a bug in on_http");
    }
}

#[test]
fn a_panic_in_a_callback_costs_its_connection_only() {
    let mut config = test_config();
    config.workers = 1;
    let (tx, closes) = mpsc::channel();
    let (running, addr) = start(config, Fragile(tx));
    let handle = running.handle();
    let mut healthy = Client::connect(addr);
    let mut victim = Client::connect(addr);

    victim.send(Message::Text("boom")).unwrap();
    assert_eq!(
        victim.recv().unwrap(),
        OwnedEvent::Close(Some(1011), "internal error".into())
    );
    assert!(victim.send_owed().unwrap());
    victim.expect_eof().unwrap();
    assert_eq!(closes.recv().unwrap(), "HandlerPanic");

    // The same worker serves the other connection, and new ones.
    healthy.send(Message::Text("still here")).unwrap();
    assert_eq!(healthy.recv_text(), "still here");
    let mut late = Client::connect(addr);
    late.send(Message::Text("hello")).unwrap();
    assert_eq!(late.recv_text(), "hello");

    // A panic in on_upgrade refuses that upgrade with 500; in on_http, answers 500.
    let boom = Request {
        path: "/boom".into(),
        ..Request::default()
    };
    let refused = Pending::send(addr, &boom).unwrap().finish().unwrap_err();
    assert!(refused.to_string().contains("500"), "{refused}");
    let answer = http_exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(answer.status, 500);

    healthy.sync();
    assert_eq!(handle.stats().handler_panics, 3);
    drop((healthy, late));
    handle.shutdown();
    running.join().expect("no worker died");
}

#[test]
fn a_dead_worker_is_reported_by_join_and_its_peers_serve_on() {
    let mut config = test_config();
    config.workers = 2;
    let (probe, events) = sockeye_tests::client::Probe::new();
    let (running, addr) = start(config, probe);
    let handle = running.handle();
    // Clients until both workers have some (the kernel spreads them).
    let mut clients: Vec<(usize, Client)> = Vec::new();
    for _ in 0..200 {
        let client = Client::connect(addr);
        let worker = events.next_open().worker();
        clients.push((worker, client));
        let on = |w| clients.iter().filter(|(x, _)| *x == w).count();
        if on(0) >= 2 && on(1) >= 2 {
            break;
        }
    }
    assert!(clients.iter().any(|(w, _)| *w == 0) && clients.iter().any(|(w, _)| *w == 1));
    handle.inject_worker_panic(0).unwrap();
    for (worker, client) in &mut clients {
        if *worker == 0 {
            // The dead worker's connections end with it.
            assert!(client.recv().is_err(), "a connection of the dead worker");
        }
    }
    let alive = clients.iter().filter(|(w, _)| *w == 1).count() as u64;
    // Broadcast still reaches every live worker.
    handle.broadcast(Message::Text("still here")).unwrap();
    for (worker, client) in &mut clients {
        if *worker == 1 {
            assert_eq!(client.recv_text(), "still here");
            client.sync();
        }
    }
    // The dead worker's count drops to 0 once its thread has unwound.
    let deadline = std::time::Instant::now() + sockeye_tests::client::TIMEOUT;
    while handle.worker_stats()[0].connections_open > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the dead worker still counts"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(handle.stats().connections_open, alive);
    drop(clients);
    handle.shutdown();
    let err = running.join().expect_err("worker 0 died");
    assert_eq!(err.workers.len(), 1);
    assert_eq!(err.workers[0].0, 0);
    assert!(err.workers[0].1.contains("injected fault"), "{err}");
}
