//! permessage-deflate pairs for the tests and benches that need a negotiated extension.

use sockeye_deflate::{DeflateConfig, PerMessageDeflate};
use sockeye_proto::Extension;
use sockeye_proto::extension::{ParamWriter, parse_offers};

/// A (client, server) pair negotiated through real header text: the client's offer from
/// `client`, the server's answer from `server`, and the client's acceptance of it. Panics when
/// either side refuses.
pub fn negotiate(
    client: DeflateConfig,
    server: DeflateConfig,
) -> (PerMessageDeflate, PerMessageDeflate) {
    let mut client = PerMessageDeflate::client(client);
    let mut server = PerMessageDeflate::server(server);
    let mut buf = [0u8; 128];
    let mut writer = ParamWriter::new(&mut buf);
    client.write_offer(&mut writer).expect("offer written");
    let offer = format!("permessage-deflate{}", ascii(writer.as_bytes()));
    let offer = parse_offers(&offer)
        .next()
        .expect("one offer")
        .expect("valid");
    let mut buf = [0u8; 128];
    let mut writer = ParamWriter::new(&mut buf);
    assert!(server.accept_offer(&offer, &mut writer).expect("answered"));
    let response = format!("permessage-deflate{}", ascii(writer.as_bytes()));
    let response = parse_offers(&response).next().expect("one").expect("valid");
    client.accept_response(&response).expect("answer accepted");
    (client, server)
}

fn ascii(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("ASCII parameters")
}
