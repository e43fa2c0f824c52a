//! Binding listeners and starting workers.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Instant;

use mio::net::TcpListener;
use mio::{Poll, Waker};
use socket2::{Domain, Protocol, Socket, Type};

use crate::config::ServerConfig;
use crate::error::SetupError;
use crate::handle::{Handle, Remote, SharedStats, Signal};
use crate::handler::{Handler, INDEX_BITS, WORKER_BITS};
use crate::topics::{Backplane, Ingress};
use crate::worker::{Driver, WAKER, Worker};

/// A bound, not yet running server.
pub struct Server<H: Handler> {
    config: ServerConfig,
    handler: H,
    workers: Vec<Setup>,
    addrs: Vec<SocketAddr>,
    handle: Handle,
    backplane: Option<Arc<dyn Backplane>>,
}

impl<H: Handler> std::fmt::Debug for Server<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addrs", &self.addrs)
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

struct Setup {
    poll: Poll,
    listeners: Vec<TcpListener>,
    commands: mpsc::Receiver<Command>,
    stats: Arc<SharedStats>,
    signal: Arc<Signal>,
}

use crate::handle::Command;

impl<H: Handler> Server<H> {
    /// Binds one listener per worker and address (`SO_REUSEPORT`), ready to run.
    ///
    /// # Errors
    ///
    /// [`SetupError::Bind`] naming the address and the step that failed,
    /// [`SetupError::Config`] for an inconsistent configuration.
    pub fn bind(config: ServerConfig, handler: H) -> Result<Self, SetupError> {
        if config.addrs.is_empty() {
            return Err(SetupError::Config("no address to listen on"));
        }
        if config.recv_buffer < config.handshake.max_head_len + 1024 {
            return Err(SetupError::Config(
                "recv_buffer must exceed the handshake's max_head_len by 1 KiB",
            ));
        }
        if config.backpressure.low_water > config.backpressure.high_water {
            return Err(SetupError::Config(
                "backpressure low_water above high_water",
            ));
        }
        #[cfg(feature = "tls")]
        if config.proxy_protocol && config.tls.is_some() {
            return Err(SetupError::Config(
                "proxy_protocol is for plain TCP: not with TLS terminated here",
            ));
        }
        let count = config.worker_count();
        if count > 1 << WORKER_BITS {
            return Err(SetupError::Config("more than 4096 workers"));
        }
        if config.max_connections > 1 << INDEX_BITS {
            return Err(SetupError::Config(
                "max_connections above 1048576 per worker",
            ));
        }
        let mut addrs = config.addrs.clone();
        let mut workers = Vec::with_capacity(count);
        let mut remotes = Vec::with_capacity(count);
        if !config.reuse_port {
            for addr in &addrs {
                refuse_taken(*addr)?;
            }
        }
        for _ in 0..count {
            let mut listeners = Vec::with_capacity(addrs.len());
            for addr in &mut addrs {
                let listener = listen(*addr, config.backlog)?;
                // Port 0 binds a free port once; the other workers share that port.
                *addr = listener.local_addr().map_err(|source| SetupError::Bind {
                    addr: *addr,
                    step: "getsockname",
                    source,
                })?;
                listeners.push(TcpListener::from_std(listener));
            }
            let poll = Poll::new()?;
            let waker = Waker::new(poll.registry(), WAKER)?;
            let (tx, commands) = mpsc::sync_channel(config.command_queue.max(1));
            let stats = Arc::new(SharedStats::default());
            let signal = Arc::new(Signal::new());
            remotes.push(Remote {
                tx,
                waker,
                stats: Arc::clone(&stats),
                signal: Arc::clone(&signal),
            });
            workers.push(Setup {
                poll,
                listeners,
                commands,
                stats,
                signal,
            });
        }
        let handle = Handle::new(remotes, config.shutdown_timeout);
        Ok(Server {
            config,
            handler,
            workers,
            addrs,
            handle,
            backplane: None,
        })
    }

    /// Joins the server to other nodes through `backplane` (NATS: the `sockeye-nats` crate):
    /// its topics then reach the subscribers of every node. Started when the server spawns,
    /// stopped when its workers have returned.
    pub fn with_backplane(mut self, backplane: Arc<dyn Backplane>) -> Self {
        self.backplane = Some(backplane);
        self
    }

    /// The addresses listened on (with the port chosen by the OS when 0 was asked for).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// A handle to the server, for any thread.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Starts the workers on their own threads and returns at once.
    ///
    /// # Errors
    ///
    /// [`SetupError::Io`] when a thread cannot be spawned.
    pub fn spawn(self) -> Result<Running, SetupError> {
        let Server {
            config,
            handler,
            workers,
            addrs,
            handle,
            backplane,
        } = self;
        if let Some(backplane) = &backplane {
            // Before any worker runs: every interest change and publish reaches it.
            handle.interest().set_backplane(Arc::clone(backplane));
            backplane.start(Ingress::new(handle.clone()));
        }
        let mut threads = Vec::with_capacity(workers.len());
        for (index, setup) in workers.into_iter().enumerate() {
            let handle = handle.clone();
            let handler = handler.clone();
            let config = config.clone();
            // The worker is built on its own thread: connection state never crosses threads.
            let thread = std::thread::Builder::new()
                .name(format!("sockeye-worker-{index}"))
                .spawn(move || {
                    let scratch = crate::transport::Scratch::for_server(&config);
                    let driver =
                        Driver::new(index, handler, handle, config, scratch, Instant::now());
                    // Whatever way the thread ends, its handle and counters learn it.
                    let _gone = Gone(Arc::clone(&setup.signal), Arc::clone(&setup.stats));
                    let worker = Worker {
                        poll: setup.poll,
                        listeners: setup.listeners,
                        commands: setup.commands,
                        shared_stats: setup.stats,
                        signal: setup.signal,
                        driver,
                        accept_pending: true,
                        stopping: None,
                    };
                    if let Err(err) = worker.run() {
                        log::error!("worker {index} stopped: {err}");
                    }
                })?;
            threads.push(thread);
        }
        Ok(Running {
            threads,
            handle,
            addrs,
            backplane,
        })
    }

    /// Runs the server until [`Handle::shutdown`] completes.
    ///
    /// # Errors
    ///
    /// [`SetupError::Io`] when a worker thread cannot be spawned, [`SetupError::Worker`] when
    /// a worker died of a panic.
    pub fn run(self) -> Result<(), SetupError> {
        self.spawn()?.join().map_err(SetupError::Worker)
    }
}

/// A server whose workers are running.
pub struct Running {
    threads: Vec<JoinHandle<()>>,
    handle: Handle,
    addrs: Vec<SocketAddr>,
    backplane: Option<Arc<dyn Backplane>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("addrs", &self.addrs)
            .field("workers", &self.threads.len())
            .field("backplane", &self.backplane.is_some())
            .finish_non_exhaustive()
    }
}

impl Running {
    /// A handle to the server.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// The addresses listened on.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Waits for every worker to return (after [`Handle::shutdown`]).
    ///
    /// # Errors
    ///
    /// [`WorkerPanicked`] when a worker's thread died of a panic (a fault of the engine: a
    /// panic in the application's callbacks costs its connection only). Its connections ended
    /// with it; the other workers served on.
    pub fn join(self) -> Result<(), WorkerPanicked> {
        let mut died = Vec::new();
        for (index, thread) in self.threads.into_iter().enumerate() {
            if let Err(payload) = thread.join() {
                let text = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                died.push((index, text));
            }
        }
        if let Some(backplane) = &self.backplane {
            backplane.stop();
        }
        if died.is_empty() {
            Ok(())
        } else {
            Err(WorkerPanicked { workers: died })
        }
    }
}

/// Workers whose thread died of a panic, from [`Running::join`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerPanicked {
    /// Each dead worker's index and its panic's message.
    pub workers: Vec<(usize, String)>,
}

impl std::fmt::Display for WorkerPanicked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (index, text) in &self.workers {
            writeln!(f, "worker {index} panicked: {text}")?;
        }
        Ok(())
    }
}

impl std::error::Error for WorkerPanicked {}

/// Marks a worker gone when its thread ends, by return or by panic: its connections are closed
/// (count 0) and broadcasts skip it.
struct Gone(Arc<Signal>, Arc<SharedStats>);

impl Drop for Gone {
    fn drop(&mut self) {
        self.0
            .gone
            .store(true, std::sync::atomic::Ordering::Release);
        self.1.worker_gone();
    }
}

/// Fails when another socket listens on `addr` (a port chosen by the OS never is): this
/// server's workers share their port through `SO_REUSEPORT`, which would otherwise let a second
/// server join the port of a running one and split its connections.
fn refuse_taken(addr: SocketAddr) -> Result<(), SetupError> {
    if addr.port() == 0 {
        return Ok(());
    }
    let fail = |step| move |source| SetupError::Bind { addr, step, source };
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(fail("socket"))?;
    // SO_REUSEADDR (not SO_REUSEPORT): a connection of an earlier run in TIME_WAIT does not
    // count, a listening socket does.
    probe
        .set_reuse_address(true)
        .map_err(fail("SO_REUSEADDR"))?;
    if addr.is_ipv6() {
        probe.set_only_v6(true).map_err(fail("IPV6_V6ONLY"))?;
    }
    probe.bind(&addr.into()).map_err(fail(
        "bind (the address is in use; ServerConfig::reuse_port shares it)",
    ))
}

fn listen(addr: SocketAddr, backlog: i32) -> Result<StdListener, SetupError> {
    let fail = |step| move |source| SetupError::Bind { addr, step, source };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(fail("socket"))?;
    socket
        .set_reuse_address(true)
        .map_err(fail("SO_REUSEADDR"))?;
    socket.set_reuse_port(true).map_err(fail("SO_REUSEPORT"))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true).map_err(fail("IPV6_V6ONLY"))?;
    }
    socket.set_nonblocking(true).map_err(fail("O_NONBLOCK"))?;
    socket.bind(&addr.into()).map_err(fail("bind"))?;
    socket.listen(backlog).map_err(fail("listen"))?;
    Ok(socket.into())
}
