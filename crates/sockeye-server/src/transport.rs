//! A connection's byte stream: the TCP socket itself, or TLS over it (the reading and writing
//! rules are [`crate::socket`]'s).

use std::io;
use std::net::Shutdown;

use mio::net::TcpStream;

use crate::socket;
pub(crate) use crate::socket::Input;
#[cfg(feature = "tls")]
pub(crate) use crate::tls_io::Scratch;
#[cfg(feature = "tls")]
use crate::tls_io::TlsIo;

/// The worker's buffers for TLS connections (none without TLS).
#[cfg(not(feature = "tls"))]
pub(crate) struct Scratch;

#[cfg(not(feature = "tls"))]
impl Scratch {
    pub(crate) fn for_server(_config: &crate::ServerConfig) -> Self {
        Scratch
    }
}

pub(crate) struct Stream {
    tcp: TcpStream,
    #[cfg(feature = "tls")]
    tls: Option<Box<TlsIo>>,
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
    pub(crate) fn tls(tcp: TcpStream, session: rustls::server::UnbufferedServerConnection) -> Self {
        Stream {
            tcp,
            tls: Some(Box::new(TlsIo::new(session))),
        }
    }

    /// Reads plaintext into `buf`.
    #[cfg_attr(not(feature = "tls"), allow(unused_variables))]
    pub(crate) fn read(&mut self, buf: &mut [u8], scratch: &mut Scratch) -> io::Result<Input> {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_deref_mut() {
            return tls.read(&mut self.tcp, buf, scratch);
        }
        socket::read(&mut self.tcp, buf)
    }

    /// Writes `buf`; returns the bytes taken, fewer only when the socket is full (its writable
    /// edge will come). Over TLS, records the socket did not take stay pending in the
    /// connection (see [`has_pending`](Self::has_pending)).
    #[cfg_attr(not(feature = "tls"), allow(unused_variables))]
    pub(crate) fn write(&mut self, buf: &[u8], scratch: &mut Scratch) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_deref_mut() {
            return tls.write(&mut self.tcp, buf, scratch);
        }
        socket::write(&mut self.tcp, buf)
    }

    /// Writes `bufs` in order, as one write would take them: the bytes taken, fewer only when
    /// the socket is full. Over plain TCP one vectored write; over TLS the slices are
    /// encrypted one after another from where they lie.
    #[cfg_attr(not(feature = "tls"), allow(unused_variables))]
    pub(crate) fn write_vectored(
        &mut self,
        bufs: &[io::IoSlice<'_>],
        scratch: &mut Scratch,
    ) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_deref_mut() {
            let mut taken = 0;
            for buf in bufs {
                let n = tls.write(&mut self.tcp, buf, scratch)?;
                taken += n;
                if n < buf.len() {
                    break;
                }
            }
            return Ok(taken);
        }
        socket::write_vectored(&mut self.tcp, bufs)
    }

    /// Writes the TLS records the socket did not take earlier.
    pub(crate) fn flush_pending(&mut self) -> io::Result<()> {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_deref_mut() {
            tls.flush(&mut self.tcp)?;
        }
        Ok(())
    }

    /// Whether encrypted bytes wait for the socket.
    pub(crate) fn has_pending(&self) -> bool {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_deref() {
            return tls.has_pending();
        }
        false
    }

    /// Sends TLS `close_notify` (best effort) before the socket closes; nothing over plain TCP.
    #[cfg_attr(not(feature = "tls"), allow(unused_variables))]
    pub(crate) fn close_notify(&mut self, scratch: &mut Scratch) {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_deref_mut() {
            tls.close_notify(&mut self.tcp, scratch);
        }
    }

    /// Ends our sending side: TLS `close_notify` (best effort), then TCP FIN.
    pub(crate) fn shutdown_write(&mut self, scratch: &mut Scratch) {
        self.close_notify(scratch);
        let _ = self.tcp.shutdown(Shutdown::Write);
    }
}

/// The TLS read path over bytes in memory, for the fuzz target: `input` arrives in pieces of
/// `piece` bytes, and every plaintext byte is read out as the worker would.
#[cfg(feature = "tls")]
#[doc(hidden)]
pub mod fuzzing {
    use std::cell::RefCell;
    use std::io;
    use std::sync::Arc;

    use crate::socket::Input;
    use crate::tls_io::{Scratch, TlsIo};

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
        let session =
            rustls::server::UnbufferedServerConnection::new(config).expect("a valid configuration");
        let mut tls = TlsIo::new(session);
        // The worker's buffers outlive its connections: so do the harness's.
        thread_local! {
            static SCRATCH: RefCell<Option<Scratch>> = const { RefCell::new(None) };
        }
        SCRATCH.with_borrow_mut(|scratch| {
            let scratch = scratch.get_or_insert_with(|| Scratch::new(0));
            run(&mut tls, scratch, input, piece)
        })
    }

    fn run(tls: &mut TlsIo, scratch: &mut Scratch, input: &[u8], piece: usize) -> Outcome {
        let mut feed = Feed {
            input,
            piece: piece.max(1),
            written: 0,
        };
        let mut buf = vec![0; 16 << 10];
        let mut plaintext = 0;
        // Each call consumes input or ends; the bound only guards the harness.
        for _ in 0..=input.len() + 1 {
            match tls.read(&mut feed, &mut buf, scratch) {
                Ok(Input::Data { len, .. }) => plaintext += len,
                // An empty socket: the next piece is the next readiness edge.
                Ok(Input::Empty) if !feed.input.is_empty() => {}
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
