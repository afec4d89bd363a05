//! The `tollgate` binary: telemetry, config, `App::build`, run.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use gateway::app::shutdown_signal;
use gateway::cli::{Cli, Command};
use gateway::{App, Config};

fn init_telemetry() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = App::build(config).await.context("starting the gateway")?;
    tracing::info!(addr = %app.local_addr(), "tollgate listening");
    app.run(shutdown_signal()).await.context("serving")?;
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_telemetry();
    match cli.command {
        Command::CheckConfig { config } => match Config::load(&config) {
            Ok(c) => {
                #[allow(clippy::print_stdout)]
                {
                    println!("{}: ok\n{}", config.display(), gateway::check::describe(&c));
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Serve { config } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
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
            match runtime.block_on(serve(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
