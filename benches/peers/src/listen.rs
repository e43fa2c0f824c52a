//! Listeners and worker threads.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::thread;

use socket2::{Domain, Protocol, Socket, Type};

/// The kernel's accept queue per listener, as in sockeye.
pub const BACKLOG: i32 = 1024;

/// One non-blocking listener on `addr` with `SO_REUSEADDR` and `SO_REUSEPORT`.
///
/// # Errors
///
/// When the socket cannot be created, configured or bound.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// `count` listeners sharing one address (port 0 picks a free port for all of them); the
/// kernel spreads new connections over them.
///
/// # Errors
///
/// When a listener cannot be bound.
pub fn bind_all(addr: SocketAddr, count: usize) -> io::Result<Vec<TcpListener>> {
    let first = bind(addr)?;
    let addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..count {
        listeners.push(bind(addr)?);
    }
    Ok(listeners)
}

/// Binds the listeners, prints `listening on ADDR` once all are ready, runs `worker` on each in
/// its own thread and waits for them; exits the process on a setup error.
pub fn run_workers<F>(name: &str, addr: SocketAddr, workers: usize, worker: F)
where
    F: Fn(TcpListener) -> io::Result<()> + Send + Clone + 'static,
{
    run_numbered(name, addr, workers, move |_, listener| worker(listener));
}

/// [`run_workers`], telling each worker its number (0 to `workers - 1`).
pub fn run_numbered<F>(name: &str, addr: SocketAddr, workers: usize, worker: F)
where
    F: Fn(usize, TcpListener) -> io::Result<()> + Send + Clone + 'static,
{
    let listeners = match bind_all(addr, workers) {
        Ok(listeners) => listeners,
        Err(e) => {
            eprintln!("{name}: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    let bound = listeners[0].local_addr().map_or(addr, |a| a);
    let threads: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(i, listener)| {
            let worker = worker.clone();
            thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || worker(i, listener))
        })
        .collect::<io::Result<_>>()
        .unwrap_or_else(|e| {
            eprintln!("{name}: cannot start a worker: {e}");
            std::process::exit(1);
        });
    println!("listening on {bound}");
    for thread in threads {
        match thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("{name}: worker failed: {e}"),
            Err(_) => eprintln!("{name}: worker panicked"),
        }
    }
}
