"""The batch workflow stays deterministic: histories recorded by earlier
versions of the workflow (tests/histories/) and histories of batches run now
replay against the current code without a nondeterminism error."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter

from reactor.api.reactor import Reactor
from reactor.domain.jobs import JobStatus, workflow_id_for
from tests.support.batches import inline_with_failures, many_actions, stored
from tests.support.replay import replay

pytestmark = pytest.mark.usefixtures("worker")

HISTORIES = Path(__file__).parent / "histories"


async def test_recorded_histories_replay() -> None:
    files = sorted(HISTORIES.glob("*.json"))
    assert len(files) >= 2
    for path in files:
        history = WorkflowHistory.from_json(path.stem, path.read_text())
        await replay(history, pydantic_data_converter)


async def test_histories_of_batches_run_now_replay(reactor: Reactor) -> None:
    requests = {
        "inline": inline_with_failures("r1"),
        "stored": stored("r2", 150),
        "plan-by-pages": stored("r3", 1100),
        "many-actions": many_actions("r4", 2_100),
    }
    for name, request in requests.items():
        result = await reactor.execute_batch(request)
        jobs = await reactor.wait_for_batch(result.batch_id)
        assert all(j.status in (JobStatus.READ_READY, JobStatus.FAILED) for j in jobs), name
        handle = reactor.client.get_workflow_handle(workflow_id_for(result.batch_id))
        await replay(await handle.fetch_history(), reactor.client.data_converter)
