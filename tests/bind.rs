//! Binding: an address another server listens on is refused, unless both share it on purpose
//! (`reuse_port`); one server's own workers always share their port.

use std::net::SocketAddr;

use sockeye::server::{Server, SetupError};
use sockeye_tests::client::{Client, Echo, start, test_config};

#[test]
fn a_second_server_on_a_taken_port_fails_with_address_in_use() {
    let mut config = test_config();
    config.workers = 2;
    let (running, addr) = start(config.clone(), Echo);
    config.addrs = vec![addr];
    let err = Server::bind(config.clone(), Echo).expect_err("the port is taken");
    let SetupError::Bind {
        addr: failed,
        source,
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(*failed, addr);
    assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    // The first server was not disturbed.
    let mut client = Client::connect(addr);
    client.send(sockeye::proto::Message::Text("mine")).unwrap();
    assert_eq!(client.recv_text(), "mine");
    drop(client);
    running.handle().shutdown();
    running.join().expect("no worker died");
}

#[test]
fn servers_that_both_ask_for_reuse_port_share_it() {
    let mut config = test_config();
    config.reuse_port = true;
    let (first, addr): (_, SocketAddr) = start(config.clone(), Echo);
    config.addrs = vec![addr];
    let second = Server::bind(config, Echo).expect("shared on purpose");
    assert_eq!(second.local_addrs(), [addr]);
    drop(second);
    first.handle().shutdown();
    first.join().expect("no worker died");
}
