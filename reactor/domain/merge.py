"""Loading another reactor's operations into a lane: append them as they
are, or merge them with the local ones by reshuffling. Pure: the apply path
(reactor/application/apply.py) reads the lane and writes what this returns.

The model. A lane's *content* is its alive actions: the actions of its
effective operations (reactor/domain/history.py), named by action id. An
action that a skip leaves out for good (undone, pruned) is *dead*, and dead
wins: once a reactor knows an action is dead it never comes back through
sync. Two reactors whose lanes hold the same alive actions converge when
both order them the same way, and the order is canonical: by timestamp,
then action id, then operation id, with a document's CREATE_DOCUMENT first.

Loading a run of the sender's operations:

1. Operations whose id the lane already holds are dropped (idempotent).
2. The sender's `after` (the operation before the run) must be known here,
   by operation id or by action id; else `MissingOperationsError`.
3. **Append**: when `after` is this lane's head operation (the two logs are
   the same up to there, since a verbatim operation only ever lands on the
   operation it followed) and no incoming action is known here, the
   operations are appended as they are, re-reduced, and every hash must
   equal the sender's (`HashMismatchError`).
4. **Merge** otherwise: the lane's alive actions, plus the incoming ones,
   minus every action dead on either side, sorted canonically. The longest
   prefix of the lane's effective operations that already follows that
   order stays; the rest of the order is re-appended at the head as copies
   (new operation ids, `context.merged`), the first one with `skip`
   covering every local operation after the kept prefix. Incoming actions
   the sender holds dead are appended too, just before the run, which
   skips them: every write is held on both sides (as a NOOP that keeps
   the action in its context, so that no state refuses it). An action the merged
   order makes invalid (its reducer refuses it there: the same child added
   on both sides, a write after a delete) is held and left out the same
   way; both sides compute the same order, so both refuse it. Stored operations
   are never rewritten. The create operation never moves. Rewinding more
   than `max_rewind` local operations is `ExcessiveReshuffleError`.

Why rewind to the first out-of-order operation, and not only to the
earliest incoming timestamp: a reactor can apply its own writes out of
timestamp order (two concurrent jobs on a lane), and two reactors that kept
such a local order would otherwise never agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from reactor.domain.actions import Action
from reactor.domain.history import PRUNED_TO, effective_indexes
from reactor.domain.ids import uuid5_text
from reactor.domain.sync import MERGED_MARK, OperationRef, SyncOperation

DEFAULT_MAX_REWIND = 1000
# Where a held dead action keeps what it was (see `buried`).
DEAD_MARK = "dead"
_COPY_NAMESPACE = bytes.fromhex("3a7c5e2f9b1d4c6e8a0f2b4d6c8e0a1b")


class LogOp(Protocol):
    """What a merge needs of a stored operation (Operation has it)."""

    @property
    def id(self) -> str: ...
    @property
    def index(self) -> int: ...
    @property
    def skip(self) -> int: ...
    @property
    def timestamp(self) -> datetime: ...
    @property
    def action(self) -> Action: ...


class LoadError(Exception):
    """A load the lane cannot take; `error_type` names it (a job's error type)."""

    error_type = "LoadError"


class MissingOperationsError(LoadError):
    error_type = "MissingOperationsError"


class HashMismatchError(LoadError):
    error_type = "HashMismatchError"


class ExcessiveReshuffleError(LoadError):
    error_type = "ExcessiveReshuffleError"


@dataclass(frozen=True, slots=True)
class Planned:
    """One operation to append: as received (`expected_hash` is the sender's
    hash, which the re-reduced state must match) or a merged copy (None)."""

    id: str
    skip: int
    action: Action
    expected_hash: str | None


@dataclass
class LoadPlan:
    """What to append, in order. `base` is the revision whose state the
    first appended operation starts from (after its skip); `rewound` the
    local operations the merge skipped over."""

    ops: list[Planned] = field(default_factory=list)
    # Incoming actions already dead at the sender, held here too (so no
    # write is missing on either side) but appended before the run, whose
    # first operation's skip leaves them out. Their skip is set by the
    # reduction, which drops one its reducer refuses.
    dead: list[Planned] = field(default_factory=list)
    merged: bool = False
    rewound: int = 0
    base: int = 0


def sort_key(action: Action, op_id: str) -> tuple[datetime, str, str]:
    """The canonical order. A PRUNE's LOAD_STATE sorts at the newest action
    it folds in, not at its own time: writes another reactor made in
    between come after the state it loads, not under it."""
    at = action.timestamp
    pruned_to = (action.context or {}).get(PRUNED_TO)
    if action.type == "LOAD_STATE" and isinstance(pruned_to, str):
        try:
            at = min(at, datetime.fromisoformat(pruned_to))
        except ValueError:
            pass
    return (at, action.id, op_id)


def alive_actions(log: Sequence[LogOp]) -> dict[str, LogOp]:
    """Action id -> the effective operation carrying it, in effective order."""
    return {log[i].action.id: log[i] for i in effective_indexes(log, len(log))}


def dead_actions(log: Sequence[LogOp]) -> set[str]:
    alive = alive_actions(log)
    return {op.action.id for op in log} - alive.keys()


def dead_covered(log: Sequence[LogOp], index: int, dead: set[str] | None = None) -> list[str]:
    """The action ids the skip of operation `index` leaves out that are dead
    in the lane now: what a sender tells a receiver with it. `dead`: the
    lane's `dead_actions`, for a caller annotating several operations."""
    op = log[index]
    if op.skip == 0:
        return []
    if dead is None:
        dead = dead_actions(log)
    covered = {log[i].action.id for i in range(index - op.skip, index)}
    return sorted(covered & dead)


def copy_id(job_id: str, action_id: str) -> str:
    """A merged copy's operation id: the same on a retry of the job."""
    return uuid5_text(_COPY_NAMESPACE, f"{job_id}/{action_id}")


def plan_load(
    log: Sequence[LogOp],
    incoming: Sequence[SyncOperation],
    after: OperationRef | None,
    *,
    scope: str,
    job_id: str,
    max_rewind: int = DEFAULT_MAX_REWIND,
) -> LoadPlan:
    """What loading `incoming` after `after` appends to the lane `log`
    (log[i] is the operation at index i). Raises LoadError."""
    held_ops = {op.id for op in log}
    held_actions = {op.action.id for op in log}
    if after is not None and after.id not in held_ops and after.action_id not in held_actions:
        raise MissingOperationsError(
            f"the sender's operation {after.index} ({after.id}) before index "
            f"{incoming[0].index} is not in this lane: operations are missing in between"
        )
    fresh = [op for op in incoming if op.id not in held_ops]
    revision = len(log)
    head_id = log[-1].id if log else None
    appendable = (
        fresh
        and len(fresh) == len(incoming)
        and incoming[0].index == revision  # the sender's positions are this lane's
        and (after.id if after is not None else None) == head_id
        and not any(op.action.id in held_actions for op in fresh)
    )
    if appendable:
        return LoadPlan(
            ops=[Planned(op.id, op.skip, op.action, op.hash) for op in fresh],
            base=revision,
        )
    return _merge(
        log, fresh, incoming, held_actions, scope=scope, job_id=job_id, max_rewind=max_rewind
    )


def _merge(
    log: Sequence[LogOp],
    fresh: Sequence[SyncOperation],
    incoming: Sequence[SyncOperation],
    held: set[str],
    *,
    scope: str,
    job_id: str,
    max_rewind: int,
) -> LoadPlan:
    """`held`: the action ids of every operation in `log`."""
    effective = effective_indexes(log, len(log))
    alive = {log[i].action.id: log[i] for i in effective}
    dead = held - alive.keys()
    for op in incoming:
        dead.update(op.dead)
    candidates: dict[str, tuple[Action, str]] = {
        a: (op.action, op.id) for a, op in alive.items() if a not in dead
    }
    dead_fresh: dict[str, tuple[Action, str]] = {}
    for op in fresh:
        # An action held here is placed already, or dead here (dead wins).
        if op.action.id in held:
            continue
        if op.action.id in dead:
            dead_fresh.setdefault(op.action.id, (op.action, op.id))
        else:
            candidates.setdefault(op.action.id, (op.action, op.id))
    order = sorted(candidates.values(), key=lambda c: sort_key(c[0], c[1]))
    if scope == "document":
        order.sort(key=lambda c: c[0].type != "CREATE_DOCUMENT")  # stable: the create first
    # The longest prefix of the effective log that already follows `order`.
    kept = 0
    while (
        kept < len(effective)
        and kept < len(order)
        and log[effective[kept]].action.id == order[kept][0].id
    ):
        kept += 1
    tail = order[kept:]
    base = effective[kept - 1] + 1 if kept else 0
    rewound = len(log) - base
    held_dead = [
        Planned(copy_id(job_id, a.id), 0, buried(a), None)
        for a, op_id in sorted(dead_fresh.values(), key=lambda c: sort_key(c[0], c[1]))
    ]
    if not tail and rewound == 0 and not held_dead:
        return LoadPlan(merged=True, base=len(log))
    if rewound > max_rewind:
        raise ExcessiveReshuffleError(
            f"merging would rewind {rewound} operations of scope {scope!r}, over the limit of "
            f"{max_rewind}"
        )
    ops = [Planned(copy_id(job_id, a.id), 0, _marked(a), None) for a, _ in tail]
    plan = LoadPlan(ops=ops, dead=held_dead, merged=True, rewound=rewound, base=base)
    if not ops:
        stamps = [log[i].timestamp for i in range(base, len(log))]
        plan.ops.append(
            carrier(job_id, scope, max(stamps + [p.action.timestamp for p in held_dead]))
        )
    return plan


def carrier(job_id: str, scope: str, at: datetime) -> Planned:
    """A NOOP to carry a merge's skip when nothing else is re-appended (only
    dead actions to leave out)."""
    noop = Action(
        id=copy_id(job_id, "noop"),
        type="NOOP",
        input={},
        scope=scope,
        timestamp=at,
        context={MERGED_MARK: True},
    )
    return Planned(noop.id, 0, noop, None)


def buried(action: Action) -> Action:
    """How a dead action is held: a NOOP under its id and timestamp, the
    action itself in its context. Any state takes a NOOP, so the action is
    held whatever the state where it lands (its own reducer may refuse it
    there), and replay and verification pass over it."""
    context = {
        **(action.context or {}),
        MERGED_MARK: True,
        DEAD_MARK: {"type": action.type, "input": action.input},
    }
    return action.model_copy(update={"type": "NOOP", "input": {}, "context": context})


def _marked(action: Action) -> Action:
    context = {**(action.context or {}), MERGED_MARK: True}
    return action.model_copy(update={"context": context})
