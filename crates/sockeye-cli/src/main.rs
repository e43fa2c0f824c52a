//! The `sockeye` command: `sockeye serve` (an echo server with a demo page and `/pubsub`) and `sockeye load`
//! (a load generator on the client role).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod load;
mod pubsub;
mod serve;
mod size;

/// sockeye: a zero-copy WebSocket engine. Serve an echo server, or load one.
#[derive(Debug, Parser)]
#[command(name = "sockeye", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an echo server with a publish/subscribe endpoint (/pubsub); open http://ADDR/
    /// (https:// with --tls-cert) in a browser for a demo page.
    Serve(serve::ServeArgs),
    /// Generate load against a WebSocket echo server (echo, latency or connect) or a /pubsub
    /// server (fanout).
    Load(load::LoadArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Load(args) => load::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sockeye: {err}");
            ExitCode::FAILURE
        }
    }
}
