"""Jobs whose announcement said they are READ_READY.

A batch workflow hears that its job is done when the apply activity
returns; a client hears it when the workflow has completed and Temporal
answers its long poll. On our machines that is 15-20 ms after the commit, a
third of a single job's round trip. So workers announce it themselves:

- a worker that runs no read models marks its commit announcements
  `read_ready` (nothing stands between the commit and READ_READY there);
- a worker that runs read models announces its jobs as read-ready on the
  read models' channel once they caught up (before the activity returns).

This keeps the latest of those announcements, so that `Reactor.wait_for_job`
and `Reactor.get_job_status` answer as soon as the NOTIFY arrives.

Like every notification it is only ever a shortcut. A job with no such
announcement (it failed, even its shortened announcement was over NOTIFY's
limit, the LISTEN connection was down, or it left this window) is answered
by its workflow, as before. What an announcement says is what the workflow
will say: the worker sent it after the commit (and the catch-up), and the
job's ledger row makes any retry of the activity report the same outcome.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from reactor.domain.jobs import (
    ConsistencyToken,
    JobInfo,
    JobStatus,
    OperationSpan,
    expand_spans,
    parse_job_id,
)

# Announcements kept for callers that ask after the NOTIFY arrived (a burst
# of concurrent `execute()` calls waits on its jobs after submitting them).
CAPACITY = 4096


@dataclass(frozen=True, slots=True)
class _Notice:
    """What a JobInfo needs from an announcement (kept instead of the
    payload, which may hold thousands of events)."""

    key: str
    document_id: str
    branch: str
    scope: str
    first_index: int
    count: int


class ReadyNotices:
    def __init__(self, capacity: int = CAPACITY):
        self.capacity = capacity
        # Set once notifications reach this process; without them nobody waits here.
        self.listening = False
        self._recent: OrderedDict[str, _Notice] = OrderedDict()
        self._waiters: dict[str, list[asyncio.Future[JobInfo]]] = {}

    def __len__(self) -> int:
        return len(self._recent)

    def on_commit(self, payload: dict[str, Any]) -> None:
        """NOTIFY handler (commits channel or read models' channel); ignores
        anything that is not a read-ready announcement."""
        if payload.get("read_ready") is not True:
            return
        job_id = payload.get("job_id")
        if not isinstance(job_id, str):
            return
        notice = _notice_of(payload)
        waiters = self._waiters.pop(job_id, None)
        if notice is not None:
            self._recent[job_id] = notice
            if len(self._recent) > self.capacity:
                self._recent.popitem(last=False)
        for waiter in waiters or ():
            if waiter.done():
                continue
            info = _job_info(job_id, notice) if notice is not None else None
            if info is None:
                waiter.cancel()  # unreadable: its workflow answers instead
            else:
                waiter.set_result(info)

    def get(self, job_id: str) -> JobInfo | None:
        notice = self._recent.get(job_id)
        return _job_info(job_id, notice) if notice is not None else None

    async def wait(self, job_id: str) -> JobInfo:
        """Returns once the job's announcement arrives; waits for ever
        otherwise, so race it against the workflow."""
        known = self.get(job_id)
        if known is not None:
            return known
        waiter = self.waiter(job_id)
        try:
            return await waiter
        finally:
            self.discard(job_id, waiter)

    def waiter(self, job_id: str) -> asyncio.Future[JobInfo]:
        """A future the job's announcement resolves (cancelled if the
        announcement cannot be read); hand it back to `discard` when done.
        Cheaper than a task around `wait` for callers that race it."""
        waiter: asyncio.Future[JobInfo] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(job_id, []).append(waiter)
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


def range_fields(span: OperationSpan) -> dict[str, Any]:
    """A job's operations as an announcement gives them when it does not list
    them one by one: the shape `_notice_of` reads. Used by the read models'
    announcement and by a commit too big to list its events in one NOTIFY."""
    return {
        "document_id": span.document_id,
        "branch": span.branch,
        "scope": span.scope,
        "index": span.operation_index,
        "count": span.count,
    }


def _notice_of(payload: dict[str, Any]) -> _Notice | None:
    """From a commit announcement (its operations as `events`), or from one
    that gives them as a range (`scope`, `index`, `count`): the one a worker
    with read models sends once they caught up, or a commit too big to list
    its events in one NOTIFY."""
    try:
        if "events" in payload:
            events = payload["events"]
            first: dict[str, Any] = events[0] if events else {"scope": "", "index": 0}
            scope, index, count = first["scope"], first["index"], len(events)
        else:
            scope, index, count = payload["scope"], payload["index"], payload["count"]
        notice = _Notice(
            key=payload["key"],
            document_id=payload["document_id"],
            branch=payload["branch"],
            scope=scope,
            first_index=index,
            count=count,
        )
    except (KeyError, IndexError, TypeError):
        return None
    strings = (notice.key, notice.document_id, notice.branch, notice.scope)
    if not all(type(v) is str for v in strings):
        return None
    if type(notice.first_index) is not int or type(notice.count) is not int:
        return None
    return notice


def _job_info(job_id: str, notice: _Notice) -> JobInfo | None:
    try:
        batch_id, _ = parse_job_id(job_id)
        token = None
        if notice.count > 0:
            span = OperationSpan(
                document_id=notice.document_id,
                scope=notice.scope,
                branch=notice.branch,
                operation_index=notice.first_index,
                count=notice.count,
            )
            token = ConsistencyToken(coordinates=expand_spans([span]))
        return JobInfo(
            id=job_id,
            key=notice.key,
            batch_id=batch_id,
            document_id=notice.document_id,
            status=JobStatus.READ_READY,
            consistency_token=token,
        )
    except ValueError:  # pydantic's ValidationError included
        return None
