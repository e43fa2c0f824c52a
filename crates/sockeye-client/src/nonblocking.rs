//! The tokio front end: a connection as a `Stream` of messages and a `Sink` for them.

use core::pin::Pin;
use core::task::{Context, Poll, Waker, ready};
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Wake;
use std::time::Instant;

use futures_core::Stream;
use futures_sink::Sink;
use sockeye_proto::CloseCode;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use crate::blocking::close_parts;
use crate::error::{Error, Phase};
use crate::message::Message;
use crate::options::Options;
use crate::session::Session;
use crate::url::WsUrl;

/// Output beyond which [`Sink::poll_ready`] writes before taking another message.
const HIGH_WATER: usize = 64 << 10;

/// A client connection on tokio: a [`Stream`] of the messages received and a [`Sink`] of
/// messages to send (split it with `futures::StreamExt::split` to read and write from two
/// tasks).
///
/// ```no_run
/// use futures_util::{SinkExt as _, StreamExt as _};
/// use sockeye_client::{AsyncWebSocket, Message};
///
/// # async fn run() -> Result<(), sockeye_client::Error> {
/// let mut ws = AsyncWebSocket::connect("wss://example.com/feed").await?;
/// ws.send(Message::Text("subscribe ticker".into())).await?;
/// while let Some(message) = ws.next().await {
///     match message? {
///         Message::Text(text) => println!("{text}"),
///         Message::Close(frame) => println!("closed: {frame:?}"),
///         _ => {}
///     }
/// }
/// # Ok(())
/// # }
/// ```
///
/// The stream ends (`None`) once the closing handshake is over and the server ended the
/// connection; an error is reported once, then the stream ends. A server that sends without
/// reading makes the stream wait (past 64 KiB of replies owed) until the socket takes more.
/// Closing the sink starts the closing handshake (code 1000) when no close was sent; read on
/// for the server's answer. From the close frame on, both halves give up with
/// [`Error::Timeout`] when the handshake takes longer than the close timeout of [`Options`]:
/// the stream waiting for the answer, the sink waiting for the socket to take the frame.
#[derive(Debug)]
pub struct AsyncWebSocket<S = TcpStream> {
    io: S,
    session: Session,
    /// The closing handshake's deadline, armed while one is set.
    sleep: Option<(Instant, Pin<Box<Sleep>>)>,
    ended: bool,
    /// The reading and the writing side's tasks, waiting for the socket to take more or for
    /// the closing handshake's timer. The socket and the timer each keep one waker, the latest
    /// given; they are given [`both`](Self::both), so that neither side strands the other.
    parked: Arc<Parked>,
    both: Waker,
    /// Which sides this value parked since it last woke them (a side the timer or the socket
    /// woke meanwhile only costs a look): a write wakes the other side without a lock when
    /// it does not wait.
    maybe_parked: [bool; 2],
    /// The reading side's task while it waits for bytes: woken when the writing side starts
    /// the closing handshake, so that it arms the timer.
    read_waker: Option<Waker>,
}

/// The two sides' wakers ([`Side`] indexes them), woken together.
#[derive(Debug, Default)]
struct Parked {
    wakers: Mutex<[Option<Waker>; 2]>,
}

impl Parked {
    fn wakers(&self) -> std::sync::MutexGuard<'_, [Option<Waker>; 2]> {
        // A waker's own panic cannot leave the pair half-written.
        self.wakers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `cx`'s task as `side`'s.
    fn park(&self, side: Side, cx: &Context<'_>) {
        remember(&mut self.wakers()[side as usize], cx);
    }

    /// Wakes `side`'s task, if one waits.
    fn wake_side(&self, side: Side) {
        let waker = self.wakers()[side as usize].take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// Keeps `cx`'s waker in `slot` (unless the one there wakes the same task).
fn remember(slot: &mut Option<Waker>, cx: &Context<'_>) {
    if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
        *slot = Some(cx.waker().clone());
    }
}

impl Wake for Parked {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let [a, b] = core::mem::take(&mut *self.wakers());
        for waker in [a, b].into_iter().flatten() {
            waker.wake();
        }
    }
}

/// Which side of the connection polls for the socket to take more.
#[derive(Debug, Clone, Copy)]
enum Side {
    Stream = 0,
    Sink = 1,
}

impl AsyncWebSocket<TcpStream> {
    /// Connects to `url` with the default [`Options`].
    ///
    /// # Errors
    ///
    /// See [`connect_with`](Self::connect_with).
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with(url, &Options::default()).await
    }

    /// Connects to `url` (`ws://` or `wss://`): TCP to each address the host resolves to in
    /// turn, then the TLS and WebSocket handshakes.
    ///
    /// # Errors
    ///
    /// As [`WebSocket::connect_with`](crate::WebSocket::connect_with).
    pub async fn connect_with(url: &str, options: &Options) -> Result<Self, Error> {
        let url = WsUrl::parse(url)?;
        // The options are checked before anything goes on the network.
        let session = Session::new(&url, options)?;
        let addrs = tokio::net::lookup_host((url.host.as_str(), url.port))
            .await
            .map_err(|e| Error::Url(format!("cannot resolve `{}`: {e}", url.host).into()))?;
        let mut last = Error::Url(format!("`{}` resolves to no address", url.host).into());
        for addr in addrs {
            match tokio::time::timeout(options.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(tcp)) => {
                    tcp.set_nodelay(true)?;
                    return Self::handshake(tcp, session, options).await;
                }
                Ok(Err(e)) => last = Error::Io(e),
                Err(_) => last = Error::Timeout(Phase::Connect),
            }
        }
        Err(last)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWebSocket<S> {
    /// Runs the handshakes over `io`, a stream the caller opened, for `url`.
    ///
    /// # Errors
    ///
    /// As [`connect_with`](AsyncWebSocket::connect_with), without the connect step.
    pub async fn upgrade(io: S, url: &WsUrl, options: &Options) -> Result<Self, Error> {
        Self::handshake(io, Session::new(url, options)?, options).await
    }

    async fn handshake(io: S, session: Session, options: &Options) -> Result<Self, Error> {
        let parked = Arc::new(Parked::default());
        let mut ws = AsyncWebSocket {
            io,
            session,
            sleep: None,
            ended: false,
            both: Waker::from(Arc::clone(&parked)),
            parked,
            maybe_parked: [false; 2],
            read_waker: None,
        };
        tokio::time::timeout(options.handshake_timeout, ws.run_handshake())
            .await
            .map_err(|_| Error::Timeout(Phase::Handshake))??;
        Ok(ws)
    }

    async fn run_handshake(&mut self) -> Result<(), Error> {
        use tokio::io::AsyncReadExt as _;
        loop {
            self.write_all().await?;
            if self.session.is_open() {
                return Ok(());
            }
            let n = self.io.read(self.session.input()).await?;
            if n == 0 {
                return Err(Error::Reset);
            }
            if let Err(e) = self.session.received(n) {
                let _ = self.write_all().await;
                return Err(e);
            }
        }
    }

    async fn write_all(&mut self) -> Result<(), Error> {
        while !self.session.output().is_empty() {
            let n = self.io.write(self.session.output()).await?;
            if n == 0 {
                return Err(Error::Io(io::ErrorKind::WriteZero.into()));
            }
            self.session.wrote(n);
        }
        self.io.flush().await?;
        Ok(())
    }

    /// The subprotocol the server chose.
    pub fn protocol(&self) -> Option<&str> {
        self.session.protocol()
    }

    /// The server's `Sec-WebSocket-Extensions` answer (empty when none).
    pub fn extensions(&self) -> &str {
        self.session.extensions()
    }

    /// Whether permessage-deflate runs on this connection.
    pub fn is_compressed(&self) -> bool {
        self.session.is_compressed()
    }

    /// The sans-IO session (TLS details, state).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// Starts the closing handshake with `code` and `reason` and writes the close frame; the
    /// server's answer arrives through the stream.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] when a close frame was already sent, or the socket's error.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.session.close(code, reason)?;
        // The close frame waits no longer than the closing handshake may take.
        match self.session.poll_timeout() {
            Some(at) => tokio::time::timeout_at(at.into(), self.write_all())
                .await
                .map_err(|_| Error::Timeout(Phase::Close))?,
            None => self.write_all().await,
        }
    }

    /// Writes the session's output until it is empty or the socket is full (then `side`'s task
    /// is woken when it takes more, or when the other side's write makes progress).
    fn poll_write_out(&mut self, cx: &mut Context<'_>, side: Side) -> Poll<Result<(), Error>> {
        let mut parked = false;
        while !self.session.output().is_empty() {
            let mut shared = Context::from_waker(&self.both);
            let n = match Pin::new(&mut self.io).poll_write(&mut shared, self.session.output()) {
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                // Parked, then tried once more: the socket may have taken more between the
                // first try and the parking, when no waker of this side was there to wake.
                Poll::Pending if parked => return Poll::Pending,
                Poll::Pending => {
                    self.park(side, cx);
                    parked = true;
                    continue;
                }
            };
            if n == 0 {
                return Poll::Ready(Err(Error::Io(io::ErrorKind::WriteZero.into())));
            }
            self.session.wrote(n);
            // The other side may wait for this output to go (a split writer behind the
            // reader's pongs, or a reader behind the writer's messages).
            let other = side.other();
            if core::mem::take(&mut self.maybe_parked[other as usize]) {
                self.parked.wake_side(other);
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Records `cx`'s task as `side`'s, to be woken with the other's.
    fn park(&mut self, side: Side, cx: &Context<'_>) {
        self.parked.park(side, cx);
        self.maybe_parked[side as usize] = true;
    }

    /// Whether the closing handshake's deadline passed (arming its timer otherwise, to wake
    /// both sides).
    fn poll_deadline(&mut self, cx: &mut Context<'_>, side: Side) -> bool {
        let Some(at) = self.session.poll_timeout() else {
            self.sleep = None;
            return false;
        };
        self.park(side, cx);
        let sleep = match &mut self.sleep {
            Some((armed, sleep)) if *armed == at => sleep,
            slot => {
                &mut slot
                    .insert((at, Box::pin(tokio::time::sleep_until(at.into()))))
                    .1
            }
        };
        if sleep
            .as_mut()
            .poll(&mut Context::from_waker(&self.both))
            .is_ready()
        {
            self.session.handle_timeout(Instant::now());
            return true;
        }
        false
    }

    /// Starts the closing handshake from the writing side: the reading side, waiting for
    /// bytes, is woken to arm the handshake's timer.
    fn start_close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.session.close(code, reason)?;
        if let Some(waker) = self.read_waker.take() {
            waker.wake();
        }
        Ok(())
    }

    /// The writing side's wait for the socket while the closing handshake runs: bounded by
    /// its timer.
    fn poll_closing_write(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        match self.poll_write_out(cx, Side::Sink) {
            Poll::Pending if self.session.is_closing() && self.poll_deadline(cx, Side::Sink) => {
                Poll::Ready(Err(Error::Timeout(Phase::Close)))
            }
            other => other,
        }
    }
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Stream => Side::Sink,
            Side::Sink => Side::Stream,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for AsyncWebSocket<S> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        loop {
            match this.session.poll_message() {
                Ok(Some(message)) => {
                    // Pongs and the close echo go out as soon as the socket takes them; the
                    // message is the caller's either way (a write error comes back next poll).
                    let _ = this.poll_write_out(cx, Side::Stream);
                    return Poll::Ready(Some(Ok(message)));
                }
                Ok(None) => {}
                Err(Error::Closed) => {
                    // The conversation is over: the close echo goes, then our side of the
                    // stream ends too (dropping the connection closes it in any case).
                    if this.poll_write_out(cx, Side::Stream).is_pending() {
                        return Poll::Pending;
                    }
                    let _ = Pin::new(&mut this.io).poll_shutdown(cx);
                    this.ended = true;
                    return Poll::Ready(None);
                }
                Err(e) => return this.fail(cx, e),
            }
            // A server that sends and does not read would grow what waits here without bound:
            // past the mark, read no more until the socket takes some.
            let full = match this.poll_write_out(cx, Side::Stream) {
                Poll::Ready(Ok(())) => false,
                Poll::Ready(Err(e)) => return this.fail(cx, e),
                Poll::Pending => this.session.output().len() >= HIGH_WATER,
            };
            if this.poll_deadline(cx, Side::Stream) {
                continue;
            }
            if full {
                return Poll::Pending;
            }
            let mut buf = ReadBuf::new(this.session.input());
            let Poll::Ready(read) = Pin::new(&mut this.io).poll_read(cx, &mut buf) else {
                remember(&mut this.read_waker, cx);
                return Poll::Pending;
            };
            let n = buf.filled().len();
            match read {
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    this.session.end_of_input();
                }
                Err(e) => return this.fail(cx, Error::Io(e)),
                Ok(()) if n == 0 => this.session.end_of_input(),
                Ok(()) => {
                    if let Err(e) = this.session.received(n) {
                        return this.fail(cx, e);
                    }
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWebSocket<S> {
    /// Reports `error` once: what the session owes the server (a close frame, a TLS alert)
    /// goes if the socket takes it now, and the stream ends after this item.
    fn fail(&mut self, cx: &mut Context<'_>, error: Error) -> Poll<Option<Result<Message, Error>>> {
        let _ = self.poll_write_out(cx, Side::Stream);
        self.ended = true;
        Poll::Ready(Some(Err(error)))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for AsyncWebSocket<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        if this.session.output().len() >= HIGH_WATER {
            ready!(this.poll_write_out(cx, Side::Sink))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        let this = self.get_mut();
        match message.as_proto() {
            Some(msg) => this.session.send(msg),
            None => {
                let (code, reason) = close_parts(&message);
                this.start_close(code, reason)
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        ready!(this.poll_closing_write(cx))?;
        ready!(Pin::new(&mut this.io).poll_flush(cx))?;
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        if !this.session.is_closing() && !this.session.is_finished() && this.session.is_open() {
            this.start_close(CloseCode::NORMAL, "")?;
        }
        ready!(this.poll_closing_write(cx))?;
        ready!(Pin::new(&mut this.io).poll_flush(cx))?;
        Poll::Ready(Ok(()))
    }
}
