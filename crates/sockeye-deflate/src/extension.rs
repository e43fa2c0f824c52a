//! [`PerMessageDeflate`]: permessage-deflate on sockeye's inline [`Extension`] hook.

use core::fmt;

use sockeye_proto::extension::{ParamWriter, Params};
use sockeye_proto::{Extension, ExtensionError, NegotiationError, Role, Rsv};

use crate::config::DeflateConfig;
use crate::deflate::{Deflater, History, SendSettings, SharedCompressor};
use crate::inflate::Inflater;
use crate::negotiate::{self, NAME, Negotiated, Side};

/// permessage-deflate for one connection, in either role.
///
/// Built unnegotiated ([`rsv`](Extension::rsv) is [`Rsv::NONE`]) and cheap: a few words, no heap
/// until a message is compressed or decompressed. The server calls
/// [`accept_offer`](Extension::accept_offer) for each offer; the client writes its offer with
/// [`write_offer`](Extension::write_offer) and configures itself from the server's answer with
/// [`accept_response`](Extension::accept_response). Once negotiated it claims RSV1.
///
/// State is allocated lazily, sized by the negotiated window: a decompressor on the first
/// compressed message received, and on the first message compressed either a compressor of its
/// own or, when a [`SharedCompressor`] was given, a send history (none at all when the send
/// direction has no context takeover).
pub struct PerMessageDeflate {
    config: DeflateConfig,
    role: Role,
    negotiated: Option<Negotiated>,
    inflater: Option<Box<Inflater>>,
    deflater: Option<Box<Deflater>>,
    shared: Option<SharedCompressor>,
    history: Option<Box<History>>,
}

impl PerMessageDeflate {
    /// The server side of a connection, unnegotiated.
    pub fn server(config: DeflateConfig) -> Self {
        PerMessageDeflate::new(Role::Server, config)
    }

    /// The client side of a connection, unnegotiated.
    pub fn client(config: DeflateConfig) -> Self {
        PerMessageDeflate::new(Role::Client, config)
    }

    fn new(role: Role, config: DeflateConfig) -> Self {
        PerMessageDeflate {
            config: config.clamped(),
            role,
            negotiated: None,
            inflater: None,
            deflater: None,
            shared: None,
            history: None,
        }
    }

    /// Compresses with `shared` instead of a compressor of its own: from a fresh context when the
    /// send direction resets after every message (no context takeover for this endpoint), else
    /// primed with this connection's last
    /// [`send_history`](DeflateConfig::send_history) bytes sent. Give each connection of a
    /// worker a clone of that worker's [`SharedCompressor`].
    pub fn with_shared_compressor(mut self, shared: SharedCompressor) -> Self {
        self.release_warm_stream();
        self.shared = Some(shared);
        self
    }

    /// Gives back the shared compressor's warm stream this connection holds, if any.
    fn release_warm_stream(&mut self) {
        if let (Some(shared), Some(history)) = (&self.shared, self.history.as_mut()) {
            shared.release(history);
        }
    }

    /// This endpoint's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The configuration (with values clamped to their ranges).
    pub fn config(&self) -> &DeflateConfig {
        &self.config
    }

    /// The agreed parameters, once negotiated.
    pub fn negotiated(&self) -> Option<Negotiated> {
        self.negotiated
    }

    /// Whether negotiation succeeded.
    pub fn is_negotiated(&self) -> bool {
        self.negotiated.is_some()
    }

    /// The settings this connection's outgoing messages are compressed with; `None` when it sends
    /// nothing compressed (not negotiated, or an 8-bit window was agreed). Connections with equal
    /// settings can share one compressed payload: see
    /// [`SharedCompressor::compress_for_broadcast`].
    pub fn send_settings(&self) -> Option<SendSettings> {
        let window_bits = self.negotiated?.send.zlib_window_bits()?;
        Some(SendSettings {
            window_bits,
            level: self.config.level,
            mem_level: self.config.mem_level,
            threshold: self.config.threshold,
        })
    }

    /// Forgets the compressor's history. Call it after sending this connection a payload that
    /// did not go through its compressor (a broadcast from
    /// [`SharedCompressor::compress_for_broadcast`]): the peer's window now holds that message,
    /// our compressor's does not, so neither may be referred to again.
    pub fn reset_send_context(&mut self) {
        if let Some(deflater) = self.deflater.as_mut() {
            deflater.reset();
        }
        self.release_warm_stream();
        self.history = None;
    }

    /// Frees the compression state that can be rebuilt: the compressor and the send history
    /// (always, between messages: a fresh context only loses compression ratio), and the
    /// decompressor when the peer resets after every message and no message is partly received.
    /// For idle connections under memory pressure.
    pub fn release_idle_state(&mut self) {
        self.deflater = None;
        self.release_warm_stream();
        self.history = None;
        let recv_reset = self.negotiated.is_some_and(|n| n.recv.no_context_takeover);
        if recv_reset && !self.inflater.as_ref().is_some_and(|i| i.in_message()) {
            self.inflater = None;
        }
    }

    /// Which heap state is allocated now: (decompressor, compressor of its own).
    pub fn has_state(&self) -> (bool, bool) {
        (self.inflater.is_some(), self.deflater.is_some())
    }

    /// How many bytes of send history are kept now (see
    /// [`send_history`](DeflateConfig::send_history)); its buffer holds up to the configured
    /// amount.
    pub fn send_history_len(&self) -> usize {
        self.history.as_ref().map_or(0, |h| h.bytes().len())
    }
}

impl Extension for PerMessageDeflate {
    fn name(&self) -> &str {
        NAME
    }

    #[inline]
    fn rsv(&self) -> Rsv {
        if self.negotiated.is_some() {
            Rsv::RSV1
        } else {
            Rsv::NONE
        }
    }

    /// Accepts the first valid `permessage-deflate` offer: offers of another extension, with
    /// unknown or duplicate parameters or invalid values are declined (`Ok(false)`), as are all
    /// offers once one was accepted.
    ///
    /// # Errors
    ///
    /// [`NegotiationError::Malformed`] for an offer that breaks the header grammar (declined all
    /// the same); [`NegotiationError::NoRoom`] when the response does not fit in the writer
    /// (128 bytes always do): nothing is agreed then.
    fn accept_offer(
        &mut self,
        offer: &Params<'_>,
        response: &mut ParamWriter<'_>,
    ) -> Result<bool, NegotiationError> {
        if self.role != Role::Server || self.negotiated.is_some() || offer.name() != NAME {
            return Ok(false);
        }
        let wire = match negotiate::parse(offer, Side::Offer) {
            Ok(wire) => wire,
            Err(NegotiationError::Malformed) => return Err(NegotiationError::Malformed),
            // "A server MUST decline an extension negotiation offer for this extension if ..."
            // (RFC 7692 §7): see negotiate::parse.
            Err(_) => return Ok(false),
        };
        let (negotiated, answer) = negotiate::answer(&self.config, &wire);
        negotiate::write(&answer, response)?;
        self.negotiated = Some(negotiated);
        Ok(true)
    }

    fn write_offer(&self, offer: &mut ParamWriter<'_>) -> Result<(), NegotiationError> {
        negotiate::write(&negotiate::offer(&self.config), offer)
    }

    /// # Errors
    ///
    /// Unknown, duplicate or invalid parameters, or parameters our offer did not allow
    /// ([`NegotiationError::NotOffered`]): the client must fail the connection.
    fn accept_response(&mut self, params: &Params<'_>) -> Result<(), NegotiationError> {
        if self.role != Role::Client || params.name() != NAME {
            return Err(NegotiationError::NotOffered);
        }
        let wire = negotiate::parse(params, Side::Response)?;
        let negotiated = negotiate::check_response(&self.config, &wire)?;
        self.negotiated = Some(negotiated);
        self.inflater = None;
        self.deflater = None;
        self.release_warm_stream();
        self.history = None;
        Ok(())
    }

    fn decode(
        &mut self,
        input: &[u8],
        fin: bool,
        out: &mut Vec<u8>,
        max_out: usize,
    ) -> Result<(), ExtensionError> {
        let Some(negotiated) = self.negotiated else {
            return Err(ExtensionError::InvalidData);
        };
        // A peer limited to 8 bits is decoded with 9: a larger window reads any smaller one.
        let window_bits = crate::config::clamp_bits(negotiated.recv.max_window_bits);
        let inflater = self
            .inflater
            .get_or_insert_with(|| Box::new(Inflater::new(window_bits)));
        inflater.decode(input, fin, out, max_out)?;
        if fin && negotiated.recv.no_context_takeover {
            inflater.reset();
        }
        Ok(())
    }

    fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Rsv, ExtensionError> {
        let Some(settings) = self.send_settings() else {
            return Ok(Rsv::NONE);
        };
        if input.len() < settings.threshold {
            return Ok(Rsv::NONE);
        }
        let reset = self.negotiated.is_some_and(|n| n.send.no_context_takeover);
        let Some(shared) = &self.shared else {
            let deflater = self.deflater.get_or_insert_with(|| {
                Box::new(Deflater::new(
                    settings.window_bits,
                    settings.level,
                    settings.mem_level,
                ))
            });
            deflater.compress(input, out, reset)?;
            return Ok(Rsv::RSV1);
        };
        // What the peer's window ends with now; never more than the window.
        let cap = (self.config.send_history as usize).min(1 << settings.window_bits);
        if reset || cap == 0 {
            shared.compress(settings.params(), &[], input, out)?;
        } else {
            let history = self
                .history
                .get_or_insert_with(|| Box::new(History::new(cap)));
            shared.compress_with_history(settings.params(), history, input, out)?;
        }
        Ok(Rsv::RSV1)
    }
}

impl Drop for PerMessageDeflate {
    fn drop(&mut self) {
        self.release_warm_stream();
    }
}

impl fmt::Debug for PerMessageDeflate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PerMessageDeflate")
            .field("role", &self.role)
            .field("negotiated", &self.negotiated)
            .field("inflater", &self.inflater.is_some())
            .field("deflater", &self.deflater.is_some())
            .field("shared", &self.shared.is_some())
            .field("history", &self.send_history_len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use sockeye_proto::extension::parse_offers;

    use super::*;

    /// Server answer to `offer` with `config`: the response parameters, or `None` if declined.
    fn negotiate_server(config: DeflateConfig, offer: &str) -> (PerMessageDeflate, Option<String>) {
        let mut server = PerMessageDeflate::server(config);
        let mut buf = [0u8; 128];
        let mut accepted = None;
        for offer in parse_offers(offer) {
            let Ok(offer) = offer else { continue };
            let mut writer = ParamWriter::new(&mut buf);
            if server.accept_offer(&offer, &mut writer) == Ok(true) {
                accepted = Some(String::from_utf8(writer.as_bytes().to_vec()).unwrap());
                break;
            }
        }
        (server, accepted)
    }

    #[test]
    fn unnegotiated_is_small_and_inert() {
        let mut ext = PerMessageDeflate::server(DeflateConfig::default());
        assert!(
            size_of::<PerMessageDeflate>() <= 64,
            "{}",
            size_of::<PerMessageDeflate>()
        );
        assert_eq!(ext.rsv(), Rsv::NONE);
        let mut out = Vec::new();
        assert_eq!(ext.encode(b"Hello", &mut out), Ok(Rsv::NONE));
        assert_eq!(
            ext.decode(b"x", true, &mut out, 10),
            Err(ExtensionError::InvalidData)
        );
        assert!(out.is_empty() && out.capacity() == 0 && ext.has_state() == (false, false));
    }

    #[test]
    fn first_acceptable_offer_wins() {
        let offers = "x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=16, \
                      permessage-deflate; client_max_window_bits; server_max_window_bits=10, \
                      permessage-deflate";
        let (server, response) = negotiate_server(DeflateConfig::default(), offers);
        assert_eq!(response.as_deref(), Some("; server_max_window_bits=10"));
        assert_eq!(server.rsv(), Rsv::RSV1);
        assert_eq!(server.negotiated().unwrap().send.max_window_bits, 10);
    }

    #[test]
    fn client_role_round_trip() {
        let config = DeflateConfig {
            client_max_window_bits: 10,
            server_max_window_bits: 12,
            server_no_context_takeover: true,
            ..DeflateConfig::default()
        };
        let client = PerMessageDeflate::client(config);
        let mut buf = [0u8; 128];
        let mut writer = ParamWriter::new(&mut buf);
        client.write_offer(&mut writer).unwrap();
        let offer = format!("{NAME}{}", core::str::from_utf8(writer.as_bytes()).unwrap());
        assert_eq!(
            offer,
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=12; \
             client_max_window_bits=10"
        );
        let (server, response) = negotiate_server(DeflateConfig::default(), &offer);
        let response = format!("{NAME}{}", response.unwrap());
        let mut client = client;
        client
            .accept_response(&parse_offers(&response).next().unwrap().unwrap())
            .unwrap();
        let (c, s) = (client.negotiated().unwrap(), server.negotiated().unwrap());
        assert_eq!((c.send, c.recv), (s.recv, s.send));
        assert_eq!(c.send.max_window_bits, 10);
        assert_eq!(c.recv.max_window_bits, 12);
        assert!(c.recv.no_context_takeover && !c.send.no_context_takeover);
    }

    #[test]
    fn shared_compressor_replaces_own_state() {
        let shared = SharedCompressor::new();
        let config = DeflateConfig {
            server_no_context_takeover: true,
            threshold: 0,
            ..DeflateConfig::default()
        };
        let mut conns: Vec<PerMessageDeflate> = (0..3)
            .map(|_| {
                negotiate_server(config, NAME)
                    .0
                    .with_shared_compressor(shared.clone())
            })
            .collect();
        for ext in &mut conns {
            let mut out = Vec::new();
            assert_eq!(ext.encode(b"Hello", &mut out), Ok(Rsv::RSV1));
            assert_eq!(out, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
            assert_eq!(ext.has_state(), (false, false));
        }
        assert_eq!(shared.len(), 1);
    }

    #[test]
    fn eight_bit_server_window_sends_uncompressed() {
        let config = DeflateConfig {
            threshold: 0,
            ..DeflateConfig::default()
        };
        let (mut server, response) =
            negotiate_server(config, "permessage-deflate; server_max_window_bits=8");
        assert_eq!(response.as_deref(), Some("; server_max_window_bits=8"));
        assert_eq!(server.rsv(), Rsv::RSV1);
        assert_eq!(server.send_settings(), None);
        let mut out = Vec::new();
        assert_eq!(server.encode(b"Hello", &mut out), Ok(Rsv::NONE));
        assert!(out.is_empty());
        // Receiving still works.
        server
            .decode(
                &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
                true,
                &mut out,
                5,
            )
            .unwrap();
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn threshold_table() {
        // (threshold, message length) → compressed?
        let cases = [
            (0, 0, true),
            (0, 1, true),
            (64, 63, false),
            (64, 64, true),
            (1, 0, false),
        ];
        for (threshold, len, compressed) in cases {
            let config = DeflateConfig {
                threshold,
                ..DeflateConfig::default()
            };
            let (mut server, _) = negotiate_server(config, NAME);
            let mut out = Vec::new();
            let rsv = server.encode(&vec![b'a'; len], &mut out).unwrap();
            assert_eq!(rsv == Rsv::RSV1, compressed, "{threshold} {len}");
            assert_eq!(out.is_empty(), !compressed);
        }
    }

    #[test]
    fn release_idle_state_keeps_needed_history() {
        for (offer, freed) in [
            (NAME, false),
            ("permessage-deflate; client_no_context_takeover", true),
        ] {
            let (mut server, _) = negotiate_server(DeflateConfig::default(), offer);
            let mut out = Vec::new();
            server
                .decode(
                    &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
                    true,
                    &mut out,
                    5,
                )
                .unwrap();
            server.encode(&[b'x'; 100], &mut Vec::new()).unwrap();
            assert_eq!(server.has_state(), (true, true));
            server.release_idle_state();
            assert_eq!(server.has_state(), (!freed, false), "{offer}");
        }
    }
}
