//! Random message streams cut at random points, and the differential oracles of the fast paths.
//!
//! - A server fed a random stream of masked client frames (text with multi-byte characters,
//!   binary, pings, pongs, fragmented messages with control frames between the fragments) in
//!   random reads delivers exactly the generated messages, the same as when fed whole, and owes
//!   the same pongs.
//! - `apply_mask` equals `apply_mask_bytewise` for random lengths, offsets and alignments.
//! - `Utf8Validator` fed in random chunks agrees with `std::str::from_utf8` on the joined bytes,
//!   and fails in the very chunk holding the first byte that cannot start valid UTF-8.

use std::time::Instant;

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::Index;
use sockeye_proto::frame::OpCode;
use sockeye_proto::mask::{apply_mask, apply_mask_bytewise};
use sockeye_proto::utf8::Utf8Validator;
use sockeye_proto::{Config, Connection, NoExtension};
use sockeye_tests::engine::{OwnedEvent, Peer, split_at};
use sockeye_tests::wire::{encode_frame, frame};

#[derive(Debug, Clone)]
enum Control {
    Ping(Vec<u8>),
    Pong(Vec<u8>),
}

#[derive(Debug, Clone)]
enum Msg {
    Text(String),
    Binary(Vec<u8>),
    Control(Control),
    /// One message cut into fragments at `cuts`, with a control frame after fragment `i` when
    /// `controls[i]` is set.
    Fragmented {
        text: bool,
        payload: Vec<u8>,
        cuts: Vec<usize>,
        controls: Vec<Option<Control>>,
    },
}

fn chars() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => any::<char>(),
        3 => proptest::char::range('a', 'z'),
        1 => Just('é'),
        1 => Just('€'),
        1 => Just('😀'),
    ]
}

/// Mostly 0..300 bytes, sometimes past 65535 (a 64-bit length on the wire).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        30 => vec(chars(), 0..300).prop_map(String::from_iter),
        1 => (vec(chars(), 1..40), 65_536usize..66_000).prop_map(|(unit, len)| {
            let unit = String::from_iter(unit);
            let mut text = String::with_capacity(len + unit.len());
            while text.len() < len {
                text.push_str(&unit);
            }
            text
        }),
    ]
}

fn binary() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        30 => vec(any::<u8>(), 0..300),
        1 => (vec(any::<u8>(), 1..64), 65_536usize..66_000)
            .prop_map(|(unit, len)| unit.iter().copied().cycle().take(len).collect()),
    ]
}

fn control() -> impl Strategy<Value = Control> {
    prop_oneof![
        vec(any::<u8>(), 0..=125).prop_map(Control::Ping),
        vec(any::<u8>(), 0..=125).prop_map(Control::Pong),
    ]
}

fn fragmented() -> impl Strategy<Value = Msg> {
    let payload = prop_oneof![
        text().prop_map(|t| (true, t.into_bytes())),
        binary().prop_map(|b| (false, b)),
    ];
    (
        payload,
        vec(any::<Index>(), 1..6),
        vec(option::weighted(0.4, control()), 6),
    )
        .prop_map(|((text, payload), cuts, controls)| {
            // Cuts may fall inside a code point, and may repeat (empty fragments).
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(payload.len() + 1)).collect();
            cuts.sort_unstable();
            Msg::Fragmented {
                text,
                payload,
                cuts,
                controls,
            }
        })
}

fn message() -> impl Strategy<Value = Msg> {
    prop_oneof![
        3 => text().prop_map(Msg::Text),
        2 => binary().prop_map(Msg::Binary),
        2 => control().prop_map(Msg::Control),
        3 => fragmented(),
    ]
}

/// Builds the wire bytes of a stream as a client sends them (each frame with its own mask key),
/// the events a server must deliver for it, and the pongs the server must owe.
#[derive(Default)]
struct Encoder {
    key: u32,
    wire: Vec<u8>,
    events: Vec<OwnedEvent>,
    pongs: Vec<u8>,
}

impl Encoder {
    fn frame(&mut self, fin: bool, opcode: OpCode, payload: &[u8]) {
        self.key = self.key.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let key = Some(self.key.to_be_bytes());
        encode_frame(&mut self.wire, fin, opcode, payload, key);
    }

    fn control(&mut self, control: &Control) {
        match control {
            Control::Ping(p) => {
                self.frame(true, OpCode::Ping, p);
                self.events.push(OwnedEvent::Ping(p.clone()));
                self.pongs.extend(frame(true, OpCode::Pong, p, None));
            }
            Control::Pong(p) => {
                self.frame(true, OpCode::Pong, p);
                self.events.push(OwnedEvent::Pong(p.clone()));
            }
        }
    }

    fn message(&mut self, msg: &Msg) {
        match msg {
            Msg::Text(t) => {
                self.frame(true, OpCode::Text, t.as_bytes());
                self.events.push(OwnedEvent::Text(t.clone()));
            }
            Msg::Binary(b) => {
                self.frame(true, OpCode::Binary, b);
                self.events.push(OwnedEvent::Binary(b.clone()));
            }
            Msg::Control(c) => self.control(c),
            Msg::Fragmented {
                text,
                payload,
                cuts,
                controls,
            } => {
                let pieces = split_at(payload, cuts);
                let last = pieces.len() - 1;
                for (i, piece) in pieces.iter().enumerate() {
                    let opcode = match (i, text) {
                        (0, true) => OpCode::Text,
                        (0, false) => OpCode::Binary,
                        _ => OpCode::Continuation,
                    };
                    self.frame(i == last, opcode, piece);
                    if let Some(Some(c)) = controls.get(i).filter(|_| i < last) {
                        self.control(c);
                    }
                }
                self.events.push(match text {
                    true => OwnedEvent::Text(String::from_utf8(payload.clone()).unwrap()),
                    false => OwnedEvent::Binary(payload.clone()),
                });
            }
        }
    }
}

/// Feeds `chunks` to a fresh server; returns its events and owed replies.
fn serve(chunks: &[&[u8]]) -> Result<(Vec<OwnedEvent>, Vec<u8>), TestCaseError> {
    let mut peer = Peer::new(Connection::server(Config::default(), NoExtension));
    let result = peer.receive_all(chunks.iter().copied(), Instant::now());
    prop_assert_eq!(result, Ok(()));
    prop_assert!(peer.leftover().is_empty());
    prop_assert!(!peer.conn.is_receiving_message());
    peer.transmit();
    Ok((peer.events, peer.wire))
}

fn cuts_of(len: usize, cuts: &[Index], chunk: Option<usize>) -> Vec<usize> {
    match chunk {
        Some(step) if len <= 4096 => (step..len).step_by(step).collect(),
        _ => {
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(len + 1)).collect();
            cuts.sort_unstable();
            cuts
        }
    }
}

proptest! {
    #[test]
    fn random_streams_split_anywhere_give_the_generated_messages(
        msgs in vec(message(), 1..8),
        seed in any::<u32>(),
        cuts in vec(any::<Index>(), 0..24),
        chunk in option::weighted(0.3, 1usize..=13),
    ) {
        let mut enc = Encoder { key: seed, ..Encoder::default() };
        for msg in &msgs {
            enc.message(msg);
        }
        let Encoder { wire, events: expected, pongs, .. } = enc;
        let whole = serve(&[&wire])?;
        prop_assert_eq!(&whole.0, &expected, "fed whole");
        prop_assert_eq!(&whole.1, &pongs, "pongs owed");
        let cuts = cuts_of(wire.len(), &cuts, chunk);
        let split = serve(&split_at(&wire, &cuts))?;
        prop_assert_eq!(split, whole, "cut at {:?}", cuts);
    }

    #[test]
    fn fast_mask_equals_bytewise_mask(
        data in vec(any::<u8>(), 0..=4096),
        key in any::<[u8; 4]>(),
        offset in 0..u32::MAX as usize,
        start in 0usize..8,
        split in any::<Index>(),
    ) {
        let start = start.min(data.len());
        let mut fast = data.clone();
        let mut slow = data.clone();
        apply_mask(&mut fast[start..], key, offset);
        apply_mask_bytewise(&mut slow[start..], key, offset);
        prop_assert_eq!(&fast, &slow, "whole, from {}", start);

        // In two pieces, as a payload arriving in two reads is unmasked.
        let mut parts = data.clone();
        let at = split.index(data.len() - start + 1);
        let (a, b) = parts[start..].split_at_mut(at);
        apply_mask(a, key, offset);
        apply_mask(b, key, offset + at);
        prop_assert_eq!(&parts, &slow, "split at {}", at);

        apply_mask(&mut fast[start..], key, offset);
        prop_assert_eq!(fast, data, "masking twice is the identity");
    }

    #[test]
    fn utf8_validator_agrees_with_std_on_random_bytes(
        data in vec(prop_oneof![any::<u8>(), 0u8..0x80, 0x80u8..0xc0, 0xc0u8..=0xff], 0..64),
        cuts in vec(any::<Index>(), 0..8),
    ) {
        check_utf8(&data, &cuts)?;
    }

    #[test]
    fn utf8_validator_agrees_with_std_on_strings_with_a_flipped_byte(
        text in vec(chars(), 0..40).prop_map(String::from_iter),
        flip in option::weighted(0.8, (any::<Index>(), 1u8..=255)),
        cuts in vec(any::<Index>(), 0..8),
    ) {
        let mut data = text.into_bytes();
        if let (Some((at, bits)), false) = (flip, data.is_empty()) {
            let at = at.index(data.len());
            data[at] ^= bits;
        }
        check_utf8(&data, &cuts)?;
    }
}

/// Feeds `data` cut at `cuts` and checks the verdict and the chunk in which it came.
fn check_utf8(data: &[u8], cuts: &[Index]) -> Result<(), TestCaseError> {
    let cuts = cuts_of(data.len(), cuts, None);
    let oracle = std::str::from_utf8(data);
    // The index of the first byte after which the input cannot become valid UTF-8: the bad
    // byte itself when it cannot lead a sequence, else the byte that breaks the sequence.
    let first_bad = oracle.err().and_then(|err| {
        let at = err.valid_up_to();
        err.error_len().map(|len| {
            if matches!(data[at], 0xc2..=0xf4) {
                at + len
            } else {
                at
            }
        })
    });
    let mut validator = Utf8Validator::new();
    let mut start = 0;
    for chunk in split_at(data, &cuts) {
        let end = start + chunk.len();
        let result = validator.feed(chunk);
        match first_bad {
            Some(bad) if bad < end => {
                prop_assert!(
                    result.is_err(),
                    "{:02x?}: byte {} missed in {}..{}",
                    data,
                    bad,
                    start,
                    end
                );
                return Ok(());
            }
            _ => prop_assert!(
                result.is_ok(),
                "{:02x?}: failed in {}..{}",
                data,
                start,
                end
            ),
        }
        start = end;
    }
    prop_assert_eq!(
        validator.finish().is_ok(),
        oracle.is_ok(),
        "{:02x?} at the end",
        data
    );
    Ok(())
}
