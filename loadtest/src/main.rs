//! The `loadtest` binary: `loadtest mock` runs the mock upstream,
//! `loadtest drive` runs a bounded load against a base URL, `loadtest
//! compare` runs it against several and prints them side by side, and
//! `loadtest cut-proxy` relays TCP that a script can cut and restore.

mod cli;

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command, CompareArgs, CutProxyArgs, DriveArgs, MockArgs};
use loadtest::{compare, cut_proxy, drive, mock, plot};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let done = match cli.command {
        Command::Mock(a) => runtime.block_on(run_mock(a)),
        Command::Drive(d) => runtime.block_on(run_drive(d)),
        Command::Compare(c) => runtime.block_on(run_compare(c)),
        Command::CutProxy(p) => runtime.block_on(run_cut_proxy(p)),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadtest: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_mock(a: MockArgs) -> Result<(), String> {
    mock::serve(a.listen, a.options(), a.record.clone())
        .await
        .map_err(|e| format!("mock upstream: {e}"))
}

async fn run_drive(d: DriveArgs) -> Result<(), String> {
    let mut opts = d.load.options(d.base_url, d.api_key);
    opts.keep_ids = d.ids.is_some();
    let title = opts.describe();
    let label = opts.base_url.clone();
    drive::warm_up(&opts, d.load.warm_up()).await?;
    let report = drive::run(opts).await?;
    if let Some(path) = d.load.plot() {
        let svg = plot::latency_svg(&title, &[(label.as_str(), &report.latency_histogram)]);
        write_plot(path, &svg, d.load.quiet())?;
    }
    if let Some(path) = &d.ids {
        let mut text = report.ids.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let json = serde_json::to_string(&report).map_err(|e| e.to_string())?;
    print(&json);
    Ok(())
}

async fn run_cut_proxy(p: CutProxyArgs) -> Result<(), String> {
    cut_proxy::serve(p.listen, p.target)
        .await
        .map_err(|e| format!("cut proxy: {e}"))
}

async fn run_compare(c: CompareArgs) -> Result<(), String> {
    let targets = c.targets()?;
    let load = c.load.options(String::new(), None);
    let comparison = compare::run(&load, c.load.warm_up(), &targets).await?;
    if let Some(path) = c.load.plot() {
        let svg = plot::latency_svg(&comparison.settings, &compare::series(&comparison));
        write_plot(path, &svg, c.load.quiet())?;
    }
    if c.json {
        print(&serde_json::to_string(&comparison).map_err(|e| e.to_string())?);
    } else {
        print(comparison.table().trim_end());
    }
    Ok(())
}

fn write_plot(path: &Path, svg: &str, quiet: bool) -> Result<(), String> {
    std::fs::write(path, svg).map_err(|e| format!("{}: {e}", path.display()))?;
    if !quiet {
        eprintln!("latency plot written to {}", path.display());
    }
    Ok(())
}

/// The result, on stdout: the one thing this binary prints there.
#[allow(clippy::print_stdout)]
fn print(text: &str) {
    println!("{text}");
}
