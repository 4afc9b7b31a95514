-- A read model whose index_operations keeps failing is blocked after a
-- bounded number of attempts instead of holding every job back forever:
-- catch-up skips it (the other read models go on) and the jobs it has not
-- indexed end WRITE_READY naming it. `reactor read-models unblock NAME`
-- clears the block; the next catch-up retries from where it stopped.
ALTER TABLE reactor_read_model_tracking
    ADD COLUMN attempts      integer NOT NULL DEFAULT 0,  -- failures in a row
    ADD COLUMN last_error    text,
    ADD COLUMN blocked_error text,                        -- set: blocked
    ADD COLUMN blocked_at    timestamptz;
