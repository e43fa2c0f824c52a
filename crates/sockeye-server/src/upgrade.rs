//! The handshake phase of a connection: the upgrade request, the application's decision, and
//! plain HTTP requests.

use sockeye_deflate::{NAME as DEFLATE, PerMessageDeflate};
use sockeye_proto::extension::ParamWriter;
use sockeye_proto::handshake::{parse_head, parse_request};
use sockeye_proto::{Extension, HandshakeError, Request, Response, Status};

use crate::conn::{ConnSink, Phase};
use crate::handler::{Accept, ConnId, Handler, HttpResponse, Outbox};
use crate::worker::Worker;

impl<H: Handler> Worker<H> {
    /// Handles the request head in `recv[..len]`; returns where the WebSocket stream starts
    /// when the connection was upgraded.
    pub(crate) fn handshake(&mut self, idx: usize, len: usize) -> Option<usize> {
        let Worker {
            slab,
            recv,
            cork,
            handler,
            handle,
            stats,
            config,
            now,
            tick,
            index,
            compressor,
            ..
        } = self;
        let slot = slab[idx].as_mut()?;
        let buf = &recv[..len];
        let req = match parse_request(buf, &config.handshake) {
            Ok(Status::Complete(req)) => req,
            Ok(Status::Incomplete { .. }) => {
                slot.keep(buf);
                return None;
            }
            Err(HandshakeError::NotUpgrade) => {
                // A plain HTTP request on the WebSocket port: the application may answer it.
                let response = match parse_head(buf, &config.handshake) {
                    Ok(Status::Complete(head)) => handler.on_http(&head),
                    _ => HttpResponse::new(400, "text/plain", &b"bad request\n"[..]),
                };
                response.write(cork);
                stats.http_requests += 1;
                slot.phase = Phase::Draining;
                return None;
            }
            Err(err) => {
                log::debug!("handshake refused: {err}");
                cork.extend_from_slice(err.response());
                stats.rejected += 1;
                slot.phase = Phase::Draining;
                return None;
            }
        };
        let mut accept = Accept::new(&req);
        let user = match handler.on_upgrade(&req, &mut accept) {
            Ok(user) => user,
            Err(reject) => {
                let body = reject.body.into_owned().into_bytes();
                HttpResponse::new(reject.status, "text/plain", body).write(cork);
                stats.rejected += 1;
                slot.phase = Phase::Draining;
                return None;
            }
        };
        let headers: Vec<(&str, &str)> = accept
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let mut extensions = [0u8; 160];
        let extensions_len = match config.deflate {
            Some(deflate) => {
                let offered =
                    PerMessageDeflate::server(deflate).with_shared_compressor(compressor.clone());
                negotiate(
                    slot.link.proto.extension_mut(),
                    offered,
                    &req,
                    &mut extensions,
                )
            }
            None => 0,
        };
        let mut response = Response::new(&req)
            .with_headers(&headers)
            .with_extensions(&extensions[..extensions_len]);
        if let Some(protocol) = accept.protocol {
            // `Accept` only selects protocols the client offered.
            response = response.with_protocol(protocol).ok()?;
        }
        let start = cork.len();
        cork.resize(start + response.encoded_len(), 0);
        match response.encode(&mut cork[start..]) {
            Ok(written) => cork.truncate(start + written),
            Err(err) => {
                log::warn!("cannot write the upgrade response: {err}");
                cork.truncate(start);
                HttpResponse::new(500, "text/plain", &b"invalid response header\n"[..]).write(cork);
                slot.phase = Phase::Draining;
                return None;
            }
        }
        slot.phase = Phase::Open;
        stats.upgraded += 1;
        slot.last_rx = *tick;
        let user = slot.user.insert(user);
        let mut sink = ConnSink::new(&mut slot.link, cork, &config.backpressure, stats, *now);
        let mut out = Outbox {
            id: ConnId::new(*index, idx, slot.generation),
            sink: &mut sink,
            handle,
        };
        handler.on_open(user, &mut out);
        let head_len = req.head_len();
        self.schedule(idx);
        Some(head_len)
    }
}

/// Accepts the first acceptable permessage-deflate offer with `ext`, which then becomes the
/// connection's extension; returns the length of the response element written to `out`.
fn negotiate(
    slot: &mut Option<Box<PerMessageDeflate>>,
    mut ext: PerMessageDeflate,
    req: &Request<'_>,
    out: &mut [u8; 160],
) -> usize {
    for offer in req.extensions().flatten() {
        let Ok(offer) = offer else { continue };
        if offer.name() != DEFLATE {
            continue;
        }
        let (name, params) = out.split_at_mut(DEFLATE.len());
        let mut writer = ParamWriter::new(params);
        // A malformed offer is declined like an unacceptable one.
        if ext.accept_offer(&offer, &mut writer) == Ok(true) {
            let written = writer.as_bytes().len();
            name.copy_from_slice(DEFLATE.as_bytes());
            *slot = Some(Box::new(ext));
            return DEFLATE.len() + written;
        }
    }
    0
}
