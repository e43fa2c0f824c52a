//! A server TLS connection driven through rustls' unbuffered API, so that an idle connection
//! owns no buffer of its own.
//!
//! rustls' buffered connection keeps a record buffer per connection for as long as the
//! connection lives. Here the worker lends two buffers instead ([`Scratch`]): ciphertext is read
//! from the socket into the worker's input buffer and decrypted by rustls; outgoing plaintext
//! is encrypted straight into the worker's output buffer and written from there. A connection
//! keeps bytes only while they cannot be finished: a partial record waiting for its rest,
//! records the socket did not take, plaintext its reader had no room for. Each of those is
//! freed as soon as it empties.
//!
//! The reading and writing rules are [`crate::socket`]'s: a short read means the socket is
//! empty, a short write that it is full.

use std::io::{self, Read, Write};

use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncodeTlsData, EncryptError, InsufficientSizeError,
    UnbufferedStatus,
};

use crate::socket::Input;

/// Largest record on the wire: a 5-byte header and at most 2^14 + 256 bytes of ciphertext.
const MAX_WIRE: usize = 5 + (16 << 10) + 256;

/// rustls joins a handshake message of up to 64 KiB across records before it discards them.
const MAX_HANDSHAKE: usize = 64 << 10;

/// Plaintext encrypted per pass (eight full records), each pass's records sent in one write.
const PIECE: usize = 128 << 10;

/// Room for a pass's records: the plaintext and each record's header, nonce, tag and type.
const PIECE_WIRE: usize = PIECE + (PIECE / (16 << 10) + 1) * 64;

/// The worker's buffers, lent to one TLS connection at a time.
pub(crate) struct Scratch {
    /// Ciphertext from a socket (all of it initialised: `len()` is the room).
    input: Vec<u8>,
    /// Records for a socket (likewise).
    output: Vec<u8>,
}

impl Scratch {
    /// The buffers a worker of a server with `config` needs: none without TLS.
    pub(crate) fn for_server(config: &crate::ServerConfig) -> Self {
        match config.tls {
            Some(_) => Self::new(config.recv_buffer),
            None => Scratch {
                input: Vec::new(),
                output: Vec::new(),
            },
        }
    }

    /// Buffers for reads of up to `read_size` bytes (at least what a handshake needs).
    pub(crate) fn new(read_size: usize) -> Self {
        Scratch {
            input: vec![0; read_size.max(MAX_HANDSHAKE + 2 * MAX_WIRE)],
            output: vec![0; PIECE_WIRE],
        }
    }
}

/// One TLS connection's state.
pub(crate) struct TlsIo {
    conn: UnbufferedServerConnection,
    /// The start of a record whose rest has not arrived.
    carried: Vec<u8>,
    /// Records the socket has not taken, from `head`.
    pending: Vec<u8>,
    head: usize,
    /// Plaintext the reader had no room for.
    overflow: Vec<u8>,
    /// The peer sent close_notify.
    peer_closed: bool,
    /// We sent close_notify: what the peer sends after it is read off the socket and dropped,
    /// never given to the session (which has nothing to answer with and may only fail).
    closed: bool,
    /// The host name the client asked for (SNI), once its ClientHello was read.
    sni: Option<Box<str>>,
    /// The ClientHello was read (whether it named a host or not).
    hello_read: bool,
}

impl TlsIo {
    pub(crate) fn new(conn: UnbufferedServerConnection) -> Self {
        TlsIo {
            conn,
            carried: Vec::new(),
            pending: Vec::new(),
            head: 0,
            overflow: Vec::new(),
            peer_closed: false,
            closed: false,
            sni: None,
            hello_read: false,
        }
    }

    /// The host name the client asked for (SNI), lowercased.
    pub(crate) fn server_name(&self) -> Option<&str> {
        self.sni.as_deref()
    }

    /// The application protocol negotiated by ALPN.
    pub(crate) fn alpn(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// The client's certificate chain, verified (with client authentication).
    pub(crate) fn peer_certificates(
        &self,
    ) -> Option<&[rustls::pki_types::CertificateDer<'static>]> {
        self.conn.peer_certificates()
    }

    /// Reads ciphertext from `sock` until records yield plaintext into `buf`, the socket is
    /// empty, or it ends. Handshake messages and alerts are written as soon as they are made.
    ///
    /// # Errors
    ///
    /// The socket's error, or `InvalidData` carrying the [`rustls::Error`].
    pub(crate) fn read<S: Read + Write>(
        &mut self,
        sock: &mut S,
        buf: &mut [u8],
        scratch: &mut Scratch,
    ) -> io::Result<Input> {
        if !self.overflow.is_empty() {
            let len = self.overflow.len().min(buf.len());
            buf[..len].copy_from_slice(&self.overflow[..len]);
            self.overflow.drain(..len);
            if self.overflow.is_empty() {
                self.overflow = Vec::new();
            }
            return Ok(Input::Data {
                len,
                drained: false,
            });
        }
        if self.peer_closed {
            return Ok(Input::Eof);
        }
        if self.closed {
            return discard(sock, &mut scratch.input);
        }
        let input = &mut scratch.input;
        let mut held = self.carried.len();
        input[..held].copy_from_slice(&self.carried);
        self.carried = Vec::new();
        let mut filled = 0;
        // Each pass reads at least one byte or returns; the bound only guards the loop.
        for _ in 0..input.len() {
            if held == input.len() {
                return Err(invalid("a TLS message larger than the read buffer"));
            }
            let got = match sock.read(&mut input[held..]) {
                // TCP ended; with no close_notify, an end of stream as over plain TCP (the
                // WebSocket closing handshake tells a clean end from an abrupt one).
                Ok(0) => return Ok(Input::Eof),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.carry(&input[..held]);
                    return Ok(Input::Empty);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let short = held + got < input.len();
            held += got;
            if !self.hello_read {
                // The first record is the ClientHello: rustls takes it only once it is whole.
                if let Some(name) = crate::sni::client_hello_sni(&input[..held]) {
                    self.hello_read = true;
                    self.sni = name;
                }
            }
            let used = self.process(sock, &mut input[..held], buf, &mut filled)?;
            if filled > 0 || self.peer_closed {
                self.carry(&input[used..held]);
                if filled == 0 {
                    return Ok(Input::Eof);
                }
                return Ok(Input::Data {
                    len: filled,
                    // Drained when the socket read was short and all plaintext fitted: the
                    // next edge announces more. Otherwise the caller reads on.
                    drained: short && self.overflow.is_empty() && !self.peer_closed,
                });
            }
            if short {
                self.carry(&input[used..held]);
                return Ok(Input::Empty);
            }
            input.copy_within(used..held, 0);
            held -= used;
        }
        Err(invalid("TLS read made no progress"))
    }

    /// Keeps a partial record for the next read.
    fn carry(&mut self, rest: &[u8]) {
        if !rest.is_empty() {
            self.carried.extend_from_slice(rest);
        }
    }

    /// Runs the records in `input` through the session; returns the bytes it is done with.
    fn process<S: Write>(
        &mut self,
        sock: &mut S,
        input: &mut [u8],
        buf: &mut [u8],
        filled: &mut usize,
    ) -> io::Result<usize> {
        let mut start = 0;
        // Each state consumes a record or a queued message; the bound only guards the loop.
        for _ in 0..input.len() + 64 {
            let UnbufferedStatus { mut discard, state } =
                self.conn.process_tls_records(&mut input[start..]);
            let state = match state {
                Ok(state) => state,
                Err(err) => return Err(self.failed(sock, err)),
            };
            match state {
                ConnectionState::ReadTraffic(mut records) => {
                    while let Some(record) = records.next_record() {
                        let record = record.map_err(tls_error)?;
                        discard += record.discard;
                        let take = record.payload.len().min(buf.len() - *filled);
                        buf[*filled..][..take].copy_from_slice(&record.payload[..take]);
                        *filled += take;
                        self.overflow.extend_from_slice(&record.payload[take..]);
                    }
                }
                ConnectionState::EncodeTlsData(encode) => encode_into(&mut self.pending, encode)?,
                ConnectionState::TransmitTlsData(transmit) => {
                    // Records the socket does not take now stay pending, in order, for its
                    // writable edge.
                    flush(sock, &mut self.pending, &mut self.head)?;
                    transmit.done();
                }
                ConnectionState::PeerClosed => self.peer_closed = true,
                ConnectionState::BlockedHandshake
                | ConnectionState::WriteTraffic(_)
                | ConnectionState::Closed => return Ok(start + discard),
                ConnectionState::ReadEarlyData(_) => {
                    return Err(invalid("TLS early data is not accepted"));
                }
                _ => return Err(invalid("unexpected TLS connection state")),
            }
            start += discard;
        }
        Err(invalid("TLS records made no progress"))
    }

    /// After a TLS failure: sends the alert rustls queued (best effort) and wraps the error.
    fn failed<S: Write>(&mut self, sock: &mut S, err: rustls::Error) -> io::Error {
        // The session is given no input: it hands out what it queued and cannot fail on the
        // same bytes once more (rustls sends one fatal alert per session, and asserts so in
        // debug builds).
        for _ in 0..4 {
            if !self.conn.wants_write() {
                break;
            }
            match self.conn.process_tls_records(&mut []).state {
                Ok(ConnectionState::EncodeTlsData(encode)) => {
                    if encode_into(&mut self.pending, encode).is_err() {
                        break;
                    }
                }
                _ => break,
            }
        }
        let _ = flush(sock, &mut self.pending, &mut self.head);
        tls_error(err)
    }

    /// Encrypts `buf` and writes the records: the bytes taken, fewer than `buf.len()` only when
    /// the socket is full (its records not taken wait in the connection for [`Self::flush`]).
    ///
    /// # Errors
    ///
    /// The socket's error, or `InvalidData` when the session cannot encrypt.
    pub(crate) fn write<S: Write>(
        &mut self,
        sock: &mut S,
        buf: &[u8],
        scratch: &mut Scratch,
    ) -> io::Result<usize> {
        if !self.flush(sock)? {
            return Ok(0);
        }
        let mut taken = 0;
        while taken < buf.len() {
            let piece = &buf[taken..][..(buf.len() - taken).min(PIECE)];
            let len = self.encrypt(|traffic, out| traffic.encrypt(piece, out), scratch)?;
            taken += piece.len();
            let records = &scratch.output[..len];
            if !self.pending.is_empty() {
                // Handshake messages made meanwhile (a key update) go first.
                self.pending.extend_from_slice(records);
                if !self.flush(sock)? {
                    return Ok(taken);
                }
                continue;
            }
            let sent = crate::socket::write(sock, records)?;
            if sent < len {
                // The socket is full: the rest of these records leaves on its writable edge.
                self.pending.extend_from_slice(&records[sent..]);
                return Ok(taken);
            }
        }
        Ok(taken)
    }

    /// Encrypts with `op` into the output scratch once the session may send application data;
    /// returns the bytes written there.
    fn encrypt(
        &mut self,
        mut op: impl FnMut(
            &mut rustls::unbuffered::WriteTraffic<'_, ServerConnectionData>,
            &mut [u8],
        ) -> Result<usize, EncryptError>,
        scratch: &mut Scratch,
    ) -> io::Result<usize> {
        // A few queued handshake messages (tickets, a key update) may come first.
        for _ in 0..8 {
            let UnbufferedStatus { discard, state } =
                self.conn.process_tls_records(&mut self.carried);
            let state = state.map_err(tls_error)?;
            match state {
                ConnectionState::WriteTraffic(mut traffic) => {
                    let result = match op(&mut traffic, &mut scratch.output) {
                        Err(EncryptError::InsufficientSize(InsufficientSizeError {
                            required_size,
                        })) => {
                            scratch.output.resize(required_size, 0);
                            op(&mut traffic, &mut scratch.output)
                        }
                        other => other,
                    };
                    // Messages rustls queued meanwhile (a key update) come first in the output.
                    return result.map_err(|e| tls_error(rustls::Error::General(e.to_string())));
                }
                ConnectionState::EncodeTlsData(encode) => encode_into(&mut self.pending, encode)?,
                ConnectionState::TransmitTlsData(transmit) => transmit.done(),
                _ => return Err(invalid("TLS session cannot send application data")),
            }
            // Carried bytes hold no whole record, so nothing is discarded here; should a
            // record be, its bytes go as the contract says.
            self.carried.drain(..discard.min(self.carried.len()));
        }
        Err(invalid("TLS session cannot send application data"))
    }

    /// Writes the records the socket did not take yet: `true` when none are left.
    ///
    /// # Errors
    ///
    /// The socket's error.
    pub(crate) fn flush<S: Write>(&mut self, sock: &mut S) -> io::Result<bool> {
        flush(sock, &mut self.pending, &mut self.head)
    }

    /// Whether records wait for the socket.
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Sends close_notify (best effort) once the session may send; reads drop what comes
    /// after it.
    pub(crate) fn close_notify<S: Write>(&mut self, sock: &mut S, scratch: &mut Scratch) {
        self.closed = true;
        if let Ok(len) = self.encrypt(|traffic, out| traffic.queue_close_notify(out), scratch) {
            self.pending.extend_from_slice(&scratch.output[..len]);
        }
        let _ = self.flush(sock);
    }
}

/// After our close_notify: reads the socket and drops the bytes until it is empty or ends,
/// a few reads at a time (then `Data` of no bytes, to be called again).
fn discard<S: Read>(sock: &mut S, buf: &mut [u8]) -> io::Result<Input> {
    for _ in 0..16 {
        match sock.read(buf) {
            Ok(0) => return Ok(Input::Eof),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Input::Empty),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Input::Data {
        len: 0,
        drained: false,
    })
}

/// Copies a handshake message rustls made to the end of `pending`.
fn encode_into(
    pending: &mut Vec<u8>,
    mut encode: EncodeTlsData<'_, ServerConnectionData>,
) -> io::Result<()> {
    let at = pending.len();
    let mut room = 4 << 10;
    for _ in 0..2 {
        pending.resize(at + room, 0);
        match encode.encode(&mut pending[at..]) {
            Ok(len) => {
                pending.truncate(at + len);
                return Ok(());
            }
            Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
                room = required_size;
            }
            Err(e) => {
                pending.truncate(at);
                return Err(tls_error(rustls::Error::General(e.to_string())));
            }
        }
    }
    pending.truncate(at);
    Err(invalid("TLS handshake message did not fit"))
}

/// Writes `pending[*head..]` until done (`true`, the buffer freed) or the socket is full.
fn flush<S: Write>(sock: &mut S, pending: &mut Vec<u8>, head: &mut usize) -> io::Result<bool> {
    while *head < pending.len() {
        let sent = crate::socket::write(sock, &pending[*head..])?;
        if sent == 0 {
            return Ok(false);
        }
        *head += sent;
    }
    *pending = Vec::new();
    *head = 0;
    Ok(true)
}

/// A failure of the TLS layer that rustls does not report itself, in rustls' error type so that
/// it ends the connection as any TLS failure does.
fn invalid(what: &'static str) -> io::Error {
    tls_error(rustls::Error::General(what.to_owned()))
}

fn tls_error(err: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, err)
}

/// The TLS read path over bytes in memory, for the fuzz target.
#[doc(hidden)]
pub(crate) mod fuzzing;

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::Arc;

    use rustls::{ClientConfig, RootCertStore};

    use super::fuzzing::Pair;
    use super::*;
    use crate::TlsSettings;

    /// The unit tests' pair: certificates made here, the versions given.
    fn pair(versions: &[&'static rustls::SupportedProtocolVersion], piece: usize) -> Pair {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let settings = TlsSettings::new(cert.pem().into_bytes(), key.serialize_pem().into_bytes());
        let server_config = settings.build().unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(cert.der().clone()).unwrap();
        let client_config =
            ClientConfig::builder_with_provider(server_config.crypto_provider().clone())
                .with_protocol_versions(versions)
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        Pair::new(server_config, Arc::new(client_config), piece)
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn plaintext_arrives_whole_in_small_pieces_and_small_buffers() {
        for versions in [&[&rustls::version::TLS13][..], &[&rustls::version::TLS12]] {
            // One byte per socket read; a 100-byte receive buffer (the overflow path).
            let mut pair = pair(versions, 1);
            pair.assert_idle();
            let sent = data(70_000);
            for part in sent.chunks(10_000) {
                pair.client.writer().write_all(part).unwrap();
                pair.turn(100);
            }
            assert_eq!(pair.got, sent);
            pair.assert_idle();
        }
    }

    #[test]
    fn records_the_socket_refuses_wait_and_leave_in_order() {
        for versions in [&[&rustls::version::TLS13][..], &[&rustls::version::TLS12]] {
            let mut pair = pair(versions, usize::MAX);
            let sent = data(300_000);
            // The socket takes 1,000 bytes per write, then refuses until drained.
            pair.server_writes(&sent, 1000);
            assert_eq!(pair.client_got, sent);
            pair.assert_idle();
        }
    }

    #[test]
    fn a_key_update_is_answered_before_the_next_records() {
        let mut pair = pair(&[&rustls::version::TLS13], usize::MAX);
        pair.client.refresh_traffic_keys().unwrap();
        pair.client.writer().write_all(b"after the update").unwrap();
        pair.turn(64 << 10);
        assert_eq!(pair.got, b"after the update");
        // The server answers with its own key update when it next sends, and the records
        // after it are under the new keys: the client decrypts them only if the update came
        // first.
        let before = pair.sent;
        pair.server_writes(b"reply", usize::MAX);
        assert_eq!(pair.client_got, b"reply");
        assert!(
            pair.sent - before > 5 + 5 + 16 + 1,
            "a key update and a record"
        );
        pair.assert_idle();
    }

    #[test]
    fn close_notify_both_ways() {
        let mut pair = pair(&[&rustls::version::TLS13], usize::MAX);
        pair.client.writer().write_all(b"last words").unwrap();
        pair.client.send_close_notify();
        pair.turn(64 << 10);
        assert_eq!(pair.got, b"last words");
        assert!(pair.server_eof, "close_notify read as the end");
        pair.server.close_notify(&mut pair.wire, &mut pair.scratch);
        pair.turn(64 << 10);
        let mut buf = [0; 8];
        assert_eq!(
            pair.client.reader().read(&mut buf).unwrap(),
            0,
            "clean close"
        );
    }

    #[test]
    fn after_our_close_notify_the_peer_is_read_and_dropped() {
        let mut pair = pair(&[&rustls::version::TLS13], usize::MAX);
        pair.server.close_notify(&mut pair.wire, &mut pair.scratch);
        pair.turn(64 << 10);
        // A key update the session could not answer any more, data, then a forged record:
        // read off the socket, dropped, no error and no plaintext.
        pair.client.refresh_traffic_keys().unwrap();
        pair.client.writer().write_all(b"too late").unwrap();
        pair.turn(64 << 10);
        let mut record = vec![0x17, 0x03, 0x03, 0x00, 0x20];
        record.extend([0x5a; 32]);
        pair.wire.to_server.extend_from_slice(&record);
        let sent = pair.sent;
        pair.turn(64 << 10);
        assert!(pair.got.is_empty() && pair.wire.to_server.is_empty());
        assert_eq!(pair.sent, sent, "no alert after our close_notify");
    }

    #[test]
    fn a_forged_record_fails_with_an_alert() {
        let mut pair = pair(&[&rustls::version::TLS13], usize::MAX);
        let mut record = vec![0x17, 0x03, 0x03, 0x00, 0x20];
        record.extend([0x5a; 32]);
        pair.wire.to_server.extend_from_slice(&record);
        let mut buf = vec![0; 1024];
        let err = pair
            .server
            .read(&mut pair.wire, &mut buf, &mut pair.scratch)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(
            crate::socket::tls_failure(&err),
            Some(&rustls::Error::DecryptError)
        );
        // The alert went out.
        let mut from_server = &pair.wire.to_client[..];
        pair.client.read_tls(&mut from_server).unwrap();
        assert_eq!(
            pair.client.process_new_packets().unwrap_err(),
            rustls::Error::AlertReceived(rustls::AlertDescription::BadRecordMac)
        );
    }
}
