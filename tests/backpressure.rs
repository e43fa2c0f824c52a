//! Backpressure over a real loopback socket: a client that stops reading while the server sends
//! it megabytes. The server refuses sends past the limit (memory stays bounded), pauses reading,
//! and once the client drains its socket every message arrives whole and in order and
//! `on_writable` runs.

use std::sync::mpsc::{self, Receiver, Sender};

use sockeye::proto::{Message, Request as UpgradeRequest};
use sockeye::server::{Accept, Handler, Outbox, Reject, SendError};
use sockeye_tests::client::{Client, OwnedEvent, TIMEOUT, start, test_config};

/// Each flood message.
const MESSAGE: usize = 1 << 20;
/// The backpressure limit of the test: sends are refused once this much is queued.
const LIMIT: usize = 4 << 20;
/// A frame header of a 1 MiB server frame (2 + 8 bytes).
const HEADER: usize = 10;

/// What the handler saw when its flood was refused.
#[derive(Debug)]
struct Refused {
    /// Bytes queued when the flood started.
    before: usize,
    /// Sends accepted by this flood.
    accepted: u64,
    /// Sends accepted on the connection so far.
    total: u64,
    /// Bytes queued when the send was refused.
    buffered: usize,
    error: SendError,
}

/// On the text "flood", sends 1 MiB messages (each stamped with its sequence number) until a
/// send fails; on `on_writable`, sends "drained" once; other messages are echoed.
#[derive(Debug, Clone)]
struct Flood {
    refused: Sender<Refused>,
    writable: Sender<usize>,
}

#[derive(Debug, Default)]
struct FloodConn {
    sent: u64,
    drained: bool,
}

/// Message `seq`: its number, then bytes derived from it.
fn flood_message(seq: u64) -> Vec<u8> {
    let mut msg: Vec<u8> = (0..MESSAGE)
        .map(|i| (i as u64 ^ seq.wrapping_mul(7)) as u8)
        .collect();
    msg[..8].copy_from_slice(&seq.to_le_bytes());
    msg
}

impl Handler for Flood {
    type Conn = FloodConn;

    fn on_upgrade(
        &mut self,
        _req: &UpgradeRequest<'_>,
        _accept: &mut Accept<'_>,
    ) -> Result<FloodConn, Reject> {
        Ok(FloodConn::default())
    }

    fn on_message(&mut self, conn: &mut FloodConn, msg: Message<'_>, out: &mut Outbox<'_>) {
        if msg != Message::Text("flood") {
            let _ = out.send(msg);
            return;
        }
        let before = out.buffered_amount();
        let first = conn.sent;
        loop {
            match out.send(Message::Binary(&flood_message(conn.sent))) {
                Ok(()) => conn.sent += 1,
                Err(error) => {
                    let refused = Refused {
                        before,
                        accepted: conn.sent - first,
                        total: conn.sent,
                        buffered: out.buffered_amount(),
                        error,
                    };
                    let _ = self.refused.send(refused);
                    return;
                }
            }
        }
    }

    fn on_writable(&mut self, conn: &mut FloodConn, out: &mut Outbox<'_>) {
        let _ = self.writable.send(out.buffered_amount());
        if !conn.drained {
            conn.drained = true;
            let _ = out.send(Message::Text("drained"));
        }
    }
}

fn flood() -> (Flood, Receiver<Refused>, Receiver<usize>) {
    let (refused_tx, refused) = mpsc::channel();
    let (writable_tx, writable) = mpsc::channel();
    let handler = Flood {
        refused: refused_tx,
        writable: writable_tx,
    };
    (handler, refused, writable)
}

#[test]
fn client_that_stops_reading_meets_the_limit_then_gets_everything_in_order() {
    let mut config = test_config();
    config.backpressure.limit = LIMIT;
    config.backpressure.high_water = 256 << 10;
    config.backpressure.low_water = 64 << 10;
    let (handler, refused, writable) = flood();
    let (running, addr) = start(config, handler);
    let handle = running.handle();

    let mut reader = Client::connect(addr);
    let mut other = Client::connect(addr);
    // The kernel's socket buffers take megabytes before a send would block, so the reader
    // asks for floods (each bounded by the limit) until the queue passes the high-water mark
    // and the worker stops reading it. The client reads nothing meanwhile.
    let mut total = 0;
    for round in 0.. {
        assert!(round < 16, "reading never paused");
        let out_before = handle.stats().bytes_out;
        reader.send(Message::Text("flood")).unwrap();
        let refused = refused
            .recv_timeout(TIMEOUT)
            .expect("the flood meets the limit");
        assert_eq!(refused.error, SendError::Backpressure);
        assert!(refused.buffered <= LIMIT + MESSAGE + HEADER, "{refused:?}");
        total = refused.total;
        // Another connection's round trip is served in a later loop turn, after the flood's
        // turn published its counters; the flooded connection does not hold the worker up.
        other.sync();
        // Memory stays bounded: sends stop once the queue is over the limit, so at most one
        // message lies beyond it; the rest of what was accepted is what the kernel took (large
        // messages go to the socket as they are sent).
        let taken = (handle.stats().bytes_out - out_before) as usize;
        let accepted_bytes = refused.accepted as usize * (MESSAGE + HEADER);
        assert!(
            accepted_bytes <= LIMIT - refused.before.min(LIMIT) + MESSAGE + HEADER + taken,
            "{refused:?}, {taken} bytes taken by the kernel"
        );
        if handle.stats().read_pauses > 0 {
            break;
        }
    }
    let stats = handle.stats();
    assert!(stats.sends_over_limit >= 1, "{stats:?}");
    assert_eq!(stats.messages_out, total, "{stats:?}");
    other.send(Message::Text("other")).unwrap();
    assert_eq!(other.recv_text(), "other");

    // Now the client drains its socket: everything arrives, whole and in order.
    for seq in 0..total {
        match reader.recv().unwrap() {
            OwnedEvent::Binary(bytes) => {
                assert_eq!(bytes.len(), MESSAGE, "message {seq}");
                assert!(bytes == flood_message(seq), "message {seq} differs");
            }
            other => panic!("message {seq}: expected binary, got {other:?}"),
        }
    }
    // `on_writable` ran once the queue fell to the low-water mark, and could send again.
    assert_eq!(reader.recv_text(), "drained");
    let buffered = writable.recv_timeout(TIMEOUT).expect("on_writable ran");
    assert!(
        buffered <= 64 << 10,
        "on_writable with {buffered} bytes queued"
    );

    // Reading resumed: the connection echoes again.
    reader.send(Message::Text("after")).unwrap();
    assert_eq!(reader.recv_text(), "after");
    drop((reader, other));
    handle.shutdown();
    running.join().expect("no worker died");
}
