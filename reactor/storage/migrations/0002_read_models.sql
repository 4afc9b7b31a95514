-- One row per read model: the last position (tx_id, ordinal) it indexed,
-- written in the same transaction as the read model's own output.
--
-- A read model whose index_operations keeps failing is blocked after a
-- bounded number of attempts instead of holding every job back forever:
-- catch-up skips it (the other read models go on) and the jobs it has not
-- indexed end WRITE_READY naming it. `reactor read-models unblock NAME`
-- clears the block; the next catch-up retries from where it stopped.
CREATE TABLE reactor_read_model_tracking (
    name          text PRIMARY KEY,
    last_tx       xid8   NOT NULL DEFAULT '0',
    last_ordinal  bigint NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    attempts      integer NOT NULL DEFAULT 0,  -- failures in a row
    last_error    text,
    blocked_error text,                        -- set: blocked
    blocked_at    timestamptz
);
