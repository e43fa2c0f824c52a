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
use crate::handle::{Handle, Remote, SharedStats};
use crate::handler::{Handler, INDEX_BITS, WORKER_BITS};
use crate::worker::{Driver, WAKER, Worker};

/// A bound, not yet running server.
pub struct Server<H: Handler> {
    config: ServerConfig,
    handler: H,
    workers: Vec<Setup>,
    addrs: Vec<SocketAddr>,
    handle: Handle,
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
            let (tx, commands) = mpsc::channel();
            let stats = Arc::new(SharedStats::default());
            remotes.push(Remote {
                tx,
                waker,
                stats: Arc::clone(&stats),
            });
            workers.push(Setup {
                poll,
                listeners,
                commands,
                stats,
            });
        }
        let handle = Handle::new(remotes, config.shutdown_timeout);
        Ok(Server {
            config,
            handler,
            workers,
            addrs,
            handle,
        })
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
        } = self;
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
                    let worker = Worker {
                        poll: setup.poll,
                        listeners: setup.listeners,
                        commands: setup.commands,
                        shared_stats: setup.stats,
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
        })
    }

    /// Runs the server until [`Handle::shutdown`] completes.
    ///
    /// # Errors
    ///
    /// [`SetupError::Io`] when a worker thread cannot be spawned.
    pub fn run(self) -> Result<(), SetupError> {
        self.spawn()?.join();
        Ok(())
    }
}

/// A server whose workers are running.
#[derive(Debug)]
pub struct Running {
    threads: Vec<JoinHandle<()>>,
    handle: Handle,
    addrs: Vec<SocketAddr>,
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
    pub fn join(self) {
        for thread in self.threads {
            let _ = thread.join();
        }
    }
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
