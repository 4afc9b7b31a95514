"""Documents and operations as readers see them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from reactor.domain.actions import Action


class DocumentHeader(BaseModel):
    id: str
    slug: str | None = None
    name: str = ""
    document_type: str
    created_at: datetime
    last_modified_at: datetime
    revision: dict[str, int] = Field(default_factory=dict)
    branch: str = "main"
    deleted: bool = False
    # The model version the document is at (reactor/domain/upgrades.py).
    model_version: int = 1


class Document(BaseModel):
    header: DocumentHeader
    state: dict[str, Any] = Field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.header.id


class Operation(BaseModel):
    """One applied action. `index` is contiguous per (document, scope, branch);
    `hash` is the hash of the state after the action; `ordinal` is the
    operation's position in the global log."""

    id: str
    index: int
    skip: int = 0
    timestamp: datetime
    hash: str
    action: Action
    document_id: str
    scope: str
    branch: str
    ordinal: int | None = None
    job_id: str | None = None


class PagedResults(BaseModel):
    results: list[Any]
    next_cursor: int | str | None = None
    total: int | None = None
