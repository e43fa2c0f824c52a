//! A real NATS broker for the backplane tests: Debian's `nats-server` (installed by
//! `.ci/interop-setup`), started by each test on free ports and stopped by its PID.
//!
//! A missing `nats-server` fails the test when `CI` is set and skips it elsewhere
//! ([`interop::found`](crate::interop::found)).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::interop::{TempDir, found};

/// Where Debian's package puts the broker, and where else to look.
const PLACES: [&str; 3] = [
    "/usr/sbin/nats-server",
    "/usr/bin/nats-server",
    "/usr/local/bin/nats-server",
];

/// The `nats-server` binary.
///
/// # Errors
///
/// When it is not installed.
pub fn nats_server() -> Result<PathBuf, String> {
    PLACES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| "nats-server is missing (Debian package `nats-server`)".to_owned())
}

/// A port nothing listens on now (on the loopback interface of this namespace).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running `nats-server`.
#[derive(Debug)]
pub struct Broker {
    bin: PathBuf,
    host: IpAddr,
    port: u16,
    /// Its HTTP monitoring port (loopback only; none inside a namespace).
    monitor: Option<u16>,
    netns: Option<String>,
    dir: TempDir,
    child: Option<Child>,
    /// Times it was started.
    starts: u32,
    /// Its configuration file, if any.
    config: Option<PathBuf>,
}

impl Broker {
    /// A broker on 127.0.0.1, or `None` when the test should be skipped (not under `CI`).
    ///
    /// # Panics
    ///
    /// When `nats-server` is missing under `CI`, or does not start.
    pub fn start() -> Option<Broker> {
        Broker::start_with_config("")
    }

    /// A broker on 127.0.0.1 with `config` (nats-server configuration text, such as
    /// `max_payload: 1024`), or `None` when the test should be skipped.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub fn start_with_config(config: &str) -> Option<Broker> {
        let bin = found(nats_server())?;
        let mut broker = Broker {
            bin,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: free_port(),
            monitor: Some(free_port()),
            netns: None,
            dir: TempDir::new("nats"),
            child: None,
            starts: 0,
            config: None,
        };
        if !config.is_empty() {
            let path = broker.dir.path().join("nats.conf");
            std::fs::write(&path, config).expect("write the broker's configuration");
            broker.config = Some(path);
        }
        broker.launch();
        Some(broker)
    }

    /// A broker listening on `host` inside network namespace `netns` (`ip netns exec`).
    ///
    /// # Panics
    ///
    /// When it does not start.
    pub fn start_in(bin: PathBuf, netns: &str, host: IpAddr) -> Broker {
        let mut broker = Broker {
            bin,
            host,
            port: free_port(),
            monitor: None,
            netns: Some(netns.to_owned()),
            dir: TempDir::new("nats"),
            child: None,
            starts: 0,
            config: None,
        };
        broker.launch();
        broker
    }

    /// `nats://HOST:PORT`.
    pub fn url(&self) -> String {
        format!("nats://{}", SocketAddr::new(self.host, self.port))
    }

    fn launch(&mut self) {
        self.starts += 1;
        let log = self.dir.path().join(format!("nats-{}.log", self.starts));
        let mut command = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        command
            .args(["-a", &self.host.to_string(), "-p", &self.port.to_string()])
            .arg("-l")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(config) = &self.config {
            command.arg("-c").arg(config);
        }
        if let Some(monitor) = self.monitor {
            command.args(["-m", &monitor.to_string()]);
        }
        let mut child = command.spawn().expect("start nats-server");
        // Ready when its log says so (read from the file: it works inside a namespace too).
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("Server is ready") {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("nats-server exited with {status} at start: {text}");
            }
            assert!(
                Instant::now() < deadline,
                "nats-server not ready in 20 s: {text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }

    /// Kills it (SIGKILL, by its PID): the nodes see their connection drop.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// The subscriptions the broker holds, from its monitoring endpoint.
    ///
    /// # Panics
    ///
    /// Inside a namespace (no monitoring), or when the answer has no count.
    pub fn subscriptions(&self) -> u64 {
        let port = self.monitor.expect("monitoring on loopback brokers only");
        let body = http_get(SocketAddr::new(self.host, port), "/subsz");
        let key = "\"num_subscriptions\":";
        let at = body
            .find(key)
            .unwrap_or_else(|| panic!("no count in /subsz: {body}"));
        body[at + key.len()..]
            .trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count in /subsz: {body}"))
    }

    /// Waits until the broker holds `n` subscriptions; panics after `limit`.
    pub fn wait_subscriptions(&self, n: u64, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let now = self.subscriptions();
            if now == n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the broker holds {now} subscriptions, not {n}, after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Publishes `payload` on `subject` as a plain NATS client would (no headers).
    pub fn publish_raw(&self, subject: &str, payload: &[u8]) {
        let mut stream = TcpStream::connect(SocketAddr::new(self.host, self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut out = Vec::new();
        out.extend_from_slice(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\n");
        out.extend_from_slice(format!("PUB {subject} {}\r\n", payload.len()).as_bytes());
        out.extend_from_slice(payload);
        out.extend_from_slice(b"\r\nPING\r\n");
        stream.write_all(&out).unwrap();
        // The PONG says the broker took the publish.
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !seen.windows(4).any(|w| w == b"PONG") {
            let n = stream.read(&mut buf).unwrap();
            assert!(
                n > 0,
                "the broker closed: {}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buf[..n]);
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A GET's body, over HTTP/1.0.
fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to the monitoring port");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or(text)
}
