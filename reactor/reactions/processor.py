"""What a reaction is: a named handler for some action and document types."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg

from reactor.domain.document import Operation
from reactor.storage.operation_store import Position

if TYPE_CHECKING:
    from reactor.api.reactor import Reactor


@dataclass(frozen=True)
class ReactionContext:
    reaction: str
    document_type: str
    position: Position
    attempt: int
    reactor: Reactor | None
    # For exactly-once processors: the transaction that also advances the
    # stream's watermark. Write your output through it. None otherwise.
    tx: asyncpg.Connection | None = None


Handler = Callable[[Operation, ReactionContext], Awaitable[None] | None]


@dataclass(frozen=True)
class Processor:
    """`exactly_once`: the handler runs inside the transaction that acks it
    (output in the same database is then exactly-once); otherwise delivery
    is at least once and the handler must be idempotent."""

    name: str
    handler: Handler
    action_types: frozenset[str] | None = None
    document_types: frozenset[str] | None = None
    exactly_once: bool = False
    max_attempts: int = 5
    backoff_base: float = 0.2  # seconds; doubles per attempt, capped at backoff_max
    backoff_max: float = 30.0
    lease_seconds: float = 30.0
    extra: dict[str, Any] = field(default_factory=dict)

    def matches(self, operation: Operation, document_type: str) -> bool:
        if self.action_types is not None and operation.action.type not in self.action_types:
            return False
        return self.document_types is None or document_type in self.document_types

    def matches_types(self, action_types: set[str], document_type: str) -> bool:
        if self.document_types is not None and document_type not in self.document_types:
            return False
        return self.action_types is None or bool(self.action_types & action_types)


def processor(
    name: str,
    handler: Handler,
    *,
    action_types: list[str] | None = None,
    document_types: list[str] | None = None,
    **options: Any,
) -> Processor:
    return Processor(
        name=name,
        handler=handler,
        action_types=frozenset(action_types) if action_types else None,
        document_types=frozenset(document_types) if document_types else None,
        **options,
    )
