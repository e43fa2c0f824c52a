//! Topics across nodes: the engine's side of a backplane (a broker that carries publishes
//! between servers).
//!
//! The engine tells a [`Backplane`] three things, none of which may block a worker:
//!
//! - **interest**: the node's first local subscription to a topic or pattern arrived, or its
//!   last one left (called in the order the changes happen, once per change of the whole node,
//!   not per worker or per connection);
//! - **forward**: a local publish, once, after it went to the local workers;
//! - **start** and **stop**: the server started (with the [`Ingress`] through which messages
//!   from other nodes come in), and its workers have all returned.
//!
//! A message from another node enters through [`Ingress::publish`] and travels the path of a
//! local publish (encoded once, one command per interested worker), marked so that it is never
//! forwarded again: no node delivers its own publish twice, and no message loops.
//!
//! Delivery over a backplane is at most once: a message published while the broker is out of
//! reach, or while a node's interest is still on its way to the broker, is not delivered on the
//! other nodes. Applications that must see gaps put a sequence number in their payloads.

use std::fmt;
use std::sync::Arc;

use sockeye_proto::Message;

use super::{Publication, PublishError};
use crate::Handle;

/// The engine-facing side of a backplane: how topics reach other nodes.
///
/// Every method is called from a worker's thread or a publisher's thread and must return at
/// once (hand the work to the backplane's own thread, with a bounded queue).
pub trait Backplane: Send + Sync + 'static {
    /// The server started: messages from other nodes go in through `ingress`.
    fn start(&self, ingress: Ingress);

    /// The node's first subscription to `pattern` (a topic, or a pattern with wildcards)
    /// arrived (`active`), or its last one left (`!active`). Calls come in the order of the
    /// changes.
    fn interest(&self, pattern: &str, active: bool);

    /// A local publish, to carry to the other nodes.
    fn forward(&self, message: Forwarded);

    /// The largest payload it carries now for a text (`text`) or binary message, when it has a
    /// limit (a broker's maximum payload, known once connected). A larger publish is refused
    /// with [`PublishError::TooLarge`] before it reaches anyone, here or elsewhere: a message
    /// goes to every node or to none.
    fn max_payload(&self, text: bool) -> Option<usize> {
        let _ = text;
        None
    }

    /// The server's workers have all returned: stop, and let go of the [`Ingress`].
    fn stop(&self) {}
}

/// A local publish on its way to other nodes: the topic and the payload as published, shared
/// with the local delivery (no copy is made to forward it).
#[derive(Clone)]
pub struct Forwarded(pub(crate) Arc<Publication>);

impl Forwarded {
    /// The topic (a literal topic: no wildcards).
    pub fn topic(&self) -> &str {
        &self.0.topic
    }

    /// The payload, as published.
    pub fn payload(&self) -> &[u8] {
        self.0.payload()
    }

    /// Whether it was published as a text message (else binary).
    pub fn is_text(&self) -> bool {
        self.0.is_text()
    }
}

impl AsRef<[u8]> for Forwarded {
    fn as_ref(&self) -> &[u8] {
        self.payload()
    }
}

impl fmt::Debug for Forwarded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forwarded")
            .field("topic", &self.topic())
            .field("text", &self.is_text())
            .field("len", &self.payload().len())
            .finish()
    }
}

/// Where messages from other nodes enter a server: given to [`Backplane::start`].
#[derive(Clone, Debug)]
pub struct Ingress {
    handle: Handle,
}

impl Ingress {
    pub(crate) fn new(handle: Handle) -> Self {
        Ingress { handle }
    }

    /// Delivers a message that another node published to this node's subscribers of `topic`,
    /// as a local publish does, without forwarding it again.
    ///
    /// # Errors
    ///
    /// As [`Handle::publish`]: a topic that is not a valid literal topic, a ping or pong, a full
    /// worker channel.
    pub fn publish(&self, topic: &str, msg: Message<'_>) -> Result<(), PublishError> {
        let mut p = Publication::new(topic, msg)?;
        p.remote = true;
        self.handle.dispatch(p, None).map(drop)
    }
}
