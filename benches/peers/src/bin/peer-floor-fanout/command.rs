//! The `/pubsub` text protocol's client commands, parsed from a message's bytes, and the
//! server's text messages, encoded as whole frames. No IO.
//!
//! The floor takes exact topics only: a `*` or `>` token in `sub` or `unsub` is answered with an
//! error instead of being matched as a wildcard.

use sockeye_peers::wire::{FIN, OP_TEXT, push_header};

/// The longest topic taken, so that a connection's subscriptions stay small.
pub(crate) const MAX_TOPIC: usize = 256;

/// One client command; the slices borrow the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command<'m> {
    /// `sub TOPIC`.
    Sub(&'m [u8]),
    /// `unsub TOPIC`.
    Unsub(&'m [u8]),
    /// `pub TOPIC PAYLOAD` (`to_sender`) or `pubx TOPIC PAYLOAD`.
    Publish {
        topic: &'m [u8],
        payload: &'m [u8],
        to_sender: bool,
    },
}

/// Parses one text message. The error is the text of the `error` reply.
pub(crate) fn parse(message: &[u8]) -> Result<Command<'_>, &'static str> {
    let (verb, rest) = split_space(message);
    let rest = rest.ok_or(match verb {
        b"sub" | b"unsub" | b"pub" | b"pubx" => "bad topic: missing",
        _ => "unknown command",
    });
    match verb {
        b"sub" | b"unsub" => {
            let topic = rest?;
            check_topic(topic)?;
            if topic.split(|&b| b == b'.').any(|t| t == b"*" || t == b">") {
                return Err("wildcard subscriptions are not supported by this server");
            }
            Ok(if verb == b"sub" {
                Command::Sub(topic)
            } else {
                Command::Unsub(topic)
            })
        }
        b"pub" | b"pubx" => {
            let (topic, payload) = split_space(rest?);
            check_topic(topic)?;
            if topic.split(|&b| b == b'.').any(|t| t == b"*" || t == b">") {
                return Err("wildcard in a publish topic");
            }
            Ok(Command::Publish {
                topic,
                payload: payload.unwrap_or_default(),
                to_sender: verb == b"pub",
            })
        }
        _ => Err("unknown command"),
    }
}

/// Before and after the first space; `None` after when there is no space.
fn split_space(text: &[u8]) -> (&[u8], Option<&[u8]>) {
    match text.iter().position(|&b| b == b' ') {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    }
}

/// Tokens separated by `.`, none empty, no whitespace or control bytes, at most
/// [`MAX_TOPIC`] bytes.
fn check_topic(topic: &[u8]) -> Result<(), &'static str> {
    if topic.is_empty() {
        return Err("bad topic: empty");
    }
    if topic.len() > MAX_TOPIC {
        return Err("bad topic: longer than 256 bytes");
    }
    if topic.iter().any(|&b| b <= b' ' || b == 0x7F) {
        return Err("bad topic: whitespace or a control character");
    }
    if topic.split(|&b| b == b'.').any(<[u8]>::is_empty) {
        return Err("bad topic: an empty token");
    }
    Ok(())
}

/// Replaces `out` with the text frame `msg TOPIC PAYLOAD`; returns where TOPIC lies in it.
pub(crate) fn encode_msg(
    out: &mut Vec<u8>,
    topic: &[u8],
    payload: &[u8],
) -> std::ops::Range<usize> {
    encode_text(out, &[b"msg ", topic, b" ", payload]);
    let start = out.len() - payload.len() - 1 - topic.len();
    start..start + topic.len()
}

/// Replaces `out` with one text frame whose payload is `parts` joined.
pub(crate) fn encode_text(out: &mut Vec<u8>, parts: &[&[u8]]) {
    let len = parts.iter().map(|p| p.len()).sum();
    out.clear();
    out.reserve(10 + len);
    push_header(out, FIN | OP_TEXT, len);
    for part in parts {
        out.extend_from_slice(part);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        let cases: &[(&[u8], Result<Command<'_>, &str>)] = &[
            (b"sub a.b", Ok(Command::Sub(b"a.b"))),
            (b"unsub a", Ok(Command::Unsub(b"a"))),
            (
                b"pub t hello world",
                Ok(Command::Publish {
                    topic: b"t",
                    payload: b"hello world",
                    to_sender: true,
                }),
            ),
            (
                b"pubx t ",
                Ok(Command::Publish {
                    topic: b"t",
                    payload: b"",
                    to_sender: false,
                }),
            ),
            (
                b"pub t",
                Ok(Command::Publish {
                    topic: b"t",
                    payload: b"",
                    to_sender: true,
                }),
            ),
            (b"sub", Err("bad topic: missing")),
            (b"sub ", Err("bad topic: empty")),
            (
                b"sub a b",
                Err("bad topic: whitespace or a control character"),
            ),
            (b"sub a..b", Err("bad topic: an empty token")),
            (b"sub .a", Err("bad topic: an empty token")),
            (
                b"sub a.*",
                Err("wildcard subscriptions are not supported by this server"),
            ),
            (
                b"unsub >",
                Err("wildcard subscriptions are not supported by this server"),
            ),
            (b"pub a.> x", Err("wildcard in a publish topic")),
            (b"pub  x", Err("bad topic: empty")),
            (b"hello", Err("unknown command")),
            (b"SUB a", Err("unknown command")),
            (b"", Err("unknown command")),
        ];
        for (message, want) in cases {
            assert_eq!(
                parse(message),
                *want,
                "{}",
                String::from_utf8_lossy(message)
            );
        }
        let long = [b"sub ".as_slice(), &[b'a'; MAX_TOPIC + 1]].concat();
        assert_eq!(parse(&long), Err("bad topic: longer than 256 bytes"));
        assert!(parse(&long[..long.len() - 1]).is_ok());
        // Wildcard characters inside a token are literal.
        assert_eq!(parse(b"sub a*b"), Ok(Command::Sub(b"a*b")));
    }

    #[test]
    fn msg_frames_carry_topic_and_payload() {
        let mut out = vec![1, 2, 3];
        let topic = encode_msg(&mut out, b"news", b"hi there");
        assert_eq!(out, b"\x81\x11msg news hi there");
        assert_eq!(&out[topic], b"news");
        let payload = vec![b'x'; 1024];
        let topic = encode_msg(&mut out, b"t", &payload);
        assert_eq!(&out[..4], &[0x81, 126, 0x04, 0x06]);
        assert_eq!(&out[topic], b"t");
        encode_text(&mut out, &[b"ok sub ", b"t"]);
        assert_eq!(out, b"\x81\x08ok sub t");
    }
}
