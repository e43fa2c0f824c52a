//! `Handle::broadcast` over real sockets: every open connection of every worker gets the
//! message; connections that negotiated permessage-deflate with equal settings share one
//! compressed payload, and their own compression goes on correctly afterwards. Also the chat
//! example of the README.

use std::net::SocketAddr;
use std::time::Duration;

use sockeye::deflate::DeflateConfig;
use sockeye::proto::Message;
use sockeye_tests::case_client::CaseClient;
use sockeye_tests::client::{Client, Echo, Request, join_within, start, test_config};

#[path = "../crates/sockeye/examples/chat.rs"]
#[allow(dead_code, unreachable_pub)]
mod chat;

#[test]
fn broadcast_reaches_every_connection_of_every_worker() {
    let mut config = test_config();
    config.workers = 2;
    let (running, addr) = start(config, Echo);
    let mut clients: Vec<Client> = (0..6).map(|_| Client::connect(addr)).collect();
    for client in &mut clients {
        client.sync(); // upgraded and registered on its worker
    }
    running
        .handle()
        .broadcast(Message::Text("to everyone"))
        .expect("broadcast");
    for client in &mut clients {
        assert_eq!(client.recv_text(), "to everyone");
    }
    running.handle().shutdown();
    join_within(running, Duration::from_secs(5));
}

fn deflate_server(no_context_takeover: bool) -> (sockeye::server::Running, SocketAddr) {
    let mut config = test_config();
    let mut deflate = DeflateConfig::default();
    deflate.threshold = 0;
    deflate.server_no_context_takeover = no_context_takeover;
    config.deflate = Some(deflate);
    start(config, Echo)
}

fn json_like(seq: usize) -> String {
    (0..40)
        .map(|i| {
            format!(
                "{{\"seq\":{seq},\"symbol\":\"S{i}\",\"bid\":{}.25,\"ask\":{}.5}}",
                100 + i,
                101 + i
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn compressed_broadcast_is_shared_and_contexts_stay_in_step() {
    for no_context_takeover in [true, false] {
        let (running, addr) = deflate_server(no_context_takeover);
        let mut deflated: Vec<CaseClient> = (1..=2)
            .map(|seed| CaseClient::connect(addr, "/", seed).expect("upgrade with deflate"))
            .collect();
        assert!(deflated.iter().all(CaseClient::deflate));
        let mut plain = Client::connect(addr);
        // Each connection's own compressor has a different history before the broadcast: with
        // context takeover, compressing per connection would give different bytes, so equal
        // frames below mean one shared, fresh-context compression.
        for (i, client) in deflated.iter_mut().enumerate() {
            let text = json_like(10 + i);
            client.send(Message::Text(&text)).unwrap();
            let (_, echo) = client.recv_message().unwrap();
            assert_eq!(echo, text.as_bytes());
        }
        plain.sync();
        for round in 1..=2 {
            let text = json_like(round);
            running.handle().broadcast(Message::Text(&text)).unwrap();
            let received: Vec<(Vec<u8>, Vec<u8>)> = deflated
                .iter_mut()
                .map(|c| c.recv_message().expect("the broadcast"))
                .collect();
            for (wire, payload) in &received {
                assert_eq!(payload, text.as_bytes());
                assert_eq!(wire[0] & 0x40, 0x40, "RSV1: compressed");
                assert!(
                    wire.len() < text.len() / 2,
                    "compressed: {} bytes",
                    wire.len()
                );
            }
            assert_eq!(
                received[0].0, received[1].0,
                "one compressed payload for both"
            );
            assert_eq!(plain.recv_text(), text);
            // Their own compression after a shared payload still decodes at the peer.
            for client in &mut deflated {
                let echo_text = json_like(100 + round);
                client.send(Message::Text(&echo_text)).unwrap();
                let (_, echo) = client.recv_message().unwrap();
                assert_eq!(echo, echo_text.as_bytes(), "context takeover in step");
            }
        }
        running.handle().shutdown();
        join_within(running, Duration::from_secs(5));
    }
}

#[test]
fn the_readme_chat_example_relays_to_everyone() {
    let running = chat::start(SocketAddr::from(([127, 0, 0, 1], 0))).expect("chat server");
    let addr = running.local_addrs()[0];
    let join = |name: &str| {
        let request = Request {
            path: format!("/chat/{name}"),
            protocols: vec!["chat".into()],
            origin: Some("http://127.0.0.1".into()),
            ..Request::default()
        };
        let mut client = Client::connect_with(addr, &request).expect("join the chat");
        client.sync();
        client
    };
    let mut alice = join("alice");
    let mut bob = join("bob");
    alice.send(Message::Text("hello")).unwrap();
    assert_eq!(alice.recv_text(), "alice: hello");
    assert_eq!(bob.recv_text(), "alice: hello");
    let foreign = Request {
        origin: Some("https://elsewhere.example".into()),
        ..Request::default()
    };
    assert!(
        Client::connect_with(addr, &foreign).is_err(),
        "403 for another origin"
    );
    drop((alice, bob));
    running.handle().shutdown();
    join_within(running, Duration::from_secs(5));
}
