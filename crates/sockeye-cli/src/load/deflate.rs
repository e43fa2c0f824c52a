//! permessage-deflate on the client role (`--deflate`): the offer every connection of a run
//! makes (the opening handshake checks the server's answer against it).

use sockeye_deflate::{DeflateConfig, NAME, PerMessageDeflate};
use sockeye_proto::Extension as _;
use sockeye_proto::extension::ParamWriter;

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

#[cfg(test)]
mod tests {
    use sockeye_proto::handshake::{AcceptKey, ClientHandshake, ClientRequest, OpenError};
    use sockeye_proto::mask::SeededMasks;
    use sockeye_proto::{Config, NegotiationError};

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
    fn answers_to_the_offer() {
        let offer = Offer::new(6, 0, 12).unwrap();
        let key = [b'k'; 24];
        // (answer, Ok(negotiated) or the error)
        let table: [(&str, Result<bool, NegotiationError>); 6] = [
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
                "permessage-deflate; mystery",
                Err(NegotiationError::UnknownParameter),
            ),
        ];
        for (answer, expected) in table {
            let request = ClientRequest {
                extensions: offer.header().as_bytes(),
                ..ClientRequest::new("h", "/", &key)
            };
            let masks = Box::new(SeededMasks::new(1));
            let mut handshake =
                ClientHandshake::new(&request, offer.extension(), Config::default(), masks)
                    .unwrap();
            let extension = if answer.is_empty() {
                String::new()
            } else {
                format!("Sec-WebSocket-Extensions: {answer}\r\n")
            };
            let head = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n{extension}\r\n",
                AcceptKey::from_key(&key).as_str()
            );
            let outcome = handshake
                .receive(head.as_bytes())
                .and_then(|_| handshake.finish())
                .map(|opened| opened.connection.extension().is_negotiated());
            let expected = expected.map_err(OpenError::Extension);
            assert_eq!(outcome, expected, "{answer:?}");
        }
    }
}
