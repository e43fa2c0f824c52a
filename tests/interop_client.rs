//! sockeye-client against real servers: Python `websockets` (`tests/interop/python_server.py`)
//! and Node `ws` (`tests/interop/node_server.js`), at the versions `.ci/interop-setup` pins,
//! each through both front ends (the blocking `WebSocket` and the tokio `AsyncWebSocket`).
//!
//! Each test starts its own server process, which prints its port and, for every connection
//! that ends, the close code and reason it received. Over one connection with
//! permessage-deflate: the negotiated extension (as the server saw it), text and binary echoes
//! (non-ASCII, empty), a text message the server sends in five fragments, a 16 MiB binary echo,
//! a large binary message the server makes up, a ping and its pong, and a close with code 4003
//! that the server reports. Then a close started by the server (4002 and a reason) and a
//! connection without compression.
//!
//! Each runs once more over TLS (`wss://`, the server's certificate from a CA made for the
//! test, which the client trusts alone), with the same scenario.
//!
//! The server processes come from `sockeye_tests::interop` (`python_server`, `node_server`). A
//! missing interpreter or package fails the test when `CI` is set and skips it elsewhere
//! (`interop::found`).

use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use sockeye_client::{
    AsyncWebSocket, CloseCode, CloseFrame, DeflateConfig, Error, Message, Options, Phase, Session,
    TlsOptions, WebSocket,
};
use sockeye_tests::interop::{
    ServerProcess, TestCa, node_server, node_server_tls, python_server, python_server_tls,
};

/// How long any single wait may take before the test fails (generous: a busy 2-core machine).
const PATIENCE: Duration = Duration::from_secs(30);

/// The size of the large binary echo.
const LARGE: usize = 16 << 20;

/// The size of the binary message the server makes up with `big:N` (not a multiple of 251).
const BIG: usize = 5_000_003;

/// Text with one-, two-, three- and four-byte UTF-8 characters.
const UNICODE: &str = "héllo, wörld ✓ 🦀";

#[test]
fn python_websockets_server_blocking() {
    scenario::<Blocking>(python_server());
}

#[test]
fn python_websockets_server_async() {
    scenario::<Async>(python_server());
}

#[test]
fn node_ws_server_blocking() {
    scenario::<Blocking>(node_server());
}

#[test]
fn node_ws_server_async() {
    scenario::<Async>(node_server());
}

#[test]
fn python_websockets_server_tls_blocking() {
    let ca = TestCa::new("interop-client-python-blocking");
    scenario::<Blocking>(python_server_tls(&ca));
}

#[test]
fn python_websockets_server_tls_async() {
    let ca = TestCa::new("interop-client-python-async");
    scenario::<Async>(python_server_tls(&ca));
}

#[test]
fn node_ws_server_tls_blocking() {
    let ca = TestCa::new("interop-client-node-blocking");
    scenario::<Blocking>(node_server_tls(&ca));
}

#[test]
fn node_ws_server_tls_async() {
    let ca = TestCa::new("interop-client-node-async");
    scenario::<Async>(node_server_tls(&ca));
}

/// Everything the tests check against one server, through the front end `F` (`None`: the
/// server is missing and the test skipped, see `interop::found`).
fn scenario<F: Front>(server: Option<ServerProcess>) {
    let Some(server) = &server else {
        return;
    };
    let started = Instant::now();
    let what = format!("{} via {}", server.name(), F::NAME);
    let extensions = compressed_exchange::<F>(server, &what);
    server_close::<F>(server, &what);
    uncompressed_exchange::<F>(server, &what);
    eprintln!(
        "{what}: {:.1?}, negotiated {extensions:?}",
        started.elapsed()
    );
}

/// One connection with permessage-deflate offered: every kind of message, then a close with
/// code 4003 that the server reports having received. Returns the negotiated extension.
fn compressed_exchange<F: Front>(server: &ServerProcess, what: &str) -> String {
    let mut ws = connect::<F>(server, true);
    assert!(ws.is_compressed(), "{what}: permessage-deflate not running");
    let extensions = ws.extensions();
    assert!(
        extensions.starts_with("permessage-deflate"),
        "{what}: extensions {extensions:?}"
    );
    // The server's own record of its answer is the header the client read.
    let ext = expect_text(ws.ask("ext"), what);
    assert_eq!(ext, extensions, "{what}: the server's extensions");

    let echoes = [
        Message::Text(UNICODE.into()),
        Message::Text(String::new()),
        Message::Binary(vec![0, 1, 2, 127, 128, 254, 255]),
        Message::Binary(Vec::new()),
    ];
    for message in echoes {
        let echo = ws.ask_message(message.clone());
        assert_eq!(echo, message, "{what}: echo");
    }

    // Several hundred bytes, so that each of the five fragments holds characters (Node cuts
    // by bytes: some characters straddle two fragments).
    let text = format!("{UNICODE} fragmented; ").repeat(20);
    let reassembled = expect_text(ws.ask(&format!("fragments:5:{text}")), what);
    assert!(
        reassembled == text,
        "{what}: fragmented text {reassembled:?}"
    );

    let large = noise(LARGE);
    match ws.ask_message(Message::Binary(large.clone())) {
        Message::Binary(echo) => assert_same_bytes(&echo, &large, what),
        other => panic!("{what}: large echo: {}", describe(&other)),
    }

    match ws.ask(&format!("big:{BIG}")) {
        Message::Binary(big) => assert_same_bytes(&big, &pattern(BIG), what),
        other => panic!("{what}: big: {}", describe(&other)),
    }

    let payload = "ping ✓ 42".as_bytes().to_vec();
    let pong = ws.ask_message(Message::Ping(payload.clone()));
    assert_eq!(pong, Message::Pong(payload), "{what}: pong");

    let reason = format!("client done ✓ {}", F::NAME);
    ws.close(CloseCode(4003), &reason)
        .unwrap_or_else(|e| panic!("{what}: close: {e}"));
    let answer = ws
        .recv()
        .unwrap_or_else(|e| panic!("{what}: the server's close: {e}"));
    assert!(
        matches!(
            &answer,
            Message::Close(Some(CloseFrame {
                code: CloseCode(4003),
                ..
            }))
        ),
        "{what}: {answer:?}"
    );
    let after = ws.recv();
    assert!(matches!(after, Err(Error::Closed)), "{what}: {after:?}");
    let late = ws.send(Message::Text("late".into()));
    assert!(matches!(late, Err(Error::Closed)), "{what}: {late:?}");
    // Both servers report the close once the client's end of TCP is closed too: both front
    // ends close it when the conversation is over, before the connection is dropped.
    server.expect_closed(4003, Some(&reason));
    extensions
}

/// The server closes with code 4002 and a reason: the client reads that close frame once, then
/// the end of the connection.
fn server_close<F: Front>(server: &ServerProcess, what: &str) {
    let mut ws = connect::<F>(server, true);
    let reason = "server says bye ✓";
    let answer = ws.ask(&format!("close:4002:{reason}"));
    let expected = Message::Close(Some(CloseFrame {
        code: CloseCode(4002),
        reason: reason.into(),
    }));
    assert_eq!(answer, expected, "{what}: the server's close");
    let after = ws.recv();
    assert!(matches!(after, Err(Error::Closed)), "{what}: {after:?}");
    // The server got its code back (what reason the echo carries is the client's choice).
    server.expect_closed(4002, None);
}

/// No permessage-deflate offered: none runs, and messages still go both ways.
fn uncompressed_exchange<F: Front>(server: &ServerProcess, what: &str) {
    let mut ws = connect::<F>(server, false);
    assert!(!ws.is_compressed(), "{what}: compressed without an offer");
    assert_eq!(ws.extensions(), "", "{what}: extensions");
    assert_eq!(
        expect_text(ws.ask("ext"), what),
        "",
        "{what}: server's extensions"
    );
    for message in [
        Message::Text(UNICODE.into()),
        Message::Binary(vec![9, 8, 7]),
    ] {
        let echo = ws.ask_message(message.clone());
        assert_eq!(echo, message, "{what}: uncompressed echo");
    }
    let reassembled = expect_text(ws.ask(&format!("fragments:3:{UNICODE}")), what);
    assert_eq!(reassembled, UNICODE, "{what}: uncompressed fragments");
    ws.close(CloseCode::NORMAL, "")
        .unwrap_or_else(|e| panic!("{what}: close: {e}"));
    let answer = ws
        .recv()
        .unwrap_or_else(|e| panic!("{what}: the server's close: {e}"));
    assert!(
        matches!(
            &answer,
            Message::Close(Some(CloseFrame {
                code: CloseCode::NORMAL,
                ..
            }))
        ),
        "{what}: {answer:?}"
    );
    let after = ws.recv();
    assert!(matches!(after, Err(Error::Closed)), "{what}: {after:?}");
    server.expect_closed(1000, Some(""));
}

/// The options of every connection to `server`: generous timeouts, its test CA as the only
/// root when it serves TLS, and permessage-deflate (its default parameters) when `deflate` is
/// set.
fn options(server: &ServerProcess, deflate: bool) -> Options {
    let mut options = Options::default()
        .connect_timeout(PATIENCE)
        .handshake_timeout(PATIENCE)
        .close_timeout(PATIENCE);
    if let Some(ca) = server.ca_file() {
        let tls = TlsOptions::ca_file(ca).unwrap_or_else(|e| panic!("{}: {e}", ca.display()));
        options = options.tls(tls);
    }
    if deflate {
        options.deflate(DeflateConfig::default())
    } else {
        options
    }
}

/// The text of a text message.
///
/// # Panics
///
/// When it is another kind of message.
fn expect_text(message: Message, what: &str) -> String {
    match message {
        Message::Text(text) => text,
        other => panic!("{what}: expected text, got {}", describe(&other)),
    }
}

/// `size` bytes of pseudo-random noise over 64 values: compressible, but with no long repeats.
fn noise(size: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_u32;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8 & 0x3f
        })
        .collect()
}

/// What `big:N` asks for: byte i is i % 251.
fn pattern(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8).collect()
}

/// Asserts that `got` and `want` are the same bytes, naming the first difference rather than
/// printing megabytes.
fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    assert!(
        got.len() == want.len() && first.is_none(),
        "{what}: {} bytes received for {} expected, first difference at {first:?}",
        got.len(),
        want.len()
    );
}

/// A message in a few words: its kind, its length and its start.
fn describe(message: &Message) -> String {
    let bytes = message.as_bytes();
    let start = &bytes[..bytes.len().min(32)];
    let kind = match message {
        Message::Text(_) => "text",
        Message::Binary(_) => "binary",
        Message::Ping(_) => "ping",
        Message::Pong(_) => "pong",
        Message::Close(frame) => return format!("close {frame:?}"),
    };
    format!("{kind} of {} bytes starting {start:?}", bytes.len())
}

/// Connects to `server` through the front end `F`, with permessage-deflate offered when
/// `deflate` is set.
///
/// # Panics
///
/// When the connection fails (with the server's standard error), or runs over TLS where the
/// server serves none or the other way round.
fn connect<F: Front>(server: &ServerProcess, deflate: bool) -> F {
    let ws = F::connect(&server.url(), &options(server, deflate)).unwrap_or_else(|e| {
        panic!(
            "{} via {}: connect (deflate {deflate}): {e}\n--- server stderr\n{}",
            server.name(),
            F::NAME,
            server.stderr()
        )
    });
    let tls = ws.session().tls().is_some();
    assert_eq!(tls, server.ca_file().is_some(), "{}: TLS", server.name());
    ws
}

/// One client connection, whichever front end runs it. Every wait is bounded by [`PATIENCE`].
trait Front: Sized {
    /// The front end's name, for messages.
    const NAME: &'static str;
    fn connect(url: &str, options: &Options) -> Result<Self, Error>;
    fn send(&mut self, message: Message) -> Result<(), Error>;
    /// The next message; [`Error::Closed`] when the stream ended.
    fn recv(&mut self) -> Result<Message, Error>;
    fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error>;
    fn extensions(&self) -> String;
    fn is_compressed(&self) -> bool;
    fn session(&self) -> &Session;

    /// Sends `message` and returns the next message received.
    ///
    /// # Panics
    ///
    /// When either fails.
    fn ask_message(&mut self, message: Message) -> Message {
        let sent = describe(&message);
        self.send(message)
            .unwrap_or_else(|e| panic!("{}: send {sent}: {e}", Self::NAME));
        self.recv()
            .unwrap_or_else(|e| panic!("{}: the answer to {sent}: {e}", Self::NAME))
    }

    /// Sends the text command `text` and returns the next message received.
    fn ask(&mut self, text: &str) -> Message {
        self.ask_message(Message::Text(text.into()))
    }
}

/// The blocking front end, with read and write timeouts.
struct Blocking(WebSocket);

impl Front for Blocking {
    const NAME: &'static str = "WebSocket";
    fn connect(url: &str, options: &Options) -> Result<Self, Error> {
        let mut ws = WebSocket::connect_with(url, options)?;
        ws.set_read_timeout(Some(PATIENCE));
        ws.set_write_timeout(Some(PATIENCE));
        Ok(Blocking(ws))
    }
    fn send(&mut self, message: Message) -> Result<(), Error> {
        self.0.send(&message)
    }
    fn recv(&mut self) -> Result<Message, Error> {
        self.0.recv()
    }
    fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.0.close(code, reason)
    }
    fn extensions(&self) -> String {
        self.0.extensions().to_owned()
    }
    fn is_compressed(&self) -> bool {
        self.0.is_compressed()
    }
    fn session(&self) -> &Session {
        self.0.session()
    }
}

/// The tokio front end on a current-thread runtime of its own; each call is bounded by a
/// tokio timeout.
struct Async {
    runtime: tokio::runtime::Runtime,
    ws: AsyncWebSocket,
}

impl Front for Async {
    const NAME: &'static str = "AsyncWebSocket";
    fn connect(url: &str, options: &Options) -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let ws = runtime.block_on(AsyncWebSocket::connect_with(url, options))?;
        Ok(Async { runtime, ws })
    }
    fn send(&mut self, message: Message) -> Result<(), Error> {
        let ws = &mut self.ws;
        self.runtime
            .block_on(async { tokio::time::timeout(PATIENCE, ws.send(message)).await })
            .map_err(|_| Error::Timeout(Phase::Write))?
    }
    fn recv(&mut self) -> Result<Message, Error> {
        let ws = &mut self.ws;
        let next = self
            .runtime
            .block_on(async { tokio::time::timeout(PATIENCE, ws.next()).await })
            .map_err(|_| Error::Timeout(Phase::Read))?;
        next.unwrap_or(Err(Error::Closed))
    }
    fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        let ws = &mut self.ws;
        self.runtime
            .block_on(async { tokio::time::timeout(PATIENCE, ws.close(code, reason)).await })
            .map_err(|_| Error::Timeout(Phase::Close))?
    }
    fn extensions(&self) -> String {
        self.ws.extensions().to_owned()
    }
    fn is_compressed(&self) -> bool {
        self.ws.is_compressed()
    }
    fn session(&self) -> &Session {
        self.ws.session()
    }
}
