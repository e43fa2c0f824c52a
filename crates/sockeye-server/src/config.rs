//! Engine configuration: addresses, workers, limits, timeouts and backpressure.

use std::net::SocketAddr;
use std::time::Duration;

use sockeye_deflate::DeflateConfig;
use sockeye_proto::{CloseCode, Config as ProtocolConfig, Limits};

/// What a send does when the connection's queue is over [`Backpressure::limit`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackpressurePolicy {
    /// The send fails with [`SendError::Backpressure`](crate::SendError::Backpressure); nothing
    /// is queued. The default: the application decides.
    Fail,
    /// The message is dropped silently (counted in the stats): for lossy feeds.
    Drop,
    /// The connection is closed with this code (1008 policy or 1013 try again later).
    Close(CloseCode),
}

/// Per-connection send-queue thresholds.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backpressure {
    /// Above this many queued bytes, reading from the connection pauses. Default 1 MiB.
    pub high_water: usize,
    /// When the queue falls to this many bytes, reading resumes and `on_writable` runs.
    /// Default 128 KiB.
    pub low_water: usize,
    /// Sends that would queue beyond this many bytes meet the policy. Default 32 MiB. Bounds the
    /// memory a client that stops reading can make the server hold.
    pub limit: usize,
    /// What happens over the limit. Default [`BackpressurePolicy::Fail`].
    pub policy: BackpressurePolicy,
}

impl Default for Backpressure {
    fn default() -> Self {
        Backpressure {
            high_water: 1 << 20,
            low_water: 128 << 10,
            limit: 32 << 20,
            policy: BackpressurePolicy::Fail,
        }
    }
}

/// The configuration of a [`Server`](crate::Server).
///
/// Every limit has a default that suits a public-facing server; each bounds one resource a
/// hostile client could otherwise grow.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Addresses to listen on (IPv4 and/or IPv6). Each worker binds each one with
    /// `SO_REUSEPORT`, so the kernel spreads connections across workers.
    pub addrs: Vec<SocketAddr>,
    /// Worker threads; 0 means one per available core (the default).
    pub workers: usize,
    /// The listen backlog. Default 1024.
    pub backlog: i32,
    /// Share the listening addresses with other processes that also set `SO_REUSEPORT` (a
    /// zero-downtime restart: the new server starts while the old one drains). Default `false`:
    /// binding an address another socket listens on fails with
    /// [`SetupError::Bind`](crate::SetupError::Bind). This server's own workers always share
    /// their port.
    pub reuse_port: bool,
    /// Every connection starts with a PROXY protocol header (version 1 or 2) from the load
    /// balancer in front, which names the client: [`Accept::peer_addr`](crate::Accept::peer_addr)
    /// is the client's address. A connection without a valid header is refused (400). Default
    /// `false`; only for plain TCP (TLS terminated here would read the header as a record).
    pub proxy_protocol: bool,
    /// HTTP proxies whose `Forwarded` / `X-Forwarded-For` headers are believed: when the socket's
    /// peer is one of them, [`Accept::peer_addr`](crate::Accept::peer_addr) is the right-most
    /// address of those headers that is not itself one of them. Default empty (the headers are
    /// ignored: any client can write them).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Limits on the upgrade request (head size 8 KiB, 64 headers by default).
    pub handshake: Limits,
    /// Limits of the WebSocket protocol: frame and message size (16 MiB), fragments (4096),
    /// close handshake timeout (5 s).
    pub protocol: ProtocolConfig,
    /// A client must finish its upgrade request within this time (slow-loris). Default 10 s.
    pub handshake_timeout: Duration,
    /// With no bytes from the peer for half this time, the server pings; with none for the whole
    /// time, it closes the connection. Default 120 s; `None` disables.
    pub idle_timeout: Option<Duration>,
    /// Connections are closed (1001) after this long, whatever their traffic. Default `None`.
    pub max_lifetime: Option<Duration>,
    /// A message (or frame) that started arriving must be whole within this time, or the
    /// connection is closed with 1008 ([`Timeout::Message`](crate::Timeout::Message)). Default
    /// 60 s; `None` disables. Bounds how long a peer that announces a large message and
    /// trickles it in a byte at a time (each byte resets the idle timer) holds its buffer.
    pub message_timeout: Option<Duration>,
    /// Connections per worker; at the limit, accepting pauses (the kernel backlog holds new
    /// clients) until one closes. Default 100 000; at most 2^20 (1 048 576).
    pub max_connections: usize,
    /// Send-queue thresholds and policy.
    pub backpressure: Backpressure,
    /// Size of each worker's shared receive buffer. Default 256 KiB.
    pub recv_buffer: usize,
    /// Reads per connection per loop turn before others get their turn. Default 4.
    pub read_budget: usize,
    /// Commands (sends, closes, closures, broadcasts from a [`Handle`](crate::Handle)) each
    /// worker's channel holds; a full channel refuses more with
    /// [`HandleError::Full`](crate::HandleError::Full). Default 65 536. Bounds the memory a
    /// fast sender can pile up in front of a worker that is behind.
    pub command_queue: usize,
    /// How long graceful shutdown waits for close handshakes. Default 5 s.
    pub shutdown_timeout: Duration,
    /// permessage-deflate (RFC 7692), negotiated with clients that offer it. Default `None`
    /// (off): compression costs CPU per message and, with the client's context takeover, a
    /// decompressor per connection that receives compressed messages (about 47 KiB with
    /// zlib-rs, allocated on first use), while sockeye's users mostly send small, latency-bound
    /// messages. Browsers always offer it, so enable it where bandwidth matters more than CPU and
    /// memory. Each worker compresses with one shared compressor, primed with a connection's
    /// last [`send_history`](DeflateConfig::send_history) bytes for context takeover (4 KiB by
    /// default), or from a fresh context with `server_no_context_takeover`; it lends
    /// [`warm_streams`](DeflateConfig::warm_streams) compressors (4 by default) to the
    /// connections that send compressed messages most often.
    pub deflate: Option<DeflateConfig>,
    /// TLS termination (wss://) on every listening address. Default `None` (plain ws://).
    #[cfg(feature = "tls")]
    pub tls: Option<crate::TlsConfig>,
}

impl ServerConfig {
    /// The defaults, listening on `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        ServerConfig {
            addrs: vec![addr],
            workers: 0,
            backlog: 1024,
            reuse_port: false,
            proxy_protocol: false,
            trusted_proxies: Vec::new(),
            handshake: Limits::default(),
            protocol: ProtocolConfig::default(),
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(120)),
            max_lifetime: None,
            message_timeout: Some(Duration::from_secs(60)),
            max_connections: 100_000,
            backpressure: Backpressure::default(),
            recv_buffer: 256 << 10,
            read_budget: 4,
            command_queue: 1 << 16,
            shutdown_timeout: Duration::from_secs(5),
            deflate: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// The number of workers this configuration starts.
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }
}
