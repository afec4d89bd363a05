//! Running the admin subcommands: each opens the configured database, applies
//! pending migrations, does one thing and prints JSON.

use billing::policy::{Policy, PolicyPatch};
use billing::quota::{Budget, Limits};
use billing::tenancy::{parse_rfc3339, Controls, KeySpec, Patch, Tenancy};
use serde_json::Value;

use crate::app::open_database;
use crate::cli::{KeyAction, OrgAction, PolicyArgs, TeamAction, UpdateArgs};
use crate::config::Config;
use crate::policy::KnownNames;

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

fn json_arg<T: serde::de::DeserializeOwned>(
    flag: &str,
    text: Option<&str>,
) -> anyhow::Result<Option<T>> {
    text.map(|t| serde_json::from_str(t).map_err(|e| anyhow::anyhow!("--{flag} is not valid: {e}")))
        .transpose()
}

/// What `create` sets, its names checked against the config.
fn controls(names: &KnownNames, args: PolicyArgs) -> anyhow::Result<Controls> {
    let p = Policy {
        allowed_models: args.allowed_models,
        denied_models: args.denied_models.unwrap_or_default(),
        allowed_providers: args.allowed_providers,
        denied_providers: args.denied_providers.unwrap_or_default(),
    };
    names
        .check(&p)
        .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    Ok(Controls {
        policy: p,
        budget: json_arg("budget", args.budget.as_deref())?,
        limits: json_arg("limits", args.limits.as_deref())?,
    })
}

/// A change from `update`'s flags.
fn patch(names: &KnownNames, args: UpdateArgs) -> anyhow::Result<Patch> {
    let set = |v: Option<Vec<String>>| v.map(Some);
    let mut budget = json_arg::<Budget>("budget", args.policy.budget.as_deref())?.map(Some);
    let mut limits = json_arg::<Limits>("limits", args.policy.limits.as_deref())?.map(Some);
    let mut policy = PolicyPatch {
        allowed_models: set(args.policy.allowed_models),
        denied_models: set(args.policy.denied_models),
        allowed_providers: set(args.policy.allowed_providers),
        denied_providers: set(args.policy.denied_providers),
    };
    for field in &args.clear {
        let slot = match field.as_str() {
            "budget" => {
                budget = Some(None);
                continue;
            }
            "limits" => {
                limits = Some(None);
                continue;
            }
            "allowed_models" => &mut policy.allowed_models,
            "denied_models" => &mut policy.denied_models,
            "allowed_providers" => &mut policy.allowed_providers,
            "denied_providers" => &mut policy.denied_providers,
            other => anyhow::bail!(
                "--clear takes allowed_models, denied_models, allowed_providers, denied_providers, budget or limits, not '{other}'"
            ),
        };
        *slot = Some(None);
    }
    names
        .check(&policy.apply(Policy::default()))
        .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    Ok(Patch {
        name: args.name,
        metadata: metadata(args.metadata.as_deref())?,
        policy,
        budget,
        limits,
    })
}

/// Runs one admin command; returns what to print.
pub async fn run(config: &Config, command: AdminCommand) -> anyhow::Result<String> {
    let names = KnownNames::of(config);
    let db = open_database(config).await?;
    let tenancy = Tenancy::new(db.clone());
    let out = match command {
        AdminCommand::Migrate => {
            serde_json::json!({"migrated": true, "database": billing::db::redact_url(config.database.url.expose())})
        }
        AdminCommand::Org(OrgAction::Create {
            name,
            metadata: m,
            policy: p,
        }) => serde_json::to_value(
            tenancy
                .create_org(&name, metadata(m.as_deref())?, &controls(&names, p)?)
                .await?,
        )?,
        AdminCommand::Org(OrgAction::List) => serde_json::to_value(tenancy.list_orgs().await?)?,
        AdminCommand::Org(OrgAction::Update(args)) => {
            let id = args.id.clone();
            serde_json::to_value(tenancy.update_org(&id, patch(&names, args)?).await?)?
        }
        AdminCommand::Team(TeamAction::Create {
            org,
            name,
            metadata: m,
            policy: p,
        }) => serde_json::to_value(
            tenancy
                .create_team(&org, &name, metadata(m.as_deref())?, &controls(&names, p)?)
                .await?,
        )?,
        AdminCommand::Team(TeamAction::Update(args)) => {
            let id = args.id.clone();
            serde_json::to_value(tenancy.update_team(&id, patch(&names, args)?).await?)?
        }
        AdminCommand::Key(KeyAction::Update(args)) => {
            let id = args.id.clone();
            serde_json::to_value(tenancy.update_key(&id, patch(&names, args)?).await?.0)?
        }
        AdminCommand::Team(TeamAction::List { org }) => {
            serde_json::to_value(tenancy.list_teams(org.as_deref()).await?)?
        }
        AdminCommand::Key(KeyAction::Create {
            team,
            name,
            expires_at,
            metadata: m,
            policy: p,
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
                controls: controls(&names, p)?,
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
