-- The ledger, partitioned by month: one partition per UTC calendar month of
-- started_at (ms), named ledger_pYYYYMM, and a DEFAULT partition for rows in
-- a month that has no partition yet (the gateway's maintenance task moves
-- them into their month's partition). Old months can then be dropped whole
-- ([ledger] retention_months) while spend_hourly, which reports read for
-- whole hours, keeps every hour.
--
-- A partitioned table's unique index must hold the partition key, so rows
-- are deduplicated on (request_id, started_at): a replayed spool row carries
-- the started_at it was first written with, so a replay still conflicts.
--
-- The upgrade is in place and in this migration's one transaction: the old
-- table is renamed, the partitioned one created with the same columns, a
-- partition made for every month the old rows fall in (and this month and
-- the next), the rows moved, the old table dropped.
ALTER TABLE ledger RENAME TO ledger_unpartitioned;
ALTER TABLE ledger_unpartitioned DROP CONSTRAINT ledger_pkey;
DROP INDEX ledger_started_at, ledger_key_started_at, ledger_team_started_at,
    ledger_client_request_id;

-- The same columns, in the same order, with the same defaults.
CREATE TABLE ledger (LIKE ledger_unpartitioned INCLUDING DEFAULTS)
    PARTITION BY RANGE (started_at);

DO $$
DECLARE
    month TIMESTAMP;
BEGIN
    FOR month IN
        SELECT DISTINCT date_trunc('month', to_timestamp(started_at / 1000.0) AT TIME ZONE 'UTC')
        FROM ledger_unpartitioned
        UNION
        SELECT date_trunc('month', now() AT TIME ZONE 'UTC') + m * INTERVAL '1 month'
        FROM generate_series(0, 1) AS m
    LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF ledger FOR VALUES FROM (%s) TO (%s)',
            'ledger_p' || to_char(month, 'YYYYMM'),
            CAST(EXTRACT(EPOCH FROM month) * 1000 AS BIGINT),
            CAST(EXTRACT(EPOCH FROM month + INTERVAL '1 month') * 1000 AS BIGINT)
        );
    END LOOP;
END
$$;
CREATE TABLE ledger_default PARTITION OF ledger DEFAULT;

INSERT INTO ledger SELECT * FROM ledger_unpartitioned;
DROP TABLE ledger_unpartitioned;

-- Indexes on the parent cascade to every partition, present and future.
ALTER TABLE ledger ADD PRIMARY KEY (request_id, started_at);
CREATE INDEX ledger_started_at ON ledger (started_at);
CREATE INDEX ledger_key_started_at ON ledger (key_id, started_at);
CREATE INDEX ledger_team_started_at ON ledger (team_id, started_at);
CREATE INDEX ledger_client_request_id ON ledger (client_request_id);

-- Retention: rows that started before dropped_before are gone from the raw
-- ledger (their partitions dropped); spend_hourly still counts them. One
-- row. The writer reads it (FOR SHARE) in each batch's transaction and sets
-- aside rows older than it, which it could no longer tell from replays;
-- maintenance raises it (FOR UPDATE) in the transaction that drops.
CREATE TABLE ledger_retention (
    id BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    dropped_before BIGINT NOT NULL
);
INSERT INTO ledger_retention (dropped_before) VALUES (-9223372036854775808);
