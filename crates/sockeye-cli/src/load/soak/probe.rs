//! What the soak watches on the server: its process (resident memory and open file descriptors
//! from `/proc`), its counters (`GET /stats`, as `sockeye serve` answers it), and whether it
//! still answers (a ping every second on a connection of its own).

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use sockeye_proto::Message;

use super::super::sys::Entropy;
use super::session::Env;
use super::wire::{Received, Ws};

/// The server's process, read through `/proc`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Process {
    pid: u32,
}

impl Process {
    pub(super) fn new(pid: u32) -> Self {
        Process { pid }
    }

    /// Resident memory in bytes.
    ///
    /// # Errors
    ///
    /// The process is gone or `/proc` cannot be read.
    pub(super) fn rss(self) -> Result<u64, String> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid))
            .map_err(|e| format!("server process {}: {e}", self.pid))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kb| kb.trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .ok_or_else(|| format!("server process {}: no VmRSS line", self.pid))
    }

    /// Open file descriptors.
    ///
    /// # Errors
    ///
    /// The process is gone or its descriptors cannot be listed (another user's process).
    pub(super) fn fds(self) -> Result<u64, String> {
        let dir = fs::read_dir(format!("/proc/{}/fd", self.pid))
            .map_err(|e| format!("server process {} descriptors: {e}", self.pid))?;
        Ok(dir.count() as u64)
    }
}

/// The server's counters from `GET /stats` (a JSON object of numbers), or `None` when the
/// server does not answer that path with 200.
pub(super) fn server_stats(addr: SocketAddr, authority: &str) -> Option<Vec<(String, u64)>> {
    let timeout = Duration::from_secs(5);
    let mut tcp = TcpStream::connect_timeout(&addr, timeout).ok()?;
    tcp.set_read_timeout(Some(timeout)).ok()?;
    let request = format!("GET /stats HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).ok()?;
    let mut answer = Vec::new();
    tcp.take(1 << 20).read_to_end(&mut answer).ok()?;
    let answer = String::from_utf8(answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    parse_counters(body)
}

/// Parses a flat JSON object of non-negative integers.
fn parse_counters(body: &str) -> Option<Vec<(String, u64)>> {
    let inner = body.trim().strip_prefix('{')?.strip_suffix('}')?;
    inner
        .split(',')
        .filter(|field| !field.trim().is_empty())
        .map(|field| {
            let (name, value) = field.split_once(':')?;
            let name = name.trim().strip_prefix('"')?.strip_suffix('"')?;
            Some((name.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// One counter by name.
pub(super) fn counter(stats: &[(String, u64)], name: &str) -> Option<u64> {
    stats.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
}

/// The server's open connections without the `/stats` request that asked (which it counts).
pub(super) fn open_besides_self(stats: &[(String, u64)]) -> Option<u64> {
    counter(stats, "connections_open").map(|open| open.saturating_sub(1))
}

/// The pinger's findings, read by the sampler.
#[derive(Debug, Default)]
pub(super) struct Pings {
    /// Pongs received.
    pub(super) answered: u64,
    /// The slowest answer since the last sample, in microseconds.
    pub(super) slowest_us: u64,
    /// The slowest answer of the run.
    pub(super) slowest_run_us: u64,
}

/// Pings the server every second on a connection of its own until the run is over; a ping
/// not answered within the run's timeout is a failure and stops the run.
pub(super) fn spawn_pinger(env: Arc<Env>, pings: Arc<Mutex<Pings>>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        if let Err(error) = ping_loop(&env, &pings) {
            env.counters
                .fail(format!("the server stopped answering: {error}"));
            env.abort.store(true, Ordering::Relaxed);
        }
    })
}

fn ping_loop(env: &Env, pings: &Mutex<Pings>) -> Result<(), String> {
    let mut entropy = Entropy::open().map_err(|e| e.to_string())?;
    let mut ws = Ws::connect(env.addr, &env.url, None, env.timeout, &mut entropy)?;
    let mut seq = 0u64;
    while !env.abort.load(Ordering::Relaxed) && Instant::now() < env.deadline {
        seq += 1;
        let payload = seq.to_be_bytes();
        let sent = Instant::now();
        ws.send(Message::Ping(&payload))?;
        loop {
            match ws.recv()? {
                Received::Pong(p) if p == payload => break,
                Received::Pong(_) => {}
                other => return Err(format!("the pinger got {}", other.describe())),
            }
        }
        let us = sent.elapsed().as_micros() as u64;
        if let Ok(mut p) = pings.lock() {
            p.answered += 1;
            p.slowest_us = p.slowest_us.max(us);
            p.slowest_run_us = p.slowest_run_us.max(us);
        }
        let next = sent + Duration::from_secs(1);
        while Instant::now() < next && Instant::now() < env.deadline {
            thread::sleep(Duration::from_millis(50));
        }
    }
    ws.close(1000, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_parse() {
        let body = "{\"connections_open\":3,\"accepted\":10}\n";
        let stats = parse_counters(body).expect("parsed");
        assert_eq!(counter(&stats, "connections_open"), Some(3));
        assert_eq!(counter(&stats, "accepted"), Some(10));
        assert_eq!(counter(&stats, "missing"), None);
        assert_eq!(parse_counters("{}"), Some(vec![]));
        assert_eq!(parse_counters("{\"a\":-1}"), None);
        assert_eq!(parse_counters("not json"), None);
    }
}
