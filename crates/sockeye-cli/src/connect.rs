//! `sockeye connect URL`: an interactive client for people. Lines from standard input go out
//! as messages; messages received are printed; the exit status says how the connection ended.

use std::io::{self, BufRead as _, Write as _};
use std::net::TcpStream;
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt as _, StreamExt as _};
use sockeye_client::{
    AsyncWebSocket, CloseCode, CloseFrame, DeflateConfig, Error, Message, Options, WsUrl,
};
use tokio::sync::mpsc;

use crate::load::tls::{self, TlsArgs};

/// Exit status: the closing handshake finished with 1000 (normal) or 1001 (going away), or
/// with no code.
const CLEAN: u8 = 0;
/// Exit status: the connection could not be opened (URL, TCP, TLS, a refused upgrade).
const NOT_OPENED: u8 = 1;
/// Exit status: the closing handshake finished with another code (printed on stderr).
const CLOSED_WITH_CODE: u8 = 3;
/// Exit status: the connection ended without a closing handshake, or failed (the server broke
/// the protocol, TLS failed, the socket broke, the close timed out), or standard output was
/// closed (the server is told 1001, going away).
const BROKEN: u8 = 4;

/// Connect to a WebSocket server and talk to it: each line of standard input is sent as a text
/// message (binary with --binary); each message received is printed on its own line (binary
/// ones in hex, or raw with --binary). The end of standard input closes the connection (code
/// 1000) and waits for the server's answer.
///
/// Exit status: 0 when the closing handshake finished with 1000, 1001 or no code; 1 when the
/// connection could not be opened; 3 when it closed with another code; 4 when it ended without
/// a closing handshake or failed, or standard output was closed. `--tls` with a ws:// URL connects over TLS as wss:// would.
#[derive(Debug, clap::Args)]
pub(crate) struct ConnectArgs {
    /// ws://HOST[:PORT][/PATH] or wss://...
    url: String,
    /// Send lines as binary messages (without their newline), and print binary messages raw.
    #[arg(long)]
    binary: bool,
    /// An extra request header, NAME:VALUE (repeat for more).
    #[arg(long = "header", value_name = "NAME:VALUE")]
    headers: Vec<String>,
    /// Offer a subprotocol (repeat for more, in order of preference).
    #[arg(long = "protocol", value_name = "NAME")]
    protocols: Vec<String>,
    /// Offer permessage-deflate (RFC 7692).
    #[arg(long)]
    deflate: bool,
    /// The connect and handshake timeout, in seconds.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    timeout: u64,
    /// After the end of standard input, keep receiving for SECS seconds before closing (for
    /// servers that stop answering once a close arrives).
    #[arg(long, default_value = "0", value_name = "SECS", value_parser = seconds)]
    linger: Duration,
    /// Print nothing on stderr but errors.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    tls: TlsArgs,
}

/// Runs `sockeye connect`.
pub(crate) fn run(args: &ConnectArgs) -> ExitCode {
    // One thread: the connection's two halves are two futures of one task.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("sockeye connect: cannot start the event loop: {e}");
            return ExitCode::from(NOT_OPENED);
        }
    };
    let ws = match open(args).and_then(|(tcp, url, options)| {
        runtime.block_on(async {
            let tcp = tokio::net::TcpStream::from_std(tcp).map_err(|e| e.to_string())?;
            AsyncWebSocket::upgrade(tcp, &url, &options)
                .await
                .map_err(|e| with_hint(&e))
        })
    }) {
        Ok(ws) => ws,
        Err(e) => {
            eprintln!("sockeye connect: {e}");
            return ExitCode::from(NOT_OPENED);
        }
    };
    if !args.quiet {
        let protocol = ws.protocol().unwrap_or("none");
        let extensions = match ws.extensions() {
            "" => "none",
            other => other,
        };
        eprintln!(
            "connected to {} (subprotocol: {protocol}, extensions: {extensions})",
            args.url
        );
    }
    let lines = stdin_lines(args.binary);
    let status = runtime.block_on(converse(ws, lines, args));
    ExitCode::from(status)
}

/// A number of seconds, 0 or more (fractions too).
fn seconds(text: &str) -> Result<Duration, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    Duration::try_from_secs_f64(value).map_err(|_| format!("`{text}`: expected seconds, 0 or more"))
}

/// The options from the command line, then the TCP connection (the WebSocket's is opened
/// over it on the event loop).
fn open(args: &ConnectArgs) -> Result<(TcpStream, WsUrl, Options), String> {
    let mut url = WsUrl::parse(&args.url).map_err(|e| e.to_string())?;
    let mut options = Options::default()
        .connect_timeout(Duration::from_secs(args.timeout))
        .handshake_timeout(Duration::from_secs(args.timeout));
    // `--tls` turns a ws:// URL into wss:// (the same host, port and path).
    url.secure |= args.tls.forced();
    if url.secure {
        options = options.tls(tls::options(&args.tls)?);
    } else {
        tls::check_plain(&args.tls)?;
    }
    for header in &args.headers {
        let Some((name, value)) = header.split_once(':') else {
            return Err(format!("--header `{header}`: expected NAME:VALUE"));
        };
        options = options.header(name.trim(), value.trim());
    }
    for protocol in &args.protocols {
        options = options.protocol(protocol);
    }
    if args.deflate {
        options = options.deflate(DeflateConfig::default());
    }
    let tcp = connect_tcp(&url, options.connect_timeout)?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    tcp.set_nonblocking(true).map_err(|e| e.to_string())?;
    Ok((tcp, url, options))
}

/// Opens TCP to the first of `url`'s addresses that accepts within `timeout`.
fn connect_tcp(url: &WsUrl, timeout: Duration) -> Result<TcpStream, String> {
    let mut last = format!("`{}` resolves to no address", url.host);
    for addr in url.resolve_all().map_err(|e| e.to_string())? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = format!("cannot connect to {addr}: {e}"),
        }
    }
    Err(last)
}

/// The error, with a hint at the option that helps where one does.
fn with_hint(e: &Error) -> String {
    use sockeye_client::rustls::{self, CertificateError};
    let hint = match e {
        Error::Tls(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        )) => " (set the name to check with --tls-server-name NAME)",
        Error::Tls(rustls::Error::InvalidCertificate(_)) => {
            " (trust the server's CA with --tls-ca FILE, or skip the check with --tls-insecure)"
        }
        Error::Tls(rustls::Error::InvalidMessage(_)) => {
            " (does the server speak TLS on this port?)"
        }
        _ => "",
    };
    format!("{e}{hint}")
}

/// Lines of standard input waiting to be sent: a few, so that a fast input waits for the
/// connection instead of piling up in memory.
const LINES_AHEAD: usize = 64;

/// Standard input's lines, read on a thread of their own; the channel closes at its end. A
/// line goes without its newline (and, as text, without the carriage return before it).
fn stdin_lines(binary: bool) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(LINES_AHEAD);
    thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        loop {
            let mut line = Vec::new();
            match stdin.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                        if !binary && line.last() == Some(&b'\r') {
                            line.pop();
                        }
                    }
                    if tx.blocking_send(line).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// Sends the lines, then (after `linger`) the close; returns when the close went, or with
/// the error that stopped it ([`Error::Closed`]: the server closed first).
async fn send_lines(
    sink: &mut SplitSink<AsyncWebSocket, Message>,
    lines: &mut mpsc::Receiver<Vec<u8>>,
    binary: bool,
    linger: Duration,
) -> Result<(), Error> {
    while let Some(line) = lines.recv().await {
        let message = if binary {
            Message::Binary(line)
        } else {
            match String::from_utf8(line) {
                Ok(text) => Message::Text(text),
                Err(_) => {
                    eprintln!(
                        "sockeye connect: a line that is not UTF-8 was not sent (use --binary)"
                    );
                    continue;
                }
            }
        };
        sink.send(message).await?;
    }
    tokio::time::sleep(linger).await;
    sink.send(close(CloseCode::NORMAL)).await
}

/// A close message with `code` and no reason.
fn close(code: CloseCode) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: String::new(),
    }))
}

/// Sends lines and prints messages until the connection ends; returns the exit status. The
/// two run side by side: a server that answers every message (and stops reading while its
/// answers are not read) never finds this client stuck in a write.
async fn converse(
    ws: AsyncWebSocket,
    mut lines: mpsc::Receiver<Vec<u8>>,
    args: &ConnectArgs,
) -> u8 {
    let (mut sink, mut stream) = ws.split();
    // `None` until the server's close frame arrives.
    let mut server_close: Option<Option<CloseFrame>> = None;
    let mut sending = Box::pin(send_lines(&mut sink, &mut lines, args.binary, args.linger));
    let mut sent = false;
    loop {
        tokio::select! {
            done = &mut sending, if !sent => {
                sent = true;
                match done {
                    // The close went (its answer comes through the stream), or the server's
                    // came first.
                    Ok(()) | Err(Error::Closed) => {}
                    Err(e) => return broken(&e),
                }
            }
            next = stream.next() => match next {
                Some(Ok(Message::Close(frame))) => {
                    if !args.quiet {
                        match &frame {
                            Some(f) if f.reason.is_empty() => eprintln!("closed: {}", f.code.0),
                            Some(f) => eprintln!("closed: {} {}", f.code.0, f.reason),
                            None => eprintln!("closed (no code)"),
                        }
                    }
                    server_close = Some(frame);
                }
                Some(Ok(message)) => {
                    if let Err(e) = print(&message, args) {
                        // Nobody reads what comes (`| head`): say so to the server and stop.
                        drop(sending);
                        let going = sink.send(close(CloseCode::GOING_AWAY));
                        let _ = tokio::time::timeout(Duration::from_secs(1), going).await;
                        eprintln!("sockeye connect: standard output: {e}");
                        return BROKEN;
                    }
                }
                Some(Err(e)) => return broken(&e),
                None => {
                    return match server_close {
                        Some(frame) => closed_status(frame.as_ref(), args),
                        None => {
                            eprintln!("sockeye connect: the connection ended without a closing handshake");
                            BROKEN
                        }
                    };
                }
            }
        }
    }
}

/// Prints one message on standard output.
fn print(message: &Message, args: &ConnectArgs) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match message {
        Message::Text(text) => writeln!(out, "{text}")?,
        Message::Binary(bytes) if args.binary => {
            out.write_all(bytes)?;
            writeln!(out)?;
        }
        Message::Binary(bytes) => {
            for byte in bytes {
                write!(out, "{byte:02x}")?;
            }
            writeln!(out)?;
        }
        Message::Ping(_) | Message::Pong(_) | Message::Close(_) => {}
    }
    out.flush()
}

/// The exit status of a finished closing handshake.
fn closed_status(frame: Option<&CloseFrame>, args: &ConnectArgs) -> u8 {
    match frame.map(|f| f.code) {
        None | Some(CloseCode::NORMAL | CloseCode::GOING_AWAY) => CLEAN,
        Some(code) => {
            if args.quiet {
                eprintln!("sockeye connect: closed with code {}", code.0);
            }
            CLOSED_WITH_CODE
        }
    }
}

/// Reports a connection that failed.
fn broken(e: &Error) -> u8 {
    eprintln!("sockeye connect: {e}");
    BROKEN
}
