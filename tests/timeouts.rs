//! Timers end to end over real loopback sockets: the handshake deadline (slow-loris) and the
//! idle timeout with its keepalive ping. The timing logic itself (every deadline to the
//! millisecond, keepalive answered, close handshake, lifetime, message timeout, linger) is
//! tested on a virtual clock in the engine (`sockeye-server`'s `worker::tests`); these check
//! that the real loop arms and fires the same timers.
//!
//! Each timer is set to a few hundred milliseconds; the client's socket read timeouts bound
//! every wait, and elapsed times are checked with generous upper margins.

use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use sockeye::server::Timeout;
use sockeye_tests::client::{Client, Closed, OwnedEvent, Probe, connect_tcp, start, test_config};

const SHORT: Duration = Duration::from_millis(300);
/// Timers fire on a loaded CI machine within this much of their deadline.
const SLACK: Duration = Duration::from_secs(2);
/// How much earlier the server's clock for a timer can start than the client's stopwatch (the
/// server stamps `last_rx` before it writes the 101 the client waits for).
const EARLY: Duration = Duration::from_millis(150);

#[test]
fn slow_loris_handshake_is_dropped_after_the_handshake_timeout() {
    let mut config = test_config();
    config.handshake_timeout = SHORT;
    let (probe, events) = Probe::new();
    let (running, addr) = start(config, probe);
    let handle = running.handle();
    let mut stream = connect_tcp(addr).unwrap();
    stream.set_read_timeout(Some(SLACK)).unwrap();
    let started = Instant::now();
    // Half a request, and then nothing.
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nUpg")
        .unwrap();
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).expect("EOF within 2 s");
    let elapsed = started.elapsed();
    assert_eq!(n, 0, "no answer to an unfinished request: {:?}", &buf[..n]);
    assert!(elapsed >= SHORT - EARLY, "closed after {elapsed:?}");
    assert!(elapsed < SHORT + SLACK, "closed after {elapsed:?}");
    drop(stream);
    handle.shutdown();
    running.join().expect("no worker died");
    let stats = handle.stats();
    assert_eq!((stats.accepted, stats.upgraded, stats.rejected), (1, 0, 1));
    // The connection never opened, so the handler heard nothing.
    assert!(events.opened.try_recv().is_err() && events.closed.try_recv().is_err());
}

#[test]
fn idle_connection_that_does_not_answer_is_closed_with_1001() {
    let idle = Duration::from_millis(600);
    let mut config = test_config();
    config.idle_timeout = Some(idle);
    let (probe, events) = Probe::new();
    let (running, addr) = start(config, probe);
    let handle = running.handle();
    let mut client = Client::connect(addr);
    let started = Instant::now();
    assert_eq!(client.recv().unwrap(), OwnedEvent::Ping(Vec::new()));
    // No pong.
    let (code, _) = client.recv_close();
    let elapsed = started.elapsed();
    assert_eq!(code, Some(1001));
    assert!(elapsed >= idle - EARLY, "closed after {elapsed:?}");
    assert!(elapsed < idle + SLACK, "closed after {elapsed:?}");
    // The peer is unresponsive: the server does not wait for its close.
    client.expect_eof().unwrap();
    assert_eq!(events.next_close(), Closed::Timeout(Timeout::Idle));
    drop(client);
    handle.shutdown();
    running.join().expect("no worker died");
    assert_eq!(handle.stats().closed_timeout, 1);
}
