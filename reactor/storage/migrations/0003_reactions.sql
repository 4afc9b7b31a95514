-- Reactions (processors). Each reaction scans the global log from its feed
-- position and keeps one stream per document with pending work. Workers claim
-- streams with leases (FOR UPDATE SKIP LOCKED), handle the stream's
-- operations in order, and advance the stream's watermark; failures back off
-- and, after N attempts, block only that stream.
CREATE TABLE reactor_reactions (
    name          text PRIMARY KEY,
    feed_tx       xid8   NOT NULL DEFAULT '0',
    feed_ordinal  bigint NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE reactor_reaction_streams (
    name          text   NOT NULL REFERENCES reactor_reactions (name) ON DELETE CASCADE,
    document_id   text   NOT NULL,
    head_tx       xid8   NOT NULL,         -- newest matching operation seen
    head_ordinal  bigint NOT NULL,
    done_tx       xid8   NOT NULL DEFAULT '0',  -- newest operation handled
    done_ordinal  bigint NOT NULL DEFAULT 0,
    attempts      integer NOT NULL DEFAULT 0,
    retry_at      timestamptz,
    blocked       boolean NOT NULL DEFAULT false,
    last_error    text,
    leased_by     text,
    lease_until   timestamptz,
    PRIMARY KEY (name, document_id)
);
CREATE INDEX reactor_reaction_streams_pending ON reactor_reaction_streams (name)
    WHERE NOT blocked AND (head_tx, head_ordinal) > (done_tx, done_ordinal);
