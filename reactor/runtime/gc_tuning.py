"""Garbage-collector settings for a worker process.

A worker allocates a great many short-lived objects per job (pydantic
models, payloads, futures) and holds long-lived ones (modules, schemas, the
write cache, cached workflow instances). With CPython's default thresholds
(700, 10, 10) the collector ran ~390 times in three runs each of the
benchmark's phases b and d, and each of the 3 full collections walked every
long-lived object: ~85 ms during which the event loop, with every job and
activity in it, stood still. Tuned: 19 young collections, no full one, ~4%
less worker CPU.

`tune_for_worker` freezes what exists once the worker is set up (never
scanned again) and collects the young generation every 10,000 net
allocations instead of 700. Reference counting still frees everything that
is not in a cycle at once; cycles wait a little longer (the benchmark
worker's peak RSS: +8 MB). REACTOR_GC_THRESHOLDS="a,b,c" overrides
the thresholds; "default" leaves the collector alone.
"""

from __future__ import annotations

import gc
import os

WORKER_THRESHOLDS = (10_000, 20, 50)


def thresholds_from_env() -> tuple[int, int, int] | None:
    """The thresholds to use; None to leave the interpreter's."""
    raw = os.environ.get("REACTOR_GC_THRESHOLDS", "").strip()
    if not raw:
        return WORKER_THRESHOLDS
    if raw == "default":
        return None
    try:
        values = tuple(int(p) for p in raw.split(","))
    except ValueError:
        values = ()  # reported below
    if len(values) != 3 or any(v < 0 for v in values):
        raise ValueError(
            f"REACTOR_GC_THRESHOLDS={raw!r}: expected three non-negative integers "
            "'gen0,gen1,gen2' or 'default'"
        )
    return values[0], values[1], values[2]


def tune_for_worker(thresholds: tuple[int, int, int] | None) -> None:
    """Call once the worker is built, before it starts polling."""
    if thresholds is None:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
