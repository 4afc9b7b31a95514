"""Actions: the only way a document changes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SCOPES = ("global", "local", "document")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Action(BaseModel):
    """An intent to change one scope of one document.

    `id` and `timestamp` are fixed when the action is submitted, never when it
    is applied, so a retried job produces byte-identical operations.
    """

    model_config = ConfigDict(frozen=True)

    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    type: str
    input: dict[str, Any] = Field(default_factory=dict)
    scope: str = "global"
    timestamp: datetime = Field(default_factory=utcnow)
    context: dict[str, Any] | None = None


class ActionSpec(BaseModel):
    """An action as users write it in a batch file: id/timestamp optional."""

    model_config = ConfigDict(extra="forbid")

    type: str
    input: dict[str, Any] = Field(default_factory=dict)
    scope: str | None = None
    id: str | None = None
    timestamp: datetime | None = None
    context: dict[str, Any] | None = None

    def to_action(self, scope: str) -> Action:
        data: dict[str, Any] = {"type": self.type, "input": self.input, "scope": self.scope or scope}
        if self.id is not None:
            data["id"] = self.id
        if self.timestamp is not None:
            data["timestamp"] = self.timestamp
        if self.context is not None:
            data["context"] = self.context
        return Action(**data)
