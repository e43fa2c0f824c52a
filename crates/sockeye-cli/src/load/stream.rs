//! A connection's byte stream: the TCP socket itself, or TLS over it.
//!
//! TLS is driven by hand, in the same edge-triggered loop as plain sockets: ciphertext comes in
//! with `read_tls` and is decrypted by `process_new_packets`, plaintext leaves the session
//! through `reader()`; plaintext goes in through `writer()` and the records leave with
//! `write_tls`. Handshake messages are written as soon as the session makes them.

use std::io;

use mio::net::TcpStream;

use sockeye::server::socket;
pub(super) use sockeye::server::socket::Input;
#[cfg(feature = "tls")]
use sockeye_client::io as tls_io;

/// How new connections start: plain TCP, or TLS with a client configuration.
#[derive(Debug, Clone)]
pub(super) struct Connector {
    #[cfg(feature = "tls")]
    tls: Option<super::tls::Tls>,
}

impl Connector {
    /// Plain ws:// connections.
    pub(super) fn plain() -> Self {
        Connector {
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// wss:// connections with `tls`.
    #[cfg(feature = "tls")]
    pub(super) fn tls(tls: super::tls::Tls) -> Self {
        Connector { tls: Some(tls) }
    }

    /// Whether connections run over TLS.
    pub(super) fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return true;
        }
        false
    }

    /// The stream for a new TCP connection (its TLS session starts with the ClientHello, sent
    /// on the first flush).
    ///
    /// # Errors
    ///
    /// When rustls refuses to start a session.
    pub(super) fn wrap(&self, tcp: TcpStream) -> io::Result<Stream> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            let session = tls.session().map_err(|e| failure(e, false))?;
            return Ok(Stream {
                tcp,
                tls: Some(Box::new(session)),
            });
        }
        Ok(Stream {
            tcp,
            #[cfg(feature = "tls")]
            tls: None,
        })
    }
}

/// A connection's socket, with its TLS session when it has one.
#[derive(Debug)]
pub(super) struct Stream {
    tcp: TcpStream,
    #[cfg(feature = "tls")]
    tls: Option<Box<rustls::ClientConnection>>,
}

impl Stream {
    /// The TCP socket (for connect checks and the poller).
    pub(super) fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// The TCP socket, mutably (for the poller).
    pub(super) fn tcp_mut(&mut self) -> &mut TcpStream {
        &mut self.tcp
    }

    /// Whether the TLS handshake is still in progress (never for plain connections).
    pub(super) fn is_handshaking(&self) -> bool {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_deref() {
            return tls.is_handshaking();
        }
        false
    }

    /// Reads plaintext into `buf`.
    ///
    /// # Errors
    ///
    /// A socket error, or a TLS failure (see [`tls_failure`]).
    pub(super) fn read(&mut self, buf: &mut [u8]) -> io::Result<Input> {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_deref_mut() {
            return match tls_io::tls_read(&mut self.tcp, tls, buf) {
                Ok(tls_io::Input::Data { len, drained }) => Ok(Input::Data { len, drained }),
                Ok(tls_io::Input::Empty) => Ok(Input::Empty),
                Ok(tls_io::Input::Eof) => Ok(Input::Eof),
                Err(e) => Err(match tls_io::tls_failure(&e) {
                    Some(err) => failure(err.clone(), tls.is_handshaking()),
                    None => e,
                }),
            };
        }
        socket::read(&mut self.tcp, buf)
    }

    /// Writes `buf` once: the bytes taken, fewer than `buf.len()` (0 included) only when the
    /// socket is full, so that a `WRITABLE` edge follows. Over TLS the bytes are encrypted and
    /// written as records, in pieces of rustls' buffer limit, until all are taken or the socket
    /// is full; the records the socket did not take wait in the session for
    /// [`flush_pending`](Self::flush_pending).
    ///
    /// # Errors
    ///
    /// The socket's error.
    pub(super) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_deref_mut() {
            return tls_io::tls_write(&mut self.tcp, tls, buf);
        }
        socket::write(&mut self.tcp, buf)
    }

    /// Writes the TLS records the socket did not take earlier: `true` when none are left
    /// (always for plain sockets), `false` when the socket is full.
    ///
    /// # Errors
    ///
    /// The socket's error.
    pub(super) fn flush_pending(&mut self) -> io::Result<bool> {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_deref_mut() {
            return tls_io::tls_flush(&mut self.tcp, tls);
        }
        Ok(true)
    }

    /// Sends TLS `close_notify` after a completed handshake, best effort (nothing for plain
    /// sockets): the connection is being dropped.
    pub(super) fn close_notify(&mut self) {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_deref_mut() {
            if !tls.is_handshaking() {
                tls.send_close_notify();
                let _ = tls_io::tls_flush(&mut self.tcp, tls);
            }
        }
    }
}

/// The description of a TLS failure inside an I/O error from [`Stream`] (with a hint at the
/// option that helps, where one does), or `None` for a socket error.
pub(super) fn tls_failure(err: &io::Error) -> Option<String> {
    #[cfg(feature = "tls")]
    if let Some(failure) = err.get_ref().and_then(|e| e.downcast_ref::<TlsFailure>()) {
        return Some(failure.0.clone());
    }
    let _ = err;
    None
}

/// A TLS failure, described for the report.
#[cfg(feature = "tls")]
#[derive(Debug)]
struct TlsFailure(String);

#[cfg(feature = "tls")]
impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(feature = "tls")]
impl std::error::Error for TlsFailure {}

/// Wraps a rustls error for [`tls_failure`], with a hint where the command line can help.
#[cfg(feature = "tls")]
fn failure(err: rustls::Error, handshaking: bool) -> io::Error {
    use rustls::{CertificateError, Error};
    let hint = match &err {
        Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => " (set the name to check with --tls-server-name NAME)",
        Error::InvalidCertificate(_) => {
            " (trust the server's CA with --tls-ca FILE, or skip the check with --tls-insecure)"
        }
        Error::InvalidMessage(_) if handshaking => " (does the server speak TLS on this port?)",
        _ => "",
    };
    io::Error::new(
        io::ErrorKind::InvalidData,
        TlsFailure(format!("{err}{hint}")),
    )
}
