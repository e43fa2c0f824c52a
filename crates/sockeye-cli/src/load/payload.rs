//! The messages a load thread sends, and the byte-for-byte check of what comes back.
//!
//! Every message carries a stamp: the connection id and a per-connection counter
//! (`id << 40 | n`). In binary mode the stamp is its low-order bytes (little-endian, up to 8); in
//! text mode its low-order hex digits (up to 16), so the message stays ASCII. Everything else in
//! the message follows from the stamp, so an echo is compared byte for byte with what was sent
//! without keeping a copy of each message in flight.
//!
//! Without `--deflate`, every message of a thread is one template with the stamp at its front:
//! random bytes, or random letters for text; nothing is copied per message. With `--deflate`
//! that would measure the wrong thing (a compressor that keeps its context turns each repeat of
//! the template into one back-reference), so each message is assembled from the stamp instead:
//! binary messages are a slice of a random corpus picked by the stamp (they do not compress,
//! like real binary payloads), and text messages are JSON-like market data, a run of quotes
//! picked by the stamp from a corpus of them, padded with spaces to the size:
//! `{"id":"<stamp>","quotes":[{"seq":17,"symbol":"ACME","bid":123.45,"ask":123.47,...},...]}`.

use core::fmt;
use core::fmt::Write as _;

use sockeye_proto::{Connection, Extension, Message, SendError};

use super::sys::splitmix64;

/// Stamp bits left for the per-connection counter.
const COUNTER_BITS: u32 = 40;

/// The start of a JSON message; the stamp's 16 hex digits follow.
const JSON_HEAD: &[u8] = b"{\"id\":\"";

/// What follows the stamp in a JSON message with room for quotes.
const JSON_QUOTES: &[u8] = b"\",\"quotes\":[";

/// The smallest JSON message: `{"id":"<stamp>"}`.
const JSON_MIN: usize = JSON_HEAD.len() + 16 + 2;

/// The smallest JSON message with a quote list: `{"id":"<stamp>","quotes":[]}`.
const JSON_MIN_QUOTES: usize = JSON_HEAD.len() + 16 + JSON_QUOTES.len() + 2;

/// How far into its corpus a varying message may start: far more than a 32 KiB deflate window,
/// so that a message rarely repeats one the compressor still remembers.
const SPREAD: usize = 4 << 20;

/// Ticker symbols of the JSON quotes.
const SYMBOLS: [&str; 8] = [
    "ACME", "GLOBX", "INIT", "UMBR", "WAYNE", "STARK", "TYRL", "CYBD",
];

/// The messages of one thread and their check.
#[derive(Debug)]
pub(super) struct Payload {
    /// The message size in bytes.
    size: usize,
    text: bool,
    kind: Kind,
}

/// How a message is made from its stamp.
#[derive(Debug)]
enum Kind {
    /// One template for every message: the stamp overwrites `stamp_len` bytes at `stamp_at`.
    Fixed {
        template: Vec<u8>,
        stamp_at: usize,
        stamp_len: usize,
    },
    /// Binary: the 8-byte stamp, then `size - 8` bytes of `corpus` from an offset the stamp
    /// picks (below [`SPREAD`]).
    RandomSlice { corpus: Vec<u8>, message: Vec<u8> },
    /// JSON: head, stamp, then the quotes of `records` from one the stamp picks (among the first
    /// `candidates`) as far as they fit, padded. `starts[i]` is where record `i` begins (at its
    /// leading comma); the last entry is the end of `records`.
    JsonQuotes {
        records: Vec<u8>,
        starts: Vec<usize>,
        candidates: usize,
        message: Vec<u8>,
    },
}

/// How an echo differs from what was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Mismatch {
    /// A message came back with nothing outstanding.
    Unexpected,
    /// Text came back for binary, or the reverse.
    Kind {
        /// Whether the echo was a text message.
        got_text: bool,
    },
    /// The lengths differ.
    Length {
        /// What was sent.
        sent: usize,
        /// What came back.
        got: usize,
    },
    /// The first differing byte.
    Byte {
        /// Its offset in the message.
        offset: usize,
        /// What was sent there.
        sent: u8,
        /// What came back.
        got: u8,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Unexpected => f.write_str("a message arrived with none outstanding"),
            Mismatch::Kind { got_text: true } => f.write_str("sent binary, got text back"),
            Mismatch::Kind { got_text: false } => f.write_str("sent text, got binary back"),
            Mismatch::Length { sent, got } => write!(f, "sent {sent} bytes, got {got} back"),
            Mismatch::Byte { offset, sent, got } => write!(
                f,
                "byte {offset} differs: sent {sent:#04x}, got {got:#04x} (out of order or corrupt)"
            ),
        }
    }
}

impl Payload {
    /// The messages of `size` bytes made from `seed`: binary or text, each message different
    /// when `vary` (deflate runs), else one template (see the module docs).
    pub(super) fn new(size: usize, text: bool, vary: bool, mut seed: u64) -> Self {
        let kind = match (vary, text) {
            (true, true) if size >= JSON_MIN_QUOTES => Kind::json_quotes(size, &mut seed),
            (true, true) if size >= JSON_MIN => Kind::json_short(size),
            (true, false) if size > 8 => {
                let mut corpus = Vec::new();
                fill(&mut corpus, SPREAD + size, false, &mut seed);
                Kind::RandomSlice {
                    corpus,
                    message: Vec::with_capacity(size),
                }
            }
            _ => {
                let mut template = Vec::new();
                fill(&mut template, size, text, &mut seed);
                Kind::Fixed {
                    template,
                    stamp_at: 0,
                    stamp_len: size.min(if text { 16 } else { 8 }),
                }
            }
        };
        Payload { size, text, kind }
    }

    /// The stamp of message `n` on connection `id`.
    pub(super) fn stamp_value(id: u64, n: u64) -> u64 {
        (id << COUNTER_BITS) | (n & ((1 << COUNTER_BITS) - 1))
    }

    /// The message size in bytes.
    pub(super) fn len(&self) -> usize {
        self.size
    }

    /// Message `value`, made in the payload's own buffer.
    fn message(&mut self, value: u64) -> &[u8] {
        let size = self.size;
        match &mut self.kind {
            Kind::Fixed {
                template,
                stamp_at,
                stamp_len,
            } => {
                let (at, len) = (*stamp_at, *stamp_len);
                let mut stamp = hex_stamp(value, len);
                if !self.text {
                    stamp[..8].copy_from_slice(&value.to_le_bytes());
                }
                template[at..at + len].copy_from_slice(&stamp[..len]);
                template
            }
            Kind::RandomSlice { corpus, message } => {
                let from = (pick(value) % SPREAD as u64) as usize;
                message.clear();
                message.extend_from_slice(&value.to_le_bytes());
                message.extend_from_slice(&corpus[from..from + size - 8]);
                message
            }
            Kind::JsonQuotes {
                records,
                starts,
                candidates,
                message,
            } => {
                message.clear();
                message.extend_from_slice(JSON_HEAD);
                message.extend_from_slice(&hex_stamp(value, 16));
                message.extend_from_slice(JSON_QUOTES);
                let room = size - message.len() - 2;
                let first = (pick(value) % *candidates as u64) as usize;
                // Skip the first record's leading comma; take whole records while they fit.
                let from = starts[first] + 1;
                let last = starts.partition_point(|&at| at <= from + room) - 1;
                message.extend_from_slice(&records[from..starts[last].max(from)]);
                // Whitespace between JSON tokens is insignificant: pad before the brackets.
                message.resize(size - 2, b' ');
                message.extend_from_slice(b"]}");
                message
            }
        }
    }

    /// Appends message `value` as a masked frame to `out` (compressed when the connection's
    /// extension says so).
    ///
    /// # Errors
    ///
    /// When the connection refuses to send (a close is already queued) or compression fails.
    pub(super) fn send<E: Extension>(
        &mut self,
        value: u64,
        ws: &mut Connection<E>,
        out: &mut Vec<u8>,
    ) -> Result<(), SendError> {
        let text = self.text;
        let bytes = self.message(value);
        let message = if text {
            // Every message is ASCII; the fallback is never taken.
            Message::Text(core::str::from_utf8(bytes).unwrap_or_default())
        } else {
            Message::Binary(bytes)
        };
        ws.send(message, out)
    }

    /// Compares an echo with message `value` byte for byte.
    ///
    /// # Errors
    ///
    /// The first difference found.
    pub(super) fn verify(
        &mut self,
        value: u64,
        got: &[u8],
        got_text: bool,
    ) -> Result<(), Mismatch> {
        if got_text != self.text {
            return Err(Mismatch::Kind { got_text });
        }
        if got.len() != self.size {
            return Err(Mismatch::Length {
                sent: self.size,
                got: got.len(),
            });
        }
        let sent = self.message(value);
        if got == sent {
            return Ok(());
        }
        let (offset, (got, sent)) = got
            .iter()
            .zip(sent)
            .enumerate()
            .find(|(_, (g, s))| g != s)
            .unwrap_or((0, (&0, &0)));
        Err(Mismatch::Byte {
            offset,
            sent: *sent,
            got: *got,
        })
    }
}

impl Kind {
    /// `{"id":"<stamp>"}` padded with spaces before the brace: too small for quotes.
    fn json_short(size: usize) -> Kind {
        let mut template = JSON_HEAD.to_vec();
        template.resize(JSON_HEAD.len() + 16, b'0');
        template.push(b'"');
        template.resize(size - 1, b' ');
        template.push(b'}');
        Kind::Fixed {
            template,
            stamp_at: JSON_HEAD.len(),
            stamp_len: 16,
        }
    }

    /// A corpus of quotes long enough for a message of `size` from any of the candidates.
    fn json_quotes(size: usize, seed: &mut u64) -> Kind {
        let mut records = String::new();
        let mut starts = Vec::new();
        for seq in 0u64.. {
            if records.len() >= SPREAD + size {
                break;
            }
            starts.push(records.len());
            records.push(',');
            write_quote(&mut records, seq, splitmix64(seed));
        }
        let candidates = starts.partition_point(|&at| at < SPREAD);
        starts.push(records.len());
        Kind::JsonQuotes {
            records: records.into_bytes(),
            starts,
            candidates,
            message: Vec::with_capacity(size),
        }
    }
}

/// Appends `len` random bytes to `out`, or random lowercase letters when `text`.
fn fill(out: &mut Vec<u8>, len: usize, text: bool, seed: &mut u64) {
    out.reserve(len);
    while out.len() < len {
        let word = splitmix64(seed).to_le_bytes();
        let room = (len - out.len()).min(8);
        if text {
            out.extend(word[..room].iter().map(|b| b'a' + b % 26));
        } else {
            out.extend_from_slice(&word[..room]);
        }
    }
}

/// The low-order `len` hex digits of `value` (at most 16), most significant first.
fn hex_stamp(value: u64, len: usize) -> [u8; 16] {
    let mut stamp = [0u8; 16];
    for (i, digit) in stamp[..len].iter_mut().enumerate() {
        let shift = 4 * (len - 1 - i);
        *digit = b"0123456789abcdef"[((value >> shift) & 0xf) as usize];
    }
    stamp
}

/// A well-mixed number from a stamp, to pick where its message starts in a corpus.
fn pick(value: u64) -> u64 {
    let mut state = value;
    splitmix64(&mut state)
}

/// Appends one JSON quote: `{"seq":N,"symbol":"ACME","bid":123.45,"ask":123.47,"size":300,...}`.
fn write_quote(out: &mut String, seq: u64, random: u64) {
    let symbol = SYMBOLS[(random % SYMBOLS.len() as u64) as usize];
    let bid = 10_000 + (random >> 8) % 90_000;
    let ask = bid + 1 + (random >> 32) % 5;
    let size = 100 * (1 + (random >> 40) % 50);
    let ts = 1_700_000_000_000 + seq * 137 + (random >> 48) % 100;
    let _ = write!(
        out,
        "{{\"seq\":{seq},\"symbol\":\"{symbol}\",\"bid\":{}.{:02},\"ask\":{}.{:02},\"size\":{size},\
         \"venue\":\"XNAS\",\"ts\":{ts}}}",
        bid / 100,
        bid % 100,
        ask / 100,
        ask % 100,
    );
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use sockeye_deflate::{DeflateConfig, PerMessageDeflate};
    use sockeye_proto::extension::{ParamWriter, parse_offers};
    use sockeye_proto::{Config, Event, NoExtension};

    use super::*;

    /// Sends message `value` from `client` and decodes it on `server`, returning the payload
    /// and the frame's length on the wire.
    fn round_trip_with<C: Extension, S: Extension>(
        payload: &mut Payload,
        value: u64,
        client: &mut Connection<C>,
        server: &mut Connection<S>,
    ) -> (Vec<u8>, bool, usize) {
        let mut out = Vec::new();
        payload.send(value, client, &mut out).expect("send");
        let wire = out.len();
        let mut buf = Vec::new();
        let read = server
            .handle_read(&mut out, &mut buf, Instant::now())
            .expect("decode");
        match read.event {
            Some(Event::Binary(bytes)) => (bytes.to_vec(), false, wire),
            Some(Event::Text(text)) => (text.as_bytes().to_vec(), true, wire),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Sends message `value` from a client and decodes it on a server, returning the payload.
    fn round_trip(payload: &mut Payload, value: u64) -> (Vec<u8>, bool) {
        let mut client = Connection::client(Config::default(), NoExtension, 7);
        let mut server = Connection::server(Config::default(), NoExtension);
        let (got, text, _) = round_trip_with(payload, value, &mut client, &mut server);
        (got, text)
    }

    /// A client and a server with permessage-deflate negotiated, every message compressed.
    fn deflate_pair() -> (Connection<PerMessageDeflate>, Connection<PerMessageDeflate>) {
        let mut config = DeflateConfig::default();
        config.threshold = 0;
        let mut client = PerMessageDeflate::client(config);
        let mut server = PerMessageDeflate::server(config);
        let (mut offer_buf, mut answer_buf) = ([0u8; 128], [0u8; 128]);
        let mut offer = ParamWriter::new(&mut offer_buf);
        client.write_offer(&mut offer).unwrap();
        let offer = format!(
            "permessage-deflate{}",
            core::str::from_utf8(offer.as_bytes()).unwrap()
        );
        let mut answer = ParamWriter::new(&mut answer_buf);
        let offer = parse_offers(&offer).next().unwrap().unwrap();
        assert_eq!(server.accept_offer(&offer, &mut answer), Ok(true));
        let answer = format!(
            "permessage-deflate{}",
            core::str::from_utf8(answer.as_bytes()).unwrap()
        );
        client
            .accept_response(&parse_offers(&answer).next().unwrap().unwrap())
            .unwrap();
        (
            Connection::client(Config::default(), client, 7),
            Connection::server(Config::default(), server),
        )
    }

    /// (text, vary) of every kind of run: binary, text, and both with --deflate.
    const RUNS: [(bool, bool); 4] = [(false, false), (true, false), (false, true), (true, true)];

    #[test]
    fn echoes_verify_and_differ_per_message() {
        for (text, vary) in RUNS {
            for size in [0, 1, 7, 8, 9, 16, 17, 24, 25, 26, 36, 37, 38, 200, 1000] {
                let mut payload = Payload::new(size, text, vary, 42);
                let a = Payload::stamp_value(3, 1);
                let b = Payload::stamp_value(3, 2);
                let (got_a, is_text) = round_trip(&mut payload, a);
                let (got_b, _) = round_trip(&mut payload, b);
                let case = format!("text {text}, vary {vary}, size {size}");
                assert_eq!(got_a.len(), size, "{case}");
                assert_eq!(payload.len(), size, "{case}");
                assert_eq!(payload.verify(a, &got_a, is_text), Ok(()), "{case}");
                assert_eq!(payload.verify(b, &got_b, is_text), Ok(()), "{case}");
                assert_eq!(payload.verify(a, &got_a, is_text), Ok(()), "{case}");
                if size > 0 {
                    assert_ne!(got_a, got_b, "{case}");
                    assert!(payload.verify(b, &got_a, is_text).is_err(), "{case}");
                }
            }
        }
    }

    #[test]
    fn json_messages_are_json_like_text() {
        // (size, starts with, ends with); under 25 bytes the letters are used.
        let table: [(usize, &str, &str); 6] = [
            (24, "", ""),
            (25, "{\"id\":\"", "\"}"),
            (36, "{\"id\":\"", "\"           }"),
            (37, "{\"id\":\"", "\",\"quotes\":[]}"),
            (4096, "{\"id\":\"", "]}"),
            (100_000, "{\"id\":\"", "]}"),
        ];
        for (size, head, tail) in table {
            let mut payload = Payload::new(size, true, true, 9);
            for n in 0..20 {
                let message = payload.message(Payload::stamp_value(1, n));
                let text = core::str::from_utf8(message).unwrap();
                assert_eq!(text.len(), size);
                assert!(text.is_ascii());
                assert!(
                    text.starts_with(head) && text.ends_with(tail),
                    "{size}: {text}"
                );
                let opens = text.matches(['{', '[']).count();
                assert_eq!(opens, text.matches(['}', ']']).count(), "{size}: {text}");
                assert!(
                    !text.contains("[,") && !text.contains(",]"),
                    "{size}: {text}"
                );
                if size >= 4096 {
                    assert!(text.contains(",{\"seq\":"), "{text}");
                    let padding = text.len() - text.trim_end_matches("]}").trim_end().len();
                    assert!(padding < 120, "little padding: {text}");
                }
            }
        }
    }

    #[test]
    fn compressed_echoes_verify() {
        let (mut client, mut server) = deflate_pair();
        // (text, vary, size, the most wire bytes per payload byte after the first messages)
        let table = [
            (true, true, 4096, 0.4),
            (false, true, 4096, 1.01),
            (true, false, 4096, 0.1),
            (false, false, 300, 0.2),
        ];
        for (text, vary, size, most) in table {
            let mut payload = Payload::new(size, text, vary, 5);
            for n in 0..20 {
                let value = Payload::stamp_value(8, n);
                let (got, is_text, wire) =
                    round_trip_with(&mut payload, value, &mut client, &mut server);
                assert_eq!(
                    payload.verify(value, &got, is_text),
                    Ok(()),
                    "{text} {vary}"
                );
                let ratio = wire as f64 / size as f64;
                if n > 0 {
                    assert!(ratio <= most, "{text} {vary} {n}: {wire} of {size}");
                }
                if vary && n > 0 {
                    // Varying messages are not one back-reference to the previous one.
                    assert!(ratio > 0.1, "{text} {vary} {n}: {wire} of {size}");
                }
            }
        }
    }

    #[test]
    fn mismatches_are_named() {
        let mut payload = Payload::new(32, false, false, 1);
        let value = Payload::stamp_value(1, 5);
        let (mut got, _) = round_trip(&mut payload, value);
        assert_eq!(
            payload.verify(value, &got[..31], false),
            Err(Mismatch::Length { sent: 32, got: 31 })
        );
        assert_eq!(
            payload.verify(value, &got, true),
            Err(Mismatch::Kind { got_text: true })
        );
        got[20] ^= 1;
        assert!(matches!(
            payload.verify(value, &got, false),
            Err(Mismatch::Byte { offset: 20, .. })
        ));
        for (text, vary) in RUNS {
            let mut payload = Payload::new(100, text, vary, 1);
            for offset in [2, 10, 99] {
                let (mut got, _) = round_trip(&mut payload, value);
                got[offset] = b'~';
                let result = payload.verify(value, &got, text);
                assert!(
                    matches!(result, Err(Mismatch::Byte { offset: o, .. }) if o == offset),
                    "{text} {vary} {offset}: {result:?}"
                );
            }
        }
    }
}
