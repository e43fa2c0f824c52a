//! A buffered rustls connection over a non-blocking socket, for edge-triggered event loops that
//! drive many connections (the `sockeye load` generator does): the same rules as the engine's
//! workers follow.
//!
//! - A short read means the socket is empty: the next readiness edge announces more, so no read
//!   that could only return `WouldBlock` is made ([`Input::Data`]'s `drained`).
//! - A write that takes less than offered means the socket is full: its writable edge follows.
//!   Plaintext is encrypted in pieces of the session's buffer limit and the records written
//!   until all is taken or the socket refuses more.

use std::io::{self, Read, Write};

/// What a read produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// `len` plaintext bytes; `drained` when the socket is known to be empty (the next edge
    /// announces more), else read on until [`Input::Empty`].
    Data {
        /// Bytes read into the buffer.
        len: usize,
        /// The socket had no more.
        drained: bool,
    },
    /// The socket has nothing now.
    Empty,
    /// The peer closed its side (`close_notify`, or TCP's end without it, which the WebSocket
    /// closing handshake already tells from a complete conversation).
    Eof,
}

/// Reads ciphertext from `sock` until the TLS session yields plaintext into `buf`, the socket
/// is empty, or it ends. Handshake messages and alerts the session makes meanwhile are written
/// at once.
///
/// # Errors
///
/// The socket's error, or `InvalidData` carrying the [`rustls::Error`] (see [`tls_failure`]).
pub fn tls_read<D>(
    sock: &mut (impl Read + Write),
    tls: &mut rustls::ConnectionCommon<D>,
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
            // from an abrupt one, and most peers drop TCP after it without close_notify: an end
            // of stream, as over plain TCP.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Input::Eof),
            Err(e) => return Err(e),
        }
        let mut probe = ShortRead {
            inner: sock,
            short: false,
        };
        let read = tls.read_tls(&mut probe);
        short = probe.short;
        match read {
            // Ok(0): the session now knows of the EOF; the reader reports it above.
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Input::Empty),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        if let Err(err) = tls.process_new_packets() {
            // Tell the peer why (the alert rustls queued), then report the failure.
            let _ = tls_flush(sock, tls);
            return Err(io::Error::new(io::ErrorKind::InvalidData, err));
        }
        // Handshake messages (and key updates, and plaintext held back until the handshake
        // completed) go out as soon as they are made.
        tls_flush(sock, tls)?;
    }
}

/// Encrypts `buf` and writes the records: the bytes taken, fewer than `buf.len()` only when
/// the socket is full (the records it did not take wait in the session for [`tls_flush`]).
///
/// # Errors
///
/// The socket's error.
pub fn tls_write<D>(
    sock: &mut impl Write,
    tls: &mut rustls::ConnectionCommon<D>,
    buf: &[u8],
) -> io::Result<usize> {
    let mut taken = 0;
    loop {
        let n = tls.writer().write(&buf[taken..])?;
        taken += n;
        let drained = tls_flush(sock, tls)?;
        // Records left over: the socket is full. Nothing taken: the session was already at
        // its limit, left there by a write the socket refused, whose edge will come.
        if taken == buf.len() || !drained || n == 0 {
            return Ok(taken);
        }
    }
}

/// Writes the session's pending records until done (`true`) or the socket is full (`false`).
///
/// # Errors
///
/// The socket's error.
pub fn tls_flush<D>(
    sock: &mut impl Write,
    tls: &mut rustls::ConnectionCommon<D>,
) -> io::Result<bool> {
    while tls.wants_write() {
        match tls.write_tls(sock) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// The TLS failure inside an error from [`tls_read`], if that is what it is (as opposed to a
/// socket error).
pub fn tls_failure(err: &io::Error) -> Option<&rustls::Error> {
    err.get_ref()?.downcast_ref::<rustls::Error>()
}

/// A reader that notes whether its last read filled less than it was offered.
struct ShortRead<'a, R> {
    inner: &'a mut R,
    short: bool,
}

impl<R: Read> Read for ShortRead<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.short = n < buf.len();
        Ok(n)
    }
}
