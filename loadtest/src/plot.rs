//! Latency plots as SVG, written by hand: a percentile plot (latency
//! against percentile on a "nines" axis, as HdrHistogram plots draw it)
//! above a histogram, one line per run, with a legend.

use std::fmt::Write;

use hdrhistogram::Histogram;

const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 800.0;
/// The plot areas' left and right edges; the legend sits to the right.
const LEFT: f64 = 80.0;
const RIGHT: f64 = 750.0;
/// The percentile plot's top and bottom.
const UPPER: (f64, f64) = (80.0, 420.0);
/// The histogram's top and bottom.
const LOWER: (f64, f64) = (500.0, 740.0);
/// How many nines the percentile axis may reach at most (99.9999%).
const MAX_NINES: u32 = 6;
/// Histogram buckets.
const BUCKETS: usize = 60;
/// Line colours, one per run, in order (Tableau 10).
const COLOURS: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

/// One run to draw: its name and its latencies in microseconds.
pub type Series<'a> = (&'a str, &'a Histogram<u64>);

/// The SVG document: `title` above both plots.
pub fn latency_svg(title: &str, series: &[Series<'_>]) -> String {
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">
<title>{}</title>
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="28" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
        escape(&format!("Latency: {title}")),
        WIDTH / 2.0,
        escape(title),
    );
    percentile_plot(&mut svg, series);
    histogram_plot(&mut svg, series);
    legend(&mut svg, series);
    svg.push_str("</svg>\n");
    svg
}

/// Latency against percentile; x is `log10(1 / (1 - p))`, so 90%, 99%,
/// 99.9%... are evenly spaced.
fn percentile_plot(svg: &mut String, series: &[Series<'_>]) {
    let most = series.iter().map(|(_, h)| h.len()).max().unwrap_or(0);
    let nines = (most.max(10) as f64)
        .log10()
        .ceil()
        .clamp(1.0, f64::from(MAX_NINES));
    let top = series
        .iter()
        .map(|(_, h)| h.max() as f64 / 1000.0)
        .fold(0.0, f64::max);
    let y_axis = Axis::nice(0.0, top);
    let (upper, lower) = UPPER;
    let x = |n: f64| LEFT + (RIGHT - LEFT) * n / nines;
    let y = |ms: f64| y_axis.place(ms, lower, upper);
    panel_title(svg, upper, "Latency by percentile");
    y_ticks(svg, &y_axis, lower, upper);
    let mut ticks: Vec<(f64, String)> = vec![(2f64.log10(), "50%".to_owned())];
    for k in 0..=(nines as u32) {
        ticks.push((f64::from(k), nines_label(k)));
    }
    for (n, label) in ticks {
        let px = x(n);
        let _ = writeln!(
            svg,
            r##"<line x1="{px:.1}" y1="{upper}" x2="{px:.1}" y2="{lower}" stroke="#ddd"/><text x="{px:.1}" y="{}" text-anchor="middle">{label}</text>"##,
            lower + 16.0
        );
    }
    frame(svg, upper, lower, "percentile", "latency (ms)");
    for (i, (_, h)) in series.iter().enumerate() {
        if h.is_empty() {
            continue;
        }
        let end = (h.len() as f64).log10().min(nines);
        let steps = 400;
        let mut points = String::new();
        for s in 0..=steps {
            let n = end * f64::from(s) / f64::from(steps);
            let q = 1.0 - 10f64.powf(-n);
            let ms = h.value_at_quantile(q) as f64 / 1000.0;
            let _ = write!(points, "{:.1},{:.1} ", x(n), y(ms));
        }
        let _ = write!(points, "{:.1},{:.1}", x(end), y(h.max() as f64 / 1000.0));
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{points}"/>"#,
            colour(i)
        );
    }
}

/// The share of requests in each latency bucket, from the fastest answer
/// to the slowest run's 99.9th percentile.
fn histogram_plot(svg: &mut String, series: &[Series<'_>]) {
    let live: Vec<&Histogram<u64>> = series
        .iter()
        .map(|(_, h)| *h)
        .filter(|h| !h.is_empty())
        .collect();
    let lo = live.iter().map(|h| h.min()).min().unwrap_or(0) as f64 / 1000.0;
    let hi = live
        .iter()
        .map(|h| h.value_at_quantile(0.999))
        .max()
        .unwrap_or(1000) as f64
        / 1000.0;
    let x_axis = Axis::nice(lo, hi.max(lo + 0.001));
    let width = (x_axis.max - x_axis.min) / BUCKETS as f64;
    let shares: Vec<Vec<f64>> = series
        .iter()
        .map(|(_, h)| {
            let mut counts = vec![0u64; BUCKETS];
            for v in h.iter_recorded() {
                let ms = h.highest_equivalent(v.value_iterated_to()) as f64 / 1000.0;
                let b = ((ms - x_axis.min) / width).floor();
                if b >= 0.0 && (b as usize) < BUCKETS {
                    counts[b as usize] += v.count_at_value();
                }
            }
            let total = h.len().max(1) as f64;
            counts.iter().map(|&c| c as f64 * 100.0 / total).collect()
        })
        .collect();
    let top = shares.iter().flatten().copied().fold(0.0, f64::max);
    let y_axis = Axis::nice(0.0, top.max(1.0));
    let (upper, lower) = LOWER;
    let x = |ms: f64| x_axis.place(ms, LEFT, RIGHT);
    let y = |pct: f64| y_axis.place(pct, lower, upper);
    panel_title(
        svg,
        upper,
        "Latency histogram (up to the 99.9th percentile)",
    );
    y_ticks(svg, &y_axis, lower, upper);
    for v in x_axis.ticks() {
        let px = x(v);
        let _ = writeln!(
            svg,
            r##"<line x1="{px:.1}" y1="{upper}" x2="{px:.1}" y2="{lower}" stroke="#ddd"/><text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"##,
            lower + 16.0,
            number(v)
        );
    }
    frame(svg, upper, lower, "latency (ms)", "requests (%)");
    for (i, share) in shares.iter().enumerate() {
        if series.get(i).is_some_and(|(_, h)| h.is_empty()) {
            continue;
        }
        let mut d = format!("M{:.1},{:.1}", x(x_axis.min), y(0.0));
        for (b, pct) in share.iter().enumerate() {
            let (a, z) = (
                x_axis.min + width * b as f64,
                x_axis.min + width * (b + 1) as f64,
            );
            let _ = write!(
                d,
                " L{:.1},{:.1} L{:.1},{:.1}",
                x(a),
                y(*pct),
                x(z),
                y(*pct)
            );
        }
        let _ = write!(d, " L{:.1},{:.1}", x(x_axis.max), y(0.0));
        let _ = writeln!(
            svg,
            r#"<path fill="none" stroke="{}" stroke-width="1.5" d="{d}"/>"#,
            colour(i)
        );
    }
}

fn legend(svg: &mut String, series: &[Series<'_>]) {
    let left = RIGHT + 20.0;
    let _ = writeln!(
        svg,
        r#"<text x="{left}" y="{}" font-weight="bold">runs</text>"#,
        UPPER.0
    );
    for (i, (name, h)) in series.iter().enumerate() {
        let y = UPPER.0 + 22.0 + 36.0 * i as f64;
        let figures = if h.is_empty() {
            "no answers".to_owned()
        } else {
            format!(
                "p50 {} ms, p99 {} ms",
                figure(h.value_at_quantile(0.5) as f64 / 1000.0),
                figure(h.value_at_quantile(0.99) as f64 / 1000.0)
            )
        };
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{:.1}" x2="{}" y2="{:.1}" stroke="{}" stroke-width="3"/><text x="{}" y="{:.1}">{}</text><text x="{}" y="{:.1}" fill="#555" font-size="11">{}</text>"##,
            y - 4.0,
            left + 24.0,
            y - 4.0,
            colour(i),
            left + 30.0,
            y,
            escape(&shorten(name, 28)),
            left + 30.0,
            y + 14.0,
            escape(&figures),
        );
    }
}

fn panel_title(svg: &mut String, top: f64, text: &str) {
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle" font-size="13">{}</text>"#,
        (LEFT + RIGHT) / 2.0,
        top - 10.0,
        escape(text)
    );
}

fn y_ticks(svg: &mut String, axis: &Axis, lower: f64, upper: f64) {
    for v in axis.ticks() {
        let py = axis.place(v, lower, upper);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{RIGHT}" y2="{py:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT - 6.0,
            py + 4.0,
            number(v)
        );
    }
}

/// The plot area's border and both axis labels.
fn frame(svg: &mut String, upper: f64, lower: f64, x_label: &str, y_label: &str) {
    let middle = (upper + lower) / 2.0;
    let _ = writeln!(
        svg,
        r#"<rect x="{LEFT}" y="{upper}" width="{}" height="{}" fill="none" stroke="black"/>
<text x="{}" y="{}" text-anchor="middle">{}</text>
<text x="{}" y="{middle}" text-anchor="middle" transform="rotate(-90 {} {middle})">{}</text>"#,
        RIGHT - LEFT,
        lower - upper,
        (LEFT + RIGHT) / 2.0,
        lower + 34.0,
        escape(x_label),
        LEFT - 52.0,
        LEFT - 52.0,
        escape(y_label),
    );
}

/// A linear axis from `min` to `max`, ticked every `step`.
struct Axis {
    min: f64,
    max: f64,
    step: f64,
}

impl Axis {
    /// An axis covering `lo..hi` with about five round ticks.
    fn nice(lo: f64, hi: f64) -> Self {
        let span = (hi - lo).max(1e-9);
        let raw = span / 5.0;
        let magnitude = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 2.5, 5.0, 10.0]
            .iter()
            .map(|m| m * magnitude)
            .find(|s| *s >= raw)
            .unwrap_or(10.0 * magnitude);
        let min = (lo / step).floor() * step;
        let max = ((hi / step).ceil() * step).max(min + step);
        Self { min, max, step }
    }

    fn ticks(&self) -> Vec<f64> {
        let n = ((self.max - self.min) / self.step).round() as usize;
        (0..=n).map(|k| self.min + self.step * k as f64).collect()
    }

    /// Where `v` falls between the pixels `from` (at min) and `to` (at max).
    fn place(&self, v: f64, from: f64, to: f64) -> f64 {
        from + (to - from) * (v - self.min) / (self.max - self.min)
    }
}

/// `0%`, `90%`, `99%`, `99.9%`, ...
fn nines_label(k: u32) -> String {
    match k {
        0 => "0%".to_owned(),
        1 => "90%".to_owned(),
        2 => "99%".to_owned(),
        _ => format!("99.{}%", "9".repeat(k as usize - 2)),
    }
}

/// A figure with no trailing zeros, at most three decimals.
fn number(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

/// `name`, cut to `most` characters with an ellipsis if longer.
fn shorten(name: &str, most: usize) -> String {
    if name.chars().count() <= most {
        return name.to_owned();
    }
    let mut cut: String = name.chars().take(most - 1).collect();
    cut.push('…');
    cut
}

/// A latency with three significant figures (at most two decimals).
fn figure(ms: f64) -> String {
    match ms {
        m if m >= 100.0 => format!("{m:.0}"),
        m if m >= 10.0 => format!("{m:.1}"),
        m => format!("{m:.2}"),
    }
}

fn colour(i: usize) -> &'static str {
    COLOURS[i % COLOURS.len()]
}

/// Text safe inside an element or a quoted attribute.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0.
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{escape, nines_label, number, Axis};

    #[test]
    fn the_nines_axis_is_labelled_in_percentiles() {
        let labels: Vec<String> = (0..5).map(nines_label).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%"]);
    }

    #[test]
    fn axes_have_round_ticks_covering_the_data() {
        let a = Axis::nice(0.0, 7.3);
        assert_eq!((a.min, a.max, a.step), (0.0, 8.0, 2.0));
        assert_eq!(a.ticks(), [0.0, 2.0, 4.0, 6.0, 8.0]);
        let b = Axis::nice(51.2, 58.9);
        assert!(b.min <= 51.2 && b.max >= 58.9);
        assert_eq!(number(2.50), "2.5");
        assert_eq!(number(10.0), "10");
    }

    #[test]
    fn names_are_escaped() {
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }
}
