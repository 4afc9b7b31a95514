"""Cross-process reaction latency (Act's method), side by side in one run.

Two OS processes: a writer (bench/_reaction_writer.py) makes single-action
commits 30 ms apart, noting the time just before each commit; a reactor
worker (worker.py) runs one reaction whose handler notes when it starts.
Latency = handler start - commit start. Modes:

- notify:  the worker LISTENs; commits NOTIFY; the reaction polls every 1 s
- polling: no NOTIFY; the reaction polls every 50 ms
- signal floor: a bare Temporal signal to a running workflow that runs a
  local activity noting the time (the hop every reaction wake takes)

    python bench/reaction_latency.py [--json] [--count 30] [--gap 0.03]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import _results
import asyncpg
from _results import log
from _stack import ROOT, compile_code
from _stats import percentile
from _tables import Table

from reactor.runtime import stack as services
from reactor.runtime.stack import EmbeddedStack
from reactor.runtime.temporal import connect

PY = sys.executable


async def fresh_database(stack: EmbeddedStack) -> str:
    url = await stack.new_database("rl_")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE bench_seen (kind text, ref text, at double precision)")
    finally:
        await conn.close()
    return url


def env_for(stack: EmbeddedStack, db_url: str, task_queue: str, **extra: str) -> dict[str, str]:
    return services.worker_env(
        db_url, stack.temporal_address, task_queue, home=stack.folder / "home", extra=extra
    )


async def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.05)


async def collect(
    db_url: str, kind: str, starts: dict[str, float], timeout: float = 30
) -> list[float]:
    async def seen_all() -> bool:
        conn = await asyncpg.connect(db_url)
        try:
            n = await conn.fetchval(
                "SELECT count(*) FROM bench_seen WHERE kind = $1 AND ref = ANY($2)",
                kind,
                list(starts),
            )
        finally:
            await conn.close()
        return bool(n >= len(starts))

    await wait_for(seen_all, timeout, f"{kind}: every event handled")
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch(
            "SELECT ref, min(at) AS at FROM bench_seen WHERE kind = $1 GROUP BY ref", kind
        )
    finally:
        await conn.close()
    at = {r["ref"]: r["at"] for r in rows}
    return [(at[ref] - t0) * 1000 for ref, t0 in starts.items()]


def run_writer(env: dict[str, str], *args: str) -> dict[str, float]:
    out = subprocess.run(
        [PY, str(ROOT / "bench" / "_reaction_writer.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {d["ref"]: d["t0"] for d in lines}


async def reaction_mode(stack: EmbeddedStack, mode: str, count: int, gap: float) -> list[float]:
    db_url = await fresh_database(stack)
    tq = f"rl-{mode}-{uuid.uuid4().hex[:6]}"
    extra = {"REACTOR_PROCESSORS": "bench._reaction_probe:probe"}
    if mode == "notify":
        extra.update(REACTOR_NOTIFY="1", REACTOR_REACTION_POLL="1.0")
    else:
        extra.update(REACTOR_NOTIFY="0", REACTOR_REACTION_POLL="0.05")
    env = env_for(stack, db_url, tq, **extra)
    # the document, committed before the worker starts
    subprocess.run([PY, "-c", SETUP_DOC], env=env, check=True)
    worker = services.spawn_worker(env, stack.folder / f"{tq}.log", cwd=stack.folder)
    try:
        client = await connect(stack.temporal_address)
        handle = client.get_workflow_handle(f"reaction-{tq}-latency-probe")

        async def running() -> bool:
            try:
                return bool((await handle.query("status"))["iterations"] >= 1)
            except Exception:
                return False

        await wait_for(running, 60, "the reaction workflow to start")
        writer_mode = "notify" if mode == "notify" else "plain"
        warm = run_writer(env, writer_mode, "3", str(gap))
        await collect(db_url, "reaction", warm)
        starts = run_writer(env, writer_mode, str(count), str(gap))
        return await collect(db_url, "reaction", starts)
    finally:
        await asyncio.to_thread(services.stop_process, worker)


SETUP_DOC = """
import asyncio, os
from reactor.application.apply import JobApplier
from reactor.domain.batch import BatchRequest, plan_batch
from reactor.runtime.worker import registry_of
from reactor.storage.database import Database
async def main():
    db = await Database.connect(os.environ["REACTOR_DATABASE_URL"], max_size=1)
    reg = registry_of()
    req = BatchRequest.model_validate({"batch_id": "setup", "jobs": [{"key": "c", "document_id": "bench-doc",
        "scope": "document", "actions": [{"type": "CREATE_DOCUMENT", "input": {"document_type": "powerhouse/todo-list"}}]}]})
    assert (await JobApplier(db, reg).apply("setup", plan_batch(req, reg, {}).jobs[0])).ok
    await db.close()
asyncio.run(main())
"""


async def signal_floor(stack: EmbeddedStack, count: int, gap: float) -> list[float]:
    db_url = await fresh_database(stack)
    tq = f"rl-signal-{uuid.uuid4().hex[:6]}"
    env = env_for(stack, db_url, tq)
    probe = subprocess.Popen(
        [PY, str(ROOT / "bench" / "_reaction_probe.py")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = await connect(stack.temporal_address)
        wf_id = f"signal-probe-{tq}"
        await client.start_workflow("SignalProbeWorkflow", id=wf_id, task_queue=tq)
        warm = run_writer(env, "signals", "3", str(gap), wf_id)
        await collect(db_url, "signal", warm)
        starts = run_writer(env, "signals", str(count), str(gap), wf_id)
        latencies = await collect(db_url, "signal", starts)
        await client.get_workflow_handle(wf_id).terminate()
        return latencies
    finally:
        probe.terminate()
        probe.wait(30)


async def measure(stack: EmbeddedStack, count: int, gap: float) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}
    for mode in ("notify", "polling"):
        log.print(f"{mode}: {count} commits {gap * 1000:.0f} ms apart…")
        results[mode] = await reaction_mode(stack, mode, count, gap)
    log.print("signal floor…")
    results["signal_floor"] = await signal_floor(stack, count, gap)
    return results


def table(results: dict[str, list[float]], count: int, gap: float) -> Table:
    return Table(
        f"reaction latency, commit → handler start ({count} commits, {gap * 1000:.0f} ms apart)",
        ["mode", "n", "p50 ms", "p95 ms", "p99 ms", "min ms", "max ms"],
        [
            [
                mode,
                len(values),
                *(percentile(values, p) for p in (50, 95, 99)),
                min(values),
                max(values),
            ]
            for mode, values in results.items()
        ],
    )


def main(count: int, gap: float, as_json: bool) -> None:
    folder = Path(tempfile.mkdtemp(prefix="rl"))
    stack = EmbeddedStack.from_env(folder)
    compile_code()
    try:
        log.print("starting PostgreSQL and Temporal…")
        with stack:
            results = asyncio.run(measure(stack, count, gap))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    summary = {
        m: {f"p{p}": round(percentile(v, p), 2) for p in (50, 95, 99)} for m, v in results.items()
    }
    _results.show([table(results, count, gap)])
    n, poll, floor = summary["notify"], summary["polling"], summary["signal_floor"]
    _results.out.print(
        f"notify p99 {n['p99']:.1f} ms vs polling p50 {poll['p50']:.1f} ms "
        f"({'below' if n['p99'] < poll['p50'] else 'NOT below'}); "
        f"notify p50 / signal floor p50 = {n['p50'] / floor['p50']:.2f}x (target <= 1.5x)"
    )
    if as_json:
        print(json.dumps(summary))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--count", type=int, default=30)
    parser.add_argument("--gap", type=float, default=0.03)
    a = parser.parse_args()
    main(a.count, a.gap, a.json)
