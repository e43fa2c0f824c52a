//! A scripted stream: the engine owns one end as its [`Transport`], the harness (a test or a
//! fuzz target) the other, and decides what arrives, how much a write takes, when the peer
//! hangs up and when writes fail.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::transport::{Input, Scratch, Transport};

/// What a scripted stream has and does; the harness holds it through [`Script`].
#[derive(Debug, Default)]
pub(crate) struct Peer {
    /// Bytes the peer sent that the server has not read.
    pub(crate) inbound: VecDeque<u8>,
    /// The peer closed its side once `inbound` is read.
    pub(crate) eof: bool,
    /// Bytes the socket can take before it is full (`None`: no bound).
    pub(crate) room: Option<usize>,
    /// Everything the server wrote.
    pub(crate) wire: Vec<u8>,
    /// The server shut its sending side.
    pub(crate) shut: bool,
    /// Writes fail from now on.
    pub(crate) broken: bool,
    /// Write calls the server made.
    pub(crate) writes: usize,
}

/// A scripted stream: the driver owns one end, the harness the other.
#[derive(Debug, Clone, Default)]
pub(crate) struct Script(Arc<Mutex<Peer>>);

impl Script {
    pub(crate) fn peer(&self) -> MutexGuard<'_, Peer> {
        self.0.lock().unwrap()
    }
}

impl Transport for Script {
    fn read(&mut self, buf: &mut [u8], _: &mut Scratch) -> io::Result<Input> {
        let mut peer = self.peer();
        if peer.inbound.is_empty() {
            return Ok(if peer.eof { Input::Eof } else { Input::Empty });
        }
        let len = buf.len().min(peer.inbound.len());
        for (slot, byte) in buf.iter_mut().zip(peer.inbound.drain(..len)) {
            *slot = byte;
        }
        let drained = peer.inbound.is_empty() && !peer.eof;
        Ok(Input::Data { len, drained })
    }

    fn write(&mut self, buf: &[u8], scratch: &mut Scratch) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)], scratch)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>], _: &mut Scratch) -> io::Result<usize> {
        let mut peer = self.peer();
        peer.writes += 1;
        if peer.broken {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        assert!(!peer.shut, "a write after shutdown");
        let mut taken = 0;
        for buf in bufs {
            let n = buf.len().min(peer.room.unwrap_or(usize::MAX));
            peer.wire.extend_from_slice(&buf[..n]);
            if let Some(room) = peer.room.as_mut() {
                *room -= n;
            }
            taken += n;
        }
        Ok(taken)
    }

    fn flush_pending(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn has_pending(&self) -> bool {
        false
    }

    fn close_notify(&mut self, _: &mut Scratch) {}

    fn shutdown_write(&mut self, _: &mut Scratch) {
        self.peer().shut = true;
    }

    fn peer_info(&self) -> crate::transport::Peer<'_> {
        crate::transport::Peer {
            addr: Some(([192, 0, 2, 7], 40_000).into()),
            ..Default::default()
        }
    }
}
