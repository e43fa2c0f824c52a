//! A connection's byte stream: the TCP socket itself, or TLS over it.

use std::io::{self, Read as _, Write as _};
use std::net::Shutdown;

use mio::net::TcpStream;

/// The most ciphertext a TLS connection holds before its writer stops taking plaintext; the
/// rest waits in the connection's queue, where backpressure sees it.
#[cfg(feature = "tls")]
const TLS_PENDING_LIMIT: usize = 64 << 10;

/// What a read produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Input {
    /// Plaintext bytes; `drained` when the socket had no more (the next edge announces more).
    Data { len: usize, drained: bool },
    /// The socket has nothing now.
    Empty,
    /// The peer closed its side cleanly.
    Eof,
}

pub(crate) struct Stream {
    tcp: TcpStream,
    #[cfg(feature = "tls")]
    tls: Option<Box<rustls::ServerConnection>>,
}

impl Stream {
    pub(crate) fn plain(tcp: TcpStream) -> Self {
        Stream {
            tcp,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    #[cfg(feature = "tls")]
    pub(crate) fn tls(tcp: TcpStream, mut session: rustls::ServerConnection) -> Self {
        session.set_buffer_limit(Some(TLS_PENDING_LIMIT));
        Stream {
            tcp,
            tls: Some(Box::new(session)),
        }
    }

    /// Reads plaintext into `buf`.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<Input> {
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

    /// Writes `buf`; returns the bytes taken (0 when the socket is full). Over TLS, the bytes
    /// are encrypted and the records written by vectored writes, at most `TLS_PENDING_LIMIT`
    /// at a time, until all is taken or the socket is full; what the socket does not take stays
    /// pending in the session (see [`has_pending`](Self::has_pending)).
    ///
    /// Either way, taking less than `buf` means the socket is full, so its writable edge will
    /// come: stopping at the session's limit while the socket still had room would leave the
    /// rest waiting for an edge that never comes.
    pub(crate) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_deref_mut() {
            let mut taken = 0;
            loop {
                let n = tls.writer().write(&buf[taken..])?;
                taken += n;
                flush_tls(&mut self.tcp, tls)?;
                // Records left over: the socket is full. Nothing taken: the session was already
                // at its limit, left there by a write the socket refused, whose edge will come.
                if taken == buf.len() || tls.wants_write() || n == 0 {
                    return Ok(taken);
                }
            }
        }
        loop {
            return match self.tcp.write(buf) {
                Ok(n) => Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
        }
    }

    /// Writes what the TLS session holds (records the socket did not take earlier).
    pub(crate) fn flush_pending(&mut self) -> io::Result<()> {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_deref_mut() {
            return flush_tls(&mut self.tcp, tls);
        }
        Ok(())
    }

    /// Whether encrypted bytes wait for the socket.
    pub(crate) fn has_pending(&self) -> bool {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_deref() {
            return tls.wants_write();
        }
        false
    }

    /// Sends TLS `close_notify` (best effort) before the socket closes; nothing over plain TCP.
    pub(crate) fn close_notify(&mut self) {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_deref_mut() {
            tls.send_close_notify();
            let _ = flush_tls(&mut self.tcp, tls);
        }
    }

    /// Ends our sending side: TLS `close_notify` (best effort), then TCP FIN.
    pub(crate) fn shutdown_write(&mut self) {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_deref_mut() {
            tls.send_close_notify();
            let _ = flush_tls(&mut self.tcp, tls);
        }
        let _ = self.tcp.shutdown(Shutdown::Write);
    }
}

/// Reads ciphertext until the session yields plaintext, the socket is empty, or it ends.
#[cfg(feature = "tls")]
fn tls_read(
    tcp: &mut (impl io::Read + io::Write),
    tls: &mut rustls::ServerConnection,
    buf: &mut [u8],
) -> io::Result<Input> {
    // Whether the last socket read in this call came back short (the socket is empty).
    let mut short = false;
    loop {
        match tls.reader().read(buf) {
            // A clean close_notify.
            Ok(0) => return Ok(Input::Eof),
            // Drained when the socket read that brought these records was short and they all
            // fit in `buf`: the next edge announces more. Otherwise the caller reads on.
            Ok(len) => {
                return Ok(Input::Data {
                    len,
                    drained: short && len < buf.len(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // TCP ended without close_notify. WebSocket's own close handshake tells a clean end
            // from an abrupt one (an open connection ends as `Disconnected`), and most clients
            // drop TCP after it without close_notify: an end of stream, as over plain TCP.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Input::Eof),
            Err(e) => return Err(e),
        }
        let mut probe = ShortRead {
            inner: tcp,
            short: false,
        };
        let read = tls.read_tls(&mut probe);
        short = probe.short;
        match read {
            // The session now knows of the EOF; the reader reports it above.
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Input::Empty),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        if let Err(err) = tls.process_new_packets() {
            // Tell the peer why (the alert rustls queued), then report the failure.
            let _ = flush_tls(tcp, tls);
            return Err(io::Error::new(io::ErrorKind::InvalidData, err));
        }
        // Handshake messages (and key updates) go out as soon as they are made.
        flush_tls(tcp, tls)?;
    }
}

/// A reader that notes whether its last read filled less than it was offered.
#[cfg(feature = "tls")]
struct ShortRead<'a, R> {
    inner: &'a mut R,
    short: bool,
}

#[cfg(feature = "tls")]
impl<R: io::Read> io::Read for ShortRead<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.short = n < buf.len();
        Ok(n)
    }
}

/// Writes the session's pending records until done or the socket is full.
#[cfg(feature = "tls")]
fn flush_tls(tcp: &mut impl io::Write, tls: &mut rustls::ServerConnection) -> io::Result<()> {
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

/// The TLS failure inside an I/O error from [`Stream`], if that is what it is.
#[cfg(feature = "tls")]
pub(crate) fn tls_failure(err: &io::Error) -> Option<&rustls::Error> {
    err.get_ref()?.downcast_ref::<rustls::Error>()
}

/// The TLS read path over bytes in memory, for the fuzz target: `input` arrives in pieces of
/// `piece` bytes, and every plaintext byte is read out as the worker would.
#[cfg(feature = "tls")]
#[doc(hidden)]
pub mod fuzzing {
    use std::io;
    use std::sync::Arc;

    use super::{Input, tls_read};

    struct Feed<'a> {
        input: &'a [u8],
        piece: usize,
        written: usize,
    }

    impl io::Read for Feed<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.input.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = self.piece.min(buf.len()).min(self.input.len());
            buf[..n].copy_from_slice(&self.input[..n]);
            self.input = &self.input[n..];
            Ok(n)
        }
    }

    impl io::Write for Feed<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.written += buf.len();
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// What the read path made of the input.
    #[derive(Debug)]
    pub struct Outcome {
        /// Plaintext bytes read out.
        pub plaintext: usize,
        /// Bytes the session wrote back (handshake messages, alerts).
        pub written: usize,
        /// The error that ended the connection, if any.
        pub error: Option<io::Error>,
    }

    /// Whether `err` carries a TLS failure (as opposed to a socket error).
    pub fn is_tls_failure(err: &io::Error) -> bool {
        super::tls_failure(err).is_some()
    }

    /// Runs `input` through the worker's TLS read path with a fresh session.
    pub fn tls_read_path(config: Arc<rustls::ServerConfig>, input: &[u8], piece: usize) -> Outcome {
        let mut tls = rustls::ServerConnection::new(config).expect("a valid configuration");
        tls.set_buffer_limit(Some(super::TLS_PENDING_LIMIT));
        let mut feed = Feed {
            input,
            piece: piece.max(1),
            written: 0,
        };
        let mut buf = vec![0; 16 << 10];
        let mut plaintext = 0;
        // Each call consumes input or ends; the bound only guards the harness.
        for _ in 0..=input.len() + 1 {
            match tls_read(&mut feed, &mut tls, &mut buf) {
                Ok(Input::Data { len, .. }) => plaintext += len,
                Ok(Input::Empty | Input::Eof) => break,
                Err(error) => {
                    return Outcome {
                        plaintext,
                        written: feed.written,
                        error: Some(error),
                    };
                }
            }
        }
        Outcome {
            plaintext,
            written: feed.written,
            error: None,
        }
    }
}
