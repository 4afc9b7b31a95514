"""Garbage-collector settings for a worker process.

A worker allocates a great many short-lived objects per job (pydantic
models, payloads, futures) and holds long-lived ones (modules, schemas, the
write cache, cached workflow instances). With CPython's default thresholds
(700, 10, 10) the collector ran ~390 times in three runs each of the
benchmark's phases b and d, and each of the 3 full collections walked every
long-lived object: ~85 ms during which the event loop, with every job and
activity in it, stood still. Tuned: 19 young collections, no full one, ~4%
less worker CPU.

`gc_paused` is for any process, a user's included: it holds the collector
off for one synchronous stretch that builds many objects which all stay
alive, such as planning a batch (see its docstring).

`tune_for_worker` freezes what exists once the worker is set up (never
scanned again) and collects the young generation every 10,000 net
allocations instead of 700. Reference counting still frees everything that
is not in a cycle at once; cycles wait a little longer (the benchmark
worker's peak RSS: +8 MB). REACTOR_GC_THRESHOLDS="a,b,c" overrides
the thresholds; "default" leaves the collector alone (read by
reactor.runtime.settings).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

WORKER_THRESHOLDS = (10_000, 20, 50)


def tune_for_worker(thresholds: tuple[int, int, int] | None) -> None:
    """Call once the worker is built, before it starts polling."""
    if thresholds is None:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Holds the cyclic collector off for a synchronous stretch, then
    restores it (left off if it was off).

    Planning a 100-job batch of 10 actions builds ~10,000 objects (request
    models, normalized inputs, actions) that all survive the stretch. With
    the default thresholds the collector ran ~30 times while one batch was
    planned, each run walking every young survivor again, and the survivors
    brought the next full collection of the whole heap closer: in a process
    with ~190,000 objects, collection was 12 of the 21 us a submitted action
    cost (bench notes in bench/RESULTS.md). Nothing is lost by waiting:
    reference counting still frees every non-cyclic object at once, and
    cycles are collected at the next threshold after the stretch.

    Only around code that does not await: other coroutines would run with
    the collector off for as long as the await takes."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
