"""Skip semantics (reactor/domain/history.py) through the pure job reduction:
undo chains, redo, prune, their interleavings, and replay honouring skips."""

from __future__ import annotations

import types
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict

from reactor.domain.actions import Action
from reactor.domain.batch import PlannedJob
from reactor.domain.errors import ValidationError
from reactor.domain.hashing import state_hash
from reactor.domain.history import Replayer, effective_indexes
from reactor.domain.lane_reducer import LaneReducer
from reactor.domain.model import DocumentModel, ModelRegistry
from reactor.domain.reduction import Head, NewOperation, initial_head, reduce_job
from reactor.domain.rejection import JobRejected


class ItemsState(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[int] = []


class AddInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int


def _reducer(state: ItemsState, action: Action) -> ItemsState:
    return ItemsState(items=[*state.items, int(action.input["n"])])


_module = types.ModuleType("items_model")
_module.document_type = "test/items"  # type: ignore[attr-defined]
_module.GlobalState = ItemsState  # type: ignore[attr-defined]
_module.actions = {"ADD": AddInput}  # type: ignore[attr-defined]
_module.reducer = _reducer  # type: ignore[attr-defined]
MODEL = DocumentModel.from_module(_module)
REGISTRY = ModelRegistry([MODEL])
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Lane:
    """A lane's stored log, written one job at a time by the pure reduction."""

    def __init__(self, keyframe_interval: int = 1000) -> None:
        self.ops: list[NewOperation] = []
        self.head: Head = initial_head(MODEL, "global")
        self.keyframes: dict[int, tuple[str, bytes]] = {}
        self.interval = keyframe_interval
        self.jobs = 0

    def run(self, *specs: tuple[str, dict[str, Any]]) -> list[NewOperation]:
        actions = [
            Action(type=t, input=i, timestamp=START + timedelta(seconds=len(self.ops) + n))
            for n, (t, i) in enumerate(specs)
        ]
        job = PlannedJob(
            index=0,
            key="j",
            document_id="doc",
            document_type=MODEL.document_type,
            scope="global",
            branch="main",
            deps=[],
            after=None,
            actions=actions,
        )
        reduced = reduce_job(
            job,
            f"b{self.jobs}:0",
            self.head,
            MODEL,
            registry=REGISTRY,
            keyframe_interval=self.interval,
            history=self.ops,
        )
        self.jobs += 1
        self.ops.extend(reduced.ops)
        self.head = reduced.head
        self.keyframes.update({i: (h, js) for i, h, js in reduced.keyframes})
        return reduced.ops

    def items(self) -> list[int]:
        assert self.head.validated is not None
        return list(self.head.validated.items)


def add(n: int) -> tuple[str, dict[str, Any]]:
    return ("ADD", {"n": n})


UNDO: tuple[str, dict[str, Any]] = ("UNDO", {})
REDO: tuple[str, dict[str, Any]] = ("REDO", {})


def _state_hash(items: list[int]) -> str:
    return state_hash({"items": items})


def test_undo_appends_a_noop_skipping_the_undone_operation() -> None:
    lane = Lane()
    lane.run(add(1), add(2), add(3))
    (noop,) = lane.run(UNDO)
    assert (noop.index, noop.skip, noop.action.type) == (3, 1, "NOOP")
    assert noop.action.input == {"undone": 2}
    assert noop.hash == _state_hash([1, 2])
    assert lane.items() == [1, 2]


def test_consecutive_undos_go_back_one_operation_each() -> None:
    lane = Lane()
    lane.run(add(1), add(2), add(3))
    ops = lane.run(UNDO, UNDO, UNDO)
    assert [(o.skip, o.action.input["undone"]) for o in ops] == [(1, 2), (3, 1), (5, 0)]
    assert [o.hash for o in ops] == [_state_hash([1, 2]), _state_hash([1]), _state_hash([])]
    with pytest.raises(JobRejected) as caught:
        lane.run(UNDO)
    assert caught.value.error_type == "NothingToUndo"


def test_an_undo_never_uncovers_an_earlier_undo() -> None:
    lane = Lane()
    lane.run(add(1), add(2), UNDO, add(3), UNDO)
    assert lane.items() == [1]
    (noop,) = lane.run(UNDO)
    assert noop.action.input == {"undone": 0}
    assert lane.items() == []


def test_redo_reapplies_the_undone_actions_newest_first() -> None:
    lane = Lane()
    lane.run(add(1), add(2), add(3), UNDO, UNDO)
    (redo,) = lane.run(REDO)
    assert (redo.action.type, redo.action.input, redo.skip) == ("ADD", {"n": 2}, 0)
    assert redo.action.context == {"redo_of": 1}
    assert lane.items() == [1, 2]
    lane.run(REDO)
    assert lane.items() == [1, 2, 3]
    with pytest.raises(JobRejected) as caught:
        lane.run(REDO)
    assert caught.value.error_type == "NothingToRedo"


def test_a_new_action_ends_what_can_be_redone() -> None:
    lane = Lane()
    lane.run(add(1), add(2), UNDO, add(5))
    for blocked in ([REDO], [("NOOP", {}), REDO]):
        with pytest.raises(JobRejected) as caught:
            lane.run(*blocked)
        assert caught.value.error_type == "NothingToRedo"
    assert lane.items() == [1, 5]


def test_undo_of_a_redo_can_be_redone() -> None:
    lane = Lane()
    lane.run(add(1), add(2), UNDO, REDO, UNDO, REDO)
    assert lane.items() == [1, 2]
    with pytest.raises(JobRejected):
        lane.run(REDO)


def test_nothing_to_undo_on_an_empty_lane_or_only_noops() -> None:
    for before in ([], [("NOOP", {})]):
        lane = Lane()
        if before:
            lane.run(*before)
        with pytest.raises(JobRejected) as caught:
            lane.run(UNDO)
        assert caught.value.error_type == "NothingToUndo"


def test_prune_appends_one_load_state_carrying_the_state_at_end() -> None:
    lane = Lane()
    lane.run(add(1), add(2), add(3), add(4))
    (load,) = lane.run(("PRUNE", {"start": 1, "end": 4}))
    assert (load.index, load.skip, load.action.type) == (4, 3, "LOAD_STATE")
    assert load.action.input == {"state": {"items": [1, 2, 3, 4]}}
    assert effective_indexes(lane.ops, 5) == [0, 4]
    assert lane.items() == [1, 2, 3, 4]
    lane.run(add(5))
    assert lane.items() == [1, 2, 3, 4, 5]


def test_prune_below_the_head_returns_to_the_state_at_end() -> None:
    lane = Lane()
    lane.run(add(1), add(2), add(3))
    lane.run(("PRUNE", {"start": 0, "end": 2}))
    assert lane.items() == [1, 2]
    lane.run(UNDO)  # leaves the LOAD_STATE out, and its skip with it
    assert lane.items() == [1, 2, 3]


@pytest.mark.parametrize(("start", "end"), [(2, 2), (3, 1), (-1, 2), (0, 4), (5, 6)])
def test_prune_ranges_that_are_empty_reversed_or_out_of_range_fail(start: int, end: int) -> None:
    lane = Lane()
    lane.run(add(1), add(2), add(3))
    with pytest.raises(JobRejected) as caught:
        lane.run(("PRUNE", {"start": start, "end": end}))
    assert caught.value.error_type == "InvalidPruneRange"
    assert f"start={start} end={end}" in str(caught.value)
    assert len(lane.ops) == 3


def test_load_state_is_checked_against_the_scope_schema() -> None:
    good = MODEL.validate_input("local", "LOAD_STATE", {"state": {}})
    assert good == {"state": {}}
    with pytest.raises(ValidationError) as caught:
        MODEL.validate_input("global", "LOAD_STATE", {"state": {"items": ["x"]}})
    assert caught.value.field == "input.state.items.0"
    assert "UNDO" in MODEL.known_actions("local")


def test_replay_with_skips_reproduces_every_stored_hash() -> None:
    lane = Lane()
    lane.run(add(1), add(2), UNDO, add(3), UNDO, UNDO, REDO, ("PRUNE", {"start": 1, "end": 7}))
    replayer = Replayer(MODEL, "global", LaneReducer.initial(MODEL, "global"))
    assert [replayer.apply(_logged(o)) for o in lane.ops] == [o.hash for o in lane.ops]
    with pytest.raises(ValueError):
        Replayer(MODEL, "global", LaneReducer.initial(MODEL, "global"), start=3).apply(
            _logged(lane.ops[4], index=3)
        )
    lean = Replayer(MODEL, "global", LaneReducer.initial(MODEL, "global"), keep_log=False)
    lean.apply(lane.ops[0])
    lean.apply(lane.ops[1])
    with pytest.raises(ValueError):
        lean.apply(lane.ops[2])  # the UNDO's skip needs the operations it kept none of


def _logged(op: NewOperation, index: int | None = None) -> NewOperation:
    if index is None:
        return op
    return NewOperation(op.id, index, op.timestamp, op.hash, op.action, op.skip)


# The property: any valid sequence of actions, written in jobs of any size,
# leaves each operation's hash equal to the state of reducing the effective
# action list, and to an independent stack model of undo and redo.
_step = st.one_of(
    st.integers(0, 9).map(add),
    st.just(UNDO),
    st.just(REDO),
    st.just(("NOOP", {})),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_step, max_size=25), st.integers(1, 4), st.integers(1, 5))
def test_replaying_with_skips_equals_reducing_the_effective_actions(
    steps: list[tuple[str, dict[str, Any]]], job_size: int, interval: int
) -> None:
    effective: list[int] = []
    undone: list[int] = []
    valid: list[tuple[str, dict[str, Any]]] = []
    expected: list[list[int]] = []
    for kind, data in steps:
        if kind == "UNDO":
            if not effective:
                continue
            undone.append(effective.pop())
        elif kind == "REDO":
            if not undone:
                continue
            effective.append(undone.pop())
        else:
            undone.clear()
            if kind == "ADD":
                effective.append(data["n"])
        valid.append((kind, data))
        expected.append(list(effective))
    lane = Lane(keyframe_interval=interval)
    for first in range(0, len(valid), job_size):
        lane.run(*valid[first : first + job_size])
    assert [o.hash for o in lane.ops] == [_state_hash(s) for s in expected]
    for revision in range(1, len(lane.ops) + 1):
        state = LaneReducer.initial(MODEL, "global")
        for i in effective_indexes(lane.ops, revision):
            state.reduce(lane.ops[i].action)
        assert state.digest() == lane.ops[revision - 1].hash
    for index, (digest, snapshot) in lane.keyframes.items():
        assert digest == _state_hash(expected[index])
        assert snapshot == f'{{"items":{expected[index]}}}'.replace(" ", "").encode()
    replayer = Replayer(MODEL, "global", LaneReducer.initial(MODEL, "global"))
    assert [replayer.apply(o) for o in lane.ops] == [o.hash for o in lane.ops]
