//! A connection's byte stream: the TCP socket itself, or TLS over it.
//!
//! TLS is driven by hand, in the same edge-triggered loop as plain sockets: ciphertext comes in
//! with `read_tls` and is decrypted by `process_new_packets`, plaintext leaves the session
//! through `reader()`; plaintext goes in through `writer()` and the records leave with
//! `write_tls`. Handshake messages are written as soon as the session makes them.

use std::io::{self, Read as _, Write as _};

use mio::net::TcpStream;

/// What one read produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Input {
    /// `len` plaintext bytes; `drained` when the socket is known to be empty, so that the next
    /// readiness edge announces more (a short read of a plain socket). Over TLS it is never
    /// set: read on until [`Input::Empty`].
    Data { len: usize, drained: bool },
    /// Nothing to read now.
    Empty,
    /// The peer closed its side (over TLS: a `close_notify`, or TCP's end after the handshake).
    Eof,
}

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
            return tls_read(&mut self.tcp, tls, buf);
        }
        loop {
            return match self.tcp.read(buf) {
                Ok(0) => Ok(Input::Eof),
                Ok(len) => Ok(Input::Data {
                    len,
                    drained: len < buf.len(),
                }),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Input::Empty),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
        }
    }

    /// Writes `buf` like [`io::Write::write`] on a non-blocking socket: the bytes taken, or
    /// `WouldBlock`; fewer than `buf.len()` only when the socket is full, so that a `WRITABLE`
    /// edge follows. Over TLS the bytes are encrypted and written as records, in pieces of
    /// rustls' buffer limit, until all are taken or the socket is full; the records the socket
    /// did not take wait in the session for [`flush_pending`](Self::flush_pending).
    ///
    /// # Errors
    ///
    /// `WouldBlock` when nothing was taken, or the socket's error.
    pub(super) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_deref_mut() {
            let mut taken = 0;
            loop {
                flush_tls(&mut self.tcp, tls)?;
                // Records still pending: the socket is full.
                if tls.wants_write() || taken == buf.len() {
                    break;
                }
                match tls.writer().write(&buf[taken..])? {
                    0 => break,
                    n => taken += n,
                }
            }
            if taken == 0 && !buf.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            return Ok(taken);
        }
        self.tcp.write(buf)
    }

    /// Writes the TLS records the socket did not take earlier (nothing for plain sockets).
    ///
    /// # Errors
    ///
    /// The socket's error.
    pub(super) fn flush_pending(&mut self) -> io::Result<()> {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_deref_mut() {
            return flush_tls(&mut self.tcp, tls);
        }
        Ok(())
    }

    /// Sends TLS `close_notify` after a completed handshake, best effort (nothing for plain
    /// sockets): the connection is being dropped.
    pub(super) fn close_notify(&mut self) {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_deref_mut() {
            if !tls.is_handshaking() {
                tls.send_close_notify();
                let _ = flush_tls(&mut self.tcp, tls);
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

/// Reads ciphertext until the session yields plaintext, the socket is empty, or it ends.
#[cfg(feature = "tls")]
fn tls_read(
    tcp: &mut TcpStream,
    tls: &mut rustls::ClientConnection,
    buf: &mut [u8],
) -> io::Result<Input> {
    loop {
        match tls.reader().read(buf) {
            // A clean close_notify.
            Ok(0) => return Ok(Input::Eof),
            // More records may wait in the socket: the caller reads on until `Empty`.
            Ok(len) => {
                return Ok(Input::Data {
                    len,
                    drained: false,
                });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // TCP ended without close_notify. The WebSocket closing handshake already says
            // whether the conversation was complete, so this is an end like a plain one.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Input::Eof),
            Err(e) => return Err(e),
        }
        match tls.read_tls(tcp) {
            // Ok(0): the session now knows of the EOF; the reader reports it above.
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Input::Empty),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        let handshaking = tls.is_handshaking();
        if let Err(err) = tls.process_new_packets() {
            // Tell the server why (the alert rustls queued), then report the failure.
            let _ = flush_tls(tcp, tls);
            return Err(failure(err, handshaking));
        }
        // Handshake messages, and the plaintext held back until the handshake completed, go
        // out as soon as they are made.
        flush_tls(tcp, tls)?;
    }
}

/// Writes the session's pending records until done or the socket is full.
#[cfg(feature = "tls")]
fn flush_tls(tcp: &mut TcpStream, tls: &mut rustls::ClientConnection) -> io::Result<()> {
    while tls.wants_write() {
        match tls.write_tls(tcp) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
