//! `sockeye connect URL`: an interactive client for people. Lines from standard input go out
//! as messages; messages received are printed; the exit status says how the connection ended.

use std::io::{self, BufRead as _, Write as _};
use std::net::TcpStream;
use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use sockeye_client::{
    CloseCode, CloseFrame, DeflateConfig, Error, Message, Options, Phase, WebSocket, WsUrl,
};

use crate::load::tls::{self, TlsArgs};

/// Exit status: the closing handshake finished with 1000 (normal) or 1001 (going away), or
/// with no code.
const CLEAN: u8 = 0;
/// Exit status: the connection could not be opened (URL, TCP, TLS, a refused upgrade).
const NOT_OPENED: u8 = 1;
/// Exit status: the closing handshake finished with another code (printed on stderr).
const CLOSED_WITH_CODE: u8 = 3;
/// Exit status: the connection ended without a closing handshake, or failed (the server broke
/// the protocol, TLS failed, the socket broke, the close timed out).
const BROKEN: u8 = 4;

/// How often the loop looks at standard input while waiting for messages.
const POLL: Duration = Duration::from_millis(20);

/// Connect to a WebSocket server and talk to it: each line of standard input is sent as a text
/// message (binary with --binary); each message received is printed on its own line (binary
/// ones in hex, or raw with --binary). The end of standard input closes the connection (code
/// 1000) and waits for the server's answer.
///
/// Exit status: 0 when the closing handshake finished with 1000, 1001 or no code; 1 when the
/// connection could not be opened; 3 when it closed with another code; 4 when it ended without
/// a closing handshake or failed. `--tls` with a ws:// URL connects over TLS as wss:// would.
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
    #[arg(long, default_value_t = 0.0, value_name = "SECS")]
    linger: f64,
    /// Print nothing on stderr but errors.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    tls: TlsArgs,
}

/// Runs `sockeye connect`.
pub(crate) fn run(args: &ConnectArgs) -> ExitCode {
    let mut ws = match open(args) {
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
    let lines = stdin_lines();
    let status = converse(&mut ws, &lines, args);
    ExitCode::from(status)
}

/// The options from the command line, then the connection.
fn open(args: &ConnectArgs) -> Result<WebSocket, String> {
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
    WebSocket::upgrade(tcp, &url, &options).map_err(|e| with_hint(&e))
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

/// Standard input's lines, read on a thread of their own; the channel closes at its end.
fn stdin_lines() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        let mut line = Vec::new();
        loop {
            line.clear();
            match stdin.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                        line.pop();
                    }
                    if tx.send(line.clone()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// Sends lines and prints messages until the connection ends; returns the exit status.
fn converse(ws: &mut WebSocket, lines: &mpsc::Receiver<Vec<u8>>, args: &ConnectArgs) -> u8 {
    let mut input_open = true;
    // When the close goes out after the end of standard input (with --linger).
    let mut close_at: Option<Instant> = None;
    let mut server_close: Option<Option<CloseFrame>> = None;
    ws.set_read_timeout(Some(POLL));
    loop {
        while input_open {
            match lines.try_recv() {
                Ok(line) => {
                    let sent = if args.binary {
                        ws.send_binary(&line)
                    } else {
                        match String::from_utf8(line) {
                            Ok(text) => ws.send_text(&text),
                            Err(_) => {
                                eprintln!(
                                    "sockeye connect: a line that is not UTF-8 was not sent (use --binary)"
                                );
                                Ok(())
                            }
                        }
                    };
                    match sent {
                        Ok(()) => {}
                        // The server closed first: its close frame is on its way.
                        Err(Error::Closed) => input_open = false,
                        Err(e) => return broken(&e),
                    }
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    input_open = false;
                    close_at = Some(Instant::now() + Duration::from_secs_f64(args.linger.max(0.0)));
                }
            }
        }
        if close_at.is_some_and(|at| Instant::now() >= at) {
            close_at = None;
            if server_close.is_none() {
                match ws.close(CloseCode::NORMAL, "") {
                    Ok(()) | Err(Error::Closed) => {}
                    Err(e) => return broken(&e),
                }
            }
        }
        match ws.recv() {
            Ok(Message::Close(frame)) => {
                if !args.quiet {
                    match &frame {
                        Some(f) if f.reason.is_empty() => eprintln!("closed: {}", f.code.0),
                        Some(f) => eprintln!("closed: {} {}", f.code.0, f.reason),
                        None => eprintln!("closed (no code)"),
                    }
                }
                server_close = Some(frame);
            }
            Ok(message) => print(&message, args),
            Err(Error::Timeout(Phase::Read)) => {}
            Err(Error::Closed) => return closed_status(server_close.flatten().as_ref(), args),
            Err(e) => return broken(&e),
        }
    }
}

/// Prints one message on standard output.
fn print(message: &Message, args: &ConnectArgs) {
    let mut out = io::stdout().lock();
    let _ = match message {
        Message::Text(text) => writeln!(out, "{text}"),
        Message::Binary(bytes) if args.binary => out.write_all(bytes).and_then(|()| writeln!(out)),
        Message::Binary(bytes) => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            writeln!(out, "{hex}")
        }
        Message::Ping(_) | Message::Pong(_) | Message::Close(_) => Ok(()),
    };
    let _ = out.flush();
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
