"""The batch workflow stays deterministic: histories recorded by earlier
versions of the workflow (tests/histories/) and histories of batches run now
replay against the current code without a nondeterminism error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter

from reactor.api.reactor import Reactor
from reactor.domain.jobs import JobStatus, workflow_id_for
from tests.support.batches import create_list, inline_with_failures, stored
from tests.support.replay import replay

pytestmark = pytest.mark.usefixtures("worker")

HISTORIES = Path(__file__).parent / "histories"


async def test_recorded_histories_replay() -> None:
    files = sorted(HISTORIES.glob("*.json"))
    assert len(files) >= 2
    for path in files:
        history = WorkflowHistory.from_json(path.stem, path.read_text())
        await replay(history, pydantic_data_converter)


def many_actions(prefix: str, n: int) -> dict[str, Any]:
    """One job with `n` actions: more than a local activity takes."""
    doc = f"{prefix}-big"
    return {
        "jobs": [
            create_list("create", doc),
            {
                "key": "big",
                "document_id": doc,
                "depends_on": ["create"],
                "actions": [
                    {"type": "ADD_TODO_ITEM", "input": {"id": str(i), "text": f"item {i}"}}
                    for i in range(n)
                ],
            },
        ]
    }


async def test_histories_of_batches_run_now_replay(reactor: Reactor) -> None:
    requests = {
        "inline": inline_with_failures("r1"),
        "stored": stored("r2", 150),
        "plan-by-pages": stored("r3", 1100),
        "many-actions": many_actions("r4", 600),
    }
    for name, request in requests.items():
        result = await reactor.execute_batch(request)
        jobs = await reactor.wait_for_batch(result.batch_id)
        assert all(j.status in (JobStatus.READ_READY, JobStatus.FAILED) for j in jobs), name
        handle = reactor.client.get_workflow_handle(workflow_id_for(result.batch_id))
        await replay(await handle.fetch_history(), reactor.client.data_converter)
