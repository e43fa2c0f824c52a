//! Close codes and close frame payloads (RFC 6455 §5.5.1, §7.4).

use core::fmt;

use crate::error::ProtocolError;

/// A close status code (RFC 6455 §7.4), as it appears on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: no status code was present (never sent on the wire).
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: the connection closed without a close frame (never sent on the wire).
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: data inconsistent with the message type (invalid UTF-8 in text).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a message violates the endpoint's policy.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a message too big to process.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: the service is restarting.
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later (overload).
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// 1014: a gateway got an invalid response upstream.
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);

    /// Whether this code may appear in a close frame.
    ///
    /// §7.4.1 reserves 1004, and 1005, 1006 and 1015 "MUST NOT be set as a status code in a
    /// Close control frame by an endpoint"; 1016–2999 are reserved for future revisions and
    /// 0–999 are unused. 3000–4999 belong to libraries, frameworks and applications.
    pub fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl fmt::Debug for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CloseCode({})", self.0)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode(code)
    }
}

/// A decoded close frame payload: an optional code and a UTF-8 reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseFrame<'a> {
    /// The status code, `None` when the payload was empty.
    pub code: Option<CloseCode>,
    /// The reason text (empty when absent).
    pub reason: &'a str,
}

impl<'a> CloseFrame<'a> {
    /// The largest reason that fits a control frame with a code (125 − 2 bytes).
    pub const MAX_REASON: usize = 123;

    /// Decodes a close frame payload.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::CloseTooShort`] for a one-byte payload,
    /// [`ProtocolError::InvalidCloseCode`] for a code not allowed on the wire, and
    /// [`ProtocolError::InvalidUtf8`] for a reason that is not UTF-8.
    pub fn decode(payload: &'a [u8]) -> Result<Self, ProtocolError> {
        let [hi, lo, reason @ ..] = payload else {
            // "If there is a body, the first two bytes of the body MUST be a 2-byte unsigned
            // integer" (§5.5.1): one byte cannot hold it.
            return match payload {
                [] => Ok(CloseFrame {
                    code: None,
                    reason: "",
                }),
                _ => Err(ProtocolError::CloseTooShort),
            };
        };
        let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
        if !code.is_valid_on_wire() {
            return Err(ProtocolError::InvalidCloseCode(code.0));
        }
        let reason = simdutf8::basic::from_utf8(reason).map_err(|_| ProtocolError::InvalidUtf8)?;
        Ok(CloseFrame {
            code: Some(code),
            reason,
        })
    }

    /// Writes the payload (code then reason) into `out`, returning its length.
    ///
    /// A code of `None` writes an empty payload; the reason is cut at a character boundary so the
    /// payload fits 125 bytes.
    pub fn encode(&self, out: &mut [u8; 125]) -> usize {
        let Some(code) = self.code else { return 0 };
        out[..2].copy_from_slice(&code.0.to_be_bytes());
        let reason = truncate_utf8(self.reason, Self::MAX_REASON);
        out[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
        2 + reason.len()
    }
}

fn truncate_utf8(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_validity_table() {
        let table: &[(u16, bool)] = &[
            (0, false),
            (999, false),
            (1000, true),
            (1001, true),
            (1002, true),
            (1003, true),
            (1004, false),
            (1005, false),
            (1006, false),
            (1007, true),
            (1011, true),
            (1014, true),
            (1015, false),
            (1016, false),
            (2999, false),
            (3000, true),
            (4999, true),
            (5000, false),
            (65535, false),
        ];
        for &(code, valid) in table {
            assert_eq!(CloseCode(code).is_valid_on_wire(), valid, "{code}");
        }
    }

    #[test]
    fn decode_table() {
        assert_eq!(
            CloseFrame::decode(&[]),
            Ok(CloseFrame {
                code: None,
                reason: ""
            })
        );
        assert_eq!(
            CloseFrame::decode(&[0x03]),
            Err(ProtocolError::CloseTooShort)
        );
        assert_eq!(
            CloseFrame::decode(&[0x03, 0xe8, b'b', b'y', b'e']),
            Ok(CloseFrame {
                code: Some(CloseCode::NORMAL),
                reason: "bye"
            })
        );
        assert_eq!(
            CloseFrame::decode(&[0x03, 0xed]),
            Err(ProtocolError::InvalidCloseCode(1005))
        );
        assert_eq!(
            CloseFrame::decode(&[0x03, 0xe8, 0xff]),
            Err(ProtocolError::InvalidUtf8)
        );
    }

    #[test]
    fn encode_round_trips_and_truncates_on_char_boundary() {
        let mut buf = [0u8; 125];
        let reason = "é".repeat(100);
        let frame = CloseFrame {
            code: Some(CloseCode(4000)),
            reason: &reason,
        };
        let n = frame.encode(&mut buf);
        assert!(n <= 125);
        let back = CloseFrame::decode(&buf[..n]).unwrap();
        assert_eq!(back.code, Some(CloseCode(4000)));
        assert_eq!(back.reason.len(), 122);
        assert_eq!(
            CloseFrame {
                code: None,
                reason: "x"
            }
            .encode(&mut buf),
            0
        );
    }
}
