"""The writer process of bench/reaction_latency.py: 30 single-action commits
(or signals) 30 ms apart, printing when each started, as JSON lines."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reactor.application.apply import JobApplier  # noqa: E402
from reactor.domain.batch import BatchRequest, ExistingDocument, plan_batch  # noqa: E402
from reactor.domain.jobs import job_id_for  # noqa: E402
from reactor.runtime.worker import registry_of  # noqa: E402
from reactor.storage.database import Database  # noqa: E402
from reactor.storage.notify import channel_name  # noqa: E402


async def commits(count: int, gap: float, notify: bool) -> None:
    db = await Database.connect(os.environ["REACTOR_DATABASE_URL"], max_size=2)
    registry = registry_of()
    applier = JobApplier(db, registry, notify_channel=channel_name() if notify else None)
    existing = {"bench-doc": ExistingDocument("powerhouse/todo-list")}
    for n in range(count):
        request = BatchRequest.model_validate(
            {
                "batch_id": f"rl-{os.getpid()}-{n}",
                "jobs": [
                    {
                        "key": "j",
                        "document_id": "bench-doc",
                        "actions": [
                            {
                                "type": "ADD_TODO_ITEM",
                                "input": {"id": f"{os.getpid()}-{n}", "text": "x"},
                            }
                        ],
                    }
                ],
            }
        )
        job = plan_batch(request, registry, existing).jobs[0]
        t0 = time.time()  # just before the commit
        outcome = await applier.apply(request.batch_id or "", job)
        assert outcome.ok, outcome.error
        print(json.dumps({"ref": job_id_for(request.batch_id or "", 0), "t0": t0}), flush=True)
        await asyncio.sleep(gap)
    await db.close()


async def signals(count: int, gap: float, workflow_id: str) -> None:
    from reactor.runtime.temporal import connect

    client = await connect(os.environ["REACTOR_TEMPORAL_ADDRESS"])
    handle = client.get_workflow_handle(workflow_id)
    for n in range(count):
        ref = f"sig-{os.getpid()}-{n}"
        t0 = time.time()
        await handle.signal("ping", ref)
        print(json.dumps({"ref": ref, "t0": t0}), flush=True)
        await asyncio.sleep(gap)


if __name__ == "__main__":
    mode, count, gap = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    if mode == "signals":
        asyncio.run(signals(count, gap, sys.argv[4]))
    else:
        asyncio.run(commits(count, gap, notify=mode == "notify"))
