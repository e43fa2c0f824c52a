//! `sockeye connect URL` end to end: lines on standard input go out, the echoes come back on
//! standard output, status lines go to standard error, and the exit status tells how the
//! connection ended (0 clean, 1 not opened, 3 closed with another code, 4 broken).
//!
//! The servers: `sockeye serve` over ws:// and wss:// (a test CA made here), and the Python
//! `websockets` and Node `ws` servers of `tests/interop/` (skipped when they are not installed,
//! failed when `CI` is set and they are missing).
//!
//! Every child process is started by a guard that kills it (by its handle) when the test ends,
//! a failed one included; every wait has a limit.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use sockeye_tests::interop::{ServerProcess, TempDir, node_server, python_server, start_serve};
use sockeye_tests::tls::{Authority, SERVER_NAMES};

const BIN: &str = env!("CARGO_BIN_EXE_sockeye");

/// How long `sockeye serve` may take to print its start line (generous: a busy 2-core machine).
const STARTUP: Duration = Duration::from_secs(30);

/// How long any one wait on `sockeye connect` may take: its output, its exit.
const LIMIT: Duration = Duration::from_secs(60);

/// Text with two-, three- and four-byte UTF-8 characters.
const UNICODE: &str = "héllo, wörld ✓ 🦀";

/// A running `sockeye serve`, killed by its handle when dropped.
struct Serve {
    child: Child,
    addr: SocketAddr,
}

impl Serve {
    /// `sockeye serve` on a free port with one worker and permessage-deflate on (for clients
    /// that offer it), plus `extra`.
    fn start(extra: &[&str]) -> Serve {
        let (child, addr, _, _) = start_serve(
            Command::new(BIN)
                .args([
                    "serve",
                    "--addr",
                    "127.0.0.1:0",
                    "--threads",
                    "1",
                    "--deflate",
                ])
                .args(extra),
            STARTUP,
        );
        Serve { child, addr }
    }

    /// `ws://ADDR/`.
    fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which pipe of the child a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pipe {
    Stdout,
    Stderr,
}

/// A running `sockeye connect`, its standard input held by the test; killed by its handle when
/// dropped (after [`Session::wait`] it has exited already, and the kill does nothing).
struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Chunks of its output, read on two threads; the channel ends when both pipes have.
    chunks: Receiver<(Pipe, Vec<u8>)>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// How a `sockeye connect` run ended.
#[derive(Debug)]
struct Outcome {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
    elapsed: Duration,
}

impl Session {
    /// Starts `sockeye connect ARGS` with all three pipes.
    fn start(args: &[&str]) -> Session {
        let mut child = Command::new(BIN)
            .arg("connect")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sockeye connect");
        let stdin = child.stdin.take();
        let (tx, chunks) = mpsc::channel();
        let pipes: [(Pipe, Box<dyn std::io::Read + Send>); 2] = [
            (Pipe::Stdout, Box::new(child.stdout.take().expect("stdout"))),
            (Pipe::Stderr, Box::new(child.stderr.take().expect("stderr"))),
        ];
        for (pipe, mut reader) in pipes {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = reader.read(&mut buf) {
                    if tx.send((pipe, buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            });
        }
        Session {
            child,
            stdin,
            chunks,
            stdout: Vec::new(),
            stderr: Vec::new(),
        }
    }

    /// Writes `bytes` to its standard input (which stays open). A process that exited already
    /// (a connection that could not open) takes none: its exit status tells.
    fn write(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("standard input still open");
        match stdin.write_all(bytes).and_then(|()| stdin.flush()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                panic!("write to sockeye connect: {e}")
            }
            _ => {}
        }
    }

    /// Closes its standard input: `sockeye connect` then closes the connection.
    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Takes one chunk of output, waiting until `deadline`; `false` when both pipes ended.
    ///
    /// # Panics
    ///
    /// When nothing comes before `deadline`, with the output so far.
    fn pump(&mut self, deadline: Instant, waiting_for: &str) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.chunks.recv_timeout(left) {
            Ok((Pipe::Stdout, bytes)) => self.stdout.extend(bytes),
            Ok((Pipe::Stderr, bytes)) => self.stderr.extend(bytes),
            Err(RecvTimeoutError::Disconnected) => return false,
            Err(RecvTimeoutError::Timeout) => panic!(
                "sockeye connect: no {waiting_for} within {LIMIT:?}\n--- stdout\n{}\n--- stderr\n{}",
                String::from_utf8_lossy(&self.stdout),
                String::from_utf8_lossy(&self.stderr)
            ),
        }
        true
    }

    /// Waits up to [`LIMIT`] until its standard output holds `needle`.
    ///
    /// # Panics
    ///
    /// When it does not in time, or the output ends first.
    fn wait_for_stdout(&mut self, needle: &str) {
        let deadline = Instant::now() + LIMIT;
        while !String::from_utf8_lossy(&self.stdout).contains(needle) {
            let what = format!("{needle:?} on stdout");
            assert!(
                self.pump(deadline, &what),
                "sockeye connect ended without {what}\n--- stdout\n{}\n--- stderr\n{}",
                String::from_utf8_lossy(&self.stdout),
                String::from_utf8_lossy(&self.stderr)
            );
        }
    }

    /// Waits up to [`LIMIT`] for it to exit (its standard input as it is: close it first to
    /// make it close the connection), then closes its standard input.
    ///
    /// # Panics
    ///
    /// When it does not exit in time.
    fn wait(&mut self) -> Outcome {
        let started = Instant::now();
        let deadline = started + LIMIT;
        while self.pump(deadline, "end of output") {}
        // Both pipes ended: the process is exiting (it starts no children to hold them).
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for sockeye connect") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "sockeye connect closed its output but has not exited within {LIMIT:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        self.close_stdin();
        Outcome {
            status,
            stdout: std::mem::take(&mut self.stdout),
            stderr: String::from_utf8_lossy(&self.stderr).into_owned(),
            elapsed: started.elapsed(),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Outcome {
    /// Its exit code (`None` when a signal ended it).
    fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Standard output as text.
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Asserts the exit code, showing both outputs when it is another.
    #[track_caller]
    fn expect_code(&self, code: i32) {
        assert_eq!(self.code(), Some(code), "exit status\n{self}");
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sockeye connect: {} after {:.1?}\n--- stdout\n{}\n--- stderr\n{}---",
            self.status,
            self.elapsed,
            self.stdout(),
            self.stderr
        )
    }
}

/// Runs `sockeye connect ARGS` with `input` on standard input, which then ends; waits for it
/// to exit.
fn connect(args: &[&str], input: &[u8]) -> Outcome {
    let mut session = Session::start(args);
    session.write(input);
    session.close_stdin();
    session.wait()
}

/// Runs `sockeye connect ARGS` with `line` as its only line, standard input held open until
/// the answer (one line) is out: a server may answer the client's close before it handles the
/// messages that came ahead of it (Python `websockets` does: its handler can no longer send).
fn ask(args: &[&str], line: &str) -> Outcome {
    let mut session = Session::start(args);
    session.write(format!("{line}\n").as_bytes());
    session.wait_for_stdout("\n");
    session.close_stdin();
    session.wait()
}

/// Runs `sockeye connect ARGS` with `command` as its only line, standard input held open
/// until it exits: the command makes the server close the connection, and the client's own
/// close at the end of its input must not race the server's.
fn connect_until_closed(args: &[&str], command: &str) -> Outcome {
    let mut session = Session::start(args);
    session.write(format!("{command}\n").as_bytes());
    session.wait()
}

/// A port on 127.0.0.1 that nothing listens on: one the system gave out, released again.
fn unused_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("its address").port()
}

#[test]
fn lines_come_back_in_order_and_the_close_is_clean() {
    let serve = Serve::start(&[]);
    let url = serve.url();
    let out = connect(&[&url], format!("hello\n{UNICODE}\n").as_bytes());
    out.expect_code(0);
    assert_eq!(out.stdout(), format!("hello\n{UNICODE}\n"), "{out}");
    let connected = format!("connected to {url} (subprotocol: none, extensions: none)");
    assert!(out.stderr.contains(&connected), "{out}");
    assert!(out.stderr.contains("closed: 1000"), "{out}");

    // An empty input: connected, closed at once, and nothing printed.
    let out = connect(&[&url], b"");
    out.expect_code(0);
    assert_eq!(out.stdout(), "", "{out}");
    assert!(out.stderr.contains("closed: 1000"), "{out}");

    // --quiet: the echoes, and nothing on stderr.
    let out = connect(&["--quiet", &url], b"quiet\n");
    out.expect_code(0);
    assert_eq!(out.stdout(), "quiet\n", "{out}");
    assert_eq!(out.stderr, "", "{out}");
}

#[test]
fn the_subprotocol_and_permessage_deflate_are_negotiated() {
    let serve = Serve::start(&[]);
    let url = serve.url();
    // `sockeye serve` selects `echo` when a client offers it.
    let out = connect(&["--protocol", "chat", "--protocol", "echo", &url], b"p\n");
    out.expect_code(0);
    assert_eq!(out.stdout(), "p\n", "{out}");
    assert!(out.stderr.contains("(subprotocol: echo, "), "{out}");

    // Long enough to be compressed (the server's threshold is 64 bytes).
    let long = UNICODE.repeat(20);
    let out = connect(&["--deflate", &url], format!("{long}\nshort\n").as_bytes());
    out.expect_code(0);
    assert_eq!(out.stdout(), format!("{long}\nshort\n"), "{out}");
    assert!(
        out.stderr.contains("extensions: permessage-deflate"),
        "{out}"
    );
}

#[test]
fn binary_lines_go_out_raw_and_come_back_raw() {
    let serve = Serve::start(&[]);
    let url = serve.url();
    // Bytes that are not UTF-8; the newline ends the message and is not part of it.
    let raw: &[u8] = &[0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, b'z'];
    let mut input = raw.to_vec();
    input.extend_from_slice(b"\nsecond\n");
    let out = connect(&["--binary", &url], &input);
    out.expect_code(0);
    let mut expected = raw.to_vec();
    expected.extend_from_slice(b"\nsecond\n");
    assert_eq!(out.stdout, expected, "{out}");

    // Only the newline ends a binary line: carriage returns are part of it, and come back.
    let out = connect(&["--binary", &url], b"a\r\r\n\r\n");
    out.expect_code(0);
    assert_eq!(out.stdout, b"a\r\r\n\r\n", "{out}");

    // Without --binary, a line that is not UTF-8 is skipped with a message; the others go.
    let out = connect(&[&url], b"before\n\xff\xfe\nafter\n");
    out.expect_code(0);
    assert_eq!(out.stdout(), "before\nafter\n", "{out}");
    assert!(out.stderr.contains("not UTF-8"), "{out}");
}

#[test]
fn connections_that_cannot_open_exit_1() {
    // Nothing listens on the port.
    let refused = format!("ws://127.0.0.1:{}/", unused_port());
    let out = connect(&[&refused], b"hello\n");
    out.expect_code(1);
    assert!(out.stderr.contains("sockeye connect: "), "{out}");
    assert_eq!(out.stdout(), "", "{out}");

    // Not a WebSocket URL.
    let out = connect(&["http://x/"], b"");
    out.expect_code(1);
    assert!(out.stderr.contains("sockeye connect: "), "{out}");

    // A header without a colon, against a server that would accept the connection.
    let serve = Serve::start(&[]);
    let url = serve.url();
    let out = connect(&["--header", "X-Test", &url], b"hello\n");
    out.expect_code(1);
    assert!(out.stderr.contains("--header"), "{out}");
    assert_eq!(out.stdout(), "", "{out}");

    // A TLS option with a ws:// URL.
    let out = connect(&["--tls-insecure", &url], b"");
    out.expect_code(1);
    assert!(out.stderr.contains("--tls-insecure"), "{out}");

    // A server that takes the TCP connection but never answers the upgrade: --timeout.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind a silent listener");
    let silent_url = format!("ws://{}/", silent.local_addr().expect("its address"));
    let out = connect(&["--timeout", "1", &silent_url], b"");
    out.expect_code(1);
    assert!(out.elapsed < Duration::from_secs(30), "{out}");
}

#[test]
fn a_server_killed_mid_connection_exits_4() {
    let mut serve = Serve::start(&[]);
    let url = serve.url();
    let mut session = Session::start(&[&url]);
    session.write(b"before the end\n");
    session.wait_for_stdout("before the end\n");
    serve.child.kill().expect("kill sockeye serve");
    let _ = serve.child.wait();
    session.close_stdin();
    let out = session.wait();
    out.expect_code(4);
    assert!(out.stderr.contains("sockeye connect: "), "{out}");
    assert!(!out.stderr.contains("closed: "), "{out}");
}

/// Sends SIGTERM to `serve`, whose graceful shutdown closes with 1001: `session` then exits 0,
/// having printed `closed: 1001`.
fn going_away_ends(serve: &Serve, session: &mut Session) {
    let term = Command::new("kill")
        .args(["-TERM", &serve.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(term.success(), "kill -TERM: {term}");
    let out = session.wait();
    out.expect_code(0);
    assert!(out.stderr.contains("closed: 1001"), "{out}");
}

#[test]
fn a_server_going_away_exits_0() {
    let serve = Serve::start(&[]);
    let url = serve.url();
    let mut session = Session::start(&[&url]);
    session.write(b"before the end\n");
    session.wait_for_stdout("before the end\n");
    going_away_ends(&serve, &mut session);
}

/// The files of a wss:// test: the CA's certificate, and a server certificate it signed for
/// `localhost` and `127.0.0.1` with its key, as PEM.
struct TlsFiles {
    /// Holds the files; removed on drop.
    dir: TempDir,
}

impl TlsFiles {
    fn new() -> TlsFiles {
        let dir = TempDir::new("connect-tls");
        let ca = Authority::new("sockeye connect test CA");
        ca.write_pem(&dir.path().join("ca.pem"));
        let server = ca.server(&SERVER_NAMES);
        std::fs::write(dir.path().join("cert.pem"), server.chain_pem()).expect("cert.pem");
        std::fs::write(dir.path().join("key.pem"), server.key_pem()).expect("key.pem");
        TlsFiles { dir }
    }

    /// The path of one of the files, as a string for the command line.
    fn path(&self, name: &str) -> String {
        path_arg(&self.dir.path().join(name))
    }
}

fn path_arg(path: &Path) -> String {
    path.to_str().expect("a UTF-8 path").to_owned()
}

#[test]
fn wss_trusts_the_given_ca_only() {
    let files = TlsFiles::new();
    let serve = Serve::start(&[
        "--tls-cert",
        &files.path("cert.pem"),
        "--tls-key",
        &files.path("key.pem"),
    ]);
    let url = format!("wss://{}/", serve.addr);
    let ca = files.path("ca.pem");

    let out = connect(&["--tls-ca", &ca, &url], format!("{UNICODE}\n").as_bytes());
    out.expect_code(0);
    assert_eq!(out.stdout(), format!("{UNICODE}\n"), "{out}");
    assert!(out.stderr.contains(&format!("connected to {url}")), "{out}");
    assert!(out.stderr.contains("closed: 1000"), "{out}");

    // The certificate names `localhost` too: SNI and the check use --tls-server-name.
    let out = connect(
        &["--tls-ca", &ca, "--tls-server-name", "localhost", &url],
        b"by name\n",
    );
    out.expect_code(0);
    assert_eq!(out.stdout(), "by name\n", "{out}");

    // The system's roots do not know the test CA.
    let out = connect(&[&url], b"hello\n");
    out.expect_code(1);
    assert!(out.stderr.contains("sockeye connect: TLS"), "{out}");
    assert_eq!(out.stdout(), "", "{out}");

    // Nor is the certificate valid for another name.
    let out = connect(
        &[
            "--tls-ca",
            &ca,
            "--tls-server-name",
            "elsewhere.example",
            &url,
        ],
        b"hello\n",
    );
    out.expect_code(1);
    assert!(out.stderr.contains("sockeye connect: TLS"), "{out}");

    let out = connect(&["--tls-insecure", &url], b"insecure\n");
    out.expect_code(0);
    assert_eq!(out.stdout(), "insecure\n", "{out}");

    // `--tls` with a ws:// URL connects over TLS as wss:// would.
    let plain_scheme = format!("ws://{}/", serve.addr);
    let out = connect(&["--tls", "--tls-ca", &ca, &plain_scheme], b"forced\n");
    out.expect_code(0);
    assert_eq!(out.stdout(), "forced\n", "{out}");
    // A plain client on the TLS port is told what may be wrong.
    let out = connect(&["--tls", &plain_scheme], b"x\n");
    out.expect_code(1);
    assert!(out.stderr.contains("--tls-ca"), "{out}");
}

#[test]
fn python_websockets_server() {
    if let Some(server) = python_server() {
        against_interop_server(&server);
    }
}

#[test]
fn node_ws_server() {
    if let Some(server) = node_server() {
        against_interop_server(&server);
    }
}

/// Echoes, the negotiated extension, a close the server starts, and an extra header, against
/// a server of `tests/interop/`; the server reports the code each connection ended with.
fn against_interop_server(server: &ServerProcess) {
    let started = Instant::now();
    let name = server.name();
    let url = server.url();

    // An echo; the end of the input closes with 1000 and an empty reason.
    let out = ask(&[&url], UNICODE);
    out.expect_code(0);
    assert_eq!(out.stdout(), format!("{UNICODE}\n"), "{name}: {out}");
    assert!(out.stderr.contains("closed: 1000"), "{name}: {out}");
    server.expect_closed(1000, Some(""));

    // Piped input: the close follows the line at once, and a server may stop answering once
    // the close arrives (Python websockets does); --linger keeps receiving a while first.
    let out = connect(&["--linger", "2", &url], format!("{UNICODE}\n").as_bytes());
    out.expect_code(0);
    assert_eq!(out.stdout(), format!("{UNICODE}\n"), "{name}: {out}");
    server.expect_closed(1000, Some(""));

    // `ext` answers the extensions header of the server's upgrade response: what the client
    // printed as negotiated.
    let out = ask(&["--deflate", &url], "ext");
    out.expect_code(0);
    let ext = out.stdout();
    let ext = ext.trim_end_matches('\n');
    assert!(ext.starts_with("permessage-deflate"), "{name}: {out}");
    assert!(
        out.stderr.contains(&format!("extensions: {ext})")),
        "{name}: {out}"
    );
    server.expect_closed(1000, Some(""));

    // The server closes with 4002: exit status 3, and the server gets its code back.
    let out = connect_until_closed(&[&url], "close:4002:bye");
    out.expect_code(3);
    assert!(out.stderr.contains("closed: 4002 bye"), "{name}: {out}");
    assert_eq!(out.stdout(), "", "{name}: {out}");
    server.expect_closed(4002, None);

    // The same with --quiet: only the code, as an error line.
    let out = connect_until_closed(&["--quiet", &url], "close:4002:bye");
    out.expect_code(3);
    assert!(!out.stderr.contains("closed: "), "{name}: {out}");
    assert!(out.stderr.contains("4002"), "{name}: {out}");
    server.expect_closed(4002, None);

    // An extra request header does not disturb the upgrade.
    let out = ask(&["--header", "X-Test: 1", &url], "with a header");
    out.expect_code(0);
    assert_eq!(out.stdout(), "with a header\n", "{name}: {out}");
    server.expect_closed(1000, Some(""));

    eprintln!("{name}: {:.1?}", started.elapsed());
}

/// More input than the sockets and the server's queue hold, piped in at once: `sockeye
/// serve` stops reading a connection whose answers are not read, so a client that only read
/// between writes would wait in a write forever. Every echo comes back, in order.
#[test]
fn piped_input_larger_than_the_buffers_all_comes_back() {
    const LINES: usize = 32 << 10;
    let serve = Serve::start(&[]);
    let url = serve.url();
    let mut input = Vec::with_capacity(LINES * 1_001);
    for i in 0..LINES {
        input.extend_from_slice(format!("{i:07} ").as_bytes());
        input.extend_from_slice(&[b'x'; 992]);
        input.push(b'\n');
    }
    let mut session = Session::start(&["--quiet", &url]);
    // Written from a thread: the pipe takes it only as fast as the client sends.
    let mut stdin = session.stdin.take().expect("standard input");
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = session.wait();
    writer
        .join()
        .expect("the writer thread")
        .expect("standard input taken whole");
    out.expect_code(0);
    let lines: Vec<&[u8]> = out.stdout.split(|b| *b == b'\n').collect();
    assert_eq!(lines.len(), LINES + 1, "lines echoed (and the empty rest)");
    for (i, line) in lines[..LINES].iter().enumerate() {
        assert!(
            line.starts_with(format!("{i:07} ").as_bytes()),
            "line {i} out of order"
        );
        assert_eq!(line.len(), 1_000, "line {i}");
    }
}

/// `--linger` takes seconds, 0 or more: what cannot be a duration is a usage error, and a
/// linger too long to add to the clock waits as long as it takes.
#[test]
fn linger_takes_seconds_and_refuses_what_is_not() {
    let serve = Serve::start(&[]);
    let url = serve.url();
    for bad in [
        "--linger=inf",
        "--linger=-1",
        "--linger=NaN",
        "--linger=soon",
    ] {
        let out = Session::start(&[bad, &url]).wait();
        out.expect_code(2);
        assert!(out.stderr.contains("--linger"), "{out}");
    }
    // Lingers (the server closes first here: its going away ends the wait).
    let mut session = Session::start(&["--linger", "1e19", &url]);
    session.write(b"linger\n");
    session.close_stdin();
    session.wait_for_stdout("linger\n");
    going_away_ends(&serve, &mut session);
}

/// Standard output closed early (`| head -1`): the next message cannot be printed, so the
/// client says goodbye to the server (1001) and exits 4, instead of running on unread.
#[test]
fn a_closed_standard_output_ends_the_client() {
    let serve = Serve::start(&[]);
    let url = serve.url();
    let mut child = Command::new(BIN)
        .args(["connect", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sockeye connect");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    stdin.write_all(b"first\n").expect("write");
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut first)
        .expect("the first echo");
    assert_eq!(first, "first\n");
    // The reader is gone; the next echoes have nowhere to go. Standard input stays open and
    // a line goes every 50 ms: a child that another test forks in this process holds a copy of
    // the pipe until it runs its program, and a print in that moment still succeeds.
    let deadline = Instant::now() + LIMIT;
    let mut next_line = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() >= next_line {
            // It may have exited since the look above.
            let _ = stdin.write_all(b"more\n");
            next_line += Duration::from_millis(50);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let mut err = String::new();
            let _ = stderr.read_to_string(&mut err);
            panic!("still running with its output closed\n--- stderr\n{err}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut err = String::new();
    stderr.read_to_string(&mut err).expect("stderr");
    assert_eq!(status.code(), Some(4), "{err}");
    assert!(err.contains("standard output"), "{err}");
    drop(stdin);
}
