//! The echo flow of one connection (echo and latency runs): the messages outstanding, each
//! echo checked against the oldest, the next message sent.

use std::collections::VecDeque;
use std::time::Instant;

use super::{Ctx, Fail, Outbox};
use crate::load::payload::{Mismatch, Payload};
use crate::load::report::Stats;

/// The echo flow of one connection.
#[derive(Debug)]
pub(crate) struct Flow {
    /// The connection's id, stamped into its messages.
    id: u64,
    /// Messages sent so far.
    sent: u64,
    /// Stamp and send time of each message not yet echoed, oldest first.
    outstanding: VecDeque<(u64, Instant)>,
}

impl Flow {
    /// The echo flow of connection `id`, nothing sent yet.
    pub(crate) fn new(id: u64) -> Self {
        Flow {
            id,
            sent: 0,
            outstanding: VecDeque::new(),
        }
    }

    /// Verifies an echo against the oldest message outstanding, counts it, and sends the next.
    pub(super) fn on_echo(
        &mut self,
        got: &[u8],
        got_text: bool,
        now: Instant,
        outbox: &mut Outbox<'_>,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), Fail> {
        let Some((value, sent_at)) = self.outstanding.pop_front() else {
            return Err(Fail::Mismatch(Mismatch::Unexpected));
        };
        ctx.payload
            .verify(value, got, got_text)
            .map_err(Fail::Mismatch)?;
        let stats = &mut *ctx.stats;
        stats.verified += 1;
        if now >= ctx.window.count_from && now < ctx.window.end {
            stats.echoes += 1;
            stats.echo_bytes += got.len() as u64;
            Stats::record(&mut stats.rtt, now - sent_at);
        }
        if ctx.window.sending && now < ctx.window.end {
            self.send_next(now, outbox, ctx.payload)?;
        }
        Ok(())
    }

    pub(super) fn send_next(
        &mut self,
        now: Instant,
        outbox: &mut Outbox<'_>,
        payload: &mut Payload,
    ) -> Result<(), Fail> {
        let value = Payload::stamp_value(self.id, self.sent);
        payload
            .send(value, outbox.ws, outbox.out)
            .map_err(Fail::Send)?;
        outbox.traffic.payload_sent += payload.len() as u64;
        self.sent += 1;
        self.outstanding.push_back((value, now));
        Ok(())
    }
}
