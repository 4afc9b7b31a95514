"""A drive: a folder tree whose file nodes point at other documents.

Nodes are kept in one flat list linked by `parent_folder` (None means the
drive root), which keeps moves cheap and the JSON state easy to diff. A file
node's id is the id of the document it stands for, so `children()` can tell
the reactor which documents the drive contains.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from reactor.domain.actions import Action
from reactor.domain.errors import ReducerError

document_type = "powerhouse/document-drive"


class Node(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    kind: Literal["folder", "file"]
    document_type: str | None = None
    parent_folder: str | None = None

    @model_validator(mode="after")
    def _document_type_matches_kind(self) -> Node:
        # A file without a type could not be opened; a folder with one would
        # be mistaken for a document by readers of the JSON state.
        if self.kind == "file" and not self.document_type:
            raise ValueError(f"file node {self.id!r} needs a document_type")
        if self.kind == "folder" and self.document_type is not None:
            raise ValueError(f"folder node {self.id!r} cannot have a document_type")
        return self


class DriveState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = ""
    nodes: list[Node] = Field(default_factory=list)


GlobalState = DriveState


class AddFolderInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    name: str
    parent_folder: str | None = None


class AddFileInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    name: str
    document_type: str = Field(min_length=1)
    parent_folder: str | None = None


class UpdateNodeInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    name: str


class MoveNodeInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    src_folder: str = Field(min_length=1)
    target_parent_folder: str | None = None


class DeleteNodeInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)


actions: dict[str, type[BaseModel]] = {
    "ADD_FOLDER": AddFolderInput,
    "ADD_FILE": AddFileInput,
    "UPDATE_NODE": UpdateNodeInput,
    "MOVE_NODE": MoveNodeInput,
    "DELETE_NODE": DeleteNodeInput,
}


def children(state: DriveState) -> set[str]:
    """Ids of the documents in the drive, for the reactor's relationship index."""
    return {node.id for node in state.nodes if node.kind == "file"}


def _find(state: DriveState, node_id: str) -> Node | None:
    return next((node for node in state.nodes if node.id == node_id), None)


def _require(state: DriveState, node_id: str) -> Node:
    node = _find(state, node_id)
    if node is None:
        raise ReducerError(f"node {node_id!r} does not exist")
    return node


def _require_name(name: str, node_id: str) -> None:
    if not name.strip():
        raise ReducerError(f"node {node_id!r}: name must not be empty")


def _require_parent(state: DriveState, parent_id: str | None) -> None:
    if parent_id is None:
        return
    parent = _find(state, parent_id)
    if parent is None:
        raise ReducerError(f"parent folder {parent_id!r} does not exist")
    if parent.kind != "folder":
        raise ReducerError(f"parent folder {parent_id!r} is a file, not a folder")


def _require_new_id(state: DriveState, node_id: str) -> None:
    if _find(state, node_id) is not None:
        raise ReducerError(f"node {node_id!r} already exists")


def _subtree(state: DriveState, root_id: str) -> set[str]:
    """The node and everything below it; a flat list makes this a fixpoint."""
    found = {root_id}
    grew = True
    while grew:
        grew = False
        for node in state.nodes:
            if node.parent_folder in found and node.id not in found:
                found.add(node.id)
                grew = True
    return found


def _replace(state: DriveState, new: Node) -> DriveState:
    nodes = [new if node.id == new.id else node for node in state.nodes]
    return state.model_copy(update={"nodes": nodes})


def _add_folder(state: DriveState, data: dict[str, Any]) -> DriveState:
    inp = AddFolderInput.model_validate(data)
    _require_new_id(state, inp.id)
    _require_name(inp.name, inp.id)
    _require_parent(state, inp.parent_folder)
    node = Node(id=inp.id, name=inp.name, kind="folder", parent_folder=inp.parent_folder)
    return state.model_copy(update={"nodes": [*state.nodes, node]})


def _add_file(state: DriveState, data: dict[str, Any]) -> DriveState:
    inp = AddFileInput.model_validate(data)
    _require_new_id(state, inp.id)
    _require_name(inp.name, inp.id)
    _require_parent(state, inp.parent_folder)
    node = Node(
        id=inp.id,
        name=inp.name,
        kind="file",
        document_type=inp.document_type,
        parent_folder=inp.parent_folder,
    )
    return state.model_copy(update={"nodes": [*state.nodes, node]})


def _update_node(state: DriveState, data: dict[str, Any]) -> DriveState:
    inp = UpdateNodeInput.model_validate(data)
    node = _require(state, inp.id)
    _require_name(inp.name, inp.id)
    return _replace(state, node.model_copy(update={"name": inp.name}))


def _move_node(state: DriveState, data: dict[str, Any]) -> DriveState:
    inp = MoveNodeInput.model_validate(data)
    node = _require(state, inp.src_folder)
    target = inp.target_parent_folder
    _require_parent(state, target)
    if target is not None and target in _subtree(state, node.id):
        raise ReducerError(
            f"cannot move folder {node.id!r} into {target!r}: "
            "a folder cannot be moved into itself or one of its descendants"
        )
    return _replace(state, node.model_copy(update={"parent_folder": target}))


def _delete_node(state: DriveState, data: dict[str, Any]) -> DriveState:
    inp = DeleteNodeInput.model_validate(data)
    _require(state, inp.id)
    doomed = _subtree(state, inp.id)
    return state.model_copy(
        update={"nodes": [node for node in state.nodes if node.id not in doomed]}
    )


_HANDLERS: dict[str, Callable[[DriveState, dict[str, Any]], DriveState]] = {
    "ADD_FOLDER": _add_folder,
    "ADD_FILE": _add_file,
    "UPDATE_NODE": _update_node,
    "MOVE_NODE": _move_node,
    "DELETE_NODE": _delete_node,
}


def reducer(state: DriveState, action: Action) -> DriveState:
    handler = _HANDLERS.get(action.type)
    if handler is None:
        raise ReducerError(f"unknown action type {action.type!r} for {document_type}")
    return handler(state, action.input)
