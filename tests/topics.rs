//! Topics over real sockets, across two workers: who gets a publish, in what order, what a
//! tracked publish reports, latest-value conflation behind a full socket, compression shared
//! by the subscribers, and a closed connection leaving its topics.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sockeye::proto::Message;
use sockeye::server::{Accept, ConnId, Handler, Outbox, Reject, Running, SlowConsumer, TopicError};
use sockeye_tests::case_client::CaseClient;
use sockeye_tests::client::{Client, join_within, start, test_config};

/// Subscribes on `sub PATTERN` and `conflate PATTERN` (answering `ok`), publishes on
/// `pub TOPIC PAYLOAD`; records the ids of the connections it opened.
#[derive(Clone, Default)]
struct PubSub {
    opened: Arc<Mutex<Vec<ConnId>>>,
}

impl Handler for PubSub {
    type Conn = ();

    fn on_upgrade(
        &mut self,
        _: &sockeye::proto::Request<'_>,
        _: &mut Accept<'_>,
    ) -> Result<(), Reject> {
        Ok(())
    }

    fn on_open(&mut self, _: &mut (), out: &mut Outbox<'_>) {
        self.opened.lock().unwrap().push(out.id());
    }

    fn on_message(&mut self, _: &mut (), msg: Message<'_>, out: &mut Outbox<'_>) {
        let Message::Text(text) = msg else { return };
        let mut parts = text.splitn(3, ' ');
        let reply = match (parts.next(), parts.next(), parts.next()) {
            (Some("sub"), Some(pattern), None) => out.subscribe(pattern).map(|_| "ok"),
            (Some("conflate"), Some(pattern), None) => out
                .subscribe_with(pattern, SlowConsumer::Conflate)
                .map(|_| "ok"),
            (Some("pub"), Some(topic), Some(payload)) => {
                out.publish(topic, Message::Text(payload)).unwrap();
                return;
            }
            _ => Ok("?"),
        };
        let reply = reply.unwrap_or("bad topic");
        let _ = out.send(Message::Text(reply));
    }
}

/// A server of two workers, and `n` clients spread over both, each subscribed to `pattern`.
fn two_workers(n: usize, pattern: &str) -> (Running, Vec<Client>, Vec<ConnId>) {
    let mut config = test_config();
    config.workers = 2;
    let handler = PubSub::default();
    let opened = Arc::clone(&handler.opened);
    let (running, addr) = start(config, handler);
    let mut clients = Vec::new();
    for _ in 0..n {
        let mut client = Client::connect(addr);
        client
            .send(Message::Text(&format!("sub {pattern}")))
            .unwrap();
        assert_eq!(client.recv_text(), "ok");
        clients.push(client);
    }
    let ids = opened.lock().unwrap().clone();
    assert_eq!(ids.len(), n);
    (running, clients, ids)
}

fn stop(running: Running) {
    running.handle().shutdown();
    join_within(running, Duration::from_secs(10));
}

#[test]
fn a_publish_reaches_the_subscribers_of_every_worker_and_reports_it() {
    let (running, mut clients, ids) = two_workers(8, "prices.*");
    let workers: std::collections::BTreeSet<usize> = ids.iter().map(|id| id.worker()).collect();
    assert_eq!(workers.len(), 2, "both workers have subscribers: {ids:?}");
    let handle = running.handle();
    let report = handle
        .publish_tracked("prices.EUR", Message::Text("1.08"))
        .unwrap()
        .wait();
    assert_eq!(report.delivered, 8, "{report:?}");
    assert_eq!(report.workers_missed, 0);
    for client in &mut clients {
        assert_eq!(client.recv_text(), "1.08");
    }
    let report = handle
        .publish_tracked("news.EUR", Message::Text("nobody"))
        .unwrap()
        .wait();
    assert_eq!(report.delivered, 0);
    // By id, from another thread: a wildcard subscription for one client only.
    handle
        .subscribe(ids[3], "news.>", SlowConsumer::Drop)
        .unwrap();
    assert!(matches!(
        handle.subscribe(ids[3], "news.>.x", SlowConsumer::Drop),
        Err(sockeye::server::SubscribeError::Topic(
            TopicError::BadWildcard
        ))
    ));
    let mut delivered = 0;
    for _ in 0..100 {
        // The subscribe runs on the client's worker: retry until it has.
        let report = handle
            .publish_tracked("news.a.b", Message::Text("headline"))
            .unwrap()
            .wait();
        delivered = report.delivered;
        if delivered == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(delivered, 1);
    // Clients connect one after another, so `ids` is in the clients' order.
    assert_eq!(clients[3].recv_text(), "headline");
    assert!(
        handle.publish("a.*", Message::Text("x")).is_err(),
        "no wildcard in a publish"
    );
    stop(running);
}

#[test]
fn one_publishers_messages_and_sends_arrive_in_order_at_every_subscriber() {
    let (running, mut clients, ids) = two_workers(6, "seq");
    let handle = running.handle();
    let direct = ids[0];
    for i in 0..1000 {
        let text = format!("{i}");
        handle.publish("seq", Message::Text(&text)).unwrap();
        if i % 100 == 0 {
            handle
                .send(direct, Message::Text(&format!("direct {i}")))
                .unwrap();
        }
    }
    for (client, id) in clients.iter_mut().zip(&ids) {
        for i in 0..1000 {
            assert_eq!(client.recv_text(), format!("{i}"), "{id:?}");
            if i % 100 == 0 && *id == direct {
                assert_eq!(client.recv_text(), format!("direct {i}"));
            }
        }
    }
    stop(running);
}

#[test]
fn a_callback_publish_reaches_every_worker() {
    let (running, mut clients, _) = two_workers(4, "room");
    clients[0].send(Message::Text("pub room hello")).unwrap();
    for client in &mut clients {
        assert_eq!(client.recv_text(), "hello");
    }
    stop(running);
}

#[test]
fn a_conflating_subscriber_behind_a_full_socket_gets_the_newest_message() {
    let mut config = test_config();
    config.workers = 2;
    let (running, addr) = start(config, PubSub::default());
    let mut slow = Client::connect(addr);
    slow.send(Message::Text("conflate quotes")).unwrap();
    assert_eq!(slow.recv_text(), "ok");
    let handle = running.handle();
    // 400 messages of 64 KiB: far more than the socket buffers hold while the client does not
    // read.
    let filler = "x".repeat(64 << 10);
    let mut conflated = 0;
    for i in 0..400 {
        let text = format!("{i:04} {filler}");
        let report = handle
            .publish_tracked("quotes", Message::Text(&text))
            .unwrap()
            .wait();
        assert_eq!(report.delivered + report.conflated, 1, "{report:?}");
        conflated += report.conflated;
    }
    assert!(conflated > 0, "the socket never filled");
    let mut seen = Vec::new();
    while seen.last() != Some(&399) {
        let text = slow.recv_text();
        seen.push(text[..4].parse::<u32>().unwrap());
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order: {seen:?}");
    println!("{} of 400 arrived, {conflated} conflated", seen.len());
    assert!(seen.len() < 400, "conflated: {} of 400 arrived", seen.len());
    stop(running);
}

fn json_like(seq: usize) -> String {
    (0..40)
        .map(|i| format!("{{\"seq\":{seq},\"sym\":\"S{i}\",\"bid\":{}.25}}", 100 + i))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn compressed_publishes_are_shared_and_contexts_stay_in_step() {
    let mut config = test_config();
    let mut deflate = sockeye::deflate::DeflateConfig::default();
    deflate.threshold = 0;
    config.deflate = Some(deflate);
    let (running, addr) = start(config, PubSub::default());
    let mut deflated: Vec<CaseClient> = (1..=2)
        .map(|seed| CaseClient::connect(addr, "/", seed).expect("upgrade with deflate"))
        .collect();
    assert!(deflated.iter().all(CaseClient::deflate));
    for client in &mut deflated {
        client.send(Message::Text("sub book")).unwrap();
        assert_eq!(client.recv_message().unwrap().1, b"ok");
    }
    for round in 1..=2 {
        let text = json_like(round);
        running
            .handle()
            .publish("book", Message::Text(&text))
            .unwrap();
        let received: Vec<(Vec<u8>, Vec<u8>)> = deflated
            .iter_mut()
            .map(|c| c.recv_message().expect("the publish"))
            .collect();
        for (wire, payload) in &received {
            assert_eq!(payload, text.as_bytes());
            assert_eq!(wire[0] & 0x40, 0x40, "RSV1: compressed");
        }
        assert_eq!(received[0].0, received[1].0, "one compressed payload");
        // Their own compressor, reset after the shared payload, still agrees with the peer.
        for client in &mut deflated {
            client.send(Message::Text("sub book")).unwrap();
            assert_eq!(client.recv_message().unwrap().1, b"ok");
        }
    }
    stop(running);
}

#[test]
fn a_closed_connection_leaves_its_topics() {
    let (running, mut clients, _) = two_workers(2, "t.>");
    let handle = running.handle();
    clients[0].close(1000).unwrap();
    drop(clients.remove(0));
    let mut report = None;
    for _ in 0..200 {
        let r = handle
            .publish_tracked("t.x", Message::Text("still here?"))
            .unwrap()
            .wait();
        // A subscriber that is closing still counts, as `closed`, until it is gone.
        if r.delivered == 1 && r.closed == 0 {
            report = Some(r);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(report.is_some(), "the closed subscriber left");
    let mut got = 0;
    while got < 1 {
        if clients[0].recv_text() == "still here?" {
            got += 1;
        }
    }
    // Counters are published at the end of each loop turn: wait for the one that removed it.
    let mut subscriptions = 0;
    for _ in 0..200 {
        subscriptions = handle.stats().subscriptions;
        if subscriptions == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(subscriptions, 1);
    stop(running);
}
