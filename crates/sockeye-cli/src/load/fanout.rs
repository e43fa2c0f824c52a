//! `sockeye load fanout`: publish/subscribe load over the /pubsub text protocol, every delivery
//! checked.
//!
//! ```text
//!  subscriber i ── sub PREFIX{(i*K + j) % T}, j < K ──▶ ┌────────┐
//!       ▲                                               │ server │ ◀── pub PREFIX{t} <stamp><filler>
//!       └────── msg PREFIX{t} <stamp><filler> ───────── └────────┘      publisher p: t = p, p+P, ...
//! ```
//!
//! Every connection is a [`Peer`]: a subscriber (its K topics), or a publisher (the topics
//! `p, p+P, p+2P, ...` below T, published round-robin). A publisher sends at `--rate` per topic
//! on timers of the engine's loop, or, with rate 0, in a closed loop: it also subscribes to its
//! own topics and keeps `--in-flight` publishes outstanding, each one done when its own copy
//! comes back (own copies are checked, never counted as deliveries). Each topic has one
//! publisher, so a topic's sequence numbers are its publisher's on it. A subscriber checks each
//! delivery: a topic it subscribed to, a payload of `--size` bytes, a [`stamp`] naming the
//! topic's publisher, the filler, and the sequence ([`sequence`]). Deliveries and their
//! latency (now minus the stamp's send time) count when the message was published inside the
//! measurement window; losses, duplicates and reorderings count over the whole run.
//!
//! Modules: [`peer`] (one connection: subscriptions, publishes, checks), [`topics`] (who
//! subscribes and publishes where), [`stamp`] (publisher, sequence number and send time in 16
//! characters), [`command`] (the protocol's lines), [`sequence`] (the accounting of one
//! stream).

mod command;
mod peer;
mod sequence;
mod stamp;
mod topics;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

pub(super) use self::peer::Peer;
use self::stamp::{MAX_PUBLISHERS, STAMP_LEN};
use super::sys::splitmix64;
use super::{CommonArgs, MessageArgs, Mode, Plan, units};
use sockeye_client::WsUrl;

/// The highest `--rate`.
const MAX_RATE: f64 = 10_000_000.0;

/// Options of `sockeye load fanout`.
#[derive(Debug, clap::Args)]
pub(super) struct FanoutArgs {
    /// Subscriber connections.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    subscribers: usize,
    /// Topics, named PREFIX0 .. PREFIX{T-1}.
    #[arg(long, default_value_t = 1, value_name = "T")]
    topics: usize,
    /// The topic names' prefix (no whitespace, no wildcards).
    #[arg(long, default_value = "t", value_name = "PREFIX")]
    topic_prefix: String,
    /// Topics per subscriber (at most T): subscriber i takes topics (i*K + j) % T, j < K.
    #[arg(long, default_value_t = 1, value_name = "K")]
    per_subscriber: usize,
    /// Publisher connections (at most T): publisher p publishes on topics p, p+P, p+2P, ...
    /// round-robin.
    #[arg(long, default_value_t = 1, value_name = "P")]
    publishers: usize,
    /// Publishes per second per topic, spread evenly; 0: as fast as the closed loop goes (each
    /// publisher subscribes to its own topics and keeps --in-flight publishes outstanding).
    #[arg(long, default_value = "0", value_parser = parse_rate, value_name = "R")]
    rate: f64,
    /// With --rate 0: publishes each publisher keeps outstanding (its own copy not yet back).
    #[arg(long, default_value_t = 16, value_name = "N")]
    in_flight: usize,
    /// PAYLOAD bytes per publish (the `pub TOPIC ` before it not counted), at least 16: a
    /// 16-character stamp (publisher, sequence number, send time) padded with letters.
    #[arg(short, long, default_value = "16", value_parser = units::parse_size, value_name = "BYTES")]
    size: usize,
    /// Seconds to measure, after the warmup.
    #[arg(short, long, default_value = "10", value_parser = units::parse_seconds, value_name = "SECS")]
    duration: Duration,
    /// Seconds of traffic before the measurement starts (not counted).
    #[arg(long, default_value = "1", value_parser = units::parse_seconds, value_name = "SECS")]
    warmup: Duration,
    /// Publishers connect here instead of --url: another node sharing the topics through a
    /// backplane (sockeye serve --nats), so that every delivery crosses between the nodes.
    #[arg(long, value_name = "URL")]
    publish_url: Option<String>,
    /// Seconds between the last subscription answered and the first publish: the time the
    /// subscriptions take to reach the other nodes through a backplane.
    #[arg(long, default_value = "0", value_parser = units::parse_seconds, value_name = "SECS")]
    settle: Duration,
    #[command(flatten)]
    common: CommonArgs,
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if (0.0..=MAX_RATE).contains(&rate) => Ok(rate),
        _ => Err(format!(
            "`{text}` is not a rate from 0 to 10000000 per second"
        )),
    }
}

impl FanoutArgs {
    /// The validated run.
    ///
    /// # Errors
    ///
    /// An option out of range, or an impossible layout, said in terms of the options.
    pub(super) fn into_plan(self) -> Result<Plan, String> {
        let setup = Setup::new(&self)?;
        let messages = MessageArgs {
            size: self.size,
            text: true,
            duration: self.duration,
            warmup: self.warmup,
        };
        let connections = self.subscribers + self.publishers;
        let plan = Plan::with(
            Mode::Fanout,
            connections,
            self.in_flight,
            messages,
            self.common,
        )?;
        let mut setup = setup;
        if let Some(text) = &self.publish_url {
            let url = WsUrl::parse(text).map_err(|e| e.to_string())?;
            if url.secure != plan.url.secure {
                return Err(format!(
                    "--publish-url {text} and --url {} must both be ws:// or both wss://",
                    plan.url_text
                ));
            }
            let addr = url.resolve().map_err(|e| e.to_string())?;
            setup.publish_to = Some((url, addr));
        }
        setup.settle = self.settle;
        Ok(Plan {
            fanout: Some(setup),
            ..plan
        })
    }
}

/// The layout of a fanout run, shared by its threads.
#[derive(Debug)]
pub(super) struct Setup {
    pub(super) subscribers: usize,
    pub(super) publishers: usize,
    pub(super) topics: usize,
    pub(super) per_subscriber: usize,
    pub(super) prefix: String,
    /// Publishes per second per topic; 0 for the closed loop.
    pub(super) rate: f64,
    pub(super) in_flight: usize,
    /// Payload bytes.
    pub(super) size: usize,
    /// The instant the stamps' times count from.
    epoch: Instant,
    /// What follows the stamp in every payload.
    filler: String,
    /// Where the publishers connect, when not to the subscribers' server (`--publish-url`).
    pub(super) publish_to: Option<(WsUrl, SocketAddr)>,
    /// The wait between subscribing and publishing.
    pub(super) settle: Duration,
}

impl Setup {
    fn new(args: &FanoutArgs) -> Result<Self, String> {
        let (topics, k, publishers) = (args.topics, args.per_subscriber, args.publishers);
        let positive = [
            (args.subscribers, "--subscribers"),
            (topics, "--topics"),
            (k, "--per-subscriber"),
            (publishers, "--publishers"),
        ];
        if let Some((_, name)) = positive.iter().find(|(n, _)| *n == 0) {
            return Err(format!("{name} must be at least 1"));
        }
        if k > topics {
            return Err(format!(
                "--per-subscriber {k} is more than --topics {topics}: a subscriber's topics \
                 must be distinct"
            ));
        }
        if publishers > topics {
            return Err(format!(
                "--publishers {publishers} is more than --topics {topics}: each publisher needs \
                 a topic of its own (a topic has one publisher)"
            ));
        }
        if publishers > MAX_PUBLISHERS {
            return Err(format!("--publishers is at most {MAX_PUBLISHERS}"));
        }
        if args.rate == 0.0 && args.in_flight == 0 {
            return Err("--in-flight must be at least 1".into());
        }
        if args.size < STAMP_LEN {
            return Err(format!(
                "--size {} is too small: each payload starts with a {STAMP_LEN}-byte stamp \
                 (publisher, sequence number, send time), so --size must be at least {STAMP_LEN}",
                args.size
            ));
        }
        let prefix = &args.topic_prefix;
        if prefix.is_empty() || prefix.contains(|c: char| c.is_whitespace() || c == '*' || c == '>')
        {
            return Err(format!(
                "--topic-prefix {prefix:?}: not empty, and no whitespace or wildcards (* >)"
            ));
        }
        let mut seed = 0x5eed_f00d;
        let filler = (STAMP_LEN..args.size)
            .map(|_| char::from(b'a' + (splitmix64(&mut seed) % 26) as u8))
            .collect();
        Ok(Setup {
            subscribers: args.subscribers,
            publishers,
            topics,
            per_subscriber: k,
            prefix: prefix.clone(),
            rate: args.rate,
            in_flight: args.in_flight,
            size: args.size,
            epoch: Instant::now(),
            filler,
            publish_to: None,
            settle: Duration::ZERO,
        })
    }

    /// The largest message the server sends us: `msg PREFIX{T-1} PAYLOAD`, or an `error`.
    pub(super) fn max_message(&self) -> usize {
        self.size + self.prefix.len() + 256
    }

    /// Nanoseconds from the epoch to `now`.
    fn nanos(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A thread's part of the subscribers and of the publishers (contiguous ranges of each);
/// its connections are its subscribers, then its publishers.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Members {
    pub(super) first_subscriber: usize,
    pub(super) subscribers: usize,
    pub(super) first_publisher: usize,
    pub(super) publishers: usize,
}

/// What one connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Member {
    /// Subscriber `i` of the run.
    Subscriber(usize),
    /// Publisher `p` of the run.
    Publisher(usize),
}

impl Members {
    /// What the thread's connection `index` is.
    pub(super) fn member(&self, index: usize) -> Member {
        if index < self.subscribers {
            Member::Subscriber(self.first_subscriber + index)
        } else {
            Member::Publisher(self.first_publisher + index - self.subscribers)
        }
    }

    /// The thread's connection indices that are publishers.
    pub(super) fn publisher_indices(&self) -> core::ops::Range<usize> {
        self.subscribers..self.subscribers + self.publishers
    }
}

/// A thread's fanout counts (in [`Stats`]).
#[derive(Debug)]
pub(super) struct Counts {
    /// Publishes sent inside the measurement window.
    pub(super) publishes: u64,
    /// Paced publishes not sent because the connection's queue was full.
    pub(super) skipped: u64,
    /// Deliveries to subscribers of messages published inside the window.
    pub(super) deliveries: u64,
    /// Sequence numbers that never arrived: skipped (a later one arrived first) or in the tail.
    pub(super) lost: u64,
    /// The part of `lost` still missing when the drain ended: published after the last number
    /// a subscriber got (a server still behind, or messages dropped at the end).
    pub(super) lost_tail: u64,
    /// Arrivals of the last number seen, again.
    pub(super) duplicated: u64,
    /// Arrivals below the last number seen.
    pub(super) out_of_order: u64,
    /// `error` replies from the server.
    pub(super) error_replies: u64,
    /// Publish-to-delivery times in nanoseconds of the deliveries counted.
    pub(super) latency: Histogram<u64>,
}

impl Counts {
    /// Zeroed counts around an empty histogram.
    pub(super) fn new(latency: Histogram<u64>) -> Self {
        Counts {
            publishes: 0,
            skipped: 0,
            deliveries: 0,
            lost: 0,
            lost_tail: 0,
            duplicated: 0,
            out_of_order: 0,
            error_replies: 0,
            latency,
        }
    }

    /// Adds another thread's counts.
    ///
    /// # Errors
    ///
    /// When the histograms cannot be added (never: they share bounds).
    pub(super) fn merge(&mut self, other: Counts) -> Result<(), String> {
        self.publishes += other.publishes;
        self.skipped += other.skipped;
        self.deliveries += other.deliveries;
        self.lost += other.lost;
        self.lost_tail += other.lost_tail;
        self.duplicated += other.duplicated;
        self.out_of_order += other.out_of_order;
        self.error_replies += other.error_replies;
        self.latency
            .add(&other.latency)
            .map_err(|e| format!("histogram: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run's layout for tests: 20-byte payloads, filler `abcd`.
    pub(super) fn setup(
        subscribers: usize,
        topics: usize,
        k: usize,
        publishers: usize,
        rate: f64,
    ) -> Setup {
        Setup {
            subscribers,
            publishers,
            topics,
            per_subscriber: k,
            prefix: "t".into(),
            rate,
            in_flight: 1,
            size: 20,
            epoch: Instant::now(),
            filler: "abcd".into(),
            publish_to: None,
            settle: Duration::ZERO,
        }
    }

    #[test]
    fn members_split_subscribers_then_publishers() {
        let members = Members {
            first_subscriber: 10,
            subscribers: 3,
            first_publisher: 2,
            publishers: 2,
        };
        let got: Vec<Member> = (0..5).map(|i| members.member(i)).collect();
        use Member::{Publisher, Subscriber};
        let expected = [
            Subscriber(10),
            Subscriber(11),
            Subscriber(12),
            Publisher(2),
            Publisher(3),
        ];
        assert_eq!(got, expected);
        assert_eq!(members.publisher_indices(), 3..5);
    }
}
