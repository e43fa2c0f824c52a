//! The handshake phase of a connection: the upgrade request, the application's decision, and
//! plain HTTP requests.

use sockeye_deflate::{NAME as DEFLATE, PerMessageDeflate};
use sockeye_proto::extension::ParamWriter;
use sockeye_proto::handshake::{parse_head, parse_request};
use sockeye_proto::{Extension, HandshakeError, Request, Response, Status};

use super::Driver;
use super::conns::{Phase, Slot};
use super::io::{Bufs, Io};
use crate::handler::{Accept, ConnId, Handler, HttpResponse};
use std::net::{IpAddr, SocketAddr};

use crate::proxy::{ProxyError, forwarded_for, parse_proxy};
use crate::transport::{Peer, Transport};

impl<H: Handler, S: Transport> Driver<H, S> {
    /// Handles the request head in `recv[..len]`; returns where the WebSocket stream starts
    /// when the connection was upgraded.
    pub(crate) fn handshake(&mut self, idx: usize, len: usize) -> Option<usize> {
        let config = &self.config;
        let Io { recv, bufs } = &mut self.io;
        let slot = self.conns.get_mut(idx)?;
        let (start, proxied) = if config.proxy_protocol {
            match parse_proxy(&recv[..len]) {
                Ok(Some(proxied)) => proxied,
                Ok(None) => {
                    slot.keep(&recv[..len]);
                    return None;
                }
                Err(ProxyError) => {
                    log::debug!("handshake refused: no valid PROXY header");
                    self.app.stats.rejected += 1;
                    let response = HttpResponse::new(400, "text/plain", &b"bad request\n"[..]);
                    return drain(slot, bufs, |out| response.write(out, false));
                }
            }
        } else {
            (0, None)
        };
        let buf = &recv[start..len];
        let req = match parse_request(buf, &config.handshake) {
            Ok(Status::Complete(req)) => req,
            Ok(Status::Incomplete { .. }) => {
                // From the start, PROXY header included: it is parsed again with the rest.
                slot.keep(&recv[..len]);
                return None;
            }
            Err(HandshakeError::NotUpgrade) => {
                // A plain HTTP request on the WebSocket port: the application may answer it.
                let (response, head_only) = match parse_head(buf, &config.handshake) {
                    Ok(Status::Complete(head)) => {
                        let handle = self.app.handle.clone();
                        let answer = self.app.guard(|h| h.on_http(&head, &handle));
                        (answer.unwrap_or_else(internal_error), head.method == "HEAD")
                    }
                    _ => (
                        HttpResponse::new(400, "text/plain", &b"bad request\n"[..]),
                        false,
                    ),
                };
                self.app.stats.http_requests += 1;
                return drain(slot, bufs, |out| response.write(out, head_only));
            }
            Err(err) => {
                log::debug!("handshake refused: {err}");
                self.app.stats.rejected += 1;
                return drain(slot, bufs, |out| out.extend_from_slice(err.response()));
            }
        };
        let peer = client(
            slot.stream.peer_info(),
            proxied,
            &req,
            &config.trusted_proxies,
        );
        let mut accept = Accept::new(&req, peer);
        let user = match self.app.guard(|h| h.on_upgrade(&req, &mut accept)) {
            Some(Ok(user)) => user,
            None => {
                self.app.stats.rejected += 1;
                let response = internal_error();
                return drain(slot, bufs, |out| response.write(out, false));
            }
            Some(Err(reject)) => {
                let body = reject.body.into_owned().into_bytes();
                self.app.stats.rejected += 1;
                let mut response = HttpResponse::new(reject.status, "text/plain", body);
                response.headers = reject.headers;
                return drain(slot, bufs, |out| response.write(out, false));
            }
        };
        let mut extensions = [0u8; 160];
        let extensions_len = match config.deflate {
            Some(deflate) => {
                let shared = self.compressor.clone();
                let offered = PerMessageDeflate::server(deflate).with_shared_compressor(shared);
                negotiate(
                    slot.link.proto.extension_mut(),
                    offered,
                    &req,
                    &mut extensions,
                )
            }
            None => 0,
        };
        if let Err(err) = respond(&req, &accept, &extensions[..extensions_len], &mut bufs.cork) {
            log::warn!("cannot write the upgrade response: {err}");
            let response = HttpResponse::new(500, "text/plain", &b"invalid response header\n"[..]);
            return drain(slot, bufs, |out| response.write(out, false));
        }
        bufs.raw = bufs.cork.len();
        slot.phase = Phase::Open;
        self.app.stats.upgraded += 1;
        slot.last_rx = self.timers.tick;
        let user = slot.user.insert(user);
        let id = ConnId::new(self.app.index, idx, slot.generation);
        let bp = &config.backpressure;
        let now = self.timers.now;
        self.app.with_outbox(
            id,
            &mut slot.link,
            None::<&mut S>,
            bufs,
            bp,
            now,
            |h, out| {
                h.on_open(user, out);
            },
        );
        let head_len = req.head_len();
        self.schedule(idx);
        Some(start + head_len)
    }
}

/// Who the client is: the socket's peer, or the client a PROXY header or a trusted proxy's
/// `Forwarded` / `X-Forwarded-For` names.
fn client<'a>(
    mut peer: Peer<'a>,
    proxied: Option<SocketAddr>,
    req: &Request<'_>,
    trusted: &[IpAddr],
) -> Peer<'a> {
    if proxied.is_some() {
        peer.addr = proxied;
    } else if peer.socket.is_some_and(|s| trusted.contains(&s.ip())) {
        let named = |name: &'static str| {
            req.headers()
                .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        };
        let forwarded = forwarded_for(named("forwarded"), named("x-forwarded-for"), trusted);
        peer.addr = forwarded.or(peer.addr);
    }
    peer
}

/// The answer when the application's callback panicked.
fn internal_error() -> HttpResponse {
    HttpResponse::new(500, "text/plain", &b"internal error\n"[..])
}

/// Ends a connection that will not upgrade: `write` puts the final answer in the cork; the
/// write side closes once it is written.
fn drain<C, S>(
    slot: &mut Slot<C, S>,
    bufs: &mut Bufs,
    write: impl FnOnce(&mut Vec<u8>),
) -> Option<usize> {
    write(&mut bufs.cork);
    bufs.raw = bufs.cork.len();
    slot.phase = Phase::Draining;
    None
}

/// Writes the `101` answer into `out`.
fn respond(
    req: &Request<'_>,
    accept: &Accept<'_>,
    extensions: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), Box<dyn std::error::Error>> {
    let headers: Vec<(&str, &str)> = accept
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let mut response = Response::new(req)
        .with_headers(&headers)
        .with_extensions(extensions);
    if let Some(protocol) = accept.protocol {
        // `Accept` only selects protocols the client offered.
        response = response.with_protocol(protocol)?;
    }
    let start = out.len();
    out.resize(start + response.encoded_len(), 0);
    match response.encode(&mut out[start..]) {
        Ok(written) => {
            out.truncate(start + written);
            Ok(())
        }
        Err(err) => {
            out.truncate(start);
            Err(err.into())
        }
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
