//! `sockeye serve`: an echo server with a demo page and a publish/subscribe endpoint
//! (`/pubsub`, [`crate::pubsub`]), over TLS with `--tls-cert` (certificates
//! chosen by SNI, client certificates, reload when the files change).

use std::net::SocketAddr;
use std::sync::Arc;
#[cfg(feature = "tls")]
use std::sync::mpsc;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use sockeye::demo::DEMO_PAGE;
use sockeye_deflate::DeflateConfig;
use sockeye_nats::{Nats, NatsConfig};
use sockeye_proto::handshake::Head;
use sockeye_proto::{Message, Request};
use sockeye_server::topics::Backplane;
use sockeye_server::{
    Accept, CloseReason, Handler, HttpResponse, Outbox, Reject, Server, ServerConfig,
};

use crate::size::parse_size;

/// Options of `sockeye serve`.
#[derive(Debug, clap::Args)]
#[command(after_help = crate::pubsub::PROTOCOL)]
pub(crate) struct ServeArgs {
    /// Address to listen on (repeat for several, e.g. 127.0.0.1:9001 and [::1]:9001).
    #[arg(long, default_value = "127.0.0.1:9001")]
    addr: Vec<SocketAddr>,
    /// Worker threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Share the port with other processes that set SO_REUSEPORT (zero-downtime restarts);
    /// without it, an address in use is an error.
    #[arg(long)]
    reuse_port: bool,
    /// Largest message accepted (bytes; suffixes KiB, MiB).
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    max_message: usize,
    /// Largest frame accepted (bytes; suffixes KiB, MiB).
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    max_frame: usize,
    /// Most fragments under 64 bytes one message may arrive in (larger ones are bounded by
    /// --max-message).
    #[arg(long, default_value_t = 4096)]
    max_fragments: u32,
    /// Largest upgrade request head (bytes).
    #[arg(long, default_value = "8KiB", value_parser = parse_size)]
    max_head: usize,
    /// Connections per worker; accepting pauses at the limit.
    #[arg(long, default_value_t = 100_000)]
    max_connections: usize,
    /// Seconds a client has to finish its upgrade request.
    #[arg(long, default_value_t = 10)]
    handshake_timeout: u64,
    /// Seconds without traffic before closing (a ping is sent at half); 0 disables.
    #[arg(long, default_value_t = 120)]
    idle_timeout: u64,
    /// Seconds the graceful shutdown (SIGTERM or SIGINT) waits for clients to answer the 1001
    /// close before it drops them; a second signal exits at once.
    #[arg(long, default_value_t = 5)]
    shutdown_timeout: u64,
    /// Seconds a started message may take to arrive whole (then closed with 1008); 0 disables.
    #[arg(long, default_value_t = 60)]
    message_timeout: u64,
    /// Bytes queued per connection before sends fail (backpressure limit).
    #[arg(long, default_value = "32MiB", value_parser = parse_size)]
    backpressure_limit: usize,
    /// Negotiate permessage-deflate with clients that offer it (off by default: it costs CPU
    /// per message, and a decompressor of about 47 KiB per connection that sends compressed).
    #[arg(long)]
    deflate: bool,
    /// Compression level, 0 (store) to 9 (smallest).
    #[arg(long, default_value_t = 6, requires = "deflate")]
    deflate_level: u32,
    /// Messages shorter than this many bytes are sent uncompressed.
    #[arg(long, default_value = "64", value_parser = parse_size, requires = "deflate")]
    deflate_threshold: usize,
    /// Window bits of the server's compressor (server_max_window_bits), 9 to 15.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u8).range(9..=15), requires = "deflate")]
    deflate_window_bits: u8,
    /// Window bits asked of clients that allow it (client_max_window_bits), 9 to 15.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u8).range(9..=15), requires = "deflate")]
    deflate_client_window_bits: u8,
    /// Reset the server's compressor after every message (server_no_context_takeover): no
    /// send history per connection.
    #[arg(long, requires = "deflate")]
    deflate_no_context_takeover: bool,
    /// Bytes of its recent messages each connection keeps for context takeover (up to the
    /// window): the worker's one compressor is primed with them for each message sent. 0
    /// compresses each message from a fresh context.
    #[arg(long, default_value = "4KiB", value_parser = parse_size, requires = "deflate")]
    deflate_history: usize,
    /// Compressors each worker lends to the connections that send compressed messages most
    /// often, so that they keep their context instead of priming the shared one with their
    /// history (about 270 KiB each at 15 bits).
    #[arg(long, default_value_t = 4, requires = "deflate")]
    deflate_warm_streams: u16,
    /// zlib's memLevel for the server's compressors (1-9): the symbol buffer, 2^(N+6) symbols a
    /// block. Higher levels cost more per message for little gain on messages under 64 KiB.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(1..=9), requires = "deflate")]
    deflate_mem_level: u8,
    /// Ask clients to reset their compressor after every message (client_no_context_takeover).
    #[arg(long, requires = "deflate")]
    deflate_client_no_context_takeover: bool,
    /// Print the engine's counters every SECS seconds.
    #[arg(long, value_name = "SECS")]
    stats: Option<u64>,
    /// Log each connection's open and close.
    #[arg(short, long)]
    verbose: bool,
    /// Join other nodes through a NATS broker (nats://HOST:PORT): publishes on /pubsub reach
    /// the subscribers of every node joined to it. The node starts even while the broker is
    /// down, and reconnects with backoff; delivery across nodes is at most once.
    #[arg(long, value_name = "URL")]
    nats: Option<String>,
    /// Put PREFIX before every topic on the broker (topic room.1 is subject PREFIX.room.1), so
    /// that several applications share a broker.
    #[arg(
        long,
        value_name = "PREFIX",
        default_value = "sockeye",
        requires = "nats"
    )]
    nats_prefix: String,
    #[cfg(feature = "tls")]
    #[command(flatten)]
    tls: tls::TlsArgs,
}

/// A connection's state: when it opened, and whether it speaks the `/pubsub` protocol.
#[derive(Debug, Clone, Copy)]
struct Conn {
    /// Milliseconds on the handler's clock (wrapping), kept in 4 bytes so that the server's own
    /// state does not dominate the engine's per-connection footprint.
    opened: u32,
    pubsub: bool,
}

/// The handler: echoes every message back, except on `/pubsub`; serves the demo page on
/// `GET /` and the engine's counters as JSON on `GET /stats`.
#[derive(Debug, Clone)]
struct Echo {
    verbose: bool,
    /// The clock of the connections' opening times, kept in 4 bytes each so that the echo
    /// server's own state does not dominate the engine's per-connection footprint.
    started: Instant,
}

impl Echo {
    fn millis(&self) -> u32 {
        self.started.elapsed().as_millis() as u32
    }
}

impl Handler for Echo {
    type Conn = Conn;

    fn on_upgrade(&mut self, req: &Request<'_>, accept: &mut Accept<'_>) -> Result<Conn, Reject> {
        let path = req.path().split('?').next().unwrap_or_default();
        let pubsub = path == "/pubsub";
        if !pubsub {
            accept.select_protocol(&["echo"]);
        }
        if self.verbose {
            eprintln!("open {} from origin {:?}", req.path(), req.origin());
        }
        Ok(Conn {
            opened: self.millis(),
            pubsub,
        })
    }

    #[inline]
    fn on_message(&mut self, conn: &mut Conn, msg: Message<'_>, out: &mut Outbox<'_>) {
        if conn.pubsub {
            crate::pubsub::on_message(msg, out);
        } else {
            let _ = out.send(msg);
        }
    }

    fn on_close(&mut self, conn: Conn, why: CloseReason<'_>) {
        if self.verbose {
            let open = Duration::from_millis(self.millis().wrapping_sub(conn.opened).into());
            eprintln!("close after {open:.1?}: {why:?}");
        }
    }

    fn on_http(&mut self, head: &Head<'_>, handle: &sockeye_server::Handle) -> HttpResponse {
        match (head.method, head.path) {
            ("GET", "/") | ("GET", "/index.html") => {
                HttpResponse::new(200, "text/html; charset=utf-8", DEMO_PAGE.as_bytes())
            }
            ("GET", "/stats") => HttpResponse::new(
                200,
                "application/json",
                stats_json(&handle.stats()).into_bytes(),
            ),
            _ => HttpResponse::not_found(),
        }
    }
}

/// The engine's counters as one JSON object (`GET /stats`).
fn stats_json(stats: &sockeye_server::Stats) -> String {
    let fields: Vec<String> = stats
        .fields()
        .into_iter()
        .map(|(name, value)| format!("\"{name}\":{value}"))
        .collect();
    format!("{{{}}}\n", fields.join(","))
}

pub(crate) fn run(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = ServerConfig::new(args.addr[0]);
    config.addrs = args.addr.clone();
    config.workers = args.threads;
    config.reuse_port = args.reuse_port;
    config.protocol.max_message_size = args.max_message;
    config.protocol.max_frame_size = args.max_frame as u64;
    config.protocol.max_fragments = args.max_fragments;
    config.handshake.max_head_len = args.max_head;
    config.recv_buffer = config.recv_buffer.max(args.max_head + 4096);
    config.max_connections = args.max_connections;
    config.handshake_timeout = Duration::from_secs(args.handshake_timeout);
    config.idle_timeout = (args.idle_timeout > 0).then(|| Duration::from_secs(args.idle_timeout));
    config.shutdown_timeout = Duration::from_secs(args.shutdown_timeout);
    config.message_timeout =
        (args.message_timeout > 0).then(|| Duration::from_secs(args.message_timeout));
    config.backpressure.limit = args.backpressure_limit;
    if args.deflate {
        let mut deflate = DeflateConfig::default();
        deflate.level = args.deflate_level.min(9);
        deflate.threshold = args.deflate_threshold;
        deflate.server_max_window_bits = args.deflate_window_bits;
        deflate.client_max_window_bits = args.deflate_client_window_bits;
        deflate.server_no_context_takeover = args.deflate_no_context_takeover;
        deflate.client_no_context_takeover = args.deflate_client_no_context_takeover;
        deflate.send_history = u32::try_from(args.deflate_history).unwrap_or(u32::MAX);
        deflate.warm_streams = args.deflate_warm_streams;
        deflate.mem_level = args.deflate_mem_level;
        config.deflate = Some(deflate);
    }
    #[cfg(feature = "tls")]
    let watch = tls::configure(&args.tls, &mut config)?;
    #[cfg(feature = "tls")]
    let secure = config.tls.is_some();
    #[cfg(not(feature = "tls"))]
    let secure = false;
    let workers = config.worker_count();
    let nats = match &args.nats {
        Some(url) => {
            let config = NatsConfig::new(url.clone()).prefix(args.nats_prefix.clone());
            Some(Arc::new(Nats::new(config)?))
        }
        None => None,
    };
    let mut server = Server::bind(
        config,
        Echo {
            verbose: args.verbose,
            started: Instant::now(),
        },
    )?;
    if let Some(nats) = &nats {
        server = server.with_backplane(Arc::clone(nats) as Arc<dyn Backplane>);
    }
    let addrs: Vec<String> = server.local_addrs().iter().map(|a| a.to_string()).collect();
    let (page, socket) = if secure {
        ("https", "wss")
    } else {
        ("http", "ws")
    };
    eprintln!(
        "sockeye serve: listening on {} with {workers} worker(s){}{}; open {page}://{}/ in a \
         browser, or connect to {socket}://{}/echo",
        addrs.join(", "),
        if args.deflate {
            ", permessage-deflate on"
        } else {
            ""
        },
        if secure { ", TLS on" } else { "" },
        addrs[0],
        addrs[0],
    );
    if let Some(url) = &args.nats {
        eprintln!(
            "sockeye serve: topics of /pubsub travel over NATS at {url} (subjects {}.TOPIC)",
            args.nats_prefix
        );
    }
    let handle = server.handle();
    // Signals are taken before the workers start, so none of them is lost.
    let signals = Signals::new([SIGTERM, SIGINT])?;
    let running = server.spawn()?;
    on_signals(signals, handle.clone());
    if let Some(secs) = args.stats.filter(|s| *s > 0) {
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(secs));
                eprintln!("stats: {:?}", handle.stats());
                if let Some(nats) = &nats {
                    eprintln!("nats: {:?}", nats.stats());
                }
            }
        });
    }
    #[cfg(feature = "tls")]
    if let Some(watch) = watch {
        // This thread watches the certificate files while the server runs.
        let (done, stopped) = mpsc::channel::<()>();
        let joiner = std::thread::spawn(move || {
            let result = running.join();
            drop(done);
            result
        });
        watch.run(&stopped);
        let result = joiner.join().map_err(|_| "the server's thread panicked")?;
        result?;
        eprintln!("sockeye serve: stopped");
        return Ok(());
    }
    running.join()?;
    eprintln!("sockeye serve: stopped");
    Ok(())
}

/// The first SIGTERM or SIGINT starts the graceful shutdown (every connection closed with 1001,
/// their answers awaited up to `--shutdown-timeout`, then the process exits 0); a second one
/// exits at once, with 128 + the signal's number.
fn on_signals(mut signals: Signals, handle: sockeye_server::Handle) {
    std::thread::spawn(move || {
        let mut seen = 0;
        for signal in signals.forever() {
            seen += 1;
            if seen == 1 {
                eprintln!("sockeye serve: signal {signal}: closing every connection");
                handle.shutdown();
            } else {
                eprintln!("sockeye serve: signal {signal} again: exiting now");
                std::process::exit(128 + signal);
            }
        }
    });
}

/// TLS for `sockeye serve`: the options, the settings they make, and the watch on the files.
#[cfg(feature = "tls")]
mod tls {
    use std::path::{Path, PathBuf};
    use std::sync::mpsc::{Receiver, RecvTimeoutError};
    use std::time::{Duration, SystemTime};

    use sockeye_server::{ClientAuth, ServerConfig, TlsConfig, TlsError, TlsSettings};

    /// TLS options of `sockeye serve`.
    #[derive(Debug, clap::Args)]
    pub(super) struct TlsArgs {
        /// Serve wss:// (and the demo page over https://) with the certificate chain in FILE
        /// (PEM, the server's certificate first).
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The private key of --tls-cert (PEM: PKCS#8, RSA or EC).
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Another certificate, served to clients that ask for NAME through SNI (repeatable;
        /// `*.example.com` matches one label). Other names get --tls-cert.
        #[arg(
            long,
            value_name = "NAME=CERT_FILE,KEY_FILE",
            value_parser = parse_sni,
            requires = "tls_cert"
        )]
        tls_sni: Vec<Sni>,
        /// Verify client certificates against the CA certificates in FILE (PEM).
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_client_ca: Option<PathBuf>,
        /// Whether clients must present a certificate (with --tls-client-ca).
        #[arg(
            long,
            value_enum,
            default_value_t = ClientAuthArg::Required,
            requires = "tls_client_ca"
        )]
        tls_client_auth: ClientAuthArg,
        /// Check the TLS files' modification times every SECS seconds and reload the
        /// certificates when one changed (new connections get them; on error the current ones
        /// stay); 0 disables.
        #[arg(long, default_value_t = 10, value_name = "SECS", requires = "tls_cert")]
        tls_reload_secs: u64,
    }

    /// `--tls-client-auth`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
    enum ClientAuthArg {
        /// Clients must present a certificate signed by the CA.
        Required,
        /// Clients may present one; one that does must be signed by the CA.
        Optional,
    }

    /// One `--tls-sni NAME=CERT_FILE,KEY_FILE`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(super) struct Sni {
        name: String,
        cert: PathBuf,
        key: PathBuf,
    }

    fn parse_sni(text: &str) -> Result<Sni, String> {
        let usage = "expected NAME=CERT_FILE,KEY_FILE";
        let (name, files) = text
            .split_once('=')
            .ok_or_else(|| format!("`{text}`: {usage}"))?;
        let (cert, key) = files
            .split_once(',')
            .ok_or_else(|| format!("`{text}`: {usage}"))?;
        if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '/') {
            return Err(format!("`{name}` is not a server name ({usage})"));
        }
        if cert.is_empty() || key.is_empty() {
            return Err(format!("`{text}`: {usage}"));
        }
        Ok(Sni {
            name: name.to_owned(),
            cert: cert.into(),
            key: key.into(),
        })
    }

    /// Sets `config.tls` from the options; returns the watch on the files when reloading is
    /// on.
    ///
    /// # Errors
    ///
    /// A file that cannot be read or holds no usable certificate or key (named in the message).
    pub(super) fn configure(
        args: &TlsArgs,
        config: &mut ServerConfig,
    ) -> Result<Option<Watch>, TlsError> {
        let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
            return Ok(None);
        };
        let mut settings = TlsSettings::new(cert.clone(), key.clone());
        for sni in &args.tls_sni {
            settings = settings.with_sni(&sni.name, sni.cert.clone(), sni.key.clone());
        }
        if let Some(ca) = &args.tls_client_ca {
            let auth = match args.tls_client_auth {
                ClientAuthArg::Required => ClientAuth::Required,
                ClientAuthArg::Optional => ClientAuth::Optional,
            };
            settings = settings.with_client_auth(ca.clone(), auth);
        }
        let files: Vec<PathBuf> = settings.files().map(Path::to_path_buf).collect();
        // Seen before the files are read: a change made while they are read shows next time.
        let seen = files.iter().map(|path| Seen::of(path)).collect();
        let tls = TlsConfig::from_settings(&settings)?;
        config.tls = Some(tls.clone());
        Ok((args.tls_reload_secs > 0).then(|| Watch {
            tls,
            settings,
            files,
            seen,
            every: Duration::from_secs(args.tls_reload_secs),
        }))
    }

    /// What a file looked like at a check (`None`: it could not be read).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Seen(Option<(SystemTime, u64)>);

    impl Seen {
        fn of(path: &Path) -> Seen {
            let meta = std::fs::metadata(path).ok();
            Seen(meta.and_then(|m| Some((m.modified().ok()?, m.len()))))
        }
    }

    /// Reloads the certificates when one of their files changes.
    #[derive(Debug)]
    pub(super) struct Watch {
        tls: TlsConfig,
        settings: TlsSettings,
        files: Vec<PathBuf>,
        seen: Vec<Seen>,
        every: Duration,
    }

    impl Watch {
        /// Checks the files every period until `stopped` says the server has stopped.
        pub(super) fn run(mut self, stopped: &Receiver<()>) {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(self.every) {
                self.check();
            }
        }

        fn check(&mut self) {
            let now: Vec<Seen> = self.files.iter().map(|path| Seen::of(path)).collect();
            if now == self.seen {
                return;
            }
            self.seen = now;
            match self.tls.reload_settings(&self.settings) {
                Ok(()) => {
                    eprintln!("sockeye serve: TLS certificates reloaded; new connections use them")
                }
                Err(e) => eprintln!(
                    "sockeye serve: TLS reload failed, the current certificates stay in use: {e}"
                ),
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn sni_options() {
            let sni = parse_sni("api.example.com=api.pem,api.key").expect("valid");
            assert_eq!(sni.name, "api.example.com");
            assert_eq!(sni.cert, PathBuf::from("api.pem"));
            assert_eq!(sni.key, PathBuf::from("api.key"));
            for bad in ["api.pem", "x=api.pem", "=a,b", "x=,b", "x=a,", "a b=c,d"] {
                assert!(parse_sni(bad).is_err(), "{bad}");
            }
        }
    }
}
