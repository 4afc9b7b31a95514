"""A to-do list: the smallest useful document model, used in demos and tests.

`stats` is derived from `items`; it is stored anyway so that readers of the
JSON state get the counts without recomputing them, and it is rebuilt on every
change so it can never drift.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from reactor.domain.actions import Action
from reactor.domain.errors import ReducerError

document_type = "powerhouse/todo-list"


class TodoItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    text: str
    checked: bool = False


class TodoStats(BaseModel):
    model_config = ConfigDict(extra="forbid")

    total: int = 0
    checked: int = 0
    unchecked: int = 0


class TodoListState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[TodoItem] = Field(default_factory=list)
    stats: TodoStats = Field(default_factory=TodoStats)


GlobalState = TodoListState


class AddTodoItemInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    text: str


class UpdateTodoItemInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    text: str | None = None
    checked: bool | None = None


class DeleteTodoItemInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)


actions: dict[str, type[BaseModel]] = {
    "ADD_TODO_ITEM": AddTodoItemInput,
    "UPDATE_TODO_ITEM": UpdateTodoItemInput,
    "DELETE_TODO_ITEM": DeleteTodoItemInput,
}


def _with_items(items: list[TodoItem], checked: int | None = None) -> TodoListState:
    """Every change goes through here so stats always match items. A caller
    that knows the checked count (adding an unchecked item keeps it) saves a
    pass over the list."""
    if checked is None:
        checked = sum([item.checked for item in items])
    stats = TodoStats(total=len(items), checked=checked, unchecked=len(items) - checked)
    return TodoListState(items=items, stats=stats)


def _require_text(text: str, item_id: str) -> None:
    # Checked here rather than in the input schema: the schema only knows the
    # shape, while "blank text" is a rule of the list itself.
    if not text.strip():
        raise ReducerError(f"todo item {item_id!r}: text must not be empty")


def _index_of(state: TodoListState, item_id: str) -> int:
    for i, item in enumerate(state.items):
        if item.id == item_id:
            return i
    raise ReducerError(f"todo item {item_id!r} does not exist")


def _add(state: TodoListState, data: dict[str, Any]) -> TodoListState:
    inp = AddTodoItemInput.model_validate(data)
    if inp.id in [item.id for item in state.items]:
        raise ReducerError(f"todo item {inp.id!r} already exists")
    _require_text(inp.text, inp.id)
    return _with_items([*state.items, TodoItem(id=inp.id, text=inp.text)], state.stats.checked)


def _update(state: TodoListState, data: dict[str, Any]) -> TodoListState:
    inp = UpdateTodoItemInput.model_validate(data)
    index = _index_of(state, inp.id)
    changes: dict[str, Any] = {}
    if inp.text is not None:
        _require_text(inp.text, inp.id)
        changes["text"] = inp.text
    if inp.checked is not None:
        changes["checked"] = inp.checked
    items = list(state.items)
    items[index] = items[index].model_copy(update=changes)
    return _with_items(items)


def _delete(state: TodoListState, data: dict[str, Any]) -> TodoListState:
    inp = DeleteTodoItemInput.model_validate(data)
    index = _index_of(state, inp.id)
    return _with_items([item for i, item in enumerate(state.items) if i != index])


_HANDLERS: dict[str, Callable[[TodoListState, dict[str, Any]], TodoListState]] = {
    "ADD_TODO_ITEM": _add,
    "UPDATE_TODO_ITEM": _update,
    "DELETE_TODO_ITEM": _delete,
}


def reducer(state: TodoListState, action: Action) -> TodoListState:
    handler = _HANDLERS.get(action.type)
    if handler is None:
        raise ReducerError(f"unknown action type {action.type!r} for {document_type}")
    return handler(state, action.input)
