//! A deterministic client/server pair on a virtual clock: two [`Peer`]s joined by byte pipes.

use std::time::{Duration, Instant};

use sockeye_proto::{Config, Connection, NoExtension};

use crate::engine::Peer;

/// The seed of the client's mask generator (any value works; fixed for reproducibility).
pub const CLIENT_SEED: u64 = 0x5eed_0fc0_ffee;

/// A client and a server connection wired back to back, with a virtual clock.
#[derive(Debug)]
pub struct Pair {
    /// The client end.
    pub client: Peer,
    /// The server end.
    pub server: Peer,
    base: Instant,
    elapsed: Duration,
    chunk: usize,
}

impl Pair {
    /// Both ends with `config`; bytes are delivered in whole batches.
    pub fn new(config: Config) -> Self {
        Pair {
            client: Peer::new(Connection::client(config, NoExtension, CLIENT_SEED)),
            server: Peer::new(Connection::server(config, NoExtension)),
            base: Instant::now(),
            elapsed: Duration::ZERO,
            chunk: usize::MAX,
        }
    }

    /// Delivers bytes at most `chunk` at a time, so frames straddle reads.
    pub fn with_chunk(mut self, chunk: usize) -> Self {
        assert!(chunk > 0);
        self.chunk = chunk;
        self
    }

    /// The virtual time.
    pub fn now(&self) -> Instant {
        self.base + self.elapsed
    }

    /// Moves the virtual clock forward.
    pub fn advance(&mut self, by: Duration) {
        self.elapsed += by;
    }

    /// Calls `handle_timeout` on both ends at the virtual time.
    pub fn handle_timeouts(&mut self) {
        let now = self.now();
        self.client.conn.handle_timeout(now);
        self.server.conn.handle_timeout(now);
    }

    /// Delivers what the client wrote to the server; returns the bytes moved.
    pub fn deliver_to_server(&mut self) -> usize {
        let now = self.now();
        deliver(&mut self.client, &mut self.server, self.chunk, now)
    }

    /// Delivers what the server wrote to the client; returns the bytes moved.
    pub fn deliver_to_client(&mut self) -> usize {
        let now = self.now();
        deliver(&mut self.server, &mut self.client, self.chunk, now)
    }

    /// Polls both ends for owed frames and delivers bytes both ways until nothing moves.
    /// Protocol errors are recorded on the failing [`Peer`] (its close still goes out).
    pub fn pump(&mut self) {
        for _ in 0..64 {
            self.client.transmit();
            self.server.transmit();
            if self.deliver_to_server() + self.deliver_to_client() == 0 {
                return;
            }
        }
        panic!("the pair never went quiet");
    }
}

fn deliver(from: &mut Peer, to: &mut Peer, chunk: usize, now: Instant) -> usize {
    let bytes = std::mem::take(&mut from.wire);
    for piece in bytes.chunks(chunk) {
        // An error is kept in `to.error`; the connection must ignore what follows it, so the
        // rest is fed anyway.
        let _ = to.receive(piece, now);
    }
    bytes.len()
}
