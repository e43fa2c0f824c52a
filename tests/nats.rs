//! Topics across nodes over a real NATS broker (Debian's `nats-server`, started by each test on
//! free ports): two and three nodes in this process, clients on each, publishes from each,
//! wildcards, interest following the subscribers, binary and foreign messages, and the broker
//! killed and restarted mid-stream. (Nodes as processes, one killed while its clients publish,
//! and nodes in network namespaces: `crates/sockeye-cli/tests/nats_nodes.rs`.)

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sockeye::proto::Message;
use sockeye::server::topics::Backplane;
use sockeye::server::{Accept, Handler, Outbox, PublishError, Reject, Running, Server};
use sockeye_nats::{Nats, NatsConfig, NatsStats};
use sockeye_tests::client::{Client, OwnedEvent, join_within, test_config};
use sockeye_tests::nats::Broker;

/// Generous: a busy 2-core machine runs the broker, the nodes and the clients.
const LIMIT: Duration = Duration::from_secs(30);

/// `sub PATTERN` and `unsub PATTERN` (answered `ok`), `pub TOPIC PAYLOAD`.
#[derive(Clone, Copy)]
struct PubSub;

impl Handler for PubSub {
    type Conn = ();

    fn on_upgrade(
        &mut self,
        _: &sockeye::proto::Request<'_>,
        _: &mut Accept<'_>,
    ) -> Result<(), Reject> {
        Ok(())
    }

    fn on_message(&mut self, _: &mut (), msg: Message<'_>, out: &mut Outbox<'_>) {
        let Message::Text(text) = msg else { return };
        let mut parts = text.splitn(3, ' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("sub"), Some(pattern), None) => {
                out.subscribe(pattern).unwrap();
                let _ = out.send(Message::Text("ok"));
            }
            (Some("unsub"), Some(pattern), None) => {
                out.unsubscribe(pattern);
                let _ = out.send(Message::Text("ok"));
            }
            (Some("pub"), Some(topic), Some(payload)) => {
                if let Err(e) = out.publish(topic, Message::Text(payload)) {
                    let _ = out.send(Message::Text(&format!("error {e}")));
                }
            }
            _ => {
                let _ = out.send(Message::Text("?"));
            }
        }
    }
}

/// A server joined to the broker.
struct Node {
    running: Running,
    addr: SocketAddr,
    nats: Arc<Nats>,
}

impl Node {
    /// Two workers, so that deliveries cross workers as well as nodes; connected.
    fn start(broker: &Broker) -> Node {
        let node = Node::spawn(NatsConfig::new(broker.url()).prefix("t"), 2);
        node.wait(|s| s.connects >= 1, "connected");
        node
    }

    /// Started, connected or not.
    fn spawn(nats: NatsConfig, workers: usize) -> Node {
        let mut config = test_config();
        config.workers = workers;
        let nats = Arc::new(Nats::new(nats).unwrap());
        let server = Server::bind(config, PubSub)
            .unwrap()
            .with_backplane(nats.clone());
        let running = server.spawn().unwrap();
        let addr = running.local_addrs()[0];
        Node {
            running,
            addr,
            nats,
        }
    }

    fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    /// Waits until the backplane's counters satisfy `ok`.
    fn wait(&self, ok: impl Fn(&NatsStats) -> bool, what: &str) {
        let deadline = Instant::now() + LIMIT;
        while !ok(&self.nats.stats()) {
            assert!(
                Instant::now() < deadline,
                "not {what} after {LIMIT:?}: {:?}",
                self.nats.stats()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn stop(self) {
        self.running.handle().shutdown();
        join_within(self.running, LIMIT);
    }
}

fn sub(client: &mut Client, pattern: &str) {
    client
        .send(Message::Text(&format!("sub {pattern}")))
        .unwrap();
    assert_eq!(client.recv_text(), "ok");
}

fn unsub(client: &mut Client, pattern: &str) {
    client
        .send(Message::Text(&format!("unsub {pattern}")))
        .unwrap();
    assert_eq!(client.recv_text(), "ok");
}

fn publish(client: &mut Client, topic: &str, payload: &str) {
    client
        .send(Message::Text(&format!("pub {topic} {payload}")))
        .unwrap();
}

/// The next `n` text messages.
fn texts(client: &mut Client, n: usize) -> Vec<String> {
    (0..n).map(|_| client.recv_text()).collect()
}

/// The next `n` text messages, as numbers.
fn numbers(client: &mut Client, n: usize) -> Vec<u64> {
    texts(client, n)
        .iter()
        .map(|t| t.parse().unwrap())
        .collect()
}

/// Fails if anything arrives within `quiet`.
fn nothing_more(client: &mut Client, quiet: Duration) {
    client.stream_mut().set_read_timeout(Some(quiet)).unwrap();
    match client.recv() {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!("expected nothing more, got {other:?}"),
    }
    client
        .stream_mut()
        .set_read_timeout(Some(sockeye_tests::client::TIMEOUT))
        .unwrap();
}

/// Each publisher's messages in its order, each once: `from` names the publishers, `n` each.
fn check_streams(got: &[String], from: &[&str], n: usize) {
    let mut next: HashMap<&str, usize> = from.iter().map(|p| (*p, 0)).collect();
    for text in got {
        let (who, seq) = text
            .rsplit_once('-')
            .unwrap_or_else(|| panic!("bad payload {text}"));
        let who = who.rsplit(' ').next().unwrap();
        let expected = next
            .get_mut(who)
            .unwrap_or_else(|| panic!("from nobody: {text}"));
        assert_eq!(
            seq.parse::<usize>().unwrap(),
            *expected,
            "order of {who} in {got:?}"
        );
        *expected += 1;
    }
    for (who, count) in next {
        assert_eq!(count, n, "messages of {who}");
    }
}

#[test]
fn two_nodes_carry_each_others_publishes_once() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let base = broker.subscriptions();
    let (a, b) = (Node::start(&broker), Node::start(&broker));
    let (mut a_pub, mut a_sub) = (a.client(), a.client());
    let (mut b_pub, mut b_sub, mut b_wild) = (b.client(), b.client(), b.client());
    sub(&mut a_sub, "room.1");
    sub(&mut b_sub, "room.1");
    // One connection with three overlapping subscriptions: the broker sends node B three
    // copies of each message on room.1; the connection gets one.
    for pattern in ["room.1", "room.*", ">"] {
        sub(&mut b_wild, pattern);
    }
    // A: room.1; B: room.1, room.*, > (one NATS subscription per pattern per node).
    broker.wait_subscriptions(base + 4, LIMIT);
    assert_eq!(a.nats.stats().subscriptions, 1);
    assert_eq!(b.nats.stats().subscriptions, 3);

    const N: usize = 50;
    for i in 0..N {
        publish(&mut a_pub, "room.1", &format!("a-{i}"));
        publish(&mut b_pub, "room.1", &format!("b-{i}"));
    }
    for (name, client) in [
        ("a_sub", &mut a_sub),
        ("b_sub", &mut b_sub),
        ("b_wild", &mut b_wild),
    ] {
        let got: Vec<String> = texts(client, 2 * N);
        check_streams(&got, &["a", "b"], N);
        nothing_more(client, Duration::from_millis(300));
        eprintln!("{name}: {} messages, each once, in order", got.len());
    }
    // A publish goes to the broker once per publish, never back to its own node.
    let n = N as u64;
    a.wait(
        |s| s.forwarded == n && s.received == n,
        "forwarded and received",
    );
    b.wait(
        |s| s.forwarded == n && s.received == n,
        "forwarded and received",
    );
    // B got three copies of each of A's messages and delivered one; A one copy of B's.
    b.wait(|s| s.overlapped == 2 * n, "overlapped");
    assert_eq!(a.nats.stats().overlapped, 0);
    a.stop();
    b.stop();
}

#[test]
fn binary_and_foreign_messages_cross_as_they_were() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let base = broker.subscriptions();
    let (a, b) = (Node::start(&broker), Node::start(&broker));
    let mut b_sub = b.client();
    sub(&mut b_sub, "feed.>");
    broker.wait_subscriptions(base + 1, LIMIT);
    // A binary publish from any thread of node A stays binary.
    let handle = a.running.handle();
    handle
        .publish("feed.bin", Message::Binary(&[0, 159, 146, 150, 255]))
        .unwrap();
    assert_eq!(
        b_sub.recv().unwrap(),
        OwnedEvent::Binary(vec![0, 159, 146, 150, 255])
    );
    // A plain NATS client's message: text when it is UTF-8, else binary.
    broker.publish_raw("t.feed.plain", "ünïcode".as_bytes());
    assert_eq!(b_sub.recv_text(), "ünïcode");
    broker.publish_raw("t.feed.raw", &[0xff, 0xfe]);
    assert_eq!(b_sub.recv().unwrap(), OwnedEvent::Binary(vec![0xff, 0xfe]));
    // A subject outside the prefix never reaches the node.
    broker.publish_raw("feed.x", b"elsewhere");
    nothing_more(&mut b_sub, Duration::from_millis(300));
    a.stop();
    b.stop();
}

#[test]
fn three_nodes_follow_their_subscribers_interest() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let base = broker.subscriptions();
    let nodes: Vec<Node> = (0..3).map(|_| Node::start(&broker)).collect();
    let mut publisher = nodes[0].client();
    let mut b_one = nodes[1].client();
    let mut c_all = nodes[2].client();
    sub(&mut b_one, "news.*");
    sub(&mut c_all, "news.>");
    broker.wait_subscriptions(base + 2, LIMIT);

    publish(&mut publisher, "news.x", "one");
    publish(&mut publisher, "news.x.y", "two");
    assert_eq!(b_one.recv_text(), "one");
    assert_eq!(texts(&mut c_all, 2), ["one", "two"]);

    // The last subscriber leaving takes the node's subscription off the broker; the first
    // coming back puts it on again.
    unsub(&mut c_all, "news.>");
    broker.wait_subscriptions(base + 1, LIMIT);
    nodes[2].wait(|s| s.subscriptions == 0, "unsubscribed");
    publish(&mut publisher, "news.z", "three");
    assert_eq!(b_one.recv_text(), "three");
    nothing_more(&mut c_all, Duration::from_millis(300));
    assert_eq!(
        nodes[2].nats.stats().received,
        2,
        "C got nothing after leaving"
    );

    sub(&mut c_all, "news.>");
    broker.wait_subscriptions(base + 2, LIMIT);
    publish(&mut publisher, "news.w", "four");
    assert_eq!(b_one.recv_text(), "four");
    assert_eq!(c_all.recv_text(), "four");

    // A closed connection leaves its topics: node B's interest ends with it.
    drop(b_one);
    broker.wait_subscriptions(base + 1, LIMIT);
    nodes[1].wait(|s| s.subscriptions == 0, "unsubscribed");
    // Publishes from every node reach C.
    let mut b_pub = nodes[1].client();
    let mut c_pub = nodes[2].client();
    publish(&mut b_pub, "news.b", "from b");
    assert_eq!(c_all.recv_text(), "from b");
    publish(&mut c_pub, "news.c", "from c");
    assert_eq!(c_all.recv_text(), "from c");
    nothing_more(&mut c_all, Duration::from_millis(300));
    for node in nodes {
        node.stop();
    }
}

#[test]
fn a_broker_restart_costs_the_messages_of_the_outage_only() {
    let Some(mut broker) = Broker::start() else {
        return;
    };
    let base = broker.subscriptions();
    let (a, b) = (Node::start(&broker), Node::start(&broker));
    let (mut a_sub, mut b_sub) = (a.client(), b.client());
    sub(&mut a_sub, "tick");
    sub(&mut b_sub, "tick");
    broker.wait_subscriptions(base + 2, LIMIT);
    let handle = a.running.handle();
    let mut seq = 0u64;
    let mut tick = |n: u64| {
        for _ in 0..n {
            handle
                .publish("tick", Message::Text(&seq.to_string()))
                .unwrap();
            seq += 1;
        }
    };

    // Before: everything reaches both nodes.
    tick(100);
    let before: Vec<String> = texts(&mut b_sub, 100);
    assert_eq!(before.last().map(String::as_str), Some("99"));

    // The broker dies: local delivery goes on, forwarding stops and is counted.
    broker.kill();
    a.wait(|s| s.disconnects >= 1, "disconnected");
    tick(100);
    a.wait(
        |s| s.not_forwarded >= 100,
        "counting what it did not forward",
    );

    // Back: both nodes reconnect and put their subscriptions back on the broker.
    broker.restart();
    a.wait(|s| s.connects >= 2, "reconnected");
    b.wait(|s| s.connects >= 2, "reconnected");
    broker.wait_subscriptions(base + 2, LIMIT);
    tick(100);

    // Node A's own subscriber saw every message, in order.
    let all = numbers(&mut a_sub, 300);
    assert_eq!(all, (0..300).collect::<Vec<_>>());
    // Node B: the first hundred and the last hundred; none of the outage's, none twice.
    let after = numbers(&mut b_sub, 100);
    assert_eq!(after, (200..300).collect::<Vec<_>>());
    nothing_more(&mut b_sub, Duration::from_millis(300));
    let stats = a.nats.stats();
    assert_eq!(stats.not_forwarded, 100, "{stats:?}");
    assert_eq!(stats.forwarded, 200, "{stats:?}");
    a.stop();
    b.stop();
}

#[test]
fn a_node_starts_while_its_broker_is_down() {
    let Some(mut broker) = Broker::start() else {
        return;
    };
    let base = broker.subscriptions();
    broker.kill();
    let node = Node::spawn(NatsConfig::new(broker.url()), 1);
    let mut client = node.client();
    sub(&mut client, "x");
    // Local publish and delivery work without the broker.
    publish(&mut client, "x", "local");
    assert_eq!(client.recv_text(), "local");
    assert!(!node.nats.is_connected());
    assert_eq!(node.nats.stats().not_forwarded, 1);
    // The broker comes up: the node connects and subscribes.
    broker.restart();
    broker.wait_subscriptions(base + 1, LIMIT);
    broker.publish_raw("x", b"remote");
    assert_eq!(client.recv_text(), "remote");
    node.stop();
}

#[test]
fn a_payload_over_the_brokers_limit_reaches_no_one() {
    let Some(broker) = Broker::start_with_config("max_payload: 1024") else {
        return;
    };
    let base = broker.subscriptions();
    let (a, b) = (Node::start(&broker), Node::start(&broker));
    let (mut a_pub, mut a_sub, mut b_sub) = (a.client(), a.client(), b.client());
    // The publisher is a subscriber too: not even its own copy may go.
    for client in [&mut a_pub, &mut a_sub, &mut b_sub] {
        sub(client, "big");
    }
    broker.wait_subscriptions(base + 2, LIMIT);
    // The limit is known once connected; a binary message keeps room for its header.
    assert_eq!(a.nats.max_payload(true), Some(1024));
    assert_eq!(a.nats.max_payload(false), Some(960));

    let handle = a.running.handle();
    let text = "x".repeat(2000);
    assert_eq!(
        handle.publish("big", Message::Text(&text)),
        Err(PublishError::TooLarge {
            len: 2000,
            max: 1024
        })
    );
    assert_eq!(
        handle.publish("big", Message::Binary(&[0; 1000])),
        Err(PublishError::TooLarge {
            len: 1000,
            max: 960
        })
    );
    publish(&mut a_pub, "big", &text);
    let error = a_pub.recv_text();
    assert!(
        error.starts_with("error a payload of 2000 bytes is over the 1024 bytes"),
        "{error}"
    );
    // The next publish is the first thing every subscriber gets.
    publish(&mut a_pub, "big", "small");
    for client in [&mut a_pub, &mut a_sub, &mut b_sub] {
        assert_eq!(client.recv_text(), "small");
    }
    assert_eq!(a.nats.stats().too_large, 0, "refused before the backplane");
    a.stop();
    b.stop();
}
