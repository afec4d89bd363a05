//! The `loadtest` command line: `mock`, `drive` and `compare`, and how
//! their flags become options.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use loadtest::compare::{self, Target};
use loadtest::drive::{Api, DriveOptions, Pace};
use loadtest::mock::{Faults, MockOptions};
use router::sim::{SimConfig, UsageShape};

/// The longest a run may last.
const MAX_DURATION: Duration = Duration::from_secs(600);

/// Tollgate's load-testing tools.
#[derive(Debug, Parser)]
#[command(name = "loadtest", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the mock upstream: an OpenAI-compatible server with a simulated model.
    Mock(MockArgs),
    /// Send a bounded load of chat completions, Anthropic Messages or
    /// Responses requests to a base URL and report throughput and latency
    /// percentiles (JSON on stdout).
    Drive(DriveArgs),
    /// Send the same load to several base URLs, one after another, and
    /// print them side by side (a table, or JSON with --json).
    Compare(CompareArgs),
    /// Relay TCP from one loopback port to a target that a script can cut
    /// (SIGUSR1: every open connection closed, new ones closed at once)
    /// and restore (SIGUSR2), to take a database away mid-run.
    CutProxy(CutProxyArgs),
}

#[derive(Debug, clap::Args)]
pub struct CutProxyArgs {
    /// Address to listen on (loopback).
    #[arg(long)]
    pub listen: SocketAddr,
    /// Address to relay to (loopback).
    #[arg(long)]
    pub target: SocketAddr,
}

/// What to send, how fast and for how long; shared by `drive` and
/// `compare`.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Load")]
pub struct LoadArgs {
    /// The API to speak: chat (`{base}/chat/completions`), messages
    /// (Anthropic, `{base}/messages` after a base ending in /v1, else
    /// `{base}/v1/messages`) or responses (`{base}/responses`).
    #[arg(long, default_value = "chat", value_parser = api)]
    api: Api,
    /// The model to ask for.
    #[arg(long, default_value = "demo")]
    model: String,
    /// Ask for streamed answers (timed to the terminal event; time to first
    /// byte reported as ttft).
    #[arg(long)]
    stream: bool,
    /// Words in each prompt.
    #[arg(long, default_value_t = 64)]
    prompt_words: usize,
    /// max_tokens for each request (messages: 1024 when unset).
    #[arg(long)]
    max_tokens: Option<u32>,
    /// Closed loop: concurrent clients, each sending its next request when
    /// its last is answered.
    #[arg(long, default_value_t = 32, conflicts_with = "rate")]
    concurrency: usize,
    /// Open loop: requests per second on a fixed schedule, whatever the
    /// answers do; latency runs from each request's scheduled time.
    #[arg(long)]
    rate: Option<f64>,
    /// Open loop: at most this many unanswered requests; a request due when
    /// all are taken leaves late and is counted as late.
    #[arg(long, default_value_t = 1024, requires = "rate")]
    max_in_flight: usize,
    /// How long to send (at most 10 minutes).
    #[arg(long, default_value = "10s", value_parser = duration)]
    duration: Duration,
    /// Stop after this many requests.
    #[arg(long)]
    requests: Option<u64>,
    /// Send the same load for this long first, uncounted (each target's,
    /// with compare), so lazy starts stay out of the figures.
    #[arg(long, default_value = "0s", value_parser = duration)]
    warm_up: Duration,
    /// Write the latency distribution to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Draw the progress line on stderr even when it is not a terminal.
    #[arg(long, conflicts_with = "quiet")]
    progress: bool,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

impl LoadArgs {
    /// The options for one base URL and key.
    pub fn options(&self, base_url: String, api_key: Option<String>) -> DriveOptions {
        let pace = match self.rate {
            Some(rate) => Pace::Open {
                rate,
                max_in_flight: self.max_in_flight,
            },
            None => Pace::Closed {
                clients: self.concurrency,
            },
        };
        let progress = !self.quiet && (self.progress || std::io::stderr().is_terminal());
        DriveOptions {
            api: self.api,
            base_url,
            api_key,
            model: self.model.clone(),
            pace,
            duration: self.duration.min(MAX_DURATION),
            max_requests: self.requests,
            stream: self.stream,
            prompt_words: self.prompt_words,
            max_tokens: self.max_tokens,
            progress: progress.then(String::new),
            keep_ids: false,
        }
    }

    pub fn warm_up(&self) -> Duration {
        self.warm_up.min(MAX_DURATION)
    }

    pub fn plot(&self) -> Option<&PathBuf> {
        self.plot.as_ref()
    }

    pub fn quiet(&self) -> bool {
        self.quiet
    }
}

#[derive(Debug, clap::Args)]
pub struct DriveArgs {
    /// The base URL: OpenAI-style (`http://host:port/v1`); for messages the
    /// host root works too.
    #[arg(long, default_value = "http://127.0.0.1:8080/v1")]
    pub base_url: String,
    /// The key: sent as Bearer (chat, responses) or x-api-key (messages).
    #[arg(long, env = "TOLLGATE_KEY")]
    pub api_key: Option<String>,
    /// Write the `x-tollgate-request-id` of every request answered in full
    /// (a stream: to its terminal event) to this file, one a line.
    #[arg(long, value_name = "FILE")]
    pub ids: Option<PathBuf>,
    #[command(flatten)]
    pub load: LoadArgs,
}

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// A target, `NAME=URL` (or a bare URL, named by its host and port);
    /// repeat it for each, in the order to run them. The first is the
    /// baseline for the ratio column.
    #[arg(long = "target", value_name = "NAME=URL", required = true, value_parser = target)]
    pub targets: Vec<(String, String)>,
    /// The key for every target that has no --key of its own.
    #[arg(long, env = "TOLLGATE_KEY")]
    pub api_key: Option<String>,
    /// A key for one target, `NAME=KEY` (`NAME=` sends none); repeatable.
    #[arg(long = "key", value_name = "NAME=KEY", value_parser = pair)]
    pub keys: Vec<(String, String)>,
    /// The process serving a target, `NAME=PID`: its CPU time per answered
    /// request and its resident memory are reported; repeatable.
    #[arg(long = "pid", value_name = "NAME=PID", value_parser = pid)]
    pub pids: Vec<(String, u32)>,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub load: LoadArgs,
}

impl CompareArgs {
    /// The targets with their keys and processes.
    pub fn targets(&self) -> Result<Vec<Target>, String> {
        let targets: Vec<Target> = self
            .targets
            .iter()
            .map(|(name, url)| Target {
                name: name.clone(),
                base_url: url.clone(),
                api_key: match self.keys.iter().rev().find(|(n, _)| n == name) {
                    Some((_, k)) if k.is_empty() => None,
                    Some((_, k)) => Some(k.clone()),
                    None => self.api_key.clone(),
                },
                pid: self
                    .pids
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, p)| *p),
            })
            .collect();
        let named: Vec<(&str, &str)> = self
            .keys
            .iter()
            .map(|(n, _)| ("--key", n.as_str()))
            .chain(self.pids.iter().map(|(n, _)| ("--pid", n.as_str())))
            .collect();
        compare::check_names(&targets, &named)?;
        Ok(targets)
    }
}

fn api(s: &str) -> Result<Api, String> {
    Api::parse(s).ok_or_else(|| format!("'{s}' is not chat, messages or responses"))
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

fn pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("'{s}' is not NAME=VALUE")),
    }
}

fn pid(s: &str) -> Result<(String, u32), String> {
    let (name, value) = pair(s)?;
    let pid = value
        .parse()
        .map_err(|_| format!("'{value}' is not a process id"))?;
    Ok((name, pid))
}

/// `NAME=URL`, or a bare URL named by its host and port.
fn target(s: &str) -> Result<(String, String), String> {
    compare::parse_target(s)
}

fn shape(s: &str) -> Result<UsageShape, String> {
    UsageShape::parse(s)
        .ok_or_else(|| format!("'{s}' is not one of openai, glm, kimi, deepseek, minimax, none"))
}

#[derive(Debug, clap::Args)]
pub struct MockArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub listen: SocketAddr,
    /// Delay before the response headers.
    #[arg(long, default_value = "0s", value_parser = duration)]
    latency: Duration,
    /// Delay before the first streamed token.
    #[arg(long, default_value = "50ms", value_parser = duration)]
    ttft: Duration,
    /// Output pace (0: as fast as possible).
    #[arg(long, default_value_t = 200.0)]
    tokens_per_second: f64,
    /// Completion tokens per answer.
    #[arg(long, default_value_t = 32)]
    output_tokens: u32,
    /// How many completion tokens are reasoning.
    #[arg(long, default_value_t = 0)]
    reasoning_tokens: u32,
    /// Prompt tokens reported as cache hits.
    #[arg(long, default_value_t = 0)]
    cached_tokens: u32,
    /// Whose usage shape to imitate: openai, glm, kimi, deepseek, minimax, none.
    #[arg(long, default_value = "openai", value_parser = shape)]
    usage_shape: UsageShape,
    /// Require this Bearer key.
    #[arg(long, env = "MOCK_API_KEY")]
    api_key: Option<String>,
    /// Fault: answer every request with this HTTP status.
    #[arg(long)]
    fail_status: Option<u16>,
    /// Fault: streams stall after N frames (non-streaming requests never answer).
    #[arg(long)]
    stall_after: Option<usize>,
    /// Fault: streams drop the connection after N frames.
    #[arg(long)]
    disconnect_after: Option<usize>,
    /// Fault: streams send a malformed event after N frames.
    #[arg(long)]
    malformed_after: Option<usize>,
    /// Fault: streams send an error event after N frames (after HTTP 200).
    #[arg(long)]
    error_event_after: Option<usize>,
    /// Prompt tokens reported as cache writes (Anthropic answers).
    #[arg(long, default_value_t = 0)]
    cache_write_tokens: u32,
    /// Report the part of a prompt that repeats its session's previous
    /// prompt (on this mock, for the same model) as cached tokens; with
    /// `--cached-tokens`, the larger figure is reported.
    #[arg(long)]
    prefix_cache: bool,
    /// Write each request received to this directory as JSON (credentials
    /// left out), for capturing what clients really send.
    #[arg(long)]
    pub record: Option<PathBuf>,
}

impl MockArgs {
    pub fn options(&self) -> MockOptions {
        MockOptions {
            sim: SimConfig {
                latency: self.latency,
                ttft: self.ttft,
                tokens_per_second: self.tokens_per_second,
                output_tokens: self.output_tokens,
                reasoning_tokens: self.reasoning_tokens,
                cached_tokens: self.cached_tokens,
                cache_write_tokens: self.cache_write_tokens,
                usage_shape: self.usage_shape,
                prefix_cache: self.prefix_cache,
                ..SimConfig::default()
            },
            faults: Faults {
                status: self.fail_status,
                stall_after: self.stall_after,
                disconnect_after: self.disconnect_after,
                malformed_after: self.malformed_after,
                hold_after: None,
                error_event_after: self.error_event_after,
            },
            api_key: self.api_key.clone(),
        }
    }
}
