"""Reducing a job without I/O (reactor/domain/reduction.py): the operations
it appends, the new head, the keyframes, and its header changes as values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from reactor.domain.actions import Action
from reactor.domain.batch import PlannedJob
from reactor.domain.document_scope import initial_document_state, reduce_document_scope
from reactor.domain.errors import ReducerError
from reactor.domain.hashing import state_hash
from reactor.domain.model import DocumentModel, ModelRegistry
from reactor.domain.reduction import (
    Head,
    HeaderCreated,
    HeaderUpdated,
    Reduction,
    ScopeCreated,
    initial_head,
    operation_id,
    reduce_job,
)
from reactor.domain.rejection import JobRejected
from reactor.domain.signing import SignatureError
from reactor.models import document_drive, todo_list

TODO = DocumentModel.from_module(todo_list)
DRIVE = DocumentModel.from_module(document_drive)
REGISTRY = ModelRegistry([TODO, DRIVE])
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _actions(*specs: tuple[str, dict[str, Any]]) -> list[Action]:
    return [
        Action(type=kind, input=data, timestamp=START + timedelta(seconds=i))
        for i, (kind, data) in enumerate(specs)
    ]


def _job(scope: str, actions: list[Action], document_type: str = TODO.document_type) -> PlannedJob:
    return PlannedJob(
        index=0,
        key="j",
        document_id="doc-1",
        document_type=document_type,
        scope=scope,
        branch="main",
        deps=[],
        after=None,
        actions=actions,
    )


def _adds(count: int, first: int = 0) -> list[Action]:
    return _actions(
        *[("ADD_TODO_ITEM", {"id": f"i{n}", "text": f"item {n}"}) for n in range(first, count)]
    )


def _states_after(model: DocumentModel, state: dict[str, Any], actions: list[Action]) -> list[Any]:
    states = []
    for action in actions:
        state = model.reduce("global", state, action)
        states.append(state)
    return states


def test_a_global_job_yields_its_operations_hashes_and_new_head() -> None:
    start = TODO.initial_state("global")
    start = _states_after(TODO, start, _adds(5))[-1]
    head = Head(5, state_hash(start), start)
    actions = _adds(8, first=5)
    reduced = reduce_job(
        _job("global", actions), "b:0", head, TODO, registry=REGISTRY, keyframe_interval=100
    )

    states = _states_after(TODO, start, actions)
    assert [o.index for o in reduced.ops] == [5, 6, 7]
    assert [o.id for o in reduced.ops] == [operation_id("b:0", a, p) for p, a in enumerate(actions)]
    assert [o.timestamp for o in reduced.ops] == [a.timestamp for a in actions]
    assert [o.action for o in reduced.ops] == actions
    assert [o.hash for o in reduced.ops] == [state_hash(s) for s in states]
    assert reduced.head.revision == 8 and reduced.head.hash == reduced.ops[-1].hash
    assert orjson.loads(reduced.state_json) == states[-1]
    assert (reduced.span.operation_index, reduced.span.count) == (5, 3)
    assert reduced.keyframes == [] and reduced.header_changes == []
    # The one header change the job's write statement makes.
    assert reduced.header == HeaderUpdated(actions[-1].timestamp, name=None)
    assert reduced.model is TODO and reduced.children is None


def test_keyframes_fall_on_every_interval_th_operation() -> None:
    actions = _adds(9)
    start = TODO.initial_state("global")
    reduced = reduce_job(
        _job("global", actions),
        "b:0",
        initial_head(TODO, "global"),
        TODO,
        registry=REGISTRY,
        keyframe_interval=4,
    )
    states = _states_after(TODO, start, actions)
    # Operation index i leaves revision i + 1: keyframes at revisions 4 and 8.
    assert [k[0] for k in reduced.keyframes] == [3, 7]
    for index, digest, snapshot in reduced.keyframes:
        assert digest == reduced.ops[index].hash
        assert orjson.loads(snapshot) == states[index]


def test_a_global_job_yields_one_step_per_action_and_no_header_change() -> None:
    actions = _adds(3)
    reduction = Reduction(
        _job("global", actions),
        "b:0",
        initial_head(TODO, "global"),
        TODO,
        registry=REGISTRY,
        keyframe_interval=100,
    )
    assert list(reduction.steps()) == [None, None, None]
    assert len(reduction.result().ops) == 3


def test_document_scope_header_changes_are_returned_as_data_in_order() -> None:
    actions = _actions(
        (
            "CREATE_DOCUMENT",
            {"document_type": TODO.document_type, "slug": "groceries", "name": "Groceries"},
        ),
        ("SET_NAME", {"name": "Shopping"}),
        ("DELETE_DOCUMENT", {}),
    )
    head = initial_head(None, "document")
    assert head == Head(0, state_hash(initial_document_state()), initial_document_state())
    reduction = Reduction(
        _job("document", actions), "b:0", head, None, registry=REGISTRY, keyframe_interval=100
    )
    steps = list(reduction.steps())
    reduced = reduction.result()

    global_initial = TODO.initial_state("global")
    local_initial = TODO.initial_state("local")
    expected = [
        HeaderCreated(TODO.document_type, "groceries", "Groceries", actions[0].timestamp),
        ScopeCreated("global", global_initial, state_hash(global_initial)),
        ScopeCreated("local", local_initial, state_hash(local_initial)),
        HeaderUpdated(actions[1].timestamp, name="Shopping"),
        HeaderUpdated(actions[2].timestamp, deleted=True),
    ]
    assert steps == expected
    assert reduced.header_changes == expected
    assert reduced.header is None  # written action by action, as they came
    assert reduced.model is TODO  # known from the CREATE_DOCUMENT

    state = initial_document_state()
    hashes = []
    for action in actions:
        state = reduce_document_scope(state, action)
        hashes.append(state_hash(state))
    assert [o.hash for o in reduced.ops] == hashes
    assert [o.index for o in reduced.ops] == [0, 1, 2]
    assert reduced.head == Head(3, hashes[-1], state)
    assert orjson.loads(reduced.state_json) == state


def test_a_global_job_renames_the_header_to_its_last_set_name() -> None:
    actions = _actions(
        ("SET_NAME", {"name": "first"}),
        ("ADD_TODO_ITEM", {"id": "a", "text": "x"}),
        ("SET_NAME", {"name": "second"}),
        ("ADD_TODO_ITEM", {"id": "b", "text": "y"}),
    )
    start = initial_head(TODO, "global")
    reduced = reduce_job(
        _job("global", actions), "b:0", start, TODO, registry=REGISTRY, keyframe_interval=100
    )
    assert reduced.header == HeaderUpdated(actions[-1].timestamp, name="second")
    # SET_NAME leaves the model's state as it was.
    assert reduced.ops[0].hash == start.hash


def test_a_header_change_is_computed_only_when_the_previous_one_was_taken() -> None:
    """Whoever writes the header writes each change before the next action
    is reduced: a later action's error surfaces only after that."""
    actions = _actions(
        ("CREATE_DOCUMENT", {"document_type": TODO.document_type}),
        ("CREATE_DOCUMENT", {"document_type": TODO.document_type}),
    )
    reduction = Reduction(
        _job("document", actions),
        "b:0",
        initial_head(None, "document"),
        None,
        registry=REGISTRY,
        keyframe_interval=100,
    )
    steps = reduction.steps()
    assert isinstance(next(steps), HeaderCreated)
    assert isinstance(next(steps), ScopeCreated)
    assert isinstance(next(steps), ScopeCreated)
    with pytest.raises(JobRejected) as raised:
        next(steps)
    assert raised.value.error_type == "ReducerError"
    assert str(raised.value) == (
        "actions[1] CREATE_DOCUMENT: CREATE_DOCUMENT: the document already exists"
    )


def test_a_reducer_error_rejects_the_job_naming_the_action() -> None:
    actions = _actions(
        ("ADD_TODO_ITEM", {"id": "a", "text": "x"}),
        ("UPDATE_TODO_ITEM", {"id": "missing", "checked": True}),
    )
    with pytest.raises(JobRejected) as raised:
        reduce_job(
            _job("global", actions),
            "b:0",
            initial_head(TODO, "global"),
            TODO,
            registry=REGISTRY,
            keyframe_interval=100,
        )
    assert raised.value.error_type == "ReducerError"
    assert str(raised.value) == "actions[1] UPDATE_TODO_ITEM: todo item 'missing' does not exist"
    assert isinstance(raised.value.__cause__, ReducerError)


def test_a_model_bug_rejects_the_job_with_its_type() -> None:
    def broken(state: Any, action: Action) -> Any:
        raise KeyError("oops")

    model = DocumentModel(
        document_type="t/broken",
        state_schemas=TODO.state_schemas,
        action_schemas=TODO.action_schemas,
        reducers={"global": broken, "local": broken},
    )
    with pytest.raises(JobRejected) as raised:
        reduce_job(
            _job("global", _adds(1), "t/broken"),
            "b:0",
            initial_head(model, "global"),
            model,
            registry=REGISTRY,
            keyframe_interval=100,
        )
    assert raised.value.error_type == "KeyError"
    assert str(raised.value) == "actions[0] ADD_TODO_ITEM: KeyError('oops')"


def test_creating_an_unregistered_type_is_rejected() -> None:
    actions = _actions(("CREATE_DOCUMENT", {"document_type": "nobody/knows"}))
    with pytest.raises(JobRejected) as raised:
        reduce_job(
            _job("document", actions, "nobody/knows"),
            "b:0",
            initial_head(None, "document"),
            None,
            registry=REGISTRY,
            keyframe_interval=100,
        )
    assert raised.value.error_type == "UnknownDocumentType"


def test_a_bad_signature_rejects_the_job_before_reducing() -> None:
    seen: list[str] = []

    class Refuses:
        def verify(self, action: Action, document_id: str, previous_hash: str) -> None:
            seen.append(previous_hash)
            raise SignatureError("not signed")

    head = initial_head(TODO, "global")
    with pytest.raises(JobRejected) as raised:
        reduce_job(
            _job("global", _adds(2)),
            "b:0",
            head,
            TODO,
            registry=REGISTRY,
            keyframe_interval=100,
            verifier=Refuses(),
        )
    assert raised.value.error_type == "SignatureError"
    assert str(raised.value) == "actions[0] not signed"
    assert seen == [head.hash]  # signed over the state the action applies to


def test_a_model_that_declares_children_returns_them_sorted() -> None:
    actions = _actions(
        *[
            ("ADD_FILE", {"id": f, "name": f, "document_type": TODO.document_type})
            for f in ("f-b", "f-a")
        ]
    )
    reduced = reduce_job(
        _job("global", actions, DRIVE.document_type),
        "b:0",
        initial_head(DRIVE, "global"),
        DRIVE,
        registry=REGISTRY,
        keyframe_interval=100,
    )
    assert reduced.children == ["f-a", "f-b"]


def test_the_result_waits_for_every_step() -> None:
    reduction = Reduction(
        _job("global", _adds(2)),
        "b:0",
        initial_head(TODO, "global"),
        TODO,
        registry=REGISTRY,
        keyframe_interval=100,
    )
    steps = reduction.steps()
    next(steps)
    with pytest.raises(RuntimeError):
        reduction.result()
