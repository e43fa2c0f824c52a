//! What a connection asks for: subprotocols, headers, compression, limits, timeouts and TLS.

use std::time::Duration;

use sockeye_deflate::DeflateConfig;

use crate::tls::TlsOptions;

/// How to open a connection. Every field has a default; the methods set one and return the
/// options, so that they chain:
///
/// ```
/// use std::time::Duration;
/// use sockeye_client::{DeflateConfig, Options};
///
/// let options = Options::default()
///     .protocol("chat.v2")
///     .header("Authorization", "Bearer 6f1c")
///     .deflate(DeflateConfig::default())
///     .handshake_timeout(Duration::from_secs(5));
/// assert_eq!(options.protocols, ["chat.v2"]);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct Options {
    /// Subprotocols offered, in order of preference (`Sec-WebSocket-Protocol`).
    pub protocols: Vec<String>,
    /// Extra request headers (authentication tokens, cookies).
    pub headers: Vec<(String, String)>,
    /// The `Origin` header, for servers that check it.
    pub origin: Option<String>,
    /// Offer permessage-deflate with these parameters (none by default).
    pub deflate: Option<DeflateConfig>,
    /// The longest message accepted from the server, whole (64 MiB by default); a longer one
    /// fails the connection with close code 1009.
    pub max_message_size: usize,
    /// How long opening the TCP connection may take, for each address tried (10 s).
    pub connect_timeout: Duration,
    /// How long the TLS and WebSocket handshakes may take together (10 s).
    pub handshake_timeout: Duration,
    /// How long the closing handshake may take: the server's close frame after ours, then its
    /// end of the connection (5 s).
    pub close_timeout: Duration,
    /// TLS for `wss://` URLs.
    pub tls: TlsOptions,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            protocols: Vec::new(),
            headers: Vec::new(),
            origin: None,
            deflate: None,
            max_message_size: 64 << 20,
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            tls: TlsOptions::default(),
        }
    }
}

impl Options {
    /// Offers the subprotocol `name` (after those offered before).
    #[must_use]
    pub fn protocol(mut self, name: impl Into<String>) -> Self {
        self.protocols.push(name.into());
        self
    }

    /// Adds the request header `name: value`.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the `Origin` header.
    #[must_use]
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// Offers permessage-deflate with `config` (its `client_*` fields are our side's).
    #[must_use]
    pub fn deflate(mut self, config: DeflateConfig) -> Self {
        self.deflate = Some(config);
        self
    }

    /// Sets the longest message accepted.
    #[must_use]
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Sets the connect timeout.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the handshake timeout.
    #[must_use]
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets the closing handshake's timeout.
    #[must_use]
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Sets the TLS options.
    #[must_use]
    pub fn tls(mut self, tls: TlsOptions) -> Self {
        self.tls = tls;
        self
    }
}
