"""Activities of the sync channel workflow: one round of pull and push, and
the wait for something to move."""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import activity


class SyncRoundInput(BaseModel):
    name: str


class RoundResult(BaseModel):
    ok: bool
    pulled: int = 0  # operations loaded here
    pushed: int = 0  # operations the remote accepted
    more: bool = False  # a page was full: more is waiting on one side
    error: str | None = None  # why the round failed (ok false)
    removed: bool = False  # the channel is gone: its workflow ends

    @property
    def moved(self) -> bool:
        return self.pulled > 0 or self.pushed > 0 or self.more


class WaitInput(BaseModel):
    name: str
    timeout_s: float


class WaitResult(BaseModel):
    changed: bool  # false: the timeout passed


class SyncActivities:
    @activity.defn(name="sync_round")
    async def sync_round(self, inp: SyncRoundInput) -> RoundResult:
        raise NotImplementedError

    @activity.defn(name="wait_for_changes")
    async def wait_for_changes(self, inp: WaitInput) -> WaitResult:
        raise NotImplementedError
