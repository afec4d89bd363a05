//! The `loadtest` binary: `loadtest mock` runs the mock upstream,
//! `loadtest drive` runs a bounded load against a base URL.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use loadtest::drive::{self, Api, DriveOptions};
use loadtest::mock::{self, Faults, MockOptions};
use router::sim::{SimConfig, UsageShape};

/// Tollgate's load-testing tools.
#[derive(Debug, Parser)]
#[command(name = "loadtest", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the mock upstream: an OpenAI-compatible server with a simulated model.
    Mock(MockArgs),
    /// Send a bounded load of chat completions (or Responses API requests)
    /// to a base URL and report throughput and latency percentiles (JSON on
    /// stdout).
    Drive(DriveArgs),
}

#[derive(Debug, clap::Args)]
struct DriveArgs {
    /// OpenAI-style base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080/v1")]
    base_url: String,
    /// Bearer key.
    #[arg(long, env = "TOLLGATE_KEY")]
    api_key: Option<String>,
    /// The model to ask for.
    #[arg(long, default_value = "demo")]
    model: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// How long to run (at most 10 minutes).
    #[arg(long, default_value = "10s", value_parser = duration)]
    duration: Duration,
    /// Stop after this many requests.
    #[arg(long)]
    requests: Option<u64>,
    /// Ask for streamed answers.
    #[arg(long)]
    stream: bool,
    /// Words in each prompt.
    #[arg(long, default_value_t = 64)]
    prompt_words: usize,
    /// max_tokens for each request.
    #[arg(long)]
    max_tokens: Option<u32>,
    /// The API to speak: chat (`/chat/completions`) or responses (`/responses`).
    #[arg(long, default_value = "chat", value_parser = api)]
    api: Api,
}

fn api(s: &str) -> Result<Api, String> {
    match s {
        "chat" => Ok(Api::Chat),
        "responses" => Ok(Api::Responses),
        other => Err(format!("'{other}' is not chat or responses")),
    }
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

fn shape(s: &str) -> Result<UsageShape, String> {
    UsageShape::parse(s)
        .ok_or_else(|| format!("'{s}' is not one of openai, glm, kimi, deepseek, minimax, none"))
}

#[derive(Debug, clap::Args)]
struct MockArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: SocketAddr,
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
    /// Write each request received to this directory as JSON (credentials
    /// left out), for capturing what clients really send.
    #[arg(long)]
    record: Option<std::path::PathBuf>,
}

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
    let a = match cli.command {
        Command::Mock(a) => a,
        Command::Drive(d) => return drive(&runtime, d),
    };
    let options = MockOptions {
        sim: SimConfig {
            latency: a.latency,
            ttft: a.ttft,
            tokens_per_second: a.tokens_per_second,
            output_tokens: a.output_tokens,
            reasoning_tokens: a.reasoning_tokens,
            cached_tokens: a.cached_tokens,
            cache_write_tokens: a.cache_write_tokens,
            usage_shape: a.usage_shape,
            ..SimConfig::default()
        },
        faults: Faults {
            status: a.fail_status,
            stall_after: a.stall_after,
            disconnect_after: a.disconnect_after,
            malformed_after: a.malformed_after,
            hold_after: None,
            error_event_after: a.error_event_after,
        },
        api_key: a.api_key,
    };
    match runtime.block_on(mock::serve(a.listen, options, a.record)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mock upstream: {e}");
            ExitCode::FAILURE
        }
    }
}

fn drive(runtime: &tokio::runtime::Runtime, d: DriveArgs) -> ExitCode {
    let opts = DriveOptions {
        api: d.api,
        base_url: d.base_url,
        api_key: d.api_key,
        model: d.model,
        concurrency: d.concurrency,
        duration: d.duration.min(Duration::from_secs(600)),
        max_requests: d.requests,
        stream: d.stream,
        prompt_words: d.prompt_words,
        max_tokens: d.max_tokens,
    };
    match runtime.block_on(drive::run(opts)) {
        Ok(report) => {
            #[allow(clippy::print_stdout)]
            {
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("load driver: {e}");
            ExitCode::FAILURE
        }
    }
}
