//! The `sockeye` command: `sockeye serve` (an echo server with a demo page and `/pubsub`),
//! `sockeye load` (a load generator on the client role) and `sockeye connect` (an interactive
//! client).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod connect;
mod load;
mod pubsub;
mod serve;
mod size;

/// sockeye: a zero-copy WebSocket engine. Serve an echo server, load one, or talk to any server.
#[derive(Debug, Parser)]
#[command(name = "sockeye", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an echo server with a publish/subscribe endpoint (/pubsub); open http://ADDR/
    /// (https:// with --tls-cert) in a browser for a demo page; GET /stats answers the
    /// engine's counters as JSON.
    Serve(serve::ServeArgs),
    /// Generate load against a WebSocket echo server (echo, latency, connect or soak) or a /pubsub
    /// server (fanout).
    Load(load::LoadArgs),
    /// Connect to a WebSocket server: lines from standard input are sent, messages received
    /// are printed.
    Connect(connect::ConnectArgs),
}

/// The engine's and the backplane's log lines (warnings and errors; information too with
/// `SOCKEYE_LOG=info`), on stderr.
struct Stderr;

static LOGGER: Stderr = Stderr;

impl log::Log for Stderr {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        meta.level() <= log::max_level() && meta.target().starts_with("sockeye")
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            eprintln!("sockeye: {}: {}", record.level(), record.args());
        }
    }

    fn flush(&self) {}
}

fn main() -> ExitCode {
    let level = match std::env::var("SOCKEYE_LOG").as_deref() {
        Ok("debug") => log::LevelFilter::Debug,
        Ok("info") => log::LevelFilter::Info,
        Ok("off") => log::LevelFilter::Off,
        _ => log::LevelFilter::Warn,
    };
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Load(args) => load::run(args),
        Command::Connect(args) => return connect::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sockeye: {err}");
            ExitCode::FAILURE
        }
    }
}
