"""Applying one job: one PostgreSQL transaction that takes the lane lock,
appends the operations, updates the document view and records the job, so a
retried activity never applies a job twice and a failed job writes nothing.

Two ways to get there, the same statement at the end:

- **fast** (the usual case in a busy worker): the write cache holds the
  lane's head, so the job is reduced in memory and written in *one* round
  trip, an autocommitted statement that takes the lane lock itself. It is
  optimistic: if the head moved (another process wrote), the job was already
  recorded (a retry), or the document was deleted, the statement fails or
  writes nothing, and the job takes the locked path.
- **locked**: BEGIN, LOCK (advisory lock and xid), READ (ledger, header,
  head revision) under the lock, the same write, COMMIT. Document-scope jobs,
  cold lanes, and any job the fast path turned back.

A job the reducer rejects on the fast path is re-run on the locked path
before it is recorded as failed: the cached head could have been stale.

What fails a job and what retries it: anything the job itself causes and
would cause again (a reducer's error, a state the hash or the database
cannot hold, a value PostgreSQL refuses) ends it FAILED, recorded in the
ledger with nothing else written; a failure of the infrastructure (a lost
connection, a restarting server) propagates, and Temporal retries the
activity (reactor/storage/errors.py tells them apart).

Reduction runs on the event loop: a long job hands it back every
YIELD_EVERY_S of work, so polls, heartbeats and other jobs go on meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

from reactor.application.lane_locks import LaneLocks
from reactor.application.ready_notices import range_fields
from reactor.application.write_cache import CachedState, WriteCache
from reactor.domain.actions import Action
from reactor.domain.batch import PlannedJob
from reactor.domain.document_scope import initial_document_state, reduce_document_scope
from reactor.domain.errors import ReactorError, ReducerError
from reactor.domain.hashing import canonical_json, state_hash
from reactor.domain.ids import uuid5_text
from reactor.domain.jobs import JobError, JobOutcome, OperationSpan, job_id_for, recorded_spans
from reactor.domain.model import DocumentModel, ModelRegistry, ReduceSession
from reactor.domain.signing import SignatureError, SignatureVerifier
from reactor.storage.database import Database
from reactor.storage.document_view import DocumentView
from reactor.storage.errors import is_deterministic, one_line
from reactor.storage.job_ledger import JobLedger
from reactor.storage.job_write import LOCK, READ, JobWrite, write_job
from reactor.storage.notify import CommitNotifier
from reactor.storage.operation_store import OperationStore, Position
from reactor.storage.relationship_index import RelationshipIndex

OPERATION_NAMESPACE = uuid.UUID("6f1d3c1e-7d0a-4a8e-9a55-0c3f0d7e2b10")

# Reduction hands the event loop back after this much CPU time in a row: a
# poll, a heartbeat or another job's commit waits at most about this long.
YIELD_EVERY_S = 0.003


class JobRejected(ReactorError):
    """The job cannot be applied (reducer error, missing document, data the
    hash or PostgreSQL cannot hold...): it fails and writes nothing. Anything
    else raised while applying propagates, and the activity is retried."""

    def __init__(self, error_type: str, message: str):
        # The message is stored as jsonb and text: no NUL, no lone surrogate.
        super().__init__(message.encode("utf-8", "backslashreplace").decode().replace("\0", "\\0"))
        self.error_type = error_type

    @classmethod
    def of_model(cls, exc: Exception, where: str) -> JobRejected:
        """Model code raised: a ReducerError (or another reactor error) says
        what was wrong with the action; anything else is the model's bug."""
        if isinstance(exc, JobRejected):
            return exc
        if isinstance(exc, ReactorError):
            name = "ReducerError" if isinstance(exc, ReducerError) else type(exc).__name__
            return cls(name, f"{where}: {exc}")
        return cls(type(exc).__name__, f"{where}: {exc!r}")

    @classmethod
    def of_serialization(cls, exc: Exception, where: str) -> JobRejected:
        """The state or an action cannot be turned into the JSON that is
        hashed and stored (an int of 2**64 or more, a lone surrogate)."""
        return cls("UnserializableState", f"{where}: {one_line(exc)}")

    @classmethod
    def of_database(cls, exc: Exception) -> JobRejected:
        """PostgreSQL (or asyncpg, encoding an argument) refused the job's
        data; the same write would be refused again."""
        return cls(type(exc).__name__, f"the database refused the job's data: {one_line(exc)}")


@dataclass(slots=True)
class Committed:
    """A decided job. `announced` resolves once the NOTIFY carrying its commit
    was sent (None: nothing to announce)."""

    outcome: JobOutcome
    announced: asyncio.Future[None] | None


@dataclass
class _Head:
    revision: int
    hash: str
    state: dict[str, Any] | None  # None when only the validated model is known
    validated: Any = None  # the state as a validated model, when known


@dataclass(slots=True)
class _NewOp:
    id: str
    index: int
    timestamp: Any
    hash: str
    action: Action


@dataclass
class _Reduced:
    """A job reduced in memory, ready to write."""

    ops: list[_NewOp]
    head: _Head
    state_json: bytes
    keyframes: list[tuple[int, str, bytes]]
    model: DocumentModel | None
    children: list[str] | None  # the model's child edges, when it declares them
    span: OperationSpan  # the job's operations: the outcome's and the ledger's
    # The initial heads of the other scopes a CREATE_DOCUMENT wrote: cached at
    # commit, so the document's first job takes the fast path.
    created: list[tuple[str, CachedState]] = field(default_factory=list)


def operation_id(job_id: str, action: Action, position: int) -> str:
    """Deterministic, so a retried job yields identical operations: the UUID
    version 5 of `job/position/action id` in OPERATION_NAMESPACE."""
    return uuid5_text(_NAMESPACE_BYTES, f"{job_id}/{position}/{action.id}")


_NAMESPACE_BYTES = OPERATION_NAMESPACE.bytes


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
        fast_path: bool = True,
        read_ready_on_commit: bool = False,
    ):
        self.verifier = verifier
        # In-process commit hook (the local path to wake reactions; NOTIFY
        # from this process is filtered out on the listening side).
        self.on_commit = on_commit
        self.identity = identity or f"{socket.gethostname()}:{os.getpid()}"
        # Opt-in: every committed job announced on this channel (None: off).
        self.notify_channel = notify_channel
        self.instance_id = instance_id or uuid.uuid4().hex
        self.notifier = (
            CommitNotifier(db.pool, notify_channel, self.instance_id) if notify_channel else None
        )
        self.db = db
        self.registry = registry
        self.cache = cache if cache is not None else WriteCache()
        self.keyframe_interval = keyframe_interval
        self.fast_path = fast_path
        # True when nothing else stands between a commit and READ_READY (the
        # worker runs no read models): the commit's announcement says so, and
        # a client waiting on the job can stop there instead of waiting for
        # the workflow to hear back (reactor/application/ready_notices.py).
        self.read_ready_on_commit = read_ready_on_commit
        self.lanes = LaneLocks()
        # How jobs were applied (fast: one round trip; fallbacks: fast path
        # turned back to the locked one), for benchmarks and tests.
        self.stats = {"fast": 0, "locked": 0, "fallbacks": 0}

    async def apply(self, batch_id: str, job: PlannedJob) -> JobOutcome:
        """Applies the job and returns once its commit was announced."""
        committed = await self.commit(batch_id, job)
        if committed.announced is not None:
            await committed.announced
        return committed.outcome

    async def commit(self, batch_id: str, job: PlannedJob) -> Committed:
        """Applies the job; returns as soon as it is decided, with the
        announcement of its commit still on its way. The next job on the lane
        need not wait for the NOTIFY (it shares a connection queue with every
        other writer); whoever reports the job done must."""
        job_id = job_id_for(batch_id, job.index)
        lane = (job.document_id, job.scope, job.branch)
        async with self.lanes.hold((job.document_id, job.branch)):
            written: tuple[_Reduced, list[Position]] | None = None
            cached = self.cache.latest(lane) if self._fast_path_for(job) else None
            if cached is not None:
                try:
                    written = await self._apply_fast(job, job_id, cached)
                except BaseException:
                    self.cache.invalidate(lane)  # it may have committed: unknown head
                    raise
                self.stats["fast" if written is not None else "fallbacks"] += 1
                if written is None:
                    self.cache.invalidate(lane)
            if written is None:
                outcome_or_written = await self._apply_locked_path(job, job_id, lane)
                if isinstance(outcome_or_written, JobOutcome):
                    return Committed(outcome_or_written, None)
                written = outcome_or_written
                self.stats["locked"] += 1
            reduced, positions = written
            assert reduced.model is not None
            doc_type = reduced.model.document_type
            head = reduced.head
            self.cache.put(
                lane, CachedState(head.revision, head.hash, head.state, head.validated, doc_type)
            )
            for scope, initial in reduced.created:
                self.cache.put((job.document_id, scope, job.branch), initial)
        announced: asyncio.Future[None] | None = None
        if self.on_commit is not None or self.notifier is not None:
            payload: dict[str, Any] = {
                "document_id": job.document_id,
                "document_type": doc_type,
                "job_id": job_id,
                "key": job.key,
                "branch": job.branch,
                "events": [
                    {
                        "ordinal": p.ordinal,
                        "type": o.action.type,
                        "scope": job.scope,
                        "index": o.index,
                    }
                    for o, p in zip(reduced.ops, positions, strict=True)
                ],
            }
            if self.read_ready_on_commit:
                payload["read_ready"] = True
            if self.on_commit is not None:
                self.on_commit(payload)
            if self.notifier is not None:
                announced = self.notifier.announce(
                    payload, oversize=lambda: commit_range(payload, reduced.span)
                )
        outcome = JobOutcome(
            index=job.index,
            ok=True,
            coordinates=[reduced.span],
            last_position=(positions[-1].tx_id, positions[-1].ordinal),
        )
        return Committed(outcome, announced)

    def _fast_path_for(self, job: PlannedJob) -> bool:
        return self.fast_path and job.scope != "document"

    async def _apply_fast(
        self, job: PlannedJob, job_id: str, cached: CachedState
    ) -> tuple[_Reduced, list[Position]] | None:
        """One round trip from the cached head, or None: take the locked path."""
        if cached.document_type is None or cached.document_type not in self.registry:
            return None
        model = self.registry.get(cached.document_type)
        head = _Head(cached.revision, cached.hash, cached.state, cached.model)
        try:
            reduced = await self._reduce(None, job, job_id, head, model)
        except JobRejected:
            return None  # confirm against the real head, under the lock
        async with self.db.pool.acquire() as conn:
            try:
                positions = await self._write(conn, job, job_id, reduced)
            except asyncpg.UniqueViolationError:
                return None  # the head moved, or the job was already recorded
            except JobRejected:
                return None  # recorded as failed under the lock, unless already decided
            except Exception as exc:
                if is_deterministic(exc):
                    return None  # likewise
                raise
        if positions is None:
            return None  # the document is gone or deleted
        return reduced, positions

    async def _apply_locked_path(
        self, job: PlannedJob, job_id: str, lane: tuple[str, str, str]
    ) -> JobOutcome | tuple[_Reduced, list[Position]]:
        async with self.db.pool.acquire() as conn:
            try:
                return await self._locked_transaction(conn, job, job_id)
            except JobRejected as exc:
                rejected = exc
            except Exception as exc:
                if not is_deterministic(exc):
                    self.cache.invalidate(lane)
                    raise
                rejected = JobRejected.of_database(exc)
            except BaseException:
                self.cache.invalidate(lane)
                raise
            # The transaction was rolled back: nothing of the job is written.
            self.cache.invalidate(lane)
            return await self._record_failure(conn, job, job_id, rejected)

    async def _locked_transaction(
        self, conn: asyncpg.Connection, job: PlannedJob, job_id: str
    ) -> JobOutcome | tuple[_Reduced, list[Position]]:
        async with conn.transaction():
            await conn.execute(LOCK, f"{job.document_id}/{job.branch}")
            row = await conn.fetchrow(READ, job_id, job.document_id, job.scope, job.branch)
            assert row is not None
            if row["status"] is not None:
                return await _outcome_from_ledger(conn, job.index, row)
            reduced = await self._apply_locked(conn, job, job_id, row)
            positions = await self._write(conn, job, job_id, reduced)
            if positions is None:  # checked under this lock: cannot happen
                raise RuntimeError(f"job {job_id}: the write's guard failed under the lock")
            if job.scope == "document":
                children = (reduced.head.state or {}).get("children", [])
                await RelationshipIndex.replace_source(conn, job.document_id, "document", children)
            if reduced.model is None:  # a document-scope job that did not create it
                raise JobRejected(
                    "DocumentNotFound", f"document {job.document_id!r} does not exist"
                )
        return reduced, positions

    async def give_up(
        self, batch_id: str, job: PlannedJob, error_type: str, message: str
    ) -> JobOutcome:
        """Ends a job that kept raising (not an infrastructure failure) as
        FAILED, unless an attempt decided it meanwhile: then that decision."""
        lane = (job.document_id, job.scope, job.branch)
        async with self.lanes.hold((job.document_id, job.branch)):
            self.cache.invalidate(lane)
            async with self.db.pool.acquire() as conn:
                return await self._record_failure(
                    conn, job, job_id_for(batch_id, job.index), JobRejected(error_type, message)
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
    ) -> _Reduced:
        model: DocumentModel | None = None
        if job.scope != "document":
            if row["document_type"] is None:
                raise JobRejected(
                    "DocumentNotFound", f"document {job.document_id!r} does not exist"
                )
            if row["deleted"]:
                raise JobRejected("DocumentDeleted", f"document {job.document_id!r} is deleted")
            model = self._model(row["document_type"])
        elif row["document_type"] is not None:
            model = self._model(row["document_type"])
        head = await self._load_head(conn, job, model, row["revision"], row["hash"])
        return await self._reduce(conn, job, job_id, head, model)

    async def _reduce(
        self,
        conn: asyncpg.Connection | None,
        job: PlannedJob,
        job_id: str,
        head: _Head,
        model: DocumentModel | None,
    ) -> _Reduced:
        """The job's operations, hashes and new head. Only document-scope jobs
        touch the database here (header side effects), through `conn`."""
        ops: list[_NewOp] = []
        keyframes: list[tuple[int, str, bytes]] = []
        created: list[tuple[str, CachedState]] = []
        previous_hash = head.hash
        doc_state = head.state
        session: ReduceSession | None = None
        if job.scope != "document":
            assert model is not None
            session = model.session(job.scope, head.state, head.validated)
        slice_started = time.perf_counter()
        for position, action in enumerate(job.actions):
            index = head.revision + position
            where = f"actions[{position}] {action.type}"
            if self.verifier is not None:
                try:
                    self.verifier.verify(action, job.document_id, previous_hash)
                except SignatureError as exc:
                    raise JobRejected("SignatureError", f"actions[{position}] {exc}") from exc
            try:
                if session is None:
                    assert doc_state is not None
                    doc_state = reduce_document_scope(doc_state, action)
                else:
                    # Inputs were validated and normalized when the batch was
                    # planned; reducers parse what they use.
                    session.apply(action)
            except Exception as exc:  # a user reducer's bug fails the job, not the worker
                raise JobRejected.of_model(exc, where) from exc
            try:
                digest = previous_hash = (
                    session.digest() if session is not None else state_hash(doc_state)
                )
                snapshot = None
                if (index + 1) % self.keyframe_interval == 0:
                    snapshot = (
                        session.state_json() if session is not None else orjson.dumps(doc_state)
                    )
            except Exception as exc:
                raise JobRejected.of_serialization(exc, where) from exc
            ops.append(
                _NewOp(
                    operation_id(job_id, action, position), index, action.timestamp, digest, action
                )
            )
            if snapshot is not None:
                keyframes.append((index, digest, snapshot))
            if session is None:
                assert conn is not None and doc_state is not None
                model = await self._document_side_effects(
                    conn, job, action, doc_state, model, created
                )
            elif time.perf_counter() - slice_started >= YIELD_EVERY_S:
                await asyncio.sleep(0)  # let the rest of the worker run
                slice_started = time.perf_counter()

        children: list[str] | None = None
        try:
            state_json = session.state_json() if session is not None else orjson.dumps(doc_state)
        except Exception as exc:
            raise JobRejected.of_serialization(exc, "the job's resulting state") from exc
        if session is not None:
            assert model is not None
            new_head = _Head(head.revision + len(ops), previous_hash, None, session.validated)
            if job.scope == "global" and model.children_of is not None:
                try:
                    children = sorted(model.children_of_model(session.validated))
                except Exception as exc:
                    raise JobRejected.of_model(exc, f"{model.document_type} children") from exc
        else:
            new_head = _Head(head.revision + len(ops), previous_hash, doc_state)
        span = OperationSpan(
            document_id=job.document_id,
            scope=job.scope,
            branch=job.branch,
            operation_index=head.revision,
            count=len(ops),
        )
        return _Reduced(ops, new_head, state_json, keyframes, model, children, span, created)

    async def _write(
        self, conn: asyncpg.Connection, job: PlannedJob, job_id: str, reduced: _Reduced
    ) -> list[Position] | None:
        """One statement (reactor/storage/job_write.py); None when its guard
        stopped it (the document is missing or deleted)."""
        ops = reduced.ops
        rename = [a for a in job.actions if a.type == "SET_NAME"]
        try:
            actions = [o.action.model_dump_json() for o in ops]
            keyframes = [(i, h, js.decode()) for i, h, js in reduced.keyframes]
            state = reduced.state_json.decode()
        except Exception as exc:
            raise JobRejected.of_serialization(exc, "the job's actions") from exc
        return await write_job(
            conn,
            JobWrite(
                document_id=job.document_id,
                scope=job.scope,
                branch=job.branch,
                job_id=job_id,
                op_ids=[o.id for o in ops],
                op_indices=[o.index for o in ops],
                op_timestamps=[o.timestamp for o in ops],
                op_hashes=[o.hash for o in ops],
                op_actions=actions,
                revision=reduced.head.revision,
                hash=reduced.head.hash,
                state=state,
                modified_at=job.actions[-1].timestamp,
                rename=rename[-1].input["name"] if rename and job.scope != "document" else None,
                header=job.scope != "document",
                coordinates=canonical_json([reduced.span.model_dump()]),
                applied_by=self.identity,
                lock_key=f"{job.document_id}/{job.branch}",
                keyframes=keyframes,
                children=reduced.children,
            ),
        )

    async def _document_side_effects(
        self,
        conn: asyncpg.Connection,
        job: PlannedJob,
        action: Action,
        state: dict[str, Any],
        model: DocumentModel | None,
        created: list[tuple[str, CachedState]],
    ) -> DocumentModel | None:
        """Document-scope actions also change the header (and CREATE sets up
        the other scopes' initial states, adding their heads to `created`)."""
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
                initial, digest = _initial(model, scope)
                await DocumentView.put_state(
                    conn, job.document_id, scope, job.branch, 0, digest, initial
                )
                created.append((scope, CachedState(0, digest, initial, None, model.document_type)))
        else:
            if action.type == "DELETE_DOCUMENT":
                await _refuse_delete_under_children(conn, job.document_id, state)
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
                return _Head(0, state_hash(initial), initial)
            assert model is not None
            initial, digest = _initial(model, job.scope)
            return _Head(0, digest, initial)
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


def commit_range(payload: dict[str, Any], span: OperationSpan) -> dict[str, Any]:
    """A commit announcement too big for a NOTIFY (a job of more than about
    a hundred operations), shortened: its operations as a range of the log
    and the set of their action types instead of one event each. Readers
    that want the operations read the range; routers need only the types."""
    short = {k: v for k, v in payload.items() if k != "events"}
    short.update(range_fields(span), types=sorted({e["type"] for e in payload["events"]}))
    return short


async def _outcome_from_ledger(
    conn: asyncpg.Connection, index: int, row: asyncpg.Record
) -> JobOutcome:
    if row["status"] == "applied":
        spans = recorded_spans(row["coordinates"])
        last = spans[-1]
        pos = await OperationStore.position_of(
            conn, last.document_id, last.scope, last.branch, last.last_index
        )
        return JobOutcome(
            index=index,
            ok=True,
            coordinates=spans,
            last_position=(pos.tx_id, pos.ordinal) if pos else None,
        )
    return JobOutcome(index=index, ok=False, error=JobError.model_validate(row["error"]))


def _initial(model: DocumentModel, scope: str) -> tuple[dict[str, Any], str]:
    """A scope's initial state and its hash: model code, so a failure fails the job."""
    try:
        initial = model.initial_state(scope)
    except Exception as exc:
        raise JobRejected.of_model(exc, f"{model.document_type} initial {scope} state") from exc
    try:
        return initial, state_hash(initial)
    except Exception as exc:
        where = f"{model.document_type} initial {scope} state"
        raise JobRejected.of_serialization(exc, where) from exc


async def _refuse_delete_under_children(
    conn: asyncpg.Connection, document_id: str, state: dict[str, Any]
) -> None:
    """A parent is never deleted under its children. Validation counts the
    edges it can see and the batch's ADD_RELATIONSHIPs, and the document
    scope's reducer its explicit children; neither sees a child another
    scope's model added since (a drive's ADD_FILE earlier in the batch, or in
    a concurrent one). Those edges are written by jobs on this document's
    lane, whose lock is held here, so the count is current."""
    count = await RelationshipIndex.count_at_delete(conn, document_id, state.get("children", []))
    if count:
        raise JobRejected(
            "HasChildren",
            f"DELETE_DOCUMENT: document {document_id!r} has {count} "
            f"child{'ren' if count != 1 else ''} (remove them first: REMOVE_RELATIONSHIP, or "
            "the model's own actions for the children its state holds)",
        )
