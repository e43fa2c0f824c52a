//! `sockeye serve --nats` nodes as processes around a real `nats-server` (Debian's, started by
//! each test on free ports, stopped by PID): a node killed while its clients publish, and two
//! nodes in network namespaces of their own, joined by a veth pair, measured with
//! `sockeye load fanout` (publishers on one node, subscribers on the other).
//!
//! A missing `nats-server` fails the test when `CI` is set and skips it elsewhere. Where network
//! namespaces cannot be created (no privileges), the namespace test says so and skips.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sockeye_proto::Message;
use sockeye_tests::client::{Client, Request};
use sockeye_tests::interop::start_serve;
use sockeye_tests::nats::{Broker, nats_server};

const BIN: &str = env!("CARGO_BIN_EXE_sockeye");

/// Generous: a busy 2-core machine runs the broker, the nodes and the clients.
const LIMIT: Duration = Duration::from_secs(30);

/// A `sockeye serve --nats` process, killed by its PID when dropped.
struct Node {
    child: Child,
    addr: SocketAddr,
}

impl Node {
    /// `sockeye serve` on `host`, port 0, joined to `nats`; inside `netns` when given.
    fn start(nats: &str, host: &str, netns: Option<&str>) -> Node {
        let mut command = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, BIN]);
                c
            }
            None => Command::new(BIN),
        };
        let (child, addr, _, _) = start_serve(
            command
                .args(["serve", "--addr", &format!("{host}:0"), "--threads", "1"])
                .args(["--nats", nats, "--nats-prefix", "nodes"]),
            LIMIT,
        );
        Node { child, addr }
    }

    fn url(&self) -> String {
        format!("ws://{}/pubsub", self.addr)
    }

    fn client(&self) -> Client {
        let request = Request {
            path: "/pubsub".into(),
            ..Request::default()
        };
        let mut client = Client::connect_with(self.addr, &request).expect("upgrade");
        client.stream_mut().set_read_timeout(Some(LIMIT)).unwrap();
        client
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn sub(client: &mut Client, topic: &str) {
    client.send(Message::Text(&format!("sub {topic}"))).unwrap();
    assert_eq!(client.recv_text(), format!("ok sub {topic}"));
}

/// Publishes on `topic` until the stop flag or an error; returns how many went out.
fn publisher(mut client: Client, topic: &'static str, stop: Arc<AtomicBool>) -> u64 {
    let mut n = 0;
    let deadline = Instant::now() + 3 * LIMIT;
    while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
        if client
            .send(Message::Text(&format!("pub {topic} {n}")))
            .is_err()
        {
            break;
        }
        n += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    n
}

/// Reads deliveries until `done` says so; checks each publisher's numbers go up by one.
fn read_until(
    client: &mut Client,
    last: &mut [Option<u64>; 2],
    done: impl Fn(&[Option<u64>; 2]) -> bool,
) {
    while !done(last) {
        let text = client.recv_text();
        let mut parts = text.splitn(3, ' ');
        let (kind, topic, n) = (parts.next(), parts.next(), parts.next());
        assert_eq!(kind, Some("msg"), "{text}");
        let which = match topic {
            Some("k.a") => 0,
            Some("k.c") => 1,
            _ => panic!("unexpected {text}"),
        };
        let n: u64 = n.and_then(|n| n.parse().ok()).expect("a number");
        if which == 1 {
            // Node C's publisher: every message once, in order.
            assert_eq!(n, last[1].map_or(0, |l| l + 1), "k.c: {text}");
        } else if let Some(l) = last[0] {
            // Node A's: in order, never twice (a message in flight when A died may be lost).
            assert!(n > l, "k.a went back from {l} to {n}");
        }
        last[which] = Some(n);
    }
}

#[test]
fn a_node_killed_while_its_clients_publish_costs_its_own_clients_only() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let base = broker.subscriptions();
    let url = broker.url();
    let mut a = Node::start(&url, "127.0.0.1", None);
    let (b, c) = (
        Node::start(&url, "127.0.0.1", None),
        Node::start(&url, "127.0.0.1", None),
    );
    let mut b_sub = b.client();
    let mut c_sub = c.client();
    sub(&mut b_sub, "k.>");
    sub(&mut c_sub, "k.>");
    broker.wait_subscriptions(base + 2, LIMIT);

    let stop = Arc::new(AtomicBool::new(false));
    let a_pub = {
        let (client, stop) = (a.client(), Arc::clone(&stop));
        std::thread::spawn(move || publisher(client, "k.a", stop))
    };
    let c_pub = {
        let (client, stop) = (c.client(), Arc::clone(&stop));
        std::thread::spawn(move || publisher(client, "k.c", stop))
    };
    // Both streams flow to B.
    let mut seen = [None, None];
    read_until(&mut b_sub, &mut seen, |l| {
        l[0] >= Some(20) && l[1] >= Some(20)
    });

    // Node A dies (SIGKILL) mid-stream: its publisher's connection is gone.
    a.kill();
    let a_sent = a_pub.join().expect("A's publisher");
    assert!(a_sent >= 20, "A's publisher sent {a_sent}");
    let a_last = seen[0];
    // Node C's stream goes on at B: 200 more after the kill, in order, none lost.
    let after = seen[1].unwrap() + 200;
    read_until(&mut b_sub, &mut seen, |l| l[1] >= Some(after));
    stop.store(true, Ordering::Release);
    let c_sent = c_pub.join().expect("C's publisher");
    assert!(c_sent > after);
    // Nothing of A's after its death (beyond what was already on its way).
    assert!(seen[0] >= a_last && seen[0] < Some(a_sent));
    // C's own subscriber kept everything of C's too.
    let mut c_seen = [None, None];
    read_until(&mut c_sub, &mut c_seen, |l| l[1] >= Some(after));
    // The broker let go of the dead node's connection; B and C stay subscribed.
    broker.wait_subscriptions(base + 2, LIMIT);
}

/// Network namespaces joined by a veth pair, removed when dropped.
struct Namespaces {
    names: [String; 2],
}

impl Namespaces {
    /// `ip netns add` twice and a veth pair between them with `10.77.N.1` and `10.77.N.2`;
    /// `None` with the reason when this machine does not allow it.
    fn create() -> Result<Namespaces, String> {
        let id = std::process::id();
        let names = [format!("sk-a-{id}"), format!("sk-b-{id}")];
        let net = id % 250 + 1;
        let ns = Namespaces { names };
        let [a, b] = &ns.names;
        let (va, vb) = (
            format!("ska{}", id % 100_000),
            format!("skb{}", id % 100_000),
        );
        let steps: Vec<Vec<String>> = vec![
            vec!["netns".into(), "add".into(), a.clone()],
            vec!["netns".into(), "add".into(), b.clone()],
            split(&format!(
                "link add {va} netns {a} type veth peer name {vb} netns {b}"
            )),
            split(&format!("-n {a} addr add 10.77.{net}.1/24 dev {va}")),
            split(&format!("-n {b} addr add 10.77.{net}.2/24 dev {vb}")),
            split(&format!("-n {a} link set {va} up")),
            split(&format!("-n {b} link set {vb} up")),
            split(&format!("-n {a} link set lo up")),
            split(&format!("-n {b} link set lo up")),
        ];
        for step in steps {
            let out = Command::new("ip")
                .args(&step)
                .output()
                .map_err(|e| format!("ip {}: {e}", step.join(" ")))?;
            if !out.status.success() {
                return Err(format!(
                    "ip {}: {}",
                    step.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        Ok(ns)
    }

    fn host(&self, i: usize) -> String {
        format!("10.77.{}.{}", std::process::id() % 250 + 1, i + 1)
    }
}

fn split(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new("ip")
                .args(["netns", "del", name])
                .stderr(Stdio::null())
                .status();
        }
    }
}

#[test]
fn nodes_in_their_own_network_namespaces_share_topics() {
    let Some(bin) = sockeye_tests::interop::found(nats_server()) else {
        return;
    };
    let ns = match Namespaces::create() {
        Ok(ns) => ns,
        Err(why) => {
            eprintln!("skipping: network namespaces cannot be created here: {why}");
            return;
        }
    };
    let [na, nb] = &ns.names;
    let broker = Broker::start_in(bin, na, ns.host(0).parse().unwrap());
    // Node A beside the broker; node B across the veth pair.
    let a = Node::start(&broker.url(), &ns.host(0), Some(na));
    let b = Node::start(&broker.url(), &ns.host(1), Some(nb));
    // Subscribers on B, publishers on A (from B's namespace: their traffic crosses too).
    let out = Command::new("ip")
        .args(["netns", "exec", nb, BIN, "load", "fanout"])
        .args(["--url", &b.url(), "--publish-url", &a.url()])
        .args(["--subscribers", "20", "--topics", "4", "--publishers", "4"])
        .args([
            "--rate",
            "200",
            "--duration",
            "2",
            "--warmup",
            "0.5",
            "--settle",
            "1",
        ])
        .arg("--json")
        .output()
        .expect("run sockeye load fanout");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "load fanout across namespaces failed ({}): {stdout} {stderr}",
        out.status
    );
    let json = sockeye_tests::interop::Json::parse(stdout.trim()).expect("one JSON line");
    let deliveries = json.get("deliveries").as_f64().unwrap_or(0.0);
    // 4 topics × 200/s × 2 s × 5 subscribers each.
    assert!(
        deliveries >= 4.0 * 200.0 * 2.0 * 5.0 * 0.9,
        "deliveries: {stdout}"
    );
    drop((a, b, broker));
}
