//! The accept loop of the tokio peers: one current-thread runtime per worker, `TCP_NODELAY` on
//! every accepted socket, one task per connection.
//!
//! The connection handlers take a [`Stream`]: the TCP socket, or a TLS session over it when
//! `--tls-cert` is given. [`Transport`] makes it, in the connection's own task on the worker
//! that accepted it, so the TLS handshake runs there (as in sockeye) before the handler sees
//! the stream.

use std::future::Future;
use std::io::{self, IoSlice};
use std::net::TcpListener as StdListener;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use std::{fmt, process};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::Options;
use crate::listen::run_workers;

/// What a connection handler is given: the accepted socket, or a TLS session over it (boxed,
/// so that a plain connection's task is no larger than with plain TCP alone).
#[derive(Debug)]
pub enum Stream {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://`, once the handshake is done.
    Tls(Box<TlsStream<TcpStream>>),
}

/// Turns an accepted TCP connection into the handler's [`Stream`].
#[derive(Clone, Default)]
pub enum Transport {
    /// Plain TCP.
    #[default]
    Plain,
    /// TLS with this acceptor (its configuration is shared by every worker).
    Tls(TlsAcceptor),
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Plain => "Transport::Plain",
            Transport::Tls(_) => "Transport::Tls",
        })
    }
}

impl Transport {
    /// The transport `options` ask for: TLS with `--tls-cert`, plain TCP without.
    ///
    /// # Errors
    ///
    /// When the certificate or the key cannot be used.
    pub fn from_options(options: &Options) -> Result<Transport, String> {
        match &options.tls {
            None => Ok(Transport::Plain),
            Some(files) => Ok(Transport::Tls(TlsAcceptor::from(
                crate::tls::server_config(files)?,
            ))),
        }
    }

    /// Configures the accepted socket and wraps it, making the TLS handshake if there is one.
    ///
    /// # Errors
    ///
    /// When the socket cannot be configured or the TLS handshake fails.
    pub async fn accept(&self, tcp: TcpStream) -> io::Result<Stream> {
        tcp.set_nodelay(true)?;
        match self {
            Transport::Plain => Ok(Stream::Plain(tcp)),
            // Boxed, so that the handshake's state does not widen every connection's task
            // (plain ones included) once the handshake is over.
            Transport::Tls(acceptor) => {
                let tls = Box::pin(acceptor.accept(tcp)).await?;
                Ok(Stream::Tls(Box::new(tls)))
            }
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Runs `handler` on every connection, with `options.workers` current-thread runtimes; prints
/// `listening on ADDR` once the listeners are bound.
pub fn serve<H, F>(name: &'static str, options: &Options, handler: H)
where
    H: Fn(Stream) -> F + Send + Clone + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let transport = Transport::from_options(options).unwrap_or_else(|e| {
        eprintln!("{name}: {e}");
        process::exit(1);
    });
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
