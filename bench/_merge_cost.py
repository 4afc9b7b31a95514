"""The merge phase of bench/sync.py: what one load job that merges costs,
against the number of local operations it rewinds.

For each rewound count N, fresh documents each hold LOCAL operations of
increasing timestamps, written locally; then one operation "from another
reactor" arrives (a load request with no predecessor: the two logs diverged
at the lane's start) whose timestamp sorts it before the last N local ones,
so the merge keeps LOCAL - N operations and re-appends N + 1 as copies. The
lane's length is the same for every N: only the rewind varies. The incoming
operation's hash is made up, since a merge appends only copies and checks
none.

Timed: the load job through the real path (`reactor.load_batch` +
`wait_for_job`: the workflow, the lane lock, the lane's whole log read, the
merge, the write, on the worker), and the pure part alone
(`reactor.domain.loading.reduce_load` on the same lane and head, read just
before the load, in this process). The floor: one ADD_TODO_ITEM executed on a
lane of the same length."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from _results import log
from _stats import Summary
from _sync_peer import TODO, add_item, run_batches, write_jobs

from reactor.api.module import WorkerConfig
from reactor.api.reactor import Reactor
from reactor.domain.actions import Action
from reactor.domain.jobs import JobStatus
from reactor.domain.load_plan import plan_loads
from reactor.domain.loading import reduce_load
from reactor.domain.reduction import Head, model_for
from reactor.domain.sync import LoadRequest, SyncOperation
from reactor.storage.document_view import DocumentView
from reactor.storage.operation_store import OperationStore

LOCAL = 1000  # operations on each lane before the load
ORIGIN = "bench-peer"  # the made-up sender of the loads
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
WORKER = WorkerConfig()  # the worker's defaults: keyframe interval, rewind limit

_LANE_HEAD = (
    "SELECT revision, hash FROM reactor_document_states "
    "WHERE document_id = $1 AND scope = 'global' AND branch = 'main'"
)


def merge_doc(rewound: int, repeat: int) -> str:
    return f"merge-{rewound:04d}-{repeat}"


def local_at(k: int) -> datetime:
    """The timestamp of a lane's k-th local operation."""
    return EPOCH + timedelta(seconds=k)


def incoming_load(doc: str, local: int, rewound: int) -> LoadRequest:
    """One operation of another reactor's lane of `doc`, diverged from this
    one at its start, stamped to sort before exactly the last `rewound` of
    `local` operations stamped by `local_at`."""
    action_id = f"{doc}-remote"
    at = local_at(local - rewound) - timedelta(milliseconds=500)
    action = Action.model_validate(add_item(action_id, at))
    op = SyncOperation(
        id=str(uuid.uuid5(uuid.NAMESPACE_URL, action_id)),
        index=0,
        timestamp=at,
        hash=hashlib.sha256(action_id.encode()).hexdigest(),
        action=action,
    )
    return LoadRequest(document_id=doc, document_type=TODO, operations=[op])


async def pure_merge(reactor: Reactor, load: LoadRequest) -> tuple[float, int]:
    """reduce_load on the lane as it stands (read first, not timed): the
    time it took and the number of operations it would append."""
    existing = await reactor.document_view.lookup([load.document_id], [])
    plan = plan_loads([load], reactor.registry, existing, origin=ORIGIN)
    async with reactor.db.pool.acquire() as conn:
        row = await conn.fetchrow(_LANE_HEAD, load.document_id)
        state = await DocumentView.head_state(conn, load.document_id, "global", "main")
        lane = await OperationStore.load_range(
            conn, load.document_id, "global", "main", 0, row["revision"]
        )
    head = Head(row["revision"], row["hash"], state)
    model = model_for(reactor.registry, TODO)
    t0 = time.perf_counter()
    reduced = reduce_load(
        plan.jobs[0],
        f"{plan.batch_id}:0",
        lane,
        head,
        model,
        registry=reactor.registry,
        keyframe_interval=WORKER.keyframe_interval,
        max_rewind=WORKER.max_rewind,
    )
    elapsed = time.perf_counter() - t0
    assert reduced is not None
    return elapsed, len(reduced.ops)


async def revision(reactor: Reactor, doc: str) -> int:
    row = await reactor.db.pool.fetchrow(_LANE_HEAD, doc)
    return int(row["revision"])


async def merge_cost(reactor: Reactor, rewinds: Sequence[int], repeats: int) -> dict[str, Any]:
    """The phase on `reactor`, whose documents nothing else writes; its JSON."""
    docs = [merge_doc(n, r) for r in range(repeats) for n in rewinds]
    floor_docs = [f"merge-floor-{r}" for r in range(repeats)]
    log.print(f"  writing {len(docs) + len(floor_docs)} lanes of {LOCAL:,} operations…")
    t0 = time.perf_counter()
    await run_batches(reactor, write_jobs(docs + floor_docs, LOCAL, local_at), "merge lanes")
    log.print(f"  written in {time.perf_counter() - t0:.1f} s (not measured)")

    real: dict[int, list[float]] = {n: [] for n in rewinds}
    pure: dict[int, list[float]] = {n: [] for n in rewinds}
    floor: list[float] = []
    for r in range(repeats):
        for n in rewinds:
            doc = merge_doc(n, r)
            load = incoming_load(doc, LOCAL, n)
            pure_s, would_append = await pure_merge(reactor, load)
            assert would_append == n + 1, (n, would_append)
            before = await revision(reactor, doc)
            t0 = time.perf_counter()
            result = await reactor.load_batch([load], origin=ORIGIN)
            done = await reactor.wait_for_job(result.jobs["load-0"].id)
            real_s = time.perf_counter() - t0
            assert done.status is JobStatus.READ_READY, done
            appended = await revision(reactor, doc) - before
            assert appended == n + 1, (n, appended)
            real[n].append(real_s)
            pure[n].append(pure_s)
        t0 = time.perf_counter()
        info = await reactor.execute(floor_docs[r], "main", [add_item(f"{floor_docs[r]}-f")])
        done = await reactor.wait_for_job(info.id)
        floor.append(time.perf_counter() - t0)
        assert done.status is JobStatus.READ_READY, done
        log.print(f"  repeat {r + 1}/{repeats}")
    return {
        "local_operations": LOCAL,
        "repeats": repeats,
        "rows": [
            {
                "rewound": n,
                "appended": n + 1,
                "real_ms": Summary.of(real[n]).scaled(1000),
                "pure_ms": Summary.of(pure[n]).scaled(1000),
            }
            for n in rewinds
        ],
        "floor_ms": Summary.of(floor).scaled(1000),
    }
