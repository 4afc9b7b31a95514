"""What confirms a read-ready announcement (reactor/application/ready_notices.py)
and the job events announcements yield (reactor/application/job_tracker.py):
the job ledger, which only a worker's job transaction writes, and for a
reactor with read models their tracked positions. The announcement's own
claim plays no part: whatever a NOTIFY says, the answer is the ledger's."""

from __future__ import annotations

import asyncio

import asyncpg

from reactor.application.consistency import ConsistencyWaiter
from reactor.domain.jobs import ConsistencyToken, Coordinate, OperationSpan, recorded_spans
from reactor.storage.job_ledger import JobLedger


class LedgerCheck:
    """Checks asked for in the same event-loop turn share one query: a client
    waiting on thousands of jobs confirms their announcements, which arrive
    several commits per NOTIFY, in a few round trips instead of one each."""

    def __init__(self, ledger: JobLedger, consistency: ConsistencyWaiter):
        self.ledger = ledger
        self.consistency = consistency
        self._pending: dict[str, asyncio.Future[asyncpg.Record | None]] = {}

    async def __call__(self, job_id: str, _claimed: OperationSpan) -> list[OperationSpan] | None:
        """ReadyNotices' confirmation: the claimed span is not consulted."""
        return await self.read_ready(job_id)

    async def read_ready(self, job_id: str) -> list[OperationSpan] | None:
        """The job's spans as its ledger row records them when the job was
        applied and (with read models) every read model indexed its last
        operation: what the workflow reports as READ_READY. None otherwise."""
        spans = await self.applied(job_id)
        if spans is None:
            return None
        if spans and self.consistency.read_model_names:
            last = [
                Coordinate(
                    document_id=s.document_id,
                    scope=s.scope,
                    branch=s.branch,
                    operation_index=s.last_index,
                )
                for s in spans
            ]
            if await self.consistency.behind(ConsistencyToken(coordinates=last)) is not None:
                return None
        return spans

    async def applied(self, job_id: str) -> list[OperationSpan] | None:
        """The job's spans when its ledger row says it was applied (its
        commit stands: WRITE_READY, whatever the read models did); None
        otherwise. One primary-key read, shared with the checks asked for
        in the same turn."""
        outcome = await asyncio.shield(self._decided(job_id))
        if outcome is None or outcome["status"] != "applied":
            return None
        return recorded_spans(outcome["coordinates"])

    def _decided(self, job_id: str) -> asyncio.Future[asyncpg.Record | None]:
        pending = self._pending.get(job_id)
        if pending is None:
            loop = asyncio.get_running_loop()
            if not self._pending:
                loop.call_soon(self._flush)
            pending = self._pending[job_id] = loop.create_future()
        return pending

    def _flush(self) -> None:
        batch, self._pending = self._pending, {}
        task = asyncio.ensure_future(self.ledger.outcomes(list(batch)))
        task.add_done_callback(lambda done: _settle(batch, done))


def _settle(
    batch: dict[str, asyncio.Future[asyncpg.Record | None]],
    done: asyncio.Future[dict[str, asyncpg.Record]],
) -> None:
    """Each waiter gets its row (None: not decided), or the query's error."""
    error = None if done.cancelled() else done.exception()
    for job_id, waiter in batch.items():
        if waiter.done():
            continue
        if done.cancelled():
            waiter.cancel()
        elif error is not None:
            waiter.set_exception(error)
        else:
            waiter.set_result(done.result().get(job_id))


async def trust_the_claim(_job_id: str, claimed: OperationSpan) -> list[OperationSpan]:
    """Believes the announcement as it comes: what a client did before
    announcements were checked. For measuring the check's cost only
    (bench/latency.py); never for a reactor anyone relies on."""
    return [claimed]
