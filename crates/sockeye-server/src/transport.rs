//! A connection's byte stream: the TCP socket itself, or TLS over it (the reading and writing
//! rules are [`crate::socket`]'s).

use std::io;
use std::net::{Shutdown, SocketAddr};

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

/// What the engine needs of a connection's byte stream: the worker's is [`Stream`]; tests
/// script their own. The rules are [`crate::socket`]'s: a short read or write means the socket
/// is empty or full, and its next edge will say when that changes.
pub(crate) trait Transport {
    /// Reads plaintext into `buf`.
    fn read(&mut self, buf: &mut [u8], scratch: &mut Scratch) -> io::Result<Input>;
    /// Writes `buf`; returns the bytes taken, fewer only when the socket is full.
    fn write(&mut self, buf: &[u8], scratch: &mut Scratch) -> io::Result<usize>;
    /// Writes `bufs` in order, as one write would take them.
    fn write_vectored(
        &mut self,
        bufs: &[io::IoSlice<'_>],
        scratch: &mut Scratch,
    ) -> io::Result<usize>;
    /// Writes bytes the transport kept from earlier writes (TLS records).
    fn flush_pending(&mut self) -> io::Result<()>;
    /// Whether bytes kept by the transport wait for the socket.
    fn has_pending(&self) -> bool;
    /// Ends the session politely (TLS `close_notify`) before the socket closes.
    fn close_notify(&mut self, scratch: &mut Scratch);
    /// Ends our sending side (after [`close_notify`](Self::close_notify)).
    fn shutdown_write(&mut self, scratch: &mut Scratch);
    /// Who the connection is with: the peer's and our own socket address.
    fn peer_info(&self) -> Peer<'_>;
}

/// What a connection knows of its peer, for [`Accept`](crate::Accept).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Peer<'a> {
    /// The client: the socket's peer, or who a trusted proxy names.
    pub(crate) addr: Option<SocketAddr>,
    /// The socket's peer.
    pub(crate) socket: Option<SocketAddr>,
    pub(crate) local: Option<SocketAddr>,
    #[cfg(feature = "tls")]
    pub(crate) alpn: Option<&'a [u8]>,
    #[cfg(feature = "tls")]
    pub(crate) certificates: Option<&'a [rustls::pki_types::CertificateDer<'static>]>,
    #[cfg(feature = "tls")]
    pub(crate) server_name: Option<&'a str>,
    #[cfg(not(feature = "tls"))]
    pub(crate) _tls: std::marker::PhantomData<&'a ()>,
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

    /// The socket, to register with the worker's `Poll`.
    pub(crate) fn tcp_mut(&mut self) -> &mut TcpStream {
        &mut self.tcp
    }
}

impl Transport for Stream {
    /// Reads plaintext into `buf`.
    #[cfg_attr(not(feature = "tls"), allow(unused_variables))]
    fn read(&mut self, buf: &mut [u8], scratch: &mut Scratch) -> io::Result<Input> {
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
    fn write(&mut self, buf: &[u8], scratch: &mut Scratch) -> io::Result<usize> {
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
    fn write_vectored(
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
    fn flush_pending(&mut self) -> io::Result<()> {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_deref_mut() {
            tls.flush(&mut self.tcp)?;
        }
        Ok(())
    }

    /// Whether encrypted bytes wait for the socket.
    fn has_pending(&self) -> bool {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_deref() {
            return tls.has_pending();
        }
        false
    }

    /// Sends TLS `close_notify` (best effort) before the socket closes; nothing over plain TCP.
    #[cfg_attr(not(feature = "tls"), allow(unused_variables))]
    fn close_notify(&mut self, scratch: &mut Scratch) {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_deref_mut() {
            tls.close_notify(&mut self.tcp, scratch);
        }
    }

    /// Ends our sending side: TLS `close_notify` (best effort), then TCP FIN.
    fn shutdown_write(&mut self, scratch: &mut Scratch) {
        self.close_notify(scratch);
        let _ = self.tcp.shutdown(Shutdown::Write);
    }

    fn peer_info(&self) -> Peer<'_> {
        let socket = self.tcp.peer_addr().ok();
        #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
        let mut peer = Peer {
            addr: socket,
            socket,
            local: self.tcp.local_addr().ok(),
            ..Peer::default()
        };
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_deref() {
            peer.alpn = tls.alpn();
            peer.certificates = tls.peer_certificates();
            peer.server_name = tls.server_name();
        }
        peer
    }
}
