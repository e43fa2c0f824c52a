//! The control lane over a real loopback socket: with megabytes queued for a client that does
//! not read, a pong and the close frame of a server-initiated close do not wait behind the
//! queued data (they leave at the next frame boundary; only what the kernel already holds comes
//! first). The client reads nothing until the server has seen its ping, so the flood is queued
//! by then whatever the scheduling.

use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{self, Receiver, Sender};

use socket2::{Domain, Socket, Type};
use sockeye::proto::{CloseCode, Message, Request as UpgradeRequest};
use sockeye::server::{Accept, ConnId, Handler, Outbox, Reject, ServerConfig};
use sockeye_tests::client::{Client, OwnedEvent, Pending, Request, TIMEOUT, start, test_config};

/// Messages flooded, and their size: 48 MiB in all, far more than the kernel buffers (which
/// hold 8 to 12 MiB on loopback here, whatever the client's receive buffer).
const COUNT: usize = 48;
const SIZE: usize = 1 << 20;

/// Tells the test each connection's id, and each ping it got; on the text "flood", queues
/// `COUNT` binary messages of `SIZE` bytes, each filled with its sequence number.
#[derive(Debug, Clone)]
struct Flood {
    ids: Sender<ConnId>,
    pings: Sender<()>,
}

impl Handler for Flood {
    type Conn = ();

    fn on_upgrade(&mut self, _: &UpgradeRequest<'_>, _: &mut Accept<'_>) -> Result<(), Reject> {
        Ok(())
    }

    fn on_open(&mut self, _: &mut (), out: &mut Outbox<'_>) {
        let _ = self.ids.send(out.id());
    }

    fn on_ping(&mut self, _: &mut (), _: &[u8], _: &mut Outbox<'_>) {
        let _ = self.pings.send(());
    }

    fn on_message(&mut self, _: &mut (), msg: Message<'_>, out: &mut Outbox<'_>) {
        if msg == Message::Text("flood") {
            for seq in 0..COUNT {
                out.send(Message::Binary(&vec![seq as u8; SIZE]))
                    .expect("under the limit");
            }
        }
    }
}

/// A configuration that lets the whole flood queue (no pause, no refusal).
fn roomy() -> ServerConfig {
    let mut config = test_config();
    config.backpressure.high_water = 128 << 20;
    config.backpressure.limit = 128 << 20;
    config
}

/// A client whose socket buffers about 64 KiB, so the flood stays queued in the server.
fn small_client(addr: SocketAddr) -> Client {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(64 << 10).unwrap();
    socket.connect_timeout(&addr.into(), TIMEOUT).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    Pending::send_on(stream, "localhost", &Request::default())
        .unwrap()
        .finish()
        .unwrap()
}

/// Reads flood messages (checking their order from `next`) until an event that is not one;
/// returns how many came and that event.
fn read_flood(client: &mut Client, next: usize) -> (usize, OwnedEvent) {
    let mut seen = 0;
    loop {
        match client.recv().expect("the stream goes on") {
            OwnedEvent::Binary(bytes) => {
                let seq = next + seen;
                assert_eq!((bytes.len(), bytes[0]), (SIZE, seq as u8), "in order");
                seen += 1;
            }
            other => return (seen, other),
        }
    }
}

/// A server and a client that asked for the flood and then sent a ping with `payload`; returns
/// once the server's handler has seen the ping. The flood was queued before it (one connection's
/// callbacks run in order), and the client has read nothing: all but what the kernel holds is
/// in the engine's queue, whatever the scheduling. (Reading before that would let the server
/// write the whole flood while it runs the handler, and the pong would rightly come last.)
fn flooded(
    config: ServerConfig,
    payload: &[u8],
) -> (sockeye::server::Running, Client, Receiver<ConnId>) {
    let (tx, ids) = mpsc::channel();
    let (ping_tx, pings) = mpsc::channel();
    let handler = Flood {
        ids: tx,
        pings: ping_tx,
    };
    let (running, addr) = start(config, handler);
    let mut client = small_client(addr);
    client.send(Message::Text("flood")).unwrap();
    client.send(Message::Ping(payload)).unwrap();
    pings
        .recv_timeout(TIMEOUT)
        .expect("the server got the ping");
    (running, client, ids)
}

#[test]
fn a_pong_overtakes_the_queued_data_of_a_slow_reader() {
    let (running, mut client, _ids) = flooded(roomy(), b"still there?");
    let (before, event) = read_flood(&mut client, 0);
    assert_eq!(event, OwnedEvent::Pong(b"still there?".to_vec()));
    // What the kernel held when the pong was queued (the server's send buffer grows to a few
    // MiB on loopback) came first; the engine's queue did not.
    assert!(
        before < COUNT / 2,
        "the pong came after {before} of {COUNT}"
    );
    // The rest follows, in order.
    for seq in before..COUNT {
        let event = client.recv().unwrap();
        assert_eq!(
            event,
            OwnedEvent::Binary(vec![seq as u8; SIZE]),
            "message {seq}"
        );
    }
    client.sync();
    running.handle().shutdown();
    running.join().expect("no worker died");
}

#[test]
fn a_handle_close_goes_out_after_at_most_one_partly_written_frame() {
    let (running, mut client, ids) = flooded(roomy(), b"queued?");
    let id = ids.recv_timeout(TIMEOUT).unwrap();
    // Once the pong is back the flood is queued: the close comes behind it.
    let (before, event) = read_flood(&mut client, 0);
    assert_eq!(event, OwnedEvent::Pong(b"queued?".to_vec()));
    running
        .handle()
        .close(id, CloseCode::NORMAL, "bye")
        .unwrap();
    // A worker runs its commands in order: once a job posted behind the close has run (or was
    // dropped with the connection gone), the close frame is queued, before the client reads on.
    let (ran, done) = mpsc::channel();
    running
        .handle()
        .with_conn::<(), _>(id, move |_, _| {
            let _ = ran.send(());
        })
        .unwrap();
    let waited = done.recv_timeout(TIMEOUT);
    assert_ne!(
        waited,
        Err(mpsc::RecvTimeoutError::Timeout),
        "the close ran"
    );
    let (more, event) = read_flood(&mut client, before);
    assert_eq!(event, OwnedEvent::Close(Some(1000), "bye".to_owned()));
    assert!(
        before + more < COUNT / 2,
        "the close came after {} of {COUNT}",
        before + more
    );
    assert!(client.send_owed().unwrap(), "the echo of the close");
    client.expect_eof().unwrap();
    running.handle().shutdown();
    running.join().expect("no worker died");
}
