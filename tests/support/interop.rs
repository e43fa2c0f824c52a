//! Real WebSocket clients against the engine (`tests/interop_*.rs`): where the clients that
//! `.ci/interop-setup` installs live, an echo server with permessage-deflate that serves the demo
//! page (over plain TCP or TLS), running a client with a time limit, and reading the one JSON
//! line it prints. And the other way round: the Python and Node servers (`python_server.py`,
//! `node_server.js`) as processes that clients (sockeye-client, `sockeye connect`) talk to.
//!
//! A missing client or server fails the test when the `CI` environment variable is set, and
//! skips it (with a message saying to run `bash .ci/interop-setup`) elsewhere.

use std::fs;
use std::io::{BufRead as _, BufReader, Read as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use sockeye::demo::DEMO_PAGE;
use sockeye::proto::handshake::Head;
use sockeye::proto::{Message, Request};
use sockeye::server::{
    Accept, Handler, HttpResponse, Outbox, Reject, Running, Server, ServerConfig, TlsConfig,
};
use sockeye_deflate::DeflateConfig;

pub use crate::json::Json;
use crate::tls::{Authority, Identity, SERVER_NAMES, tls_config};

/// The Python `websockets` version `.ci/interop-setup` pins.
pub const PYTHON_WEBSOCKETS: &str = "14.1";

/// The Node `ws` version `.ci/interop-setup` pins.
pub const NODE_WS: &str = "8.18.0";

/// Where Debian's chromium package puts the browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where `.ci/interop-setup` installs the clients.
pub fn install_dir() -> PathBuf {
    repo_root().join("target").join("interop")
}

/// A client script under `tests/interop/`.
pub fn script(name: &str) -> PathBuf {
    repo_root().join("tests").join("interop").join(name)
}

/// The venv's Python with `websockets` at [`PYTHON_WEBSOCKETS`].
///
/// # Errors
///
/// What is missing.
pub fn python_websockets() -> Result<PathBuf, String> {
    let venv = install_dir().join("venv");
    let python = venv.join("bin").join("python");
    if !python.exists() {
        return Err(format!("no Python venv at {}", venv.display()));
    }
    let dist_info = format!("websockets-{PYTHON_WEBSOCKETS}.dist-info");
    let lib = venv.join("lib");
    let installed = fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .any(|dir| dir.path().join("site-packages").join(&dist_info).exists());
    if !installed {
        return Err(format!(
            "Python websockets {PYTHON_WEBSOCKETS} is not installed in {}",
            venv.display()
        ));
    }
    Ok(python)
}

/// `node` and the `node_modules` folder holding `ws` at [`NODE_WS`].
///
/// # Errors
///
/// What is missing.
pub fn node_ws() -> Result<(PathBuf, PathBuf), String> {
    let node = PathBuf::from("node");
    let version = Command::new(&node).arg("--version").output();
    if !version.is_ok_and(|out| out.status.success()) {
        return Err("`node` is not on PATH".into());
    }
    let modules = install_dir().join("node").join("node_modules");
    let manifest = fs::read_to_string(modules.join("ws").join("package.json")).unwrap_or_default();
    if !manifest.contains(&format!("\"version\": \"{NODE_WS}\"")) {
        return Err(format!(
            "Node ws {NODE_WS} is not installed in {}",
            modules.display()
        ));
    }
    Ok((node, modules))
}

/// The checks every run of the Python and Node clients makes; each is `true` when it passed.
pub const CLIENT_CHECKS: [&str; 12] = [
    "subprotocol",
    "text",
    "binary",
    "empty",
    "fragmented_text",
    "fragmented_binary",
    "pipelined",
    "large_binary",
    "large_text",
    "ping",
    "after_ping",
    "close_echoed",
];

/// Debian's chromium.
///
/// # Errors
///
/// When it is not installed.
pub fn chromium() -> Result<PathBuf, String> {
    let path = PathBuf::from(CHROMIUM);
    if path.exists() {
        Ok(path)
    } else {
        Err(format!("{CHROMIUM} is missing (Debian package `chromium`)"))
    }
}

/// The client, or `None` when the test should be skipped because it is missing.
///
/// # Panics
///
/// When it is missing and the `CI` environment variable is set: CI installs every client.
pub fn found<T>(client: Result<T, String>) -> Option<T> {
    match client {
        Ok(client) => Some(client),
        Err(missing) if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) => {
            panic!("{missing}: run `bash .ci/interop-setup` (CI runs it in .ci/test)")
        }
        Err(missing) => {
            eprintln!("skipping: {missing}; run `bash .ci/interop-setup` to install it");
            None
        }
    }
}

/// `python_server.py` on the venv's Python with `websockets` at [`PYTHON_WEBSOCKETS`]; `None`
/// when the test is skipped ([`found`]).
///
/// # Panics
///
/// As [`found`] and [`ServerProcess::start`].
pub fn python_server() -> Option<ServerProcess> {
    python_server_with(None)
}

/// [`python_server`] over TLS, with `ca`'s server certificate.
///
/// # Panics
///
/// As [`python_server`].
pub fn python_server_tls(ca: &TestCa) -> Option<ServerProcess> {
    python_server_with(Some(ca))
}

fn python_server_with(tls: Option<&TestCa>) -> Option<ServerProcess> {
    let python = found(python_websockets())?;
    let mut command = Command::new(python);
    command.arg(script("python_server.py"));
    let names = ["python websockets", "python websockets (TLS)"];
    Some(ServerProcess::start_with(
        names,
        command,
        PYTHON_WEBSOCKETS,
        tls,
    ))
}

/// `node_server.js` with the installed `ws` at [`NODE_WS`]; `None` when the test is skipped
/// ([`found`]).
///
/// # Panics
///
/// As [`found`] and [`ServerProcess::start`].
pub fn node_server() -> Option<ServerProcess> {
    node_server_with(None)
}

/// [`node_server`] over TLS, with `ca`'s server certificate.
///
/// # Panics
///
/// As [`node_server`].
pub fn node_server_tls(ca: &TestCa) -> Option<ServerProcess> {
    node_server_with(Some(ca))
}

fn node_server_with(tls: Option<&TestCa>) -> Option<ServerProcess> {
    let (node, modules) = found(node_ws())?;
    let mut command = Command::new(node);
    command
        .env("NODE_PATH", modules)
        .arg(script("node_server.js"));
    let names = ["node ws", "node ws (TLS)"];
    Some(ServerProcess::start_with(names, command, NODE_WS, tls))
}

/// A server process a test started (`python_server.py`, `node_server.js`), and what it prints;
/// killed (by its handle) on drop, a failed test included.
#[derive(Debug)]
pub struct ServerProcess {
    /// The server's name, for messages.
    name: &'static str,
    child: Child,
    /// Held open while the test runs: the server exits by itself when its standard input ends.
    _stdin: Option<ChildStdin>,
    port: u16,
    /// The lines of its standard output, read on a thread.
    lines: Receiver<String>,
    /// Its standard error so far, read on a thread; shown when something fails.
    stderr: Arc<Mutex<String>>,
    /// The CA file that signed its certificate, when it serves TLS.
    ca_file: Option<PathBuf>,
}

impl ServerProcess {
    /// How long a server may take to print its port (an interpreter starting on a busy
    /// machine).
    pub const STARTUP: Duration = Duration::from_secs(30);

    /// How long [`expect_closed`](Self::expect_closed) waits for its line (generous: a busy
    /// 2-core machine).
    pub const PATIENCE: Duration = Duration::from_secs(30);

    /// Starts `command` and waits up to [`ServerProcess::STARTUP`] for its first line, which
    /// must name `version` and the port it listens on.
    ///
    /// # Panics
    ///
    /// When it cannot start, prints nothing in time, or its line is not the expected one.
    pub fn start(name: &'static str, mut command: Command, version: &str) -> ServerProcess {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("the server's stdout");
        let mut stderr_pipe = child.stderr.take().expect("the server's stderr");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let collected = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stderr_pipe.read(&mut buf) {
                if let Ok(mut text) = collected.lock() {
                    text.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
        // The guard exists before anything can fail, so that a failed start kills the child.
        let mut server = ServerProcess {
            name,
            child,
            _stdin: stdin,
            port: 0,
            lines,
            stderr,
            ca_file: None,
        };
        let startup = ServerProcess::STARTUP;
        let line = server.lines.recv_timeout(startup).unwrap_or_else(|e| {
            panic!(
                "{name}: no start line within {startup:?} ({e})\n{}",
                server.stderr()
            )
        });
        let start = Json::parse(&line).unwrap_or_else(|e| panic!("{name}: {e} in {line:?}"));
        assert_eq!(
            start.get("version").as_str(),
            Some(version),
            "{name}: {line}"
        );
        server.port = start
            .get("port")
            .as_f64()
            .and_then(|port| u16::try_from(port as u64).ok())
            .filter(|&port| port != 0)
            .unwrap_or_else(|| panic!("{name}: no port in {line:?}"));
        server
    }

    /// [`start`](Self::start), over TLS with `tls`'s server certificate when given (the script
    /// takes `--tls CERT KEY`); `names` are the server's names without TLS and with it.
    fn start_with(
        names: [&'static str; 2],
        mut command: Command,
        version: &str,
        tls: Option<&TestCa>,
    ) -> ServerProcess {
        if let Some(ca) = tls {
            command.arg("--tls").args(ca.server_files());
        }
        let mut server = ServerProcess::start(names[usize::from(tls.is_some())], command, version);
        server.ca_file = tls.map(|ca| ca.ca_file().to_owned());
        server
    }

    /// The server's name, for messages.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The port it listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL it listens on (`wss://` when it serves TLS).
    pub fn url(&self) -> String {
        let scheme = if self.ca_file.is_some() { "wss" } else { "ws" };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// The PEM file of the CA that signed its certificate, when it serves TLS.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// What it wrote to standard error so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .map(|text| text.clone())
            .unwrap_or_default()
    }

    /// Waits up to [`ServerProcess::PATIENCE`] for the line saying that a connection ended
    /// with `code` (and `reason`, when given) received from the client; lines about other
    /// connections are passed over.
    ///
    /// # Panics
    ///
    /// When no such line comes in time, with the lines passed over.
    pub fn expect_closed(&self, code: u16, reason: Option<&str>) {
        let patience = ServerProcess::PATIENCE;
        let deadline = Instant::now() + patience;
        let mut passed = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|e| {
                panic!(
                    "{}: no report of a close with {code} and {reason:?} within {patience:?} \
                     ({e}); other lines: {passed:?}\n--- server stderr\n{}",
                    self.name,
                    self.stderr()
                )
            });
            if let Ok(report) = Json::parse(&line) {
                let same_code = report.get("closed").as_f64() == Some(f64::from(code));
                let got_reason = report.get("reason").as_str();
                if same_code && reason.is_none_or(|reason| got_reason == Some(reason)) {
                    return;
                }
            }
            passed.push(line);
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The echo handler of `sockeye serve` with its demo page: every message is sent back, the
/// `echo` subprotocol is selected when offered, and `GET /` answers [`DEMO_PAGE`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DemoEcho;

impl Handler for DemoEcho {
    type Conn = ();

    fn on_upgrade(&mut self, _req: &Request<'_>, accept: &mut Accept<'_>) -> Result<(), Reject> {
        accept.select_protocol(&["echo"]);
        Ok(())
    }

    fn on_message(&mut self, _conn: &mut (), msg: Message<'_>, out: &mut Outbox<'_>) {
        let _ = out.send(msg);
    }

    fn on_http(&mut self, head: &Head<'_>, _: &sockeye::server::Handle) -> HttpResponse {
        match (head.method, head.path) {
            ("GET", "/") | ("GET", "/index.html") => {
                HttpResponse::new(200, "text/html; charset=utf-8", DEMO_PAGE.as_bytes())
            }
            _ => HttpResponse::not_found(),
        }
    }
}

/// A running [`DemoEcho`] server on `127.0.0.1` with permessage-deflate on for every message
/// (threshold 0), over plain TCP or TLS; shut down on drop.
#[derive(Debug)]
pub struct EchoServer {
    running: Option<Running>,
    addr: SocketAddr,
    tls: bool,
}

impl EchoServer {
    /// Starts one worker on a free port.
    ///
    /// # Panics
    ///
    /// When the server cannot start.
    pub fn start() -> EchoServer {
        EchoServer::start_with(None)
    }

    /// Starts one worker on a free port, terminating TLS with `tls`.
    ///
    /// # Panics
    ///
    /// When the server cannot start.
    pub fn start_tls(tls: TlsConfig) -> EchoServer {
        EchoServer::start_with(Some(tls))
    }

    fn start_with(tls: Option<TlsConfig>) -> EchoServer {
        let mut config = ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.workers = 1;
        config.shutdown_timeout = Duration::from_secs(2);
        let mut deflate = DeflateConfig::default();
        deflate.threshold = 0;
        config.deflate = Some(deflate);
        let secure = tls.is_some();
        config.tls = tls;
        let server = Server::bind(config, DemoEcho).expect("bind the echo server");
        let running = server.spawn().expect("spawn the echo server");
        let addr = running.local_addrs()[0];
        EchoServer {
            running: Some(running),
            addr,
            tls: secure,
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://ADDR/echo`, or `wss://` over TLS.
    pub fn ws_url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}/echo", self.addr)
    }

    /// `http://ADDR/` (or `https://`), the demo page.
    pub fn http_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/", self.addr)
    }

    /// The engine's counters.
    pub fn stats(&self) -> sockeye::server::Stats {
        self.running
            .as_ref()
            .map(|r| r.handle().stats())
            .unwrap_or_default()
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.handle().shutdown();
            running.join().expect("no worker died");
        }
    }
}

/// A test CA in a temporary directory, as a PEM file for clients in other languages, and a
/// server certificate it signed for [`SERVER_NAMES`] (also as PEM files, for servers in other
/// languages).
#[derive(Debug)]
pub struct TestCa {
    /// Holds the files; removed on drop.
    _dir: TempDir,
    ca_file: PathBuf,
    server: Identity,
    server_files: [PathBuf; 2],
}

impl TestCa {
    /// Makes the CA and the certificate; writes `ca.pem`, `server.pem` and `server-key.pem`.
    ///
    /// # Panics
    ///
    /// When a file cannot be written.
    pub fn new(label: &str) -> TestCa {
        let ca = Authority::new("sockeye interop test CA");
        let server = ca.server(&SERVER_NAMES);
        let dir = TempDir::new(label);
        let ca_file = ca.write_pem(&dir.path().join("ca.pem"));
        let server_files = [
            (dir.path().join("server.pem"), server.chain_pem()),
            (dir.path().join("server-key.pem"), server.key_pem()),
        ]
        .map(|(path, pem)| {
            fs::write(&path, pem).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            path
        });
        TestCa {
            _dir: dir,
            ca_file,
            server,
            server_files,
        }
    }

    /// The server certificate's PEM files: the chain and the private key.
    pub fn server_files(&self) -> &[PathBuf; 2] {
        &self.server_files
    }

    /// The CA certificate, PEM.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The server certificate.
    pub fn server(&self) -> &Identity {
        &self.server
    }

    /// An [`EchoServer`] over TLS with the server certificate.
    pub fn start_server(&self) -> EchoServer {
        EchoServer::start_tls(tls_config(&self.server.settings()))
    }
}

/// What a client process left behind.
#[derive(Debug)]
pub struct ClientRun {
    /// How it exited.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
    /// How long it ran.
    pub elapsed: Duration,
}

impl ClientRun {
    /// The last line of stdout that is a JSON object, parsed.
    ///
    /// # Panics
    ///
    /// When there is none, or it is not valid JSON: the message shows both outputs.
    pub fn json(&self) -> Json {
        let line = self
            .stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .unwrap_or_else(|| panic!("the client printed no JSON line\n{self}"));
        Json::parse(line).unwrap_or_else(|e| panic!("bad JSON from the client ({e})\n{self}"))
    }
}

impl std::fmt::Display for ClientRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "client exit: {} after {:.1?}\n--- stdout\n{}--- stderr\n{}---",
            self.status, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// Runs `command` to its end, with stdin closed and both outputs captured, killing it (by its
/// PID) when it runs past `limit`.
///
/// # Panics
///
/// When it cannot start or runs past `limit` (with what it printed so far).
pub fn run_client(mut command: Command, limit: Duration) -> ClientRun {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let stdout = read_in_background(child.stdout.take());
    let stderr = read_in_background(child.stderr.take());
    // stdout reaches its end when the process exits (the clients start no children).
    let out = stdout.recv_timeout(limit);
    if out.is_err() {
        let _ = child.kill();
        let _ = child.wait();
        let out = stdout
            .recv_timeout(Duration::from_secs(1))
            .unwrap_or_default();
        let err = stderr
            .recv_timeout(Duration::from_secs(1))
            .unwrap_or_default();
        panic!("{command:?} ran past {limit:?}\n--- stdout\n{out}--- stderr\n{err}---");
    }
    let status = child.wait().expect("wait for the client");
    ClientRun {
        status,
        stdout: out.unwrap_or_default(),
        stderr: stderr.recv_timeout(limit).unwrap_or_default(),
        elapsed: started.elapsed(),
    }
}

/// Reads a pipe to its end on a thread; the text arrives on the channel.
fn read_in_background(pipe: Option<impl std::io::Read + Send + 'static>) -> mpsc::Receiver<String> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        let _ = send.send(String::from_utf8_lossy(&bytes).into_owned());
    });
    receive
}

/// A process started in its own process group, killed with that whole group (`kill -KILL
/// -PID`) on drop: a browser and the helpers it forks.
#[derive(Debug)]
pub struct ProcessGroup {
    child: Child,
}

impl ProcessGroup {
    /// Starts `command` as the leader of a new process group.
    ///
    /// # Errors
    ///
    /// When it cannot start.
    pub fn spawn(mut command: Command) -> std::io::Result<ProcessGroup> {
        use std::os::unix::process::CommandExt as _;
        let child = command.process_group(0).spawn()?;
        Ok(ProcessGroup { child })
    }

    /// The leader's PID (also the group's id).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether the leader has exited (its status, if so).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh, empty directory under the system's temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<tmp>/sockeye-<label>-<pid>-<nanos>`.
    ///
    /// # Panics
    ///
    /// When it cannot be created.
    pub fn new(label: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path =
            std::env::temp_dir().join(format!("sockeye-{label}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir { path }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A headless Chromium in a fresh profile with its DevTools port open (`about:blank` loaded),
/// killed with the helpers it forked on drop. Over TLS, it trusts the test server's
/// certificate by its key (`--ignore-certificate-errors-spki-list`).
#[derive(Debug)]
pub struct Chromium {
    /// Killed on drop.
    _browser: ProcessGroup,
    port: u16,
    log: PathBuf,
    /// Holds the profile and the log; removed after the browser is gone (fields drop in order).
    _dir: TempDir,
}

impl Chromium {
    /// How long the browser may take to open its DevTools port.
    pub const STARTUP: Duration = Duration::from_secs(20);

    /// Starts `chromium` (from [`chromium()`]); `spki`: the base64 SHA-256 of a server
    /// certificate's public key that the browser then trusts.
    ///
    /// # Panics
    ///
    /// When it cannot start, exits, or opens no DevTools port within [`Chromium::STARTUP`],
    /// with its log.
    pub fn start(chromium: &Path, spki: Option<&str>) -> Chromium {
        let dir = TempDir::new("chromium");
        let profile = dir.path().join("profile");
        let log_path = dir.path().join("chromium.log");
        let log = fs::File::create(&log_path).expect("create the browser log");
        let mut command = Command::new(chromium);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(spki.map(|spki| format!("--ignore-certificate-errors-spki-list={spki}")))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("share the browser log"))
            .stderr(log);
        let mut browser = ProcessGroup::spawn(command).expect("start chromium");
        let port = devtools_port(&profile, &mut browser, &log_path);
        Chromium {
            _browser: browser,
            port,
            log: log_path,
            _dir: dir,
        }
    }

    /// Its DevTools port on 127.0.0.1.
    pub fn devtools_port(&self) -> u16 {
        self.port
    }

    /// What it printed so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The port from `<profile>/DevToolsActivePort` (its first line), once the browser wrote it.
///
/// # Panics
///
/// When the browser exits first or takes longer than [`Chromium::STARTUP`], with its log.
fn devtools_port(profile: &Path, browser: &mut ProcessGroup, log: &Path) -> u16 {
    /// How often the file is looked for while the browser starts.
    const POLL: Duration = Duration::from_millis(20);
    let file = profile.join("DevToolsActivePort");
    let started = Instant::now();
    loop {
        let text = fs::read_to_string(&file).unwrap_or_default();
        // The file is complete once its second line (the browser's target path) is there.
        if let Some((port, _)) = text.split_once('\n') {
            if let Ok(port) = port.trim().parse() {
                return port;
            }
        }
        let log = || fs::read_to_string(log).unwrap_or_default();
        if let Some(status) = browser.exited() {
            panic!(
                "chromium exited ({status}) before opening DevTools\n{}",
                log()
            );
        }
        assert!(
            started.elapsed() < Chromium::STARTUP,
            "chromium (pid {}) wrote no {} within {:?}\n{}",
            browser.id(),
            file.display(),
            Chromium::STARTUP,
            log()
        );
        std::thread::sleep(POLL);
    }
}

/// Asserts that every check of a client's results for one run is `true`.
///
/// # Panics
///
/// Naming the failed checks, with the whole result line.
pub fn assert_checks(run: &Json, name: &str, checks: &[&str], whole: &ClientRun) {
    let failed: Vec<&str> = checks
        .iter()
        .copied()
        .filter(|check| run.get(check).as_bool() != Some(true))
        .collect();
    assert!(
        failed.is_empty(),
        "{name}: checks failed: {failed:?}; error: {:?}\n{whole}",
        run.get("error")
    );
}

/// Asserts that a client's results for one run name a TLS 1.x version (`"tls"`) when `tls` is
/// set, and none otherwise.
///
/// # Panics
///
/// When they do not, with the whole result line.
pub fn assert_transport(run: &Json, name: &str, tls: bool, whole: &ClientRun) {
    let version = run.get("tls").as_str();
    if tls {
        assert!(
            version.is_some_and(|v| v.starts_with("TLSv1.")),
            "{name}: {whole}"
        );
    } else {
        assert_eq!(version, None, "{name}: {whole}");
    }
}

/// Starts `sockeye serve` through `command` (stdin and stdout closed, stderr piped) and waits up
/// to `limit` for its start line. Returns the process, the address of the start line
/// (`sockeye serve: listening on ADDR ...`), the line itself, and the later stderr lines, read
/// on a thread so that the server never writes to a closed pipe.
///
/// # Panics
///
/// When it does not start, or its first line names no address.
pub fn start_serve(
    command: &mut Command,
    limit: Duration,
) -> (Child, SocketAddr, String, Receiver<String>) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sockeye serve");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let line = lines.recv_timeout(limit).unwrap_or_else(|e| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("no start line from sockeye serve within {limit:?}: {e}")
    });
    let addr = line
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.trim_end_matches(',').parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (child, addr, line, lines)
}
