//! An echo server on fastwebsockets behind hyper 1, as that project's echo example: hyper
//! answers the upgrade (`fastwebsockets::upgrade::upgrade`), a task reads frames through a
//! `FragmentCollector` and writes text and binary back; pongs and the close echo are the
//! library's defaults (`auto_pong`, `auto_close`).
//!
//! With `--tls-cert` and `--tls-key` it serves `wss://` (tokio-rustls; see
//! `sockeye_peers::tls`), the handshake made in the connection's task before this code runs.
//!
//! `peer-fastws [--addr HOST:PORT] [--workers N] [--tls-cert FILE --tls-key FILE]`

use fastwebsockets::upgrade::{UpgradeFut, upgrade};
use fastwebsockets::{FragmentCollector, OpCode, WebSocketError};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use sockeye_peers::Options;
use sockeye_peers::tokio_serve::{Stream, serve};

fn main() {
    let options = Options::from_args("peer-fastws", true);
    serve("peer-fastws", &options, connection);
}

async fn connection(stream: Stream) {
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service_fn(upgrade_request))
        .with_upgrades()
        .await;
}

async fn upgrade_request(
    mut req: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, fut) = upgrade(&mut req)?;
    tokio::spawn(async move {
        let _ = echo(fut).await;
    });
    Ok(response)
}

async fn echo(fut: UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = FragmentCollector::new(fut.await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}
