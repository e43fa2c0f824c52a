//! The soak's picture for people: an SVG of the server's resident memory (top) and of the
//! connections and file descriptors (bottom) over time, with the warm-up shaded.

use std::fmt::Write as _;

use super::Sample;

const WIDTH: f64 = 900.0;
const PANEL: f64 = 220.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const GAP: f64 = 50.0;

/// The SVG document for `samples`, with the first `warmup_s` seconds shaded.
pub(super) fn svg(title: &str, samples: &[Sample], warmup_s: f64) -> String {
    let height = TOP + 2.0 * PANEL + GAP + 40.0;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"20\" font-size=\"14\">{}</text>\n",
        escape(title)
    );
    let end = samples.last().map_or(1.0, |s| s.t).max(1.0);
    let rss: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|s| Some((s.t, s.rss? as f64 / (1024.0 * 1024.0))))
        .collect();
    panel(
        &mut out,
        TOP,
        end,
        warmup_s,
        "server RSS (MiB)",
        &[("RSS", "#c0392b", &rss)],
    );
    let open: Vec<(f64, f64)> = samples.iter().map(|s| (s.t, s.open as f64)).collect();
    let server: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|s| Some((s.t, s.server_open? as f64)))
        .collect();
    let fds: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|s| Some((s.t, s.fds? as f64)))
        .collect();
    panel(
        &mut out,
        TOP + PANEL + GAP,
        end,
        warmup_s,
        "connections and descriptors",
        &[
            ("client connections", "#2471a3", &open),
            ("server connections", "#28b463", &server),
            ("server fds", "#7d3c98", &fds),
        ],
    );
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">seconds</text>\n</svg>",
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        height - 8.0
    );
    out
}

type Series<'a> = (&'a str, &'a str, &'a [(f64, f64)]);

fn panel(out: &mut String, top: f64, end: f64, warmup_s: f64, label: &str, series: &[Series<'_>]) {
    let w = WIDTH - LEFT - RIGHT;
    let max = series
        .iter()
        .flat_map(|(_, _, points)| points.iter().map(|p| p.1))
        .fold(0.0f64, f64::max);
    let max = nice_ceiling(max);
    let x = |t: f64| LEFT + w * (t / end);
    let y = |v: f64| top + PANEL * (1.0 - v / max);
    let _ = writeln!(
        out,
        "<rect x=\"{LEFT}\" y=\"{top}\" width=\"{:.1}\" height=\"{PANEL}\" fill=\"#f4f6f6\"/>",
        x(warmup_s.min(end)) - LEFT
    );
    let _ = writeln!(
        out,
        "<rect x=\"{LEFT}\" y=\"{top}\" width=\"{w}\" height=\"{PANEL}\" fill=\"none\" \
         stroke=\"#555\"/>\n<text x=\"{LEFT}\" y=\"{}\">{}</text>",
        top - 6.0,
        escape(label)
    );
    for i in 0..=4 {
        let v = max * f64::from(i) / 4.0;
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            y(v) + 4.0,
            short(v)
        );
        let t = end * f64::from(i) / 4.0;
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            x(t),
            top + PANEL + 16.0,
            short(t)
        );
    }
    for (i, (name, color, points)) in series.iter().enumerate() {
        if points.is_empty() {
            continue;
        }
        let mut path = String::new();
        for (t, v) in points.iter() {
            let _ = write!(path, "{:.1},{:.1} ", x(*t), y(*v));
        }
        let _ = writeln!(
            out,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>",
            path.trim_end()
        );
        let lx = LEFT + 10.0 + 170.0 * i as f64;
        let _ = writeln!(
            out,
            "<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{color}\" \
             stroke-width=\"3\"/><text x=\"{}\" y=\"{}\">{}</text>",
            lx + 16.0,
            lx + 20.0,
            top + 16.0,
            escape(name),
            ly = top + 12.0
        );
    }
}

/// The smallest of 1, 2, 5 × 10^k at or above `v` (at least 1).
fn nice_ceiling(v: f64) -> f64 {
    let mut step = 1.0;
    loop {
        for m in [1.0, 2.0, 5.0] {
            if m * step >= v {
                return m * step;
            }
        }
        step *= 10.0;
    }
}

fn short(v: f64) -> String {
    if v >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_every_series() {
        let samples: Vec<Sample> = (0..5u32)
            .map(|i| Sample {
                t: f64::from(i),
                rss: Some(10 << 20),
                fds: Some(20 + u64::from(i)),
                open: 3,
                server_open: Some(4),
                ..Sample::default()
            })
            .collect();
        let svg = svg("soak <test>", &samples, 2.0);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 4);
        assert!(svg.contains("soak &lt;test&gt;"));
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert_eq!(nice_ceiling(120.0), 200.0);
    }
}
