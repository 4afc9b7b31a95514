"""The apply activity runs a chunk's jobs as the graph's ReadySet allows:
in dependency and lane order, independent jobs concurrently (up to
max_parallel), a failed dependency failing its dependents without running
them. The applier is a fake (it records what ran, and when); the activity
runs in temporalio's ActivityEnvironment."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from temporalio.testing import ActivityEnvironment

from activities.batch import ApplyJobsInput, BatchActivities
from reactor.application.apply import Committed, JobApplier
from reactor.domain.batch import PlannedJob
from reactor.domain.jobs import JobError, JobOutcome
from reactor.storage.job_ledger import JobLedger


def job(
    index: int, key: str, *, deps: tuple[int, ...] = (), after: int | None = None
) -> PlannedJob:
    return PlannedJob(
        index=index,
        key=key,
        document_id=f"doc-{key}",
        document_type="powerhouse/todo-list",
        scope="global",
        branch="main",
        deps=list(deps),
        after=after,
        actions=[],
    )


class FakeApplier:
    """Commits by yielding to the event loop a few times, so that jobs
    running concurrently overlap; records starts and ends in order."""

    def __init__(
        self, *, failing: frozenset[str] = frozenset(), raising: frozenset[str] = frozenset()
    ):
        self.failing = failing
        self.raising = raising
        self.log: list[str] = []
        self.running = 0
        self.most_running = 0

    async def commit(self, batch_id: str, planned: PlannedJob) -> Committed:
        self.log.append(f"start {planned.key}")
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        for _ in range(3):
            await asyncio.sleep(0)
        self.running -= 1
        self.log.append(f"end {planned.key}")
        if planned.key in self.raising:
            raise ConnectionResetError("the database went away")
        if planned.key in self.failing:
            error = JobError(type="ReducerError", message="bad input")
            return Committed(JobOutcome(index=planned.index, ok=False, error=error), None)
        return Committed(JobOutcome(index=planned.index, ok=True), None)


async def apply(
    applier: FakeApplier, jobs: list[PlannedJob], max_parallel: int = 8
) -> list[JobOutcome]:
    activities = BatchActivities(
        cast(JobApplier, applier), cast(JobLedger, None), max_parallel=max_parallel
    )
    inp = ApplyJobsInput(batch_id="b", indices=[j.index for j in jobs], jobs=jobs)
    result: Any = await ActivityEnvironment().run(activities.apply_jobs, inp)
    return cast(list[JobOutcome], result)


def position(log: list[str], entry: str) -> int:
    return log.index(entry)


async def test_a_job_starts_only_after_its_predecessors_in_the_chunk_ended() -> None:
    applier = FakeApplier()
    # b depends on a; c follows b on its lane; x is independent.
    jobs = [job(3, "a"), job(5, "b", deps=(3,)), job(8, "c", after=5), job(9, "x")]
    outcomes = await apply(applier, jobs)
    assert [o.index for o in outcomes] == [3, 5, 8, 9]
    assert all(o.ok for o in outcomes)
    log = applier.log
    assert position(log, "end a") < position(log, "start b")
    assert position(log, "end b") < position(log, "start c")
    # The independent job ran alongside the first.
    assert position(log, "start x") < position(log, "end a")


async def test_independent_jobs_run_concurrently_up_to_max_parallel() -> None:
    applier = FakeApplier()
    outcomes = await apply(applier, [job(i, f"k{i}") for i in range(6)], max_parallel=4)
    assert all(o.ok for o in outcomes)
    assert applier.most_running == 4
    applier = FakeApplier()
    await apply(applier, [job(i, f"k{i}") for i in range(6)], max_parallel=8)
    assert applier.most_running == 6


async def test_dependents_of_a_failed_job_fail_without_running() -> None:
    applier = FakeApplier(failing=frozenset({"parent"}))
    jobs = [
        job(0, "parent"),
        job(1, "child", deps=(0,)),
        job(2, "grandchild", deps=(1,)),
        job(3, "next", after=0),  # on the parent's lane only
        job(4, "sibling"),
    ]
    outcomes = {o.index: o for o in await apply(applier, jobs)}
    assert outcomes[0].error == JobError(type="ReducerError", message="bad input")
    for index, dependency in ((1, "parent"), (2, "child")):
        error = outcomes[index].error
        assert not outcomes[index].ok and error is not None
        assert error.type == "DependencyFailed" and error.dependency == dependency
    assert outcomes[3].ok and outcomes[4].ok
    assert "start child" not in applier.log and "start grandchild" not in applier.log


async def test_a_job_that_raises_fails_the_attempt_after_the_others_ended() -> None:
    applier = FakeApplier(raising=frozenset({"a"}))
    jobs = [job(0, "a"), job(1, "b", deps=(0,)), job(2, "c", after=1), job(3, "x")]
    with pytest.raises(ConnectionResetError):
        await apply(applier, jobs)
    # What follows the raised job waits for the retry; the independent one ended.
    assert "start b" not in applier.log and "start c" not in applier.log
    assert "end x" in applier.log
