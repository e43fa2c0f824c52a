//! The accept loop of the tokio peers: one current-thread runtime per worker, `TCP_NODELAY` on
//! every accepted socket, one task per connection.
//!
//! The connection handlers are generic over the stream, so a TLS variant only changes
//! [`Transport`]: it would hold a `tokio_rustls::TlsAcceptor`, and [`Stream`] would become an
//! enum of the plain and the TLS stream.

use std::future::Future;
use std::io;
use std::net::TcpListener as StdListener;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use crate::Options;
use crate::listen::run_workers;

/// What a connection handler is given.
pub type Stream = TcpStream;

/// Turns an accepted TCP connection into the handler's [`Stream`]; plain TCP for now.
#[derive(Debug, Clone, Default)]
pub struct Transport;

impl Transport {
    /// Configures the accepted socket and wraps it.
    ///
    /// # Errors
    ///
    /// When the socket cannot be configured.
    pub async fn accept(&self, tcp: TcpStream) -> io::Result<Stream> {
        tcp.set_nodelay(true)?;
        Ok(tcp)
    }
}

/// Runs `handler` on every connection, with `options.workers` current-thread runtimes; prints
/// `listening on ADDR` once the listeners are bound.
pub fn serve<H, F>(name: &'static str, options: &Options, handler: H)
where
    H: Fn(Stream) -> F + Send + Clone + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let transport = Transport;
    run_workers(name, options.addr, options.workers, move |listener| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(accept_loop(listener, transport.clone(), handler.clone()))
    });
}

async fn accept_loop<H, F>(
    listener: StdListener,
    transport: Transport,
    handler: H,
) -> io::Result<()>
where
    H: Fn(Stream) -> F + Send + Clone + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::from_std(listener)?;
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            // Out of descriptors, say: let connections close before trying again.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        };
        // In the connection's task, so that a slow transport handshake holds up no other.
        let (transport, handler) = (transport.clone(), handler.clone());
        tokio::spawn(async move {
            if let Ok(stream) = transport.accept(tcp).await {
                handler(stream).await;
            }
        });
    }
}
