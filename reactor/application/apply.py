"""Applying one job: one PostgreSQL transaction that takes the lane lock,
loads head state, reduces, appends operations, updates the document view and
records the job, so a retried activity never applies a job twice and a failed
job writes nothing."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from reactor.application.write_cache import CachedState, WriteCache
from reactor.domain.actions import Action
from reactor.domain.batch import PlannedJob
from reactor.domain.document import Operation
from reactor.domain.document_scope import initial_document_state, reduce_document_scope
from reactor.domain.errors import ReactorError, ReducerError
from reactor.domain.hashing import canonical_json, state_hash
from reactor.domain.jobs import Coordinate, JobError, JobOutcome, job_id_for
from reactor.domain.model import DocumentModel, ModelRegistry, ReduceSession
from reactor.domain.signing import SignatureError, SignatureVerifier
from reactor.storage.database import Database
from reactor.storage.document_view import DocumentView
from reactor.storage.job_ledger import JobLedger
from reactor.storage.keyframe_store import KeyframeStore
from reactor.storage.notify import MAX_PAYLOAD
from reactor.storage.operation_store import OperationStore, Position
from reactor.storage.relationship_index import RelationshipIndex

OPERATION_NAMESPACE = uuid.UUID("6f1d3c1e-7d0a-4a8e-9a55-0c3f0d7e2b10")

# One job is five round trips: BEGIN, LOCK, READ, WRITE, COMMIT (plus a few
# statements on rare paths: document scope, keyframes, relationships).

# The lane lock, then the xid: taken before any ordinal is drawn (see
# reactor/storage/operation_store.py on the visibility gap).
LOCK = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0)), pg_current_xact_id()"

# Under the lock (a new statement, so a new snapshot): the ledger, the
# header and the head revision in one row.
READ = """
SELECT l.status, l.coordinates, l.error, d.document_type, d.deleted, s.revision, s.hash
FROM (SELECT 1) AS one
LEFT JOIN reactor_applied_jobs l ON l.job_id = $1
LEFT JOIN reactor_documents d ON d.id = $2
LEFT JOIN reactor_document_states s ON s.document_id = $2 AND s.scope = $3 AND s.branch = $4
"""

# Operations, document view, header, ledger and the NOTIFY in one statement
# (no NOTIFY when its payload would exceed PostgreSQL's limit: polling covers it).
WRITE = f"""
WITH ins AS (
    INSERT INTO reactor_operations
        (tx_id, id, document_id, scope, branch, idx, skip, ts, hash, action, job_id)
    SELECT pg_current_xact_id(), o.id, $1, $2, $3, o.idx, 0, o.ts, o.hash, o.action::jsonb, $4
    FROM unnest($5::text[], $6::int[], $7::timestamptz[], $8::text[], $9::text[])
         AS o(id, idx, ts, hash, action)
    ORDER BY o.idx
    RETURNING tx_id::text::bigint AS tx, ordinal, idx, action->>'type' AS type
), st AS (
    INSERT INTO reactor_document_states (document_id, scope, branch, revision, hash, state)
    VALUES ($1, $2, $3, $10, $11, $12::text::json)
    ON CONFLICT (document_id, scope, branch)
    DO UPDATE SET revision = EXCLUDED.revision, hash = EXCLUDED.hash, state = EXCLUDED.state
), hdr AS (
    UPDATE reactor_documents SET modified_at = greatest(modified_at, $13), name = coalesce($14, name)
    WHERE id = $1 AND $15
), led AS (
    INSERT INTO reactor_applied_jobs (job_id, status, coordinates, error, applied_by)
    VALUES ($4, 'applied', $16::text::jsonb, NULL, $17)
)
SELECT array_agg(tx ORDER BY ordinal) AS txs, array_agg(ordinal ORDER BY ordinal) AS ordinals,
       (SELECT pg_notify($18, n.p) FROM (
            SELECT json_build_object(
                'by', $19::text, 'document_id', $1::text, 'document_type', $20::text,
                'job_id', $4::text,
                'events', json_agg(json_build_object('ordinal', ordinal, 'type', type,
                                                     'scope', $2::text, 'index', idx)
                                   ORDER BY ordinal))::text AS p
            FROM ins) n
        WHERE $18::text IS NOT NULL AND octet_length(n.p) < {MAX_PAYLOAD}) AS notified
FROM ins
"""


class JobRejected(ReactorError):
    """The job cannot be applied (reducer error, missing document...): it fails
    and writes nothing. Anything else raised while applying is an
    infrastructure error and makes the activity retry."""

    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type


@dataclass
class _Head:
    revision: int
    hash: str
    state: dict[str, Any]
    validated: Any = None  # the state as a validated model, when known


def _coordinate(op: Operation) -> Coordinate:
    return Coordinate(
        document_id=op.document_id, scope=op.scope, branch=op.branch, operation_index=op.index
    )


def operation_id(job_id: str, action: Action, position: int) -> str:
    """Deterministic, so a retried job yields identical operations."""
    return str(uuid.uuid5(OPERATION_NAMESPACE, f"{job_id}/{position}/{action.id}"))


class JobApplier:
    def __init__(
        self,
        db: Database,
        registry: ModelRegistry,
        *,
        cache: WriteCache | None = None,
        keyframe_interval: int = 100,
        identity: str | None = None,
        notify_channel: str | None = None,
        instance_id: str | None = None,
        verifier: SignatureVerifier | None = None,
        on_commit: Callable[[dict[str, Any]], None] | None = None,
    ):
        self.verifier = verifier
        # In-process commit hook (the local path to wake reactions; NOTIFY
        # from this process is filtered out on the listening side).
        self.on_commit = on_commit
        self.identity = identity or f"{socket.gethostname()}:{os.getpid()}"
        # Opt-in: one NOTIFY per committed job on this channel (None: off).
        self.notify_channel = notify_channel
        self.instance_id = instance_id or uuid.uuid4().hex
        self.db = db
        self.registry = registry
        self.cache = cache if cache is not None else WriteCache()
        self.keyframe_interval = keyframe_interval

    async def apply(self, batch_id: str, job: PlannedJob) -> JobOutcome:
        job_id = job_id_for(batch_id, job.index)
        lane = (job.document_id, job.scope, job.branch)
        async with self.db.pool.acquire() as conn:
            try:
                async with conn.transaction():
                    await conn.execute(LOCK, f"{job.document_id}/{job.branch}")
                    row = await conn.fetchrow(READ, job_id, job.document_id, job.scope, job.branch)
                    assert row is not None
                    if row["status"] is not None:
                        return await _outcome_from_ledger(conn, job.index, row)
                    applied = await self._apply_locked(conn, job, job_id, row)
            except JobRejected as rejected:
                self.cache.invalidate(lane)
                return await self._record_failure(conn, job, job_id, rejected)
            except BaseException:
                self.cache.invalidate(lane)
                raise
        head, ops, doc_type, last_pos = applied
        self.cache.put(lane, CachedState(head.revision, head.hash, head.state, head.validated))
        if self.on_commit is not None:
            self.on_commit(
                {
                    "document_id": job.document_id,
                    "document_type": doc_type,
                    "job_id": job_id,
                    "events": [{"ordinal": o.ordinal, "type": o.action.type} for o in ops],
                }
            )
        return JobOutcome(
            index=job.index,
            ok=True,
            coordinates=[_coordinate(o) for o in ops],
            last_position=(last_pos.tx_id, last_pos.ordinal),
        )

    async def _record_failure(
        self, conn: asyncpg.Connection, job: PlannedJob, job_id: str, rejected: JobRejected
    ) -> JobOutcome:
        error = JobError(type=rejected.error_type, message=str(rejected))
        async with conn.transaction():
            if not await JobLedger.record(
                conn, job_id, "failed", [], error.model_dump(), self.identity
            ):
                decided = await JobLedger.decided(conn, job_id)
                assert decided is not None
                return await _outcome_from_ledger(conn, job.index, decided)
        return JobOutcome(index=job.index, ok=False, error=error)

    async def _apply_locked(
        self, conn: asyncpg.Connection, job: PlannedJob, job_id: str, row: asyncpg.Record
    ) -> tuple[_Head, list[Operation], str, Position]:
        model: DocumentModel | None = None
        if job.scope != "document":
            if row["document_type"] is None:
                raise JobRejected("DocumentNotFound", f"document {job.document_id!r} does not exist")
            if row["deleted"]:
                raise JobRejected("DocumentDeleted", f"document {job.document_id!r} is deleted")
            model = self._model(row["document_type"])
        elif row["document_type"] is not None:
            model = self._model(row["document_type"])

        head = await self._load_head(conn, job, model, row["revision"], row["hash"])
        ops: list[Operation] = []
        state = head.state
        keyframes: list[tuple[int, str, dict[str, Any]]] = []
        previous_hash = head.hash
        session: ReduceSession | None = None
        for position, action in enumerate(job.actions):
            index = head.revision + position
            if self.verifier is not None:
                try:
                    self.verifier.verify(action, job.document_id, previous_hash)
                except SignatureError as exc:
                    raise JobRejected("SignatureError", f"actions[{position}] {exc}") from exc
            try:
                if job.scope == "document":
                    state = reduce_document_scope(state, action)
                else:
                    assert model is not None
                    if session is None:
                        session = model.session(job.scope, state, head.validated)
                    # Inputs were validated and normalized when the batch was
                    # planned; reducers parse what they use.
                    state = session.apply(action)
            except ReactorError as exc:
                raise JobRejected(
                    "ReducerError" if isinstance(exc, ReducerError) else type(exc).__name__,
                    f"actions[{position}] {action.type}: {exc}",
                ) from exc
            except Exception as exc:  # a user reducer's bug fails the job, not the worker
                raise JobRejected(
                    type(exc).__name__, f"actions[{position}] {action.type}: {exc!r}"
                ) from exc
            digest = previous_hash = state_hash(state)
            ops.append(
                Operation(
                    id=operation_id(job_id, action, position),
                    index=index,
                    timestamp=action.timestamp,
                    hash=digest,
                    action=action,
                    document_id=job.document_id,
                    scope=job.scope,
                    branch=job.branch,
                    job_id=job_id,
                )
            )
            if (index + 1) % self.keyframe_interval == 0:
                keyframes.append((index, digest, state))
            model = await self._document_side_effects(conn, job, action, state, model)

        new_head = _Head(
            head.revision + len(ops),
            ops[-1].hash,
            state,
            session.validated if session is not None else None,
        )
        last = job.actions[-1]
        rename = [a for a in job.actions if a.type == "SET_NAME"]
        assert model is not None or job.scope == "document"
        doc_type = model.document_type if model is not None else ""
        written = await conn.fetchrow(
            WRITE,
            job.document_id,
            job.scope,
            job.branch,
            job_id,
            [o.id for o in ops],
            [o.index for o in ops],
            [o.timestamp for o in ops],
            [o.hash for o in ops],
            [o.action.model_dump_json() for o in ops],
            new_head.revision,
            new_head.hash,
            orjson.dumps(state).decode(),  # the model's field order; hashes sort keys
            last.timestamp,
            rename[-1].input["name"] if rename and job.scope != "document" else None,
            job.scope != "document",
            canonical_json([_coordinate(o).model_dump() for o in ops]),
            self.identity,
            self.notify_channel,
            self.instance_id,
            doc_type,
        )
        assert written is not None
        positions = [Position(t, o) for t, o in zip(written["txs"], written["ordinals"], strict=True)]
        for op, pos in zip(ops, positions, strict=True):
            op.ordinal = pos.ordinal
        for index, digest, snapshot in keyframes:
            await KeyframeStore.put(
                conn, job.document_id, job.scope, job.branch, index, digest, snapshot
            )
        if job.scope == "document":
            await RelationshipIndex.replace_source(
                conn, job.document_id, "document", state.get("children", [])
            )
        elif job.scope == "global":
            assert model is not None
            children = model.children(state)
            if children is not None:
                await RelationshipIndex.replace_source(conn, job.document_id, "model", children)
        if model is None:  # a document-scope job that did not create the document
            raise JobRejected("DocumentNotFound", f"document {job.document_id!r} does not exist")
        return new_head, ops, model.document_type, positions[-1]

    async def _document_side_effects(
        self,
        conn: asyncpg.Connection,
        job: PlannedJob,
        action: Action,
        state: dict[str, Any],
        model: DocumentModel | None,
    ) -> DocumentModel | None:
        """Document-scope actions also change the header (and CREATE sets up
        the other scopes' initial states)."""
        if job.scope != "document":
            return model
        if action.type == "CREATE_DOCUMENT":
            model = self._model(state["document_type"])
            try:
                await DocumentView.create_header(
                    conn,
                    job.document_id,
                    state["document_type"],
                    state["slug"],
                    state["name"],
                    action.timestamp,
                )
            except asyncpg.UniqueViolationError as exc:
                if "slug" in (exc.constraint_name or ""):
                    raise JobRejected(
                        "SlugTaken", f"slug {state['slug']!r} is already used by another document"
                    ) from exc
                raise
            for scope in ("global", "local"):
                initial = model.initial_state(scope)
                await DocumentView.put_state(
                    conn, job.document_id, scope, job.branch, 0, state_hash(initial), initial
                )
        else:
            await DocumentView.update_header(
                conn,
                job.document_id,
                action.timestamp,
                name=state["name"] if action.type == "SET_NAME" else None,
                deleted=True if action.type == "DELETE_DOCUMENT" else None,
            )
        return model

    async def _load_head(
        self,
        conn: asyncpg.Connection,
        job: PlannedJob,
        model: DocumentModel | None,
        revision: int | None,
        digest: str | None,
    ) -> _Head:
        """Head state under the lock: the write cache if it is at the current
        revision, else the document view (written in the same transaction as
        the operations, so it is the newest keyframe there is)."""
        if revision is None or digest is None:
            if job.scope == "document":
                initial = initial_document_state()
            else:
                assert model is not None
                initial = model.initial_state(job.scope)
            return _Head(0, state_hash(initial), initial)
        cached = self.cache.get((job.document_id, job.scope, job.branch), revision)
        if cached is not None:
            return _Head(revision, cached.hash, cached.state, cached.model)
        state = await DocumentView.head_state(conn, job.document_id, job.scope, job.branch)
        assert state is not None  # its row was read under this lock
        return _Head(revision, digest, state)

    def _model(self, document_type: str) -> DocumentModel:
        if document_type not in self.registry:
            raise JobRejected(
                "UnknownDocumentType",
                f"no document model registered for {document_type!r} on this worker",
            )
        return self.registry.get(document_type)


async def _outcome_from_ledger(
    conn: asyncpg.Connection, index: int, row: asyncpg.Record
) -> JobOutcome:
    if row["status"] == "applied":
        coords = [Coordinate.model_validate(c) for c in row["coordinates"]]
        last = coords[-1]
        pos = await OperationStore.position_of(
            conn, last.document_id, last.scope, last.branch, last.operation_index
        )
        return JobOutcome(
            index=index,
            ok=True,
            coordinates=coords,
            last_position=(pos.tx_id, pos.ordinal) if pos else None,
        )
    return JobOutcome(index=index, ok=False, error=JobError.model_validate(row["error"]))
