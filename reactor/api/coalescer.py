"""Group submission of single-job writes.

Each batch workflow costs the Temporal server a roughly fixed amount of CPU
(about 27 ms here), so one workflow per `execute()` caps throughput at a few
dozen jobs per second. Concurrent `execute()` calls are therefore coalesced:
the first call is submitted at once (no added latency); calls that arrive
while a submission is in flight are submitted together as one batch of
independent jobs when it returns. Each caller still gets its own job, status
and consistency token; jobs on the same document keep arrival order; a job
that fails fails alone. A request that is invalid on its own is rejected to
its caller only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from reactor.domain.batch import BatchRequest, JobRequest
from reactor.domain.errors import ValidationError
from reactor.domain.jobs import JobInfo

Submit = Callable[[BatchRequest], Awaitable[dict[str, JobInfo]]]


class ExecuteCoalescer:
    def __init__(self, submit: Submit, *, max_jobs: int = 500):
        self._submit = submit
        self.max_jobs = max_jobs
        self._queue: list[tuple[JobRequest, asyncio.Future[JobInfo]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.batches = 0

    async def execute(self, job: JobRequest) -> JobInfo:
        future: asyncio.Future[JobInfo] = asyncio.get_running_loop().create_future()
        self._queue.append((job, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._queue:
                take, self._queue = self._queue[: self.max_jobs], self._queue[self.max_jobs :]
                self.batches += 1
                await self._submit_group(take)
        finally:
            self._flusher = None

    async def _submit_group(self, group: list[tuple[JobRequest, asyncio.Future[JobInfo]]]) -> None:
        keys = ["job"] if len(group) == 1 else [f"job-{i}" for i in range(len(group))]
        request = BatchRequest(
            jobs=[
                job.model_copy(update={"key": key})
                for key, (job, _) in zip(keys, group, strict=True)
            ]
        )
        try:
            infos = await self._submit(request)
        except ValidationError as exc:
            if len(group) == 1:
                _fail(group[0][1], exc)
                return
            # Valid alone but not together (e.g. two creates of one id):
            # submit each on its own so each caller gets its own answer.
            await asyncio.gather(*(self._submit_group([item]) for item in group))
            return
        except Exception as exc:
            for _, future in group:
                _fail(future, exc)
            return
        for key, (_, future) in zip(keys, group, strict=True):
            if not future.done():
                future.set_result(infos[key])


def _fail(future: asyncio.Future[JobInfo], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
