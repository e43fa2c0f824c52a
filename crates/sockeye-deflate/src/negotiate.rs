//! permessage-deflate negotiation (RFC 7692 §5, §7): parameter parsing, the server's answer to an
//! offer, the client's offer and its check of the server's answer.
//!
//! Window bits of 8 are valid on the wire but the zlib-rs backend works with 9..=15 only. Where
//! the peer compresses with an 8-bit limit, our decompressor uses 9 bits (a larger window decodes
//! anything a smaller one produced). Where we would have to compress with 8 bits we keep the RFC
//! value on the wire and send every message uncompressed instead (RSV1 clear), which the RFC
//! always allows; see [`DirectionParams::zlib_window_bits`].

use sockeye_proto::NegotiationError;
use sockeye_proto::extension::{ParamWriter, Params};

use crate::config::{DeflateConfig, MAX_WINDOW_BITS, MIN_WINDOW_BITS};

/// The registered extension name.
pub const NAME: &str = "permessage-deflate";

const SERVER_NO_CONTEXT_TAKEOVER: &str = "server_no_context_takeover";
const CLIENT_NO_CONTEXT_TAKEOVER: &str = "client_no_context_takeover";
const SERVER_MAX_WINDOW_BITS: &str = "server_max_window_bits";
const CLIENT_MAX_WINDOW_BITS: &str = "client_max_window_bits";

/// What was agreed for one direction of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DirectionParams {
    /// The LZ77 window limit agreed on the wire, in bits (8..=15).
    pub max_window_bits: u8,
    /// Whether the compressor of this direction resets after every message.
    pub no_context_takeover: bool,
}

impl DirectionParams {
    /// The window zlib uses for this direction, `None` when it cannot compress within the limit.
    ///
    /// An 8-bit limit is answered with a 9-bit decompressor (RFC 7692 §7.1.2.2 lets the server
    /// ignore the client's value, and a 9-bit window decodes every 8-bit stream), but a 9-bit
    /// compressor could emit distances an 8-bit peer cannot resolve: that direction then sends
    /// uncompressed messages only.
    pub fn zlib_window_bits(&self) -> Option<u8> {
        (self.max_window_bits >= MIN_WINDOW_BITS).then_some(self.max_window_bits)
    }
}

/// The parameters agreed for a connection, seen from this endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Negotiated {
    /// What this endpoint compresses with.
    pub send: DirectionParams,
    /// What the peer compresses with (what this endpoint decompresses).
    pub recv: DirectionParams,
}

/// The parameters of one offer or response, validated.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wire {
    pub(crate) server_no_context_takeover: bool,
    pub(crate) client_no_context_takeover: bool,
    pub(crate) server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value (an offer only).
    pub(crate) client_max_window_bits: Option<Option<u8>>,
}

/// Which element of the negotiation is parsed: the grammar differs for `client_max_window_bits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Offer,
    Response,
}

/// Parses and validates the parameters of one `permessage-deflate` element.
///
/// RFC 7692 §7: "A server MUST decline an extension negotiation offer for this extension if any
/// of the following conditions are met: The negotiation offer contains an extension parameter
/// not defined for use in an offer. The negotiation offer contains an extension parameter with
/// an invalid value. The negotiation offer contains multiple extension parameters with the same
/// name." The client MUST fail the connection on a response with the same faults. Each is an
/// error here; the caller declines or fails.
pub(crate) fn parse(params: &Params<'_>, side: Side) -> Result<Wire, NegotiationError> {
    let mut wire = Wire::default();
    let mut seen = 0u8;
    for param in params.iter() {
        let (name, value) = param?;
        let index = match name {
            SERVER_NO_CONTEXT_TAKEOVER => 0,
            CLIENT_NO_CONTEXT_TAKEOVER => 1,
            SERVER_MAX_WINDOW_BITS => 2,
            CLIENT_MAX_WINDOW_BITS => 3,
            _ => return Err(NegotiationError::UnknownParameter),
        };
        // "... contains multiple extension parameters with the same name" (§7).
        if seen & (1 << index) != 0 {
            return Err(NegotiationError::DuplicateParameter);
        }
        seen |= 1 << index;
        match (index, value) {
            // The two context takeover parameters have no value (§7.1.1.1, §7.1.1.2).
            (0 | 1, Some(_)) => return Err(NegotiationError::InvalidValue),
            (0, None) => wire.server_no_context_takeover = true,
            (1, None) => wire.client_no_context_takeover = true,
            // server_max_window_bits "has a decimal integer value without leading zeroes between
            // 8 to 15, inclusive" (§7.1.2.1): a value is required.
            (2, value) => {
                wire.server_max_window_bits = Some(window_bits(value)?);
            }
            // client_max_window_bits "has no value or a decimal integer value without leading
            // zeroes between 8 to 15 inclusive" in an offer (§7.1.2.2); a response that limits
            // the client's window has to say to what.
            (_, None) if side == Side::Offer => wire.client_max_window_bits = Some(None),
            (_, value) => wire.client_max_window_bits = Some(Some(window_bits(value)?)),
        }
    }
    Ok(wire)
}

/// A window size: "a decimal integer value without leading zeroes between 8 to 15" (§7.1.2).
fn window_bits(value: Option<&str>) -> Result<u8, NegotiationError> {
    match value.map(str::as_bytes) {
        Some([d @ b'8'..=b'9']) => Ok(d - b'0'),
        Some([b'1', d @ b'0'..=b'5']) => Ok(10 + d - b'0'),
        _ => Err(NegotiationError::InvalidValue),
    }
}

/// Server side: the agreement and the response for a valid offer. Every valid offer can be
/// accepted (an 8-bit limit on the server's window is honoured by not compressing).
pub(crate) fn answer(config: &DeflateConfig, offer: &Wire) -> (Negotiated, Wire) {
    // "A server accepts an extension negotiation offer with this parameter by including the
    // "server_max_window_bits" extension parameter in the extension negotiation response to send
    // back to the client with the same or smaller value as the offer" (§7.1.2.1); the server MAY
    // include it in any response, so a configured limit is announced as well.
    let send_bits = offer
        .server_max_window_bits
        .map_or(config.server_max_window_bits, |bits| {
            bits.min(config.server_max_window_bits)
        });
    let announce_send = offer.server_max_window_bits.is_some() || send_bits < MAX_WINDOW_BITS;
    // "If a received extension negotiation offer doesn't have the "client_max_window_bits"
    // extension parameter, the corresponding extension negotiation response to the offer MUST
    // NOT include the "client_max_window_bits" extension parameter" (§7.1.2.2): such a client
    // may then use 15 bits. With a value, the response may carry one "equal to or smaller than
    // the received value".
    let (recv_bits, announce_recv) = match offer.client_max_window_bits {
        None => (MAX_WINDOW_BITS, false),
        Some(offered) => {
            let bits = offered.map_or(config.client_max_window_bits, |bits| {
                bits.min(config.client_max_window_bits)
            });
            (bits, bits < MAX_WINDOW_BITS)
        }
    };
    // "A server accepts an extension negotiation offer that includes the
    // "server_no_context_takeover" extension parameter by including the
    // "server_no_context_takeover" extension parameter in the corresponding extension
    // negotiation response" (§7.1.1.1). A client that offers client_no_context_takeover will not
    // take over context anyway: saying so in the response lets us reset our decompressor.
    let send_reset = offer.server_no_context_takeover || config.server_no_context_takeover;
    let recv_reset = offer.client_no_context_takeover || config.client_no_context_takeover;
    let negotiated = Negotiated {
        send: DirectionParams {
            max_window_bits: send_bits,
            no_context_takeover: send_reset,
        },
        recv: DirectionParams {
            max_window_bits: recv_bits,
            no_context_takeover: recv_reset,
        },
    };
    let response = Wire {
        server_no_context_takeover: send_reset,
        client_no_context_takeover: recv_reset,
        server_max_window_bits: announce_send.then_some(send_bits),
        client_max_window_bits: announce_recv.then_some(Some(recv_bits)),
    };
    (negotiated, response)
}

/// Client side: the offer for `config`.
///
/// `client_max_window_bits` is always offered (without a value at 15 bits) so that the server may
/// limit our window; `server_max_window_bits` only below 15, since some servers decline it.
pub(crate) fn offer(config: &DeflateConfig) -> Wire {
    let client_bits = config.client_max_window_bits;
    Wire {
        server_no_context_takeover: config.server_no_context_takeover,
        client_no_context_takeover: config.client_no_context_takeover,
        server_max_window_bits: (config.server_max_window_bits < MAX_WINDOW_BITS)
            .then_some(config.server_max_window_bits),
        client_max_window_bits: Some((client_bits < MAX_WINDOW_BITS).then_some(client_bits)),
    }
}

/// Client side: checks the server's response against our offer and returns the agreement.
///
/// RFC 7692 §7: "A client MUST fail the WebSocket connection if the peer server accepted an
/// extension negotiation offer for this extension with an extension negotiation response meeting
/// any of the following conditions: ... The client does not support the configuration that the
/// response represents." Here that is a response that does not accept what we offered.
pub(crate) fn check_response(
    config: &DeflateConfig,
    response: &Wire,
) -> Result<Negotiated, NegotiationError> {
    let offered = offer(config);
    // A server accepts server_no_context_takeover "by including" it (§7.1.1.1): a response
    // without it does not answer our offer.
    if offered.server_no_context_takeover && !response.server_no_context_takeover {
        return Err(NegotiationError::NotOffered);
    }
    // ... and server_max_window_bits "with the same or smaller value as the offer" (§7.1.2.1).
    let recv_bits = match (
        offered.server_max_window_bits,
        response.server_max_window_bits,
    ) {
        (Some(_), None) => return Err(NegotiationError::NotOffered),
        (Some(limit), Some(bits)) if bits > limit => return Err(NegotiationError::NotOffered),
        (_, bits) => bits.unwrap_or(MAX_WINDOW_BITS),
    };
    // client_max_window_bits: at most the value we offered (we always offer the parameter).
    let send_bits = match response.client_max_window_bits {
        None => config.client_max_window_bits,
        Some(bits) => {
            let bits = bits.ok_or(NegotiationError::InvalidValue)?;
            if bits > config.client_max_window_bits {
                return Err(NegotiationError::NotOffered);
            }
            bits
        }
    };
    Ok(Negotiated {
        send: DirectionParams {
            max_window_bits: send_bits,
            no_context_takeover: response.client_no_context_takeover
                || config.client_no_context_takeover,
        },
        recv: DirectionParams {
            max_window_bits: recv_bits,
            no_context_takeover: response.server_no_context_takeover,
        },
    })
}

/// Writes the parameters of `wire` (`; name` or `; name=value`), in a fixed order.
pub(crate) fn write(wire: &Wire, out: &mut ParamWriter<'_>) -> Result<(), NegotiationError> {
    const DIGITS: [&str; 8] = ["8", "9", "10", "11", "12", "13", "14", "15"];
    let digits = |bits: u8| DIGITS[usize::from(bits.clamp(8, 15) - 8)];
    if wire.server_no_context_takeover {
        out.param(SERVER_NO_CONTEXT_TAKEOVER, None)?;
    }
    if wire.client_no_context_takeover {
        out.param(CLIENT_NO_CONTEXT_TAKEOVER, None)?;
    }
    if let Some(bits) = wire.server_max_window_bits {
        out.param(SERVER_MAX_WINDOW_BITS, Some(digits(bits)))?;
    }
    if let Some(bits) = wire.client_max_window_bits {
        out.param(CLIENT_MAX_WINDOW_BITS, bits.map(digits))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use sockeye_proto::extension::parse_offers;

    use super::*;

    fn parse_str(params: &str, side: Side) -> Result<Wire, NegotiationError> {
        let value = format!("{NAME}{params}");
        let offer = parse_offers(&value).next().unwrap().unwrap();
        parse(&offer, side)
    }

    fn wire(snct: bool, cnct: bool, smwb: Option<u8>, cmwb: Option<Option<u8>>) -> Wire {
        Wire {
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
            server_max_window_bits: smwb,
            client_max_window_bits: cmwb,
        }
    }

    #[test]
    fn parse_table() {
        use NegotiationError::*;
        let cases: &[(&str, Side, Result<Wire, NegotiationError>)] = &[
            ("", Side::Offer, Ok(Wire::default())),
            (
                "; server_no_context_takeover; client_no_context_takeover",
                Side::Offer,
                Ok(wire(true, true, None, None)),
            ),
            (
                "; server_max_window_bits=8; client_max_window_bits=15",
                Side::Offer,
                Ok(wire(false, false, Some(8), Some(Some(15)))),
            ),
            (
                "; client_max_window_bits",
                Side::Offer,
                Ok(wire(false, false, None, Some(None))),
            ),
            (
                "; client_max_window_bits",
                Side::Response,
                Err(InvalidValue),
            ),
            (
                "; server_max_window_bits=\"10\"",
                Side::Response,
                Ok(wire(false, false, Some(10), None)),
            ),
            ("; server_max_window_bits", Side::Offer, Err(InvalidValue)),
            ("; server_max_window_bits=7", Side::Offer, Err(InvalidValue)),
            (
                "; server_max_window_bits=16",
                Side::Offer,
                Err(InvalidValue),
            ),
            (
                "; server_max_window_bits=09",
                Side::Offer,
                Err(InvalidValue),
            ),
            (
                "; server_max_window_bits=abc",
                Side::Offer,
                Err(InvalidValue),
            ),
            (
                "; client_max_window_bits=0x0f",
                Side::Offer,
                Err(InvalidValue),
            ),
            ("; server_max_window_bits=", Side::Offer, Err(Malformed)),
            (
                "; server_no_context_takeover=1",
                Side::Offer,
                Err(InvalidValue),
            ),
            (
                "; client_no_context_takeover=\"x\"",
                Side::Offer,
                Err(InvalidValue),
            ),
            (
                "; server_no_context_takeover; server_no_context_takeover",
                Side::Offer,
                Err(DuplicateParameter),
            ),
            (
                "; client_max_window_bits; client_max_window_bits=10",
                Side::Offer,
                Err(DuplicateParameter),
            ),
            ("; x_unknown", Side::Offer, Err(UnknownParameter)),
            (
                "; Server_No_Context_Takeover",
                Side::Offer,
                Err(UnknownParameter),
            ),
        ];
        for (params, side, want) in cases {
            assert_eq!(parse_str(params, *side), *want, "{params:?} as {side:?}");
        }
    }

    #[test]
    fn answer_table() {
        let config = |snct, cnct, s, c| DeflateConfig {
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
            server_max_window_bits: s,
            client_max_window_bits: c,
            ..DeflateConfig::DEFAULT
        };
        let dir = |bits, reset| DirectionParams {
            max_window_bits: bits,
            no_context_takeover: reset,
        };
        // (config, offer) → (send, recv, response)
        let cases = [
            (
                config(false, false, 15, 15),
                wire(false, false, None, None),
                (
                    dir(15, false),
                    dir(15, false),
                    wire(false, false, None, None),
                ),
            ),
            (
                config(false, false, 15, 15),
                wire(true, true, Some(10), Some(Some(12))),
                (
                    dir(10, true),
                    dir(12, true),
                    wire(true, true, Some(10), Some(Some(12))),
                ),
            ),
            (
                config(true, true, 11, 9),
                wire(false, false, None, Some(None)),
                (
                    dir(11, true),
                    dir(9, true),
                    wire(true, true, Some(11), Some(Some(9))),
                ),
            ),
            (
                // Without client_max_window_bits in the offer the response cannot limit it.
                config(false, false, 15, 9),
                wire(false, false, None, None),
                (
                    dir(15, false),
                    dir(15, false),
                    wire(false, false, None, None),
                ),
            ),
            (
                // 8 stays 8 on the wire; see DirectionParams::zlib_window_bits.
                config(false, false, 15, 15),
                wire(false, false, Some(8), Some(Some(8))),
                (
                    dir(8, false),
                    dir(8, false),
                    wire(false, false, Some(8), Some(Some(8))),
                ),
            ),
        ];
        for (config, offer, (send, recv, response)) in cases {
            let (negotiated, got) = answer(&config.clamped(), &offer);
            assert_eq!(negotiated, Negotiated { send, recv }, "{offer:?}");
            assert_eq!(got, response, "{offer:?}");
        }
    }

    #[test]
    fn write_then_parse_round_trips() {
        let wires = [
            wire(false, false, None, None),
            wire(true, true, Some(8), Some(None)),
            wire(false, true, Some(15), Some(Some(9))),
        ];
        for w in wires {
            let mut buf = [0u8; 128];
            let mut writer = ParamWriter::new(&mut buf);
            write(&w, &mut writer).unwrap();
            let text = core::str::from_utf8(writer.as_bytes()).unwrap();
            assert_eq!(parse_str(text, Side::Offer), Ok(w), "{text}");
        }
        let mut small = [0u8; 16];
        let full = wire(true, false, None, None);
        assert_eq!(
            write(&full, &mut ParamWriter::new(&mut small)),
            Err(NegotiationError::NoRoom)
        );
    }

    #[test]
    fn check_response_table() {
        use NegotiationError::NotOffered;
        let client = |snct, s, c| DeflateConfig {
            server_no_context_takeover: snct,
            server_max_window_bits: s,
            client_max_window_bits: c,
            ..DeflateConfig::DEFAULT
        };
        let cases = [
            // (client config, response) → Ok((send bits, recv bits)) or the error
            (
                client(false, 15, 15),
                wire(false, false, None, None),
                Ok((15, 15)),
            ),
            (
                client(false, 15, 15),
                wire(false, false, Some(8), Some(Some(8))),
                Ok((8, 8)),
            ),
            (
                client(false, 12, 11),
                wire(false, false, Some(12), Some(Some(11))),
                Ok((11, 12)),
            ),
            (
                client(false, 12, 11),
                wire(false, false, Some(10), None),
                Ok((11, 10)),
            ),
            (
                client(false, 12, 15),
                wire(false, false, None, None),
                Err(NotOffered),
            ),
            (
                client(false, 12, 15),
                wire(false, false, Some(13), None),
                Err(NotOffered),
            ),
            (
                client(false, 15, 11),
                wire(false, false, None, Some(Some(12))),
                Err(NotOffered),
            ),
            (
                client(true, 15, 15),
                wire(false, false, None, None),
                Err(NotOffered),
            ),
            (
                client(true, 15, 15),
                wire(true, false, None, None),
                Ok((15, 15)),
            ),
        ];
        for (config, response, want) in cases {
            let got = check_response(&config, &response)
                .map(|n| (n.send.max_window_bits, n.recv.max_window_bits));
            assert_eq!(got, want, "{config:?} {response:?}");
        }
    }
}
