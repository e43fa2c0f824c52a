//! The two floor peers' wire code: the least an engine can do to speak WebSocket.
//!
//! The upgrade is read only as far as `Sec-WebSocket-Key`; frames are decoded with no
//! validation (no RSV check, no UTF-8 check, no reassembly), unmasked eight bytes at a time and
//! encoded unmasked. Nothing here does IO.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha1::{Digest, Sha1};

/// The longest upgrade request head kept while waiting for its end.
pub const MAX_HEAD: usize = 8 * 1024;
/// Appended to the client's key before hashing (RFC 6455, section 1.3).
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Continuation frame.
pub const OP_CONTINUATION: u8 = 0x0;
/// Text frame.
pub const OP_TEXT: u8 = 0x1;
/// Binary frame.
pub const OP_BINARY: u8 = 0x2;
/// Close frame.
pub const OP_CLOSE: u8 = 0x8;
/// Ping frame.
pub const OP_PING: u8 = 0x9;
/// Pong frame.
pub const OP_PONG: u8 = 0xA;
/// The FIN bit of a frame's first byte.
pub const FIN: u8 = 0x80;

/// Where the request head in `buf` ends (just past its blank line), searching only from
/// `from` (the length already searched, less three, so that a split `\r\n\r\n` is found).
#[must_use]
pub fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let from = from.saturating_sub(3).min(buf.len());
    find(&buf[from..], b"\r\n\r\n").map(|i| from + i + 4)
}

/// The 101 answer to a whole request head, or `None` when it has no `Sec-WebSocket-Key`.
#[must_use]
pub fn upgrade_response(head: &[u8]) -> Option<Vec<u8>> {
    let key = header(head, b"sec-websocket-key")?;
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(GUID);
    let mut accept = [0; 28];
    STANDARD.encode_slice(sha1.finalize(), &mut accept).ok()?;
    let mut response = Vec::with_capacity(160);
    response.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
          Connection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    response.extend_from_slice(&accept);
    response.extend_from_slice(b"\r\n\r\n");
    Some(response)
}

/// A frame header as it arrived.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    /// FIN, RSV and opcode.
    pub first: u8,
    /// The masking key, when the frame is masked.
    pub mask: Option<[u8; 4]>,
    /// Bytes of the header, the mask included.
    pub header_len: usize,
    /// Bytes of the payload as announced (`usize::MAX` when that does not fit).
    pub payload_len: usize,
}

impl Header {
    /// The header at the start of `data`, or `None` when it is not all there yet.
    #[inline]
    #[must_use]
    pub fn decode(data: &[u8]) -> Option<Header> {
        let (&first, rest) = data.split_first()?;
        let (&second, rest) = rest.split_first()?;
        let (payload_len, rest) = match second & 0x7F {
            126 => {
                let (len, rest) = rest.split_first_chunk::<2>()?;
                (usize::from(u16::from_be_bytes(*len)), rest)
            }
            127 => {
                let (len, rest) = rest.split_first_chunk::<8>()?;
                (
                    usize::try_from(u64::from_be_bytes(*len)).unwrap_or(usize::MAX),
                    rest,
                )
            }
            len => (usize::from(len), rest),
        };
        let (mask, rest) = if second & 0x80 != 0 {
            let (mask, rest) = rest.split_first_chunk::<4>()?;
            (Some(*mask), rest)
        } else {
            (None, rest)
        };
        Some(Header {
            first,
            mask,
            header_len: data.len() - rest.len(),
            payload_len,
        })
    }

    /// The opcode (the low four bits of the first byte).
    #[inline]
    #[must_use]
    pub fn opcode(&self) -> u8 {
        self.first & 0x0F
    }
}

/// Appends an unmasked frame header with this first byte for a payload of `len` bytes.
#[inline]
pub fn push_header(out: &mut Vec<u8>, first: u8, len: usize) {
    out.push(first);
    match len {
        0..=125 => out.push(len as u8),
        126..=0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
}

/// Appends an unmasked frame: the header, then the payload, unmasked in place first.
#[inline]
pub fn push_frame(out: &mut Vec<u8>, first: u8, mask: Option<[u8; 4]>, payload: &mut [u8]) {
    out.reserve(10 + payload.len());
    push_header(out, first, payload.len());
    if let Some(mask) = mask {
        unmask(payload, mask);
    }
    out.extend_from_slice(payload);
}

/// XORs the mask over `payload`, eight bytes at a time.
#[inline]
pub fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let mut wide = [0; 8];
    wide[..4].copy_from_slice(&mask);
    wide[4..].copy_from_slice(&mask);
    let wide = u64::from_ne_bytes(wide);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let word = u64::from_ne_bytes([
            chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
        ]) ^ wide;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[i & 3];
    }
}

/// The value of the first header line called `name` (lowercase), trimmed.
fn header<'h>(head: &'h [u8], name: &[u8]) -> Option<&'h [u8]> {
    head.split(|&b| b == b'\n').skip(1).find_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        let (field, value) = line.split_at(colon);
        field
            .eq_ignore_ascii_case(name)
            .then(|| value[1..].trim_ascii())
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_found_case_insensitively() {
        let head =
            b"GET / HTTP/1.1\r\nHost: x\r\nSEC-WebSocket-Key:  dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
        assert_eq!(
            header(head, b"sec-websocket-key"),
            Some(&b"dGhlIHNhbXBsZSBub25jZQ=="[..])
        );
        assert_eq!(header(head, b"origin"), None);
    }

    #[test]
    fn the_head_ends_at_its_blank_line_wherever_the_search_starts() {
        let head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nrest";
        let end = head.len() - 4;
        // `from`: bytes searched before, which held at most three of the four.
        for from in 0..end {
            assert_eq!(head_end(head, from), Some(end), "from {from}");
        }
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r", 0), None);
        assert_eq!(head_end(b"", 10), None);
    }

    #[test]
    fn accept_key_of_the_rfc_example() {
        let head = b"GET / HTTP/1.1\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
        let response = upgrade_response(head).unwrap();
        let text = String::from_utf8(response).unwrap();
        assert!(text.starts_with("HTTP/1.1 101 "));
        assert!(text.contains("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"));
        assert!(upgrade_response(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").is_none());
    }

    #[test]
    fn headers_decode_every_length_form() {
        let h = Header::decode(&[0x81, 0x85, 1, 2, 3, 4]).unwrap();
        assert_eq!((h.first, h.header_len, h.payload_len), (0x81, 6, 5));
        assert_eq!((h.mask, h.opcode()), (Some([1, 2, 3, 4]), OP_TEXT));
        let h = Header::decode(&[0x82, 126, 1, 0]).unwrap();
        assert_eq!((h.header_len, h.payload_len, h.mask), (4, 256, None));
        let h = Header::decode(&[0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 9, 9, 9, 9]).unwrap();
        assert_eq!((h.header_len, h.payload_len), (14, 1 << 16));
        assert!(Header::decode(&[0x82, 0xFF, 0, 0]).is_none());
        assert!(Header::decode(&[0x82, 0x81, 1, 2, 3]).is_none());
        assert!(Header::decode(&[]).is_none());
    }

    #[test]
    fn unmask_matches_bytewise() {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        for len in 0..40 {
            let data: Vec<u8> = (0..len as u8).collect();
            let mut fast = data.clone();
            unmask(&mut fast, mask);
            let slow: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            assert_eq!(fast, slow, "len {len}");
        }
    }

    #[test]
    fn frames_are_written_unmasked_with_the_given_first_byte() {
        let mut out = Vec::new();
        let mut payload = *b"Hello";
        unmask(&mut payload, [0x37, 0xfa, 0x21, 0x3d]);
        push_frame(&mut out, 0x81, Some([0x37, 0xfa, 0x21, 0x3d]), &mut payload);
        assert_eq!(out, b"\x81\x05Hello");
        let mut big = vec![0; 70_000];
        out.clear();
        push_frame(&mut out, 0x02, None, &mut big);
        assert_eq!(&out[..10], &[0x02, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
        out.clear();
        push_header(&mut out, 0x81, 300);
        assert_eq!(out, [0x81, 126, 1, 44]);
    }
}
