//! Messages as the application sees them: owned, so that they outlive the read that brought
//! them.

use sockeye_proto::CloseCode;

/// A message received, or one to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message (valid UTF-8, checked as it arrived).
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A ping (its pong is already on its way when one is received).
    Ping(Vec<u8>),
    /// A pong.
    Pong(Vec<u8>),
    /// A close frame: received, the server's (`None` when it gave no code), its echo already
    /// on its way; sent, ours (`None` sends 1000, normal closure).
    Close(Option<CloseFrame>),
}

/// The code and reason of a close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code (1000 for a normal closure).
    pub code: CloseCode,
    /// Why, for people (at most 123 bytes).
    pub reason: String,
}

impl Message {
    /// The payload's bytes (the reason's, for a close).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(bytes) | Message::Ping(bytes) | Message::Pong(bytes) => bytes,
            Message::Close(frame) => frame.as_ref().map_or(&[], |f| f.reason.as_bytes()),
        }
    }

    /// The message as the protocol core sends it; `None` for a close.
    pub(crate) fn as_proto(&self) -> Option<sockeye_proto::Message<'_>> {
        Some(match self {
            Message::Text(text) => sockeye_proto::Message::Text(text),
            Message::Binary(bytes) => sockeye_proto::Message::Binary(bytes),
            Message::Ping(bytes) => sockeye_proto::Message::Ping(bytes),
            Message::Pong(bytes) => sockeye_proto::Message::Pong(bytes),
            Message::Close(_) => return None,
        })
    }
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Message::Text(text)
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Message::Text(text.to_owned())
    }
}

impl From<Vec<u8>> for Message {
    fn from(bytes: Vec<u8>) -> Self {
        Message::Binary(bytes)
    }
}

impl From<&[u8]> for Message {
    fn from(bytes: &[u8]) -> Self {
        Message::Binary(bytes.to_vec())
    }
}
