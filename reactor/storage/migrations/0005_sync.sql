-- Sync between reactors (reactor/domain/merge.py, workflows/sync.py).

-- This database's reactor: its id names it to peers, which never send back
-- what came from it.
CREATE TABLE reactor_identity (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    reactor_id text NOT NULL DEFAULT replace(gen_random_uuid()::text, '-', ''),
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO reactor_identity DEFAULT VALUES;

-- A load job carries the sender's operations (reactor/domain/sync.py):
-- their positions, hashes and skips, besides the actions in `actions`.
ALTER TABLE reactor_batch_jobs ADD COLUMN load jsonb;

-- One row per channel to a remote reactor. Each channel is the workflow
-- `sync-<name>`; the positions acknowledged on both sides live here, so a
-- restarted workflow goes on where the last one stopped.
CREATE TABLE reactor_sync_channels (
    name            text PRIMARY KEY,
    url             text        NOT NULL,
    token           text,                     -- a JWT the remote accepts
    document_type   text,                     -- filter: one type, or
    document_id     text,                     -- one document, or neither
    remote_id       text,                     -- the remote's reactor id, once known
    pull_tx         xid8        NOT NULL DEFAULT '0',  -- remote position loaded here
    pull_ordinal    bigint      NOT NULL DEFAULT 0,
    push_tx         xid8        NOT NULL DEFAULT '0',  -- local position the remote acknowledged
    push_ordinal    bigint      NOT NULL DEFAULT 0,
    pulled          bigint      NOT NULL DEFAULT 0,    -- operations received, in total
    pushed          bigint      NOT NULL DEFAULT 0,    -- operations sent, in total
    status          text        NOT NULL DEFAULT 'PENDING'
                    CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED')),
    attempts        integer     NOT NULL DEFAULT 0,    -- failed rounds in a row
    last_error      text,
    last_success_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (document_type IS NULL OR document_id IS NULL)
);
