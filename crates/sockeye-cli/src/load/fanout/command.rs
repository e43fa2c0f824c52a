//! The lines of the /pubsub text protocol that the load generator writes (`sub TOPIC`,
//! `pub TOPIC PAYLOAD`) and reads (`msg TOPIC PAYLOAD`, `ok sub TOPIC`, `error TEXT`), and its
//! topic names: `PREFIX0` .. `PREFIX{T-1}`.

use core::fmt::Write as _;

/// A message from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reply<'a> {
    /// `msg TOPIC PAYLOAD`: a delivery.
    Msg {
        /// The topic it was published on.
        topic: &'a str,
        /// Everything after the space that follows the topic (empty when there is none).
        payload: &'a str,
    },
    /// `ok sub TOPIC`.
    OkSub(&'a str),
    /// `error TEXT`.
    Error(&'a str),
    /// Anything else (the load generator sends no `unsub`).
    Other,
}

/// Reads a text message from the server.
pub(super) fn parse_reply(text: &str) -> Reply<'_> {
    if let Some(rest) = text.strip_prefix("msg ") {
        let (topic, payload) = rest.split_once(' ').unwrap_or((rest, ""));
        return Reply::Msg { topic, payload };
    }
    if let Some(topic) = text.strip_prefix("ok sub ") {
        return Reply::OkSub(topic);
    }
    match text.strip_prefix("error") {
        Some(rest) if rest.is_empty() || rest.starts_with(' ') => Reply::Error(rest.trim_start()),
        _ => Reply::Other,
    }
}

/// The index of topic `PREFIX{index}` among `topics` topics; `None` for another name (leading
/// zeros included).
pub(super) fn topic_index(topic: &str, prefix: &str, topics: usize) -> Option<usize> {
    let digits = topic.strip_prefix(prefix)?;
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    let index: usize = digits.parse().ok().filter(|_| canonical)?;
    (index < topics).then_some(index)
}

/// Writes `sub PREFIX{topic}` into `line` (cleared first).
pub(super) fn write_sub(line: &mut String, prefix: &str, topic: usize) {
    line.clear();
    let _ = write!(line, "sub {prefix}{topic}");
}

/// Writes `pub PREFIX{topic} ` followed by `stamp` and `filler` into `line` (cleared first).
pub(super) fn write_pub(line: &mut String, prefix: &str, topic: usize, stamp: &str, filler: &str) {
    line.clear();
    let _ = write!(line, "pub {prefix}{topic} ");
    line.push_str(stamp);
    line.push_str(filler);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        let table = [
            (
                "msg t1 abc def",
                Reply::Msg {
                    topic: "t1",
                    payload: "abc def",
                },
            ),
            (
                "msg t1 ",
                Reply::Msg {
                    topic: "t1",
                    payload: "",
                },
            ),
            (
                "msg t1",
                Reply::Msg {
                    topic: "t1",
                    payload: "",
                },
            ),
            ("ok sub t7", Reply::OkSub("t7")),
            (
                "error bad topic: empty token",
                Reply::Error("bad topic: empty token"),
            ),
            ("error", Reply::Error("")),
            ("errors", Reply::Other),
            ("ok unsub t7", Reply::Other),
            ("msgt1 x", Reply::Other),
            ("", Reply::Other),
        ];
        for (text, expected) in table {
            assert_eq!(parse_reply(text), expected, "{text:?}");
        }
    }

    #[test]
    fn topic_names() {
        // (name, prefix, topics, index)
        let table = [
            ("t0", "t", 1, Some(0)),
            ("t9", "t", 10, Some(9)),
            ("t10", "t", 10, None),
            ("room.12", "room.", 20, Some(12)),
            ("t01", "t", 10, None),
            ("t", "t", 10, None),
            ("t+1", "t", 10, None),
            ("x1", "t", 10, None),
            ("t99999999999999999999999", "t", 10, None),
        ];
        for (name, prefix, topics, index) in table {
            assert_eq!(topic_index(name, prefix, topics), index, "{name}");
        }
    }

    #[test]
    fn lines() {
        let mut line = String::from("old");
        write_sub(&mut line, "t", 3);
        assert_eq!(line, "sub t3");
        write_pub(&mut line, "a.", 12, "0123456789ABCDEF", "xyz");
        assert_eq!(line, "pub a.12 0123456789ABCDEFxyz");
        assert_eq!(
            parse_reply(&line.replacen("pub", "msg", 1)),
            Reply::Msg {
                topic: "a.12",
                payload: "0123456789ABCDEFxyz"
            }
        );
    }
}
