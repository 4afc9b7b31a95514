"""Which jobs of a chunk are in progress, told to Temporal in the apply
activity's heartbeat details.

A job that blocks the event loop past the heartbeat timeout, or takes its
worker down, never raises: its attempt just ends. The next attempt reads
the last heartbeat of the one before it and learns which jobs were in
progress when it died, and on how many attempts in a row; the activity
gives such jobs up instead of running them forever."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from temporalio import activity


class ChunkProgress:
    def __init__(self, attempt: int, previous: Sequence[Any] | None):
        """`previous`: the heartbeat details this attempt started with, None
        for a local activity (which cannot heartbeat)."""
        self.heartbeats = previous is not None
        self.attempt = attempt
        self.running: set[int] = set()
        last = previous[0] if previous else None
        left: list[int] = []
        stuck: dict[str, int] = {}
        # Details from an older attempt mean the previous one died before
        # it started any job.
        if isinstance(last, dict) and last.get("attempt") == attempt - 1:
            left = [int(i) for i in last.get("running", [])]
            stuck = {str(k): int(v) for k, v in last.get("stuck", {}).items()}
        # Attempts in a row that ended with the job in progress.
        self.stuck: dict[int, int] = {i: stuck.get(str(i), 0) + 1 for i in left}

    def never_finished(self) -> dict[int, int]:
        """The jobs the previous attempt died in, with how many attempts in
        a row ended while each was in progress."""
        return dict(self.stuck)

    def beat(self) -> None:
        if self.heartbeats:
            activity.heartbeat(
                {
                    "attempt": self.attempt,
                    "running": sorted(self.running),
                    "stuck": {str(i): n for i, n in self.stuck.items()},
                }
            )

    async def started(self, index: int) -> None:
        """Named in a heartbeat before the job runs: a job that blocks the
        event loop gives the heartbeat no other chance to leave."""
        self.running.add(index)
        if self.heartbeats:
            self.beat()
            await asyncio.sleep(0)  # the SDK sends heartbeats from a task

    def finished(self, index: int) -> None:
        self.running.discard(index)

    def stopped(self) -> None:
        """The attempt raised: no job is left in progress (the SDK hands
        the last heartbeat over before the failure)."""
        self.running.clear()
        self.beat()
