//! sockeye-client against real servers on loopback: the engine's echo server (plain, TLS,
//! client certificates, permessage-deflate) and raw sockets that misbehave on purpose (silent,
//! refusing, breaking the protocol, dropping the connection, never answering a close). Every
//! scenario runs through both front ends: the blocking `WebSocket` and the tokio
//! `AsyncWebSocket`.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt as _};
use sockeye::proto::handshake::AcceptKey;
use sockeye::proto::mask::apply_mask;
use sockeye::proto::{CloseCode, Message as ProtoMessage, Request};
use sockeye::server::{Accept, ClientAuth, Handler, Outbox, Reject};
use sockeye_client::rustls::RootCertStore;
use sockeye_client::rustls::pki_types::PrivateKeyDer;
use sockeye_client::rustls::pki_types::pem::PemObject as _;
use sockeye_client::{
    AsyncWebSocket, CloseFrame, DeflateConfig, Error, Message, Options, Phase, TlsOptions,
    WebSocket,
};
use sockeye_tests::client::start;
use sockeye_tests::interop::EchoServer;
use sockeye_tests::tls::{Authority, SERVER_NAMES, tls_config};

/// How long any single wait may take before the test fails (generous: a busy 2-core machine).
const PATIENCE: Duration = Duration::from_secs(30);

/// A current-thread tokio runtime, as the async tests and front end use.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// One client connection, whichever front end runs it.
trait Front: Sized {
    fn connect(url: &str, options: &Options) -> Result<Self, Error>;
    fn send(&mut self, message: Message) -> Result<(), Error>;
    /// The next message; [`Error::Closed`] when the stream ended.
    fn recv(&mut self) -> Result<Message, Error>;
    fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error>;
    fn protocol(&self) -> Option<String>;
    fn is_compressed(&self) -> bool;
}

struct Blocking(WebSocket);

impl Front for Blocking {
    fn connect(url: &str, options: &Options) -> Result<Self, Error> {
        let mut ws = WebSocket::connect_with(url, options)?;
        ws.set_read_timeout(Some(PATIENCE));
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
    fn protocol(&self) -> Option<String> {
        self.0.protocol().map(str::to_owned)
    }
    fn is_compressed(&self) -> bool {
        self.0.is_compressed()
    }
}

struct Async {
    runtime: tokio::runtime::Runtime,
    ws: AsyncWebSocket,
}

impl Front for Async {
    fn connect(url: &str, options: &Options) -> Result<Self, Error> {
        let runtime = runtime();
        let ws = runtime.block_on(AsyncWebSocket::connect_with(url, options))?;
        Ok(Async { runtime, ws })
    }
    fn send(&mut self, message: Message) -> Result<(), Error> {
        self.runtime.block_on(self.ws.send(message))
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
        self.runtime.block_on(self.ws.close(code, reason))
    }
    fn protocol(&self) -> Option<String> {
        self.ws.protocol().map(str::to_owned)
    }
    fn is_compressed(&self) -> bool {
        self.ws.is_compressed()
    }
}

/// Text, binary, empty, 16 MiB, a ping, then a close with an application code: each echoed
/// as sent, the close answered with the same code, then the end of the stream.
fn echo_and_close<F: Front>(url: &str, options: &Options, compressed: bool) {
    let mut ws = F::connect(url, options).expect("connect");
    assert_eq!(ws.is_compressed(), compressed);
    assert_eq!(ws.protocol(), None);
    let big: Vec<u8> = (0..16u32 << 20).map(|i| (i % 251) as u8).collect();
    let text: String = "ünïcödé ".repeat(10_000);
    let messages = [
        Message::Text("hello".into()),
        Message::Binary(vec![0, 1, 2, 255]),
        Message::Text(String::new()),
        Message::Binary(Vec::new()),
        Message::Text(text),
        Message::Binary(big),
    ];
    for message in messages {
        ws.send(message.clone()).expect("send");
        let echo = ws.recv().expect("echo");
        assert!(
            echo == message,
            "echo differs for a {} B message",
            message.as_bytes().len()
        );
    }
    ws.send(Message::Ping(b"are you there".to_vec()))
        .expect("ping");
    assert_eq!(
        ws.recv().expect("pong"),
        Message::Pong(b"are you there".to_vec())
    );
    ws.close(CloseCode(4001), "done here").expect("close");
    // The engine echoes the code (not the reason).
    let answer = ws.recv().expect("the server's close");
    assert!(
        matches!(
            &answer,
            Message::Close(Some(CloseFrame {
                code: CloseCode(4001),
                ..
            }))
        ),
        "{answer:?}"
    );
    assert!(matches!(ws.recv(), Err(Error::Closed)));
    assert!(matches!(
        ws.send(Message::Text("late".into())),
        Err(Error::Closed)
    ));
}

#[test]
fn echo_plain_blocking() {
    let server = EchoServer::start();
    echo_and_close::<Blocking>(&server.ws_url(), &Options::default(), false);
}

#[test]
fn echo_plain_async() {
    let server = EchoServer::start();
    echo_and_close::<Async>(&server.ws_url(), &Options::default(), false);
}

#[test]
fn echo_compressed_blocking() {
    let server = EchoServer::start();
    let options = Options::default().deflate(DeflateConfig::default());
    echo_and_close::<Blocking>(&server.ws_url(), &options, true);
}

#[test]
fn echo_compressed_async() {
    let server = EchoServer::start();
    let mut deflate = DeflateConfig::default();
    deflate.client_max_window_bits = 10;
    deflate.client_no_context_takeover = true;
    let options = Options::default().deflate(deflate);
    echo_and_close::<Async>(&server.ws_url(), &options, true);
}

/// The test CA, and TLS options that trust it and check the name `localhost`.
fn trusting(ca: &Authority) -> TlsOptions {
    let mut roots = RootCertStore::empty();
    roots.add(ca.der().clone()).expect("a CA certificate");
    TlsOptions::roots(roots).server_name("localhost")
}

#[test]
fn echo_over_tls_both_front_ends() {
    let ca = Authority::new("client test CA");
    let server = EchoServer::start_tls(tls_config(&ca.server(&SERVER_NAMES).settings()));
    let options = Options::default().tls(trusting(&ca));
    echo_and_close::<Blocking>(&server.ws_url(), &options, false);
    echo_and_close::<Async>(&server.ws_url(), &options, false);
    let compressed = options.clone().deflate(DeflateConfig::default());
    echo_and_close::<Blocking>(&server.ws_url(), &compressed, true);
}

#[test]
fn untrusted_certificates_and_wrong_names_are_refused() {
    let ca = Authority::new("client test CA");
    let server = EchoServer::start_tls(tls_config(&ca.server(&SERVER_NAMES).settings()));
    let other = Authority::new("another CA");
    let stranger = Options::default().tls(trusting(&other));
    for result in [
        Blocking::connect(&server.ws_url(), &stranger).map(|_| ()),
        Async::connect(&server.ws_url(), &stranger).map(|_| ()),
    ] {
        assert!(matches!(result, Err(Error::Tls(_))), "{result:?}");
    }
    let wrong_name = Options::default().tls(trusting(&ca).server_name("elsewhere.example"));
    let result = Blocking::connect(&server.ws_url(), &wrong_name).map(|_| ());
    assert!(matches!(result, Err(Error::Tls(_))), "{result:?}");
    // The insecure mode skips the check (test servers only).
    let insecure = Options::default().tls(TlsOptions::insecure());
    echo_and_close::<Blocking>(&server.ws_url(), &insecure, false);
}

#[test]
fn client_certificates_are_presented_when_required() {
    let ca = Authority::new("client test CA");
    let settings = ca
        .server(&SERVER_NAMES)
        .settings()
        .with_client_auth(ca.pem().into_bytes(), ClientAuth::Required);
    let server = EchoServer::start_tls(tls_config(&settings));
    let identity = ca.client("client-7");
    let key = PrivateKeyDer::from_pem_slice(&identity.key_pem()).expect("a key");
    let with_cert =
        Options::default().tls(trusting(&ca).client_cert(vec![identity.cert_der().clone()], key));
    echo_and_close::<Blocking>(&server.ws_url(), &with_cert, false);
    echo_and_close::<Async>(&server.ws_url(), &with_cert, false);
    let without = Options::default().tls(trusting(&ca));
    let mut refused = 0;
    for _ in 0..2 {
        // TLS 1.3: the server's refusal may come with the first read after the handshake.
        match Blocking::connect(&server.ws_url(), &without) {
            Err(Error::Tls(_) | Error::Reset | Error::Io(_)) => refused += 1,
            Err(other) => panic!("unexpected error {other:?}"),
            Ok(mut ws) => {
                let result = ws.recv();
                assert!(matches!(
                    result,
                    Err(Error::Tls(_) | Error::Reset | Error::Io(_))
                ));
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 2);
}

/// A handler that answers `whoami` with the request's `Authorization` header and selects the
/// `chat.v2` subprotocol.
#[derive(Clone)]
struct WhoAmI;

impl Handler for WhoAmI {
    type Conn = String;

    fn on_upgrade(&mut self, req: &Request<'_>, accept: &mut Accept<'_>) -> Result<String, Reject> {
        accept.select_protocol(&["chat.v2"]);
        let auth = req.header("authorization").unwrap_or_default();
        Ok(String::from_utf8_lossy(auth).into_owned())
    }

    fn on_message(&mut self, conn: &mut String, _msg: ProtoMessage<'_>, out: &mut Outbox<'_>) {
        let _ = out.send(ProtoMessage::Text(conn));
    }
}

fn subprotocols_and_headers<F: Front>() {
    let (running, addr) = start(sockeye_tests::client::test_config(), WhoAmI);
    let options = Options::default()
        .protocol("chat.v1")
        .protocol("chat.v2")
        .header("Authorization", "Bearer 6f1c");
    let mut ws = F::connect(&format!("ws://{addr}/"), &options).expect("connect");
    assert_eq!(ws.protocol().as_deref(), Some("chat.v2"));
    ws.send(Message::Text("whoami".into())).expect("send");
    assert_eq!(
        ws.recv().expect("answer"),
        Message::Text("Bearer 6f1c".into())
    );
    drop(ws);
    running.handle().shutdown();
    running.join().expect("clean shutdown");
    let bad = Options::default().header("X-Bad", "line\r\nbreak");
    let result = F::connect(&format!("ws://{addr}/"), &bad).map(|_| ());
    assert!(matches!(result, Err(Error::Options(_))), "{result:?}");
}

#[test]
fn subprotocols_and_headers_blocking() {
    subprotocols_and_headers::<Blocking>();
}

#[test]
fn subprotocols_and_headers_async() {
    subprotocols_and_headers::<Async>();
}

/// A raw server on a free port: `serve` runs on the first connection, in a thread; joined (and
/// its panics raised) by [`RawServer::join`].
struct RawServer {
    addr: SocketAddr,
    thread: thread::JoinHandle<()>,
}

impl RawServer {
    fn start(serve: impl FnOnce(TcpStream) + Send + 'static) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let thread = thread::spawn(move || {
            let (tcp, _) = listener.accept().expect("accept");
            tcp.set_read_timeout(Some(PATIENCE)).expect("timeout");
            serve(tcp);
        });
        RawServer { addr, thread }
    }

    /// A server that takes the client's close frame and then says nothing, the connection
    /// open, until the sender is used or dropped.
    fn silent_after_close() -> (RawServer, std::sync::mpsc::Sender<()>) {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let server = RawServer::start(move |mut tcp| {
            accept(&mut tcp);
            let (opcode, _, _) = client_frame(&mut tcp);
            assert_eq!(opcode, 0x8, "a close frame");
            let _ = rx.recv_timeout(PATIENCE);
        });
        (server, tx)
    }

    fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    fn join(self) {
        if let Err(panic) = self.thread.join() {
            std::panic::resume_unwind(panic);
        }
    }
}

/// Reads the request head and answers it with a valid `101`.
fn accept(tcp: &mut TcpStream) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            tcp.read(&mut byte).expect("read the request"),
            1,
            "request cut"
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).expect("an ASCII head");
    let key = head
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .expect("a key");
    let key: [u8; 24] = key.trim().as_bytes().try_into().expect("24 bytes");
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        AcceptKey::from_key(&key).as_str()
    );
    tcp.write_all(answer.as_bytes()).expect("answer");
}

/// Reads one masked client frame with a payload under 126 bytes: (opcode, mask, payload).
fn client_frame(tcp: &mut TcpStream) -> (u8, [u8; 4], Vec<u8>) {
    let mut head = [0u8; 6];
    tcp.read_exact(&mut head).expect("a frame header");
    assert_eq!(head[1] & 0x80, 0x80, "client frames are masked");
    let len = usize::from(head[1] & 0x7f);
    assert!(len < 126);
    let mask = [head[2], head[3], head[4], head[5]];
    let mut payload = vec![0u8; len];
    tcp.read_exact(&mut payload).expect("a payload");
    apply_mask(&mut payload, mask, 0);
    (head[0] & 0x0f, mask, payload)
}

fn timeouts_and_refusals<F: Front>() {
    // A server that accepts TCP and never answers the upgrade.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("ws://{}/", silent.local_addr().expect("addr"));
    let options = Options::default().handshake_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let result = F::connect(&url, &options).map(|_| ());
    assert!(
        matches!(result, Err(Error::Timeout(Phase::Handshake))),
        "{result:?}"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < PATIENCE,
        "{took:?}"
    );
    drop(silent);

    // A server that answers 403.
    let server = RawServer::start(|mut tcp| {
        let mut buf = [0u8; 1024];
        let _ = tcp.read(&mut buf);
        let _ = tcp.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
    });
    let result = F::connect(&server.url(), &Options::default()).map(|_| ());
    assert!(matches!(result, Err(Error::Handshake(_))), "{result:?}");
    server.join();

    // A server that closes during the upgrade.
    let server = RawServer::start(drop);
    let result = F::connect(&server.url(), &Options::default()).map(|_| ());
    assert!(
        matches!(result, Err(Error::Reset | Error::Io(_))),
        "{result:?}"
    );
    server.join();

    // Nothing listens.
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let result = F::connect(&format!("ws://{port}/"), &Options::default()).map(|_| ());
    assert!(matches!(result, Err(Error::Io(_))), "{result:?}");
    let result = F::connect("http://127.0.0.1/", &Options::default()).map(|_| ());
    assert!(matches!(result, Err(Error::Url(_))), "{result:?}");
}

#[test]
fn timeouts_and_refusals_blocking() {
    timeouts_and_refusals::<Blocking>();
}

#[test]
fn timeouts_and_refusals_async() {
    timeouts_and_refusals::<Async>();
}

fn server_faults<F: Front>() {
    // A masked frame from the server: the client fails the connection with 1002.
    let server = RawServer::start(|mut tcp| {
        accept(&mut tcp);
        tcp.write_all(&[0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2])
            .expect("write");
        let (opcode, _, payload) = client_frame(&mut tcp);
        assert_eq!(opcode, 0x8, "a close frame");
        assert_eq!(&payload[..2], &1002u16.to_be_bytes(), "code 1002");
    });
    let mut ws = F::connect(&server.url(), &Options::default()).expect("connect");
    let result = ws.recv();
    assert!(matches!(result, Err(Error::Protocol(_))), "{result:?}");
    assert!(matches!(ws.recv(), Err(Error::Closed)));
    server.join();

    // The connection ends without a close frame, after a message.
    let server = RawServer::start(|mut tcp| {
        accept(&mut tcp);
        tcp.write_all(&[0x81, 0x02, b'h', b'i']).expect("write");
    });
    let mut ws = F::connect(&server.url(), &Options::default()).expect("connect");
    assert_eq!(
        ws.recv().expect("the message first"),
        Message::Text("hi".into())
    );
    let result = ws.recv();
    assert!(matches!(result, Err(Error::Reset)), "{result:?}");
    server.join();

    // A server that never answers our close: the closing handshake times out.
    let (server, tx) = RawServer::silent_after_close();
    let options = Options::default().close_timeout(Duration::from_millis(300));
    let mut ws = F::connect(&server.url(), &options).expect("connect");
    ws.close(CloseCode::NORMAL, "").expect("close");
    let started = Instant::now();
    let result = ws.recv();
    assert!(
        matches!(result, Err(Error::Timeout(Phase::Close))),
        "{result:?}"
    );
    assert!(started.elapsed() < PATIENCE);
    let _ = tx.send(());
    server.join();
}

#[test]
fn server_faults_blocking() {
    server_faults::<Blocking>();
}

#[test]
fn server_faults_async() {
    server_faults::<Async>();
}

/// Mask keys are not predictable: 64 pings of one connection carry 64 different keys, and two
/// connections start with different ones.
#[test]
fn masks_differ_within_and_across_connections() {
    let mut firsts = Vec::new();
    for _ in 0..2 {
        let server = RawServer::start(|mut tcp| {
            accept(&mut tcp);
            let mut keys = Vec::new();
            for i in 0..64u8 {
                let (opcode, mask, payload) = client_frame(&mut tcp);
                assert_eq!((opcode, payload), (0x9, vec![i]));
                keys.push(mask);
            }
            let mut unique = keys.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), 64, "a repeated mask key");
            let mut first = Vec::from(keys[0]);
            first.extend_from_slice(&keys[1]);
            // Hand the first two keys back in a binary frame.
            let mut frame = vec![0x82, 8];
            frame.extend_from_slice(&first);
            tcp.write_all(&frame).expect("write");
        });
        let mut ws = WebSocket::connect(&server.url()).expect("connect");
        for i in 0..64u8 {
            ws.ping(&[i]).expect("ping");
        }
        match ws.recv().expect("the keys") {
            Message::Binary(keys) => firsts.push(keys),
            other => panic!("{other:?}"),
        }
        server.join();
    }
    assert_ne!(firsts[0], firsts[1], "two connections drew the same keys");
}

#[test]
fn split_async_reader_and_writer() {
    let server = EchoServer::start();
    let runtime = runtime();
    runtime.block_on(async {
        let ws = AsyncWebSocket::connect(&server.ws_url())
            .await
            .expect("connect");
        let (mut sink, mut stream) = ws.split();
        let writer = tokio::spawn(async move {
            for i in 0..200u32 {
                sink.feed(Message::Text(format!("m{i}")))
                    .await
                    .expect("feed");
            }
            sink.flush().await.expect("flush");
            sink.close().await.expect("close: code 1000");
        });
        for i in 0..200u32 {
            let next = tokio::time::timeout(PATIENCE, stream.next())
                .await
                .expect("in time");
            assert_eq!(
                next.expect("a message").expect("ok"),
                Message::Text(format!("m{i}"))
            );
        }
        let close = tokio::time::timeout(PATIENCE, stream.next())
            .await
            .expect("in time");
        assert_eq!(
            close.expect("the close").expect("ok"),
            Message::Close(Some(CloseFrame {
                code: CloseCode::NORMAL,
                reason: String::new()
            }))
        );
        let end = tokio::time::timeout(PATIENCE, stream.next())
            .await
            .expect("in time");
        assert!(end.is_none(), "{end:?}");
        writer.await.expect("the writer");
    });
}

#[test]
fn tls_config_is_used_as_given() {
    let ca = Authority::new("client test CA");
    let server = EchoServer::start_tls(tls_config(&ca.server(&SERVER_NAMES).settings()));
    let config = sockeye_tests::tls::client_config(&ca, None);
    let options = Options::default().tls(TlsOptions::config(config).server_name("localhost"));
    echo_and_close::<Blocking>(&server.ws_url(), &options, false);
}

/// A server that floods pings and never reads: the tokio stream stops reading once the pongs
/// owed pass its mark and the socket is full, so what the client holds stays bounded (the
/// server's writes then block, as they should, instead of the client's memory growing).
#[test]
fn a_server_that_never_reads_cannot_grow_the_async_clients_output() {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let server = RawServer::start(move |mut tcp| {
        accept(&mut tcp);
        tcp.set_write_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        // Pings of 125 bytes, up to 64 MiB of them, until the client stops taking them.
        let mut burst = Vec::new();
        for _ in 0..512 {
            burst.extend_from_slice(&[0x89, 125]);
            burst.extend_from_slice(&[b'p'; 125]);
        }
        for _ in 0..1024 {
            if tcp.write_all(&burst).is_err() {
                break;
            }
        }
        let _ = rx.recv_timeout(PATIENCE);
    });
    let runtime = runtime();
    let held = runtime.block_on(async {
        let mut ws = AsyncWebSocket::connect(&server.url())
            .await
            .expect("connect");
        let mut pings = 0u64;
        // Read until the stream waits (backpressure), or every ping came (no backpressure).
        while let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(3), ws.next()).await
        {
            assert!(matches!(message, Ok(Message::Ping(_))), "{message:?}");
            pings += 1;
            if pings == 512 * 1024 {
                break;
            }
        }
        assert!(pings < 512 * 1024, "every ping was read: no backpressure");
        ws.session().output().len()
    });
    assert!(held < 1 << 20, "{held} bytes of pongs held");
    let _ = tx.send(());
    server.join();
}

/// A reader task and a writer task on one split connection: while the writer's large messages
/// wait for a slow server, the server's pings make the reader write pongs. Every write that
/// makes progress wakes both tasks (the socket keeps only the latest waker), so the writer
/// finishes instead of waiting forever.
#[test]
fn a_split_writer_is_not_stranded_by_the_readers_pongs() {
    const MESSAGES: usize = 8;
    const SIZE: usize = 1 << 20;
    let server = RawServer::start(|mut tcp| {
        accept(&mut tcp);
        let mut pinger = tcp.try_clone().expect("a second handle");
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = std::sync::Arc::clone(&done);
        let pings = thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if pinger.write_all(&[0x89, 1, b'p']).is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(1));
            }
        });
        // Read slowly, so that the client's socket fills and its writes wait.
        let total = MESSAGES * (SIZE + 14);
        let mut read = 0;
        let mut buf = vec![0u8; 16 << 10];
        while read < total {
            match tcp.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
            thread::sleep(Duration::from_millis(2));
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = pings.join();
        assert!(read >= MESSAGES * SIZE, "only {read} bytes arrived");
    });
    let runtime = runtime();
    runtime.block_on(async {
        let ws = AsyncWebSocket::connect(&server.url())
            .await
            .expect("connect");
        let (mut sink, mut stream) = ws.split();
        let reader = tokio::spawn(async move {
            let mut pings = 0u64;
            while let Some(Ok(message)) = stream.next().await {
                if matches!(message, Message::Ping(_)) {
                    pings += 1;
                }
            }
            pings
        });
        // About 0.2 s per message here; a stranded writer waits for its timeout.
        for i in 0..MESSAGES {
            let mut send = sink.send(Message::Binary(vec![7u8; SIZE]));
            // The timer is looked at first, so that the send is only polled when its own task
            // was woken for it (a timeout that polls it could finish it late and hide a hang).
            tokio::select! {
                biased;
                () = tokio::time::sleep(Duration::from_secs(20)) => {
                    panic!("message {i}: the writer was never woken");
                }
                sent = &mut send => sent.expect("send"),
            }
        }
        reader.abort();
    });
    server.join();
}

/// A split connection whose reader waits for bytes when the writer closes, against a server
/// that takes the close frame and then says nothing (the socket stays open): the reader is
/// woken to arm the closing handshake's timer and ends with `Timeout(Close)`, instead of
/// waiting for bytes that never come.
#[test]
fn a_split_reader_times_out_the_close_its_writer_started() {
    let (server, tx) = RawServer::silent_after_close();
    let runtime = runtime();
    let options = Options::default().close_timeout(Duration::from_millis(300));
    runtime.block_on(async {
        let ws = AsyncWebSocket::connect_with(&server.url(), &options)
            .await
            .expect("connect");
        let (mut sink, mut stream) = ws.split();
        let reader = tokio::spawn(async move { stream.next().await });
        // The reader is parked on the socket, with no deadline yet, before the close starts.
        tokio::time::sleep(Duration::from_millis(50)).await;
        sink.close().await.expect("the close frame goes");
        let started = Instant::now();
        let read = tokio::time::timeout(PATIENCE, reader)
            .await
            .expect("the reader was never woken for the close's deadline")
            .expect("the reader task");
        assert!(
            matches!(read, Some(Err(Error::Timeout(Phase::Close)))),
            "{read:?}"
        );
        assert!(started.elapsed() < PATIENCE);
    });
    let _ = tx.send(());
    server.join();
}

/// A close behind a full socket: `Sink::close` gives up with `Timeout(Close)` when the
/// closing handshake's time is over, as the inherent `close` does.
#[test]
fn closing_the_sink_behind_a_full_socket_times_out() {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let server = RawServer::start(move |mut tcp| {
        accept(&mut tcp);
        // Never reads.
        let _ = rx.recv_timeout(PATIENCE);
    });
    let runtime = runtime();
    let options = Options::default().close_timeout(Duration::from_millis(300));
    runtime.block_on(async {
        let mut ws = AsyncWebSocket::connect_with(&server.url(), &options)
            .await
            .expect("connect");
        // Queued, not flushed: more than both sockets' buffers hold.
        ws.feed(Message::Binary(vec![7u8; 64 << 20]))
            .await
            .expect("queued");
        let closed = tokio::time::timeout(PATIENCE, SinkExt::close(&mut ws))
            .await
            .expect("Sink::close did not give up");
        assert!(
            matches!(closed, Err(Error::Timeout(Phase::Close))),
            "{closed:?}"
        );
    });
    let _ = tx.send(());
    server.join();
}

/// A writer waits behind a full socket; the reader of the same split connection polls once
/// (its own poll tries the writer's output too) and then stops polling. When the socket takes
/// more, the writer's task is woken all the same and its message goes.
#[test]
fn a_split_writer_is_woken_after_the_reader_stops_polling() {
    const SIZE: usize = 8 << 20;
    let server = RawServer::start(|mut tcp| {
        accept(&mut tcp);
        thread::sleep(Duration::from_secs(1));
        let mut read = 0;
        let mut buf = vec![0u8; 64 << 10];
        while read < SIZE {
            match tcp.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
        }
        assert!(read >= SIZE, "only {read} bytes arrived");
    });
    let runtime = runtime();
    runtime.block_on(async {
        let ws = AsyncWebSocket::connect(&server.url())
            .await
            .expect("connect");
        let (mut sink, mut stream) = ws.split();
        let writer = tokio::spawn(async move { sink.send(Message::Binary(vec![7u8; SIZE])).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The reader's one poll, while the writer waits; then nothing polls the stream.
        let _ = tokio::time::timeout(Duration::from_millis(50), stream.next()).await;
        // Awaiting the task's handle does not poll the send itself: only its waker can.
        let sent = tokio::time::timeout(PATIENCE, writer)
            .await
            .expect("the writer was never woken")
            .expect("the writer task");
        sent.expect("send");
        drop(stream);
    });
    server.join();
}

/// A blocking write that runs out of time part way leaves the connection unusable: what is
/// left of the frame would otherwise go out with the next call, and a retried message twice.
#[test]
fn a_timed_out_blocking_write_breaks_the_connection() {
    const SIZE: usize = 32 << 20;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let server = RawServer::start(move |mut tcp| {
        accept(&mut tcp);
        let _ = rx.recv_timeout(PATIENCE);
    });
    let mut ws = WebSocket::connect(&server.url()).expect("connect");
    ws.set_write_timeout(Some(Duration::from_millis(200)));
    let sent = ws.send_binary(&vec![7u8; SIZE]);
    assert!(
        matches!(sent, Err(Error::Timeout(Phase::Write))),
        "{sent:?}"
    );
    let again = ws.send_binary(&[1]);
    assert!(matches!(again, Err(Error::Closed)), "{again:?}");
    assert!(matches!(ws.flush(), Err(Error::Closed)));
    let _ = tx.send(());
    server.join();
}

/// A blocking client polling with a short read timeout, against a server that stops reading
/// for a while: the pongs it owes cannot all go before a read gives up, and what is left goes
/// with later calls. The connection stays usable (a pong is not the caller's to send again),
/// and the server gets every pong, whole and in order, then the close.
#[test]
fn read_timeouts_that_cut_pongs_short_leave_the_blocking_connection_usable() {
    const PINGS: usize = 1_000;
    let server = RawServer::start(|mut tcp| {
        socket2::SockRef::from(&tcp)
            .set_recv_buffer_size(4096)
            .expect("a small receive buffer");
        accept(&mut tcp);
        let mut pings = Vec::new();
        for _ in 0..PINGS {
            pings.extend_from_slice(&[0x89, 125]);
            pings.extend_from_slice(&[b'p'; 125]);
        }
        tcp.write_all(&pings).expect("the pings");
        // Not reading for a while: the client's pongs back up.
        thread::sleep(Duration::from_secs(1));
        let mut frame = [0u8; 131];
        for i in 0..PINGS {
            tcp.read_exact(&mut frame).expect("a pong");
            assert_eq!(&frame[..2], &[0x8a, 0x80 | 125], "pong {i}: its header");
            let mask = [frame[2], frame[3], frame[4], frame[5]];
            let payload = &mut frame[6..];
            apply_mask(payload, mask, 0);
            assert!(payload.iter().all(|b| *b == b'p'), "pong {i}: its payload");
        }
        tcp.write_all(&[0x81, 4]).expect("write");
        tcp.write_all(b"done").expect("write");
        let (opcode, _, _) = client_frame(&mut tcp);
        assert_eq!(opcode, 0x8, "then the close");
    });
    let mut ws = WebSocket::connect(&server.url()).expect("connect");
    socket2::SockRef::from(ws.get_ref())
        .set_send_buffer_size(4096)
        .expect("a small send buffer");
    ws.set_read_timeout(Some(Duration::from_millis(20)));
    let deadline = Instant::now() + PATIENCE;
    let (mut pings, mut timeouts) = (0, 0);
    loop {
        assert!(Instant::now() < deadline, "no `done` after {pings} pings");
        match ws.recv() {
            Ok(Message::Ping(_)) => pings += 1,
            Ok(Message::Text(text)) if text == "done" => break,
            Err(Error::Timeout(_)) => timeouts += 1,
            other => panic!("after {pings} pings and {timeouts} timeouts: {other:?}"),
        }
    }
    assert_eq!(pings, PINGS);
    assert!(
        timeouts > 0,
        "the pongs never waited: the test did not test anything"
    );
    ws.close(CloseCode::NORMAL, "").expect("close");
    server.join();
}
