//! Running the admin subcommands: each opens the configured database, applies
//! pending migrations, does one thing and prints JSON.

use billing::tenancy::{parse_rfc3339, KeySpec, Tenancy};
use serde_json::Value;

use crate::app::open_database;
use crate::cli::{KeyAction, OrgAction, TeamAction};
use crate::config::Config;

/// What an admin subcommand does.
#[derive(Debug)]
pub enum AdminCommand {
    Migrate,
    Org(OrgAction),
    Team(TeamAction),
    Key(KeyAction),
}

fn metadata(text: Option<&str>) -> anyhow::Result<Option<Value>> {
    text.map(|t| {
        serde_json::from_str(t).map_err(|e| anyhow::anyhow!("--metadata is not JSON: {e}"))
    })
    .transpose()
}

/// Runs one admin command; returns what to print.
pub async fn run(config: &Config, command: AdminCommand) -> anyhow::Result<String> {
    let db = open_database(config).await?;
    let tenancy = Tenancy::new(db.clone());
    let out = match command {
        AdminCommand::Migrate => {
            serde_json::json!({"migrated": true, "database": billing::db::redact_url(config.database.url.expose())})
        }
        AdminCommand::Org(OrgAction::Create { name, metadata: m }) => {
            serde_json::to_value(tenancy.create_org(&name, metadata(m.as_deref())?).await?)?
        }
        AdminCommand::Org(OrgAction::List) => serde_json::to_value(tenancy.list_orgs().await?)?,
        AdminCommand::Team(TeamAction::Create {
            org,
            name,
            metadata: m,
        }) => serde_json::to_value(
            tenancy
                .create_team(&org, &name, metadata(m.as_deref())?)
                .await?,
        )?,
        AdminCommand::Team(TeamAction::List { org }) => {
            serde_json::to_value(tenancy.list_teams(org.as_deref()).await?)?
        }
        AdminCommand::Key(KeyAction::Create {
            team,
            name,
            expires_at,
            allowed_models,
            metadata: m,
        }) => {
            let expires_at_ms = expires_at
                .as_deref()
                .map(|t| {
                    parse_rfc3339(t)
                        .ok_or_else(|| anyhow::anyhow!("--expires-at must be an RFC 3339 time"))
                })
                .transpose()?;
            let spec = KeySpec {
                team_id: team,
                name,
                expires_at_ms,
                allowed_models,
                metadata: metadata(m.as_deref())?,
            };
            serde_json::to_value(tenancy.create_key(spec).await?)?
        }
        AdminCommand::Key(KeyAction::List { team }) => {
            serde_json::to_value(tenancy.list_keys(team.as_deref()).await?)?
        }
        AdminCommand::Key(KeyAction::Revoke { id }) => {
            serde_json::to_value(tenancy.revoke_key(&id).await?.0)?
        }
    };
    db.close().await;
    // For a person at a terminal; the wire stays compact elsewhere.
    #[allow(clippy::disallowed_methods)]
    let text = serde_json::to_string_pretty(&out)?;
    Ok(text)
}
