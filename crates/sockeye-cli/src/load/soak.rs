//! `sockeye load soak`: a long run of a mixed client population against an echo server,
//! checking every echo and watching the server's memory, descriptors and counters.
//!
//! ```text
//!  main thread: baseline sample ─▶ spawn clients × --clients, pinger ─▶ sample every --sample
//!      │          (RSS, fds from /proc/PID; counters from GET /stats; pings answered)
//!      ▼
//!  deadline: clients finish their session ─▶ settle (≤ 10 s for connections and fds to drop)
//!      ─▶ checks ─▶ summary (human or --json with every sample), --plot SVG ─▶ exit status
//! ```
//!
//! Modules: [`session`] (what a client does), [`wire`] (one blocking connection), [`probe`]
//! (the server's process, counters and pings), [`plot`] (the SVG).

mod plot;
mod probe;
mod session;
mod wire;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::deflate::Offer;
use super::sys::{Entropy, splitmix64};
use super::units;
use probe::{Pings, Process};
use session::{Client, Env, Kind};
use sockeye_client::WsUrl;

/// Options of `sockeye load soak`.
#[derive(Debug, clap::Args)]
pub(crate) struct SoakArgs {
    /// The echo server: ws://HOST:PORT/PATH (plain TCP).
    #[arg(
        short,
        long,
        default_value = "ws://127.0.0.1:9001/",
        value_name = "URL"
    )]
    url: String,
    /// Seconds to run (new sessions start until then; the ones in progress finish).
    #[arg(short, long, default_value = "60", value_parser = units::parse_seconds, value_name = "SECS")]
    duration: Duration,
    /// Seconds of warm-up: memory growth is judged on the samples after it.
    #[arg(long, default_value = "10", value_parser = units::parse_seconds, value_name = "SECS")]
    warmup: Duration,
    /// Clients running sessions at the same time (one connection each at a time).
    #[arg(short, long, default_value_t = 16, value_name = "N")]
    clients: usize,
    /// The largest message (a few sessions send up to this).
    #[arg(long, default_value = "1MiB", value_parser = units::parse_size, value_name = "BYTES")]
    max_size: usize,
    /// Percentage of sessions that offer permessage-deflate.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=100), value_name = "PCT")]
    deflate_percent: u64,
    /// The server's process id: its resident memory and open descriptors are sampled from
    /// /proc and checked.
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
    /// Seconds between samples.
    #[arg(long, default_value = "1", value_parser = units::parse_seconds, value_name = "SECS")]
    sample: Duration,
    /// Growth of the server's resident memory allowed after the warm-up: the median of the
    /// last quarter of the samples against the median of the first quarter.
    #[arg(long, default_value = "64MiB", value_parser = units::parse_size, value_name = "BYTES")]
    rss_slack: usize,
    /// Descriptors the server may hold above its count before the run, once every client
    /// has gone (and above that count plus the clients' connections during the run).
    #[arg(long, default_value_t = 4, value_name = "N")]
    fd_slack: u64,
    /// Seconds any read or write may wait for the server before the session fails.
    #[arg(long, default_value = "30", value_parser = units::parse_seconds, value_name = "SECS")]
    timeout: Duration,
    /// Seed of the clients' choices (default: from the OS).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Print the summary as JSON with every sample.
    #[arg(long)]
    json: bool,
    /// Write an SVG of the server's memory, connections and descriptors over time to FILE.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
}

/// The counts of a run, shared by every client.
#[derive(Debug, Default)]
pub(super) struct Counters {
    /// Sessions started, per [`Kind`].
    sessions: [AtomicU64; Kind::ALL.len()],
    /// Sessions whose connection negotiated permessage-deflate.
    compressed: AtomicU64,
    /// Echoes verified.
    messages: AtomicU64,
    /// Payload bytes of the echoes verified.
    bytes: AtomicU64,
    /// Messages sent in fragments.
    fragmented: AtomicU64,
    /// Pings sent (each pong checked).
    pings: AtomicU64,
    /// Closing handshakes completed.
    clean: AtomicU64,
    /// Connections dropped without a close frame.
    unclean: AtomicU64,
    /// Connections reset.
    resets: AtomicU64,
    /// Sessions that stopped reading for a while.
    stalls: AtomicU64,
    /// Protocol violations answered with the right close code.
    violations: AtomicU64,
    /// Echoes or pongs that differed from what was sent.
    wrong: AtomicU64,
    /// Connections open now.
    open: AtomicUsize,
    /// Failures, the first few kept with their text.
    failed: AtomicU64,
    failures: Mutex<Vec<String>>,
}

/// Failure texts kept for the report.
const KEPT_FAILURES: usize = 20;

impl Counters {
    /// Records a failure.
    pub(super) fn fail(&self, text: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut kept) = self.failures.lock()
            && kept.len() < KEPT_FAILURES
        {
            kept.push(text);
        }
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// One sample of the run.
#[derive(Debug, Default, Clone)]
pub(super) struct Sample {
    /// Seconds since the clients started.
    pub(super) t: f64,
    /// The server's resident memory, bytes.
    pub(super) rss: Option<u64>,
    /// The server's open descriptors.
    pub(super) fds: Option<u64>,
    /// The clients' open connections.
    pub(super) open: u64,
    /// The server's `connections_open` counter.
    pub(super) server_open: Option<u64>,
    /// Echoes verified so far.
    pub(super) messages: u64,
    /// The slowest ping answer since the previous sample, microseconds.
    pub(super) ping_us: u64,
}

/// What the server looked like before and after the run.
#[derive(Debug, Default)]
struct Ends {
    rss: Option<u64>,
    fds: Option<u64>,
    stats: Option<Vec<(String, u64)>>,
}

pub(crate) fn run(args: SoakArgs) -> Result<(), Box<dyn std::error::Error>> {
    let url = WsUrl::parse(&args.url).map_err(|e| e.to_string())?;
    if url.secure {
        return Err("soak runs over ws:// only".into());
    }
    if args.clients == 0 {
        return Err("--clients must be at least 1".into());
    }
    if args.sample.is_zero() {
        return Err("--sample must be above 0".into());
    }
    let addr = url.resolve().map_err(|e| e.to_string())?;
    let process = args.server_pid.map(Process::new);
    let before = ends(process, addr, &url.authority)?;
    let seed = match args.seed {
        Some(seed) => seed,
        None => Entropy::open()?.next_u64()?,
    };
    let env = Arc::new(Env {
        addr,
        url,
        offer: Offer::new(6, 0, 15)?,
        timeout: args.timeout,
        deadline: Instant::now() + args.duration,
        max_size: args.max_size,
        deflate_percent: args.deflate_percent,
        counters: Counters::default(),
        abort: Default::default(),
    });

    let start = Instant::now();
    let pings = Arc::new(Mutex::new(Pings::default()));
    let pinger = probe::spawn_pinger(Arc::clone(&env), Arc::clone(&pings));
    let mut state = seed;
    let mut clients = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        let shared = Arc::clone(&env);
        let seed = splitmix64(&mut state);
        let spawned = thread::Builder::new()
            .name(format!("soak-{i}"))
            .spawn(move || match Client::new(seed) {
                Ok(mut client) => client.run(&shared),
                Err(e) => shared.counters.fail(e),
            });
        match spawned {
            Ok(handle) => clients.push(handle),
            Err(e) => env
                .counters
                .fail(format!("cannot start a client thread: {e}")),
        }
    }

    // Sample until every client is done; a client still busy long after the deadline (every
    // wait is bounded by --timeout) is a failure.
    let give_up = env.deadline + 3 * args.timeout + Duration::from_secs(10);
    let mut samples = Vec::new();
    let mut next = start;
    let progress = !args.json;
    loop {
        let now = Instant::now();
        if now >= next {
            let sample = take_sample(&env, process, &pings, start);
            if let (true, Some(last)) = (progress, samples.last()) {
                progress_line(&sample, last, args.sample.as_secs_f64());
            }
            samples.push(sample);
            next += args.sample;
        }
        if clients.iter().all(|c| c.is_finished()) && pinger.is_finished() {
            break;
        }
        if now >= give_up {
            env.counters.fail(format!(
                "clients still busy {:.0?} after the deadline",
                give_up - env.deadline
            ));
            env.abort.store(true, Ordering::Relaxed);
            break;
        }
        thread::sleep(Duration::from_millis(20).min(next.saturating_duration_since(now)));
    }
    // A client or the pinger that panicked lost its sessions: a failure, not a quiet gap.
    for handle in clients.into_iter().chain([pinger]) {
        if handle.is_finished() && handle.join().is_err() {
            env.counters.fail("a client thread panicked".into());
        }
    }
    let ran = start.elapsed();

    // Settle: the server should let go of every connection and descriptor.
    let settle_until = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let after = match ends(process, env.addr, &env.url.authority) {
            Ok(after) => after,
            Err(e) => {
                env.counters.fail(format!("after the run: {e}"));
                break Ends::default();
            }
        };
        let fds_back = match (after.fds, before.fds) {
            // The /stats request holds one descriptor while it is answered.
            (Some(a), Some(b)) => a <= b + args.fd_slack,
            _ => true,
        };
        let conns_back = after
            .stats
            .as_deref()
            .and_then(probe::open_besides_self)
            .is_none_or(|open| open == 0);
        if (fds_back && conns_back) || Instant::now() >= settle_until {
            break after;
        }
        thread::sleep(Duration::from_millis(200));
    };

    let checks = check(&args, &env, &samples, &before, &after);
    for failure in &checks {
        env.counters.fail(failure.clone());
    }
    let ping = pings
        .lock()
        .map(|p| (p.answered, p.slowest_run_us))
        .unwrap_or_default();
    let summary = Summary {
        args: &args,
        env: &env,
        ran,
        samples: &samples,
        before: &before,
        after: &after,
        ping,
    };
    if args.json {
        println!("{}", summary.json());
    } else {
        println!("{}", summary.human());
    }
    if let Some(path) = &args.plot {
        let title = format!(
            "sockeye load soak: {} clients, {:.0} s, {}",
            args.clients,
            ran.as_secs_f64(),
            env.url.authority
        );
        std::fs::write(path, plot::svg(&title, &samples, args.warmup.as_secs_f64()))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let failed = Counters::get(&env.counters.failed);
    if failed > 0 {
        return Err(format!("soak failed: {failed} failures (listed above)").into());
    }
    Ok(())
}

fn ends(
    process: Option<Process>,
    addr: std::net::SocketAddr,
    authority: &str,
) -> Result<Ends, String> {
    let (rss, fds) = match process {
        Some(p) => (Some(p.rss()?), Some(p.fds()?)),
        None => (None, None),
    };
    Ok(Ends {
        rss,
        fds,
        stats: probe::server_stats(addr, authority),
    })
}

fn take_sample(
    env: &Env,
    process: Option<Process>,
    pings: &Mutex<Pings>,
    start: Instant,
) -> Sample {
    let (rss, fds) = match process {
        Some(p) => match (p.rss(), p.fds()) {
            (Ok(rss), Ok(fds)) => (Some(rss), Some(fds)),
            (Err(e), _) | (_, Err(e)) => {
                env.counters.fail(e);
                env.abort.store(true, Ordering::Relaxed);
                (None, None)
            }
        },
        None => (None, None),
    };
    let server_open = probe::server_stats(env.addr, &env.url.authority)
        .and_then(|s| probe::open_besides_self(&s));
    let ping_us = pings
        .lock()
        .map(|mut p| std::mem::take(&mut p.slowest_us))
        .unwrap_or_default();
    Sample {
        t: start.elapsed().as_secs_f64(),
        rss,
        fds,
        open: env.counters.open.load(Ordering::Relaxed) as u64,
        server_open,
        messages: Counters::get(&env.counters.messages),
        ping_us,
    }
}

fn progress_line(sample: &Sample, last: &Sample, every: f64) {
    let rate = (sample.messages - last.messages) as f64 / every;
    eprintln!(
        "{:>7.0} s  {:>5} open  {:>9.0} echoes/s  rss {}  fds {}  ping {} µs",
        sample.t,
        sample.open,
        rate,
        sample
            .rss
            .map_or("-".into(), |r| format!("{:.1} MiB", mib(r))),
        sample.fds.map_or("-".into(), |f| f.to_string()),
        sample.ping_us
    );
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The median of `values` (0 for none).
fn median(values: &mut [u64]) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

/// Memory growth after the warm-up: the median RSS of the first and the last quarter of the
/// samples taken after it (`None` with fewer than 8 such samples).
fn growth(samples: &[Sample], warmup_s: f64) -> Option<(u64, u64)> {
    let after: Vec<u64> = samples
        .iter()
        .filter(|s| s.t >= warmup_s)
        .filter_map(|s| s.rss)
        .collect();
    if after.len() < 8 {
        return None;
    }
    let quarter = after.len() / 4;
    let first = median(&mut after[..quarter].to_vec());
    let last = median(&mut after[after.len() - quarter..].to_vec());
    Some((first, last))
}

/// The run's verdicts beyond the sessions' own failures.
fn check(
    args: &SoakArgs,
    env: &Env,
    samples: &[Sample],
    before: &Ends,
    after: &Ends,
) -> Vec<String> {
    let mut failures = Vec::new();
    let c = &env.counters;
    if Counters::get(&c.failed) == 0 && Counters::get(&c.messages) == 0 {
        failures.push("no echo was verified".into());
    }
    if let Some((first, last)) = growth(samples, args.warmup.as_secs_f64())
        && last > first + args.rss_slack as u64
    {
        failures.push(format!(
            "server memory grew from {:.1} MiB to {:.1} MiB after the warm-up (slack {:.1} MiB)",
            mib(first),
            mib(last),
            mib(args.rss_slack as u64)
        ));
    }
    if let Some(base) = before.fds {
        // Every client holds one connection at a time, the pinger one, a /stats request one;
        // a client's last connection may still be open in the server (its EOF not read yet,
        // the worker busy) when its next one is accepted: twice the clients.
        let bound = base + 2 * args.clients as u64 + 2 + args.fd_slack;
        if let Some(peak) = samples.iter().filter_map(|s| s.fds).max()
            && peak > bound
        {
            failures.push(format!(
                "the server held {peak} descriptors, above {bound} ({base} before the run, \
                 twice {} clients, slack {})",
                args.clients, args.fd_slack
            ));
        }
        if let Some(end) = after.fds
            && end > base + args.fd_slack
        {
            failures.push(format!(
                "the server holds {end} descriptors after the run, {base} before (slack {})",
                args.fd_slack
            ));
        }
    }
    if before.stats.is_some() && after.stats.is_none() {
        failures.push("the server answered GET /stats before the run, not after it".into());
    }
    if let Some(open) = after.stats.as_deref().and_then(probe::open_besides_self)
        && open > 0
    {
        failures.push(format!(
            "the server counts {open} connections open 10 s after every client left"
        ));
    }
    failures
}

/// The report of a run.
struct Summary<'a> {
    args: &'a SoakArgs,
    env: &'a Env,
    ran: Duration,
    samples: &'a [Sample],
    before: &'a Ends,
    after: &'a Ends,
    /// Pings answered, the slowest answer in microseconds.
    ping: (u64, u64),
}

impl Summary<'_> {
    fn failures(&self) -> Vec<String> {
        self.env
            .counters
            .failures
            .lock()
            .map(|f| f.clone())
            .unwrap_or_default()
    }

    fn rss_peak(&self) -> Option<u64> {
        self.samples.iter().filter_map(|s| s.rss).max()
    }

    fn human(&self) -> String {
        let c = &self.env.counters;
        let secs = self.ran.as_secs_f64();
        let messages = Counters::get(&c.messages);
        let mut out = format!(
            "soak {:.0} s, {} clients: {} echoes verified ({:.0}/s, {:.1} MiB), {} wrong, {} failures",
            secs,
            self.args.clients,
            messages,
            messages as f64 / secs.max(1e-9),
            mib(Counters::get(&c.bytes)),
            Counters::get(&c.wrong),
            Counters::get(&c.failed),
        );
        let sessions: Vec<String> = Kind::ALL
            .iter()
            .enumerate()
            .map(|(i, (k, _))| format!("{} {}", Counters::get(&c.sessions[i]), k.name()))
            .collect();
        let _ = write!(
            out,
            "\nsessions: {} ({} compressed); {} fragmented, {} pings, {} clean closes, \
             {} unclean, {} resets, {} stalls, {} violations answered",
            sessions.join(", "),
            Counters::get(&c.compressed),
            Counters::get(&c.fragmented),
            Counters::get(&c.pings),
            Counters::get(&c.clean),
            Counters::get(&c.unclean),
            Counters::get(&c.resets),
            Counters::get(&c.stalls),
            Counters::get(&c.violations),
        );
        let _ = write!(
            out,
            "\npings answered: {}, slowest {:.1} ms",
            self.ping.0,
            self.ping.1 as f64 / 1000.0
        );
        if let (Some(b), Some(a)) = (self.before.rss, self.after.rss) {
            let _ = write!(
                out,
                "\nserver RSS: {:.1} MiB before, peak {:.1} MiB, {:.1} MiB after",
                mib(b),
                mib(self.rss_peak().unwrap_or_default()),
                mib(a)
            );
            if let Some((first, last)) = growth(self.samples, self.args.warmup.as_secs_f64()) {
                let _ = write!(
                    out,
                    "; median after warm-up {:.1} MiB (first quarter) → {:.1} MiB (last quarter)",
                    mib(first),
                    mib(last)
                );
            }
        }
        if let (Some(b), Some(a)) = (self.before.fds, self.after.fds) {
            let peak = self.samples.iter().filter_map(|s| s.fds).max().unwrap_or(b);
            let _ = write!(out, "\nserver fds: {b} before, peak {peak}, {a} after");
        }
        for failure in self.failures() {
            let _ = write!(out, "\nFAIL: {failure}");
        }
        out
    }

    fn json(&self) -> String {
        let c = &self.env.counters;
        let mut out = format!(
            "{{\"duration_s\":{:.3},\"clients\":{},\"echoes\":{},\"bytes\":{},\"wrong\":{},\
             \"failed\":{},\"compressed_sessions\":{},\"fragmented\":{},\"pings\":{},\
             \"clean_closes\":{},\"unclean\":{},\"resets\":{},\"stalls\":{},\"violations\":{},\
             \"pings_answered\":{},\"ping_slowest_us\":{}",
            self.ran.as_secs_f64(),
            self.args.clients,
            Counters::get(&c.messages),
            Counters::get(&c.bytes),
            Counters::get(&c.wrong),
            Counters::get(&c.failed),
            Counters::get(&c.compressed),
            Counters::get(&c.fragmented),
            Counters::get(&c.pings),
            Counters::get(&c.clean),
            Counters::get(&c.unclean),
            Counters::get(&c.resets),
            Counters::get(&c.stalls),
            Counters::get(&c.violations),
            self.ping.0,
            self.ping.1,
        );
        out.push_str(",\"sessions\":{");
        for (i, (k, _)) in Kind::ALL.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(
                out,
                "{sep}\"{}\":{}",
                k.name(),
                Counters::get(&c.sessions[i])
            );
        }
        out.push('}');
        let opt = |v: Option<u64>| v.map_or("null".to_owned(), |v| v.to_string());
        let _ = write!(
            out,
            ",\"rss_before\":{},\"rss_peak\":{},\"rss_after\":{},\"fds_before\":{},\"fds_after\":{}",
            opt(self.before.rss),
            opt(self.rss_peak()),
            opt(self.after.rss),
            opt(self.before.fds),
            opt(self.after.fds),
        );
        if let Some((first, last)) = growth(self.samples, self.args.warmup.as_secs_f64()) {
            let _ = write!(
                out,
                ",\"rss_median_first_quarter\":{first},\"rss_median_last_quarter\":{last}"
            );
        }
        if let Some(stats) = &self.after.stats {
            out.push_str(",\"server\":{");
            for (i, (name, value)) in stats.iter().enumerate() {
                let sep = if i == 0 { "" } else { "," };
                let _ = write!(out, "{sep}\"{name}\":{value}");
            }
            out.push('}');
        }
        out.push_str(",\"failures\":[");
        for (i, failure) in self.failures().iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(out, "{sep}{}", json_string(failure));
        }
        out.push_str("],\"samples\":[");
        for (i, s) in self.samples.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(
                out,
                "{sep}{{\"t\":{:.2},\"rss\":{},\"fds\":{},\"open\":{},\"server_open\":{},\
                 \"echoes\":{},\"ping_us\":{}}}",
                s.t,
                opt(s.rss),
                opt(s.fds),
                s.open,
                opt(s.server_open),
                s.messages,
                s.ping_us
            );
        }
        out.push_str("]}");
        out
    }
}

fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rss_samples(values: &[u64]) -> Vec<Sample> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| Sample {
                t: i as f64,
                rss: Some(*v),
                ..Sample::default()
            })
            .collect()
    }

    #[test]
    fn growth_compares_quarters_after_the_warmup() {
        // Warm-up samples (t < 4) do not count.
        let samples = rss_samples(&[1, 1, 1, 1, 10, 11, 10, 12, 10, 30, 31, 30]);
        assert_eq!(growth(&samples, 4.0), Some((11, 31)));
        assert_eq!(
            growth(&samples, 6.0),
            None,
            "fewer than 8 samples after the warm-up"
        );
    }

    #[test]
    fn json_strings_escape() {
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
