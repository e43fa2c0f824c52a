//! The client side of an echo, measured: `--connections` connections on one current-thread
//! tokio runtime, each sending `--size`-byte binary messages one at a time and waiting for the
//! echo, until `--seconds` pass. The client is sockeye-client's `AsyncWebSocket` or
//! tokio-tungstenite's `connect_async`, with the same runtime and the same loop, so that the
//! difference is the library's.
//!
//! Prints one JSON line: messages echoed, seconds, and this process's CPU seconds (utime and
//! stime from /proc/self/stat, apart and summed, counted from after the connections opened).
//!
//! `peer-client-bench --client sockeye|tungstenite --url ws://HOST:PORT/ [--size BYTES]
//!  [--connections N] [--seconds S | --messages N]`

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};

fn main() {
    let mut client = String::from("sockeye");
    let mut url = String::from("ws://127.0.0.1:9001/");
    let mut size = 16usize;
    let mut connections = 10usize;
    let mut seconds = 5.0f64;
    let mut per_connection = u64::MAX;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--client" => client = value,
            "--url" => url = value,
            "--size" => size = value.parse().unwrap_or_else(|_| usage("--size: bytes")),
            "--connections" => {
                connections = value.parse().unwrap_or_else(|_| usage("--connections: a count"))
            }
            "--seconds" => seconds = value.parse().unwrap_or_else(|_| usage("--seconds")),
            "--messages" => {
                per_connection = value.parse().unwrap_or_else(|_| usage("--messages: a count"));
                seconds = 3600.0;
            }
            _ => usage(&format!("unknown option {flag}")),
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let duration = Duration::from_secs_f64(seconds);
    let (messages, elapsed, (user, system)) = runtime.block_on(async {
        match client.as_str() {
            "sockeye" => run(connections, duration, per_connection, size, || sockeye(&url)).await,
            "tungstenite" => {
                run(connections, duration, per_connection, size, || tungstenite(&url)).await
            }
            other => usage(&format!("unknown client {other}")),
        }
    });
    println!(
        "{{\"client\":\"{client}\",\"size\":{size},\"connections\":{connections},\
         \"messages\":{messages},\"seconds\":{elapsed:.3},\"cpu_seconds\":{:.3},\
         \"user_seconds\":{user:.3},\"system_seconds\":{system:.3}}}",
        user + system
    );
}

fn usage(why: &str) -> ! {
    eprintln!(
        "peer-client-bench: {why}\nusage: peer-client-bench --client sockeye|tungstenite \
         --url ws://HOST:PORT/ [--size BYTES] [--connections N] [--seconds S | --messages N]"
    );
    std::process::exit(2)
}

/// One echo loop: send a message, wait for it back, until `deadline`; the messages echoed.
trait Echo {
    async fn echo(&mut self, payload: &[u8]) -> bool;
}

struct Sockeye(sockeye_client::AsyncWebSocket);

impl Echo for Sockeye {
    async fn echo(&mut self, payload: &[u8]) -> bool {
        use sockeye_client::Message;
        if self.0.send(Message::Binary(payload.to_vec())).await.is_err() {
            return false;
        }
        matches!(self.0.next().await, Some(Ok(Message::Binary(b))) if b.len() == payload.len())
    }
}

async fn sockeye(url: &str) -> Sockeye {
    Sockeye(
        sockeye_client::AsyncWebSocket::connect(url)
            .await
            .unwrap_or_else(|e| panic!("sockeye-client: {e}")),
    )
}

struct Tungstenite(
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
);

impl Echo for Tungstenite {
    async fn echo(&mut self, payload: &[u8]) -> bool {
        use tokio_tungstenite::tungstenite::Message;
        if self.0.send(Message::binary(payload.to_vec())).await.is_err() {
            return false;
        }
        matches!(self.0.next().await, Some(Ok(Message::Binary(b))) if b.len() == payload.len())
    }
}

async fn tungstenite(url: &str) -> Tungstenite {
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .unwrap_or_else(|e| panic!("tokio-tungstenite: {e}"));
    let _ = ws.get_ref();
    Tungstenite(ws)
}

/// Opens `connections`, then runs their loops together for `duration` or `per_connection`
/// echoes each: (messages, seconds, user and system CPU seconds of the loops).
async fn run<C, F>(
    connections: usize,
    duration: Duration,
    per_connection: u64,
    size: usize,
    connect: impl Fn() -> F,
) -> (u64, f64, (f64, f64))
where
    C: Echo + 'static,
    F: Future<Output = C>,
{
    let mut clients = Vec::new();
    for _ in 0..connections {
        clients.push(connect().await);
    }
    let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let deadline = started + duration;
    let local = tokio::task::LocalSet::new();
    let counts = local
        .run_until(async {
            let tasks: Vec<_> = clients
                .into_iter()
                .map(|mut client| {
                    let payload = payload.clone();
                    tokio::task::spawn_local(async move {
                        let mut count = 0u64;
                        while count < per_connection
                            && Instant::now() < deadline
                            && client.echo(&payload).await
                        {
                            count += 1;
                        }
                        count
                    })
                })
                .collect();
            let mut total = 0;
            for task in tasks {
                total += task.await.unwrap_or(0);
            }
            total
        })
        .await;
    let cpu_after = cpu_seconds();
    (
        counts,
        started.elapsed().as_secs_f64(),
        (cpu_after.0 - cpu_before.0, cpu_after.1 - cpu_before.1),
    )
}

/// This process's user and system CPU seconds.
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command's closing parenthesis; utime and stime are the 12th and
    // 13th of them (in clock ticks of 1/100 s).
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) / 100.0, ticks(12) / 100.0)
}
