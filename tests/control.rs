//! The control lane over a real loopback socket: with megabytes queued for a client that does
//! not read, a pong and the close frame of a server-initiated close do not wait behind the
//! queued data (they leave at the next frame boundary; only what the kernel already holds comes
//! first).

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

/// Tells the test each connection's id; on the text "flood", queues `COUNT` binary messages of
/// `SIZE` bytes, each filled with its sequence number.
#[derive(Debug, Clone)]
struct Flood(Sender<ConnId>);

impl Handler for Flood {
    type Conn = ();

    fn on_upgrade(&mut self, _: &UpgradeRequest<'_>, _: &mut Accept<'_>) -> Result<(), Reject> {
        Ok(())
    }

    fn on_open(&mut self, _: &mut (), out: &mut Outbox<'_>) {
        let _ = self.0.send(out.id());
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

fn flooded(config: ServerConfig) -> (sockeye::server::Running, Client, Receiver<ConnId>) {
    let (tx, ids) = mpsc::channel();
    let (running, addr) = start(config, Flood(tx));
    let mut client = small_client(addr);
    client.send(Message::Text("flood")).unwrap();
    (running, client, ids)
}

#[test]
fn a_pong_overtakes_the_queued_data_of_a_slow_reader() {
    let (running, mut client, _ids) = flooded(roomy());
    client.send(Message::Ping(b"still there?")).unwrap();
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
    let (running, mut client, ids) = flooded(roomy());
    let id = ids.recv_timeout(TIMEOUT).unwrap();
    // Once the pong is back the flood is queued: the close comes behind it.
    client.send(Message::Ping(b"queued?")).unwrap();
    let (before, event) = read_flood(&mut client, 0);
    assert_eq!(event, OwnedEvent::Pong(b"queued?".to_vec()));
    running
        .handle()
        .close(id, CloseCode::NORMAL, "bye")
        .unwrap();
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
