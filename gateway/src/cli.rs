//! The command line: `serve`, `check-config`, `migrate`, and the admin
//! operations on organizations, teams and keys against the configured database.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Tollgate: a token-metering LLM gateway and router.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The config file, for every subcommand (accepted before or after the
/// subcommand's own arguments).
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// The config file (required).
    #[arg(long, short, env = "TOLLGATE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
}

impl ConfigArg {
    /// The config file, or the message for its absence.
    pub fn path(&self) -> Result<&PathBuf, &'static str> {
        self.config
            .as_ref()
            .ok_or("the config file is required: pass --config PATH or set TOLLGATE_CONFIG")
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve(ConfigArg),
    /// Validate a config file and print the resolved providers and models,
    /// secrets redacted. Exits non-zero on any problem.
    CheckConfig(ConfigArg),
    /// Apply the database migrations and exit.
    Migrate(ConfigArg),
    /// Organizations.
    Orgs {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        action: OrgAction,
    },
    /// Teams.
    Teams {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        action: TeamAction,
    },
    /// Virtual keys.
    Keys {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        action: KeyAction,
    },
}

/// Which models and providers may be used (comma-separated names), and
/// the budget and rate limits.
#[derive(Debug, Clone, Default, Args)]
pub struct PolicyArgs {
    /// A budget, as JSON: '{"limit_usd": 50, "period": "monthly", "enforcement": "hard"}'.
    #[arg(long)]
    pub budget: Option<String>,
    /// Rate limits, as JSON: '{"rpm": 600, "tpm": 2000000, "max_concurrent": 16}'.
    #[arg(long)]
    pub limits: Option<String>,
    /// Only these models and routes.
    #[arg(long, value_delimiter = ',')]
    pub allowed_models: Option<Vec<String>>,
    /// Never these models and routes.
    #[arg(long, value_delimiter = ',')]
    pub denied_models: Option<Vec<String>>,
    /// Only models of these providers.
    #[arg(long, value_delimiter = ',')]
    pub allowed_providers: Option<Vec<String>>,
    /// Never models of these providers.
    #[arg(long, value_delimiter = ',')]
    pub denied_providers: Option<Vec<String>>,
}

/// What `update` changes: absent options stay as they are.
#[derive(Debug, Clone, Args)]
pub struct UpdateArgs {
    /// The id.
    pub id: String,
    /// A new name.
    #[arg(long)]
    pub name: Option<String>,
    /// New metadata, a JSON object.
    #[arg(long)]
    pub metadata: Option<String>,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Clear a policy list (allowed_models, denied_models, allowed_providers,
    /// denied_providers), the budget or the limits (repeatable).
    #[arg(long, value_name = "FIELD")]
    pub clear: Vec<String>,
}

/// `tollgate orgs ...`
#[derive(Debug, Subcommand)]
pub enum OrgAction {
    /// Create an organization.
    Create {
        /// Its name (unique).
        name: String,
        /// Metadata, a JSON object.
        #[arg(long)]
        metadata: Option<String>,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// List organizations.
    List,
    /// Change an organization's name, metadata or policy.
    Update(UpdateArgs),
}

/// `tollgate teams ...`
#[derive(Debug, Subcommand)]
pub enum TeamAction {
    /// Create a team in an organization.
    Create {
        /// The organization's id.
        #[arg(long)]
        org: String,
        /// Its name (unique in the organization).
        name: String,
        /// Metadata, a JSON object.
        #[arg(long)]
        metadata: Option<String>,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// List teams.
    List {
        /// Only this organization's.
        #[arg(long)]
        org: Option<String>,
    },
    /// Change a team's name, metadata or policy.
    Update(UpdateArgs),
}

/// `tollgate keys ...`
#[derive(Debug, Subcommand)]
pub enum KeyAction {
    /// Create a key; its secret is printed once.
    Create {
        /// The team's id.
        #[arg(long)]
        team: String,
        /// A name to recognize it by.
        #[arg(long)]
        name: Option<String>,
        /// When it stops working, RFC 3339.
        #[arg(long)]
        expires_at: Option<String>,
        /// Metadata, a JSON object.
        #[arg(long)]
        metadata: Option<String>,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Change a key's name, metadata or policy.
    Update(UpdateArgs),
    /// List keys (never their secrets).
    List {
        /// Only this team's.
        #[arg(long)]
        team: Option<String>,
    },
    /// Revoke a key.
    Revoke {
        /// The key's id.
        id: String,
    },
}
