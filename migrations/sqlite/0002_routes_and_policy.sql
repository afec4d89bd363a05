-- Routing: which route the client asked for, which attempt at its request a
-- row is (attempts share client_request_id, the id the client was given),
-- and what the request would have cost on the route's reference model.
ALTER TABLE ledger ADD COLUMN route TEXT NOT NULL DEFAULT '';
ALTER TABLE ledger ADD COLUMN attempt BIGINT NOT NULL DEFAULT 1;
ALTER TABLE ledger ADD COLUMN client_request_id TEXT NOT NULL DEFAULT '';
ALTER TABLE ledger ADD COLUMN reference_model TEXT;
ALTER TABLE ledger ADD COLUMN reference_cost_picousd BIGINT;
UPDATE ledger SET route = requested_model, client_request_id = request_id;
CREATE INDEX ledger_client_request_id ON ledger (client_request_id);

-- The rollup gains the route in its key and the reference cost (the actual
-- cost where a row had no reference, so savings there are zero). SQLite
-- cannot change a primary key in place: the table is rebuilt.
CREATE TABLE spend_hourly_v2 (
    hour BIGINT NOT NULL,
    org_id TEXT NOT NULL,
    team_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    route TEXT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    requests BIGINT NOT NULL,
    input_tokens BIGINT NOT NULL,
    cached_input_tokens BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    reasoning_tokens BIGINT NOT NULL,
    cost_picousd BIGINT NOT NULL,
    reference_cost_picousd BIGINT NOT NULL,
    PRIMARY KEY (hour, org_id, team_id, key_id, route, model, provider)
);
INSERT INTO spend_hourly_v2
SELECT hour, org_id, team_id, key_id, model, model, provider, requests,
       input_tokens, cached_input_tokens, cache_write_tokens, output_tokens,
       reasoning_tokens, cost_picousd, cost_picousd
FROM spend_hourly;
DROP TABLE spend_hourly;
ALTER TABLE spend_hourly_v2 RENAME TO spend_hourly;
CREATE INDEX spend_hourly_team_hour ON spend_hourly (team_id, hour);
CREATE INDEX spend_hourly_key_hour ON spend_hourly (key_id, hour);

-- Policy: which models and providers an organization, a team or a key may
-- use, as JSON. A key's allowed_models moves into its policy.
ALTER TABLE orgs ADD COLUMN policy TEXT NOT NULL DEFAULT '{}';
ALTER TABLE teams ADD COLUMN policy TEXT NOT NULL DEFAULT '{}';
ALTER TABLE api_keys ADD COLUMN policy TEXT NOT NULL DEFAULT '{}';
UPDATE api_keys SET policy = '{"allowed_models":' || allowed_models || '}'
WHERE allowed_models IS NOT NULL;
ALTER TABLE api_keys DROP COLUMN allowed_models;
CREATE INDEX teams_updated_at ON teams (updated_at);
CREATE INDEX orgs_updated_at ON orgs (updated_at);
