//! wss over real loopback sockets: echo through TLS 1.3 and 1.2, SNI, ALPN, certificates the
//! client refuses, plain HTTP and stalled handshakes on the TLS port, bytes that break the TLS
//! session, client certificates, reloading certificates while connections are open, and clean
//! and unclean closes.
//!
//! Certificates are made at test time by a test CA (`sockeye_tests::tls`). Every socket has
//! read and write timeouts; counters that a failing peer moves are awaited with a bounded poll.

use std::io::{self, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sockeye::proto::{CloseCode, Message};
use sockeye::server::rustls::{self, AlertDescription, CertificateError, ClientConfig};
use sockeye::server::{ClientAuth, Handle, Handler, Running, ServerConfig, Stats, TlsSettings};
use sockeye_tests::client::{
    Closed, Echo, OwnedEvent, Pending, Probe, Request, connect_tcp, start,
};
use sockeye_tests::tls::{
    ALPN_HTTP_1_1, Authority, Identity, SERVER_NAMES, TlsStream, WssClient, client_config,
    client_config_with, connect_tls, connect_wss, stats_when, tls_config, tls_failure,
    tls_test_config,
};

/// The handshake timeout of the tests that stall a handshake.
const SHORT: Duration = Duration::from_millis(300);
/// Timers fire on a loaded CI machine within this much of their deadline.
const SLACK: Duration = Duration::from_secs(2);
/// How much earlier the server's clock can start than the client's stopwatch.
const EARLY: Duration = Duration::from_millis(150);

/// A test CA and a server certificate for [`SERVER_NAMES`].
fn pki() -> (Authority, Identity) {
    let ca = Authority::new("sockeye test CA");
    let server = ca.server(&SERVER_NAMES);
    (ca, server)
}

/// A test server on a free port, with its address and handle; stopped by [`TlsServer::stop`].
struct TlsServer {
    running: Running,
    handle: Handle,
    addr: SocketAddr,
}

impl TlsServer {
    /// Starts `handler` with `config` ([`start`]).
    fn start<H: Handler>(config: ServerConfig, handler: H) -> TlsServer {
        let (running, addr) = start(config, handler);
        let handle = running.handle();
        TlsServer {
            running,
            handle,
            addr,
        }
    }

    /// The server's counters once `done` holds for them ([`stats_when`]).
    fn stats_when(&self, what: &str, done: impl Fn(&Stats) -> bool) -> Stats {
        stats_when(&self.handle, what, done)
    }

    /// Shuts the server down and joins its workers; returns the handle, which still reads the
    /// counters.
    fn stop(self) -> Handle {
        self.handle.shutdown();
        self.running.join().expect("no worker died");
        self.handle
    }
}

/// A test CA ([`pki`]) and `handler` served over TLS with its certificate for [`SERVER_NAMES`].
fn serve<H: Handler>(handler: H) -> (Authority, TlsServer) {
    let (ca, identity) = pki();
    let server = TlsServer::start(tls_test_config(tls_config(&identity.settings())), handler);
    (ca, server)
}

fn wss(addr: SocketAddr, config: &Arc<ClientConfig>, name: &str) -> WssClient {
    connect_wss(
        addr,
        Arc::clone(config),
        name,
        &Request::with_protocols(&["echo"]),
    )
    .unwrap_or_else(|e| panic!("wss to {name}: {e} ({:?})", tls_failure(&e)))
}

/// The certificate the server presented.
fn peer_cert(stream: &TlsStream) -> Vec<u8> {
    let certs = stream
        .conn
        .peer_certificates()
        .expect("a server certificate");
    certs[0].as_ref().to_vec()
}

/// `len` characters of text (1 to 4 bytes each) and `len` bytes of binary.
fn payloads(len: usize) -> (String, Vec<u8>) {
    let text: String = "wss ✓ é 🦀 ".chars().cycle().take(len).collect();
    let bytes = (0..len).map(|i| (i * 7 + i / 253) as u8).collect();
    (text, bytes)
}

/// Sends `text` and expects it back.
fn round_trip(client: &mut WssClient, text: &str) {
    client.send(Message::Text(text)).unwrap();
    assert_eq!(client.recv_text(), text);
}

/// The TLS failure a connection attempt ends in: during the handshake, or (TLS 1.3, where the
/// server judges the client's certificate after the client finished) as the first thing read.
fn refused(addr: SocketAddr, config: &Arc<ClientConfig>, name: &str) -> rustls::Error {
    let err = match connect_tls(addr, Arc::clone(config), name) {
        Err(err) => err,
        Ok(mut stream) => {
            let mut byte = [0u8; 1];
            match stream.read(&mut byte) {
                Ok(n) => panic!("{name}: accepted, read {n} bytes"),
                Err(err) => err,
            }
        }
    };
    tls_failure(&err)
        .unwrap_or_else(|| panic!("{name}: not a TLS failure: {err}"))
        .clone()
}

#[test]
fn echo_text_and_binary_from_empty_to_one_mib() {
    let (ca, server) = serve(Echo);
    let config = client_config(&ca, None);
    let mut client = wss(server.addr, &config, "localhost");
    assert_eq!(client.protocol(), Some("echo"));
    assert_eq!(
        client.stream().conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    let sizes = [0, 1, 125, 126, 16_384, 65_536, 1 << 20];
    for len in sizes {
        let (text, bytes) = payloads(len);
        client.send(Message::Text(&text)).unwrap();
        let echo = client
            .recv()
            .unwrap_or_else(|e| panic!("text of {len}: {e}"));
        assert!(
            echo == OwnedEvent::Text(text),
            "text of {len} chars differs"
        );
        client.send(Message::Binary(&bytes)).unwrap();
        let echo = client
            .recv()
            .unwrap_or_else(|e| panic!("binary of {len}: {e}"));
        assert!(
            echo == OwnedEvent::Binary(bytes),
            "binary of {len} bytes differs"
        );
    }
    // Not `Client::sync`: a TLS read does not tell a drained socket, so the worker reads on
    // within the turn, and the pong can leave before the turn that counted the last message
    // has published.
    let count = 2 * sizes.len() as u64;
    let stats = server.stats_when("every message counted", |s| s.messages_in == count);
    assert_eq!(stats.tls_errors, 0);
    drop(client);
    server.stop();
}

#[test]
fn many_messages_on_one_connection() {
    const PIPELINED: usize = 1000;
    const ROUND_TRIPS: usize = 200;
    let (ca, server) = serve(Echo);
    let mut client = wss(server.addr, &client_config(&ca, None), "127.0.0.1");
    // All in one write (a few TLS records), the answers read afterwards.
    client.pipelined_echoes(PIPELINED);
    // One record each way per message.
    for i in 0..ROUND_TRIPS {
        round_trip(&mut client, &format!("round trip {i}"));
    }
    let count = (PIPELINED + ROUND_TRIPS) as u64;
    server.stats_when("every message counted", |s| s.messages_in == count);
    drop(client);
    server.stop();
}

/// Echoes above the high-water mark on several connections at once: the worker writes each
/// through the TLS session's 64 KiB limit while its socket has room. (Each connection used to
/// stop after its first 64 KiB: `Stream::write` took one batch, and no writable edge followed.)
#[test]
fn large_echoes_on_several_connections_at_once() {
    const CLIENTS: usize = 4;
    const ROUNDS: usize = 3;
    let (ca, server) = serve(Echo);
    let config = client_config(&ca, None);
    let (_, big) = payloads((1 << 20) + (300 << 10));
    let big = Arc::new(big);
    let threads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let config = Arc::clone(&config);
            let big = Arc::clone(&big);
            std::thread::spawn(move || {
                let mut client = wss(server.addr, &config, "localhost");
                for round in 0..ROUNDS {
                    client.send(Message::Binary(&big)).unwrap();
                    match client.recv() {
                        Ok(OwnedEvent::Binary(echo)) => {
                            assert!(echo == *big, "client {i} round {round}: echo differs");
                        }
                        other => panic!("client {i} round {round}: {:?}", other.map(|_| ())),
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a client thread");
    }
    let count = (CLIENTS * ROUNDS) as u64;
    server.stats_when("every message counted", |s| s.messages_out == count);
    server.stop();
}

#[test]
fn several_connections_interleaved() {
    const CLIENTS: usize = 8;
    const ROUNDS: usize = 50;
    let (ca, server) = serve(Echo);
    let config = client_config(&ca, None);
    let mut clients: Vec<WssClient> = (0..CLIENTS)
        .map(|i| wss(server.addr, &config, SERVER_NAMES[i % 2]))
        .collect();
    for round in 0..ROUNDS {
        for (i, client) in clients.iter_mut().enumerate() {
            client
                .send(Message::Text(&format!("client {i} round {round}")))
                .unwrap();
        }
        for (i, client) in clients.iter_mut().enumerate() {
            assert_eq!(client.recv_text(), format!("client {i} round {round}"));
        }
    }
    for client in &mut clients {
        client.close(1000).unwrap();
        assert_eq!(client.recv_close(), (Some(1000), String::new()));
        client.expect_eof().unwrap();
    }
    // The server waits for the clients' EOF after its FIN.
    drop(clients);
    let stats = server.stats_when("every connection closed", |s| s.connections_open == 0);
    assert_eq!(stats.upgraded, CLIENTS as u64);
    assert_eq!(stats.messages_in, (CLIENTS * ROUNDS) as u64);
    assert_eq!(stats.closed_remote, CLIENTS as u64);
    assert_eq!(stats.tls_errors, 0);
    server.stop();
}

#[test]
fn echo_over_tls_1_2() {
    let (ca, server) = serve(Echo);
    let config = client_config_with(&ca, None, &[&rustls::version::TLS12]);
    let mut client = wss(server.addr, &config, "localhost");
    assert_eq!(
        client.stream().conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    let (_, big) = payloads(1 << 20);
    client.send(Message::Binary(&big)).unwrap();
    assert!(client.recv().unwrap() == OwnedEvent::Binary(big));
    round_trip(&mut client, "tls 1.2");
    client.close(1000).unwrap();
    assert_eq!(client.recv_close(), (Some(1000), String::new()));
    client.expect_eof().unwrap();
    drop(client);
    server.stop();
}

#[test]
fn alpn_negotiates_http_1_1() {
    let (ca, server) = serve(Echo);

    let mut client = wss(server.addr, &client_config(&ca, None), "localhost");
    assert_eq!(client.stream().conn.alpn_protocol(), Some(ALPN_HTTP_1_1));
    round_trip(&mut client, "alpn");

    // A client that offers no ALPN gets none, and is served.
    let mut plain = (*client_config(&ca, None)).clone();
    plain.alpn_protocols.clear();
    let mut quiet = wss(server.addr, &Arc::new(plain), "localhost");
    assert_eq!(quiet.stream().conn.alpn_protocol(), None);
    round_trip(&mut quiet, "no alpn");

    // A client that offers only h2 is refused (RFC 7301 §3.2: no_application_protocol).
    let mut h2 = (*client_config(&ca, None)).clone();
    h2.alpn_protocols = vec![b"h2".to_vec()];
    let err = refused(server.addr, &Arc::new(h2), "localhost");
    assert_eq!(
        err,
        rustls::Error::AlertReceived(AlertDescription::NoApplicationProtocol)
    );
    let stats = server.stats_when("the h2 handshake failed", |s| s.tls_errors >= 1);
    assert_eq!((stats.upgraded, stats.tls_errors), (2, 1));
    drop((client, quiet));
    server.stop();
}

#[test]
fn sni_selects_the_certificate() {
    let ca = Authority::new("sockeye test CA");
    let default = ca.server(&["localhost", "127.0.0.1", "fallback.sockeye.test"]);
    let one = ca.server(&["one.sockeye.test"]);
    let two = ca.server(&["two.sockeye.test"]);
    let wild = ca.server(&["*.wild.sockeye.test"]);
    let settings = default
        .settings()
        .with_sni("one.sockeye.test", one.chain_pem(), one.key_pem())
        .with_sni("TWO.sockeye.test", two.chain_pem(), two.key_pem())
        .with_sni("*.wild.sockeye.test", wild.chain_pem(), wild.key_pem());
    let server = TlsServer::start(tls_test_config(tls_config(&settings)), Echo);
    let config = client_config(&ca, None);
    // (the name the client asks for, the certificate it must get)
    let table = [
        ("one.sockeye.test", &one),
        ("two.sockeye.test", &two),
        ("a.wild.sockeye.test", &wild),
        ("localhost", &default),
        // No SNI is sent for an IP address.
        ("127.0.0.1", &default),
        // A name no SNI entry has gets the default certificate.
        ("fallback.sockeye.test", &default),
    ];
    for (name, expected) in table {
        let mut client = wss(server.addr, &config, name);
        assert!(
            peer_cert(client.stream()) == expected.cert_der().as_ref(),
            "{name}: another certificate"
        );
        round_trip(&mut client, name);
    }
    // A name nobody has: the default certificate, which the client refuses for that name.
    let err = refused(server.addr, &config, "elsewhere.sockeye.test");
    assert!(
        matches!(err, rustls::Error::InvalidCertificate(_)),
        "{err:?}"
    );
    let stats = server.stats_when("the refused handshake", |s| s.tls_errors >= 1);
    assert_eq!((stats.upgraded, stats.tls_errors), (table.len() as u64, 1));
    server.stop();
}

#[test]
fn a_certificate_from_another_ca_is_refused_by_the_client() {
    let (_, server) = serve(Echo);
    let stranger = Authority::new("another CA");
    let config = client_config(&stranger, None);
    let err = connect_tls(server.addr, Arc::clone(&config), "localhost").unwrap_err();
    assert_eq!(
        tls_failure(&err),
        Some(&rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer
        )),
        "{err}"
    );
    // The client's alert reaches the server, which counts the failed handshake.
    let stats = server.stats_when("the refused handshake", |s| s.tls_errors >= 1);
    assert_eq!(
        (stats.accepted, stats.upgraded, stats.tls_errors),
        (1, 0, 1)
    );
    assert_eq!(stats.connections_open, 0);
    server.stop();
}

#[test]
fn plain_http_upgrade_on_the_tls_port_gets_no_101() {
    let (probe, events) = Probe::new();
    let (ca, server) = serve(probe);
    let pending = Pending::send(server.addr, &Request::default()).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let ended = loop {
        match pending.stream().read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) if answer.len() < 64 << 10 => answer.extend_from_slice(&buf[..n]),
            Ok(_) => panic!("{} bytes and counting", answer.len()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    assert!(
        !answer.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    // At most a TLS alert record.
    assert!(answer.is_empty() || answer[0] == 0x15, "{answer:?}");
    // Closed, not left open until a timeout.
    match ended {
        Ok(()) => {}
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
    }
    let stats = server.stats_when("the plain request failed", |s| s.tls_errors >= 1);
    assert_eq!((stats.upgraded, stats.tls_errors), (0, 1));
    assert!(events.opened.try_recv().is_err());

    // Others are still served.
    let mut client = wss(server.addr, &client_config(&ca, None), "localhost");
    events.next_open();
    round_trip(&mut client, "still serving");
    client.close(1000).unwrap();
    assert_eq!(client.recv_close(), (Some(1000), String::new()));
    client.expect_eof().unwrap();
    // Only the TLS client's connection opened and closed.
    assert!(matches!(events.next_close(), Closed::Remote { .. }));
    drop(client);
    server.stop();
    assert!(events.closed.try_recv().is_err());
}

#[test]
fn stalled_handshakes_are_closed_by_the_handshake_timeout() {
    let (ca, identity) = pki();
    let mut config = tls_test_config(tls_config(&identity.settings()));
    config.handshake_timeout = SHORT;
    let (probe, events) = Probe::new();
    let server = TlsServer::start(config, probe);
    let client = client_config(&ca, None);

    // Half a ClientHello, then nothing.
    let mut hello = Vec::new();
    let name = "localhost".try_into().unwrap();
    let mut session = rustls::ClientConnection::new(Arc::clone(&client), name).unwrap();
    session.write_tls(&mut hello).unwrap();
    assert!(hello.len() > 100, "a ClientHello of {} bytes", hello.len());
    let mut stream = connect_tcp(server.addr).unwrap();
    stream.set_read_timeout(Some(SHORT + SLACK)).unwrap();
    let started = Instant::now();
    stream.write_all(&hello[..hello.len() / 2]).unwrap();
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).expect("EOF before the read timeout");
    let elapsed = started.elapsed();
    assert_eq!(n, 0, "no answer to half a ClientHello: {:?}", &buf[..n]);
    assert!(elapsed >= SHORT - EARLY, "closed after {elapsed:?}");
    assert!(elapsed < SHORT + SLACK, "closed after {elapsed:?}");

    // A finished TLS handshake and no upgrade request: the same deadline.
    let mut tls = connect_tls(server.addr, client, "localhost").unwrap();
    tls.sock.set_read_timeout(Some(SHORT + SLACK)).unwrap();
    let started = Instant::now();
    let end = tls.read(&mut buf);
    let elapsed = started.elapsed();
    // Dropped without close_notify: rustls reports the truncation.
    match end {
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}"),
        Ok(n) => panic!("{n} bytes instead of the end"),
    }
    assert!(elapsed >= SHORT - EARLY, "closed after {elapsed:?}");
    assert!(elapsed < SHORT + SLACK, "closed after {elapsed:?}");

    drop((stream, tls));
    let stats = server.stop().stats();
    assert_eq!(
        (stats.accepted, stats.upgraded, stats.rejected),
        (2, 0, 2),
        "{stats:?}"
    );
    // Neither connection opened, so the handler heard nothing.
    assert!(events.opened.try_recv().is_err() && events.closed.try_recv().is_err());
}

#[test]
fn bytes_that_break_the_tls_session_end_in_on_close_with_tls() {
    let (probe, events) = Probe::new();
    let (ca, server) = serve(probe);
    let mut client = wss(server.addr, &client_config(&ca, None), "localhost");
    events.next_open();
    round_trip(&mut client, "before");
    // An application-data record of 32 bytes that no key encrypted, under the TLS session.
    let mut record = vec![0x17, 0x03, 0x03, 0x00, 0x20];
    record.extend([0x5a; 32]);
    client.stream_mut().sock.write_all(&record).unwrap();
    let reason = events.next_close();
    assert!(matches!(reason, Closed::Tls(_)), "{reason:?}");
    // The server says why before it closes.
    let err = client.recv().unwrap_err();
    assert_eq!(
        tls_failure(&err),
        Some(&rustls::Error::AlertReceived(
            AlertDescription::BadRecordMac
        )),
        "{err}"
    );
    let stats = server.stats_when("the bad record", |s| s.tls_errors >= 1);
    assert_eq!(
        (
            stats.tls_errors,
            stats.closed_abnormal,
            stats.connections_open
        ),
        (1, 1, 0)
    );
    eprintln!("on_close: {reason:?}");
    server.stop();
}

#[test]
fn client_certificate_required() {
    let (ca, identity) = pki();
    let stranger = Authority::new("another CA");
    let settings = identity
        .settings()
        .with_client_auth(ca.pem().into_bytes(), ClientAuth::Required);
    let server = TlsServer::start(tls_test_config(tls_config(&settings)), Echo);

    let signed = ca.client("client.sockeye.test");
    let mut client = wss(server.addr, &client_config(&ca, Some(&signed)), "localhost");
    round_trip(&mut client, "with a certificate");

    let err = refused(server.addr, &client_config(&ca, None), "localhost");
    assert_eq!(
        err,
        rustls::Error::AlertReceived(AlertDescription::CertificateRequired)
    );
    let foreign = stranger.client("client.sockeye.test");
    let err = refused(
        server.addr,
        &client_config(&ca, Some(&foreign)),
        "localhost",
    );
    assert!(matches!(err, rustls::Error::AlertReceived(_)), "{err:?}");
    // Over TLS 1.2 the refusal comes within the handshake.
    let tls12 = client_config_with(&ca, None, &[&rustls::version::TLS12]);
    let err = refused(server.addr, &tls12, "localhost");
    assert!(matches!(err, rustls::Error::AlertReceived(_)), "{err:?}");
    let stats = server.stats_when("three refused handshakes", |s| s.tls_errors >= 3);
    assert_eq!((stats.upgraded, stats.tls_errors), (1, 3));
    round_trip(&mut client, "still open");
    drop(client);
    server.stop();
}

#[test]
fn client_certificate_optional() {
    let (ca, identity) = pki();
    let stranger = Authority::new("another CA");
    let settings = identity
        .settings()
        .with_client_auth(ca.pem().into_bytes(), ClientAuth::Optional);
    let server = TlsServer::start(tls_test_config(tls_config(&settings)), Echo);

    let mut anonymous = wss(server.addr, &client_config(&ca, None), "localhost");
    round_trip(&mut anonymous, "without a certificate");
    let signed = ca.client("client.sockeye.test");
    let mut known = wss(server.addr, &client_config(&ca, Some(&signed)), "localhost");
    round_trip(&mut known, "with a certificate");
    // A certificate that is presented must still chain to the CA.
    let foreign = stranger.client("client.sockeye.test");
    let err = refused(
        server.addr,
        &client_config(&ca, Some(&foreign)),
        "localhost",
    );
    assert!(matches!(err, rustls::Error::AlertReceived(_)), "{err:?}");
    let stats = server.stats_when("the refused handshake", |s| s.tls_errors >= 1);
    assert_eq!((stats.upgraded, stats.tls_errors), (2, 1));
    drop((anonymous, known));
    server.stop();
}

#[test]
fn reload_serves_new_certificates_to_new_connections_only() {
    let ca = Authority::new("sockeye test CA");
    let first = ca.server(&SERVER_NAMES);
    let second = ca.server(&SERVER_NAMES);
    let tls = tls_config(&first.settings());
    let server = TlsServer::start(tls_test_config(tls.clone()), Echo);
    let config = client_config(&ca, None);

    let mut old = wss(server.addr, &config, "localhost");
    assert!(peer_cert(old.stream()) == first.cert_der().as_ref());
    tls.reload_settings(&second.settings()).unwrap();
    let mut new = wss(server.addr, &config, "localhost");
    assert!(peer_cert(new.stream()) == second.cert_der().as_ref());
    round_trip(&mut old, "old connection, old certificate");
    round_trip(&mut new, "new connection, new certificate");

    // A reload that fails keeps the certificates in use.
    let broken = TlsSettings::new(b"not pem".to_vec(), b"not pem".to_vec());
    assert!(tls.reload_settings(&broken).is_err());
    let mut third = wss(server.addr, &config, "localhost");
    assert!(peer_cert(third.stream()) == second.cert_der().as_ref());
    round_trip(&mut third, "third");
    round_trip(&mut old, "old, still");
    drop((old, new, third));
    server.stop();
}

#[test]
fn clean_closes_end_with_close_notify() {
    let (probe, events) = Probe::new();
    let (ca, server) = serve(probe);
    let config = client_config(&ca, None);

    // The client closes: the echo, then the server's close_notify and FIN (a clean EOF).
    let mut first = wss(server.addr, &config, "localhost");
    events.next_open();
    round_trip(&mut first, "before");
    first.close(1000).unwrap();
    assert_eq!(first.recv_close(), (Some(1000), String::new()));
    first.expect_eof().unwrap();
    assert_eq!(
        events.next_close(),
        Closed::Remote {
            code: Some(1000),
            reason: String::new()
        }
    );

    // The server closes.
    let mut second = wss(server.addr, &config, "localhost");
    let id = events.next_open();
    server.handle.close(id, CloseCode(4000), "bye").unwrap();
    assert_eq!(second.recv_close(), (Some(4000), "bye".to_owned()));
    assert!(second.send_owed().unwrap(), "the close echo is owed");
    second.expect_eof().unwrap();
    assert_eq!(events.next_close(), Closed::Local(4000));

    // close_notify and FIN without a close frame: a disconnect, not a TLS failure.
    let mut third = wss(server.addr, &config, "localhost");
    events.next_open();
    round_trip(&mut third, "before");
    let stream = third.stream_mut();
    stream.conn.send_close_notify();
    stream.flush().unwrap();
    stream.sock.shutdown(Shutdown::Write).unwrap();
    assert_eq!(events.next_close(), Closed::Disconnected);

    // The server waits for each client's EOF after its own FIN; a client that just closes its
    // socket (no close_notify after the close handshake) is no TLS failure either.
    drop((first, second, third));

    let stats = server.stats_when("every connection closed", |s| s.connections_open == 0);
    assert_eq!(stats.tls_errors, 0, "{stats:?}");
    server.stop();
}

/// TCP closed without `close_notify` on an open connection ends it as over plain TCP: the
/// peer vanished without a close frame (`Disconnected`), not a TLS failure.
#[test]
fn tcp_closed_without_close_notify_ends_as_disconnected() {
    let (probe, events) = Probe::new();
    let (ca, server) = serve(probe);
    let mut client = wss(server.addr, &client_config(&ca, None), "localhost");
    events.next_open();
    round_trip(&mut client, "before");
    client.stream().sock.shutdown(Shutdown::Write).unwrap();
    assert_eq!(events.next_close(), Closed::Disconnected);
    let stats = server.stats_when("the close", |s| s.closed_abnormal >= 1);
    assert_eq!(stats.tls_errors, 0);
    drop(client);
    server.stop();
}

/// Tells the test what `on_upgrade` learned of the TLS session: the ALPN protocol, how many
/// client certificates were verified, and the SNI name.
#[derive(Clone)]
struct TlsPeer(std::sync::mpsc::Sender<Session>);

/// The ALPN protocol, the number of client certificates, the SNI name.
type Session = (Option<Vec<u8>>, Option<usize>, Option<String>);

impl Handler for TlsPeer {
    type Conn = ();

    fn on_upgrade(
        &mut self,
        _: &sockeye::proto::Request<'_>,
        accept: &mut sockeye::server::Accept<'_>,
    ) -> Result<(), sockeye::server::Reject> {
        let alpn = accept.alpn().map(<[u8]>::to_vec);
        let certificates = accept.client_certificates().map(<[_]>::len);
        let name = accept.server_name().map(str::to_owned);
        let _ = self.0.send((alpn, certificates, name));
        Ok(())
    }

    fn on_message(
        &mut self,
        _: &mut (),
        msg: sockeye::proto::Message<'_>,
        out: &mut sockeye::server::Outbox<'_>,
    ) {
        let _ = out.send(msg);
    }
}

#[test]
fn on_upgrade_sees_the_server_name_the_alpn_protocol_and_the_client_certificates() {
    let (ca, identity) = pki();
    let settings = identity
        .settings()
        .with_client_auth(ca.pem().into_bytes(), ClientAuth::Optional);
    let (tx, seen) = std::sync::mpsc::channel();
    let server = TlsServer::start(tls_test_config(tls_config(&settings)), TlsPeer(tx));
    let wait = || {
        seen.recv_timeout(std::time::Duration::from_secs(10))
            .unwrap()
    };
    let mut anonymous = wss(server.addr, &client_config(&ca, None), "localhost");
    round_trip(&mut anonymous, "anonymous");
    let localhost = Some("localhost".to_owned());
    assert_eq!(
        wait(),
        (Some(ALPN_HTTP_1_1.to_vec()), None, localhost.clone())
    );
    let signed = ca.client("client.sockeye.test");
    let mut known = wss(server.addr, &client_config(&ca, Some(&signed)), "localhost");
    round_trip(&mut known, "known");
    let (alpn, certificates, name) = wait();
    assert_eq!((alpn.as_deref(), name), (Some(ALPN_HTTP_1_1), localhost));
    assert!(certificates.is_some_and(|n| n >= 1), "{certificates:?}");
    drop((anonymous, known));
    server.stop();
}
