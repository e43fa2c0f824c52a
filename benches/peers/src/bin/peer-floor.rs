//! The floor: the least work any WebSocket engine can do per message on this kernel.
//!
//! A raw `mio` loop per worker. It reads the upgrade request only as far as
//! `Sec-WebSocket-Key`, answers 101, then echoes frames with no validation at all: decode the
//! header, unmask the payload while copying it out, write back an unmasked frame with the same
//! first byte (FIN, RSV, opcode). Pings get a pong, pongs are dropped, a close is echoed and the
//! socket closed once it is written. No UTF-8 check, no reassembly, no limits beyond a cap on a
//! frame's length (so a stray length cannot allocate the machine).
//!
//! Per worker one receive buffer; per connection the bytes of an unfinished frame (only when a
//! frame straddles reads) and the bytes not yet written. One write per connection per turn, and
//! a read that fills less than the buffer is taken to have drained the socket.
//!
//! `peer-floor [--addr HOST:PORT] [--workers N]`

use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpListener as StdListener;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use sha1::{Digest, Sha1};
use sockeye_peers::Options;
use sockeye_peers::listen::run_workers;

/// The worker's receive buffer.
const RECV_BUFFER: usize = 256 * 1024;
/// The longest upgrade request head kept while waiting for its end.
const MAX_HEAD: usize = 8 * 1024;
/// The longest frame echoed; a longer announced length closes the connection.
const MAX_FRAME: usize = 64 << 20;
/// Unwritten bytes above which a connection is not read until the peer catches up.
const HIGH_WATER: usize = 4 << 20;
/// A buffer larger than this is freed, not kept, once emptied.
const KEEP_OUT: usize = 64 * 1024;
/// Appended to the client's key before hashing (RFC 6455, section 1.3).
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const LISTENER: Token = Token(usize::MAX);

const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

fn main() {
    let options = Options::from_args("peer-floor", false);
    run_workers("peer-floor", options.addr, options.workers, |listener| {
        Worker::new(listener)?.run()
    });
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the end of the upgrade request.
    Handshake,
    /// Echoing frames.
    Open,
    /// The close echo is queued; the socket closes once it is written.
    Closing,
}

#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    state: State,
    /// An unfinished request head or frame, carried to the next read.
    carry: Vec<u8>,
    /// Bytes to write, from `written` on.
    out: Vec<u8>,
    written: usize,
    /// Reading stopped at the high-water mark; the socket may hold more.
    read_paused: bool,
    /// Registered for writability: only while output waits for the peer.
    write_interest: bool,
}

#[derive(Debug)]
struct Worker {
    poll: Poll,
    listener: TcpListener,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    buf: Vec<u8>,
}

impl Worker {
    fn new(listener: StdListener) -> io::Result<Worker> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::from_std(listener);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(Worker {
            poll,
            listener,
            conns: Vec::new(),
            free: Vec::new(),
            buf: vec![0; RECV_BUFFER],
        })
    }

    fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            if let Err(e) = self.poll.poll(&mut events, None) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for event in &events {
                if event.token() == LISTENER {
                    self.accept();
                } else {
                    let readable =
                        event.is_readable() || event.is_read_closed() || event.is_error();
                    self.turn(event.token().0, readable);
                }
            }
        }
    }

    fn accept(&mut self) {
        loop {
            let mut stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                // WouldBlock, or out of descriptors: wait for the next readiness.
                Err(_) => return,
            };
            if stream.set_nodelay(true).is_err() {
                continue;
            }
            let index = self.free.pop().unwrap_or(self.conns.len());
            if self
                .poll
                .registry()
                .register(&mut stream, Token(index), Interest::READABLE)
                .is_err()
            {
                self.free.push(index);
                continue;
            }
            let conn = Conn {
                stream,
                state: State::Handshake,
                carry: Vec::new(),
                out: Vec::new(),
                written: 0,
                read_paused: false,
                write_interest: false,
            };
            if index == self.conns.len() {
                self.conns.push(Some(conn));
            } else {
                self.conns[index] = Some(conn);
            }
        }
    }

    /// Reads what arrived, echoes it, and writes once; drops the connection when it is done.
    fn turn(&mut self, index: usize, readable: bool) {
        let Some(Some(conn)) = self.conns.get_mut(index) else {
            return;
        };
        let mut keep = true;
        if readable || conn.read_paused {
            keep = conn.read(&mut self.buf);
        }
        if keep && conn.written < conn.out.len() {
            keep = conn.flush();
        }
        // A write that took the output under the high-water mark releases reading; the socket
        // may hold data that no new event will announce.
        while keep && conn.read_paused && conn.out.len() - conn.written < HIGH_WATER {
            keep = conn.read(&mut self.buf);
            if keep && conn.written < conn.out.len() {
                keep = conn.flush();
            }
        }
        let want_write = conn.written < conn.out.len();
        if keep && want_write != conn.write_interest {
            let interest = if want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let registry = self.poll.registry();
            keep = registry
                .reregister(&mut conn.stream, Token(index), interest)
                .is_ok();
            conn.write_interest = want_write;
        }
        if !keep || (conn.state == State::Closing && conn.out.is_empty()) {
            self.conns[index] = None;
            self.free.push(index);
        }
    }
}

impl Conn {
    /// Reads until the socket is drained (a short read) or the output is over the high-water
    /// mark. `false` when the connection is finished.
    fn read(&mut self, buf: &mut [u8]) -> bool {
        loop {
            if self.out.len() - self.written >= HIGH_WATER {
                self.read_paused = true;
                return true;
            }
            self.read_paused = false;
            match self.stream.read(buf) {
                Ok(0) => return false,
                Ok(n) => {
                    if !self.absorb(&mut buf[..n]) {
                        return false;
                    }
                    if n < buf.len() || self.state == State::Closing {
                        return true;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }

    /// Handles freshly read bytes. `false` when the connection is to be dropped.
    fn absorb(&mut self, data: &mut [u8]) -> bool {
        match self.state {
            State::Handshake => self.handshake(data),
            State::Closing => true,
            State::Open if self.carry.is_empty() => {
                let Some(used) = self.echo_frames(data) else {
                    return false;
                };
                self.carry.extend_from_slice(&data[used..]);
                true
            }
            State::Open => {
                let mut carry = std::mem::take(&mut self.carry);
                carry.extend_from_slice(data);
                let Some(used) = self.echo_frames(&mut carry) else {
                    return false;
                };
                carry.drain(..used);
                if carry.is_empty() && carry.capacity() > KEEP_OUT {
                    carry = Vec::new();
                }
                self.carry = carry;
                true
            }
        }
    }

    /// Collects the request head; once it is whole, answers 101 and echoes what followed it.
    fn handshake(&mut self, data: &[u8]) -> bool {
        let from = self.carry.len().saturating_sub(3);
        self.carry.extend_from_slice(data);
        let Some(end) = find(&self.carry[from..], b"\r\n\r\n").map(|i| from + i + 4) else {
            return self.carry.len() <= MAX_HEAD;
        };
        let mut rest = self.carry.split_off(end);
        let head = std::mem::take(&mut self.carry);
        let Some(key) = header(&head[..end], b"sec-websocket-key") else {
            return false;
        };
        if !self.respond(key) {
            return false;
        }
        self.state = State::Open;
        if rest.is_empty() {
            return true;
        }
        let Some(used) = self.echo_frames(&mut rest) else {
            return false;
        };
        rest.drain(..used);
        self.carry = rest;
        true
    }

    /// Writes the 101 straight away (the output is empty before it); what the socket does not
    /// take waits in the output.
    fn respond(&mut self, key: &[u8]) -> bool {
        let mut sha1 = Sha1::new();
        sha1.update(key);
        sha1.update(GUID);
        let mut accept = [0; 28];
        if STANDARD.encode_slice(sha1.finalize(), &mut accept).is_err() {
            return false;
        }
        let mut response = Vec::with_capacity(160);
        response.extend_from_slice(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
              Connection: Upgrade\r\nSec-WebSocket-Accept: ",
        );
        response.extend_from_slice(&accept);
        response.extend_from_slice(b"\r\n\r\n");
        match self.stream.write(&response) {
            Ok(n) => response.drain(..n),
            Err(e) if e.kind() == ErrorKind::WouldBlock => response.drain(..0),
            Err(_) => return false,
        };
        if !response.is_empty() {
            self.out = response;
        }
        true
    }

    /// Echoes every whole frame at the start of `data`; returns the bytes used, or `None` when
    /// the connection is to be dropped (a frame over the length cap).
    fn echo_frames(&mut self, data: &mut [u8]) -> Option<usize> {
        let mut pos = 0;
        while let Some(frame) = Header::decode(&data[pos..]) {
            if frame.payload_len > MAX_FRAME {
                return None;
            }
            let end = pos + frame.header_len + frame.payload_len;
            if end > data.len() {
                break;
            }
            let payload = &mut data[pos + frame.header_len..end];
            pos = end;
            match frame.first & 0x0F {
                OP_PONG => continue,
                OP_PING => push_frame(
                    &mut self.out,
                    (frame.first & 0xF0) | OP_PONG,
                    frame.mask,
                    payload,
                ),
                OP_CLOSE => {
                    push_frame(&mut self.out, frame.first, frame.mask, payload);
                    self.state = State::Closing;
                    break;
                }
                _ => push_frame(&mut self.out, frame.first, frame.mask, payload),
            }
        }
        Some(pos)
    }

    /// One write of the pending output. `false` when the connection is broken.
    fn flush(&mut self) -> bool {
        loop {
            match self.stream.write(&self.out[self.written..]) {
                Ok(n) => {
                    self.written += n;
                    if self.written == self.out.len() {
                        if self.out.capacity() > KEEP_OUT {
                            self.out = Vec::new();
                        } else {
                            self.out.clear();
                        }
                        self.written = 0;
                    }
                    return true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }
}

/// A frame header as it arrived.
#[derive(Debug, Clone, Copy)]
struct Header {
    /// FIN, RSV and opcode, echoed unchanged.
    first: u8,
    mask: Option<[u8; 4]>,
    header_len: usize,
    payload_len: usize,
}

impl Header {
    /// The header at the start of `data`, or `None` when it is not all there yet.
    fn decode(data: &[u8]) -> Option<Header> {
        let (&first, rest) = data.split_first()?;
        let (&second, rest) = rest.split_first()?;
        let (payload_len, rest) = match second & 0x7F {
            126 => {
                let (len, rest) = rest.split_first_chunk::<2>()?;
                (usize::from(u16::from_be_bytes(*len)), rest)
            }
            127 => {
                let (len, rest) = rest.split_first_chunk::<8>()?;
                (
                    usize::try_from(u64::from_be_bytes(*len)).unwrap_or(usize::MAX),
                    rest,
                )
            }
            len => (usize::from(len), rest),
        };
        let (mask, rest) = if second & 0x80 != 0 {
            let (mask, rest) = rest.split_first_chunk::<4>()?;
            (Some(*mask), rest)
        } else {
            (None, rest)
        };
        Some(Header {
            first,
            mask,
            header_len: data.len() - rest.len(),
            payload_len,
        })
    }
}

/// Appends an unmasked frame: the header, then the payload, unmasked in place first.
fn push_frame(out: &mut Vec<u8>, first: u8, mask: Option<[u8; 4]>, payload: &mut [u8]) {
    let len = payload.len();
    out.reserve(10 + len);
    out.push(first);
    match len {
        0..=125 => out.push(len as u8),
        126..=0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    if let Some(mask) = mask {
        unmask(payload, mask);
    }
    out.extend_from_slice(payload);
}

/// XORs the mask over `payload`, eight bytes at a time.
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let mut wide = [0; 8];
    wide[..4].copy_from_slice(&mask);
    wide[4..].copy_from_slice(&mask);
    let wide = u64::from_ne_bytes(wide);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let word = u64::from_ne_bytes([
            chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
        ]) ^ wide;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[i & 3];
    }
}

/// The value of the first header line called `name` (lowercase), trimmed.
fn header<'h>(head: &'h [u8], name: &[u8]) -> Option<&'h [u8]> {
    head.split(|&b| b == b'\n').skip(1).find_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        let (field, value) = line.split_at(colon);
        field
            .eq_ignore_ascii_case(name)
            .then(|| value[1..].trim_ascii())
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_found_case_insensitively() {
        let head =
            b"GET / HTTP/1.1\r\nHost: x\r\nSEC-WebSocket-Key:  dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
        assert_eq!(
            header(head, b"sec-websocket-key"),
            Some(&b"dGhlIHNhbXBsZSBub25jZQ=="[..])
        );
        assert_eq!(header(head, b"origin"), None);
    }

    #[test]
    fn headers_decode_every_length_form() {
        let h = Header::decode(&[0x81, 0x85, 1, 2, 3, 4]).unwrap();
        assert_eq!((h.first, h.header_len, h.payload_len), (0x81, 6, 5));
        assert_eq!(h.mask, Some([1, 2, 3, 4]));
        let h = Header::decode(&[0x82, 126, 1, 0]).unwrap();
        assert_eq!((h.header_len, h.payload_len, h.mask), (4, 256, None));
        let h = Header::decode(&[0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 9, 9, 9, 9]).unwrap();
        assert_eq!((h.header_len, h.payload_len), (14, 1 << 16));
        assert!(Header::decode(&[0x82, 0xFF, 0, 0]).is_none());
        assert!(Header::decode(&[0x82, 0x81, 1, 2, 3]).is_none());
    }

    #[test]
    fn unmask_matches_bytewise() {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        for len in 0..40 {
            let data: Vec<u8> = (0..len as u8).collect();
            let mut fast = data.clone();
            unmask(&mut fast, mask);
            let slow: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            assert_eq!(fast, slow, "len {len}");
        }
    }

    #[test]
    fn echoed_frames_are_unmasked_with_the_same_first_byte() {
        let mut out = Vec::new();
        let mut payload = *b"Hello";
        unmask(&mut payload, [0x37, 0xfa, 0x21, 0x3d]);
        push_frame(&mut out, 0x81, Some([0x37, 0xfa, 0x21, 0x3d]), &mut payload);
        assert_eq!(out, b"\x81\x05Hello");
        let mut big = vec![0; 70_000];
        out.clear();
        push_frame(&mut out, 0x02, None, &mut big);
        assert_eq!(&out[..10], &[0x02, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
    }

    #[test]
    fn accept_key_of_the_rfc_example() {
        let mut sha1 = Sha1::new();
        sha1.update(b"dGhlIHNhbXBsZSBub25jZQ==");
        sha1.update(GUID);
        assert_eq!(
            STANDARD.encode(sha1.finalize()),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
