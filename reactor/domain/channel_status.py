"""The sync channel workflow's input and the status it answers queries with:
imported by the workflow through `imports_passed_through`, so the sandbox
does not rebuild these pydantic classes for every workflow instance."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel


class ChannelState(StrEnum):
    """The outcome of the channel's last round (the same words as the
    channel row's `status`)."""

    PENDING = "PENDING"  # no round ended yet
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class ChannelPhase(StrEnum):
    """What the workflow is doing now."""

    SYNCING = "SYNCING"  # a round runs
    WAITING = "WAITING"  # for a change on either side, or the poll interval
    BACKING_OFF = "BACKING_OFF"  # after a failed round, until the next one


class ChannelStatus(BaseModel):
    name: str
    state: ChannelState = ChannelState.PENDING
    phase: ChannelPhase = ChannelPhase.SYNCING
    rounds: int = 0  # rounds run, in total over continue-as-new
    pulled: int = 0  # operations loaded from the remote, in total
    pushed: int = 0  # operations the remote accepted, in total
    attempts: int = 0  # failed rounds in a row
    last_error: str | None = None
    last_round_at: datetime | None = None
    backoff_s: float = 0.0  # the wait after the last failed round; 0 once one succeeds


# A failed round waits this long before the next, doubling per failure in a
# row up to MAX_BACKOFF_S; a round that succeeds resets it.
INITIAL_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0
# With nothing to move, the next round waits for a change on either side at
# most this long: the remote's event stream and the local commits wake it
# sooner, the interval is the safety net for a lost notification.
POLL_INTERVAL_S = 30.0
# Rounds per run: then the workflow continues as new (sooner when Temporal
# suggests it), which keeps its history short.
MAX_ROUNDS = 500


class SyncInput(BaseModel):
    name: str
    rounds: int = 0  # this run's rounds so far (0 for a new run)
    status: ChannelStatus | None = None  # carried over continue-as-new
    initial_backoff_s: float = INITIAL_BACKOFF_S
    max_backoff_s: float = MAX_BACKOFF_S
    poll_interval_s: float = POLL_INTERVAL_S
    max_rounds: int = MAX_ROUNDS


def backoff_after(attempts: int, initial_s: float, max_s: float) -> float:
    """The wait after the `attempts`-th failed round in a row."""
    if attempts <= 0:
        return 0.0
    return min(initial_s * 2.0 ** min(attempts - 1, 62), max_s)
