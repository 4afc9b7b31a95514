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
ledger with nothing else written (reactor/domain/rejection.py); a failure
of the infrastructure (a lost connection, a restarting server) propagates,
and Temporal retries the activity (reactor/storage/errors.py tells them
apart).

Reduction itself is pure (reactor/domain/reduction.py); this module writes
what it returns. It runs on the event loop, an action at a time: a long job
hands the loop back every YIELD_EVERY_S of work, so polls, heartbeats and
other jobs go on meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from reactor.application.header_writes import write_header_change
from reactor.application.lane_locks import LaneLocks
from reactor.application.ready_notices import range_fields
from reactor.application.write_cache import CachedState, WriteCache
from reactor.domain.batch import PlannedJob
from reactor.domain.document import Operation
from reactor.domain.hashing import canonical_json
from reactor.domain.history import HISTORY_ACTIONS
from reactor.domain.jobs import JobError, JobOutcome, OperationSpan, job_id_for, recorded_spans
from reactor.domain.loading import reduce_load
from reactor.domain.merge import DEFAULT_MAX_REWIND
from reactor.domain.model import DocumentModel, ModelRegistry
from reactor.domain.reduction import (
    Head,
    Reduced,
    Reduction,
    ScopeCreated,
    ScopeUpgraded,
    initial_head,
    model_for,
    needs_history,
)
from reactor.domain.rejection import JobRejected
from reactor.domain.signing import SignatureVerifier
from reactor.domain.upgrades import action_version
from reactor.storage.database import Database
from reactor.storage.document_view import DocumentView
from reactor.storage.errors import is_deterministic
from reactor.storage.job_ledger import JobLedger
from reactor.storage.job_write import LOCK, READ, JobWrite, write_job
from reactor.storage.notify import CommitNotifier
from reactor.storage.operation_store import OperationStore, Position
from reactor.storage.relationship_index import RelationshipIndex

# Reduction hands the event loop back after this much CPU time in a row: a
# poll, a heartbeat or another job's commit waits at most about this long.
YIELD_EVERY_S = 0.003


@dataclass(slots=True)
class Committed:
    """A decided job. `announced` resolves once the NOTIFY carrying its commit
    was sent (None: nothing to announce)."""

    outcome: JobOutcome
    announced: asyncio.Future[None] | None


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
        max_rewind: int = DEFAULT_MAX_REWIND,
    ):
        # A load that would rewind more local operations than this fails
        # (ExcessiveReshuffleError) instead of rewriting a long tail.
        self.max_rewind = max_rewind
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
            written: tuple[Reduced, list[Position]] | None = None
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
            # A CREATE_DOCUMENT's other scopes: cached, so the document's
            # first job takes the fast path.
            for change in reduced.header_changes:
                if isinstance(change, ScopeCreated):
                    initial = CachedState(0, change.hash, change.state, None, doc_type)
                    self.cache.put((job.document_id, change.scope, job.branch), initial)
                elif isinstance(change, ScopeUpgraded):
                    self.cache.invalidate((job.document_id, change.scope, job.branch))
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
        # UNDO, REDO and PRUNE read the lane's past operations, and an action
        # naming its model version is checked against the header: under the
        # lock, as is a load, which may merge with the lane's log.
        return (
            self.fast_path
            and job.load is None
            and job.scope != "document"
            and not any(
                a.type in HISTORY_ACTIONS or action_version(a.context) is not None
                for a in job.actions
            )
        )

    async def _apply_fast(
        self, job: PlannedJob, job_id: str, cached: CachedState
    ) -> tuple[Reduced, list[Position]] | None:
        """One round trip from the cached head, or None: take the locked path."""
        if cached.document_type is None or cached.document_type not in self.registry:
            return None
        model = self.registry.get(cached.document_type)
        head = Head(cached.revision, cached.hash, cached.state, cached.model)
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
    ) -> JobOutcome | tuple[Reduced, list[Position]]:
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
    ) -> JobOutcome | tuple[Reduced, list[Position]]:
        async with conn.transaction():
            await conn.execute(LOCK, f"{job.document_id}/{job.branch}")
            row = await conn.fetchrow(READ, job_id, job.document_id, job.scope, job.branch)
            assert row is not None
            if row["status"] is not None:
                return await _outcome_from_ledger(conn, job.index, row)
            if job.load is not None:
                loaded = await self._apply_load(conn, job, job_id, row)
                if loaded is None:  # every operation is here already, in this order
                    await JobLedger.record(conn, job_id, "applied", [], None, self.identity)
                    return JobOutcome(index=job.index, ok=True)
                reduced = loaded
            else:
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
    ) -> Reduced:
        model: DocumentModel | None = None
        if job.scope != "document":
            if row["document_type"] is None:
                raise JobRejected(
                    "DocumentNotFound", f"document {job.document_id!r} does not exist"
                )
            if row["deleted"]:
                raise JobRejected("DocumentDeleted", f"document {job.document_id!r} is deleted")
            model = model_for(self.registry, row["document_type"])
        elif row["document_type"] is not None:
            model = model_for(self.registry, row["document_type"])
        head = await self._load_head(conn, job, model, row["revision"], row["hash"])
        history = None
        if model is not None and needs_history(job):
            history = await OperationStore.load_range(
                conn, job.document_id, job.scope, job.branch, 0, head.revision
            )
        version = row["model_version"]
        return await self._reduce(conn, job, job_id, head, model, history, version)

    async def _apply_load(
        self, conn: asyncpg.Connection, job: PlannedJob, job_id: str, row: asyncpg.Record
    ) -> Reduced | None:
        """A load (reactor/domain/merge.py) under the lane lock: the lane's
        whole log, as a merge places operations among all of it."""
        model: DocumentModel | None = None
        if row["document_type"] is not None:
            # A document deleted here still takes the other side's writes
            # (made before it heard of the delete): both hold them, and the
            # document stays deleted.
            model = model_for(self.registry, row["document_type"])
        elif job.scope != "document":
            raise JobRejected("DocumentNotFound", f"document {job.document_id!r} does not exist")
        head = await self._load_head(conn, job, model, row["revision"], row["hash"])
        log = await OperationStore.load_range(
            conn, job.document_id, job.scope, job.branch, 0, head.revision
        )
        reduced = reduce_load(
            job,
            job_id,
            log,
            head,
            model,
            registry=self.registry,
            keyframe_interval=self.keyframe_interval,
            verifier=self.verifier,
            max_rewind=self.max_rewind,
        )
        if reduced is not None:
            if row["deleted"]:
                reduced.header = None  # the header keeps its deletion
            for change in reduced.header_changes:
                await write_header_change(conn, job.document_id, job.branch, change)
        return reduced

    async def _reduce(
        self,
        conn: asyncpg.Connection | None,
        job: PlannedJob,
        job_id: str,
        head: Head,
        model: DocumentModel | None,
        history: list[Operation] | None = None,
        document_version: int | None = None,
    ) -> Reduced:
        """The job's operations, hashes and new head (reactor/domain/reduction.py).
        Only document-scope jobs touch the database here, writing each header
        change through `conn` before the next action is reduced."""
        reduction = Reduction(
            job,
            job_id,
            head,
            model,
            registry=self.registry,
            keyframe_interval=self.keyframe_interval,
            verifier=self.verifier,
            history=history,
            document_version=document_version,
        )
        slice_started = time.perf_counter()
        for change in reduction.steps():
            if change is not None:
                assert conn is not None
                await write_header_change(conn, job.document_id, job.branch, change)
            elif time.perf_counter() - slice_started >= YIELD_EVERY_S:
                await asyncio.sleep(0)  # let the rest of the worker run
                slice_started = time.perf_counter()
        return reduction.result()

    async def _write(
        self, conn: asyncpg.Connection, job: PlannedJob, job_id: str, reduced: Reduced
    ) -> list[Position] | None:
        """One statement (reactor/storage/job_write.py); None when its guard
        stopped it (the document is missing or deleted)."""
        ops, header = reduced.ops, reduced.header
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
                op_skips=[o.skip for o in ops],
                revision=reduced.head.revision,
                hash=reduced.head.hash,
                state=state,
                modified_at=header.at if header is not None else job.actions[-1].timestamp,
                rename=header.name if header is not None else None,
                header=header is not None,
                coordinates=canonical_json([reduced.span.model_dump()]),
                applied_by=self.identity,
                lock_key=f"{job.document_id}/{job.branch}",
                keyframes=keyframes,
                children=reduced.children,
            ),
        )

    async def _load_head(
        self,
        conn: asyncpg.Connection,
        job: PlannedJob,
        model: DocumentModel | None,
        revision: int | None,
        digest: str | None,
    ) -> Head:
        """Head state under the lock: the write cache if it is at the current
        revision, else the document view (written in the same transaction as
        the operations, so it is the newest keyframe there is)."""
        if revision is None or digest is None:
            return initial_head(model, job.scope)
        cached = self.cache.get((job.document_id, job.scope, job.branch), revision)
        if cached is not None:
            return Head(revision, cached.hash, cached.state, cached.model)
        state = await DocumentView.head_state(conn, job.document_id, job.scope, job.branch)
        assert state is not None  # its row was read under this lock
        return Head(revision, digest, state)


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
        if not spans:  # a load that found every operation here already
            return JobOutcome(index=index, ok=True)
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
