"""Single-job latency, next to two floors measured in the same run.

    python bench/latency.py [--json] [--n 200] [--codec]

Modes (interleaved round-robin, after 10 warm-up rounds that are not counted):

- reactor: `reactor.execute(doc, "main", [ADD_TODO_ITEM])` then
  `reactor.wait_for_job(info.id)`, through the worker process: it returns on
  the commit's read-ready announcement (NOTIFY) or the workflow's result,
  whichever comes first (reactor/application/ready_notices.py);
- reactor, announcements trusted: the same, but the client believes a
  read-ready announcement as it comes instead of confirming it with the job
  ledger first (reactor/application/ready_check.py): what the check costs;
- reactor, workflow closed: the same, then `reactor.wait_for_batch(batch_id)`,
  which returns once the batch workflow has closed (the headline mode before
  read-ready announcements);
- noop workflow (floor i): `client.execute_workflow(NoopWorkflow.run)` on an
  in-process worker on another task queue: one Temporal round trip;
- noop workflow + noop activity: the shape of a one-job batch with nothing
  inside (an extra floor, not in the issue);
- with `--codec`, reactor with encrypted payloads: the reactor mode through a
  second worker process that holds a payload key, the Reactor holding it too
  (every payload AES-GCM encrypted, reactor/runtime/codec.py);
- direct apply (floor ii): the same job applied with `JobApplier.apply` in one
  PostgreSQL transaction, no Temporal (only the apply call is timed);
- HTTP execute, `wait=true`: `POST /v1/documents/{id}/actions?wait=true` to a
  `reactor serve` process (bench/_serve.py) over loopback, one keep-alive
  connection (bench/_http_client.py): its worker runs in its process, so the
  batch starts eagerly on it, and the answer comes with the job READ_READY.

A second table sets the two reactor modes side by side, with the ledger
check timed alone. A third times a reactor round trip step by step: `execute` (validate,
start the workflow; small batches travel inline) and `wait_for_job` (the
commit's read-ready announcement, or the workflow's result, which carries the
job views: no query after it closes).
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import _codec
import _results
from _http_client import Connection
from _noop import NoopActivityWorkflow, NoopWorkflow, noop_activity
from _results import log
from _serve import Served, reactor_serve
from _stack import BenchStack, main_guard, parse_args, run_bench
from _stats import Summary
from _tables import Table
from temporalio.worker import Worker

from reactor.api.reactor import Reactor
from reactor.application.apply import JobApplier
from reactor.application.ready_check import trust_the_claim
from reactor.application.write_cache import WriteCache
from reactor.domain.actions import ActionSpec
from reactor.domain.batch import BatchRequest, ExistingDocument, JobRequest, plan_batch
from reactor.domain.jobs import JobStatus, OperationSpan

TODO = "powerhouse/todo-list"
WARMUP = 10

Timer = Callable[[int], Awaitable[float]]


def add_item(item_id: str) -> dict[str, Any]:
    return {"type": "ADD_TODO_ITEM", "input": {"id": item_id, "text": f"item {item_id}"}}


async def run(stack: BenchStack, args: argparse.Namespace) -> dict[str, Any]:
    async with reactor_serve(stack) as served:
        if not args.codec:
            return await bench(stack, args, served)
        async with _codec.encrypted(stack) as keyed:
            return await bench(stack, args, served, keyed.reactor)


async def bench(
    stack: BenchStack, args: argparse.Namespace, served: Served, keyed: Reactor | None = None
) -> dict[str, Any]:
    info = await _results.server_info(stack.database_url, stack.temporal_label)
    reactor = stack.reactor
    setup = await reactor.execute_batch(
        {
            "jobs": [
                {
                    "key": d,
                    "document_id": d,
                    "scope": "document",
                    "actions": [{"type": "CREATE_DOCUMENT", "input": {"document_type": TODO}}],
                }
                for d in (
                    "lat-reactor",
                    "lat-trusted",
                    "lat-closed",
                    "lat-split",
                    "lat-direct",
                    "lat-codec",
                    "lat-http",
                )
            ]
        }
    )
    assert all(
        j.status is JobStatus.READ_READY for j in await reactor.wait_for_batch(setup.batch_id)
    )

    # Floor (i): no-op workflows on an in-process worker, own task queue.
    noop_queue = f"bench-noop-{uuid.uuid4().hex[:8]}"
    noop_worker = Worker(
        reactor.client,
        task_queue=noop_queue,
        workflows=[NoopWorkflow, NoopActivityWorkflow],
        activities=[noop_activity],
    )
    # Floor (ii): the job applied in this process, no Temporal.
    applier = JobApplier(reactor.db, reactor.registry, cache=WriteCache())
    existing = {"lat-direct": ExistingDocument(TODO)}
    run_tag = uuid.uuid4().hex[:8]
    split: dict[str, list[float]] = {"execute": [], "result": []}
    counting = False

    announced = {"yes": 0, "no": 0}
    trusted_announced = {"yes": 0, "no": 0}
    notices = reactor.ready_notices
    ledger_check = notices.confirm
    check_alone: list[float] = []

    async def reactor_mode(i: int) -> float:
        t0 = time.perf_counter()
        job = await reactor.execute("lat-reactor", "main", [add_item(f"r-{i}")])
        final = await reactor.wait_for_job(job.id)
        elapsed = time.perf_counter() - t0
        assert final.status is JobStatus.READ_READY, final
        if counting:
            announced["yes" if notices.get(job.id) else "no"] += 1
            # The check on its own, once more for the same job (the claim
            # plays no part in it).
            claim = OperationSpan(
                document_id="lat-reactor", scope="global", branch="main", operation_index=0
            )
            t1 = time.perf_counter()
            assert await ledger_check(job.id, claim) is not None
            check_alone.append(time.perf_counter() - t1)
        return elapsed

    async def trusted_mode(i: int) -> float:
        """reactor_mode with announcements believed as they come."""
        notices.confirm = trust_the_claim
        try:
            t0 = time.perf_counter()
            job = await reactor.execute("lat-trusted", "main", [add_item(f"t-{i}")])
            final = await reactor.wait_for_job(job.id)
            elapsed = time.perf_counter() - t0
        finally:
            notices.confirm = ledger_check
        assert final.status is JobStatus.READ_READY, final
        if counting:
            trusted_announced["yes" if notices.get(job.id) else "no"] += 1
        return elapsed

    async def codec_mode(i: int) -> float:
        """reactor_mode with every payload AES-GCM encrypted (its own worker)."""
        assert keyed is not None
        t0 = time.perf_counter()
        job = await keyed.execute("lat-codec", "main", [add_item(f"k-{i}")])
        final = await keyed.wait_for_job(job.id)
        elapsed = time.perf_counter() - t0
        assert final.status is JobStatus.READ_READY, final
        return elapsed

    async def closed_mode(i: int) -> float:
        t0 = time.perf_counter()
        job = await reactor.execute("lat-closed", "main", [add_item(f"c-{i}")])
        jobs = await reactor.wait_for_batch(job.batch_id)
        elapsed = time.perf_counter() - t0
        assert jobs[0].status is JobStatus.READ_READY, jobs[0]
        return elapsed

    async def split_mode(i: int) -> float:
        """execute(), then wait_for_job (the batch result carries the job), each timed."""
        t0 = time.perf_counter()
        job = await reactor.execute("lat-split", "main", [add_item(f"s-{i}")])
        t1 = time.perf_counter()
        final = await reactor.wait_for_job(job.id)
        t2 = time.perf_counter()
        assert final.status is JobStatus.READ_READY, final
        if counting:
            split["execute"].append(t1 - t0)
            split["result"].append(t2 - t1)
        return t2 - t0

    async def noop_mode(i: int) -> float:
        t0 = time.perf_counter()
        await reactor.client.execute_workflow(
            NoopWorkflow.run, id=f"noop-{run_tag}-{i}", task_queue=noop_queue
        )
        return time.perf_counter() - t0

    async def noop_activity_mode(i: int) -> float:
        t0 = time.perf_counter()
        await reactor.client.execute_workflow(
            NoopActivityWorkflow.run, id=f"noop-act-{run_tag}-{i}", task_queue=noop_queue
        )
        return time.perf_counter() - t0

    async def direct_mode(i: int) -> float:
        request = BatchRequest(
            batch_id=f"direct-{run_tag}-{i}",
            jobs=[
                JobRequest(
                    key="job",
                    document_id="lat-direct",
                    actions=[ActionSpec.model_validate(add_item(f"d-{i}"))],
                )
            ],
        )
        plan = plan_batch(request, reactor.registry, existing)
        t0 = time.perf_counter()
        outcome = await applier.apply(plan.batch_id, plan.jobs[0])
        elapsed = time.perf_counter() - t0
        assert outcome.ok, outcome
        return elapsed

    api = Connection(served.url)

    async def http_mode(i: int) -> float:
        t0 = time.perf_counter()
        status, body = await api.post(
            "/v1/documents/lat-http/actions?wait=true", {"actions": [add_item(f"h-{i}")]}
        )
        elapsed = time.perf_counter() - t0
        assert status == 200 and body["status"] == JobStatus.READ_READY.value, (status, body)
        return elapsed

    modes: list[tuple[str, str, Timer]] = [
        ("http", "HTTP execute, wait=true (reactor serve)", http_mode),
        ("reactor", "reactor: execute + wait_for_job", reactor_mode),
        ("reactor_trusted", "reactor: the same, announcements trusted", trusted_mode),
        ("reactor_closed", "reactor: execute + wait_for_batch (workflow closed)", closed_mode),
        ("noop", "floor i: no-op workflow round trip", noop_mode),
        ("noop_activity", "no-op workflow + 1 no-op activity", noop_activity_mode),
        ("direct", "floor ii: JobApplier.apply, no Temporal", direct_mode),
        ("split", "reactor, step by step (see below)", split_mode),
    ]
    if keyed is not None:
        modes.insert(1, ("reactor_codec", "reactor, payloads encrypted (--codec)", codec_mode))
    samples: dict[str, list[float]] = {key: [] for key, _, _ in modes}
    async with noop_worker:
        log.print(f"warming up ({WARMUP} rounds)…")
        for i in range(WARMUP):
            for _, _, fn in modes:
                await fn(-1 - i)
        counting = True
        log.print(f"measuring {args.n} rounds of {len(modes)} modes, interleaved…")
        for i in range(args.n):
            for key, _, fn in modes:
                samples[key].append(await fn(i))
            if (i + 1) % 50 == 0:
                log.print(f"  {i + 1}/{args.n}")
    await api.close()

    stats = {key: Summary.of(v) for key, v in samples.items()}
    noop = stats["noop"]
    results = [
        {
            "mode": key,
            "label": label,
            **stats[key].scaled(1000),
            "p50_over_noop_p50": stats[key].p50 / noop.p50,
            "p99_over_noop_p99": stats[key].p99 / noop.p99,
        }
        for key, label, _ in modes
    ]
    return {
        "bench": "latency",
        "machine": _results.machine(),
        "code": _results.code_info(),
        "server": info,
        "n": args.n,
        "warmup": WARMUP,
        "modes_ms": results,
        "announced": announced,
        "ready_check_ms": {
            "confirmed": stats["reactor"].scaled(1000),
            "trusted": stats["reactor_trusted"].scaled(1000),
            "check_alone": Summary.of(check_alone).scaled(1000),
            "trusted_announced": trusted_announced,
        },
        "reactor_split_ms": {k: Summary.of(v).scaled(1000) for k, v in split.items()},
    }


def tables(result: dict[str, Any]) -> list[Table]:
    """The tables of a result (this script's JSON), in the order printed."""
    announced = result["announced"]
    modes = Table(
        f"Single-job latency, ms ({result['n']} rounds, modes interleaved, "
        f"{result['warmup']} warm-up rounds)",
        ["mode", "n", "p50", "p95", "p99", "mean", "p50/p50 noop", "p99/p99 noop"],
        [
            [
                m["label"],
                m["n"],
                m["p50"],
                m["p95"],
                m["p99"],
                m["mean"],
                f"{m['p50_over_noop_p50']:.2f}×",
                f"{m['p99_over_noop_p99']:.2f}×",
            ]
            for m in result["modes_ms"]
        ],
        caption=(
            "reactor: submit → READ_READY through the worker process; HTTP: a `reactor serve` "
            "process, its worker in that process (eager start), over loopback; floors in this "
            "process (no-op worker on its own task queue; JobApplier on the bench's pool). "
            f"wait_for_job answered from the commit's read-ready announcement: "
            f"{announced['yes']} of {announced['yes'] + announced['no']} jobs; "
            "wait_for_batch waits until the workflow has closed."
        ),
    )
    ready = result["ready_check_ms"]
    checked, trusted, alone = ready["confirmed"], ready["trusted"], ready["check_alone"]
    trusted_announced = ready["trusted_announced"]
    figures = ("p50", "p95", "p99", "mean")
    check = Table(
        "Read-ready announcements confirmed by the job ledger, or trusted, ms",
        ["execute + wait_for_job", "n", *figures],
        [
            ["announcement confirmed by the ledger (default)", checked["n"]]
            + [checked[f] for f in figures],
            ["announcement trusted as it comes", trusted["n"]] + [trusted[f] for f in figures],
            ["difference", ""] + [checked[f] - trusted[f] for f in figures],
            ["the ledger check alone", alone["n"]] + [alone[f] for f in figures],
        ],
        caption=(
            "answered from the announcement: "
            f"{announced['yes']} of {sum(announced.values())} confirmed, "
            f"{trusted_announced['yes']} of {sum(trusted_announced.values())} trusted; "
            "the check alone is one primary-key read of reactor_applied_jobs on the "
            "bench's pool (no read models here)."
        ),
    )
    split = result["reactor_split_ms"]
    labels = {
        "execute": "execute(): validate, start workflow",
        "result": "wait_for_job: read-ready announcement or workflow result",
    }
    total_mean = sum(s["mean"] for s in split.values())
    steps = Table(
        "The reactor's round trip step by step, ms (execute; wait_for_job)",
        ["step", "p50", "p95", "mean", "share of mean"],
        [
            [
                labels.get(k, k),
                s["p50"],
                s["p95"],
                s["mean"],
                f"{100 * s['mean'] / total_mean:.0f}%",
            ]
            for k, s in split.items()
        ],
    )
    return [modes, check, steps]


def main() -> None:
    def extra(p: argparse.ArgumentParser) -> None:
        p.add_argument("--n", type=int, default=200, help="measured rounds per mode")
        p.add_argument(
            "--codec",
            action="store_true",
            help="add the reactor mode with encrypted payloads (a second worker holds the key)",
        )

    args = parse_args(__doc__.splitlines()[0], extra)
    result = run_bench("latency", lambda s: run(s, args))
    _results.show(tables(result))
    if args.json:
        _results.emit_json(result)


if __name__ == "__main__":
    main_guard(main)
