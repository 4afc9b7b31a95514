"""Jobs whose announcement said they are READ_READY, once the ledger agreed.

A batch workflow hears that its job is done when the apply activity
returns; a client hears it when the workflow has completed and Temporal
answers its long poll. On our machines that is 15-20 ms after the commit, a
third of a single job's round trip. So workers announce it themselves:

- a worker that runs no read models marks its commit announcements
  `read_ready` (nothing stands between the commit and READ_READY there);
- a worker that runs read models announces its jobs as read-ready on the
  read models' channel once they caught up (before the activity returns).

An announcement is a NOTIFY, and any database role can send any payload on
any channel. So an announcement is never the answer, only the moment to ask
the job ledger (`confirm`, one primary-key read): a job is reported
READ_READY from it only when its ledger row says `applied` and, for a
reactor built with read models, they indexed its last operation (what a
consistency token means to this reactor). The JobInfo is then built from the
ledger's coordinates and from the job as this reactor submitted it (its key
and document): nothing in it comes from the payload. Jobs this reactor did
not submit are left to their workflow, as is every job whose announcement
the ledger does not confirm (it failed, it has not run yet, the payload was
forged). A payload that does not have an announcement's shape, or claims
more operations than a job may hold, is dropped with a debug log before
anything is built from it.

Like every notification it is only ever a shortcut: a job with no confirmed
announcement (lost NOTIFY, LISTEN connection down, left this window) is
answered by its workflow, as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from reactor.domain.jobs import (
    ConsistencyToken,
    JobInfo,
    JobStatus,
    OperationSpan,
    expand_spans,
    parse_job_id,
)

log = logging.getLogger("reactor.notices")

# Announcements kept for callers that ask after the NOTIFY arrived (a burst
# of concurrent `execute()` calls waits on its jobs after submitting them).
CAPACITY = 4096
# Jobs whose key and document this reactor remembers from its submissions
# (whole batches; a batch bigger than this is left to its workflow).
SUBMITTED_CAPACITY = 16_384
# The most operations an announcement may claim by default: a job's actions
# are capped at 10,000 by default (reactor/domain/limits.py), so a larger
# claim is not an announcement any worker sends.
MAX_OPERATIONS = 10_000

# Asked with the job id and the span the announcement claims; returns the
# job's spans as its ledger row records them when the ledger confirms the job
# is read-ready, else None.
Confirm = Callable[[str, OperationSpan], Awaitable[list[OperationSpan] | None]]


class Dropped(ValueError):
    """A payload that is not a read-ready announcement one of our workers sends."""


class ReadyNotices:
    def __init__(
        self,
        confirm: Confirm,
        capacity: int = CAPACITY,
        submitted_capacity: int = SUBMITTED_CAPACITY,
        max_operations: int = MAX_OPERATIONS,
    ):
        self.confirm = confirm
        self.max_operations = max_operations
        self.capacity = capacity
        self.submitted_capacity = submitted_capacity
        # Set once notifications reach this process; without them nobody waits here.
        self.listening = False
        self._claims: OrderedDict[str, OperationSpan] = OrderedDict()  # not yet confirmed
        self._ready: OrderedDict[str, JobInfo] = OrderedDict()  # confirmed
        self._batches: OrderedDict[str, Sequence[tuple[str, str]]] = OrderedDict()
        self._batch_jobs = 0
        self._checks: dict[str, asyncio.Task[JobInfo | None]] = {}
        self._waiters: dict[str, list[asyncio.Future[JobInfo]]] = {}
        self.dropped = 0  # malformed or oversized payloads
        self.refuted = 0  # well-formed announcements the ledger did not confirm
        self._closed = False

    def __len__(self) -> int:
        return len(self._ready)

    def submitted(self, batch_id: str, jobs: Sequence[tuple[str, str]]) -> None:
        """The batch this reactor started: its jobs' (key, document_id) by index."""
        if len(jobs) > self.submitted_capacity:
            return
        old = self._batches.pop(batch_id, None)
        self._batch_jobs -= len(old) if old is not None else 0
        self._batches[batch_id] = jobs
        self._batch_jobs += len(jobs)
        while self._batch_jobs > self.submitted_capacity:
            _, gone = self._batches.popitem(last=False)
            self._batch_jobs -= len(gone)

    def on_commit(self, payload: dict[str, Any]) -> None:
        """NOTIFY handler (commits channel or read models' channel); ignores
        anything that is not a read-ready announcement."""
        if payload.get("read_ready") is not True:
            return
        try:
            job_id = _job_id_of(payload)
            if job_id in self._ready or self._submitted(job_id) is None:
                return  # answered already, or not ours: its workflow answers
            span = _span_of(payload, job_id, self.max_operations)
        except Dropped as why:
            self.dropped += 1
            log.debug("read-ready announcement dropped: %s", why)
            return
        self._claims[job_id] = span
        self._claims.move_to_end(job_id)
        if len(self._claims) > self.capacity:
            self._claims.popitem(last=False)
        if job_id in self._waiters:
            self._check(job_id)

    def announced(self, job_id: str) -> bool:
        """Whether an announcement for the job arrived (confirmed or not)."""
        return job_id in self._ready or job_id in self._claims or job_id in self._checks

    def get(self, job_id: str) -> JobInfo | None:
        """The job's JobInfo if its announcement was confirmed."""
        return self._ready.get(job_id)

    async def confirmed(self, job_id: str) -> JobInfo | None:
        """The job's JobInfo if an announcement for it arrived and the ledger
        confirms it (asked now if nobody asked yet); else None."""
        known = self._ready.get(job_id)
        if known is not None or not self.announced(job_id):
            return known
        return await asyncio.shield(self._check(job_id))

    async def wait(self, job_id: str) -> JobInfo:
        """Returns once the job's announcement arrived and was confirmed;
        waits for ever otherwise, so race it against the workflow."""
        known = await self.confirmed(job_id)
        if known is not None:
            return known
        waiter = self.waiter(job_id)
        try:
            return await waiter
        finally:
            self.discard(job_id, waiter)

    def waiter(self, job_id: str) -> asyncio.Future[JobInfo]:
        """A future the job's confirmed announcement resolves (cancelled if
        the ledger does not confirm it); hand it back to `discard` when done.
        Cheaper than a task around `wait` for callers that race it."""
        waiter: asyncio.Future[JobInfo] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(job_id, []).append(waiter)
        if job_id in self._claims:
            self._check(job_id)
        return waiter

    def discard(self, job_id: str, waiter: asyncio.Future[JobInfo]) -> None:
        waiter.cancel()
        others = self._waiters.get(job_id)
        if others is not None and waiter in others:
            others.remove(waiter)
            if not others:
                del self._waiters[job_id]

    @property
    def waiting(self) -> int:
        return sum(len(w) for w in self._waiters.values())

    async def close(self) -> None:
        self._closed = True
        checks = list(self._checks.values())
        for task in checks:
            task.cancel()
        await asyncio.gather(*checks, return_exceptions=True)

    def _submitted(self, job_id: str) -> tuple[str, str] | None:
        batch_id, index = parse_job_id(job_id)
        jobs = self._batches.get(batch_id)
        return jobs[index] if jobs is not None and index < len(jobs) else None

    def _check(self, job_id: str) -> asyncio.Task[JobInfo | None]:
        """One ledger check per job at a time; announcements arriving during
        it are answered by it (the ledger's word does not depend on them)."""
        task = self._checks.get(job_id)
        if task is None:
            task = asyncio.ensure_future(self._confirm(job_id))
            self._checks[job_id] = task
        return task

    async def _confirm(self, job_id: str) -> JobInfo | None:
        info: JobInfo | None = None
        try:
            span = self._claims.pop(job_id, None)
            if span is None:
                return self._ready.get(job_id)
            try:
                spans = await self.confirm(job_id, span)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a shortcut; the workflow answers
                log.debug("read-ready announcement for %s not checked (%s)", job_id, exc)
                spans = None
            submitted = self._submitted(job_id)
            if spans is not None and submitted is not None:
                info = _job_info(job_id, submitted, spans)
            if info is None:
                self.refuted += 1
                log.debug("read-ready announcement for %s not confirmed by the job ledger", job_id)
            else:
                self._ready[job_id] = info
                if len(self._ready) > self.capacity:
                    self._ready.popitem(last=False)
            return info
        finally:
            del self._checks[job_id]
            self._settle(job_id, info)

    def _settle(self, job_id: str, info: JobInfo | None) -> None:
        """Hands the check's answer to the job's waiters. Unconfirmed, they
        are cancelled (no answer: their workflow gives it), unless another
        announcement came during the check: the job may have committed
        since the ledger was read, so it is checked again."""
        if info is not None:
            for waiter in self._waiters.get(job_id, ()):
                if not waiter.done():
                    waiter.set_result(info)
        elif job_id in self._claims and job_id in self._waiters and not self._closed:
            self._check(job_id)
        else:
            for waiter in self._waiters.pop(job_id, ()):
                waiter.cancel()


def range_fields(span: OperationSpan) -> dict[str, Any]:
    """A job's operations as an announcement gives them when it does not list
    them one by one: the shape `_span_of` reads. Used by the read models'
    announcement and by a commit too big to list its events in one NOTIFY."""
    return {
        "document_id": span.document_id,
        "branch": span.branch,
        "scope": span.scope,
        "index": span.operation_index,
        "count": span.count,
    }


def _job_id_of(payload: dict[str, Any]) -> str:
    job_id = payload.get("job_id")
    if type(job_id) is not str:
        raise Dropped(f"job_id is {type(job_id).__name__}, not a string")
    try:
        parse_job_id(job_id)
    except ValueError:
        raise Dropped(f"{job_id[:80]!r} is not a job id") from None
    return job_id


def _span_of(payload: dict[str, Any], job_id: str, max_operations: int) -> OperationSpan:
    """The span an announcement claims: from a commit's `events`, or from a
    range (`scope`, `index`, `count`) as sent by a worker with read models,
    or for a commit too big to list its events. Raises Dropped, naming the
    job, for anything else (read only for jobs this reactor submitted)."""
    fields = {name: payload.get(name) for name in ("key", "document_id", "branch")}
    scope: Any
    index: Any
    count: Any
    if "events" in payload:
        events = payload["events"]
        if type(events) is not list or not events:
            raise Dropped(f"{job_id}: events is not a non-empty list")
        if len(events) > max_operations:
            raise Dropped(f"{job_id}: {len(events):,} events, over {max_operations:,}")
        first = events[0] if type(events[0]) is dict else {}
        scope, index, count = first.get("scope"), first.get("index"), len(events)
    else:
        scope, index, count = payload.get("scope"), payload.get("index"), payload.get("count")
    for name, value in (*fields.items(), ("scope", scope)):
        if type(value) is not str:
            raise Dropped(f"{job_id}: {name} is {type(value).__name__}, not a string")
    if type(index) is not int or index < 0:
        raise Dropped(f"{job_id}: index {index!r} is not an operation index")
    if type(count) is not int or not 1 <= count <= max_operations:
        raise Dropped(f"{job_id}: count {count!r} is not between 1 and {max_operations:,}")
    return OperationSpan(
        document_id=str(fields["document_id"]),
        scope=str(scope),
        branch=str(fields["branch"]),
        operation_index=index,
        count=count,
    )


def _job_info(job_id: str, submitted: tuple[str, str], spans: list[OperationSpan]) -> JobInfo:
    batch_id, _ = parse_job_id(job_id)
    key, document_id = submitted
    coordinates = expand_spans(spans)
    return JobInfo(
        id=job_id,
        key=key,
        batch_id=batch_id,
        document_id=document_id,
        status=JobStatus.READ_READY,
        consistency_token=ConsistencyToken(coordinates=coordinates) if coordinates else None,
    )
