//! The broker's own hop, for comparison with the backplane: one NATS client publishes at a fixed
//! rate, another (on its own thread and runtime, as two nodes would be) receives; prints the
//! publish-to-receive latency as one JSON line.
//!
//! ```text
//! cargo run --release -p sockeye-nats --example rtt -- nats://127.0.0.1:4222 [RATE] [SECS]
//! ```

use std::time::{Duration, Instant};

use futures_util::StreamExt;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "nats://127.0.0.1:4222".into());
    let rate: u64 = args.next().map_or(Ok(1000), |r| r.parse())?;
    let secs: u64 = args.next().map_or(Ok(5), |s| s.parse())?;
    let epoch = Instant::now();
    let subject = format!("rtt.{}", std::process::id());

    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let receiver = {
        let (url, subject) = (url.clone(), subject.clone());
        std::thread::spawn(move || -> Result<Vec<u64>, String> {
            let rt = runtime()?;
            rt.block_on(async move {
                let client = async_nats::connect(url).await.map_err(|e| e.to_string())?;
                let mut sub = client.subscribe(subject).await.map_err(|e| e.to_string())?;
                client.flush().await.map_err(|e| e.to_string())?;
                let _ = ready_tx.send(());
                let mut latencies = Vec::new();
                while let Some(msg) = sub.next().await {
                    if msg.payload.is_empty() {
                        break;
                    }
                    let sent = u64::from_le_bytes(msg.payload[..8].try_into().unwrap());
                    latencies.push(epoch.elapsed().as_nanos() as u64 - sent);
                }
                Ok(latencies)
            })
        })
    };
    ready_rx.recv()?;
    let rt = runtime()?;
    rt.block_on(async {
        let client = async_nats::connect(url).await?;
        let period = Duration::from_nanos(1_000_000_000 / rate.max(1));
        let mut tick = tokio::time::interval(period);
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            tick.tick().await;
            let mut payload = (epoch.elapsed().as_nanos() as u64).to_le_bytes().to_vec();
            payload.resize(16, b'x');
            client.publish(subject.clone(), payload.into()).await?;
        }
        client.publish(subject.clone(), Vec::new().into()).await?;
        client.flush().await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    let mut latencies = receiver.join().map_err(|_| "the receiver panicked")??;
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    println!(
        "{{\"messages\":{},\"p50_us\":{:.1},\"p90_us\":{:.1},\"p99_us\":{:.1},\"max_us\":{:.1}}}",
        latencies.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}
