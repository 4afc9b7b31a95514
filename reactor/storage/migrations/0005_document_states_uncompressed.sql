-- The document view's state is rewritten on every job, whole. PostgreSQL
-- compresses TOASTed values with pglz by default, which cost it ~150 us of
-- CPU per 20 kB state write here (725 vs 528 us per upsert transaction,
-- bench notes in bench/RESULTS.md); lz4 is not built into every server.
-- Store it out of line but uncompressed: the table holds one row per
-- document scope, so the extra bytes are few; keyframes (written every N
-- operations and kept) stay compressed.
ALTER TABLE reactor_document_states ALTER COLUMN state SET STORAGE EXTERNAL;
