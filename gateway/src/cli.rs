//! The command line: `tollgate serve` and `tollgate check-config`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Tollgate: a token-metering LLM gateway and router.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve {
        /// The config file.
        #[arg(long, short, env = "TOLLGATE_CONFIG")]
        config: PathBuf,
    },
    /// Validate a config file and print the resolved providers and models,
    /// secrets redacted. Exits non-zero on any problem.
    CheckConfig {
        /// The config file.
        #[arg(long, short, env = "TOLLGATE_CONFIG")]
        config: PathBuf,
    },
}
