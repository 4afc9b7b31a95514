"""Operations as one reactor hands them to another, and what `load()` takes.

A sender describes each operation as it stands in its own log (id, index,
skip, hash, the action), plus two things the receiver cannot know:

- `after`: the operation just before the first one sent, in the sender's
  lane. The receiver must know it (by operation id, or by action id when it
  holds a merged copy of it); otherwise operations are missing in between.
- `dead`: for an operation whose skip leaves others out (an UNDO's NOOP, a
  PRUNE's LOAD_STATE, the head of a merge), the action ids it left out that
  the sender still holds out. A receiver that placed those actions
  elsewhere in its own log drops them too (reactor/domain/merge.py).
"""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from reactor.domain.actions import Action
from reactor.domain.document import Operation

# Batch ids of loads name the reactor the operations came from, so the log
# can tell which operations a peer sent (they are never sent back to it):
# `sync.<origin>.<digest>`.
LOAD_BATCH_PREFIX = "sync."
ORIGIN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
# An operation re-appended by a merge carries this key in its action's
# context: a copy made by this reactor, not the sender's operation.
MERGED_MARK = "merged"


class OperationRef(BaseModel):
    """An operation of the sender's log, named by what the receiver may hold
    of it: its id, or a merged copy with its action id."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=256)
    action_id: str = Field(min_length=1, max_length=256)
    index: int = Field(ge=0)
    hash: str = Field(min_length=1, max_length=256)


class SyncOperation(BaseModel):
    """One operation of the sender's lane."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=256)
    index: int = Field(ge=0)
    skip: int = Field(default=0, ge=0)
    timestamp: datetime
    hash: str = Field(min_length=1, max_length=256)
    action: Action
    dead: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, op: Operation, dead: list[str] | None = None) -> SyncOperation:
        """A stored operation as it is sent."""
        return cls(
            id=op.id,
            index=op.index,
            skip=op.skip,
            timestamp=op.timestamp,
            hash=op.hash,
            action=op.action,
            dead=dead or [],
        )


class LoadRequest(BaseModel):
    """Operations of one lane (document, scope, branch), contiguous in the
    sender's log, after `after` (None: from the lane's first operation)."""

    model_config = ConfigDict(extra="forbid")

    document_id: str = Field(min_length=1, max_length=256)
    scope: str = "global"
    branch: str = Field(default="main", min_length=1, max_length=256)
    document_type: str | None = None
    after: OperationRef | None = None
    operations: list[SyncOperation] = Field(min_length=1)


def load_batch_id(origin: str | None, digest: str, attempt: int = 0) -> str:
    """A load's batch is named by what it carries, so sending it twice is one
    batch; a sender that retries after a failure (whose cause may be gone)
    names its attempt, or it would get the failed batch back."""
    base = f"{LOAD_BATCH_PREFIX}{origin or 'local'}.{digest}"
    return base if attempt == 0 else f"{base}.{attempt}"


def origin_of_job(job_id: str | None) -> str | None:
    """The reactor a loaded operation came from, from its job id."""
    if job_id is None or not job_id.startswith(LOAD_BATCH_PREFIX):
        return None
    origin, _, _ = job_id[len(LOAD_BATCH_PREFIX) :].partition(".")
    return origin or None


def is_merged_copy(action: Action) -> bool:
    return bool(action.context) and MERGED_MARK in (action.context or {})


class LoadedOp(BaseModel):
    """A load job's operation besides its action (which travels in the job's
    `actions`, at the same position)."""

    id: str
    index: int
    skip: int = 0
    hash: str
    dead: list[str] = Field(default_factory=list)


class LoadSpec(BaseModel):
    """What makes a planned job a load: the sender's positions and hashes."""

    after: OperationRef | None = None
    ops: list[LoadedOp]

    def operations(self, actions: list[Action]) -> list[SyncOperation]:
        return [
            SyncOperation(
                id=op.id,
                index=op.index,
                skip=op.skip,
                timestamp=action.timestamp,
                hash=op.hash,
                action=action,
                dead=op.dead,
            )
            for op, action in zip(self.ops, actions, strict=True)
        ]
