//! The TLS read path over bytes in memory, for the fuzz target: `input` arrives in pieces of
//! `piece` bytes, and every plaintext byte is read out as the worker would.

use std::cell::RefCell;
use std::io;
use std::sync::Arc;

use super::{Scratch, TlsIo};
use crate::socket::Input;

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
