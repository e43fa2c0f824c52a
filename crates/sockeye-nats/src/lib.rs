//! Topics across sockeye nodes over a NATS broker.
//!
//! Several nodes behind a load balancer share their topics through one NATS server (or
//! cluster): a message published on any node reaches the subscribers of every node.
//!
//! ```no_run
//! use std::sync::Arc;
//! # use sockeye_server::{Handler, Server, ServerConfig};
//! # fn run<H: Handler>(config: ServerConfig, handler: H) -> Result<(), Box<dyn std::error::Error>> {
//! let nats = Arc::new(sockeye_nats::Nats::new(sockeye_nats::NatsConfig::new(
//!     "nats://127.0.0.1:4222",
//! ))?);
//! Server::bind(config, handler)?.with_backplane(nats).run()?;
//! # Ok(())
//! # }
//! ```
//!
//! # How it works
//!
//! - **Interest.** The node subscribes to a NATS subject only while it has at least one local
//!   subscriber to a matching topic or pattern (`prices.*` subscribes `PREFIX.prices.*`), and
//!   unsubscribes when the last one leaves. Changes are coalesced: a topic joined and left before
//!   the backplane's thread looked costs nothing.
//! - **Publish.** A local publish goes to the local subscribers directly and to NATS once
//!   (subject `PREFIX.topic`). The connection is made with `no_echo`: the broker never sends a
//!   node its own publishes, so no node delivers its own publish twice.
//! - **Receive.** A message from NATS goes through [`Ingress::publish`], the path of a local
//!   publish (encoded once, one command per interested worker), and is not forwarded again.
//!   Where two of the node's subscriptions overlap (`room.*` and `room.a`), the broker sends the
//!   message once per subscription; the node delivers it only from the first of its matching
//!   subscriptions (in byte order), so each local subscriber gets it once.
//! - **Payload size.** Once connected, a local publish over the broker's maximum payload (less
//!   64 bytes for a binary message's header) is refused with
//!   [`PublishError::TooLarge`] before it reaches
//!   anyone: a message goes to every node or to none.
//! - **Text or binary.** Text messages travel as bare payloads; binary ones carry the header
//!   `Sockeye-Opcode: binary`. A message from another NATS client without the header goes out as
//!   text when it is valid UTF-8, else as binary.
//!
//! # Faults
//!
//! Everything the workers hand over goes through a bounded queue ([`NatsConfig::queue`]); the
//! workers never wait for the broker. While the broker is out of reach, local publish and
//! delivery go on, publishes are counted as not forwarded ([`NatsStats::not_forwarded`]) and
//! dropped, and the client reconnects with a backoff (up to [`NatsConfig::max_backoff`]) and
//! restores the node's subscriptions. Disconnects and reconnects are counted and logged.
//!
//! # Delivery is at most once
//!
//! A message published on one node while the broker is out of reach, or before another node's
//! subscription reached the broker, is not delivered there; nor are messages the broker drops
//! for a slow node. Nothing is delivered twice. Applications that must notice gaps put a
//! sequence number in their payloads and, on a gap, fetch the current state from their source
//! of truth (a snapshot), as market-data feeds do.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use async_nats::{ConnectOptions, Event, HeaderMap, ServerAddr, Subject, Subscriber};
use bytes::Bytes;
use futures_util::StreamExt;
use sockeye_proto::Message;
use sockeye_server::topics::{
    Backplane, Forwarded, Ingress, PublishError, matches, validate_topic,
};
use sockeye_server::{HandleError, TopicError};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle as TaskHandle;

/// The header that marks a binary message.
pub const OPCODE_HEADER: &str = "Sockeye-Opcode";

/// Bytes of the broker's maximum payload kept for a binary message's header block.
const HEADER_ROOM: usize = 64;

/// How a node reaches the broker.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// The broker: `nats://HOST:PORT` (or `HOST:PORT`).
    pub url: String,
    /// Prepended to every topic (`PREFIX.topic`), so that several applications share a broker;
    /// empty: topics are the subjects.
    pub prefix: String,
    /// Local publishes waiting for the backplane's thread, at most; more are dropped and
    /// counted ([`NatsStats::queue_full`]).
    pub queue: usize,
    /// The longest wait between two reconnect attempts (the backoff doubles up to it).
    pub max_backoff: Duration,
    /// The connection's name, as the broker's monitoring shows it.
    pub name: String,
}

impl NatsConfig {
    /// The broker at `url`, no prefix, a queue of 65 536 publishes, backoff up to 2 s.
    pub fn new(url: impl Into<String>) -> Self {
        NatsConfig {
            url: url.into(),
            prefix: String::new(),
            queue: 65_536,
            max_backoff: Duration::from_secs(2),
            name: "sockeye".to_owned(),
        }
    }

    /// With `prefix` before every topic.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }
}

/// Why a backplane could not be set up.
#[non_exhaustive]
#[derive(Debug)]
pub enum NatsError {
    /// The broker's address does not parse.
    Url(String, String),
    /// The prefix is not a valid literal topic (NATS subject tokens, no wildcards).
    Prefix(String, TopicError),
    /// A queue of zero.
    Queue,
}

impl fmt::Display for NatsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NatsError::Url(url, why) => write!(f, "bad NATS address {url:?}: {why}"),
            NatsError::Prefix(prefix, why) => write!(f, "bad NATS prefix {prefix:?}: {why}"),
            NatsError::Queue => {
                f.write_str("the NATS forward queue must hold at least one message")
            }
        }
    }
}

impl std::error::Error for NatsError {}

/// What the backplane did, since it started.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NatsStats {
    /// Local publishes handed to the broker.
    pub forwarded: u64,
    /// Local publishes dropped while the broker was out of reach.
    pub not_forwarded: u64,
    /// Local publishes dropped because the backplane's queue was full.
    pub queue_full: u64,
    /// Local publishes over the broker's maximum payload (not forwarded).
    pub too_large: u64,
    /// Messages from other nodes delivered to this node's workers.
    pub received: u64,
    /// Messages from the broker not delivered: a duplicate of an overlapping subscription's
    /// copy.
    pub overlapped: u64,
    /// Messages from the broker refused: a subject that is not a topic, or a worker's channel
    /// was full.
    pub refused: u64,
    /// Times the connection to the broker came up (the first connect included).
    pub connects: u64,
    /// Times it went down.
    pub disconnects: u64,
    /// NATS subscriptions held now (one per topic or pattern with local subscribers).
    pub subscriptions: u64,
}

#[derive(Default)]
struct Counters {
    forwarded: AtomicU64,
    not_forwarded: AtomicU64,
    queue_full: AtomicU64,
    too_large: AtomicU64,
    received: AtomicU64,
    overlapped: AtomicU64,
    refused: AtomicU64,
    connects: AtomicU64,
    disconnects: AtomicU64,
    subscriptions: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The state shared between the engine's threads and the backplane's thread.
struct Shared {
    config: NatsConfig,
    counters: Counters,
    connected: AtomicBool,
    /// Interest changes not yet applied: the latest wanted state of each pattern.
    changes: Mutex<BTreeMap<Box<str>, bool>>,
    /// The node's NATS subscriptions: what a message's overlapping copies are checked against.
    active: Mutex<Active>,
    wake: Notify,
    stopping: AtomicBool,
    /// The client, once made: its server information gives the maximum payload.
    client: OnceLock<async_nats::Client>,
    /// The broker's maximum payload; 0 until known.
    max_payload: AtomicUsize,
}

#[derive(Default)]
struct Active {
    exact: HashSet<Box<str>>,
    wildcard: BTreeSet<Box<str>>,
}

impl Active {
    /// Whether the copy that arrived through `pattern` is the one to deliver for `topic`: the
    /// first of the node's subscriptions that match it.
    fn is_first(&self, pattern: &str, topic: &str) -> bool {
        if self.wildcard.is_empty() {
            // Literal subscriptions never overlap.
            return self.exact.contains(pattern);
        }
        let mut first = self.exact.get(topic).map(|t| &**t);
        for w in &self.wildcard {
            if first.is_some_and(|f| f <= &**w) {
                break;
            }
            if matches(w, topic) {
                first = Some(w);
                break;
            }
        }
        first == Some(pattern)
    }
}

/// A NATS backplane: give it to [`Server::with_backplane`](sockeye_server::Server::with_backplane).
pub struct Nats {
    shared: Arc<Shared>,
    address: ServerAddr,
    tx: mpsc::Sender<Forwarded>,
    rx: Mutex<Option<mpsc::Receiver<Forwarded>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for Nats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nats")
            .field("url", &self.shared.config.url)
            .field("prefix", &self.shared.config.prefix)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

impl Nats {
    /// Checks `config`; the connection is made when the server starts (and retried until the
    /// broker answers: a node starts while its broker is down).
    ///
    /// # Errors
    ///
    /// A URL that does not parse, a prefix that is not a topic, a queue of zero.
    pub fn new(config: NatsConfig) -> Result<Self, NatsError> {
        let address = ServerAddr::from_str(&config.url)
            .map_err(|e| NatsError::Url(config.url.clone(), e.to_string()))?;
        if !config.prefix.is_empty() {
            // A prefix is a literal topic: `prefix.x` matches `x`'s shape.
            if let Err(e) = validate_topic(&config.prefix) {
                return Err(NatsError::Prefix(config.prefix.clone(), e));
            }
        }
        if config.queue == 0 {
            return Err(NatsError::Queue);
        }
        let (tx, rx) = mpsc::channel(config.queue);
        Ok(Nats {
            shared: Arc::new(Shared {
                config,
                counters: Counters::default(),
                connected: AtomicBool::new(false),
                changes: Mutex::new(BTreeMap::new()),
                active: Mutex::new(Active::default()),
                wake: Notify::new(),
                stopping: AtomicBool::new(false),
                client: OnceLock::new(),
                max_payload: AtomicUsize::new(0),
            }),
            address,
            tx,
            rx: Mutex::new(Some(rx)),
            thread: Mutex::new(None),
        })
    }

    /// Whether the broker is connected now.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Acquire)
    }

    /// The counters.
    pub fn stats(&self) -> NatsStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        NatsStats {
            forwarded: get(&c.forwarded),
            not_forwarded: get(&c.not_forwarded),
            queue_full: get(&c.queue_full),
            too_large: get(&c.too_large),
            received: get(&c.received),
            overlapped: get(&c.overlapped),
            refused: get(&c.refused),
            connects: get(&c.connects),
            disconnects: get(&c.disconnects),
            subscriptions: get(&c.subscriptions),
        }
    }
}

impl Backplane for Nats {
    fn start(&self, ingress: Ingress) {
        let Some(rx) = self
            .rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            log::error!("nats: the backplane was started twice");
            return;
        };
        let shared = Arc::clone(&self.shared);
        let address = self.address.clone();
        let spawned = std::thread::Builder::new()
            .name("sockeye-nats".to_owned())
            .spawn(move || run(shared, address, ingress, rx));
        match spawned {
            Ok(thread) => {
                *self.thread.lock().unwrap_or_else(PoisonError::into_inner) = Some(thread)
            }
            Err(e) => log::error!("nats: cannot start the backplane's thread: {e}"),
        }
    }

    fn interest(&self, pattern: &str, active: bool) {
        self.shared
            .changes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(pattern.into(), active);
        self.shared.wake.notify_one();
    }

    fn forward(&self, message: Forwarded) {
        if !self.is_connected() {
            bump(&self.shared.counters.not_forwarded);
            return;
        }
        if self.tx.try_send(message).is_err() {
            bump(&self.shared.counters.queue_full);
        }
    }

    fn max_payload(&self, text: bool) -> Option<usize> {
        match self.shared.max_payload.load(Ordering::Relaxed) {
            0 => None,
            max if text => Some(max),
            max => Some(max.saturating_sub(HEADER_ROOM)),
        }
    }

    fn stop(&self) {
        self.shared.stopping.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

/// The backplane's thread: a current-thread runtime for the NATS client.
fn run(shared: Arc<Shared>, address: ServerAddr, ingress: Ingress, rx: mpsc::Receiver<Forwarded>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            log::error!("nats: cannot start a runtime: {e}");
            return;
        }
    };
    runtime.block_on(serve(shared, address, ingress, rx));
}

async fn serve(
    shared: Arc<Shared>,
    address: ServerAddr,
    ingress: Ingress,
    mut rx: mpsc::Receiver<Forwarded>,
) {
    let max_backoff = shared.config.max_backoff;
    let events = Arc::clone(&shared);
    let options = ConnectOptions::new()
        .name(&shared.config.name)
        .no_echo()
        // Topics are checked by the engine (the NATS subject rules) before they get here.
        .skip_subject_validation(true)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .reconnect_delay_callback(move |attempts| backoff(attempts, max_backoff))
        .event_callback(move |event| {
            let shared = Arc::clone(&events);
            async move { shared.event(event) }
        });
    let client = match options.connect(address).await {
        Ok(client) => client,
        Err(e) => {
            log::error!("nats: cannot connect to {}: {e}", shared.config.url);
            return;
        }
    };
    let _ = shared.client.set(client.clone());
    // Connected already (or the next `Connected` event reads it).
    shared.learn_max_payload();
    let node = Node {
        shared: Arc::clone(&shared),
        client,
        ingress,
        subscriptions: HashMap::new(),
        subjects: HashMap::new(),
    };
    node.run(&mut rx).await;
}

/// Waits `attempts`-th reconnect: 10 ms, doubling, at most `max`.
fn backoff(attempts: usize, max: Duration) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let exp = u32::try_from(attempts - 2).unwrap_or(u32::MAX).min(20);
    Duration::from_millis(10u64 << exp).min(max)
}

impl Shared {
    /// Reads the broker's maximum payload from its server information (0 before the first
    /// connection).
    fn learn_max_payload(&self) {
        if let Some(client) = self.client.get() {
            let max = client.server_info().max_payload;
            if max > 0 {
                self.max_payload.store(max, Ordering::Relaxed);
            }
        }
    }

    fn event(&self, event: Event) {
        let url = &self.config.url;
        match event {
            Event::Connected => {
                self.learn_max_payload();
                self.connected.store(true, Ordering::Release);
                let n = self.counters.connects.fetch_add(1, Ordering::Relaxed);
                if n == 0 {
                    log::info!("nats: connected to {url}");
                } else {
                    let lost = self.counters.not_forwarded.load(Ordering::Relaxed);
                    log::warn!(
                        "nats: reconnected to {url} (reconnect {n}); {lost} publishes not \
                         forwarded while away, in all"
                    );
                }
            }
            Event::Disconnected => {
                self.connected.store(false, Ordering::Release);
                bump(&self.counters.disconnects);
                log::warn!(
                    "nats: lost {url}; local delivery goes on, publishes are not forwarded \
                     until it is back"
                );
            }
            Event::SlowConsumer(sid) => {
                log::warn!("nats: messages dropped for slow subscription {sid}");
            }
            other => log::info!("nats: {other}"),
        }
    }
}

/// The backplane's state on its thread.
struct Node {
    shared: Arc<Shared>,
    client: async_nats::Client,
    ingress: Ingress,
    /// A reader task per NATS subscription.
    subscriptions: HashMap<Box<str>, TaskHandle<()>>,
    /// The subjects of recent topics, built once (a clone shares the bytes).
    subjects: HashMap<Box<str>, Subject>,
}

/// Subjects kept at most; the cache starts over past it.
const SUBJECTS: usize = 4096;

/// Local publishes taken from the queue per turn of the backplane's loop.
const BATCH: usize = 256;

impl Node {
    async fn run(mut self, rx: &mut mpsc::Receiver<Forwarded>) {
        let shared = Arc::clone(&self.shared);
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            if shared.stopping.load(Ordering::Acquire) {
                break;
            }
            tokio::select! {
                n = rx.recv_many(&mut batch, BATCH) => {
                    if n == 0 {
                        break;
                    }
                    // Handed to the client together: one write to the broker for the batch.
                    for message in batch.drain(..) {
                        self.forward(message).await;
                    }
                }
                () = shared.wake.notified() => self.apply_changes().await,
            }
        }
        for (_, task) in self.subscriptions.drain() {
            task.abort();
        }
        // What was handed to the client goes out before the thread ends.
        let _ = tokio::time::timeout(Duration::from_secs(1), self.client.flush()).await;
    }

    fn subject(&self, topic: &str) -> String {
        let prefix = &self.shared.config.prefix;
        if prefix.is_empty() {
            topic.to_owned()
        } else {
            format!("{prefix}.{topic}")
        }
    }

    async fn forward(&mut self, message: Forwarded) {
        let counters = &self.shared.counters;
        if !self.shared.connected.load(Ordering::Acquire) {
            bump(&counters.not_forwarded);
            return;
        }
        let subject = match self.subjects.get(message.topic()) {
            Some(subject) => subject.clone(),
            None => {
                if self.subjects.len() >= SUBJECTS {
                    self.subjects.clear();
                }
                let subject = Subject::from(self.subject(message.topic()));
                self.subjects
                    .insert(message.topic().into(), subject.clone());
                subject
            }
        };
        let text = message.is_text();
        let payload = Bytes::from_owner(message);
        let sent = if text {
            self.client.publish(subject, payload).await
        } else {
            let mut headers = HeaderMap::new();
            headers.insert(OPCODE_HEADER, "binary");
            self.client
                .publish_with_headers(subject, headers, payload)
                .await
        };
        match sent {
            Ok(()) => bump(&counters.forwarded),
            Err(e) if e.kind() == async_nats::client::PublishErrorKind::MaxPayloadExceeded => {
                if counters.too_large.fetch_add(1, Ordering::Relaxed) == 0 {
                    log::warn!(
                        "nats: a publish over the broker's maximum payload was not forwarded: {e}"
                    );
                }
            }
            Err(e) => {
                bump(&counters.not_forwarded);
                log::debug!("nats: publish not forwarded: {e}");
            }
        }
    }

    /// Subscribes and unsubscribes as the node's interest changed.
    async fn apply_changes(&mut self) {
        let changes = std::mem::take(
            &mut *self
                .shared
                .changes
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for (pattern, wanted) in changes {
            let held = self.subscriptions.contains_key(&pattern);
            if wanted && !held {
                match self.client.subscribe(self.subject(&pattern)).await {
                    Ok(subscriber) => self.hold(pattern, subscriber),
                    Err(e) => log::error!("nats: cannot subscribe to {pattern}: {e}"),
                }
            } else if !wanted && held {
                self.release(&pattern);
            }
        }
        self.shared
            .counters
            .subscriptions
            .store(self.subscriptions.len() as u64, Ordering::Relaxed);
    }

    fn hold(&mut self, pattern: Box<str>, mut subscriber: Subscriber) {
        {
            let mut active = self
                .shared
                .active
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if pattern.contains(['*', '>']) {
                active.wildcard.insert(pattern.clone());
            } else {
                active.exact.insert(pattern.clone());
            }
        }
        let shared = Arc::clone(&self.shared);
        let ingress = self.ingress.clone();
        let from = pattern.clone();
        let task = tokio::spawn(async move {
            let skip = if shared.config.prefix.is_empty() {
                0
            } else {
                shared.config.prefix.len() + 1
            };
            while let Some(message) = subscriber.next().await {
                let Some(topic) = message.subject.as_str().get(skip..) else {
                    bump(&shared.counters.refused);
                    continue;
                };
                shared.deliver(&ingress, &from, topic, &message);
            }
        });
        self.subscriptions.insert(pattern, task);
    }

    fn release(&mut self, pattern: &str) {
        {
            let mut active = self
                .shared
                .active
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            active.exact.remove(pattern);
            active.wildcard.remove(pattern);
        }
        if let Some(task) = self.subscriptions.remove(pattern) {
            // Dropping the subscriber with the task unsubscribes at the broker.
            task.abort();
        }
    }
}

impl Shared {
    /// One message from the broker, which came through the subscription to `pattern`.
    fn deliver(
        &self,
        ingress: &Ingress,
        pattern: &str,
        topic: &str,
        message: &async_nats::Message,
    ) {
        let first = self
            .active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_first(pattern, topic);
        if !first {
            bump(&self.counters.overlapped);
            return;
        }
        let binary = message
            .headers
            .as_ref()
            .and_then(|h| h.get(OPCODE_HEADER))
            .is_some_and(|v| v.as_str() == "binary");
        let payload = &message.payload[..];
        let msg = match (binary, std::str::from_utf8(payload)) {
            (false, Ok(text)) => Message::Text(text),
            _ => Message::Binary(payload),
        };
        match ingress.publish(topic, msg) {
            Ok(()) => bump(&self.counters.received),
            Err(PublishError::Handle(HandleError::Full)) => {
                // Delivered to the workers with room: counted, as the others missed it.
                bump(&self.counters.received);
                bump(&self.counters.refused);
            }
            Err(e) => {
                bump(&self.counters.refused);
                log::debug!("nats: message on {topic} refused: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active(exact: &[&str], wildcard: &[&str]) -> Active {
        Active {
            exact: exact.iter().map(|s| (*s).into()).collect(),
            wildcard: wildcard.iter().map(|s| (*s).into()).collect(),
        }
    }

    #[test]
    fn overlapping_subscriptions_deliver_once() {
        let a = active(&["room.a"], &["room.*", "*.a", ">"]);
        // Every subscription matching room.a gets a copy; exactly one is delivered.
        let copies = ["room.a", "room.*", "*.a", ">"];
        let firsts: Vec<_> = copies.iter().filter(|p| a.is_first(p, "room.a")).collect();
        assert_eq!(firsts, [&"*.a"]);
        let copies = ["room.*", ">"];
        let firsts: Vec<_> = copies.iter().filter(|p| a.is_first(p, "room.b")).collect();
        assert_eq!(firsts, [&">"]);
        // Literal subscriptions alone never overlap.
        let a = active(&["x", "y"], &[]);
        assert!(a.is_first("x", "x"));
        // A copy through a subscription the node let go of is not delivered.
        assert!(!a.is_first("z", "z"));
    }

    #[test]
    fn backoff_doubles_up_to_its_limit() {
        let max = Duration::from_secs(2);
        assert_eq!(backoff(1, max), Duration::ZERO);
        assert_eq!(backoff(2, max), Duration::from_millis(10));
        assert_eq!(backoff(3, max), Duration::from_millis(20));
        assert_eq!(backoff(9, max), Duration::from_millis(1280));
        assert_eq!(backoff(10, max), max);
        assert_eq!(backoff(usize::MAX, max), max);
    }

    #[test]
    fn bad_settings_are_named() {
        let e = Nats::new(NatsConfig::new("nats://127.0.0.1:4222").prefix("a..b")).unwrap_err();
        assert!(e.to_string().contains("bad NATS prefix \"a..b\""), "{e}");
        let e = Nats::new(NatsConfig::new("nats://127.0.0.1:4222").prefix("a.*")).unwrap_err();
        assert!(matches!(e, NatsError::Prefix(..)), "{e}");
        let e = Nats::new(NatsConfig::new("nats://[::1")).unwrap_err();
        assert!(e.to_string().starts_with("bad NATS address"), "{e}");
        let mut config = NatsConfig::new("nats://127.0.0.1:4222");
        config.queue = 0;
        assert!(matches!(Nats::new(config), Err(NatsError::Queue)));
        assert!(Nats::new(NatsConfig::new("127.0.0.1:4222").prefix("app.ws")).is_ok());
    }
}
