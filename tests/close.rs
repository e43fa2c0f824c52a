//! Closing over real loopback sockets: the client's and the server's close handshakes, protocol
//! errors answered with their close code and a TCP close, and the reasons `on_close` reports.

use sockeye::proto::frame::OpCode;
use sockeye::proto::{CloseCode, Message, ProtocolError};
use sockeye::server::ServerConfig;
use sockeye_tests::client::{Client, Closed, Probe, start, test_config};
use sockeye_tests::wire::{client_frame, frame};

#[test]
fn client_close_is_echoed_then_the_server_closes_tcp() {
    let (probe, events) = Probe::new();
    let (running, addr) = start(test_config(), probe);
    let handle = running.handle();
    let mut client = Client::connect(addr);
    events.next_open();
    client.send(Message::Text("before")).unwrap();
    assert_eq!(client.recv_text(), "before");
    client.close(1000).unwrap();
    assert_eq!(client.recv_close(), (Some(1000), String::new()));
    // The server closes TCP first (RFC 6455 §7.1.1).
    client.expect_eof().unwrap();
    assert_eq!(
        events.next_close(),
        Closed::Remote {
            code: Some(1000),
            reason: String::new()
        }
    );
    drop(client);
    handle.shutdown();
    running.join().expect("no worker died");
}

#[test]
fn server_close_through_the_handle() {
    let (probe, events) = Probe::new();
    let (running, addr) = start(test_config(), probe);
    let handle = running.handle();
    let mut first = Client::connect(addr);
    let first_id = events.next_open();
    let mut second = Client::connect(addr);
    let second_id = events.next_open();
    assert_ne!(first_id, second_id);

    handle.close(second_id, CloseCode(4000), "bye").unwrap();
    assert_eq!(second.recv_close(), (Some(4000), "bye".to_owned()));
    // A message that crosses the server's close is still delivered, but nothing is sent after
    // a close frame: no echo comes back before the EOF.
    second
        .send_raw(&client_frame(true, OpCode::Text, b"ignored"))
        .unwrap();
    assert!(second.send_owed().unwrap(), "the close echo is owed");
    second.expect_eof().unwrap();
    assert_eq!(events.next_close(), Closed::Local(4000));

    // The other connection is untouched.
    first.send(Message::Text("still open")).unwrap();
    assert_eq!(first.recv_text(), "still open");
    first.sync();
    let stats = handle.stats();
    assert_eq!((stats.closed_local, stats.messages_in), (1, 2));
    drop((first, second));
    handle.shutdown();
    running.join().expect("no worker died");
}

#[test]
fn protocol_errors_get_their_close_code_then_eof() {
    let mut small_frames = test_config();
    small_frames.protocol.max_frame_size = 1024;
    let big = vec![0u8; 2048];
    let table: Vec<(&str, ServerConfig, Vec<u8>, u16, ProtocolError)> = vec![
        (
            "unmasked frame",
            test_config(),
            frame(true, OpCode::Text, b"hi", None),
            1002,
            ProtocolError::MaskMismatch { masked: false },
        ),
        (
            "reserved opcode",
            test_config(),
            sockeye_tests::wire::raw_client_frame(0x83, b""),
            1002,
            ProtocolError::ReservedOpCode(3),
        ),
        (
            "invalid UTF-8",
            test_config(),
            client_frame(true, OpCode::Text, b"ok \xff\xfe"),
            1007,
            ProtocolError::InvalidUtf8,
        ),
        (
            "frame over max_frame_size",
            small_frames,
            client_frame(true, OpCode::Binary, &big),
            1009,
            ProtocolError::FrameTooLarge {
                len: 2048,
                max: 1024,
            },
        ),
    ];
    for (name, config, bytes, code, error) in table {
        let (probe, events) = Probe::new();
        let (running, addr) = start(config, probe);
        let handle = running.handle();
        let mut client = Client::connect(addr);
        client.send_raw(&bytes).unwrap();
        assert_eq!(client.recv_close(), (Some(code), String::new()), "{name}");
        client
            .expect_eof()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(events.next_close(), Closed::Protocol(error), "{name}");
        drop(client);
        handle.shutdown();
        running.join().expect("no worker died");
        let stats = handle.stats();
        let counted = match code {
            1002 => stats.protocol_errors_1002,
            1007 => stats.protocol_errors_1007,
            _ => stats.protocol_errors_1009,
        };
        assert_eq!((counted, stats.closed_protocol), (1, 1), "{name}");
    }
}

#[test]
fn abrupt_tcp_close_mid_frame_is_disconnected() {
    let (probe, events) = Probe::new();
    let (running, addr) = start(test_config(), probe);
    let handle = running.handle();
    let mut client = Client::connect(addr);
    events.next_open();
    let whole = client_frame(true, OpCode::Binary, &[7u8; 100]);
    // Half a frame, then FIN without a close frame.
    client.send_raw(&whole[..40]).unwrap();
    drop(client);
    assert_eq!(events.next_close(), Closed::Disconnected);
    handle.shutdown();
    running.join().expect("no worker died");
    assert_eq!(handle.stats().closed_abnormal, 1);
}

#[test]
fn close_reasons_in_sequence() {
    // Three connections on one server end three ways; the handler hears each reason once.
    let (probe, events) = Probe::new();
    let (running, addr) = start(test_config(), probe);
    let handle = running.handle();

    let mut remote = Client::connect(addr);
    remote.close(1001).unwrap();
    assert_eq!(remote.recv_close().0, Some(1001));
    remote.expect_eof().unwrap();
    assert_eq!(
        events.next_close(),
        Closed::Remote {
            code: Some(1001),
            reason: String::new()
        }
    );

    let mut broken = Client::connect(addr);
    broken
        .send_raw(&client_frame(true, OpCode::Continuation, b"x"))
        .unwrap();
    assert_eq!(broken.recv_close().0, Some(1002));
    broken.expect_eof().unwrap();
    assert_eq!(
        events.next_close(),
        Closed::Protocol(ProtocolError::UnexpectedContinuation)
    );

    let gone = Client::connect(addr);
    gone.shutdown_write().unwrap();
    assert_eq!(events.next_close(), Closed::Disconnected);
    drop((remote, broken, gone));
    handle.shutdown();
    running.join().expect("no worker died");
    assert!(
        events.closed.try_recv().is_err(),
        "on_close runs once per connection"
    );
}
