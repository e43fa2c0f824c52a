//! permessage-deflate on the client role (`--deflate`): the offer every connection of a run
//! makes, and the check of the server's answer.

use sockeye_deflate::{DeflateConfig, NAME, PerMessageDeflate};
use sockeye_proto::extension::{ParamWriter, parse_offers};
use sockeye_proto::{Connection, Extension as _, NegotiationError};

/// The offer of a run: the client configuration and the `Sec-WebSocket-Extensions` value it
/// writes (`permessage-deflate; client_max_window_bits`).
#[derive(Debug, Clone)]
pub(super) struct Offer {
    config: DeflateConfig,
    header: String,
}

impl Offer {
    /// The offer for a compression `level`, a `threshold` under which messages go out
    /// uncompressed, and the `window_bits` of our compressor (offered as
    /// `client_max_window_bits`). The server's window is left to the server (15 at most).
    ///
    /// # Errors
    ///
    /// When the offer cannot be written (never: it fits in 128 bytes).
    pub(super) fn new(level: u32, threshold: usize, window_bits: u8) -> Result<Self, String> {
        let mut config = DeflateConfig::default();
        config.level = level;
        config.threshold = threshold;
        config.client_max_window_bits = window_bits;
        let mut buf = [0u8; 128];
        let mut params = ParamWriter::new(&mut buf);
        PerMessageDeflate::client(config)
            .write_offer(&mut params)
            .map_err(|e| format!("permessage-deflate offer: {e}"))?;
        let params = String::from_utf8_lossy(params.as_bytes());
        Ok(Offer {
            config,
            header: format!("{NAME}{params}"),
        })
    }

    /// The `Sec-WebSocket-Extensions` value of the upgrade request.
    pub(super) fn header(&self) -> &str {
        &self.header
    }

    /// A fresh, unnegotiated extension for one connection.
    pub(super) fn extension(&self) -> PerMessageDeflate {
        PerMessageDeflate::client(self.config)
    }
}

/// Configures `ws` from the server's `Sec-WebSocket-Extensions` value (`parse_response` already
/// refused extensions we did not offer); returns whether permessage-deflate is now on. An empty
/// value means the server declined: the connection runs uncompressed.
///
/// # Errors
///
/// The answer is malformed, accepts permessage-deflate twice, or has parameters our offer did
/// not allow: RFC 7692 §7, "a client MUST _Fail the WebSocket Connection_ if the peer server
/// accepted an extension negotiation offer for this extension with an extension negotiation
/// response meeting any of the following conditions".
pub(super) fn accept(
    ws: &mut Connection<PerMessageDeflate>,
    answer: &str,
) -> Result<bool, NegotiationError> {
    for element in parse_offers(answer) {
        let element = element?;
        if element.name() != NAME {
            return Err(NegotiationError::NotOffered);
        }
        if ws.extension().is_negotiated() {
            return Err(NegotiationError::NotOffered);
        }
        ws.extension_mut().accept_response(&element)?;
    }
    Ok(ws.extension().is_negotiated())
}

#[cfg(test)]
mod tests {
    use sockeye_proto::Config;

    use super::*;

    #[test]
    fn offer_header() {
        let offer = Offer::new(6, 0, 15).unwrap();
        assert_eq!(offer.header(), "permessage-deflate; client_max_window_bits");
        let offer = Offer::new(1, 0, 10).unwrap();
        assert_eq!(
            offer.header(),
            "permessage-deflate; client_max_window_bits=10"
        );
    }

    #[test]
    fn answers() {
        let offer = Offer::new(6, 0, 12).unwrap();
        // (answer, Ok(negotiated) or the error)
        let table: [(&str, Result<bool, NegotiationError>); 7] = [
            ("", Ok(false)),
            ("permessage-deflate", Ok(true)),
            ("permessage-deflate; client_max_window_bits=10", Ok(true)),
            (
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=9",
                Ok(true),
            ),
            (
                "permessage-deflate; client_max_window_bits=13",
                Err(NegotiationError::NotOffered),
            ),
            (
                "permessage-deflate, permessage-deflate",
                Err(NegotiationError::NotOffered),
            ),
            (
                "permessage-deflate; mystery",
                Err(NegotiationError::UnknownParameter),
            ),
        ];
        for (answer, expected) in table {
            let mut ws = Connection::client(Config::default(), offer.extension(), 1);
            assert_eq!(accept(&mut ws, answer), expected, "{answer:?}");
        }
    }
}
