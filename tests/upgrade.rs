//! The upgrade handshake over real loopback sockets: the `101`, subprotocol selection, every
//! refusal's status, plain HTTP on the WebSocket port, and frames pipelined behind the request.

use sockeye::proto::frame::OpCode;
use sockeye::proto::handshake::AcceptKey;
use sockeye::proto::{Message, Request as UpgradeRequest};
use sockeye::server::{Accept, Handler, Outbox, Reject};
use sockeye_tests::client::{
    Client, ECHO_PAGE, Echo, OwnedEvent, Request, http_exchange, start, test_config,
};
use sockeye_tests::wire::client_frame;

/// A request line and headers, with `\r\n` line ends and the blank line added.
fn head(lines: &[&str]) -> Vec<u8> {
    let mut out = lines.join("\r\n");
    out.push_str("\r\n\r\n");
    out.into_bytes()
}

const KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";
const UPGRADE: &str = "Upgrade: websocket";
const CONNECTION: &str = "Connection: Upgrade";
const VERSION: &str = "Sec-WebSocket-Version: 13";
const HOST: &str = "Host: localhost";

/// Accepts any upgrade and echoes; plain HTTP gets the default answer (426).
#[derive(Debug, Clone, Copy)]
struct Plain;

impl Handler for Plain {
    type Conn = ();

    fn on_upgrade(
        &mut self,
        _req: &UpgradeRequest<'_>,
        _accept: &mut Accept<'_>,
    ) -> Result<(), Reject> {
        Ok(())
    }

    fn on_message(&mut self, _conn: &mut (), msg: Message<'_>, out: &mut Outbox<'_>) {
        let _ = out.send(msg);
    }
}

/// Refuses every `Origin` except `https://good.example`.
#[derive(Debug, Clone, Copy)]
struct OriginCheck;

impl Handler for OriginCheck {
    type Conn = ();

    fn on_upgrade(
        &mut self,
        req: &UpgradeRequest<'_>,
        _accept: &mut Accept<'_>,
    ) -> Result<(), Reject> {
        match req.origin() {
            Some("https://good.example") => Ok(()),
            _ => Err(Reject::forbidden()),
        }
    }

    fn on_message(&mut self, _conn: &mut (), msg: Message<'_>, out: &mut Outbox<'_>) {
        let _ = out.send(msg);
    }
}

#[test]
fn valid_upgrade_gets_101_with_the_accept_key() {
    let (running, addr) = start(test_config(), Echo);
    let handle = running.handle();
    let request = head(&[
        "GET /chat HTTP/1.1",
        HOST,
        UPGRADE,
        CONNECTION,
        KEY,
        VERSION,
    ]);
    let mut stream = sockeye_tests::client::connect_tcp(addr).unwrap();
    std::io::Write::write_all(&mut stream, &request).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = std::io::Read::read(&mut stream, &mut buf).unwrap();
        assert!(n > 0, "EOF before the end of the 101");
        answer.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8(answer).unwrap();
    assert!(text.starts_with("HTTP/1.1 101 "), "{text}");
    // RFC 6455 §1.3's example key and accept value.
    assert_eq!(
        AcceptKey::from_key(b"dGhlIHNhbXBsZSBub25jZQ==").as_str(),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
    assert!(
        text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{text}"
    );
    drop(stream);

    // The client helper verifies the answer with `parse_response` and can talk afterwards.
    let mut client = Client::connect(addr);
    assert!(client.response_head().starts_with("HTTP/1.1 101"));
    assert_eq!(client.protocol(), None);
    client.send(Message::Text("hello")).unwrap();
    assert_eq!(client.recv_text(), "hello");
    drop(client);
    assert_eq!(handle.stats().upgraded, 2);
    handle.shutdown();
    running.join().expect("no worker died");
}

#[test]
fn subprotocol_is_selected_from_the_offer() {
    let (running, addr) = start(test_config(), Echo);
    let handle = running.handle();

    let client = Client::connect_with(addr, &Request::with_protocols(&["chat", "echo"])).unwrap();
    assert_eq!(client.protocol(), Some("echo"));
    assert!(
        client
            .response_head()
            .contains("Sec-WebSocket-Protocol: echo\r\n")
    );
    drop(client);

    for offer in [&[][..], &["chat", "superchat"][..]] {
        let client = Client::connect_with(addr, &Request::with_protocols(offer)).unwrap();
        assert_eq!(client.protocol(), None, "offered {offer:?}");
        assert!(
            !client
                .response_head()
                .to_ascii_lowercase()
                .contains("sec-websocket-protocol"),
            "offered {offer:?}: {}",
            client.response_head()
        );
    }
    handle.shutdown();
    running.join().expect("no worker died");
}

#[test]
fn every_refusal_has_its_status() {
    let (running, addr) = start(test_config(), Plain);
    let handle = running.handle();
    let table: &[(&str, Vec<u8>, u16)] = &[
        (
            "POST",
            head(&["POST / HTTP/1.1", HOST, UPGRADE, CONNECTION, KEY, VERSION]),
            405,
        ),
        (
            "HTTP/1.0",
            head(&["GET / HTTP/1.0", HOST, UPGRADE, CONNECTION, KEY, VERSION]),
            505,
        ),
        (
            "no Host",
            head(&["GET / HTTP/1.1", UPGRADE, CONNECTION, KEY, VERSION]),
            400,
        ),
        (
            "no Upgrade",
            head(&["GET / HTTP/1.1", HOST, CONNECTION, KEY, VERSION]),
            426,
        ),
        (
            "short key",
            head(&[
                "GET / HTTP/1.1",
                HOST,
                UPGRADE,
                CONNECTION,
                "Sec-WebSocket-Key: c2hvcnQ=",
                VERSION,
            ]),
            400,
        ),
        (
            "no key",
            head(&["GET / HTTP/1.1", HOST, UPGRADE, CONNECTION, VERSION]),
            400,
        ),
        (
            "version 8",
            head(&[
                "GET / HTTP/1.1",
                HOST,
                UPGRADE,
                CONNECTION,
                KEY,
                "Sec-WebSocket-Version: 8",
            ]),
            426,
        ),
        (
            "head over the limit",
            head(&[
                "GET / HTTP/1.1",
                HOST,
                UPGRADE,
                CONNECTION,
                KEY,
                VERSION,
                &format!("X-Padding: {}", "a".repeat(9000)),
            ]),
            431,
        ),
    ];
    for (name, request, status) in table {
        let answer = http_exchange(addr, request);
        assert_eq!(answer.status, *status, "{name}: {}", answer.head);
        assert_eq!(
            answer.header("Connection").map(|c| c.contains("close")),
            Some(true),
            "{name}"
        );
        if *status == 426 {
            assert_eq!(answer.header("Sec-WebSocket-Version"), Some("13"), "{name}");
            assert_eq!(answer.header("Upgrade"), Some("websocket"), "{name}");
        }
        if *status == 405 {
            assert_eq!(answer.header("Allow"), Some("GET"), "{name}");
        }
        let length: usize = answer.header("Content-Length").unwrap().parse().unwrap();
        assert_eq!(answer.body.len(), length, "{name}");
    }
    // A connection opened after the last answer is served in a later loop turn, so its pong
    // comes after every counter above was published.
    let mut client = Client::connect(addr);
    client.sync();
    let stats = handle.stats();
    assert_eq!(stats.upgraded, 1);
    // The plain GET without `Upgrade` went to `on_http`; the others were refused.
    assert_eq!(stats.http_requests, 1);
    assert_eq!(stats.rejected, table.len() as u64 - 1);
    drop(client);
    handle.shutdown();
    running.join().expect("no worker died");
}

#[test]
fn plain_get_is_answered_by_on_http() {
    let (running, addr) = start(test_config(), Echo);
    let handle = running.handle();
    let answer = http_exchange(addr, &head(&["GET / HTTP/1.1", HOST]));
    assert_eq!(answer.status, 200, "{}", answer.head);
    assert_eq!(
        answer.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(answer.body, ECHO_PAGE.as_bytes());
    let answer = http_exchange(addr, &head(&["GET /missing HTTP/1.1", HOST]));
    assert_eq!(answer.status, 404, "{}", answer.head);
    handle.shutdown();
    running.join().expect("no worker died");

    // The default `on_http` asks for an upgrade.
    let (running, addr) = start(test_config(), Plain);
    let handle = running.handle();
    let answer = http_exchange(addr, &head(&["GET / HTTP/1.1", HOST]));
    assert_eq!(answer.status, 426, "{}", answer.head);
    assert_eq!(answer.header("Upgrade"), Some("websocket"));
    assert_eq!(answer.header("Sec-WebSocket-Version"), Some("13"));
    handle.shutdown();
    running.join().expect("no worker died");
}

#[test]
fn handler_refuses_an_origin_with_403() {
    let (running, addr) = start(test_config(), OriginCheck);
    let handle = running.handle();
    let evil = head(&[
        "GET / HTTP/1.1",
        HOST,
        UPGRADE,
        CONNECTION,
        KEY,
        VERSION,
        "Origin: https://evil.example",
    ]);
    let answer = http_exchange(addr, &evil);
    assert_eq!(answer.status, 403, "{}", answer.head);
    assert_eq!(answer.body, b"forbidden\n");

    let good = Request {
        origin: Some("https://good.example".to_owned()),
        ..Request::default()
    };
    let mut client = Client::connect_with(addr, &good).unwrap();
    client.send(Message::Binary(b"ok")).unwrap();
    assert_eq!(client.recv().unwrap(), OwnedEvent::Binary(b"ok".to_vec()));
    drop(client);
    let stats = handle.stats();
    assert_eq!((stats.rejected, stats.upgraded), (1, 1));
    handle.shutdown();
    running.join().expect("no worker died");
}

#[test]
fn frames_pipelined_behind_the_request_are_echoed() {
    let (running, addr) = start(test_config(), Echo);
    let handle = running.handle();
    let mut trailing = client_frame(true, OpCode::Text, b"first");
    trailing.extend(client_frame(true, OpCode::Binary, &[1, 2, 3]));
    // A fragmented message and a ping in the same write.
    trailing.extend(client_frame(false, OpCode::Text, b"frag"));
    trailing.extend(client_frame(true, OpCode::Ping, b"p"));
    trailing.extend(client_frame(true, OpCode::Continuation, b"mented"));
    let request = Request {
        trailing,
        ..Request::default()
    };
    let mut client = Client::connect_with(addr, &request).unwrap();
    assert_eq!(client.recv().unwrap(), OwnedEvent::text("first"));
    assert_eq!(client.recv().unwrap(), OwnedEvent::Binary(vec![1, 2, 3]));
    assert_eq!(client.recv().unwrap(), OwnedEvent::Pong(b"p".to_vec()));
    assert_eq!(client.recv().unwrap(), OwnedEvent::text("fragmented"));
    drop(client);
    handle.shutdown();
    running.join().expect("no worker died");
}

#[test]
fn ipv4_and_ipv6_listeners_serve_together() {
    let mut config = test_config();
    config.addrs = vec![
        "127.0.0.1:0".parse().expect("IPv4 loopback"),
        "[::1]:0".parse().expect("IPv6 loopback"),
    ];
    let Ok(server) = sockeye::server::Server::bind(config, Echo) else {
        // A machine without IPv6 loopback cannot bind [::1]; the IPv4 tests cover the rest.
        assert!(
            std::net::TcpListener::bind("[::1]:0").is_err(),
            "IPv6 loopback works, so the server must bind it"
        );
        return;
    };
    let addrs = server.local_addrs().to_vec();
    assert!(addrs[0].is_ipv4() && addrs[1].is_ipv6(), "{addrs:?}");
    let running = server.spawn().expect("spawn");
    for addr in addrs {
        let mut client = Client::connect(addr);
        client.send(Message::Text("over both families")).unwrap();
        assert_eq!(client.recv_text(), "over both families", "{addr}");
    }
    running.handle().shutdown();
    running.join().expect("no worker died");
}

/// Tells the test the addresses `on_upgrade` saw.
#[derive(Clone)]
struct Addresses(
    std::sync::mpsc::Sender<(Option<std::net::SocketAddr>, Option<std::net::SocketAddr>)>,
);

impl sockeye::server::Handler for Addresses {
    type Conn = ();

    fn on_upgrade(
        &mut self,
        _: &sockeye::proto::Request<'_>,
        accept: &mut sockeye::server::Accept<'_>,
    ) -> Result<(), sockeye::server::Reject> {
        let _ = self.0.send((accept.peer_addr(), accept.local_addr()));
        Ok(())
    }

    fn on_message(
        &mut self,
        _: &mut (),
        _: sockeye::proto::Message<'_>,
        _: &mut sockeye::server::Outbox<'_>,
    ) {
    }
}

#[test]
fn on_upgrade_learns_the_peer_and_local_addresses() {
    let (tx, seen) = std::sync::mpsc::channel();
    let (running, addr) = start(test_config(), Addresses(tx));
    let client = Client::connect(addr);
    let (peer, local) = seen.recv_timeout(sockeye_tests::client::TIMEOUT).unwrap();
    assert_eq!(peer, Some(client.stream().local_addr().unwrap()));
    assert_eq!(local, Some(addr));
    drop(client);
    running.handle().shutdown();
    running.join().expect("no worker died");
}

/// Opens a WebSocket after writing `prefix` (a PROXY header) on the socket.
fn connect_after(addr: std::net::SocketAddr, prefix: &[u8], request: &Request) -> Client {
    use std::io::Write as _;
    let mut stream = sockeye_tests::client::connect_tcp(addr).unwrap();
    stream.write_all(prefix).unwrap();
    sockeye_tests::client::Pending::send_on(stream, "localhost", request)
        .unwrap()
        .finish()
        .unwrap()
}

#[test]
fn behind_a_load_balancer_the_proxy_header_names_the_client() {
    let mut config = test_config();
    config.proxy_protocol = true;
    let (tx, seen) = std::sync::mpsc::channel();
    let (running, addr) = start(config, Addresses(tx));
    let wait = || seen.recv_timeout(sockeye_tests::client::TIMEOUT).unwrap().0;
    let v1 = connect_after(
        addr,
        b"PROXY TCP4 203.0.113.9 127.0.0.1 4711 80\r\n",
        &Request::default(),
    );
    assert_eq!(wait(), Some("203.0.113.9:4711".parse().unwrap()));
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x21\x00\x24".to_vec();
    v2.extend(
        "2001:db8::9"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    v2.extend([0; 16]);
    v2.extend([0x12, 0x67, 0, 80]);
    let v2 = connect_after(addr, &v2, &Request::default());
    assert_eq!(wait(), Some("[2001:db8::9]:4711".parse().unwrap()));
    // Without a header: refused, the handler never asked.
    let answer = http_exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(answer.status, 400);
    assert!(seen.try_recv().is_err());
    drop((v1, v2));
    running.handle().shutdown();
    running.join().expect("no worker died");
}

#[test]
fn forwarded_headers_count_only_from_trusted_proxies() {
    let forwarded = Request {
        headers: vec![(
            "X-Forwarded-For".to_owned(),
            "198.51.100.7, 203.0.113.5".to_owned(),
        )],
        ..Request::default()
    };
    let (tx, seen) = std::sync::mpsc::channel();
    let mut config = test_config();
    config.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    let (running, addr) = start(config.clone(), Addresses(tx.clone()));
    let client = Client::connect_with(addr, &forwarded).unwrap();
    let (peer, _) = seen.recv_timeout(sockeye_tests::client::TIMEOUT).unwrap();
    assert_eq!(
        peer,
        Some("203.0.113.5:0".parse().unwrap()),
        "the right-most hop"
    );
    drop(client);
    running.handle().shutdown();
    running.join().expect("no worker died");
    // From a peer that is not a trusted proxy, anyone could have written the header.
    config.trusted_proxies = vec!["10.1.2.3".parse().unwrap()];
    let (running, addr) = start(config, Addresses(tx));
    let client = Client::connect_with(addr, &forwarded).unwrap();
    let (peer, _) = seen.recv_timeout(sockeye_tests::client::TIMEOUT).unwrap();
    assert_eq!(peer, Some(client.stream().local_addr().unwrap()));
    drop(client);
    running.handle().shutdown();
    running.join().expect("no worker died");
}
