//! A connection's byte stream: the TCP socket itself, or TLS over it (the reading and writing
//! rules are [`crate::socket`]'s).

use std::io;
use std::net::Shutdown;

use mio::net::TcpStream;

use crate::socket;
pub(crate) use crate::socket::Input;

/// The most ciphertext a TLS connection holds before its writer stops taking plaintext; the
/// rest waits in the connection's queue, where backpressure sees it.
#[cfg(feature = "tls")]
const TLS_PENDING_LIMIT: usize = 64 << 10;

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
            return socket::tls_read(&mut self.tcp, tls, buf);
        }
        socket::read(&mut self.tcp, buf)
    }

    /// Writes `buf`; returns the bytes taken, fewer only when the socket is full (its writable
    /// edge will come). Over TLS, records the socket did not take stay pending in the session
    /// (see [`has_pending`](Self::has_pending)).
    pub(crate) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_deref_mut() {
            return socket::tls_write(&mut self.tcp, tls, buf);
        }
        socket::write(&mut self.tcp, buf)
    }

    /// Writes what the TLS session holds (records the socket did not take earlier).
    pub(crate) fn flush_pending(&mut self) -> io::Result<()> {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_deref_mut() {
            socket::tls_flush(&mut self.tcp, tls)?;
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
            let _ = socket::tls_flush(&mut self.tcp, tls);
        }
    }

    /// Ends our sending side: TLS `close_notify` (best effort), then TCP FIN.
    pub(crate) fn shutdown_write(&mut self) {
        self.close_notify();
        let _ = self.tcp.shutdown(Shutdown::Write);
    }
}

/// The TLS read path over bytes in memory, for the fuzz target: `input` arrives in pieces of
/// `piece` bytes, and every plaintext byte is read out as the worker would.
#[cfg(feature = "tls")]
#[doc(hidden)]
pub mod fuzzing {
    use std::io;
    use std::sync::Arc;

    use crate::socket::{Input, tls_read};

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
