//! What one soak client does, session after session until the deadline: each session is one
//! connection with a behaviour drawn at random ([`Kind`]), and every echo it gets is checked
//! byte for byte against what it sent.

use std::collections::VecDeque;
use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use sockeye_proto::{Message, OpCode};

use super::super::deflate::Offer;
use super::super::sys::{Entropy, splitmix64};
use super::Counters;
use super::wire::{Received, Ws};
use sockeye_client::WsUrl;

/// The behaviours of a session, with their weights out of 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A burst of echoes of random sizes (some fragmented, some with pings), up to 4 in
    /// flight, then a clean close, a close with an application code, a plain TCP close or a
    /// reset.
    Echo,
    /// A connection held for 5-20 s, a small echo every 0.2-1.5 s.
    Long,
    /// Some echoes, then a frame cut off mid-way and a TCP reset.
    Reset,
    /// Up to 2 MiB sent without reading, a pause, then every echo read and checked.
    Stall,
    /// Open and close at once, half an upgrade request then gone, or open and gone.
    Brief,
    /// A protocol violation the server must answer with the right close code.
    Violation,
}

impl Kind {
    /// Every kind with its weight.
    pub(super) const ALL: [(Kind, u64); 6] = [
        (Kind::Echo, 51),
        (Kind::Long, 2),
        (Kind::Reset, 12),
        (Kind::Stall, 10),
        (Kind::Brief, 15),
        (Kind::Violation, 10),
    ];

    /// The name used in reports.
    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Echo => "echo",
            Kind::Long => "long",
            Kind::Reset => "reset",
            Kind::Stall => "stall",
            Kind::Brief => "brief",
            Kind::Violation => "violation",
        }
    }

    /// The index of this kind in [`Kind::ALL`].
    pub(super) fn index(self) -> usize {
        Kind::ALL
            .iter()
            .position(|(k, _)| *k == self)
            .unwrap_or_default()
    }
}

/// What every client of a run shares.
#[derive(Debug)]
pub(super) struct Env {
    pub(super) addr: SocketAddr,
    pub(super) url: WsUrl,
    pub(super) offer: Offer,
    /// How long any read or write may wait for the server.
    pub(super) timeout: Duration,
    /// No new session starts after this; sessions in progress wind down.
    pub(super) deadline: Instant,
    /// The largest message payload.
    pub(super) max_size: usize,
    /// Percentage of sessions that offer permessage-deflate.
    pub(super) deflate_percent: u64,
    pub(super) counters: Counters,
    /// Set to stop every client at once (the server stopped answering).
    pub(super) abort: AtomicBool,
}

impl Env {
    fn over(&self) -> bool {
        self.abort.load(Ordering::Relaxed) || Instant::now() >= self.deadline
    }
}

/// Counts an open connection while it lives.
struct Open<'a>(&'a AtomicUsize);

impl<'a> Open<'a> {
    fn new(open: &'a AtomicUsize) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Open(open)
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One client: its random streams and its scratch payload.
#[derive(Debug)]
pub(super) struct Client {
    rng: u64,
    entropy: Entropy,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Client {
    /// A client whose choices follow `seed` (masks and keys come from the OS).
    ///
    /// # Errors
    ///
    /// When the OS entropy source cannot be opened.
    pub(super) fn new(seed: u64) -> Result<Self, String> {
        Ok(Client {
            rng: seed,
            entropy: Entropy::open().map_err(|e| e.to_string())?,
        })
    }

    /// Runs sessions until the deadline; each failure is recorded in `env.counters`.
    pub(super) fn run(&mut self, env: &Env) {
        while !env.over() {
            let kind = self.pick_kind();
            let started = Instant::now();
            add(&env.counters.sessions[kind.index()], 1);
            if let Err(error) = self.session(kind, env) {
                env.counters.fail(format!(
                    "{} session after {:.1?}: {error}",
                    kind.name(),
                    started.elapsed()
                ));
            }
        }
    }

    fn next(&mut self) -> u64 {
        splitmix64(&mut self.rng)
    }

    /// A number in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn percent(&mut self, p: u64) -> bool {
        self.next() % 100 < p
    }

    fn pick_kind(&mut self) -> Kind {
        let total: u64 = Kind::ALL.iter().map(|(_, w)| w).sum();
        let mut roll = self.next() % total;
        for (kind, weight) in Kind::ALL {
            if roll < weight {
                return kind;
            }
            roll -= weight;
        }
        Kind::Echo
    }

    /// A payload size: mostly small, some medium, a few up to `max`.
    fn size(&mut self, max: usize) -> usize {
        let max = max as u64;
        let size = match self.next() % 100 {
            0..55 => self.between(0, 125),
            55..85 => self.between(126, 16 << 10),
            85..97 => self.between(16 << 10, 128 << 10),
            _ => self.between(128 << 10, max.max(128 << 10)),
        };
        size.min(max) as usize
    }

    /// A payload of `len` bytes: JSON-like ASCII for text (something for deflate to find), any
    /// bytes for binary.
    fn payload(&mut self, text: bool, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        if text {
            const WORDS: [&[u8]; 8] = [
                b"{\"sym\":\"",
                b"ABC",
                b"\",\"px\":",
                b"101.25",
                b",\"qty\":",
                b"300",
                b",\"side\":\"buy\"}",
                b"\n",
            ];
            while out.len() < len {
                let r = self.next();
                out.extend_from_slice(WORDS[(r % 8) as usize]);
                out.push(b'a' + (r >> 8) as u8 % 26);
            }
        } else {
            while out.len() < len {
                out.extend_from_slice(&self.next().to_le_bytes());
            }
        }
        out.truncate(len);
        out
    }

    fn open(&mut self, env: &Env) -> Result<Ws, String> {
        let offer = self.percent(env.deflate_percent).then_some(&env.offer);
        let ws = Ws::connect(env.addr, &env.url, offer, env.timeout, &mut self.entropy)?;
        if ws.compressed {
            add(&env.counters.compressed, 1);
        }
        Ok(ws)
    }

    fn session(&mut self, kind: Kind, env: &Env) -> Result<(), String> {
        match kind {
            Kind::Echo => self.echo(env),
            Kind::Long => self.long(env),
            Kind::Reset => self.reset(env),
            Kind::Stall => self.stall(env),
            Kind::Brief => self.brief(env),
            Kind::Violation => self.violation(env),
        }
    }

    fn echo(&mut self, env: &Env) -> Result<(), String> {
        let _open = Open::new(&env.counters.open);
        let mut ws = self.open(env)?;
        let mut flow = Flow::default();
        let messages = self.between(1, 40);
        let in_flight = self.between(1, 4) as usize;
        for _ in 0..messages {
            if env.over() {
                break;
            }
            self.send_one(&mut ws, &mut flow, env, env.max_size)?;
            while flow.echoes.len() >= in_flight {
                flow.receive(&mut ws, env)?;
            }
        }
        flow.drain(&mut ws, env)?;
        self.finish(ws, env)
    }

    /// Ends a session: mostly a clean close, sometimes an application close code, a plain TCP
    /// close or a reset.
    fn finish(&mut self, ws: Ws, env: &Env) -> Result<(), String> {
        match self.next() % 10 {
            0..7 => {
                ws.close(1000, "bye")?;
                add(&env.counters.clean, 1);
            }
            7 => {
                let code = self.between(4000, 4999) as u16;
                ws.close(code, "application code")?;
                add(&env.counters.clean, 1);
            }
            8 => {
                ws.drop_tcp();
                add(&env.counters.unclean, 1);
            }
            _ => {
                ws.reset();
                add(&env.counters.resets, 1);
            }
        }
        Ok(())
    }

    /// Sends one message (maybe fragmented, maybe with a ping before it) and records what
    /// must come back.
    fn send_one(
        &mut self,
        ws: &mut Ws,
        flow: &mut Flow,
        env: &Env,
        max: usize,
    ) -> Result<(), String> {
        let text = self.percent(50);
        let len = self.size(max);
        let payload = self.payload(text, len);
        if self.percent(10) {
            let len = self.between(0, 125) as usize;
            let ping = self.payload(false, len);
            ws.send(Message::Ping(&ping))?;
            flow.pongs.push_back(ping);
            add(&env.counters.pings, 1);
        }
        if self.percent(15) {
            let pieces = self.between(2, 8) as usize;
            let ping = if self.percent(30) {
                let len = self.between(0, 16) as usize;
                let ping = self.payload(false, len);
                flow.pongs.push_back(ping.clone());
                add(&env.counters.pings, 1);
                Some(ping)
            } else {
                None
            };
            ws.send_fragmented(text, &payload, pieces, ping.as_deref())?;
            add(&env.counters.fragmented, 1);
        } else if text {
            // The payload is ASCII.
            let text = std::str::from_utf8(&payload).map_err(|e| e.to_string())?;
            ws.send(Message::Text(text))?;
        } else {
            ws.send(Message::Binary(&payload))?;
        }
        flow.echoes.push_back((text, payload));
        Ok(())
    }

    fn long(&mut self, env: &Env) -> Result<(), String> {
        let _open = Open::new(&env.counters.open);
        let mut ws = self.open(env)?;
        let mut flow = Flow::default();
        let until = Instant::now() + Duration::from_secs(self.between(5, 20));
        while !env.over() && Instant::now() < until {
            self.send_one(&mut ws, &mut flow, env, 512)?;
            flow.drain(&mut ws, env)?;
            pause(env, Duration::from_millis(self.between(200, 1500)));
        }
        ws.close(1000, "done")?;
        add(&env.counters.clean, 1);
        Ok(())
    }

    fn reset(&mut self, env: &Env) -> Result<(), String> {
        let _open = Open::new(&env.counters.open);
        let mut ws = self.open(env)?;
        let mut flow = Flow::default();
        for _ in 0..self.between(0, 5) {
            self.send_one(&mut ws, &mut flow, env, 64 << 10)?;
        }
        flow.drain(&mut ws, env)?;
        // A frame cut anywhere after its first byte, then a reset.
        let len = self.size(env.max_size).max(2);
        let payload = self.payload(false, len);
        ws.raw_frame(true, OpCode::Binary, &payload);
        let keep = self.between(1, len as u64) as usize;
        ws.flush_cut(keep)?;
        ws.reset();
        add(&env.counters.resets, 1);
        Ok(())
    }

    fn stall(&mut self, env: &Env) -> Result<(), String> {
        let _open = Open::new(&env.counters.open);
        let mut ws = self.open(env)?;
        let mut flow = Flow::default();
        let mut budget = self.between(64 << 10, 2 << 20) as usize;
        while budget > 0 && !env.over() {
            let max = budget.min(256 << 10);
            self.send_one(&mut ws, &mut flow, env, max)?;
            budget =
                budget.saturating_sub(flow.echoes.back().map_or(0, |(_, p)| p.len()).max(1024));
        }
        pause(env, Duration::from_millis(self.between(200, 3000)));
        add(&env.counters.stalls, 1);
        flow.drain(&mut ws, env)?;
        self.finish(ws, env)
    }

    fn brief(&mut self, env: &Env) -> Result<(), String> {
        let _open = Open::new(&env.counters.open);
        match self.next() % 4 {
            0 | 1 => {
                let ws = self.open(env)?;
                ws.close(1000, "")?;
                add(&env.counters.clean, 1);
            }
            2 => {
                let mut tcp = TcpStream::connect_timeout(&env.addr, env.timeout)
                    .map_err(|e| format!("connect: {e}"))?;
                let half = format!(
                    "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n",
                    env.url.target, env.url.authority
                );
                tcp.write_all(half.as_bytes())
                    .map_err(|e| format!("write half a request: {e}"))?;
                add(&env.counters.unclean, 1);
            }
            _ => {
                let ws = self.open(env)?;
                ws.drop_tcp();
                add(&env.counters.unclean, 1);
            }
        }
        Ok(())
    }

    fn violation(&mut self, env: &Env) -> Result<(), String> {
        let _open = Open::new(&env.counters.open);
        let mut ws = self.open(env)?;
        let (what, expected) = match self.next() % 4 {
            0 => {
                ws.raw_frame_with(true, OpCode::Text, b"unmasked", None);
                ("an unmasked frame", 1002)
            }
            1 => {
                ws.raw_frame(true, OpCode::Text, b"not \xff utf-8");
                ("invalid UTF-8", 1007)
            }
            2 => {
                ws.raw_frame(true, OpCode::Ping, &[0u8; 126]);
                ("a 126-byte ping", 1002)
            }
            _ => {
                ws.raw_frame(false, OpCode::Pong, b"fragmented control");
                ("a fragmented pong", 1002)
            }
        };
        ws.flush_cut(usize::MAX)?;
        match ws.recv()? {
            Received::Close(Some(code), _) if code == expected => {}
            other => {
                return Err(format!(
                    "after {what}: expected close {expected}, got {}",
                    other.describe()
                ));
            }
        }
        // The server closes TCP at once after a protocol error.
        ws.expect_eof()?;
        add(&env.counters.violations, 1);
        Ok(())
    }
}

/// Waits `wait` or until the run is over, whichever comes first.
fn pause(env: &Env, wait: Duration) {
    let until = Instant::now() + wait;
    while !env.over() {
        let now = Instant::now();
        if now >= until {
            break;
        }
        thread::sleep((until - now).min(Duration::from_millis(100)));
    }
}

/// What a connection is owed: echoes in order, pongs in order (a pong may pass queued echoes).
#[derive(Debug, Default)]
struct Flow {
    echoes: VecDeque<(bool, Vec<u8>)>,
    pongs: VecDeque<Vec<u8>>,
}

impl Flow {
    /// Reads until one echo arrives and checks it (and any pong before it).
    fn receive(&mut self, ws: &mut Ws, env: &Env) -> Result<(), String> {
        loop {
            let got = ws.recv()?;
            let (text, payload) = match got {
                Received::Text(p) => (true, p),
                Received::Binary(p) => (false, p),
                Received::Pong(p) => {
                    match self.pongs.pop_front() {
                        Some(expected) if expected == p => {}
                        expected => {
                            add(&env.counters.wrong, 1);
                            return Err(format!(
                                "a pong of {} bytes that was not the one owed ({:?} bytes)",
                                p.len(),
                                expected.map(|e| e.len())
                            ));
                        }
                    }
                    continue;
                }
                Received::Close(code, reason) => {
                    return Err(format!(
                        "the server closed ({code:?} {reason:?}) with {} echoes owed",
                        self.echoes.len()
                    ));
                }
            };
            let Some((sent_text, sent)) = self.echoes.pop_front() else {
                add(&env.counters.wrong, 1);
                return Err("an echo of nothing sent".into());
            };
            if sent_text != text || sent != payload {
                add(&env.counters.wrong, 1);
                return Err(format!(
                    "wrong echo: sent {} {} bytes, got {} {} bytes{}",
                    kind(sent_text),
                    sent.len(),
                    kind(text),
                    payload.len(),
                    first_difference(&sent, &payload)
                ));
            }
            add(&env.counters.messages, 1);
            add(&env.counters.bytes, sent.len() as u64);
            return Ok(());
        }
    }

    /// Reads every echo and pong owed.
    fn drain(&mut self, ws: &mut Ws, env: &Env) -> Result<(), String> {
        while !self.echoes.is_empty() {
            self.receive(ws, env)?;
        }
        while let Some(expected) = self.pongs.pop_front() {
            match ws.recv()? {
                Received::Pong(p) if p == expected => {}
                other => {
                    add(&env.counters.wrong, 1);
                    return Err(format!("expected a pong, got {}", other.describe()));
                }
            }
        }
        Ok(())
    }
}

fn kind(text: bool) -> &'static str {
    if text { "text" } else { "binary" }
}

fn first_difference(a: &[u8], b: &[u8]) -> String {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => format!(", first difference at byte {i}"),
        None => String::new(),
    }
}
