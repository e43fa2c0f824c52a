//! `sockeye serve`: an echo server with a demo page.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sockeye::demo::DEMO_PAGE;
use sockeye_deflate::DeflateConfig;
use sockeye_proto::handshake::Head;
use sockeye_proto::{Message, Request};
use sockeye_server::{
    Accept, CloseReason, Handler, HttpResponse, Outbox, Reject, Server, ServerConfig,
};

use crate::size::parse_size;

/// Options of `sockeye serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (repeat for several, e.g. 127.0.0.1:9001 and [::1]:9001).
    #[arg(long, default_value = "127.0.0.1:9001")]
    addr: Vec<SocketAddr>,
    /// Worker threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Largest message accepted (bytes; suffixes KiB, MiB).
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    max_message: usize,
    /// Largest frame accepted (bytes; suffixes KiB, MiB).
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    max_frame: usize,
    /// Most fragments one message may arrive in.
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
    /// Bytes queued per connection before sends fail (backpressure limit).
    #[arg(long, default_value = "32MiB", value_parser = parse_size)]
    backpressure_limit: usize,
    /// Negotiate permessage-deflate with clients that offer it (off by default: it costs CPU
    /// per message and up to ~315 KiB per connection).
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
    /// Reset the server's compressor after every message (server_no_context_takeover): one
    /// compressor per worker instead of one per connection.
    #[arg(long, requires = "deflate")]
    deflate_no_context_takeover: bool,
    /// Ask clients to reset their compressor after every message (client_no_context_takeover).
    #[arg(long, requires = "deflate")]
    deflate_client_no_context_takeover: bool,
    /// Print the engine's counters every SECS seconds.
    #[arg(long, value_name = "SECS")]
    stats: Option<u64>,
    /// Log each connection's open and close.
    #[arg(short, long)]
    verbose: bool,
}

/// The echo handler: sends every message back; serves the demo page on `GET /`.
#[derive(Debug, Clone)]
struct Echo {
    verbose: bool,
}

impl Handler for Echo {
    type Conn = Instant;

    fn on_upgrade(
        &mut self,
        req: &Request<'_>,
        accept: &mut Accept<'_>,
    ) -> Result<Instant, Reject> {
        accept.select_protocol(&["echo"]);
        if self.verbose {
            eprintln!("open {} from origin {:?}", req.path(), req.origin());
        }
        Ok(Instant::now())
    }

    fn on_message(&mut self, _conn: &mut Instant, msg: Message<'_>, out: &mut Outbox<'_>) {
        let _ = out.send(msg);
    }

    fn on_close(&mut self, opened: Instant, why: CloseReason<'_>) {
        if self.verbose {
            eprintln!("close after {:.1?}: {why:?}", opened.elapsed());
        }
    }

    fn on_http(&mut self, head: &Head<'_>) -> HttpResponse {
        match (head.method, head.path) {
            ("GET", "/") | ("GET", "/index.html") => {
                HttpResponse::new(200, "text/html; charset=utf-8", DEMO_PAGE.as_bytes())
            }
            _ => HttpResponse::not_found(),
        }
    }
}

pub(crate) fn run(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = ServerConfig::new(args.addr[0]);
    config.addrs = args.addr.clone();
    config.workers = args.threads;
    config.protocol.max_message_size = args.max_message;
    config.protocol.max_frame_size = args.max_frame as u64;
    config.protocol.max_fragments = args.max_fragments;
    config.handshake.max_head_len = args.max_head;
    config.recv_buffer = config.recv_buffer.max(args.max_head + 4096);
    config.max_connections = args.max_connections;
    config.handshake_timeout = Duration::from_secs(args.handshake_timeout);
    config.idle_timeout = (args.idle_timeout > 0).then(|| Duration::from_secs(args.idle_timeout));
    config.backpressure.limit = args.backpressure_limit;
    if args.deflate {
        let mut deflate = DeflateConfig::default();
        deflate.level = args.deflate_level.min(9);
        deflate.threshold = args.deflate_threshold;
        deflate.server_max_window_bits = args.deflate_window_bits;
        deflate.client_max_window_bits = args.deflate_client_window_bits;
        deflate.server_no_context_takeover = args.deflate_no_context_takeover;
        deflate.client_no_context_takeover = args.deflate_client_no_context_takeover;
        config.deflate = Some(deflate);
    }
    let workers = config.worker_count();
    let server = Server::bind(
        config,
        Echo {
            verbose: args.verbose,
        },
    )?;
    let addrs: Vec<String> = server.local_addrs().iter().map(|a| a.to_string()).collect();
    eprintln!(
        "sockeye serve: listening on {} with {workers} worker(s){}; open http://{}/ in a browser",
        addrs.join(", "),
        if args.deflate {
            ", permessage-deflate on"
        } else {
            ""
        },
        addrs[0]
    );
    let handle = server.handle();
    let running = server.spawn()?;
    if let Some(secs) = args.stats.filter(|s| *s > 0) {
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(secs));
                eprintln!("stats: {:?}", handle.stats());
            }
        });
    }
    running.join();
    eprintln!("sockeye serve: stopped");
    Ok(())
}
