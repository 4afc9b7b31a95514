"""Actions: the only way a document changes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from reactor.domain.ids import uuid4_text

SCOPES = ("global", "local", "document")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Action(BaseModel):
    """An intent to change one scope of one document.

    `id` and `timestamp` are fixed when the action is submitted, never when it
    is applied, so a retried job produces byte-identical operations.
    """

    model_config = ConfigDict(frozen=True)

    id: str = Field(default_factory=uuid4_text)
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

    def to_action(
        self,
        scope: str,
        normalized_input: dict[str, Any] | None = None,
        *,
        new_id: str | None = None,
        submitted_at: datetime | None = None,
    ) -> Action:
        """The action to store; `normalized_input` (the model's validated
        form of `input`) replaces `input` when given. `new_id` and
        `submitted_at` name and date it unless the spec already does (a
        planner passes them in bulk rather than have each action draw its
        own)."""
        data: dict[str, Any] = {
            "type": self.type,
            "input": self.input if normalized_input is None else normalized_input,
            "scope": self.scope or scope,
        }
        action_id = self.id if self.id is not None else new_id
        if action_id is not None:
            data["id"] = action_id
        timestamp = self.timestamp if self.timestamp is not None else submitted_at
        if timestamp is not None:
            data["timestamp"] = timestamp
        if self.context is not None:
            data["context"] = self.context
        return Action(**data)
