-- States are always written and read whole: store them as json (text,
-- syntax-checked) instead of jsonb, whose binary conversion cost PostgreSQL
-- ~480 us of CPU per 20 kB state upsert against ~265 us (measured here,
-- bench notes in bench/RESULTS.md). Operators like state->'stats' still work.
ALTER TABLE reactor_document_states ALTER COLUMN state TYPE json USING state::json;
ALTER TABLE reactor_keyframes ALTER COLUMN state TYPE json USING state::json;
