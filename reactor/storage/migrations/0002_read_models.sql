-- One row per read model: the last position (tx_id, ordinal) it indexed,
-- written in the same transaction as the read model's own output.
CREATE TABLE reactor_read_model_tracking (
    name        text PRIMARY KEY,
    last_tx     xid8   NOT NULL DEFAULT '0',
    last_ordinal bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
