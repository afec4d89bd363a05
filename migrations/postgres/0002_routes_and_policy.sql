-- Routing: which route the client asked for, which attempt at its request a
-- row is (attempts share client_request_id, the id the client was given),
-- and what the request would have cost on the route's reference model.
ALTER TABLE ledger
    ADD COLUMN route TEXT NOT NULL DEFAULT '',
    ADD COLUMN attempt BIGINT NOT NULL DEFAULT 1,
    ADD COLUMN client_request_id TEXT NOT NULL DEFAULT '',
    ADD COLUMN reference_model TEXT,
    ADD COLUMN reference_cost_picousd BIGINT;
UPDATE ledger SET route = requested_model, client_request_id = request_id;
CREATE INDEX ledger_client_request_id ON ledger (client_request_id);

-- The rollup gains the route in its key and the reference cost (the actual
-- cost where a row had no reference, so savings there are zero).
ALTER TABLE spend_hourly
    ADD COLUMN route TEXT NOT NULL DEFAULT '',
    ADD COLUMN reference_cost_picousd BIGINT NOT NULL DEFAULT 0;
UPDATE spend_hourly SET route = model, reference_cost_picousd = cost_picousd;
ALTER TABLE spend_hourly
    DROP CONSTRAINT spend_hourly_pkey,
    ADD PRIMARY KEY (hour, org_id, team_id, key_id, route, model, provider);

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
