//! Reading and writing a non-blocking socket from an edge-triggered event loop: the rules the
//! engine's workers follow, shared with other loops (the `sockeye load` client drives its plain
//! connections with these functions). The workers' TLS connections follow the same rules
//! through rustls' unbuffered API, with buffers the worker lends; a client's buffered rustls
//! connection follows them through `sockeye_client::io`.
//!
//! - A short read means the socket is empty: the next readiness edge announces more, so no
//!   read that could only return `WouldBlock` is made ([`Input::Data`]'s `drained`).
//! - A write that takes less than offered means the socket is full: its writable edge follows.
//!   Over TLS this holds too: plaintext is encrypted in pieces of the session's buffer limit and
//!   the records written until all is taken or the socket refuses more.

use std::io::{self, Read, Write};

/// What a read produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// `len` plaintext bytes; `drained` when the socket is known to be empty (the next edge
    /// announces more), else read on until [`Input::Empty`]. `len` is 0 when bytes were read
    /// and dropped (TLS after our close_notify): read on as well.
    Data {
        /// Bytes read into the buffer.
        len: usize,
        /// The socket had no more.
        drained: bool,
    },
    /// The socket has nothing now.
    Empty,
    /// The peer closed its side (over TLS: `close_notify`, or TCP's end without it, which the
    /// WebSocket closing handshake already tells from a complete conversation).
    Eof,
}

/// Reads from a plain socket into `buf`.
///
/// # Errors
///
/// The socket's error.
pub fn read(sock: &mut impl Read, buf: &mut [u8]) -> io::Result<Input> {
    loop {
        return match sock.read(buf) {
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

/// Writes `buf` once to a plain socket: the bytes taken, 0 when the socket is full.
///
/// # Errors
///
/// The socket's error.
pub fn write(sock: &mut impl Write, buf: &[u8]) -> io::Result<usize> {
    write_once(|| sock.write(buf))
}

/// Writes `bufs` in order, once, to a plain socket: the bytes taken, 0 when the socket is full.
///
/// # Errors
///
/// The socket's error.
pub fn write_vectored(sock: &mut impl Write, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
    write_once(|| sock.write_vectored(bufs))
}

/// One write: a full socket takes 0 bytes, an interrupted write is made again.
fn write_once(mut write: impl FnMut() -> io::Result<usize>) -> io::Result<usize> {
    loop {
        return match write() {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Err(e),
        };
    }
}

/// The TLS failure inside an error from the worker's TLS path, if that is what it is (as
/// opposed to a socket error).
#[cfg(feature = "tls")]
pub fn tls_failure(err: &io::Error) -> Option<&rustls::Error> {
    err.get_ref()?.downcast_ref::<rustls::Error>()
}
