//! The `/pubsub` endpoint of `sockeye serve`: a small text protocol over the engine's topics,
//! so that any WebSocket client (a browser, `websocat`, a script) can subscribe and publish.

use sockeye_proto::Message;
use sockeye_server::{Outbox, SlowConsumer};

/// The protocol, as `sockeye serve --help` and the README give it.
pub(crate) const PROTOCOL: &str = "\
The /pubsub endpoint speaks a text protocol, one command per text message:
  sub TOPIC [fail|drop|conflate]   subscribe; answers `ok sub TOPIC`. TOPIC is a NATS-style
                                   subject (tokens separated by dots) and may use the
                                   wildcards * (one token) and > (the rest, last token).
                                   With `conflate`, a subscriber that falls behind keeps
                                   only the newest message of each topic.
  unsub TOPIC                      unsubscribe; answers `ok unsub TOPIC`
  pub TOPIC PAYLOAD                publish to every subscriber, the sender included
  pubx TOPIC PAYLOAD               publish to every subscriber but the sender
Subscribers receive `msg TOPIC PAYLOAD`, once per publish; a bad command gets `error TEXT`.";

/// A command of the protocol.
#[derive(Debug, PartialEq, Eq)]
enum Command<'a> {
    Sub(&'a str, Option<SlowConsumer>),
    Unsub(&'a str),
    Pub {
        topic: &'a str,
        payload: &'a str,
        others: bool,
    },
}

/// Parses one text message.
fn parse(text: &str) -> Result<Command<'_>, String> {
    let (verb, rest) = text.split_once(' ').unwrap_or((text, ""));
    match verb {
        "sub" => {
            let (topic, policy) = rest.split_once(' ').unwrap_or((rest, ""));
            let policy = match policy {
                "" => None,
                "fail" => Some(SlowConsumer::Fail),
                "drop" => Some(SlowConsumer::Drop),
                "conflate" => Some(SlowConsumer::Conflate),
                other => return Err(format!("unknown policy {other:?}")),
            };
            Ok(Command::Sub(topic, policy))
        }
        "unsub" => Ok(Command::Unsub(rest)),
        "pub" | "pubx" => {
            let (topic, payload) = rest.split_once(' ').unwrap_or((rest, ""));
            Ok(Command::Pub {
                topic,
                payload,
                others: verb == "pubx",
            })
        }
        _ => Err(format!(
            "unknown command {:?} (sub, unsub, pub, pubx)",
            verb.chars().take(32).collect::<String>()
        )),
    }
}

/// Runs one message of a `/pubsub` connection; bad commands are answered with `error ...`.
/// Out of line, so that the echo path it branches off stays small.
#[inline(never)]
pub(crate) fn on_message(msg: Message<'_>, out: &mut Outbox<'_>) {
    let reply = match msg {
        Message::Text(text) => run(text, out),
        Message::Binary(_) => Some("error binary messages are not supported".to_owned()),
        Message::Ping(_) | Message::Pong(_) => None,
    };
    if let Some(reply) = reply {
        let _ = out.send(Message::Text(&reply));
    }
}

/// Runs one command; the reply to send, if any.
fn run(text: &str, out: &mut Outbox<'_>) -> Option<String> {
    let command = match parse(text) {
        Ok(command) => command,
        Err(e) => return Some(format!("error {e}")),
    };
    match command {
        Command::Sub(topic, policy) => {
            let result = match policy {
                Some(policy) => out.subscribe_with(topic, policy),
                None => out.subscribe(topic),
            };
            Some(match result {
                Ok(_) => format!("ok sub {topic}"),
                Err(e) => format!("error bad topic {topic:?}: {e}"),
            })
        }
        Command::Unsub(topic) => {
            out.unsubscribe(topic);
            Some(format!("ok unsub {topic}"))
        }
        Command::Pub {
            topic,
            payload,
            others,
        } => {
            let delivery = format!("msg {topic} {payload}");
            let msg = Message::Text(&delivery);
            let result = if others {
                out.publish_to_others(topic, msg)
            } else {
                out.publish(topic, msg)
            };
            result.err().map(|e| format!("error {topic:?}: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(parse("sub a.b"), Ok(Command::Sub("a.b", None)));
        assert_eq!(
            parse("sub a.* conflate"),
            Ok(Command::Sub("a.*", Some(SlowConsumer::Conflate)))
        );
        assert!(parse("sub a later").is_err());
        assert_eq!(parse("unsub a.>"), Ok(Command::Unsub("a.>")));
        assert_eq!(
            parse("pub room.1 hello there "),
            Ok(Command::Pub {
                topic: "room.1",
                payload: "hello there ",
                others: false
            })
        );
        assert_eq!(
            parse("pubx t"),
            Ok(Command::Pub {
                topic: "t",
                payload: "",
                others: true
            })
        );
        assert!(parse("PUB t x").unwrap_err().contains("unknown command"));
        assert!(parse("").is_err());
    }
}
