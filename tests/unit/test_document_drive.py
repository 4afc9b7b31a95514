from __future__ import annotations

from typing import Any

import pydantic
import pytest

from reactor.domain.actions import Action
from reactor.domain.errors import ReducerError, ValidationError
from reactor.domain.model import DocumentModel
from reactor.models import BUILTIN_MODELS, document_drive
from reactor.models.document_drive import DriveState, Node, children, reducer

TODO = "powerhouse/todo-list"


def act(action_type: str, **data: Any) -> Action:
    return Action(type=action_type, input=data)


def run(*actions: Action, state: DriveState | None = None) -> DriveState:
    current = state if state is not None else DriveState()
    for action in actions:
        current = reducer(current, action)
    return current


def node(state: DriveState, node_id: str) -> Node:
    return next(n for n in state.nodes if n.id == node_id)


def ids(state: DriveState) -> list[str]:
    return [n.id for n in state.nodes]


def tree() -> DriveState:
    """root/
    ├── docs/            (folder)
    │   ├── a            (file)
    │   └── sub/         (folder)
    │       ├── b        (file)
    │       └── deep/    (folder)
    │           └── c    (file)
    ├── other/           (folder)
    └── top              (file)
    """
    return run(
        act("ADD_FOLDER", id="docs", name="Docs"),
        act("ADD_FILE", id="a", name="A", document_type=TODO, parent_folder="docs"),
        act("ADD_FOLDER", id="sub", name="Sub", parent_folder="docs"),
        act("ADD_FILE", id="b", name="B", document_type=TODO, parent_folder="sub"),
        act("ADD_FOLDER", id="deep", name="Deep", parent_folder="sub"),
        act("ADD_FILE", id="c", name="C", document_type=TODO, parent_folder="deep"),
        act("ADD_FOLDER", id="other", name="Other"),
        act("ADD_FILE", id="top", name="Top", document_type=TODO),
    )


def test_module_shape() -> None:
    assert document_drive.document_type == "powerhouse/document-drive"
    assert document_drive.GlobalState is DriveState
    assert set(document_drive.actions) == {
        "ADD_FOLDER",
        "ADD_FILE",
        "UPDATE_NODE",
        "MOVE_NODE",
        "DELETE_NODE",
    }
    assert document_drive in BUILTIN_MODELS


def test_initial_state_is_empty() -> None:
    assert DriveState().model_dump() == {"name": "", "nodes": []}


# ADD_FOLDER


def test_add_folder_at_root_and_nested() -> None:
    state = run(
        act("ADD_FOLDER", id="f1", name="One"),
        act("ADD_FOLDER", id="f2", name="Two", parent_folder="f1"),
    )
    assert [n.model_dump() for n in state.nodes] == [
        {"id": "f1", "name": "One", "kind": "folder", "document_type": None, "parent_folder": None},
        {"id": "f2", "name": "Two", "kind": "folder", "document_type": None, "parent_folder": "f1"},
    ]


def test_add_folder_duplicate_id_fails() -> None:
    state = run(act("ADD_FOLDER", id="f1", name="One"))
    with pytest.raises(ReducerError, match="'f1'.*already exists"):
        reducer(state, act("ADD_FOLDER", id="f1", name="Again"))


def test_add_folder_unknown_parent_fails() -> None:
    with pytest.raises(ReducerError, match="parent folder 'nope' does not exist"):
        run(act("ADD_FOLDER", id="f1", name="One", parent_folder="nope"))


def test_add_folder_under_file_fails() -> None:
    state = run(act("ADD_FILE", id="doc", name="Doc", document_type=TODO))
    with pytest.raises(ReducerError, match="'doc' is a file"):
        reducer(state, act("ADD_FOLDER", id="f1", name="One", parent_folder="doc"))


@pytest.mark.parametrize("name", ["", "  "])
def test_add_folder_empty_name_fails(name: str) -> None:
    with pytest.raises(ReducerError, match="'f1'.*name must not be empty"):
        run(act("ADD_FOLDER", id="f1", name=name))


# ADD_FILE


def test_add_file_at_root_and_in_folder() -> None:
    state = run(
        act("ADD_FOLDER", id="f1", name="One"),
        act("ADD_FILE", id="d1", name="List", document_type=TODO),
        act("ADD_FILE", id="d2", name="Other", document_type=TODO, parent_folder="f1"),
    )
    assert node(state, "d1").model_dump() == {
        "id": "d1",
        "name": "List",
        "kind": "file",
        "document_type": TODO,
        "parent_folder": None,
    }
    assert node(state, "d2").parent_folder == "f1"


def test_add_file_duplicate_id_fails() -> None:
    state = run(act("ADD_FOLDER", id="x", name="X"))
    with pytest.raises(ReducerError, match="'x'.*already exists"):
        reducer(state, act("ADD_FILE", id="x", name="X", document_type=TODO))


def test_add_file_unknown_parent_fails() -> None:
    with pytest.raises(ReducerError, match="parent folder 'nope' does not exist"):
        run(act("ADD_FILE", id="d", name="D", document_type=TODO, parent_folder="nope"))


def test_add_file_under_file_fails() -> None:
    state = run(act("ADD_FILE", id="d1", name="D1", document_type=TODO))
    with pytest.raises(ReducerError, match="'d1' is a file"):
        reducer(state, act("ADD_FILE", id="d2", name="D2", document_type=TODO, parent_folder="d1"))


def test_add_file_empty_name_fails() -> None:
    with pytest.raises(ReducerError, match="'d'.*name must not be empty"):
        run(act("ADD_FILE", id="d", name=" ", document_type=TODO))


# UPDATE_NODE


def test_update_node_renames() -> None:
    state = reducer(tree(), act("UPDATE_NODE", id="sub", name="Renamed"))
    assert node(state, "sub").name == "Renamed"
    assert node(state, "sub").parent_folder == "docs"
    assert ids(state) == ids(tree())


def test_update_node_unknown_id_fails() -> None:
    with pytest.raises(ReducerError, match="'ghost' does not exist"):
        reducer(tree(), act("UPDATE_NODE", id="ghost", name="X"))


def test_update_node_empty_name_fails() -> None:
    with pytest.raises(ReducerError, match="'a'.*name must not be empty"):
        reducer(tree(), act("UPDATE_NODE", id="a", name=""))


# MOVE_NODE


def test_move_file_to_folder_and_root() -> None:
    state = reducer(tree(), act("MOVE_NODE", src_folder="top", target_parent_folder="other"))
    assert node(state, "top").parent_folder == "other"
    state = reducer(state, act("MOVE_NODE", src_folder="top", target_parent_folder=None))
    assert node(state, "top").parent_folder is None


def test_move_folder_carries_its_subtree() -> None:
    state = reducer(tree(), act("MOVE_NODE", src_folder="sub", target_parent_folder="other"))
    assert node(state, "sub").parent_folder == "other"
    assert node(state, "b").parent_folder == "sub"
    assert node(state, "deep").parent_folder == "sub"
    state = reducer(state, act("DELETE_NODE", id="other"))
    assert ids(state) == ["docs", "a", "top"]


def test_move_folder_to_root_by_default() -> None:
    state = reducer(tree(), act("MOVE_NODE", src_folder="deep"))
    assert node(state, "deep").parent_folder is None


def test_move_unknown_node_fails() -> None:
    with pytest.raises(ReducerError, match="'ghost' does not exist"):
        reducer(tree(), act("MOVE_NODE", src_folder="ghost", target_parent_folder=None))


def test_move_to_unknown_target_fails() -> None:
    with pytest.raises(ReducerError, match="parent folder 'nope' does not exist"):
        reducer(tree(), act("MOVE_NODE", src_folder="a", target_parent_folder="nope"))


def test_move_into_file_fails() -> None:
    with pytest.raises(ReducerError, match="'top' is a file"):
        reducer(tree(), act("MOVE_NODE", src_folder="a", target_parent_folder="top"))


def test_move_folder_into_itself_fails() -> None:
    with pytest.raises(ReducerError, match="'docs' into 'docs'"):
        reducer(tree(), act("MOVE_NODE", src_folder="docs", target_parent_folder="docs"))


@pytest.mark.parametrize("target", ["sub", "deep"])
def test_move_folder_into_descendant_fails(target: str) -> None:
    with pytest.raises(ReducerError, match=f"'docs' into '{target}'.*descendants"):
        reducer(tree(), act("MOVE_NODE", src_folder="docs", target_parent_folder=target))


# DELETE_NODE


def test_delete_file() -> None:
    state = reducer(tree(), act("DELETE_NODE", id="a"))
    assert "a" not in ids(state)
    assert len(state.nodes) == len(tree().nodes) - 1


def test_delete_empty_folder() -> None:
    state = reducer(tree(), act("DELETE_NODE", id="other"))
    assert ids(state) == ["docs", "a", "sub", "b", "deep", "c", "top"]


def test_delete_folder_is_recursive() -> None:
    state = reducer(tree(), act("DELETE_NODE", id="docs"))
    assert ids(state) == ["other", "top"]
    assert children(state) == {"top"}


def test_delete_nested_folder_keeps_siblings() -> None:
    state = reducer(tree(), act("DELETE_NODE", id="sub"))
    assert ids(state) == ["docs", "a", "other", "top"]


def test_delete_recursive_when_child_listed_before_parent() -> None:
    # After a move, a descendant can precede its ancestor in the flat list.
    state = run(
        act("ADD_FOLDER", id="late", name="Late"),
        act("ADD_FOLDER", id="early", name="Early"),
        act("ADD_FILE", id="f", name="F", document_type=TODO, parent_folder="late"),
        act("MOVE_NODE", src_folder="late", target_parent_folder="early"),
        act("ADD_FOLDER", id="keep", name="Keep"),
    )
    assert ids(state) == ["late", "early", "f", "keep"]
    state = reducer(state, act("DELETE_NODE", id="early"))
    assert ids(state) == ["keep"]


def test_delete_unknown_node_fails() -> None:
    with pytest.raises(ReducerError, match="'ghost' does not exist"):
        reducer(tree(), act("DELETE_NODE", id="ghost"))


def test_unknown_action_type_fails() -> None:
    with pytest.raises(ReducerError, match="'ADD_TODO_ITEM'"):
        reducer(tree(), act("ADD_TODO_ITEM", id="x", text="y"))


# children()


def test_children_lists_file_ids_only() -> None:
    assert children(DriveState()) == set()
    assert children(tree()) == {"a", "b", "c", "top"}


def test_children_follow_adds_and_deletes() -> None:
    state = reducer(tree(), act("ADD_FILE", id="new", name="N", document_type=TODO))
    assert children(state) == {"a", "b", "c", "top", "new"}
    state = reducer(state, act("DELETE_NODE", id="sub"))
    assert children(state) == {"a", "top", "new"}


# Purity


@pytest.mark.parametrize(
    "action",
    [
        act("ADD_FOLDER", id="n", name="N", parent_folder="docs"),
        act("ADD_FILE", id="n", name="N", document_type=TODO),
        act("UPDATE_NODE", id="deep", name="Renamed"),
        act("MOVE_NODE", src_folder="sub", target_parent_folder="other"),
        act("DELETE_NODE", id="docs"),
    ],
)
def test_reducer_does_not_mutate_input(action: Action) -> None:
    state = tree()
    snapshot = state.model_dump()
    nodes_before = state.nodes
    after = reducer(state, action)
    assert state.model_dump() == snapshot
    assert state.nodes is nodes_before
    assert after is not state
    assert after.model_dump() != snapshot


def test_failed_action_does_not_mutate_input() -> None:
    state = tree()
    snapshot = state.model_dump()
    with pytest.raises(ReducerError):
        reducer(state, act("MOVE_NODE", src_folder="docs", target_parent_folder="deep"))
    assert state.model_dump() == snapshot


def test_drive_name_is_preserved() -> None:
    state = DriveState(name="My drive")
    state = reducer(state, act("ADD_FOLDER", id="f", name="F"))
    assert state.name == "My drive"


# Schemas


@pytest.mark.parametrize(
    ("action_type", "data"),
    [
        ("ADD_FOLDER", {"id": "", "name": "x"}),
        ("ADD_FOLDER", {"id": "f"}),
        ("ADD_FILE", {"id": "d", "name": "x"}),
        ("ADD_FILE", {"id": "d", "name": "x", "document_type": ""}),
        ("UPDATE_NODE", {"id": "d"}),
        ("MOVE_NODE", {"target_parent_folder": None}),
        ("DELETE_NODE", {"id": "d", "recursive": True}),
    ],
)
def test_input_schemas_reject_bad_input(action_type: str, data: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        document_drive.actions[action_type].model_validate(data)


def test_node_kind_and_document_type_must_agree() -> None:
    with pytest.raises(pydantic.ValidationError):
        Node(id="x", name="X", kind="file")
    with pytest.raises(pydantic.ValidationError):
        Node(id="x", name="X", kind="folder", document_type=TODO)


# Through the DocumentModel wrapper.


def test_wrapper_round_trip_and_children() -> None:
    model = DocumentModel.from_module(document_drive)
    state = model.initial_state("global")
    assert state == {"name": "", "nodes": []}
    for action_type, data in [
        ("ADD_FOLDER", {"id": "f", "name": "F"}),
        ("ADD_FILE", {"id": "d", "name": "D", "document_type": TODO, "parent_folder": "f"}),
    ]:
        normalized = model.validate_input("global", action_type, data)
        state = model.reduce("global", state, Action(type=action_type, input=normalized))
    assert state["nodes"][1] == {
        "id": "d",
        "name": "D",
        "kind": "file",
        "document_type": TODO,
        "parent_folder": "f",
    }
    assert model.children(state) == {"d"}


def test_wrapper_validate_input_names_field() -> None:
    model = DocumentModel.from_module(document_drive)
    with pytest.raises(ValidationError) as excinfo:
        model.validate_input("global", "ADD_FILE", {"id": "d", "name": "D"})
    assert excinfo.value.field == "input.document_type"
