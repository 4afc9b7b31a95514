-- The operation log, the document view, relationships, keyframes, and the
-- job ledger that makes applying a job idempotent.

CREATE TABLE reactor_documents (
    id            text PRIMARY KEY,
    document_type text        NOT NULL,
    slug          text UNIQUE,
    name          text        NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL,
    modified_at   timestamptz NOT NULL,
    deleted       boolean     NOT NULL DEFAULT false
);
CREATE INDEX reactor_documents_type ON reactor_documents (document_type, id);

-- Append-only. `ordinal` is the global position; `tx_id` (forced before the
-- ordinal is drawn) lets readers see only positions no open transaction can
-- still fill: see reactor/storage/operation_store.py.
CREATE TABLE reactor_operations (
    ordinal     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tx_id       xid8        NOT NULL,
    id          text        NOT NULL UNIQUE,
    document_id text        NOT NULL,
    scope       text        NOT NULL,
    branch      text        NOT NULL,
    idx         integer     NOT NULL,
    skip        integer     NOT NULL DEFAULT 0,
    ts          timestamptz NOT NULL,
    hash        text        NOT NULL,
    action      jsonb       NOT NULL,
    job_id      text,
    CONSTRAINT reactor_operations_position UNIQUE (document_id, scope, branch, idx)
);
CREATE INDEX reactor_operations_visibility ON reactor_operations (tx_id, ordinal);

-- The document view: latest state per (document, scope, branch), written in
-- the same transaction as the operations it reflects.
--
-- States are always written and read whole, so they are json (text, syntax
-- checked), not jsonb, whose binary conversion costs PostgreSQL about twice
-- the CPU per upsert; operators like state->'stats' still work. The view's
-- state is rewritten whole on every job: it is stored out of line but
-- uncompressed (pglz costs CPU on every write; lz4 is not built into every
-- server), and the table holds one row per document scope, so the extra
-- bytes are few. Keyframes, written every N operations and kept, stay
-- compressed.
CREATE TABLE reactor_document_states (
    document_id text    NOT NULL,
    scope       text    NOT NULL,
    branch      text    NOT NULL,
    revision    integer NOT NULL,  -- number of operations applied (next index)
    hash        text    NOT NULL,
    state       json    NOT NULL,
    PRIMARY KEY (document_id, scope, branch)
);
ALTER TABLE reactor_document_states ALTER COLUMN state SET STORAGE EXTERNAL;

-- State after operation `idx`, every N operations.
CREATE TABLE reactor_keyframes (
    document_id text    NOT NULL,
    scope       text    NOT NULL,
    branch      text    NOT NULL,
    idx         integer NOT NULL,
    hash        text    NOT NULL,
    state       json    NOT NULL,
    PRIMARY KEY (document_id, scope, branch, idx)
);

-- Parent/child edges. `source` says which part of the parent owns the edge
-- (its document scope's ADD_RELATIONSHIP, or its model's state, e.g. a
-- drive's file nodes) so each source can be rewritten without touching the
-- other.
CREATE TABLE reactor_relationships (
    parent_id         text NOT NULL,
    child_id          text NOT NULL,
    relationship_type text NOT NULL DEFAULT 'child',
    source            text NOT NULL,
    PRIMARY KEY (parent_id, child_id, relationship_type, source)
);
CREATE INDEX reactor_relationships_child ON reactor_relationships (child_id);

-- Batch payloads travel by reference: the workflow carries only the DAG.
CREATE TABLE reactor_batches (
    batch_id     text PRIMARY KEY,
    request_hash text        NOT NULL,
    job_count    integer     NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE reactor_batch_jobs (
    batch_id      text    NOT NULL REFERENCES reactor_batches (batch_id) ON DELETE CASCADE,
    idx           integer NOT NULL,
    key           text    NOT NULL,
    document_id   text    NOT NULL,
    document_type text    NOT NULL,
    scope         text    NOT NULL,
    branch        text    NOT NULL,
    deps          integer[] NOT NULL,
    after_idx     integer,
    actions       jsonb   NOT NULL,
    PRIMARY KEY (batch_id, idx)
);

-- One row per job whose outcome is decided: a retried activity returns the
-- recorded outcome instead of applying the job again.
CREATE TABLE reactor_applied_jobs (
    job_id      text PRIMARY KEY,
    status      text        NOT NULL CHECK (status IN ('applied', 'failed')),
    coordinates jsonb       NOT NULL DEFAULT '[]',
    error       jsonb,
    applied_by  text,           -- worker identity, for operators
    applied_at  timestamptz NOT NULL DEFAULT now()
);
