//! What other threads ask of a worker through its [`Handle`](crate::Handle): send to a
//! connection, close it, broadcast, shut down. Frames for a connection outside its turn wait in
//! its queue and are written at the end of the loop turn.

use sockeye_deflate::{PerMessageDeflate, SendSettings, SharedCompressor};
use sockeye_proto::{CloseCode, Message, Rsv};

use super::Driver;
use super::conns::{Ending, Link, Phase};
use std::any::Any;

use crate::handle::{Job, OwnedMessage};
use crate::handler::{ConnId, Handler};
use crate::transport::Transport;

impl<H: Handler, S: Transport> Driver<H, S> {
    /// Sends `msg` to connection `id`, if it is still open.
    pub(crate) fn send_to(&mut self, id: ConnId, msg: &OwnedMessage) {
        if let Some(idx) = self.find(id) {
            let _ = self.with_outbox(idx, |_, _, out| out.send(msg.as_message()));
        }
    }

    /// Runs `job` with connection `id`'s state and an outbox, or with `None` when it is gone.
    pub(crate) fn run_job(&mut self, id: ConnId, job: Job) {
        let mut job = Some(job);
        if let Some(idx) = self.find(id) {
            self.with_outbox(idx, |_, user, out| {
                if let Some(job) = job.take() {
                    job(Some((user as &mut dyn Any, out)));
                }
            });
        }
        if let Some(job) = job {
            job(None);
        }
    }

    /// Starts the closing handshake of connection `id`, if it is still open.
    pub(crate) fn close_id(&mut self, id: ConnId, code: CloseCode, reason: &str) {
        if let Some(idx) = self.find(id) {
            self.with_outbox(idx, |_, _, out| out.close(code, reason));
        }
    }

    /// Sends `msg` to every open connection. Receivers that compress it with equal settings
    /// share one compressed payload, compressed once.
    pub(crate) fn broadcast(&mut self, msg: &OwnedMessage) {
        let mut encoded = Encoded::new(msg);
        let text = encoded.text;
        for idx in 0..self.conns.capacity() {
            let Some(slot) = self.conns.get_mut(idx) else {
                continue;
            };
            if slot.phase != Phase::Open || slot.user.is_none() {
                continue;
            }
            let settings = slot.link.proto.extension().as_deref();
            let settings = settings.and_then(PerMessageDeflate::send_settings);
            let Some((rsv, payload)) = encoded.for_settings(settings, &self.compressor) else {
                let _ = self.with_outbox(idx, |_, _, out| out.send(msg.as_message()));
                continue;
            };
            let bp = &self.config.backpressure;
            let stats = &mut self.app.stats;
            let now = self.timers.now;
            let buffered = slot.link.queue.len();
            if slot.link.admit(buffered, bp, stats, now) == Ok(true) {
                let cork = &mut self.io.bufs.cork;
                slot.link.poll_transmit(cork);
                let Link { proto, queue, .. } = &mut slot.link;
                let sent = proto.send_encoded_frame(text, rsv, payload, queue.data(cork));
                if sent.is_ok() {
                    // The payload did not go through this connection's own compressor.
                    if let Some(ext) = proto.extension_mut() {
                        ext.reset_send_context();
                    }
                    stats.messages_out += 1;
                }
            }
            self.stage(idx);
        }
    }

    /// Starts closing every connection with 1001: open ones get a close frame, handshaking ones
    /// are dropped.
    pub(crate) fn shutdown(&mut self) {
        let now = self.timers.now;
        for idx in 0..self.conns.capacity() {
            let Some(slot) = self.conns.get_mut(idx) else {
                continue;
            };
            match slot.phase {
                Phase::Open => {
                    let code = CloseCode::GOING_AWAY;
                    slot.link
                        .close(code, "server shutdown", now, Ending::Shutdown);
                    self.flush(idx);
                    self.schedule(idx);
                }
                Phase::Handshake => self.remove(idx, None),
                _ => {}
            }
        }
    }
}

/// A broadcast's payload, compressed at most once per distinct compression setting.
struct Encoded<'m> {
    text: bool,
    /// A ping or pong: sent as it is, on the control lane.
    control: bool,
    payload: &'m [u8],
    compressed: Vec<(SendSettings, Rsv, Vec<u8>)>,
}

impl<'m> Encoded<'m> {
    fn new(msg: &'m OwnedMessage) -> Self {
        let (text, payload) = match msg.as_message() {
            Message::Text(text) => (true, text.as_bytes()),
            Message::Binary(bytes) => (false, bytes),
            // Control frames are never compressed.
            Message::Ping(_) | Message::Pong(_) => (false, &[][..]),
        };
        let control = matches!(msg, OwnedMessage::Ping(_) | OwnedMessage::Pong(_));
        Encoded {
            text,
            control,
            payload,
            compressed: Vec::new(),
        }
    }

    /// The compressed payload for a receiver with `settings`, or `None` when it gets the
    /// message as it is (no compression negotiated, or the compressor declined).
    fn for_settings(
        &mut self,
        settings: Option<SendSettings>,
        compressor: &SharedCompressor,
    ) -> Option<(Rsv, &[u8])> {
        let settings = settings.filter(|_| !self.control)?;
        let index = match self.compressed.iter().position(|(s, _, _)| *s == settings) {
            Some(index) => index,
            None => {
                let mut out = Vec::new();
                let rsv = compressor
                    .compress_for_broadcast(&settings, self.payload, &mut out)
                    .unwrap_or(Rsv::NONE);
                self.compressed.push((settings, rsv, out));
                self.compressed.len() - 1
            }
        };
        let (_, rsv, payload) = &self.compressed[index];
        (!rsv.is_empty()).then_some((*rsv, payload.as_slice()))
    }
}
