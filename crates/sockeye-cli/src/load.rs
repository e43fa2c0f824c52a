//! `sockeye load`: a load generator for WebSocket echo servers and /pubsub servers, on the
//! client role of sockeye-proto and `mio`.
//!
//! ```text
//!  main thread ── spawns ──▶ load thread × --threads (one mio Poll each, its share of connections)
//!      │                        connect (≤ --concurrency handshakes in flight, 10 s timeout each)
//!      │                        subscribe (fanout: every `sub` answered, ≤ 10 s)
//!      │ progress line (tty)     ─ barrier ─ warmup ▸ measure (echo, latency, fanout) │ hold (connect)
//!      │                        drain (fanout: ≤ 2 s for the last deliveries)
//!      ▼                        close 1000, ≤ 2 s for the echoes
//!  merge Stats ──▶ one-line summary (human or --json) ──▶ exit status
//! ```
//!
//! Modules: [`url`] (ws:// and wss:// parsing), [`units`] (sizes, seconds), [`sys`] (entropy,
//! fd limit), [`payload`] (stamped messages and their check), [`deflate`] (the
//! permessage-deflate offer and the check of the answer), [`stream`] (the socket, or TLS over
//! it), `tls` (the TLS client configuration, with the `tls` feature), [`client`] (one
//! connection), [`engine`] (one thread's event loop), [`fanout`] (the publish/subscribe mode's
//! connections and checks), [`report`] (counts and output).

mod client;
mod deflate;
mod engine;
mod fanout;
mod payload;
mod report;
mod soak;
mod stream;
mod sys;
#[cfg(feature = "tls")]
pub(crate) mod tls;
mod units;

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use engine::{Share, Shared};
use report::{Live, Stats, Totals};
use sockeye_client::WsUrl;
use stream::Connector;

/// Options of `sockeye load`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct LoadArgs {
    #[command(subcommand)]
    mode: ModeArgs,
}

const EXAMPLES: &str = "\
Start an echo server first (for example `sockeye serve` in another terminal), then:

  sockeye load echo --url ws://127.0.0.1:9001/ --connections 100 --in-flight 8 --size 4KiB
  sockeye load latency --connections 10 --duration 5
  ulimit -n 20000; sockeye load connect --connections 10000 --hold 5
  sockeye load echo --deflate --text --size 4KiB   (against `sockeye serve --deflate`)
  sockeye load echo --url wss://127.0.0.1:9001/ --tls-ca ca.pem --tls-server-name localhost
      (against `sockeye serve --tls-cert cert.pem --tls-key key.pem`)

Against a /pubsub server: 1000 subscribers on 2 of 10 topics each, 5 publishers at 100
publishes/s per topic (or, without --rate, as fast as 16 in flight per publisher allow):

  sockeye load fanout --url ws://127.0.0.1:9001/pubsub --subscribers 1000 --topics 10 \\
      --per-subscriber 2 --publishers 5 --rate 100 --size 64

Every echo is checked byte for byte, every delivery for its topic, publisher, sequence number
and filler; the command exits non-zero when any echo differs, any delivery is invalid, lost,
duplicated or out of order, any connection fails, the server answers `error`, or nothing comes
back. Use --json for a machine-readable summary.";

#[derive(Debug, clap::Subcommand)]
enum ModeArgs {
    /// Throughput: keep --in-flight messages outstanding on each connection, verify every echo,
    /// report echoes/s and MiB/s.
    #[command(after_help = EXAMPLES)]
    Echo(EchoArgs),
    /// Round-trip latency: one message in flight per connection; reports p50/p90/p99/p99.9/max.
    #[command(after_help = EXAMPLES)]
    Latency(LatencyArgs),
    /// Connection capacity: open many connections (handshakes/s), hold them idle, count how
    /// many stay open. Needs `ulimit -n` above --connections.
    #[command(after_help = EXAMPLES)]
    Connect(ConnectArgs),
    /// Publish/subscribe against a /pubsub server (`sub`, `pub`, `msg`): subscribers on
    /// topics, publishers paced by --rate or in a closed loop; checks every delivery (topic,
    /// publisher, sequence, filler) and reports deliveries/s, publish-to-delivery latency
    /// p50/p90/p99/p99.9/max, lost, duplicated and out-of-order messages.
    #[command(after_help = EXAMPLES)]
    Fanout(fanout::FanoutArgs),
    /// A long run of a mixed population against an echo server: short and long-lived
    /// connections, echoes of 0 B to --max-size (some fragmented, some compressed), pings,
    /// resets mid-frame, clients that stop reading for a while, protocol violations, clean and
    /// unclean closes. Every echo is checked; the server's memory and descriptors
    /// (--server-pid) and counters (GET /stats) are sampled; fails on any wrong echo, on growth
    /// beyond the stated slack after the warm-up, or when the server stops answering.
    #[command(after_help = SOAK_EXAMPLES)]
    Soak(soak::SoakArgs),
}

const SOAK_EXAMPLES: &str = "\
Against `sockeye serve --deflate` (its pid in $PID):

  sockeye load soak --url ws://127.0.0.1:9001/ --duration 7200 --warmup 300 \\
      --server-pid $PID --clients 16 --json --plot soak.svg > soak.json";

#[derive(Debug, clap::Args)]
struct EchoArgs {
    /// Connections to open.
    #[arg(short, long, default_value_t = 100, value_name = "N")]
    connections: usize,
    /// Messages kept outstanding per connection: each verified echo sends the next one.
    #[arg(long, default_value_t = 1, value_name = "N")]
    in_flight: usize,
    #[command(flatten)]
    messages: MessageArgs,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, clap::Args)]
struct LatencyArgs {
    /// Connections to open (each keeps one message in flight).
    #[arg(short, long, default_value_t = 100, value_name = "N")]
    connections: usize,
    #[command(flatten)]
    messages: MessageArgs,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, clap::Args)]
struct ConnectArgs {
    /// Connections to open (each needs a file descriptor: see `ulimit -n`).
    #[arg(short, long, default_value_t = 10_000, value_name = "N")]
    connections: usize,
    /// Handshakes in flight at most (TCP connect to 101), across all threads.
    #[arg(long, default_value_t = 256, value_name = "N")]
    concurrency: usize,
    /// Seconds to keep the connections idle once open, before counting those still open.
    #[arg(long, default_value = "5", value_parser = units::parse_seconds, value_name = "SECS")]
    hold: Duration,
    #[command(flatten)]
    common: CommonArgs,
}

/// The messages of echo and latency runs (fanout runs have their own flags).
#[derive(Debug, clap::Args)]
struct MessageArgs {
    /// Payload bytes per message; suffixes KiB, MiB, GiB (powers of 1024), e.g. 4KiB.
    #[arg(short, long, default_value = "16", value_parser = units::parse_size, value_name = "BYTES")]
    size: usize,
    /// Send text messages (ASCII) instead of binary; with --deflate, JSON-like quotes (so that
    /// compression has something to find) instead of random letters.
    #[arg(long)]
    text: bool,
    /// Seconds to measure, after the warmup.
    #[arg(short, long, default_value = "10", value_parser = units::parse_seconds, value_name = "SECS")]
    duration: Duration,
    /// Seconds of traffic before the measurement starts (not counted).
    #[arg(long, default_value = "1", value_parser = units::parse_seconds, value_name = "SECS")]
    warmup: Duration,
}

/// Options of every mode.
#[derive(Debug, clap::Args)]
struct CommonArgs {
    /// The server: ws://HOST:PORT/PATH, or wss://HOST:PORT/PATH over TLS (IPv6 as
    /// ws://[::1]:9001/).
    #[arg(
        short,
        long,
        default_value = "ws://127.0.0.1:9001/",
        value_name = "URL"
    )]
    url: String,
    /// Event-loop threads; the connections are split evenly between them.
    #[arg(short, long, default_value_t = 1, value_name = "N")]
    threads: usize,
    /// Print the summary as one line of JSON on stdout instead of the human line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    deflate: DeflateArgs,
    #[cfg(feature = "tls")]
    #[command(flatten)]
    tls: tls::TlsArgs,
}

/// permessage-deflate options of every mode.
#[derive(Debug, clap::Args)]
struct DeflateArgs {
    /// Offer permessage-deflate (RFC 7692). A server that declines gets uncompressed traffic;
    /// the summary says how many connections negotiated it.
    #[arg(long)]
    deflate: bool,
    /// Compression level of our messages, 0 (store) to 9 (smallest).
    #[arg(
        long,
        default_value_t = 6,
        value_parser = clap::value_parser!(u32).range(0..=9),
        requires = "deflate",
        value_name = "LEVEL",
    )]
    deflate_level: u32,
    /// Messages shorter than this many bytes are sent uncompressed (0: every message is
    /// compressed).
    #[arg(
        long,
        default_value = "0",
        value_parser = units::parse_size,
        requires = "deflate",
        value_name = "BYTES",
    )]
    deflate_threshold: usize,
    /// Window bits of our compressor (offered as client_max_window_bits), 9 to 15.
    #[arg(
        long,
        default_value_t = 15,
        value_parser = clap::value_parser!(u8).range(9..=15),
        requires = "deflate",
        value_name = "BITS",
    )]
    deflate_window_bits: u8,
}

/// Which measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Echo,
    Latency,
    Connect,
    Fanout,
}

/// A validated run.
#[derive(Debug)]
struct Plan {
    mode: Mode,
    url_text: String,
    url: WsUrl,
    addr: SocketAddr,
    /// Plain TCP, or TLS with the run's client configuration.
    connector: Connector,
    connections: usize,
    threads: usize,
    in_flight: usize,
    size: usize,
    text: bool,
    warmup: Duration,
    duration: Duration,
    concurrency: usize,
    hold: Duration,
    json: bool,
    /// The permessage-deflate offer, when `--deflate` was given.
    deflate: Option<deflate::Offer>,
    /// The layout of a fanout run.
    fanout: Option<fanout::Setup>,
}

/// The handshakes in flight at most while echo and latency runs connect (connect mode has
/// `--concurrency`).
const MESSAGE_MODE_CONCURRENCY: usize = 256;

impl Plan {
    fn new(args: LoadArgs) -> Result<Self, String> {
        let (mode, connections, in_flight, messages, common) = match args.mode {
            ModeArgs::Echo(a) => (Mode::Echo, a.connections, a.in_flight, a.messages, a.common),
            ModeArgs::Latency(a) => (Mode::Latency, a.connections, 1, a.messages, a.common),
            ModeArgs::Connect(a) => {
                let idle = MessageArgs {
                    size: 0,
                    text: false,
                    duration: Duration::ZERO,
                    warmup: Duration::ZERO,
                };
                let plan = Plan::with(Mode::Connect, a.connections, 0, idle, a.common)?;
                if a.concurrency == 0 {
                    return Err("--concurrency must be at least 1".into());
                }
                return Ok(Plan {
                    concurrency: a.concurrency,
                    hold: a.hold,
                    ..plan
                });
            }
            ModeArgs::Fanout(a) => return a.into_plan(),
            ModeArgs::Soak(_) => return Err("a soak has no plan: it runs through soak::run".into()),
        };
        Plan::with(mode, connections, in_flight, messages, common)
    }

    fn with(
        mode: Mode,
        connections: usize,
        in_flight: usize,
        messages: MessageArgs,
        common: CommonArgs,
    ) -> Result<Self, String> {
        if connections == 0 {
            return Err("--connections must be at least 1".into());
        }
        if mode == Mode::Echo && in_flight == 0 {
            return Err("--in-flight must be at least 1".into());
        }
        if common.threads == 0 {
            return Err("--threads must be at least 1".into());
        }
        if mode != Mode::Connect && messages.duration.is_zero() {
            return Err("--duration must be more than 0 seconds".into());
        }
        let url = WsUrl::parse(&common.url).map_err(|e| e.to_string())?;
        #[cfg(feature = "tls")]
        let connector = tls::connector(&url, &common.tls)?;
        #[cfg(not(feature = "tls"))]
        let connector = if url.secure {
            return Err(
                "wss:// needs TLS, and this sockeye was built without it (the `tls` \
                        feature)"
                    .into(),
            );
        } else {
            Connector::plain()
        };
        let addr = url.resolve().map_err(|e| e.to_string())?;
        let deflate = common.deflate.deflate.then(|| {
            deflate::Offer::new(
                common.deflate.deflate_level,
                common.deflate.deflate_threshold,
                common.deflate.deflate_window_bits,
            )
        });
        Ok(Plan {
            mode,
            url_text: common.url,
            url,
            addr,
            connector,
            connections,
            threads: common.threads.min(connections),
            in_flight,
            size: messages.size,
            text: messages.text,
            warmup: messages.warmup,
            duration: messages.duration,
            concurrency: MESSAGE_MODE_CONCURRENCY,
            hold: Duration::ZERO,
            json: common.json,
            deflate: deflate.transpose()?,
            fanout: None,
        })
    }

    /// Thread `index`'s part of the connections and of the handshake concurrency; in fanout
    /// runs, its part of the subscribers and its part of the publishers.
    fn share(&self, index: usize) -> Share {
        let split =
            |total: usize, i: usize| total / self.threads + usize::from(i < total % self.threads);
        let first = |total: usize| (0..index).map(|i| split(total, i)).sum::<usize>();
        let members = self.fanout.as_ref().map(|setup| fanout::Members {
            first_subscriber: first(setup.subscribers),
            subscribers: split(setup.subscribers, index),
            first_publisher: first(setup.publishers),
            publishers: split(setup.publishers, index),
        });
        Share {
            connections: members.map_or(split(self.connections, index), |m| {
                m.subscribers + m.publishers
            }),
            concurrency: split(self.concurrency, index).max(1),
            first_id: first(self.connections) as u64,
            members,
        }
    }
}

pub(crate) fn run(args: LoadArgs) -> Result<(), Box<dyn std::error::Error>> {
    let args = match args.mode {
        ModeArgs::Soak(soak) => return soak::run(soak),
        mode => LoadArgs { mode },
    };
    let plan = Plan::new(args)?;
    sys::check_fd_limit(plan.connections as u64 + 64)?;
    let stats = run_threads(&plan)?;
    let line = if plan.json {
        report::json(&plan, &stats)
    } else {
        report::human(&plan, &stats)
    };
    println!("{line}");
    stats.verdict(&plan)?;
    Ok(())
}

/// Runs the load threads, shows progress while they work, and merges their counts.
fn run_threads(plan: &Plan) -> Result<Stats, String> {
    let shared = Shared {
        arrived: AtomicUsize::new(0),
        abort: AtomicBool::new(false),
        live: (0..plan.threads).map(|_| Live::default()).collect(),
        start: OnceLock::new(),
        published: (0..plan.fanout.as_ref().map_or(0, |f| f.topics))
            .map(|_| AtomicU64::new(0))
            .collect(),
        stopped: AtomicUsize::new(0),
    };
    let results = thread::scope(|scope| {
        let mut handles = Vec::with_capacity(plan.threads);
        let mut spawn_error = None;
        for index in 0..plan.threads {
            let share = plan.share(index);
            let shared = &shared;
            let handle = thread::Builder::new()
                .name(format!("load-{index}"))
                .spawn_scoped(scope, move || {
                    engine::run_thread(plan, share, shared, index)
                });
            match handle {
                Ok(handle) => handles.push(handle),
                Err(e) => {
                    // Release the threads already waiting for this one at the start line.
                    shared.abort.store(true, Ordering::Release);
                    spawn_error = Some(format!("cannot start a load thread: {e}"));
                    break;
                }
            }
        }
        show_progress(plan, &shared.live, || {
            handles.iter().all(|h| h.is_finished())
        });
        let mut results: Vec<Result<Stats, String>> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a load thread panicked".into()))
            })
            .collect();
        results.extend(spawn_error.map(Err));
        results
    });
    let mut total = Stats::new()?;
    for result in results {
        total.merge(result?)?;
    }
    Ok(total)
}

/// Prints a progress line on stderr once a second while `finished` is false, when stderr is a
/// terminal; waits either way.
fn show_progress(plan: &Plan, live: &[Live], finished: impl Fn() -> bool) {
    let tty = std::io::stderr().is_terminal();
    let start = Instant::now();
    let mut last = start;
    let mut last_verified = 0;
    while !finished() {
        thread::sleep(Duration::from_millis(50));
        if !tty || last.elapsed() < Duration::from_secs(1) {
            continue;
        }
        let totals = Totals::sum(live);
        let rate = (totals.verified - last_verified.min(totals.verified)) as f64
            / last.elapsed().as_secs_f64();
        last = Instant::now();
        last_verified = totals.verified;
        let line = report::progress_line(plan, start.elapsed(), totals, rate as u64);
        eprint!("\r{line}\x1b[K");
    }
    if tty && start.elapsed() >= Duration::from_secs(1) {
        eprint!("\r\x1b[K");
    }
}
