"""Sync between two reactors: lag, throughput, and the cost of a merge.

    python bench/sync.py [--json] [--markdown] [--n 100] [--docs 20] [--ops 500]
                         [--rewinds 0,10,100,1000] [--repeats 5]

Two reactors on the bench's PostgreSQL and Temporal dev server, each with a
database and a task queue of its own, each applying its jobs in a worker
process of its own (as deployed; the bench process only submits and
observes):

- A: the bench stack's database and worker process (`python worker.py`,
  bench/_stack.py), which also runs the channel;
- B: a second database served by `reactor serve` (HTTP API and its worker in
  one process), on loopback;
- the channel: stored on A (`reactor_sync_channels`) and run by A's worker
  as the workflow `sync-<name>`: it pulls B's log over HTTP and pushes A's
  to B's `POST /v1/sync/load`.

The bench process holds a Reactor on each database: it writes on either
side and watches either side's change feed (woken by the commits' NOTIFY).

Phases, in this order:

1. Throughput, push: `--docs` documents x `--ops` operations written on A
   (jobs of OPS_PER_JOB actions, the documents' creates included) while no
   channel exists; then the channel is added and started, and the clock runs
   until B holds every one of them (B's operation count, polled every
   POLL_S). Operations/s = operations / that time. Peak RSS of A's worker
   and of B's `reactor serve` over that window.
2. Throughput, pull: the channel's workflow terminated, the same on B, then
   the channel started again (its cursors kept): until A holds them all.
3. Lag, with the channel running, `--n` samples per direction after
   WARMUP each, interleaved: an ADD_TODO_ITEM executed on one side; the
   clock starts when `wait_for_job` says READ_READY there and stops when the
   other side's change feed hands out that action (committed and visible,
   the document view written in the same transaction). A -> B is pushed by
   A's channel (woken by A's commit), B -> A pulled by it (woken by B's
   event stream). Floors, interleaved with them: the write itself (execute
   -> READ_READY on A, and on B), and one HTTP round trip to B
   (`GET /v1/sync/identity`).
4. Merge cost (bench/_merge_cost.py), the channel terminated so nothing
   syncs: for each rewound count N in `--rewinds`, `--repeats` lanes of
   LOCAL operations on A, each loaded with one operation of another reactor
   that sorts before the last N local ones; the load job through the real
   path (`reactor.load_batch` + `wait_for_job`), and `reduce_load` alone on
   the same lane in this process. The floor: one ADD_TODO_ITEM executed on
   a lane of the same length.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass
from typing import Any

import _results
from _merge_cost import LOCAL, merge_cost
from _metering import tree_rss
from _results import log
from _stack import BenchStack, main_guard, parse_args, run_bench
from _stats import Summary, mb
from _sync_peer import TODO, Link, Remote, add_item, run_batches, served_peer, write_jobs
from _tables import Table, to_markdown

from reactor.api.reactor import Reactor
from reactor.api.remote import RemoteReactor
from reactor.application.change_feed import FeedReader
from reactor.domain.jobs import JobStatus
from reactor.domain.merge import DEFAULT_MAX_REWIND
from reactor.storage.identity import reactor_id

POLL_S = 0.02  # how often the throughput phases count the receiver's operations
SYNC_TIMEOUT_S = 300.0  # a phase whose operations do not arrive by then fails the run
LAG_TIMEOUT_S = 60.0
WARMUP = 3


# -- phases 1-2: throughput ------------------------------------------------------


async def count_ops(reactor: Reactor, prefix: str) -> int:
    n: int = await reactor.db.pool.fetchval(
        "SELECT count(*) FROM reactor_operations WHERE document_id LIKE $1", prefix + "%"
    )
    return n


@dataclass
class Throughput:
    direction: str
    documents: int
    operations: int
    write_s: float
    sync_s: float
    peak_rss: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "direction": self.direction,
            "documents": self.documents,
            "operations": self.operations,
            "write_s": self.write_s,
            "sync_s": self.sync_s,
            "operations_per_s": self.operations / self.sync_s,
            "peak_rss_mb": {k: mb(v) for k, v in self.peak_rss.items()},
        }


async def throughput(
    stack: BenchStack,
    remote: Remote,
    link: Link,
    direction: str,
    docs: int,
    ops: int,
) -> Throughput:
    writer, receiver = (
        (stack.reactor, remote.reactor) if direction == "A→B" else (remote.reactor, stack.reactor)
    )
    prefix = "tp-ab-" if direction == "A→B" else "tp-ba-"
    names = [f"{prefix}{n:03d}" for n in range(docs)]
    t0 = time.perf_counter()
    await run_batches(writer, write_jobs(names, ops), f"writing {direction}")
    write_s = time.perf_counter() - t0
    expected = await count_ops(writer, prefix)
    log.print(f"  {expected:,} operations written in {write_s:.1f} s; starting the channel…")
    samplers = {"A worker": stack.rss, "B reactor serve": remote.rss}
    for sampler in samplers.values():
        if sampler is not None:
            sampler.mark()
    start = time.perf_counter()
    await link.start()
    deadline = start + SYNC_TIMEOUT_S
    while (held := await count_ops(receiver, prefix)) < expected:
        if time.perf_counter() > deadline:
            raise TimeoutError(
                f"{direction}: {held} of {expected} operations after {SYNC_TIMEOUT_S} s"
            )
        await asyncio.sleep(POLL_S)
    sync_s = time.perf_counter() - start
    await link.stop()
    return Throughput(
        direction,
        docs,
        expected,
        write_s,
        sync_s,
        {k: s.window_peak for k, s in samplers.items() if s is not None},
    )


# -- phase 3: lag ---------------------------------------------------------------


async def arrival(reader: FeedReader, action_id: str) -> float:
    """The perf_counter time `reader` hands out `action_id`."""
    deadline = time.perf_counter() + LAG_TIMEOUT_S
    while (left := deadline - time.perf_counter()) > 0:
        if any(e.operation.action.id == action_id for e in await reader.next(left)):
            return time.perf_counter()
    raise TimeoutError(f"action {action_id} did not arrive in {LAG_TIMEOUT_S} s")


@dataclass
class LagSample:
    write_s: float  # execute -> READ_READY on the writer
    lag_s: float  # READ_READY on the writer -> readable on the receiver


async def lag_once(writer: Reactor, receiver: Reactor, doc: str, item: str) -> LagSample:
    """The receiver's feed is read from before the write, in a task of its
    own, so an arrival is timed as it happens, even one that comes before
    the writer reports READ_READY (a lag below zero)."""
    async with receiver.change_feed.open(lambda e: e.operation.document_id == doc) as reader:
        arrived = asyncio.create_task(arrival(reader, item))
        try:
            t0 = time.perf_counter()
            info = await writer.execute(doc, "main", [add_item(item)])
            done = await writer.wait_for_job(info.id)
            t1 = time.perf_counter()
            assert done.status is JobStatus.READ_READY, done
            t2 = await arrived
        finally:
            arrived.cancel()
    return LagSample(t1 - t0, t2 - t1)


async def lag(stack: BenchStack, remote: Remote, link: Link, n: int) -> dict[str, list[float]]:
    a, b = stack.reactor, remote.reactor
    await link.start()
    for reactor, doc in ((a, "lag-ab"), (b, "lag-ba")):
        created = await reactor.execute(
            doc,
            "main",
            [{"type": "CREATE_DOCUMENT", "input": {"document_type": TODO}}],
            scope="document",
        )
        assert (await reactor.wait_for_job(created.id)).status is JobStatus.READ_READY
    http = RemoteReactor(remote.url)
    samples: dict[str, list[float]] = {k: [] for k in ("ab", "ba", "write_a", "write_b", "http")}
    try:
        for i in range(-WARMUP, n):
            ab = await lag_once(a, b, "lag-ab", f"lag-ab-{i}")
            ba = await lag_once(b, a, "lag-ba", f"lag-ba-{i}")
            t0 = time.perf_counter()
            await http.identity()
            rtt = time.perf_counter() - t0
            if i >= 0:
                samples["ab"].append(ab.lag_s)
                samples["ba"].append(ba.lag_s)
                samples["write_a"].append(ab.write_s)
                samples["write_b"].append(ba.write_s)
                samples["http"].append(rtt)
            if i >= 0 and (i + 1) % 10 == 0:
                log.print(f"  {i + 1}/{n}")
    finally:
        await http.aclose()
        await link.stop()
    return samples


# -- the run --------------------------------------------------------------------


async def run(stack: BenchStack, args: argparse.Namespace) -> dict[str, Any]:
    info = await _results.server_info(stack.database_url, stack.temporal_label)
    async with served_peer(stack) as remote:
        link = Link(stack, remote)
        log.print(f"reactor B: reactor serve at {remote.url}")
        runs = []
        for direction in ("A→B", "B→A"):
            log.print(f"throughput {direction}: {args.docs} documents × {args.ops} operations…")
            result = await throughput(stack, remote, link, direction, args.docs, args.ops)
            log.print(
                f"  {result.operations:,} operations in {result.sync_s:.2f} s "
                f"({result.operations / result.sync_s:,.0f} ops/s)"
            )
            runs.append(result)
        log.print(f"lag: {args.n} samples per direction after {WARMUP} warm-up rounds…")
        samples = await lag(stack, remote, link, args.n)
        log.print(
            f"merge cost: rewound {', '.join(map(str, args.rewinds))}, {args.repeats} repeats…"
        )
        merges = await merge_cost(stack.reactor, args.rewinds, args.repeats)
        b_idle = tree_rss(remote.pid)
        a_id, b_id = await reactor_id(stack.reactor.db), await reactor_id(remote.reactor.db)
    return {
        "bench": "sync",
        "machine": _results.machine(),
        "code": _results.code_info(),
        "server": info,
        "reactors": {"A": a_id, "B": b_id},
        "worker_rss_mb": {
            "A worker at start": mb(stack.worker_idle_rss),
            "B serve at end": mb(b_idle),
        },
        "n": args.n,
        "warmup": WARMUP,
        "lag_ms": {k: Summary.of(v).scaled(1000) for k, v in samples.items()},
        "throughput": [t.as_dict() for t in runs],
        "merge": merges,
    }


LAG_ROWS = (
    ("ab", "A → B: READ_READY on A → readable on B (pushed by A's channel)"),
    ("ba", "B → A: READ_READY on B → readable on A (pulled by A's channel)"),
    ("write_a", "floor: execute → READ_READY on A (the write itself)"),
    ("write_b", "floor: execute → READ_READY on B (reactor serve)"),
    ("http", "floor: one HTTP round trip to B (GET /v1/sync/identity)"),
)


def tables(result: dict[str, Any]) -> list[Table]:
    """The tables of a result (this script's JSON), in the order printed."""
    figures = ("p50", "p95", "p99", "mean", "max")
    lag_ms = result["lag_ms"]
    lags = Table(
        f"Sync lag, ms ({result['n']} samples per direction, interleaved, "
        f"{result['warmup']} warm-up rounds)",
        ["path", "n", *figures],
        [[label, lag_ms[k]["n"], *(lag_ms[k][f] for f in figures)] for k, label in LAG_ROWS],
        caption=(
            "One channel, run by A's worker process; B is `reactor serve` (HTTP and worker in "
            "one process). Readable = the other side's change feed handed out the action "
            "(committed and visible with its document view)."
        ),
    )
    tp = result["throughput"]
    rss_keys = sorted({k for t in tp for k in t["peak_rss_mb"]})
    rates = Table(
        "Sync throughput (operations written while no channel ran, then the channel started)",
        ["direction", "documents", "operations", "sync s", "operations/s"]
        + [f"peak RSS {k}, MB" for k in rss_keys],
        [
            [
                f"{t['direction']} ({'push' if t['direction'] == 'A→B' else 'pull'})",
                t["documents"],
                t["operations"],
                t["sync_s"],
                t["operations_per_s"],
                *(t["peak_rss_mb"].get(k) for k in rss_keys),
            ]
            for t in tp
        ],
        caption=(
            "Operations counted on the receiving side every "
            f"{int(POLL_S * 1000)} ms, creates included; the clock starts as the channel is "
            "started. Peak RSS over that window, children included."
        ),
    )
    merge = result["merge"]
    floor = merge["floor_ms"]
    rows: list[list[Any]] = [
        [
            m["rewound"],
            m["appended"],
            m["real_ms"]["p50"],
            m["real_ms"]["max"],
            m["pure_ms"]["p50"],
            m["pure_ms"]["max"],
        ]
        for m in merge["rows"]
    ]
    rows.append(["floor: execute 1 action", 1, floor["p50"], floor["max"], None, None])
    merges = Table(
        f"Merge cost against operations rewound, ms (lanes of {merge['local_operations']:,} "
        f"local operations, {merge['repeats']} repeats each)",
        ["rewound", "appended", "load job p50", "max", "reduce_load p50", "max"],
        rows,
        caption=(
            "load job = reactor.load_batch + wait_for_job on A (workflow, lane lock, the lane "
            "read, the merge, the write); reduce_load = the pure merge alone on the same lane, "
            "in the bench process. Floor: one ADD_TODO_ITEM on a lane of the same length."
        ),
    )
    return [lags, rates, merges]


def main() -> None:
    def extra(p: argparse.ArgumentParser) -> None:
        p.add_argument("--n", type=int, default=100, help="lag samples per direction")
        p.add_argument("--docs", type=int, default=20, help="documents per throughput phase")
        p.add_argument("--ops", type=int, default=500, help="operations per document")
        p.add_argument(
            "--rewinds",
            type=lambda s: [int(v) for v in s.split(",")],
            default=[0, 10, 100, 1000],
            help="operations rewound by the merges, comma-separated (at most 1000)",
        )
        p.add_argument("--repeats", type=int, default=5, help="merges per rewound count")
        p.add_argument("--markdown", action="store_true", help="print the tables as markdown")

    args = parse_args(__doc__.splitlines()[0], extra)
    if max(args.rewinds) > min(LOCAL, DEFAULT_MAX_REWIND):
        raise SystemExit(f"--rewinds: at most {min(LOCAL, DEFAULT_MAX_REWIND)}")
    result = run_bench("sync", lambda s: run(s, args))
    if args.markdown:
        print("\n\n".join(to_markdown(t) for t in tables(result)))
    else:
        _results.show(tables(result))
    if args.json:
        _results.emit_json(result)


if __name__ == "__main__":
    main_guard(main)
