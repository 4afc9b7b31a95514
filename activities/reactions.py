"""The reaction drain activity (run as a local activity on the fast path and
as a regular one for competing drains)."""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import activity

from reactor.reactions.drain import ReactionDrainer


class DrainInput(BaseModel):
    name: str
    budget_seconds: float = 5.0
    idle_seconds: float = 0.0  # keep waiting for work this long (local fast path)
    poll_seconds: float = 1.0


class DrainOutput(BaseModel):
    handled: int
    failed: int
    blocked: list[str]
    more: bool
    stopping: bool = False
    woken: int = 0  # see DrainResult.woken


class ReactionActivities:
    def __init__(self, drainer: ReactionDrainer):
        self.drainer = drainer

    @activity.defn(name="drain_reaction")
    async def drain_reaction(self, inp: DrainInput) -> DrainOutput:
        if inp.idle_seconds > 0:
            result = await self.drainer.drain_and_wait(
                inp.name,
                budget_seconds=inp.budget_seconds,
                idle_seconds=inp.idle_seconds,
                poll_seconds=inp.poll_seconds,
                stopping=activity.is_worker_shutdown,
            )
        else:
            result = await self.drainer.drain(inp.name, budget_seconds=inp.budget_seconds)
        return DrainOutput(
            handled=result.handled,
            failed=result.failed,
            blocked=result.blocked,
            more=result.more,
            stopping=result.stopping,
            woken=result.woken,
        )
