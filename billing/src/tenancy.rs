//! Organizations, teams and virtual keys: the admin operations, and the key
//! lookup the auth cache loads from.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use rand::RngCore;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, Row};
use uuid::Uuid;

use crate::db::{now_ms, Db, DbError};
use crate::policy::{Policies, Policy, PolicyPatch};
use crate::quota::{Budget, Enforcement, Level, Limits, Period, Quota, Quotas};

/// What went wrong with an admin operation.
#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    /// The referenced thing does not exist.
    #[error("{0} '{1}' does not exist")]
    NotFound(&'static str, String),
    /// A name is already taken.
    #[error("{0}")]
    Conflict(String),
    /// The request is not valid.
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for TenancyError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return TenancyError::Conflict("that name is already taken".into());
            }
        }
        TenancyError::Db(DbError::Sqlx(e))
    }
}

/// The last millisecond RFC 3339 can write (9999-12-31T23:59:59.999Z).
pub const MAX_RFC3339_MS: i64 = 253_402_300_799_999;

/// An RFC 3339 UTC timestamp for a millisecond time (clamped to years 1970 to 9999).
pub fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.clamp(0, MAX_RFC3339_MS) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Parses an RFC 3339 timestamp into milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339_weak(s).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_millis() as i64)
}

/// An organization.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Org {
    pub id: String,
    pub name: String,
    pub metadata: Value,
    #[serde(flatten)]
    pub controls: Controls,
    pub created_at: String,
    pub updated_at: String,
}

/// A team.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Team {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub metadata: Value,
    #[serde(flatten)]
    pub controls: Controls,
    pub created_at: String,
    pub updated_at: String,
}

/// A virtual key as admins see it: never its secret.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct KeyView {
    pub id: String,
    pub team_id: String,
    pub org_id: String,
    pub name: Option<String>,
    /// The first characters of the secret, to recognize it by.
    pub prefix: String,
    #[serde(flatten)]
    pub controls: Controls,
    pub metadata: Value,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub created_at: String,
}

/// A key just created: the only time its secret is shown.
#[derive(Debug, Clone, Serialize)]
pub struct NewKey {
    #[serde(flatten)]
    pub view: KeyView,
    /// The secret, `tg-` and 43 URL-safe characters (32 random bytes).
    pub key: String,
}

/// What a new key is made of.
#[derive(Debug, Clone, Default)]
pub struct KeySpec {
    pub team_id: String,
    pub name: Option<String>,
    pub expires_at_ms: Option<i64>,
    pub metadata: Option<Value>,
    pub controls: Controls,
}

/// What an organization, a team or a key may use and spend.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Controls {
    #[serde(flatten)]
    pub policy: Policy,
    pub budget: Option<Budget>,
    pub limits: Option<Limits>,
}

/// A change to an organization, a team or a key: absent fields stay;
/// `Some(None)` removes a budget or limits.
#[derive(Debug, Clone, Default)]
pub struct Patch {
    pub name: Option<String>,
    pub metadata: Option<Value>,
    pub policy: PolicyPatch,
    pub budget: Option<Option<Budget>>,
    pub limits: Option<Option<Limits>>,
}

/// What the auth path needs to know about a key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyInfo {
    pub id: String,
    pub team_id: String,
    pub org_id: String,
    /// Its team's and organization's names, as loaded (for metrics labels).
    pub team_name: String,
    pub org_name: String,
    pub name: Option<String>,
    pub prefix: String,
    /// The key's, its team's and its organization's policies.
    pub policies: Policies,
    /// Their budgets and rate limits.
    pub quotas: Quotas,
    pub expires_at_ms: Option<i64>,
    pub revoked: bool,
}

impl KeyInfo {
    /// Its organization, team and itself, each with its id and quota.
    pub fn quota_levels(&self) -> [(Level, &str, &Quota); 3] {
        let q = &self.quotas;
        [
            (Level::Org, self.org_id.as_str(), &q.org),
            (Level::Team, self.team_id.as_str(), &q.team),
            (Level::Key, self.id.as_str(), &q.key),
        ]
    }

    /// What the key is called in metrics: its name, or its display prefix
    /// when it has none. Never the secret.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.prefix)
    }

    /// Whether the key has expired at `now_ms`.
    pub fn expired_at(&self, now_ms: i64) -> bool {
        self.expires_at_ms.is_some_and(|e| e <= now_ms)
    }
}

/// The SHA-256 of a secret, hex: what is stored and looked up.
pub fn hash_secret(secret: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(secret.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0xf)] as char);
    }
    out
}

/// A new secret: `tg-` and 32 random bytes in URL-safe base64.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "tg-{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

pub(crate) fn metadata_text(v: Option<Value>) -> Result<String, TenancyError> {
    match v {
        None | Some(Value::Null) => Ok("{}".into()),
        Some(v @ Value::Object(_)) => Ok(v.to_string()),
        Some(_) => Err(TenancyError::Invalid(
            "metadata must be a JSON object".into(),
        )),
    }
}

pub(crate) fn parse_json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or(Value::Null)
}

/// A stored policy. One that no longer parses (written by a later version)
/// denies everything rather than nothing.
fn parse_policy(s: &str) -> Policy {
    serde_json::from_str(s).unwrap_or_else(|e| {
        tracing::error!(error = %e, "a stored policy does not parse; it allows no model");
        Policy {
            allowed_models: Some(Vec::new()),
            ..Policy::default()
        }
    })
}

fn policy_text(p: &Policy) -> Result<String, TenancyError> {
    p.validate().map_err(TenancyError::Invalid)?;
    serde_json::to_string(p).map_err(|e| TenancyError::Invalid(e.to_string()))
}

/// A stored budget. One that no longer parses refuses everything rather
/// than limiting nothing.
fn parse_budget(s: Option<String>) -> Option<Budget> {
    let s = s?;
    Some(serde_json::from_str(&s).unwrap_or_else(|e| {
        tracing::error!(error = %e, "a stored budget does not parse; it admits nothing");
        Budget {
            limit_usd: Some(0.0),
            limit_tokens: None,
            period: Period::Lifetime,
            enforcement: Enforcement::Hard,
        }
    }))
}

/// Stored limits. Ones that no longer parse admit nothing.
fn parse_limits(s: Option<String>) -> Option<Limits> {
    let s = s?;
    Some(serde_json::from_str(&s).unwrap_or_else(|e| {
        tracing::error!(error = %e, "stored rate limits do not parse; they admit nothing");
        Limits {
            max_concurrent: Some(0),
            ..Limits::default()
        }
    }))
}

fn budget_text(b: Option<&Budget>) -> Result<Option<String>, TenancyError> {
    b.map(|b| {
        b.validate().map_err(TenancyError::Invalid)?;
        serde_json::to_string(b).map_err(|e| TenancyError::Invalid(e.to_string()))
    })
    .transpose()
}

fn limits_text(l: Option<&Limits>) -> Result<Option<String>, TenancyError> {
    l.map(|l| serde_json::to_string(l).map_err(|e| TenancyError::Invalid(e.to_string())))
        .transpose()
}

/// Controls as a row holds them.
fn read_controls(row: &sqlx::any::AnyRow) -> Result<Controls, sqlx::Error> {
    Ok(controls_from_text(
        &row.try_get::<String, _>("policy")?,
        row.try_get("budget")?,
        row.try_get("limits")?,
    ))
}

/// Controls from their stored text (see [`controls_text`]).
pub(crate) fn controls_from_text(
    policy: &str,
    budget: Option<String>,
    limits: Option<String>,
) -> Controls {
    Controls {
        policy: parse_policy(policy),
        budget: parse_budget(budget),
        limits: parse_limits(limits),
    }
}

/// Controls as stored: policy, budget and limits text.
pub(crate) fn controls_text(
    c: &Controls,
) -> Result<(String, Option<String>, Option<String>), TenancyError> {
    Ok((
        policy_text(&c.policy)?,
        budget_text(c.budget.as_ref())?,
        limits_text(c.limits.as_ref())?,
    ))
}

pub(crate) fn check_name(kind: &str, name: &str) -> Result<(), TenancyError> {
    if name.trim().is_empty() || name.len() > 200 {
        return Err(TenancyError::Invalid(format!(
            "{kind} name must be 1 to 200 characters"
        )));
    }
    Ok(())
}

/// The admin operations over the database.
#[derive(Debug, Clone)]
pub struct Tenancy {
    db: Db,
}

const KEY_COLUMNS: &str = "k.id, k.team_id, t.org_id, k.name, k.key_prefix, k.policy, k.budget, k.limits, k.metadata, k.expires_at, k.revoked_at, k.created_at";

fn key_view(row: &sqlx::any::AnyRow) -> Result<KeyView, sqlx::Error> {
    let expires: Option<i64> = row.try_get("expires_at")?;
    let revoked: Option<i64> = row.try_get("revoked_at")?;
    Ok(KeyView {
        id: row.try_get("id")?,
        team_id: row.try_get("team_id")?,
        org_id: row.try_get("org_id")?,
        name: row.try_get("name")?,
        prefix: row.try_get("key_prefix")?,
        controls: read_controls(row)?,
        metadata: parse_json(&row.try_get::<String, _>("metadata")?),
        expires_at: expires.map(rfc3339),
        revoked_at: revoked.map(rfc3339),
        created_at: rfc3339(row.try_get("created_at")?),
    })
}

fn org(row: &sqlx::any::AnyRow) -> Result<Org, sqlx::Error> {
    Ok(Org {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        metadata: parse_json(&row.try_get::<String, _>("metadata")?),
        controls: read_controls(row)?,
        created_at: rfc3339(row.try_get("created_at")?),
        updated_at: rfc3339(row.try_get("updated_at")?),
    })
}

fn team(row: &sqlx::any::AnyRow) -> Result<Team, sqlx::Error> {
    Ok(Team {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        name: row.try_get("name")?,
        metadata: parse_json(&row.try_get::<String, _>("metadata")?),
        controls: read_controls(row)?,
        created_at: rfc3339(row.try_get("created_at")?),
        updated_at: rfc3339(row.try_get("updated_at")?),
    })
}

impl Tenancy {
    /// Admin operations over `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    fn p(&self, n: usize) -> String {
        self.db.param(n)
    }

    /// Creates an organization.
    pub async fn create_org(
        &self,
        name: &str,
        metadata: Option<Value>,
        controls: &Controls,
    ) -> Result<Org, TenancyError> {
        check_name("organization", name)?;
        let (policy, budget, limits) = controls_text(controls)?;
        let (id, now, meta) = (
            Uuid::now_v7().to_string(),
            now_ms(),
            metadata_text(metadata)?,
        );
        let sql = format!(
            "INSERT INTO orgs (id, name, metadata, policy, budget, limits, created_at, updated_at) VALUES ({}, {}, {}, {}, {}, {}, {}, {})",
            self.p(1), self.p(2), self.p(3), self.p(4), self.p(5), self.p(6), self.p(7), self.p(8)
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(&id)
            .bind(name)
            .bind(&meta)
            .bind(policy)
            .bind(budget)
            .bind(limits)
            .bind(now)
            .bind(now)
            .execute(self.db.pool())
            .await?;
        self.org(&id).await
    }

    /// One organization.
    pub async fn org(&self, id: &str) -> Result<Org, TenancyError> {
        let sql = format!(
            "SELECT id, name, metadata, policy, budget, limits, created_at, updated_at FROM orgs WHERE id = {}",
            self.p(1)
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?;
        let r = row.ok_or_else(|| TenancyError::NotFound("organization", id.to_owned()))?;
        Ok(org(&r)?)
    }

    /// Every organization, oldest first.
    pub async fn list_orgs(&self) -> Result<Vec<Org>, TenancyError> {
        let rows = sqlx::query(
            "SELECT id, name, metadata, policy, budget, limits, created_at, updated_at FROM orgs ORDER BY created_at, id",
        )
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows.iter().map(org).collect::<Result<_, _>>()?)
    }

    async fn exists(
        &self,
        table: &'static str,
        kind: &'static str,
        id: &str,
    ) -> Result<(), TenancyError> {
        let sql = format!("SELECT id FROM {table} WHERE id = {}", self.p(1));
        match sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?
        {
            Some(_) => Ok(()),
            None => Err(TenancyError::NotFound(kind, id.to_owned())),
        }
    }

    /// Creates a team in an organization.
    pub async fn create_team(
        &self,
        org_id: &str,
        name: &str,
        metadata: Option<Value>,
        controls: &Controls,
    ) -> Result<Team, TenancyError> {
        check_name("team", name)?;
        let (policy, budget, limits) = controls_text(controls)?;
        self.exists("orgs", "organization", org_id).await?;
        let (id, now, meta) = (
            Uuid::now_v7().to_string(),
            now_ms(),
            metadata_text(metadata)?,
        );
        let sql = format!(
            "INSERT INTO teams (id, org_id, name, metadata, policy, budget, limits, created_at, updated_at) VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {})",
            self.p(1), self.p(2), self.p(3), self.p(4), self.p(5), self.p(6), self.p(7), self.p(8), self.p(9)
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(&id)
            .bind(org_id)
            .bind(name)
            .bind(&meta)
            .bind(policy)
            .bind(budget)
            .bind(limits)
            .bind(now)
            .bind(now)
            .execute(self.db.pool())
            .await?;
        self.team(&id).await
    }

    /// One team.
    pub async fn team(&self, id: &str) -> Result<Team, TenancyError> {
        let sql = format!(
            "SELECT id, org_id, name, metadata, policy, budget, limits, created_at, updated_at FROM teams WHERE id = {}",
            self.p(1)
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?;
        let row = row.ok_or_else(|| TenancyError::NotFound("team", id.to_owned()))?;
        Ok(team(&row)?)
    }

    /// Runs `base`, filtered on `column = value` when a value is given, in `order`.
    async fn fetch_filtered(
        &self,
        base: &str,
        column: &str,
        value: Option<&str>,
        order: &str,
    ) -> Result<Vec<sqlx::any::AnyRow>, sqlx::Error> {
        let filter = match value {
            Some(_) => format!(" WHERE {column} = {}", self.p(1)),
            None => String::new(),
        };
        let mut q = sqlx::query(AssertSqlSafe(format!("{base}{filter} ORDER BY {order}")));
        if let Some(v) = value {
            q = q.bind(v);
        }
        q.fetch_all(self.db.pool()).await
    }

    /// Teams, all or one organization's, oldest first.
    pub async fn list_teams(&self, org_id: Option<&str>) -> Result<Vec<Team>, TenancyError> {
        let base = "SELECT id, org_id, name, metadata, policy, budget, limits, created_at, updated_at FROM teams";
        let rows = self
            .fetch_filtered(base, "org_id", org_id, "created_at, id")
            .await?;
        Ok(rows.iter().map(team).collect::<Result<_, _>>()?)
    }

    /// Applies `patch` to the row `id` of `table`, whose current name,
    /// metadata and policy are given. Bumps `updated_at`, which is how every
    /// replica's key watcher learns of the change.
    async fn patch(
        &self,
        (table, kind): (&'static str, &'static str),
        id: &str,
        current: (Option<&str>, &Value, &Controls),
        patch: Patch,
    ) -> Result<(), TenancyError> {
        if let Some(n) = &patch.name {
            check_name(kind, n)?;
        }
        let name = patch.name.as_deref().or(current.0);
        let meta = match patch.metadata {
            Some(m) => metadata_text(Some(m))?,
            None => current.1.to_string(),
        };
        let cur = current.2;
        let (policy, budget, limits) = controls_text(&Controls {
            policy: patch.policy.apply(cur.policy.clone()),
            budget: patch.budget.unwrap_or_else(|| cur.budget.clone()),
            limits: patch.limits.unwrap_or_else(|| cur.limits.clone()),
        })?;
        let sql = format!(
            "UPDATE {table} SET name = {}, metadata = {}, policy = {}, budget = {}, limits = {}, updated_at = {} WHERE id = {}",
            self.p(1),
            self.p(2),
            self.p(3),
            self.p(4),
            self.p(5),
            self.p(6),
            self.p(7)
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(name)
            .bind(&meta)
            .bind(&policy)
            .bind(budget)
            .bind(limits)
            .bind(now_ms())
            .bind(id)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Renames an organization, or replaces its metadata or policy fields.
    pub async fn update_org(&self, id: &str, patch: Patch) -> Result<Org, TenancyError> {
        let cur = self.org(id).await?;
        let current = (Some(cur.name.as_str()), &cur.metadata, &cur.controls);
        self.patch(("orgs", "organization"), id, current, patch)
            .await?;
        self.org(id).await
    }

    /// Renames a team, or replaces its metadata or policy fields.
    pub async fn update_team(&self, id: &str, patch: Patch) -> Result<Team, TenancyError> {
        let cur = self.team(id).await?;
        let current = (Some(cur.name.as_str()), &cur.metadata, &cur.controls);
        self.patch(("teams", "team"), id, current, patch).await?;
        self.team(id).await
    }

    /// Renames a key, or replaces its metadata or policy fields. Returns it,
    /// and its hash for cache invalidation.
    pub async fn update_key(
        &self,
        id: &str,
        patch: Patch,
    ) -> Result<(KeyView, String), TenancyError> {
        let cur = self.key(id).await?;
        let current = (cur.name.as_deref(), &cur.metadata, &cur.controls);
        self.patch(("api_keys", "key"), id, current, patch).await?;
        Ok((self.key(id).await?, self.key_hash(id).await?))
    }

    async fn key_hash(&self, id: &str) -> Result<String, TenancyError> {
        let sql = format!("SELECT key_hash FROM api_keys WHERE id = {}", self.p(1));
        Ok(sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_one(self.db.pool())
            .await?
            .try_get("key_hash")?)
    }

    /// Creates a key; the secret is in the answer and nowhere else.
    pub async fn create_key(&self, spec: KeySpec) -> Result<NewKey, TenancyError> {
        let team = self.team(&spec.team_id).await?;
        if let Some(n) = &spec.name {
            check_name("key", n)?;
        }
        let (policy, budget, limits) = controls_text(&spec.controls)?;
        let secret = generate_secret();
        let prefix: String = secret.chars().take(11).collect();
        let (id, now) = (Uuid::now_v7().to_string(), now_ms());
        let meta = metadata_text(spec.metadata)?;
        let sql = format!(
            "INSERT INTO api_keys (id, team_id, name, key_hash, key_prefix, policy, budget, limits, metadata, expires_at, revoked_at, created_at, updated_at) \
             VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, NULL, {}, {})",
            self.p(1), self.p(2), self.p(3), self.p(4), self.p(5), self.p(6), self.p(7), self.p(8), self.p(9), self.p(10), self.p(11), self.p(12)
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(&id)
            .bind(&team.id)
            .bind(spec.name.as_deref())
            .bind(hash_secret(&secret))
            .bind(&prefix)
            .bind(&policy)
            .bind(budget)
            .bind(limits)
            .bind(&meta)
            .bind(spec.expires_at_ms)
            .bind(now)
            .bind(now)
            .execute(self.db.pool())
            .await?;
        Ok(NewKey {
            view: KeyView {
                id,
                team_id: team.id,
                org_id: team.org_id,
                name: spec.name,
                prefix,
                controls: spec.controls,
                metadata: parse_json(&meta),
                expires_at: spec.expires_at_ms.map(rfc3339),
                revoked_at: None,
                created_at: rfc3339(now),
            },
            key: secret,
        })
    }

    /// Keys, all or one team's, oldest first. Never a secret.
    pub async fn list_keys(&self, team_id: Option<&str>) -> Result<Vec<KeyView>, TenancyError> {
        let base = format!("SELECT {KEY_COLUMNS} FROM api_keys k JOIN teams t ON t.id = k.team_id");
        let rows = self
            .fetch_filtered(&base, "k.team_id", team_id, "k.created_at, k.id")
            .await?;
        Ok(rows.iter().map(key_view).collect::<Result<_, _>>()?)
    }

    /// One key.
    pub async fn key(&self, id: &str) -> Result<KeyView, TenancyError> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM api_keys k JOIN teams t ON t.id = k.team_id WHERE k.id = {}",
            self.p(1)
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?;
        Ok(key_view(&row.ok_or_else(|| {
            TenancyError::NotFound("key", id.to_owned())
        })?)?)
    }

    /// Revokes a key (idempotent). Returns it, and its hash for cache invalidation.
    pub async fn revoke_key(&self, id: &str) -> Result<(KeyView, String), TenancyError> {
        let now = now_ms();
        let sql = format!(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, {}), updated_at = {} WHERE id = {}",
            self.p(1), self.p(2), self.p(3)
        );
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(now)
            .bind(now)
            .bind(id)
            .execute(self.db.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(TenancyError::NotFound("key", id.to_owned()));
        }
        Ok((self.key(id).await?, self.key_hash(id).await?))
    }

    /// The key with this secret hash, for the auth cache.
    pub async fn key_by_hash(&self, hash: &str) -> Result<Option<KeyInfo>, DbError> {
        self.key_info_where("k.key_hash", hash).await
    }

    /// The key with this id, as the auth path sees it (revoked or not).
    pub async fn key_info(&self, id: &str) -> Result<Option<KeyInfo>, DbError> {
        self.key_info_where("k.id", id).await
    }

    async fn key_info_where(&self, column: &str, value: &str) -> Result<Option<KeyInfo>, DbError> {
        let sql = format!(
            "SELECT k.id, k.team_id, t.org_id, t.name AS team_name, o.name AS org_name, \
             k.name, k.key_prefix, k.expires_at, k.revoked_at, \
             k.policy AS key_policy, t.policy AS team_policy, o.policy AS org_policy, \
             k.budget AS key_budget, t.budget AS team_budget, o.budget AS org_budget, \
             k.limits AS key_limits, t.limits AS team_limits, o.limits AS org_limits \
             FROM api_keys k JOIN teams t ON t.id = k.team_id JOIN orgs o ON o.id = t.org_id \
             WHERE {column} = {}",
            self.p(1)
        );
        let Some(row) = sqlx::query(AssertSqlSafe(sql))
            .bind(value)
            .fetch_optional(self.db.pool())
            .await?
        else {
            return Ok(None);
        };
        let policy = |col: &str| -> Result<Policy, sqlx::Error> {
            Ok(parse_policy(&row.try_get::<String, _>(col)?))
        };
        let quota = |level: &str| -> Result<Quota, sqlx::Error> {
            Ok(Quota {
                budget: parse_budget(row.try_get(format!("{level}_budget").as_str())?),
                limits: parse_limits(row.try_get(format!("{level}_limits").as_str())?),
            })
        };
        Ok(Some(KeyInfo {
            id: row.try_get("id")?,
            team_id: row.try_get("team_id")?,
            org_id: row.try_get("org_id")?,
            team_name: row.try_get("team_name")?,
            org_name: row.try_get("org_name")?,
            name: row.try_get("name")?,
            prefix: row.try_get("key_prefix")?,
            policies: Policies {
                org: policy("org_policy")?,
                team: policy("team_policy")?,
                key: policy("key_policy")?,
            },
            quotas: Quotas {
                org: quota("org")?,
                team: quota("team")?,
                key: quota("key")?,
            },
            expires_at_ms: row.try_get("expires_at")?,
            revoked: row.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
        }))
    }

    /// Keys changed after `since_ms`, or whose team or organization changed
    /// (a policy applies to every key under it): each one's secret hash and
    /// change time.
    pub async fn keys_changed_since(&self, since_ms: i64) -> Result<Vec<(String, i64)>, DbError> {
        let changed = |table: &str, key_filter: &str| {
            format!(
                "SELECT k.key_hash, {table}.updated_at FROM api_keys k {key_filter} WHERE {table}.updated_at > "
            )
        };
        let sql = format!(
            "{}{} UNION ALL {}{} UNION ALL {}{}",
            changed("k", ""),
            self.p(1),
            changed("t", "JOIN teams t ON t.id = k.team_id"),
            self.p(2),
            changed(
                "o",
                "JOIN teams t ON t.id = k.team_id JOIN orgs o ON o.id = t.org_id"
            ),
            self.p(3)
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(since_ms)
            .bind(since_ms)
            .bind(since_ms)
            .fetch_all(self.db.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<String, _>("key_hash")?,
                    r.try_get::<i64, _>("updated_at")?,
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::from)
    }
}

/// A shared handle.
pub type SharedTenancy = Arc<Tenancy>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_lowercase_hex_sha256() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn secrets_are_long_random_and_url_safe() {
        let a = generate_secret();
        let b = generate_secret();
        assert_ne!(a, b);
        assert!(a.starts_with("tg-"));
        assert_eq!(a.len(), 3 + 43);
        assert!(a[3..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(hash_secret(&a).len(), 64);
    }

    #[test]
    fn timestamps_round_trip() {
        let ms = 1_795_272_000_123;
        assert_eq!(parse_rfc3339(&rfc3339(ms)), Some(ms));
        assert_eq!(
            parse_rfc3339("2026-12-31T00:00:00Z"),
            Some(1_798_675_200_000)
        );
        assert_eq!(parse_rfc3339("tomorrow"), None);
    }

    #[test]
    fn keys_expire_at_their_time() {
        let k = KeyInfo {
            id: "k".into(),
            team_id: "t".into(),
            org_id: "o".into(),
            team_name: "team".into(),
            org_name: "org".into(),
            name: None,
            prefix: "tg-x".into(),
            policies: Policies::default(),
            quotas: Quotas::default(),
            expires_at_ms: Some(1000),
            revoked: false,
        };
        assert!(k.expired_at(1000) && !k.expired_at(999));
    }

    #[test]
    fn an_unreadable_stored_policy_allows_nothing() {
        let p = parse_policy(r#"{"allowed_models": ["a"], "budget_tier": 3}"#);
        assert_eq!(p.allowed_models, Some(Vec::new()));
        assert_eq!(parse_policy("{}"), Policy::default());
    }
}
