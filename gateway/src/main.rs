//! The `tollgate` binary: telemetry, config, `App::build`, run.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use gateway::admin_cli::{self, AdminCommand};
use gateway::app::shutdown_signal;
use gateway::cli::{Cli, Command, ConfigArg};
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
    if let Some(why) = &config.server.weak_master_key {
        tracing::warn!(
            listen = %config.server.listen,
            "{why}. Allowed only on a loopback address: set a random one \
             (TOLLGATE_MASTER_KEY=$(openssl rand -hex 32)) before listening anywhere else"
        );
    }
    let app = App::build(config).await.context("starting the gateway")?;
    tracing::info!(addr = %app.local_addr(), "tollgate listening");
    app.run(shutdown_signal()).await.context("serving")?;
    Ok(())
}

fn load(arg: &ConfigArg) -> Result<Config, ExitCode> {
    let path = arg.path().map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })?;
    Config::load(path).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("cannot start the async runtime: {e}");
            ExitCode::FAILURE
        })
}

#[allow(clippy::print_stdout)]
fn main() -> ExitCode {
    let cli = Cli::parse();
    init_telemetry();
    let (path, admin) = match cli.command {
        Command::CheckConfig(c) => {
            return match load(&c) {
                Ok(cfg) => {
                    let path = c
                        .path()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    println!("{path}: ok\n{}", gateway::check::describe(&cfg));
                    ExitCode::SUCCESS
                }
                Err(code) => code,
            };
        }
        Command::Serve(c) => {
            let config = match load(&c) {
                Ok(cfg) => cfg,
                Err(code) => return code,
            };
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            return match rt.block_on(serve(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Migrate(c) => (c, AdminCommand::Migrate),
        Command::Orgs { config, action } => (config, AdminCommand::Org(action)),
        Command::Teams { config, action } => (config, AdminCommand::Team(action)),
        Command::Keys { config, action } => (config, AdminCommand::Key(action)),
    };
    let config = match load(&path) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(admin_cli::run(&config, admin)) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
