-- Budgets and rate limits on organizations, teams and keys, as JSON
-- (NULL: none). Spend against them comes from the ledger.
ALTER TABLE orgs ADD COLUMN budget TEXT;
ALTER TABLE orgs ADD COLUMN limits TEXT;
ALTER TABLE teams ADD COLUMN budget TEXT;
ALTER TABLE teams ADD COLUMN limits TEXT;
ALTER TABLE api_keys ADD COLUMN budget TEXT;
ALTER TABLE api_keys ADD COLUMN limits TEXT;
