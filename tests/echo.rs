//! Echo over real loopback sockets: payload sizes across every length encoding up to the
//! message limit, fragments with pings between them, pipelined messages, and a message
//! written one byte at a time.

use std::io::Write as _;

use sockeye::proto::Message;
use sockeye::proto::frame::OpCode;
use sockeye_tests::client::{Client, Echo, OwnedEvent, start, test_config};
use sockeye_tests::wire::client_frame;

/// Sizes around each payload-length encoding (7-bit, 16-bit, 64-bit) and large messages.
const SIZES: [usize; 6] = [0, 125, 126, 65_535, 65_536, 1 << 20];

/// The default `max_message_size` (and `max_frame_size`): a message of exactly this size is
/// accepted.
const DEFAULT_LIMIT: usize = 16 << 20;

/// Valid UTF-8 of exactly `len` bytes, with 2-, 3- and 4-byte sequences that straddle reads.
fn text_of(len: usize) -> String {
    let mut text = String::with_capacity(len);
    for c in "sockeye é ✓ 🦀 ".chars().cycle() {
        if text.len() + c.len_utf8() > len {
            break;
        }
        text.push(c);
    }
    while text.len() < len {
        text.push('.');
    }
    text
}

fn binary_of(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 251) as u8).collect()
}

fn echo_sizes(sizes: &[usize]) {
    let (running, addr) = start(test_config(), Echo);
    let handle = running.handle();
    let mut client = Client::connect(addr);
    for &len in sizes {
        let text = text_of(len);
        assert_eq!(text.len(), len);
        client.send(Message::Text(&text)).unwrap();
        match client.recv().unwrap() {
            OwnedEvent::Text(echo) => assert!(echo == text, "text of {len} bytes differs"),
            other => panic!("{len} bytes of text: got {:?}", short(&other)),
        }
        let bytes = binary_of(len);
        client.send(Message::Binary(&bytes)).unwrap();
        match client.recv().unwrap() {
            OwnedEvent::Binary(echo) => assert!(echo == bytes, "binary of {len} bytes differs"),
            other => panic!("{len} bytes of binary: got {:?}", short(&other)),
        }
    }
    client.sync();
    let stats = handle.stats();
    assert_eq!(stats.messages_in, 2 * sizes.len() as u64);
    assert_eq!(stats.protocol_errors_1009, 0);
    drop(client);
    handle.shutdown();
    running.join().expect("no worker died");
}

/// An event's kind and size, for failure messages that do not print megabytes.
fn short(event: &OwnedEvent) -> String {
    match event {
        OwnedEvent::Text(t) => format!("Text({} bytes)", t.len()),
        OwnedEvent::Binary(b) => format!("Binary({} bytes)", b.len()),
        other => format!("{other:?}"),
    }
}

#[test]
fn text_and_binary_of_every_length_encoding() {
    echo_sizes(&SIZES);
}

#[test]
fn sixteen_mib_exactly_at_the_default_limit() {
    echo_sizes(&[DEFAULT_LIMIT]);
}

#[test]
fn fragments_with_pings_between_them() {
    let (running, addr) = start(test_config(), Echo);
    let handle = running.handle();
    let mut client = Client::connect(addr);

    // All in one write: the pongs must still leave before the echo.
    let mut wire = client_frame(false, OpCode::Text, "frag".as_bytes());
    wire.extend(client_frame(true, OpCode::Ping, b"one"));
    wire.extend(client_frame(
        false,
        OpCode::Continuation,
        "mented ".as_bytes(),
    ));
    wire.extend(client_frame(true, OpCode::Ping, b"two"));
    wire.extend(client_frame(true, OpCode::Continuation, "✓".as_bytes()));
    client.send_raw(&wire).unwrap();
    assert_eq!(client.recv().unwrap(), OwnedEvent::Pong(b"one".to_vec()));
    assert_eq!(client.recv().unwrap(), OwnedEvent::Pong(b"two".to_vec()));
    assert_eq!(client.recv().unwrap(), OwnedEvent::text("fragmented ✓"));

    // One frame per write, waiting for each pong: a binary message in four fragments.
    let parts: [&[u8]; 4] = [b"\x00\x01", b"", b"\x02", b"\x03\x04"];
    for (i, part) in parts.iter().enumerate() {
        let opcode = if i == 0 {
            OpCode::Binary
        } else {
            OpCode::Continuation
        };
        client
            .send_raw(&client_frame(i == parts.len() - 1, opcode, part))
            .unwrap();
        if i < parts.len() - 1 {
            client.send(Message::Ping(&[i as u8])).unwrap();
            assert_eq!(client.recv().unwrap(), OwnedEvent::Pong(vec![i as u8]));
        }
    }
    assert_eq!(
        client.recv().unwrap(),
        OwnedEvent::Binary(vec![0, 1, 2, 3, 4])
    );
    client.sync();
    assert_eq!(handle.stats().messages_in, 2);
    drop(client);
    handle.shutdown();
    running.join().expect("no worker died");
}

#[test]
fn many_messages_in_one_write() {
    const COUNT: usize = 500;
    let (running, addr) = start(test_config(), Echo);
    let handle = running.handle();
    let mut client = Client::connect(addr);
    client.pipelined_echoes(COUNT);
    client.sync();
    assert_eq!(handle.stats().messages_in, COUNT as u64);
    drop(client);
    handle.shutdown();
    running.join().expect("no worker died");
}

#[test]
fn message_written_one_byte_at_a_time() {
    let (running, addr) = start(test_config(), Echo);
    let handle = running.handle();
    let mut client = Client::connect(addr);
    // A 16-bit length header, text with multi-byte characters, then a ping and a second
    // message, every byte in its own write (TCP_NODELAY is on).
    let text = text_of(300);
    let mut wire = client_frame(true, OpCode::Text, text.as_bytes());
    wire.extend(client_frame(true, OpCode::Ping, b"tick"));
    wire.extend(client_frame(true, OpCode::Binary, b"\xff\x00"));
    let mut stream = client.stream().try_clone().unwrap();
    for byte in &wire {
        stream.write_all(std::slice::from_ref(byte)).unwrap();
    }
    assert_eq!(client.recv().unwrap(), OwnedEvent::Text(text));
    assert_eq!(client.recv().unwrap(), OwnedEvent::Pong(b"tick".to_vec()));
    assert_eq!(client.recv().unwrap(), OwnedEvent::Binary(vec![0xff, 0]));
    drop(stream);
    drop(client);
    handle.shutdown();
    running.join().expect("no worker died");
}
