"""The state of a lane given its operations with skips: the rules behind
UNDO, REDO and PRUNE, shared by the write path, replay and verification.

Operations are never rewritten; history actions append one operation each.

- `skip = n` on the operation at index i leaves out the n operations before
  it (indexes i-n .. i-1). Which operations count (the *effective log*) is
  found walking back from the newest: an operation counts, then the walk
  jumps over its skipped ones. The state after operation i is the state at
  revision i - skip (the state after the first i - skip operations), reduced
  by operation i's action: reducing the effective log from the initial state
  gives the same (tests/unit/test_history.py checks that property).
- **UNDO** appends `NOOP {"undone": t}` where t is the newest operation of
  the effective log that is not a NOOP, with skip = index - t. Consecutive
  undos therefore go back one operation each: the second skips over the
  first NOOP too (skip 3 after skip 1, as in the reference), and an undo
  never uncovers what an earlier one left out. Nothing to undo (only NOOPs,
  or an empty lane) is `NothingToUndo`.
- **REDO** appends a copy of the action of the most recently undone
  operation still not redone: its type and input, the REDO's id and
  timestamp, and `context.redo_of` = that operation's index (how a later
  REDO tells a redone operation from a new one). Walking back from the
  newest, REDO operations and undo NOOPs pair off; anything else (a new
  ordinary action, NOOP, LOAD_STATE) ends what can be redone:
  `NothingToRedo`.
- **PRUNE {start, end}** (0 <= start < end <= the lane's revision, else
  `InvalidPruneRange`) appends `LOAD_STATE {"state": <state at revision
  end>}` with skip = index - start (or further back, past operations
  before `start` that already do not count): the range collapses into that
  one operation in the effective log. Operations from `end` on are left out too,
  so a PRUNE up to the head keeps the current state. Undoing it leaves the
  LOAD_STATE out, and its skip with it: the state returns to the one
  before the PRUNE.
- **LOAD_STATE {state}** replaces the scope's state (validated against the
  scope's schema when the batch is planned); **NOOP** changes nothing.

A model upgrade's operation (UPGRADE_DOCUMENT, reactor/domain/upgrades.py)
is never undone: UNDO finds nothing to undo behind it, and a PRUNE may
collapse it only into a LOAD_STATE of a state after it.

SET_NAME changes the header, not the scope's state: undoing or redoing it
changes no state and leaves the name as it is.

A merge of another reactor's operations (reactor/domain/merge.py) is a
barrier too: UNDO does not undo a merge's first operation (it would bring
back the local order the merge replaced), and REDO does not reach across
any merged operation.

The write path reads the lane's whole log for a job with UNDO, REDO or
PRUNE (under the lane lock, so the result is the same on a retry); replay
and verification read it from index 0 only for a lane with a skip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from reactor.domain.actions import Action
from reactor.domain.lane_reducer import LaneReducer
from reactor.domain.model import DocumentModel
from reactor.domain.sync import is_merged_copy
from reactor.domain.upgrades import UPGRADE_ACTION

HISTORY_ACTIONS = frozenset({"UNDO", "REDO", "PRUNE"})
REDO_MARK = "redo_of"
PRUNED_TO = "pruned_to"  # a PRUNE's LOAD_STATE: the newest timestamp it folds in


class Logged(Protocol):
    """What the rules need of an operation (Operation and LoggedOp have it)."""

    @property
    def index(self) -> int: ...
    @property
    def skip(self) -> int: ...
    @property
    def action(self) -> Action: ...


@dataclass(frozen=True, slots=True)
class LoggedOp:
    index: int
    skip: int
    action: Action


def is_undo(op: Logged) -> bool:
    return op.action.type == "NOOP" and op.skip > 0


def effective_indexes(log: Sequence[Logged], revision: int) -> list[int]:
    """The indexes that count among the first `revision` operations, ascending.
    `log[i]` must be the operation at index i."""
    kept: list[int] = []
    i = revision - 1
    while i >= 0:
        kept.append(i)
        i -= 1 + log[i].skip
    kept.reverse()
    return kept


def state_at(
    model: DocumentModel | None, scope: str, log: Sequence[Logged], revision: int
) -> LaneReducer:
    """The lane's state after its first `revision` operations."""
    lane = LaneReducer.initial(model, scope)
    for i in effective_indexes(log, revision):
        lane.reduce(log[i].action)
    return lane


def undo_target(log: Sequence[Logged], revision: int) -> int | None:
    """The index an UNDO appended at `revision` leaves out, if any."""
    i = revision - 1
    while i >= 0:
        if log[i].action.type == UPGRADE_ACTION:
            return None  # an upgrade is undone by no UNDO: the header keeps its version
        if log[i].skip > 0 and is_merged_copy(log[i].action):
            return None  # a merge's first operation: undoing it would undo the merge
        if log[i].action.type != "NOOP":
            return i
        i -= 1 + log[i].skip
    return None


def redo_source(log: Sequence[Logged], revision: int) -> int | None:
    """The index whose action a REDO appended at `revision` re-applies, if any."""
    redone = 0
    for i in range(revision - 1, -1, -1):
        op = log[i]
        if is_merged_copy(op.action):
            return None  # a merge ends what can be redone, as a new action does
        if is_undo(op):
            if redone == 0:
                return int(op.action.input["undone"])
            redone -= 1
        elif REDO_MARK in (op.action.context or {}):
            redone += 1
        else:
            return None
    return None


def history_step(
    model: DocumentModel, scope: str, log: Sequence[Logged], index: int, action: Action
) -> tuple[int, Action, LaneReducer | None]:
    """(skip, stored action, lane to continue from or None to keep the
    current one) for `action` appended at `index`. Raises HistoryError."""
    if action.type == "UNDO":
        target = undo_target(log, index)
        if target is None:
            raise HistoryError("NothingToUndo", f"nothing to undo in scope {scope!r}")
        noop = _derived(action, "NOOP", {"undone": target}, action.context)
        return index - target, noop, state_at(model, scope, log, target)
    if action.type == "REDO":
        source = redo_source(log, index)
        if source is None:
            raise HistoryError(
                "NothingToRedo", f"nothing to redo in scope {scope!r} (nothing undone since)"
            )
        original = log[source].action
        context = {**(action.context or {}), REDO_MARK: source}
        return 0, _derived(action, original.type, dict(original.input), context), None
    if action.type == "PRUNE":
        start, end = int(action.input["start"]), int(action.input["end"])
        if not 0 <= start < end <= index:
            raise HistoryError(
                "InvalidPruneRange",
                f"PRUNE start={start} end={end}: needs 0 <= start < end <= {index} "
                f"(the revision of scope {scope!r})",
            )
        upgraded = [
            i for i in effective_indexes(log, index) if log[i].action.type == UPGRADE_ACTION
        ]
        if upgraded and start <= upgraded[-1] and end <= upgraded[-1]:
            raise HistoryError(
                "InvalidPruneRange",
                f"PRUNE start={start} end={end}: would leave out the model upgrade at index "
                f"{upgraded[-1]} of scope {scope!r} (end must be after it)",
            )
        state = state_at(model, scope, log, end).state()
        # What the state holds is as old as the newest action it folds in:
        # a merge places the LOAD_STATE there (reactor/domain/merge.py), so
        # another reactor's concurrent writes stay after it.
        covered = [log[i].action.timestamp for i in effective_indexes(log, end)]
        context = dict(action.context or {})
        if covered:
            context[PRUNED_TO] = max(covered).isoformat()
        # The skip reaches back to just after the newest operation before
        # `start` that counts: one that already does not count (undone,
        # rewound by a merge) must not count again through it.
        before = [i for i in effective_indexes(log, index) if i < start]
        reach = before[-1] + 1 if before else 0
        return index - reach, _derived(action, "LOAD_STATE", {"state": state}, context), None
    return 0, action, None


class LoggedLane:
    """A lane with its log, taking actions as the write path does: a history
    action becomes what it is stored as (with its skip), the state follows
    the rules above, and the log grows by the stored operation. The write
    path and a signing client both follow a lane this way."""

    def __init__(self, lane: LaneReducer, model: DocumentModel, scope: str, log: Sequence[Logged]):
        self.lane = lane
        self._model = model
        self._scope = scope
        self._log: list[Logged] = list(log)

    def apply(self, action: Action) -> tuple[int, Action]:
        """(skip, the action as stored). Raises HistoryError before changing
        anything, or what the model's reducer raises."""
        index = len(self._log)
        skip, stored, replaced = history_step(self._model, self._scope, self._log, index, action)
        if replaced is not None:
            self.lane = replaced
        self.lane.reduce(stored)
        self._log.append(LoggedOp(index, skip, stored))
        return skip, stored


class HistoryError(Exception):
    """A history action the lane cannot take; `error_type` names it."""

    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type


def _derived(
    action: Action, type_: str, input_: dict[str, Any], context: dict[str, Any] | None
) -> Action:
    return Action(
        id=action.id,
        type=type_,
        input=input_,
        scope=action.scope,
        timestamp=action.timestamp,
        context=context,
    )


class Replayer:
    """Replays a lane operation by operation, honouring skips, from `lane`,
    the state at revision `start` (a keyframe's, or the initial one). A skip
    reaches back into the log, so it needs the replay to start at 0 and keep
    the operations it replayed (`keep_log`: a lane known to have no skip
    spares holding its whole log)."""

    def __init__(
        self,
        model: DocumentModel | None,
        scope: str,
        lane: LaneReducer,
        start: int = 0,
        *,
        keep_log: bool = True,
    ):
        self._model = model
        self._scope = scope
        self._lane = lane
        self._start = start
        self._next = start
        self._keep = keep_log and start == 0
        self._log: list[Logged] = []

    def apply(self, op: Logged) -> str:
        """Reduces `op` and returns the hash of the state after it."""
        if op.index != self._next:
            raise ValueError(f"operation {op.index} is not the next one to replay")
        if op.skip > 0:
            if self._model is None or not self._keep:
                raise ValueError(f"operation {op.index}'s skip needs the lane's model and log")
            self._lane = state_at(self._model, self._scope, self._log, op.index - op.skip)
        self._lane.reduce(op.action)
        self._next += 1
        if self._keep:
            self._log.append(op)
        return self._lane.digest()

    @property
    def lane(self) -> LaneReducer:
        return self._lane
