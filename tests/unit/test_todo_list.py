from __future__ import annotations

from typing import Any

import pydantic
import pytest

from reactor.domain.actions import Action
from reactor.domain.errors import ReducerError, ValidationError
from reactor.domain.model import DocumentModel
from reactor.models import BUILTIN_MODELS, todo_list
from reactor.models.todo_list import TodoListState, reducer


def act(action_type: str, **data: Any) -> Action:
    return Action(type=action_type, input=data)


def run(*actions: Action, state: TodoListState | None = None) -> TodoListState:
    current = state if state is not None else TodoListState()
    for action in actions:
        current = reducer(current, action)
    return current


def assert_stats_consistent(state: TodoListState) -> None:
    checked = sum(1 for item in state.items if item.checked)
    assert state.stats.total == len(state.items)
    assert state.stats.checked == checked
    assert state.stats.unchecked == len(state.items) - checked


def test_module_shape() -> None:
    assert todo_list.document_type == "powerhouse/todo-list"
    assert todo_list.GlobalState is TodoListState
    assert set(todo_list.actions) == {"ADD_TODO_ITEM", "UPDATE_TODO_ITEM", "DELETE_TODO_ITEM"}
    assert todo_list in BUILTIN_MODELS


def test_initial_state_is_empty() -> None:
    state = TodoListState()
    assert state.items == []
    assert state.stats.model_dump() == {"total": 0, "checked": 0, "unchecked": 0}


def test_add_item() -> None:
    state = run(act("ADD_TODO_ITEM", id="a", text="buy milk"))
    assert [item.model_dump() for item in state.items] == [
        {"id": "a", "text": "buy milk", "checked": False}
    ]
    assert state.stats.model_dump() == {"total": 1, "checked": 0, "unchecked": 1}


def test_add_keeps_order() -> None:
    state = run(
        act("ADD_TODO_ITEM", id="a", text="one"),
        act("ADD_TODO_ITEM", id="b", text="two"),
        act("ADD_TODO_ITEM", id="c", text="three"),
    )
    assert [item.id for item in state.items] == ["a", "b", "c"]


def test_add_duplicate_id_fails() -> None:
    state = run(act("ADD_TODO_ITEM", id="a", text="one"))
    with pytest.raises(ReducerError, match="'a'.*already exists"):
        reducer(state, act("ADD_TODO_ITEM", id="a", text="again"))


@pytest.mark.parametrize("text", ["", "   ", "\t\n"])
def test_add_blank_text_fails(text: str) -> None:
    with pytest.raises(ReducerError, match="'a'.*text must not be empty"):
        run(act("ADD_TODO_ITEM", id="a", text=text))


def test_update_text() -> None:
    state = run(
        act("ADD_TODO_ITEM", id="a", text="one"),
        act("UPDATE_TODO_ITEM", id="a", text="uno"),
    )
    assert state.items[0].text == "uno"
    assert state.items[0].checked is False


def test_update_checked() -> None:
    state = run(
        act("ADD_TODO_ITEM", id="a", text="one"),
        act("ADD_TODO_ITEM", id="b", text="two"),
        act("UPDATE_TODO_ITEM", id="b", checked=True),
    )
    assert [(item.id, item.text, item.checked) for item in state.items] == [
        ("a", "one", False),
        ("b", "two", True),
    ]
    assert state.stats.model_dump() == {"total": 2, "checked": 1, "unchecked": 1}


def test_update_both_fields_and_uncheck() -> None:
    state = run(
        act("ADD_TODO_ITEM", id="a", text="one"),
        act("UPDATE_TODO_ITEM", id="a", text="uno", checked=True),
    )
    assert (state.items[0].text, state.items[0].checked) == ("uno", True)
    state = reducer(state, act("UPDATE_TODO_ITEM", id="a", checked=False))
    assert (state.items[0].text, state.items[0].checked) == ("uno", False)
    assert state.stats.model_dump() == {"total": 1, "checked": 0, "unchecked": 1}


def test_update_with_no_fields_changes_nothing() -> None:
    before = run(act("ADD_TODO_ITEM", id="a", text="one"))
    after = reducer(before, act("UPDATE_TODO_ITEM", id="a"))
    assert after == before


def test_update_unknown_id_fails() -> None:
    state = run(act("ADD_TODO_ITEM", id="a", text="one"))
    with pytest.raises(ReducerError, match="'nope'.*does not exist"):
        reducer(state, act("UPDATE_TODO_ITEM", id="nope", checked=True))


@pytest.mark.parametrize("text", ["", "  "])
def test_update_blank_text_fails(text: str) -> None:
    state = run(act("ADD_TODO_ITEM", id="a", text="one"))
    with pytest.raises(ReducerError, match="'a'.*text must not be empty"):
        reducer(state, act("UPDATE_TODO_ITEM", id="a", text=text))


def test_delete_item() -> None:
    state = run(
        act("ADD_TODO_ITEM", id="a", text="one"),
        act("ADD_TODO_ITEM", id="b", text="two"),
        act("UPDATE_TODO_ITEM", id="a", checked=True),
        act("DELETE_TODO_ITEM", id="a"),
    )
    assert [item.id for item in state.items] == ["b"]
    assert state.stats.model_dump() == {"total": 1, "checked": 0, "unchecked": 1}


def test_delete_unknown_id_fails() -> None:
    with pytest.raises(ReducerError, match="'ghost'.*does not exist"):
        run(act("DELETE_TODO_ITEM", id="ghost"))


def test_deleted_id_can_be_reused() -> None:
    state = run(
        act("ADD_TODO_ITEM", id="a", text="one"),
        act("DELETE_TODO_ITEM", id="a"),
        act("ADD_TODO_ITEM", id="a", text="again"),
    )
    assert [(item.id, item.text) for item in state.items] == [("a", "again")]


def test_unknown_action_type_fails() -> None:
    with pytest.raises(ReducerError, match="'CHECK_ALL'"):
        run(act("CHECK_ALL"))


def test_stats_stay_consistent_through_a_sequence() -> None:
    state = TodoListState()
    sequence = [
        act("ADD_TODO_ITEM", id="a", text="one"),
        act("ADD_TODO_ITEM", id="b", text="two"),
        act("ADD_TODO_ITEM", id="c", text="three"),
        act("UPDATE_TODO_ITEM", id="a", checked=True),
        act("UPDATE_TODO_ITEM", id="c", checked=True),
        act("UPDATE_TODO_ITEM", id="c", checked=True),
        act("DELETE_TODO_ITEM", id="b"),
        act("UPDATE_TODO_ITEM", id="a", checked=False),
        act("DELETE_TODO_ITEM", id="c"),
    ]
    for action in sequence:
        state = reducer(state, action)
        assert_stats_consistent(state)
    assert state.stats.model_dump() == {"total": 1, "checked": 0, "unchecked": 1}


@pytest.mark.parametrize(
    "action",
    [
        act("ADD_TODO_ITEM", id="c", text="three"),
        act("UPDATE_TODO_ITEM", id="a", text="uno", checked=True),
        act("DELETE_TODO_ITEM", id="b"),
    ],
)
def test_reducer_does_not_mutate_input(action: Action) -> None:
    state = run(
        act("ADD_TODO_ITEM", id="a", text="one"),
        act("ADD_TODO_ITEM", id="b", text="two"),
    )
    snapshot = state.model_dump()
    items_before = state.items
    after = reducer(state, action)
    assert state.model_dump() == snapshot
    assert state.items is items_before
    assert after is not state
    assert after.model_dump() != snapshot


def test_failed_action_does_not_mutate_input() -> None:
    state = run(act("ADD_TODO_ITEM", id="a", text="one"))
    snapshot = state.model_dump()
    with pytest.raises(ReducerError):
        reducer(state, act("UPDATE_TODO_ITEM", id="a", text=" "))
    assert state.model_dump() == snapshot


@pytest.mark.parametrize(
    ("action_type", "data"),
    [
        ("ADD_TODO_ITEM", {"id": "", "text": "x"}),
        ("ADD_TODO_ITEM", {"id": "a", "text": "x", "extra": 1}),
        ("UPDATE_TODO_ITEM", {"id": ""}),
        ("DELETE_TODO_ITEM", {"id": ""}),
        ("DELETE_TODO_ITEM", {}),
    ],
)
def test_input_schemas_reject_bad_input(action_type: str, data: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        todo_list.actions[action_type].model_validate(data)


# Through the DocumentModel wrapper the reactor uses.


@pytest.fixture
def model() -> DocumentModel:
    return DocumentModel.from_module(todo_list)


def test_wrapper_initial_state(model: DocumentModel) -> None:
    assert model.document_type == "powerhouse/todo-list"
    assert model.initial_state("global") == {
        "items": [],
        "stats": {"total": 0, "checked": 0, "unchecked": 0},
    }
    assert model.children({"items": [], "stats": {}}) is None


def test_wrapper_validate_input_normalizes(model: DocumentModel) -> None:
    assert model.validate_input("global", "UPDATE_TODO_ITEM", {"id": "a", "checked": True}) == {
        "id": "a",
        "text": None,
        "checked": True,
    }


def test_wrapper_validate_input_rejects_missing_field(model: DocumentModel) -> None:
    with pytest.raises(ValidationError) as excinfo:
        model.validate_input("global", "ADD_TODO_ITEM", {"id": "a"})
    assert excinfo.value.field is not None
    assert excinfo.value.field.startswith("input.")
    assert excinfo.value.field == "input.text"


def test_wrapper_validate_input_rejects_empty_id(model: DocumentModel) -> None:
    with pytest.raises(ValidationError) as excinfo:
        model.validate_input("global", "ADD_TODO_ITEM", {"id": "", "text": "x"})
    assert excinfo.value.field == "input.id"


def test_wrapper_validate_input_rejects_unknown_type(model: DocumentModel) -> None:
    with pytest.raises(ValidationError) as excinfo:
        model.validate_input("global", "CHECK_ALL", {})
    assert excinfo.value.field == "type"


def test_wrapper_reduce_round_trips(model: DocumentModel) -> None:
    state = model.initial_state("global")
    steps: list[tuple[str, dict[str, Any]]] = [
        ("ADD_TODO_ITEM", {"id": "a", "text": "one"}),
        ("ADD_TODO_ITEM", {"id": "b", "text": "two"}),
        ("UPDATE_TODO_ITEM", {"id": "a", "checked": True}),
    ]
    for action_type, data in steps:
        normalized = model.validate_input("global", action_type, data)
        state = model.reduce("global", state, Action(type=action_type, input=normalized))
    assert state == {
        "items": [
            {"id": "a", "text": "one", "checked": True},
            {"id": "b", "text": "two", "checked": False},
        ],
        "stats": {"total": 2, "checked": 1, "unchecked": 1},
    }
    assert TodoListState.model_validate(state).model_dump(mode="json") == state


def test_wrapper_reduce_raises_reducer_error(model: DocumentModel) -> None:
    with pytest.raises(ReducerError):
        model.reduce("global", model.initial_state("global"), act("DELETE_TODO_ITEM", id="missing"))
