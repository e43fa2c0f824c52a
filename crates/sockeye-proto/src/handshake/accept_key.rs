use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha1::{Digest, Sha1};

/// The GUID appended to the key before hashing (RFC 6455 §1.3).
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A `Sec-WebSocket-Accept` value: base64 of SHA-1 of the key and the GUID (§4.2.2).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AcceptKey([u8; 28]);

impl AcceptKey {
    /// Computes the accept value for a `Sec-WebSocket-Key` value (as sent, base64).
    pub fn from_key(key: &[u8]) -> AcceptKey {
        let digest = Sha1::new()
            .chain_update(key)
            .chain_update(GUID.as_bytes())
            .finalize();
        let mut out = [0u8; 28];
        // 20 bytes of digest are always 28 bytes of padded base64.
        let written = STANDARD.encode_slice(digest, &mut out).unwrap_or(0);
        debug_assert_eq!(written, 28);
        AcceptKey(out)
    }

    /// The value as ASCII bytes.
    pub fn as_bytes(&self) -> &[u8; 28] {
        &self.0
    }

    /// The value as text.
    pub fn as_str(&self) -> &str {
        // Base64 output is ASCII.
        core::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Debug for AcceptKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AcceptKey({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_section_1_3_vector() {
        let accept = AcceptKey::from_key(b"dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(accept.as_str(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn second_seed_vector() {
        // The key and accept value of the handshake walkthrough in the seed documents.
        let accept = AcceptKey::from_key(b"q4xkcO32u266gldTuKaSOw==");
        assert_eq!(accept.as_str(), "fA9dggdnMPU79lJgAE3W4TRnyDM=");
    }
}
