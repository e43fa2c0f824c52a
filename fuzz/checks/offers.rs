//! Offers: the input as a `Sec-WebSocket-Extensions` value, answered by servers with the default
//! and with a limiting configuration. An accepted offer gets a response that a client which
//! offered `client_max_window_bits` accepts, agreeing to the mirror image of the server's view,
//! and what the offer asked of the server (no context takeover, a window limit) is honoured.
//! The extension behind an `Option<Box<_>>` answers every offer as the extension itself does,
//! `None` and `NoExtension` decline them all, and every refusal has a message.
//!
//! Shared by `fuzz/fuzz_targets/offers.rs` and the seed replay in `tests/fuzz_seeds.rs`.
use sockeye_deflate::{DeflateConfig, PerMessageDeflate};
use sockeye_proto::extension::{ParamWriter, Params, parse_offers};
use sockeye_proto::{Extension, NoExtension, Rsv};

/// `Some(Box<PerMessageDeflate>)` answers each offer as the extension does; `None` and
/// `NoExtension` decline every one and write nothing.
fn boxed_and_absent(value: &str) {
    let config = DeflateConfig::default();
    let mut plain = PerMessageDeflate::server(config);
    let mut boxed = Some(Box::new(PerMessageDeflate::server(config)));
    let mut absent: Option<Box<PerMessageDeflate>> = None;
    assert_eq!(
        (boxed.name(), absent.name()),
        (plain.name(), NoExtension.name())
    );
    for offer in parse_offers(value) {
        let offer = match offer {
            Ok(offer) => offer,
            Err(e) => {
                assert!(!e.to_string().is_empty());
                continue;
            }
        };
        let (mut a, mut b) = ([0u8; 128], [0u8; 128]);
        let (mut wa, mut wb) = (ParamWriter::new(&mut a), ParamWriter::new(&mut b));
        let ours = plain.accept_offer(&offer, &mut wa);
        assert_eq!(boxed.accept_offer(&offer, &mut wb), ours);
        assert_eq!(wa.as_bytes(), wb.as_bytes());
        if let Err(e) = ours {
            assert!(!e.to_string().is_empty());
        }
        let mut w = ParamWriter::new(&mut a);
        assert_eq!(absent.accept_offer(&offer, &mut w), Ok(false));
        assert_eq!(NoExtension.accept_offer(&offer, &mut w), Ok(false));
        assert!(w.is_empty());
        assert!(absent.accept_response(&offer).is_err());
        assert!(NoExtension.accept_response(&offer).is_err());
    }
    assert_eq!(boxed.rsv(), plain.rsv());
    assert_eq!((absent.rsv(), NoExtension.rsv()), (Rsv::NONE, Rsv::NONE));
    let mut out = Vec::new();
    assert_eq!(absent.encode(b"data", &mut out), Ok(Rsv::NONE));
    assert!(out.is_empty());
}

/// The first offer `server` accepts, with the full response header value.
fn answer<'v>(server: &mut PerMessageDeflate, value: &'v str) -> Option<(Params<'v>, String)> {
    parse_offers(value).flatten().find_map(|offer| {
        let mut buf = [0u8; 128];
        let mut writer = ParamWriter::new(&mut buf);
        let accepted = server.accept_offer(&offer, &mut writer) == Ok(true);
        let params = std::str::from_utf8(writer.as_bytes()).unwrap();
        accepted.then(|| (offer, format!("permessage-deflate{params}")))
    })
}

/// The invariants, for one input.
pub(crate) fn check(data: &[u8]) {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    boxed_and_absent(value);
    let mut limited = DeflateConfig::default();
    (
        limited.server_no_context_takeover,
        limited.server_max_window_bits,
    ) = (true, 10);
    (
        limited.client_no_context_takeover,
        limited.client_max_window_bits,
    ) = (true, 9);
    for config in [DeflateConfig::default(), limited] {
        let mut server = PerMessageDeflate::server(config);
        let Some((offer, response)) = answer(&mut server, value) else {
            continue;
        };
        let mut client = PerMessageDeflate::client(DeflateConfig::default());
        client
            .accept_response(&parse_offers(&response).next().unwrap().unwrap())
            .unwrap();
        let (c, s) = (client.negotiated().unwrap(), server.negotiated().unwrap());
        assert_eq!((c.send, c.recv), (s.recv, s.send), "{response}");
        let asked = |name| {
            offer
                .iter()
                .flatten()
                .find(|&(n, _)| n == name)
                .map(|(_, v)| v)
        };
        assert!(asked("server_no_context_takeover").is_none() || s.send.no_context_takeover);
        let bits = asked("server_max_window_bits")
            .flatten()
            .map_or(15, |v| v.parse().unwrap());
        assert!(s.send.max_window_bits <= bits, "{response}");
    }
}
