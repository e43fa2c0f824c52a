//! An echo server on tokio-tungstenite: `accept_async`, then read a message and send it back,
//! as that project's examples do. Pings are answered and closes echoed by tungstenite itself.
//!
//! With `--tls-cert` and `--tls-key` it serves `wss://` (tokio-rustls; see
//! `sockeye_peers::tls`), the handshake made in the connection's task before this code runs.
//!
//! `peer-tungstenite [--addr HOST:PORT] [--workers N] [--tls-cert FILE --tls-key FILE]`

use futures_util::{SinkExt, StreamExt};
use sockeye_peers::Options;
use sockeye_peers::tokio_serve::{Stream, serve};
use tokio_tungstenite::accept_async;

fn main() {
    let options = Options::from_args("peer-tungstenite", true);
    serve("peer-tungstenite", &options, echo);
}

async fn echo(stream: Stream) {
    let Ok(mut ws) = accept_async(stream).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.next().await {
        if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
            return;
        }
    }
}
