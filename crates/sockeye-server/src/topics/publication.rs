//! One publish, as every worker and recipient shares it: the frame encoded once, and its
//! compressed variants made on first need.

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use sockeye_deflate::{SendSettings, SharedCompressor};
use sockeye_proto::frame::MAX_HEADER_LEN;
use sockeye_proto::{FrameHeader, Message, OpCode, Rsv};

use super::{PublishError, PublishReport, validate_topic};
use crate::handler::ConnId;

/// A compressed frame for one compression setting; `None` where the compressor declined.
pub(crate) type Variant = (SendSettings, Option<Arc<[u8]>>);

/// A published message: shared (`Arc`) by the workers it goes to.
pub(crate) struct Publication {
    pub(crate) topic: Box<str>,
    text: bool,
    /// The whole frame for receivers that get it uncompressed: header and payload.
    frame: Arc<[u8]>,
    /// Where the payload starts in `frame`.
    header_len: usize,
    /// A connection that does not get it: the publisher, when it asked so or when it got its
    /// own copy already.
    pub(crate) skip: Option<ConnId>,
    /// Compressed frames by compression settings (`None`: the compressor declined, the plain
    /// frame goes), made by the first worker that needs each.
    compressed: Mutex<Vec<Variant>>,
    /// Where each worker sends its part of the outcome, for a tracked publish.
    pub(crate) report: Option<Sender<PublishReport>>,
    /// It came from another node through a backplane: never forwarded again.
    pub(crate) remote: bool,
}

impl Publication {
    /// Encodes `msg` for `topic` once.
    ///
    /// # Errors
    ///
    /// A topic that is not a valid literal topic; a ping or pong.
    pub(crate) fn new(topic: &str, msg: Message<'_>) -> Result<Self, PublishError> {
        validate_topic(topic)?;
        let (text, payload) = match msg {
            Message::Text(text) => (true, text.as_bytes()),
            Message::Binary(bytes) => (false, bytes),
            Message::Ping(_) | Message::Pong(_) => return Err(PublishError::NotData),
        };
        let frame = shared_frame(opcode(text), Rsv::NONE, payload);
        let header_len = frame.len() - payload.len();
        Ok(Publication {
            topic: topic.into(),
            text,
            frame,
            header_len,
            skip: None,
            compressed: Mutex::new(Vec::new()),
            report: None,
            remote: false,
        })
    }

    /// Whether it is a text message (else binary).
    pub(crate) fn is_text(&self) -> bool {
        self.text
    }

    /// The frame as it goes to a receiver without compression.
    pub(crate) fn frame(&self) -> &Arc<[u8]> {
        &self.frame
    }

    /// The payload, as published.
    pub(crate) fn payload(&self) -> &[u8] {
        &self.frame[self.header_len..]
    }

    /// The frame for receivers that compress with `settings`: compressed once (by `compressor`,
    /// on the first call for those settings), or `None` when it goes uncompressed (the
    /// compressor declined: under the threshold).
    pub(crate) fn compressed(
        &self,
        settings: &SendSettings,
        compressor: &SharedCompressor,
    ) -> Option<Arc<[u8]>> {
        let mut variants = self
            .compressed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, frame)) = variants.iter().find(|(s, _)| s == settings) {
            return frame.clone();
        }
        let mut payload = Vec::new();
        let frame = match compressor.compress_for_broadcast(settings, self.payload(), &mut payload)
        {
            Ok(rsv) if !rsv.is_empty() => Some(shared_frame(opcode(self.text), rsv, &payload)),
            _ => None,
        };
        variants.push((*settings, frame.clone()));
        frame
    }
}

/// A whole unmasked frame of `payload`, built where it is shared: one allocation, no copy of a
/// frame built elsewhere.
fn shared_frame(opcode: OpCode, rsv: Rsv, payload: &[u8]) -> Arc<[u8]> {
    let header = FrameHeader {
        fin: true,
        rsv,
        opcode,
        mask: None,
        payload_len: payload.len() as u64,
    };
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut head);
    let mut frame: Arc<[u8]> = std::iter::repeat_n(0, n + payload.len()).collect();
    let bytes = Arc::get_mut(&mut frame).expect("a new frame has one owner");
    bytes[..n].copy_from_slice(&head[..n]);
    bytes[n..].copy_from_slice(payload);
    frame
}

fn opcode(text: bool) -> OpCode {
    if text { OpCode::Text } else { OpCode::Binary }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publication_is_one_whole_server_frame() {
        let p = Publication::new("a.b", Message::Text("hi")).unwrap();
        assert_eq!(&p.frame()[..], b"\x81\x02hi");
        assert_eq!(p.payload(), b"hi");
        let big = vec![7u8; 300];
        let p = Publication::new("a", Message::Binary(&big)).unwrap();
        assert_eq!(&p.frame()[..4], &[0x82, 126, 1, 44]);
        assert_eq!(p.payload(), &big[..]);
        assert!(matches!(
            Publication::new("a.*", Message::Text("x")),
            Err(PublishError::Topic(_))
        ));
        assert_eq!(
            Publication::new("a", Message::Ping(b"")).err(),
            Some(PublishError::NotData)
        );
    }

    #[test]
    fn each_setting_is_compressed_once() {
        let text = "quote quote quote quote quote quote";
        let p = Publication::new("q", Message::Text(text)).unwrap();
        let compressor = SharedCompressor::new();
        let s = SendSettings {
            window_bits: 15,
            level: 6,
            mem_level: 8,
            threshold: 0,
        };
        let a = p.compressed(&s, &compressor).unwrap();
        let b = p.compressed(&s, &compressor).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a[0], 0xc1, "FIN, RSV1, text");
        let high = SendSettings {
            threshold: 1000,
            ..s
        };
        assert!(p.compressed(&high, &compressor).is_none());
    }
}
