//! Organizations, teams, keys and the key cache.

use std::sync::Arc;
use std::time::Duration;

use billing::keys::KeyCache;
use billing::policy::{Policy, PolicyPatch};
use billing::quota::{Budget, Enforcement, Limits, Period};
use billing::tenancy::{hash_secret, Controls, KeySpec, Patch, Tenancy, TenancyError};
use billing::testing::TestDb;
use serde_json::json;
use sqlx::Row;

use crate::helpers::eventually;

async fn migrations_apply_once(t: &TestDb) {
    // TestDb has migrated already: a second run finds nothing to do.
    t.db.migrate().await.unwrap();
    let applied: i64 = sqlx::query("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM _sqlx_migrations")
        .fetch_one(t.db.pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    // Postgres has one more: the ledger partitioned by month.
    let (want, tables): (i64, &[&str]) = match t.db.backend() {
        billing::Backend::Postgres => (5, &["ledger_default", "ledger_retention"]),
        billing::Backend::Sqlite => (4, &[]),
    };
    assert_eq!(applied, want);
    for table in ["orgs", "teams", "api_keys", "ledger", "spend_hourly"]
        .iter()
        .chain(tables)
    {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_one(t.db.pool())
            .await
            .unwrap();
    }
}
both_backends!(
    migrations_apply_once_and_create_every_table,
    super::migrations_apply_once
);

async fn tenancy_round_trip(t: &TestDb) {
    let ten = Tenancy::new(t.db.clone());
    let monthly_50 = Budget {
        limit_usd: Some(50.0),
        limit_tokens: None,
        period: Period::Monthly,
        enforcement: Enforcement::Hard,
    };
    let no_anthropic = Policy {
        denied_providers: vec!["anthropic".into()],
        ..Policy::default()
    };
    let org = ten
        .create_org(
            "acme",
            Some(json!({"cost_center": "42"})),
            &Controls {
                policy: no_anthropic.clone(),
                budget: Some(monthly_50.clone()),
                limits: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(org.controls.policy, no_anthropic);
    assert_eq!(org.controls.budget.as_ref(), Some(&monthly_50));
    // A budget must limit something.
    let empty_budget = Controls {
        budget: Some(Budget {
            limit_usd: None,
            limit_tokens: None,
            period: Period::Daily,
            enforcement: Enforcement::Soft,
        }),
        ..Controls::default()
    };
    assert!(matches!(
        ten.create_org("acme-2", None, &empty_budget).await,
        Err(TenancyError::Invalid(_))
    ));
    assert!(matches!(
        ten.create_org("acme", None, &Controls::default()).await,
        Err(TenancyError::Conflict(_))
    ));
    assert!(matches!(
        ten.create_team("nope", "x", None, &Controls::default())
            .await,
        Err(TenancyError::NotFound(..))
    ));
    let blank = Policy {
        denied_models: vec![" ".into()],
        ..Policy::default()
    };
    assert!(matches!(
        ten.create_team(
            &org.id,
            "x",
            None,
            &Controls {
                policy: blank,
                ..Controls::default()
            }
        )
        .await,
        Err(TenancyError::Invalid(_))
    ));
    let team = ten
        .create_team(&org.id, "search", None, &Controls::default())
        .await
        .unwrap();
    let renamed = ten
        .update_team(
            &team.id,
            Patch {
                name: Some("search-infra".into()),
                metadata: Some(json!({"slack": "#search"})),
                policy: PolicyPatch {
                    denied_providers: Some(Some(vec!["deepseek".into()])),
                    ..PolicyPatch::default()
                },
                limits: Some(Some(Limits {
                    rpm: Some(600),
                    ..Limits::default()
                })),
                budget: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.name, "search-infra");
    assert_eq!(renamed.metadata["slack"], "#search");
    assert_eq!(
        renamed.controls.policy.denied_providers,
        vec!["deepseek".to_owned()]
    );
    // A patch of the policy alone keeps name and metadata.
    let org2 = ten
        .update_org(
            &org.id,
            Patch {
                policy: PolicyPatch {
                    allowed_providers: Some(Some(vec!["kimi".into(), "glm".into()])),
                    ..PolicyPatch::default()
                },
                ..Patch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(org2.name, "acme");
    assert_eq!(org2.metadata["cost_center"], "42");
    assert_eq!(
        org2.controls.policy.denied_providers,
        vec!["anthropic".to_owned()]
    );
    assert!(org2.controls.policy.allowed_providers.is_some());
    assert_eq!(
        ten.list_teams(Some(&org.id)).await.unwrap(),
        vec![renamed.clone()]
    );
    assert_eq!(
        ten.list_orgs().await.unwrap()[0].metadata["cost_center"],
        "42"
    );

    let created = ten
        .create_key(KeySpec {
            team_id: team.id.clone(),
            name: Some("ci".into()),
            expires_at_ms: Some(4_102_444_800_000),
            controls: Controls {
                policy: Policy {
                    allowed_models: Some(vec!["kimi-k2.5".into()]),
                    ..Policy::default()
                },
                ..Controls::default()
            },
            metadata: None,
        })
        .await
        .unwrap();
    assert!(created.key.starts_with(&created.view.prefix));
    let listed = ten.list_keys(Some(&team.id)).await.unwrap();
    assert_eq!(listed, vec![created.view.clone()]);
    let dump = serde_json::to_string(&listed).unwrap();
    assert!(
        !dump.contains(&created.key),
        "a listing never carries the secret"
    );
    assert!(!dump.contains(&hash_secret(&created.key)), "nor its hash");

    let info = ten
        .key_by_hash(&hash_secret(&created.key))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (info.org_id.as_str(), info.team_id.as_str()),
        (org.id.as_str(), team.id.as_str())
    );
    // The key carries its own, its team's and its organization's policies.
    assert_eq!(
        info.policies.key.allowed_models,
        Some(vec!["kimi-k2.5".into()])
    );
    assert_eq!(info.policies.team, renamed.controls.policy);
    assert_eq!(info.policies.org, org2.controls.policy);
    // And their budgets and limits.
    assert_eq!(info.quotas.org.budget.as_ref(), Some(&monthly_50));
    assert_eq!(
        info.quotas.team.limits.as_ref().and_then(|l| l.rpm),
        Some(600)
    );
    assert!(info.quotas.key.is_empty());
    assert_eq!(
        info.policies.excludes("kimi-k2.5", "kimi-k2.5", "kimi"),
        None
    );
    assert!(info.policies.excludes("glm-5", "glm-5", "glm").is_some());
    assert!(!info.revoked);
    let (patched, hash) = ten
        .update_key(
            &created.view.id,
            Patch {
                name: Some("ci-2".into()),
                policy: PolicyPatch {
                    allowed_models: Some(None),
                    ..PolicyPatch::default()
                },
                ..Patch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(hash, hash_secret(&created.key));
    assert_eq!(patched.name.as_deref(), Some("ci-2"));
    assert_eq!(patched.controls.policy, Policy::default());
    assert!(matches!(
        ten.update_key("missing", Patch::default()).await,
        Err(TenancyError::NotFound(..))
    ));

    let (revoked, hash) = ten.revoke_key(&created.view.id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(hash, hash_secret(&created.key));
    let again = ten.revoke_key(&created.view.id).await.unwrap().0;
    assert_eq!(
        again.revoked_at, revoked.revoked_at,
        "revoking twice keeps the first time"
    );
    assert!(ten.key_by_hash(&hash).await.unwrap().unwrap().revoked);
    assert!(matches!(
        ten.revoke_key("missing").await,
        Err(TenancyError::NotFound(..))
    ));
}
both_backends!(tenancy_round_trips, super::tenancy_round_trip);

async fn cache_sees_revocations(t: &TestDb) {
    let ten = Arc::new(Tenancy::new(t.db.clone()));
    let org = ten
        .create_org("o", None, &Controls::default())
        .await
        .unwrap();
    let team = ten
        .create_team(&org.id, "t", None, &Controls::default())
        .await
        .unwrap();
    let key = ten
        .create_key(KeySpec {
            team_id: team.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    // Two caches: this replica's and another's that only learns by watching.
    let here = KeyCache::new(ten.clone(), 1000);
    let there = KeyCache::new(ten.clone(), 1000);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let watcher = tokio::spawn(there.clone().watch(Duration::from_millis(100), async {
        let _ = stop_rx.await;
    }));
    assert!(!here.lookup(&key.key).await.unwrap().unwrap().revoked);
    assert!(!there.lookup(&key.key).await.unwrap().unwrap().revoked);

    // A team's policy reaches the keys under it on every replica.
    ten.update_team(
        &team.id,
        Patch {
            policy: PolicyPatch {
                denied_providers: Some(Some(vec!["deepseek".into()])),
                ..PolicyPatch::default()
            },
            ..Patch::default()
        },
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    eventually("the other replica to see the team's policy", || async {
        let k = there.lookup(&key.key).await.unwrap().unwrap();
        k.policies.team.denied_providers == ["deepseek"]
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "within one second: {:?}",
        started.elapsed()
    );
    assert!(here
        .lookup("tg-nobody-issued-this")
        .await
        .unwrap()
        .is_none());

    let (_, hash) = ten.revoke_key(&key.view.id).await.unwrap();
    here.invalidate(&hash).await;
    assert!(
        here.lookup(&key.key).await.unwrap().unwrap().revoked,
        "this replica sees it at once"
    );
    let started = std::time::Instant::now();
    eventually("the other replica to see the revocation", || async {
        there.lookup(&key.key).await.unwrap().unwrap().revoked
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "within one second: {:?}",
        started.elapsed()
    );
    let _ = stop_tx.send(());
    watcher.await.unwrap();
}
both_backends!(key_caches_see_revocations, super::cache_sees_revocations);
