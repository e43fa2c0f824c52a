//! Counting, the live progress line, and the summary (human or JSON); the fanout mode's parts
//! in [`fanout`].

mod fanout;

use core::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;

use super::fanout::Counts;
use super::{Mode, Plan};

/// The largest time a histogram records, in nanoseconds (60 s); longer values saturate.
const HIST_MAX_NS: u64 = 60_000_000_000;

/// Bytes a connection moved, on the wire (everything written to and read from the socket: the
/// upgrade, frame headers, compressed payloads, closes; over TLS, these bytes before encryption)
/// and in messages (payloads as the application sees them), over the whole run (warmup and
/// drain included).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Traffic {
    /// Bytes written to sockets.
    pub(super) wire_written: u64,
    /// Bytes read from sockets.
    pub(super) wire_read: u64,
    /// Payload bytes of the messages sent.
    pub(super) payload_sent: u64,
    /// Payload bytes of the messages received.
    pub(super) payload_received: u64,
}

impl Traffic {
    /// Adds another connection's bytes.
    pub(super) fn add(&mut self, other: Traffic) {
        self.wire_written += other.wire_written;
        self.wire_read += other.wire_read;
        self.payload_sent += other.payload_sent;
        self.payload_received += other.payload_received;
    }

    /// Payload bytes per wire byte, both directions together (above 1 when compression pays
    /// off); `None` when no message moved.
    pub(super) fn ratio(&self) -> Option<f64> {
        let payload = self.payload_sent + self.payload_received;
        let wire = self.wire_written + self.wire_read;
        (payload > 0 && wire > 0).then(|| payload as f64 / wire as f64)
    }
}

/// One thread's counts; merged into the run's at the end.
#[derive(Debug)]
pub(super) struct Stats {
    /// Connections whose handshake completed.
    pub(super) established: u64,
    /// Connections that failed before the handshake completed (refused, timed out, not 101).
    pub(super) connect_failed: u64,
    /// From the start of the connect phase to the end of its last attempt.
    pub(super) connect_time: Duration,
    /// Echoes received inside the measurement window.
    pub(super) echoes: u64,
    /// Payload bytes of those echoes.
    pub(super) echo_bytes: u64,
    /// Echoes compared byte for byte with what was sent, warmup and drain included.
    pub(super) verified: u64,
    /// Echoes that differed from what was sent.
    pub(super) mismatches: u64,
    /// Established connections lost before we closed them.
    pub(super) errors: u64,
    /// Connections still open at the end of the hold (connect mode).
    pub(super) still_open: u64,
    /// Connections whose closing handshake completed (our close was echoed).
    pub(super) closed_clean: u64,
    /// Connections we started to close.
    pub(super) closing: u64,
    /// The first connection failure, for the error message.
    pub(super) first_error: Option<String>,
    /// The first mismatch, for the error message.
    pub(super) first_mismatch: Option<String>,
    /// Round-trip times in nanoseconds (measurement window only).
    pub(super) rtt: Histogram<u64>,
    /// Handshake times (TCP connect to the 101) in nanoseconds.
    pub(super) handshake: Histogram<u64>,
    /// Connections on which permessage-deflate was negotiated.
    pub(super) deflate_negotiated: u64,
    /// Bytes moved by the connections, added up as each is dropped.
    pub(super) traffic: Traffic,
    /// Publishes, deliveries and their checks (fanout runs).
    pub(super) fanout: Counts,
}

impl Stats {
    /// Zeroed counts.
    ///
    /// # Errors
    ///
    /// When a histogram cannot be created (never with these constant bounds).
    pub(super) fn new() -> Result<Self, String> {
        let hist =
            || Histogram::new_with_bounds(1, HIST_MAX_NS, 3).map_err(|e| format!("histogram: {e}"));
        Ok(Stats {
            established: 0,
            connect_failed: 0,
            connect_time: Duration::ZERO,
            echoes: 0,
            echo_bytes: 0,
            verified: 0,
            mismatches: 0,
            errors: 0,
            still_open: 0,
            closed_clean: 0,
            closing: 0,
            first_error: None,
            first_mismatch: None,
            rtt: hist()?,
            handshake: hist()?,
            deflate_negotiated: 0,
            traffic: Traffic::default(),
            fanout: Counts::new(hist()?),
        })
    }

    /// Records a duration in a histogram, in nanoseconds.
    pub(super) fn record(hist: &mut Histogram<u64>, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        hist.saturating_record(ns.clamp(1, HIST_MAX_NS));
    }

    /// Adds another thread's counts.
    ///
    /// # Errors
    ///
    /// When the histograms cannot be added (never: they share bounds).
    pub(super) fn merge(&mut self, other: Stats) -> Result<(), String> {
        self.established += other.established;
        self.connect_failed += other.connect_failed;
        self.connect_time = self.connect_time.max(other.connect_time);
        self.echoes += other.echoes;
        self.echo_bytes += other.echo_bytes;
        self.verified += other.verified;
        self.mismatches += other.mismatches;
        self.errors += other.errors;
        self.still_open += other.still_open;
        self.closed_clean += other.closed_clean;
        self.closing += other.closing;
        self.first_error = self.first_error.take().or(other.first_error);
        self.first_mismatch = self.first_mismatch.take().or(other.first_mismatch);
        self.deflate_negotiated += other.deflate_negotiated;
        self.traffic.add(other.traffic);
        self.fanout.merge(other.fanout)?;
        self.rtt
            .add(&other.rtt)
            .map_err(|e| format!("histogram: {e}"))?;
        self.handshake
            .add(&other.handshake)
            .map_err(|e| format!("histogram: {e}"))
    }

    /// Whether the run passed: every connection established and kept, every echo verified, and
    /// (for echo and latency) something received; fanout runs: see [`fanout::verdict`].
    ///
    /// # Errors
    ///
    /// What went wrong, with the first instance.
    pub(super) fn verdict(&self, plan: &Plan) -> Result<(), String> {
        let first = |what: &Option<String>| what.as_deref().unwrap_or("unknown").to_owned();
        if self.connect_failed > 0 {
            return Err(format!(
                "{} of {} connections failed to connect to {} (first: {})",
                self.connect_failed,
                plan.connections,
                plan.addr,
                first(&self.first_error)
            ));
        }
        if plan.mode == Mode::Fanout {
            return fanout::verdict(self);
        }
        if self.mismatches > 0 {
            return Err(format!(
                "{} echoes did not match what was sent (first: {})",
                self.mismatches,
                first(&self.first_mismatch)
            ));
        }
        if self.errors > 0 {
            return Err(format!(
                "{} connections failed during the run (first: {})",
                self.errors,
                first(&self.first_error)
            ));
        }
        if plan.mode != Mode::Connect && self.echoes == 0 {
            return Err("no echo was received in the measurement window".into());
        }
        Ok(())
    }
}

/// What a load thread is doing, for the progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PhaseCode {
    /// Opening connections.
    Connecting = 0,
    /// Sending `sub` commands and waiting for their replies (fanout).
    Subscribing = 1,
    /// Sending, not counting yet.
    Warmup = 2,
    /// Sending and counting.
    Measuring = 3,
    /// Publishing is over; waiting for the last deliveries (fanout).
    Draining = 4,
    /// Holding connections idle.
    Holding = 5,
    /// Closing connections.
    Closing = 6,
    /// Finished.
    Done = 7,
}

impl PhaseCode {
    fn name(code: u64) -> &'static str {
        match code {
            0 => "connecting",
            1 => "subscribing",
            2 => "warmup",
            3 => "measuring",
            4 => "draining",
            5 => "holding",
            6 => "closing",
            _ => "done",
        }
    }
}

/// Counters a load thread publishes for the progress line.
#[derive(Debug, Default)]
pub(super) struct Live {
    established: AtomicU64,
    failed: AtomicU64,
    open: AtomicU64,
    verified: AtomicU64,
    phase: AtomicU64,
}

impl Live {
    /// Publishes a thread's counts.
    pub(super) fn publish(&self, stats: &Stats, open: u64, phase: PhaseCode) {
        let failed = stats.connect_failed + stats.errors + stats.mismatches;
        self.established.store(stats.established, Ordering::Relaxed);
        self.failed.store(failed, Ordering::Relaxed);
        self.open.store(open, Ordering::Relaxed);
        self.verified.store(stats.verified, Ordering::Relaxed);
        self.phase.store(phase as u64, Ordering::Relaxed);
    }
}

/// The sum of all threads' live counters.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Totals {
    /// Handshakes completed.
    pub(super) established: u64,
    /// Connections failed (connect, later, or by a mismatch).
    pub(super) failed: u64,
    /// Connections open now.
    pub(super) open: u64,
    /// Echoes verified so far.
    pub(super) verified: u64,
    /// The phase of the slowest thread.
    phase: u64,
}

impl Totals {
    /// Adds up the threads' counters.
    pub(super) fn sum(live: &[Live]) -> Self {
        let mut totals = Totals {
            phase: u64::MAX,
            ..Totals::default()
        };
        for l in live {
            totals.established += l.established.load(Ordering::Relaxed);
            totals.failed += l.failed.load(Ordering::Relaxed);
            totals.open += l.open.load(Ordering::Relaxed);
            totals.verified += l.verified.load(Ordering::Relaxed);
            totals.phase = totals.phase.min(l.phase.load(Ordering::Relaxed));
        }
        totals
    }
}

/// The progress line: `elapsed` since the start, `rate` echoes (deliveries) per second since the
/// last line.
pub(super) fn progress_line(plan: &Plan, elapsed: Duration, totals: Totals, rate: u64) -> String {
    let secs = elapsed.as_secs();
    let phase = PhaseCode::name(totals.phase);
    let Totals {
        established,
        failed,
        open,
        verified,
        ..
    } = totals;
    match plan.mode {
        Mode::Connect => format!(
            "[{secs:>3}s] {phase}: {established}/{} established, {open} open, {failed} failed",
            plan.connections
        ),
        Mode::Echo | Mode::Latency => format!(
            "[{secs:>3}s] {phase}: {rate} echoes/s, {verified} verified, {open}/{} open, \
             {failed} failed",
            plan.connections
        ),
        Mode::Fanout => format!(
            "[{secs:>3}s] {phase}: {rate} deliveries/s, {verified} delivered, {open}/{} open, \
             {failed} failed",
            plan.connections
        ),
    }
}

/// A duration in nanoseconds, written with a fitting unit.
fn human_ns(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.1} µs", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

/// Quantiles reported for round trips.
const QUANTILES: [(&str, f64); 4] = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)];

/// The one-line human summary.
pub(super) fn human(plan: &Plan, stats: &Stats) -> String {
    let secs = plan.duration.as_secs_f64();
    let kind = if plan.text { "text" } else { "binary" };
    if plan.mode != Mode::Connect && stats.connect_failed > 0 {
        return format!(
            "{}: {} of {} connections established, {} failed to connect; nothing measured",
            mode_name(plan.mode),
            stats.established,
            plan.connections,
            stats.connect_failed
        );
    }
    let mut line = match plan.mode {
        Mode::Echo => format!(
            "echo: {} connections × {} in flight × {} B {kind}, {secs:.1} s: {} echoes \
             ({:.0} echoes/s, {:.2} MiB/s), {} verified, {} mismatches, {} errors",
            plan.connections,
            plan.in_flight,
            plan.size,
            stats.echoes,
            stats.echoes as f64 / secs,
            stats.echo_bytes as f64 / secs / f64::from(1 << 20),
            stats.verified,
            stats.mismatches,
            stats.errors + stats.connect_failed,
        ),
        Mode::Latency => {
            let mut line = format!(
                "latency: {} connections × {} B {kind}, {secs:.1} s: {} echoes ({:.0} echoes/s); \
                 round trip",
                plan.connections,
                plan.size,
                stats.echoes,
                stats.echoes as f64 / secs,
            );
            if stats.rtt.is_empty() {
                line.push_str(" n/a");
            }
            for (name, q) in QUANTILES.iter().filter(|_| !stats.rtt.is_empty()) {
                let _ = write!(
                    line,
                    " {name} {}",
                    human_ns(stats.rtt.value_at_quantile(*q))
                );
            }
            if !stats.rtt.is_empty() {
                let _ = write!(line, " max {}", human_ns(stats.rtt.max()));
            }
            let _ = write!(
                line,
                "; {} verified, {} mismatches, {} errors",
                stats.verified,
                stats.mismatches,
                stats.errors + stats.connect_failed
            );
            line
        }
        Mode::Fanout => fanout::human(plan, stats),
        Mode::Connect => {
            let connect = stats.connect_time.as_secs_f64();
            let mut line = format!(
                "connect: {} of {} established in {connect:.2} s ({:.0} {}handshakes/s",
                stats.established,
                plan.connections,
                stats.established as f64 / connect.max(1e-9),
                if plan.connector.is_tls() {
                    "TLS + WebSocket "
                } else {
                    ""
                },
            );
            if !stats.handshake.is_empty() {
                let _ = write!(
                    line,
                    ", handshake p50 {} p99 {} max {}",
                    human_ns(stats.handshake.value_at_quantile(0.5)),
                    human_ns(stats.handshake.value_at_quantile(0.99)),
                    human_ns(stats.handshake.max()),
                );
            }
            let _ = write!(
                line,
                "); {} still open after {:.1} s hold; {} failed to connect, {} dropped",
                stats.still_open,
                plan.hold.as_secs_f64(),
                stats.connect_failed,
                stats.errors,
            );
            line
        }
    };
    if stats.closed_clean < stats.closing {
        let _ = write!(
            line,
            " ({} of {} closes not echoed)",
            stats.closing - stats.closed_clean,
            stats.closing
        );
    }
    let traffic = &stats.traffic;
    let _ = write!(
        line,
        "; wire: {} written, {} read",
        human_bytes(traffic.wire_written),
        human_bytes(traffic.wire_read)
    );
    if let Some(ratio) = traffic.ratio() {
        let _ = write!(line, " (payload/wire {ratio:.2})");
    }
    if plan.deflate.is_some() {
        let _ = write!(
            line,
            "; permessage-deflate on {} of {} connections",
            stats.deflate_negotiated, stats.established
        );
    }
    line
}

/// A byte count, written with a binary unit.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Echo => "echo",
        Mode::Latency => "latency",
        Mode::Connect => "connect",
        Mode::Fanout => "fanout",
    }
}

/// The one-line JSON summary.
pub(super) fn json(plan: &Plan, stats: &Stats) -> String {
    let secs = plan.duration.as_secs_f64();
    let mode = mode_name(plan.mode);
    let mut out = format!(
        "{{\"mode\":\"{mode}\",\"url\":{},\"tls\":{},\"threads\":{},\"connections\":{},\
         \"established\":{},\"connect_failed\":{},\"connect_s\":{:.6},\"handshakes_per_s\":{:.1}",
        json_string(&plan.url_text),
        plan.connector.is_tls(),
        plan.threads,
        plan.connections,
        stats.established,
        stats.connect_failed,
        stats.connect_time.as_secs_f64(),
        stats.established as f64 / stats.connect_time.as_secs_f64().max(1e-9),
    );
    match plan.mode {
        Mode::Connect => {
            let _ = write!(
                out,
                ",\"concurrency\":{},\"hold_s\":{:.3},\"still_open\":{},\"dropped\":{}",
                plan.concurrency,
                plan.hold.as_secs_f64(),
                stats.still_open,
                stats.errors
            );
            write_quantiles(&mut out, "handshake_us", &stats.handshake);
        }
        Mode::Echo | Mode::Latency => {
            let _ = write!(
                out,
                ",\"in_flight\":{},\"size\":{},\"text\":{},\"warmup_s\":{:.3},\"duration_s\":{:.3},\
                 \"echoes\":{},\"echoes_per_s\":{:.1},\"mib_per_s\":{:.3},\"verified\":{},\
                 \"mismatches\":{},\"errors\":{}",
                plan.in_flight,
                plan.size,
                plan.text,
                plan.warmup.as_secs_f64(),
                secs,
                stats.echoes,
                stats.echoes as f64 / secs,
                stats.echo_bytes as f64 / secs / f64::from(1 << 20),
                stats.verified,
                stats.mismatches,
                stats.errors,
            );
            write_quantiles(&mut out, "rtt_us", &stats.rtt);
        }
        Mode::Fanout => fanout::json(&mut out, plan, stats),
    }
    let traffic = &stats.traffic;
    let _ = write!(
        out,
        ",\"deflate_offered\":{},\"deflate_negotiated\":{},\"wire_bytes_written\":{},\
         \"wire_bytes_read\":{},\"payload_bytes_sent\":{},\"payload_bytes_received\":{},\
         \"compression_ratio\":{}",
        plan.deflate.is_some(),
        stats.deflate_negotiated,
        traffic.wire_written,
        traffic.wire_read,
        traffic.payload_sent,
        traffic.payload_received,
        traffic
            .ratio()
            .map_or_else(|| "null".to_owned(), |r| format!("{r:.4}")),
    );
    let first = stats.first_mismatch.as_ref().or(stats.first_error.as_ref());
    let _ = write!(
        out,
        ",\"closed_clean\":{},\"first_error\":{}}}",
        stats.closed_clean,
        first.map_or_else(|| "null".to_owned(), |e| json_string(e))
    );
    out
}

/// `,"name":{"p50":…,"max":…}` in microseconds, or `null` when nothing was recorded.
fn write_quantiles(out: &mut String, name: &str, hist: &Histogram<u64>) {
    if hist.is_empty() {
        let _ = write!(out, ",\"{name}\":null");
        return;
    }
    let us = |ns: u64| ns as f64 / 1e3;
    let _ = write!(out, ",\"{name}\":{{");
    for (name, q) in QUANTILES {
        let key = name.replace('.', "_");
        let _ = write!(out, "\"{key}\":{:.1},", us(hist.value_at_quantile(q)));
    }
    let _ = write!(out, "\"max\":{:.1}}}", us(hist.max()));
}

/// A JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
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

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(
            json_string("a\"b\\c\nd\u{1}é"),
            "\"a\\\"b\\\\c\\nd\\u0001é\""
        );
    }

    #[test]
    fn byte_counts_pick_a_unit() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 << 20), "5.0 MiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn traffic_ratio() {
        let mut total = Traffic::default();
        assert_eq!(total.ratio(), None);
        total.add(Traffic {
            wire_written: 100,
            wire_read: 100,
            payload_sent: 400,
            payload_received: 400,
        });
        total.add(total);
        assert_eq!(total.wire_written, 200);
        assert_eq!(total.ratio(), Some(4.0));
    }

    #[test]
    fn durations_pick_a_unit() {
        assert_eq!(human_ns(999), "999 ns");
        assert_eq!(human_ns(45_100), "45.1 µs");
        assert_eq!(human_ns(2_500_000), "2.50 ms");
        assert_eq!(human_ns(3_000_000_000), "3.00 s");
    }
}
