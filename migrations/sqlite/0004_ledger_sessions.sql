-- Sessions: the agent session (task) each request belongs to, as the
-- gateway read it from the request (an explicit x-tollgate-session header,
-- the agents' own headers and body fields); NULL when the request named
-- none. At most 128 printable ASCII characters, never a credential.
ALTER TABLE ledger ADD COLUMN session TEXT;

-- Session reports group the rows of a time range by session (the rollup has
-- no sessions): a range scan over the rows that have one. Partial, so the
-- traffic that names no session costs this index nothing.
CREATE INDEX ledger_started_at_session ON ledger (started_at, session)
    WHERE session IS NOT NULL;
