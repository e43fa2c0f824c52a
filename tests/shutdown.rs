//! Graceful shutdown over real loopback sockets: open connections get a 1001 close and a clean
//! TCP close, the listeners stop accepting, and the workers return within the shutdown timeout
//! even when a client never answers.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use sockeye::proto::Message;
use sockeye_tests::client::{Client, Closed, Probe, connect_tcp, join_within, start, test_config};

#[test]
fn open_clients_get_1001_then_eof_and_new_connections_are_refused() {
    let mut config = test_config();
    config.shutdown_timeout = Duration::from_secs(3);
    let (probe, events) = Probe::new();
    let (running, addr) = start(config, probe);
    let handle = running.handle();
    let mut clients: Vec<Client> = (0..3).map(|_| Client::connect(addr)).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        let text = format!("client {i}");
        client.send(Message::Text(&text)).unwrap();
        assert_eq!(client.recv_text(), text);
    }

    let started = Instant::now();
    handle.shutdown();
    for client in &mut clients {
        assert_eq!(
            client.recv_close(),
            (Some(1001), "server shutdown".to_owned())
        );
    }
    // The worker closed its listener before sending the close frames.
    let refused = TcpStream::connect(addr).expect_err("a connection after shutdown");
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);

    for client in &mut clients {
        assert!(client.send_owed().unwrap(), "the close echo is owed");
        client.expect_eof().unwrap();
    }
    drop(clients);
    let joined = join_within(running, Duration::from_secs(3));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "joined after {joined:?}"
    );
    for _ in 0..3 {
        assert_eq!(events.next_close(), Closed::Shutdown);
    }
    let stats = handle.stats();
    assert_eq!((stats.closed_shutdown, stats.connections_open), (3, 0));
}

#[test]
fn join_returns_at_the_shutdown_timeout_when_a_client_never_answers() {
    let mut config = test_config();
    // Far below the 5 s close timeout: shutdown must not wait for that timer.
    config.shutdown_timeout = Duration::from_millis(500);
    let (probe, events) = Probe::new();
    let (running, addr) = start(config, probe);
    let handle = running.handle();
    let mut silent = Client::connect(addr);
    let mut polite = Client::connect(addr);
    silent.sync();
    polite.sync();

    handle.shutdown();
    assert_eq!(polite.recv_close().0, Some(1001));
    polite.send_owed().unwrap();
    polite.expect_eof().unwrap();
    drop(polite);
    assert_eq!(silent.recv_close().0, Some(1001));
    // `silent` does not answer and keeps its socket open.
    let joined = join_within(running, Duration::from_secs(3));
    assert!(
        joined < Duration::from_millis(2500),
        "joined after {joined:?}"
    );
    silent.expect_eof().unwrap();
    assert_eq!(events.next_close(), Closed::Shutdown);
    assert_eq!(events.next_close(), Closed::Shutdown);
    assert_eq!(handle.stats().closed_shutdown, 2);
}

#[test]
fn connection_in_its_handshake_is_dropped_at_shutdown() {
    let (probe, events) = Probe::new();
    let (running, addr) = start(test_config(), probe);
    let handle = running.handle();
    let mut stream = connect_tcp(addr).unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        .unwrap();
    // A full connection served after the partial one guarantees the worker has read it.
    let mut client = Client::connect(addr);
    client.sync();
    drop(client);
    handle.shutdown();
    let mut buf = [0u8; 16];
    assert_eq!(stream.read(&mut buf).unwrap(), 0, "EOF, no answer");
    join_within(running, Duration::from_secs(3));
    // Only the upgraded connection reached the handler.
    events.next_open();
    assert!(events.opened.try_recv().is_err());
}
