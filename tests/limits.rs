//! Configured limits over real loopback sockets: message size and fragment count (1009), the
//! request head (431), and connections per worker (accepting pauses at the limit).

use std::time::Duration;

use sockeye::proto::frame::OpCode;
use sockeye::proto::{Message, ProtocolError};
use sockeye_tests::client::{
    Client, Closed, Echo, OwnedEvent, Pending, Probe, Request, http_exchange, start, test_config,
};
use sockeye_tests::wire::client_frame;

/// `parts` as the fragments of one text message.
fn fragments(parts: &[&[u8]]) -> Vec<u8> {
    let mut wire = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let opcode = if i == 0 {
            OpCode::Text
        } else {
            OpCode::Continuation
        };
        wire.extend(client_frame(i == parts.len() - 1, opcode, part));
    }
    wire
}

#[test]
fn fragmented_message_over_max_message_size_is_1009() {
    let mut config = test_config();
    config.protocol.max_message_size = 1000;
    let (probe, events) = Probe::new();
    let (running, addr) = start(config, probe);
    let handle = running.handle();

    // Exactly at the limit, in fragments and whole: accepted.
    let mut client = Client::connect(addr);
    client
        .send_raw(&fragments(&[&[b'a'; 500], &[b'b'; 500]]))
        .unwrap();
    let expected = format!("{}{}", "a".repeat(500), "b".repeat(500));
    assert_eq!(client.recv_text(), expected);
    client.send(Message::Binary(&[1; 1000])).unwrap();
    assert_eq!(client.recv().unwrap(), OwnedEvent::Binary(vec![1; 1000]));

    // One byte over, spread over fragments that are each well under it.
    client
        .send_raw(&fragments(&[&[b'a'; 600], &[b'b'; 401]]))
        .unwrap();
    assert_eq!(client.recv_close().0, Some(1009));
    client.expect_eof().unwrap();
    assert_eq!(
        events.next_close(),
        Closed::Protocol(ProtocolError::MessageTooLarge {
            len: 1001,
            max: 1000
        })
    );
    drop(client);

    // A single frame over it.
    let mut client = Client::connect(addr);
    client.send(Message::Binary(&[0; 1001])).unwrap();
    assert_eq!(client.recv_close().0, Some(1009));
    client.expect_eof().unwrap();
    drop(client);
    handle.shutdown();
    running.join().expect("no worker died");
    assert_eq!(handle.stats().protocol_errors_1009, 2);
}

#[test]
fn too_many_fragments_is_1009() {
    let mut config = test_config();
    config.protocol.max_fragments = 4;
    let (probe, events) = Probe::new();
    let (running, addr) = start(config, probe);
    let handle = running.handle();
    let mut client = Client::connect(addr);
    client
        .send_raw(&fragments(&[b"a", b"b", b"", b"c"]))
        .unwrap();
    assert_eq!(client.recv_text(), "abc");
    client
        .send_raw(&fragments(&[b"a", b"b", b"c", b"d", b"e"]))
        .unwrap();
    assert_eq!(client.recv_close().0, Some(1009));
    client.expect_eof().unwrap();
    assert_eq!(
        events.next_close(),
        Closed::Protocol(ProtocolError::TooManyFragments { max: 4 })
    );
    drop(client);
    handle.shutdown();
    running.join().expect("no worker died");
}

#[test]
fn fragments_of_64_bytes_or_more_do_not_count_against_the_fragment_limit() {
    let mut config = test_config();
    config.protocol.max_fragments = 4;
    let (running, addr) = start(config, Echo);
    let handle = running.handle();
    let mut client = Client::connect(addr);
    // 1000 fragments of 64 bytes, then small ones up to the limit (the last one included).
    let big = [b'x'; 64];
    let mut parts: Vec<&[u8]> = vec![&big; 1000];
    parts.extend([&b""[..], b"a", b"b", b"c"]);
    client.send_raw(&fragments(&parts)).unwrap();
    assert_eq!(client.recv_text().len(), 64_000 + 3);
    // One more small one is one too many, however large the others.
    parts.push(b"d");
    client.send_raw(&fragments(&parts)).unwrap();
    assert_eq!(client.recv_close().0, Some(1009));
    drop(client);
    handle.shutdown();
    running.join().expect("no worker died");
}

#[test]
fn request_head_over_max_head_len_is_431() {
    let mut config = test_config();
    config.handshake.max_head_len = 1024;
    let (running, addr) = start(config, Echo);
    let handle = running.handle();

    // A head just under the limit is served.
    let fits = Request {
        headers: vec![("X-Pad".to_owned(), "p".repeat(700))],
        ..Request::default()
    };
    let key = [b'A'; 22].iter().chain(b"==").copied().collect::<Vec<_>>();
    let key: [u8; 24] = key.try_into().unwrap();
    assert!(fits.encode(&addr.to_string(), &key).len() <= 1024);
    let mut client = Client::connect_with(addr, &fits).unwrap();
    client.send(Message::Text("fits")).unwrap();
    assert_eq!(client.recv_text(), "fits");
    drop(client);

    let over = Request {
        headers: vec![("X-Pad".to_owned(), "p".repeat(1100))],
        ..Request::default()
    };
    let bytes = over.encode(&addr.to_string(), &key);
    let answer = http_exchange(addr, &bytes);
    assert_eq!(answer.status, 431, "{}", answer.head);

    // The limit also holds for a head that never ends: 431 once it is over, not a wait.
    let endless = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Pad: {}", "p".repeat(2000));
    let answer = http_exchange(addr, endless.as_bytes());
    assert_eq!(answer.status, 431, "{}", answer.head);
    handle.shutdown();
    running.join().expect("no worker died");
}

#[test]
fn max_connections_pauses_accepting_until_one_closes() {
    let mut config = test_config();
    config.workers = 1;
    config.max_connections = 2;
    let (running, addr) = start(config, Echo);
    let handle = running.handle();
    let mut first = Client::connect(addr);
    let mut second = Client::connect(addr);

    // The kernel completes the third TCP handshake (the backlog holds it) but the worker does
    // not accept it: its upgrade request stays unanswered.
    let third = Pending::send(addr, &Request::default()).unwrap();
    assert!(
        !third.answered_within(Duration::from_millis(300)).unwrap(),
        "the third client was served while two were open"
    );
    second.send(Message::Text("second")).unwrap();
    assert_eq!(second.recv_text(), "second");

    // One of the two closes: the third is accepted and upgraded.
    first.close(1000).unwrap();
    assert_eq!(first.recv_close().0, Some(1000));
    first.expect_eof().unwrap();
    drop(first);
    let mut third = third.finish().unwrap();
    third.send(Message::Text("third")).unwrap();
    assert_eq!(third.recv_text(), "third");
    third.sync();
    let stats = handle.stats();
    assert_eq!(
        (stats.accepted, stats.upgraded, stats.connections_open),
        (3, 3, 2)
    );
    drop((second, third));
    handle.shutdown();
    running.join().expect("no worker died");
}
