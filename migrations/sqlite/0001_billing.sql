-- Tenancy: organizations, their teams, and the teams' virtual keys.
-- Times are milliseconds since the Unix epoch (UTC); ids are UUIDv7 text.
CREATE TABLE orgs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE teams (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    name TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (org_id, name)
);

-- Only a SHA-256 hash of each secret and a short display prefix are kept.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    team_id TEXT NOT NULL REFERENCES teams (id),
    name TEXT,
    key_hash TEXT NOT NULL UNIQUE,
    key_prefix TEXT NOT NULL,
    allowed_models TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    expires_at BIGINT,
    revoked_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX api_keys_team ON api_keys (team_id);
CREATE INDEX api_keys_updated_at ON api_keys (updated_at);

-- One row per request Tollgate accepted. Cost is in picodollars (1e-12 USD).
-- Flags are 0/1. org, team and key are NULL for master-key traffic.
CREATE TABLE ledger (
    request_id TEXT PRIMARY KEY,
    started_at BIGINT NOT NULL,
    org_id TEXT,
    team_id TEXT,
    key_id TEXT,
    client_format TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    requested_model TEXT NOT NULL,
    provider TEXT NOT NULL,
    upstream_model TEXT NOT NULL,
    status BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    input_tokens BIGINT NOT NULL,
    cached_input_tokens BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    reasoning_tokens BIGINT NOT NULL,
    cost_picousd BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,
    ttft_ms BIGINT,
    stream BIGINT NOT NULL,
    usage_estimated BIGINT NOT NULL,
    priced BIGINT NOT NULL
);
CREATE INDEX ledger_started_at ON ledger (started_at);
CREATE INDEX ledger_key_started_at ON ledger (key_id, started_at);
CREATE INDEX ledger_team_started_at ON ledger (team_id, started_at);

-- The hourly rollup, updated in the same transaction as the rows it counts.
-- '' stands for "none" (master-key traffic) in org, team and key.
CREATE TABLE spend_hourly (
    hour BIGINT NOT NULL,
    org_id TEXT NOT NULL,
    team_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    requests BIGINT NOT NULL,
    input_tokens BIGINT NOT NULL,
    cached_input_tokens BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    reasoning_tokens BIGINT NOT NULL,
    cost_picousd BIGINT NOT NULL,
    PRIMARY KEY (hour, org_id, team_id, key_id, model, provider)
);
CREATE INDEX spend_hourly_team_hour ON spend_hourly (team_id, hour);
CREATE INDEX spend_hourly_key_hour ON spend_hourly (key_id, hour);
