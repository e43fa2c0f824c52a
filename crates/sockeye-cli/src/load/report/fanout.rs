//! The fanout mode's summary (human and JSON) and its verdict.

use core::fmt::Write as _;

use super::{QUANTILES, Stats, human_ns, json_string, write_quantiles};
use crate::load::Plan;
use crate::load::fanout::Setup;

/// The mode's part of the human line.
pub(super) fn human(plan: &Plan, stats: &Stats) -> String {
    let Some(setup) = plan.fanout.as_ref() else {
        return String::new();
    };
    let secs = plan.duration.as_secs_f64();
    let counts = &stats.fanout;
    let mut line = format!(
        "fanout: {} subscribers × {} of {} topics, {} publishers ({}), {} B, {secs:.1} s: {} \
         deliveries ({:.0} deliveries/s), {} publishes ({:.0} publishes/s",
        setup.subscribers,
        setup.per_subscriber,
        setup.topics,
        setup.publishers,
        pacing(setup),
        setup.size,
        counts.deliveries,
        counts.deliveries as f64 / secs,
        counts.publishes,
        counts.publishes as f64 / secs,
    );
    if counts.skipped > 0 {
        let _ = write!(line, ", {} skipped on a full queue", counts.skipped);
    }
    line.push_str("); latency");
    let latency = &counts.latency;
    if latency.is_empty() {
        line.push_str(" n/a");
    } else {
        for (name, q) in QUANTILES {
            let _ = write!(line, " {name} {}", human_ns(latency.value_at_quantile(q)));
        }
        let _ = write!(line, " max {}", human_ns(latency.max()));
    }
    let _ = write!(line, "; {} lost", counts.lost);
    if counts.lost_tail > 0 {
        let _ = write!(line, " ({} of them {TAIL})", counts.lost_tail);
    }
    let _ = write!(
        line,
        ", {} duplicated, {} out of order, {} invalid, {} errors",
        counts.duplicated,
        counts.out_of_order,
        stats.mismatches,
        errors(stats),
    );
    line
}

/// What the lost tail is.
const TAIL: &str = "not delivered 2 s after publishing stopped";

/// How the publishers pace themselves.
fn pacing(setup: &Setup) -> String {
    if setup.rate > 0.0 {
        format!("{}/s per topic", setup.rate)
    } else {
        format!("closed loop, {} in flight", setup.in_flight)
    }
}

/// Connections lost during the run, failed connects and `error` replies.
fn errors(stats: &Stats) -> u64 {
    stats.errors + stats.connect_failed + stats.fanout.error_replies
}

/// The mode's fields of the JSON object.
pub(super) fn json(out: &mut String, plan: &Plan, stats: &Stats) {
    let Some(setup) = plan.fanout.as_ref() else {
        return;
    };
    let secs = plan.duration.as_secs_f64();
    let counts = &stats.fanout;
    let _ = write!(
        out,
        ",\"subscribers\":{},\"publishers\":{},\"topics\":{},\"per_subscriber\":{},\
         \"topic_prefix\":{},\"rate\":{},\"in_flight\":{},\"size\":{},\"warmup_s\":{:.3},\
         \"duration_s\":{secs:.3},\"publishes\":{},\"publishes_per_sec\":{:.1},\
         \"publishes_skipped\":{},\"deliveries\":{},\"deliveries_per_sec\":{:.1},\"verified\":{},\
         \"lost\":{},\"lost_tail\":{},\"duplicated\":{},\"out_of_order\":{},\"mismatches\":{},\
         \"error_replies\":{},\"errors\":{}",
        setup.subscribers,
        setup.publishers,
        setup.topics,
        setup.per_subscriber,
        json_string(&setup.prefix),
        setup.rate,
        setup.in_flight,
        setup.size,
        plan.warmup.as_secs_f64(),
        counts.publishes,
        counts.publishes as f64 / secs,
        counts.skipped,
        counts.deliveries,
        counts.deliveries as f64 / secs,
        stats.verified,
        counts.lost,
        counts.lost_tail,
        counts.duplicated,
        counts.out_of_order,
        stats.mismatches,
        counts.error_replies,
        stats.errors + counts.error_replies,
    );
    write_quantiles(out, "latency_us", &counts.latency);
}

/// Whether a fanout run passed (its connections all established): every delivery valid, none
/// lost, duplicated or out of order, no connection lost, no `error` reply, and something
/// delivered in the measurement window.
///
/// # Errors
///
/// What went wrong, with the first instance.
pub(super) fn verdict(stats: &Stats) -> Result<(), String> {
    let first = |what: &Option<String>| what.as_deref().unwrap_or("unknown").to_owned();
    let counts = &stats.fanout;
    if stats.mismatches > 0 {
        return Err(format!(
            "{} messages from the server were not valid deliveries (first: {})",
            stats.mismatches,
            first(&stats.first_mismatch)
        ));
    }
    if stats.errors + counts.error_replies > 0 {
        let what = match (stats.errors, counts.error_replies) {
            (0, replies) => format!("the server answered {replies} commands with `error`"),
            (lost, 0) => format!("{lost} connections failed during the run"),
            (lost, replies) => format!(
                "{lost} connections failed during the run and the server answered {replies} \
                 commands with `error`"
            ),
        };
        return Err(format!("{what} (first: {})", first(&stats.first_error)));
    }
    if counts.lost + counts.duplicated + counts.out_of_order > 0 {
        let tail = match counts.lost_tail {
            0 => String::new(),
            n => format!(" ({n} of them {TAIL})"),
        };
        return Err(format!(
            "deliveries went wrong: {} lost{tail}, {} duplicated, {} out of order",
            counts.lost, counts.duplicated, counts.out_of_order
        ));
    }
    if counts.deliveries == 0 {
        return Err("nothing was delivered in the measurement window".into());
    }
    Ok(())
}
