"""The `document` scope: creation, deletion and relationships.

Every model shares it, as in Powerhouse: a document exists once its
CREATE_DOCUMENT operation (index 0 of the document scope) is written.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from reactor.domain.actions import Action
from reactor.domain.errors import ReducerError
from reactor.domain.model import SetNameInput
from reactor.domain.upgrades import UNVERSIONED


class CreateDocumentInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    document_type: str = Field(min_length=1)
    slug: str | None = Field(default=None, min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    name: str = ""
    # The model version the document starts at: its type's latest, filled
    # in when the batch is planned (absent for a type without a manifest).
    model_version: int | None = Field(default=None, ge=1)


class UpgradeDocumentInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to_version: int = Field(ge=1)


class DeleteDocumentInput(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RelationshipInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target_id: str = Field(min_length=1)
    relationship_type: Literal["child"] = "child"


DOCUMENT_ACTIONS: dict[str, type[BaseModel]] = {
    "CREATE_DOCUMENT": CreateDocumentInput,
    "DELETE_DOCUMENT": DeleteDocumentInput,
    "ADD_RELATIONSHIP": RelationshipInput,
    "REMOVE_RELATIONSHIP": RelationshipInput,
    "SET_NAME": SetNameInput,
    "UPGRADE_DOCUMENT": UpgradeDocumentInput,
}


class DocumentScopeState(BaseModel):
    """What the document scope knows: identity and lifecycle of the document."""

    document_type: str = ""
    slug: str | None = None
    name: str = ""
    deleted: bool = False
    children: list[str] = Field(default_factory=list)
    model_version: int | None = None  # None: version 1, and absent from the state


def initial_document_state() -> dict[str, Any]:
    return _dump(DocumentScopeState())


def document_version(state: dict[str, Any]) -> int:
    """The model version a document-scope state records."""
    return int(state.get("model_version") or UNVERSIONED)


def _dump(state: DocumentScopeState) -> dict[str, Any]:
    # An unversioned document's state, and so its hash, has no version key.
    dumped = state.model_dump(mode="json")
    if dumped["model_version"] is None:
        del dumped["model_version"]
    return dumped


def reduce_document_scope(state: dict[str, Any], action: Action) -> dict[str, Any]:
    current = DocumentScopeState.model_validate(state)
    kind = action.type
    if kind == "NOOP":
        # Not an action users send here: the operation that carries a
        # merge's skip when nothing else is re-appended (reactor/domain/merge.py).
        return _dump(current)
    if kind != "CREATE_DOCUMENT" and not current.document_type:
        raise ReducerError(f"{kind}: the document does not exist (no CREATE_DOCUMENT yet)")
    if current.deleted:
        raise ReducerError(f"{kind}: the document is deleted")
    if kind == "CREATE_DOCUMENT":
        if current.document_type:
            raise ReducerError("CREATE_DOCUMENT: the document already exists")
        create = CreateDocumentInput.model_validate(action.input)
        nxt = DocumentScopeState(
            document_type=create.document_type,
            slug=create.slug,
            name=create.name,
            model_version=create.model_version,
        )
    elif kind == "DELETE_DOCUMENT":
        # Refused, as at validation: a child added since then ends the job FAILED.
        if current.children:
            count = len(current.children)
            raise ReducerError(
                f"DELETE_DOCUMENT: the document has {count} child{'ren' if count != 1 else ''} "
                "(REMOVE_RELATIONSHIP them first)"
            )
        nxt = current.model_copy(update={"deleted": True})
    elif kind == "SET_NAME":
        nxt = current.model_copy(update={"name": SetNameInput.model_validate(action.input).name})
    elif kind in ("ADD_RELATIONSHIP", "REMOVE_RELATIONSHIP"):
        rel = RelationshipInput.model_validate(action.input)
        children = list(current.children)
        if kind == "ADD_RELATIONSHIP":
            if rel.target_id in children:
                raise ReducerError(f"ADD_RELATIONSHIP: {rel.target_id!r} is already a child")
            children.append(rel.target_id)
        else:
            if rel.target_id not in children:
                raise ReducerError(f"REMOVE_RELATIONSHIP: {rel.target_id!r} is not a child")
            children.remove(rel.target_id)
        nxt = current.model_copy(update={"children": children})
    elif kind == "UPGRADE_DOCUMENT":
        # Whether the manifest makes this upgrade is checked against the
        # model before this runs (reactor/domain/reduction.py).
        to = UpgradeDocumentInput.model_validate(action.input).to_version
        if to <= (current.model_version or UNVERSIONED):
            raise ReducerError(f"UPGRADE_DOCUMENT: the document is already at version >= {to}")
        nxt = current.model_copy(update={"model_version": to})
    else:
        raise ReducerError(f"unknown document-scope action {kind!r}")
    return _dump(nxt)
