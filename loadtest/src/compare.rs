//! `loadtest compare`: the same load against several base URLs, one after
//! another, side by side: throughput and its ratio to the first target,
//! latency percentiles, errors and, for targets with a process id, that
//! process's CPU time per answered request and resident memory.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use crate::drive::{self, DriveOptions, Report};
use crate::procstat;

/// How often a target process's memory is sampled during its run.
const RSS_EVERY: Duration = Duration::from_millis(100);

/// One base URL to drive.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its name in the table, the JSON and the plot's legend.
    pub name: String,
    /// Its base URL.
    pub base_url: String,
    /// Its key; `None` sends none.
    pub api_key: Option<String>,
    /// The process serving it, to measure.
    pub pid: Option<u32>,
}

/// What a target's process used during its run.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessUse {
    /// The process id.
    pub pid: u32,
    /// CPU time (user + system) used during the run, milliseconds.
    pub cpu_ms: f64,
    /// That CPU time per answered request, microseconds (`None` without
    /// answers).
    pub cpu_us_per_request: Option<f64>,
    /// Resident memory at the end of the run, MiB.
    pub rss_end_mib: f64,
    /// The most resident memory sampled during the run, MiB.
    pub rss_peak_mib: f64,
}

/// One target's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    /// The target's name.
    pub name: String,
    /// Its base URL.
    pub base_url: String,
    /// Its successful requests per second over the first target's.
    pub ratio_to_first: Option<f64>,
    /// The run.
    #[serde(flatten)]
    pub report: Report,
    /// What its process used, when it was given a process id and could be
    /// read.
    pub process: Option<ProcessUse>,
}

/// Every target's outcome, in the order given.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The load, in a few words.
    pub settings: String,
    /// One per target.
    pub targets: Vec<Measured>,
}

/// Runs `load` against each target in turn (its base URL, key and
/// progress label replaced by the target's), each after `warm_up` of the
/// same load that is not counted.
pub async fn run(
    load: &DriveOptions,
    warm_up: Duration,
    targets: &[Target],
) -> Result<Comparison, String> {
    if targets.is_empty() {
        return Err("no targets to compare".to_owned());
    }
    // A process that cannot be read fails the comparison before any load.
    for (name, pid) in targets.iter().filter_map(|t| Some((&t.name, t.pid?))) {
        procstat::cpu_time(pid).map_err(|e| format!("{name}: process {pid}: {e}"))?;
    }
    let mut out = Vec::with_capacity(targets.len());
    for target in targets {
        let opts = DriveOptions {
            base_url: target.base_url.clone(),
            api_key: target.api_key.clone(),
            progress: load.progress.as_ref().map(|_| target.name.clone()),
            ..load.clone()
        };
        drive::warm_up(&opts, warm_up).await?;
        let (report, process) = match target.pid {
            Some(pid) => measure_process(pid, opts).await?,
            None => (drive::run(opts).await?, None),
        };
        out.push(Measured {
            name: target.name.clone(),
            base_url: target.base_url.clone(),
            ratio_to_first: None,
            report,
            process,
        });
    }
    let first = out.first().map(|m| m.report.requests_per_s).unwrap_or(0.0);
    for m in &mut out {
        m.ratio_to_first = (first > 0.0).then(|| m.report.requests_per_s / first);
    }
    Ok(Comparison {
        settings: load.describe(),
        targets: out,
    })
}

/// Drives `opts` while sampling process `pid`. A process that cannot be
/// read at the start is a setup error; one that goes away during the run
/// yields no figures.
async fn measure_process(
    pid: u32,
    opts: DriveOptions,
) -> Result<(Report, Option<ProcessUse>), String> {
    let cpu0 = procstat::cpu_time(pid).map_err(|e| format!("process {pid}: {e}"))?;
    let rss0 = procstat::rss_kib(pid).map_err(|e| format!("process {pid}: {e}"))?;
    let (stop, stopped) = watch::channel(false);
    let mut sampler = tokio::task::JoinSet::new();
    sampler.spawn(peak_rss(pid, rss0, stopped));
    let report = drive::run(opts).await;
    stop.send_replace(true);
    let peak = sampler
        .join_next()
        .await
        .and_then(Result::ok)
        .unwrap_or(rss0);
    let report = report?;
    let used = match (procstat::cpu_time(pid), procstat::rss_kib(pid)) {
        (Ok(cpu1), Ok(rss1)) => {
            let cpu = cpu1.saturating_sub(cpu0);
            Some(ProcessUse {
                pid,
                cpu_ms: cpu.as_secs_f64() * 1e3,
                cpu_us_per_request: (report.ok > 0)
                    .then(|| cpu.as_secs_f64() * 1e6 / report.ok as f64),
                rss_end_mib: rss1 as f64 / 1024.0,
                rss_peak_mib: peak.max(rss1) as f64 / 1024.0,
            })
        }
        _ => None,
    };
    Ok((report, used))
}

async fn peak_rss(pid: u32, mut peak: u64, mut stop: watch::Receiver<bool>) -> u64 {
    let mut every = tokio::time::interval(RSS_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.wait_for(|s| *s) => return peak,
        }
        match procstat::rss_kib(pid) {
            Ok(kib) => peak = peak.max(kib),
            Err(_) => return peak,
        }
    }
}

impl Comparison {
    /// The side-by-side table.
    pub fn table(&self) -> String {
        let Some(first) = self.targets.first() else {
            return String::new();
        };
        let open = first.report.open_loop.is_some();
        let stream = first.report.stream;
        let procs = self.targets.iter().any(|m| m.process.is_some());
        let mut head = vec![
            "target", "req/s", "ratio", "p50 ms", "p90 ms", "p99 ms", "max ms",
        ];
        if stream {
            head.extend(["ttft p50", "ttft p99"]);
        }
        head.push("errors");
        if open {
            head.extend(["late", "sent/s"]);
        }
        if procs {
            head.extend(["CPU µs/req", "RSS MiB", "peak MiB"]);
        }
        let mut rows = vec![head.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>()];
        for m in &self.targets {
            let r = &m.report;
            let ms = |v: f64| format!("{v:.2}");
            let mut row = vec![
                m.name.clone(),
                format!("{:.0}", r.requests_per_s),
                m.ratio_to_first
                    .map_or_else(|| "-".to_owned(), |x| format!("{x:.2}")),
                ms(r.latency.p50_ms),
                ms(r.latency.p90_ms),
                ms(r.latency.p99_ms),
                ms(r.latency.max_ms),
            ];
            if stream {
                let t = r.ttft.as_ref();
                row.push(t.map_or_else(|| "-".to_owned(), |t| ms(t.p50_ms)));
                row.push(t.map_or_else(|| "-".to_owned(), |t| ms(t.p99_ms)));
            }
            row.push(r.errors.to_string());
            if open {
                let o = r.open_loop.as_ref();
                row.push(o.map_or_else(|| "-".to_owned(), |o| o.late.to_string()));
                row.push(o.map_or_else(
                    || "-".to_owned(),
                    |o| format!("{:.0}", o.achieved_rate_per_s),
                ));
            }
            if procs {
                match &m.process {
                    Some(p) => {
                        row.push(
                            p.cpu_us_per_request
                                .map_or_else(|| "-".to_owned(), |c| format!("{c:.0}")),
                        );
                        row.push(format!("{:.1}", p.rss_end_mib));
                        row.push(format!("{:.1}", p.rss_peak_mib));
                    }
                    None => row.extend(["-", "-", "-"].map(str::to_owned)),
                }
            }
            rows.push(row);
        }
        render(&self.settings, &rows)
    }
}

/// Aligns `rows` (the first is the header): names left, figures right.
fn render(title: &str, rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width = |c: usize| {
        rows.iter()
            .filter_map(|r| r.get(c))
            .map(|s| s.chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..columns).map(width).collect();
    let mut out = format!("{title}\n");
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, w))| {
                let pad = " ".repeat(w - cell.chars().count());
                if c == 0 {
                    format!("{cell}{pad}")
                } else {
                    format!("{pad}{cell}")
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Makes sure every target name is unique and every keyed or pid'd name
/// is a target.
pub fn check_names(targets: &[Target], named: &[(&str, &str)]) -> Result<(), String> {
    for (i, t) in targets.iter().enumerate() {
        if targets[..i].iter().any(|o| o.name == t.name) {
            return Err(format!("two targets are named '{}'", t.name));
        }
    }
    for (flag, name) in named {
        if !targets.iter().any(|t| t.name == *name) {
            return Err(format!("{flag} {name}=...: no target is named '{name}'"));
        }
    }
    Ok(())
}

/// Parses `NAME=URL`, or a bare URL, which is named by its host and port.
pub fn parse_target(spec: &str) -> Result<(String, String), String> {
    match spec.split_once('=') {
        Some((name, url)) if !name.is_empty() && !name.contains(['/', ':']) => {
            Ok((name.to_owned(), url.to_owned()))
        }
        _ => {
            let host = spec
                .split_once("://")
                .and_then(|(_, rest)| rest.split(['/', '?']).next())
                .filter(|h| !h.is_empty())
                .ok_or_else(|| format!("'{spec}' is not NAME=URL or a URL"))?;
            Ok((host.to_owned(), spec.to_owned()))
        }
    }
}

/// Shares a comparison's series for plotting.
pub fn series(c: &Comparison) -> Vec<(&str, &hdrhistogram::Histogram<u64>)> {
    c.targets
        .iter()
        .map(|m| (m.name.as_str(), &m.report.latency_histogram))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{parse_target, render};

    #[test]
    fn targets_are_named_or_named_by_their_host() {
        assert_eq!(
            parse_target("mock=http://127.0.0.1:9090/v1"),
            Ok(("mock".to_owned(), "http://127.0.0.1:9090/v1".to_owned()))
        );
        assert_eq!(
            parse_target("http://127.0.0.1:9090/v1?a=b"),
            Ok((
                "127.0.0.1:9090".to_owned(),
                "http://127.0.0.1:9090/v1?a=b".to_owned()
            ))
        );
        assert!(parse_target("=").is_err());
    }

    #[test]
    fn tables_align_names_left_and_figures_right() {
        let rows = vec![
            vec!["target".to_owned(), "req/s".to_owned()],
            vec!["mock".to_owned(), "12345".to_owned()],
            vec!["tollgate".to_owned(), "9".to_owned()],
        ];
        assert_eq!(
            render("t", &rows),
            "t\ntarget    req/s\nmock      12345\ntollgate      9\n"
        );
    }
}
