//! The `loadtest` binary: `loadtest mock` runs the mock upstream.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
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
    let Command::Mock(a) = cli.command;
    let options = MockOptions {
        sim: SimConfig {
            latency: a.latency,
            ttft: a.ttft,
            tokens_per_second: a.tokens_per_second,
            output_tokens: a.output_tokens,
            reasoning_tokens: a.reasoning_tokens,
            cached_tokens: a.cached_tokens,
            usage_shape: a.usage_shape,
            ..SimConfig::default()
        },
        faults: Faults {
            status: a.fail_status,
            stall_after: a.stall_after,
            disconnect_after: a.disconnect_after,
            malformed_after: a.malformed_after,
            hold_after: None,
        },
        api_key: a.api_key,
    };
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
    match runtime.block_on(mock::serve(a.listen, options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mock upstream: {e}");
            ExitCode::FAILURE
        }
    }
}
