"""One lane's state (a document's scope on a branch) reduced action by
action, with the hash after each.

Replay, verification and client-side signing reduce through it, and it runs
exactly what the write path runs (`ReduceSession` for a model's scopes,
`reduce_document_scope` for the document scope, `state_hash` for both), so
a hash computed anywhere agrees with the one stored."""

from __future__ import annotations

from typing import Any

from reactor.domain.actions import Action
from reactor.domain.document_scope import initial_document_state, reduce_document_scope
from reactor.domain.hashing import state_hash
from reactor.domain.model import DocumentModel, ReduceSession


class LaneReducer:
    def __init__(self, model: DocumentModel | None, scope: str, state: dict[str, Any]):
        """`model` may be None only for the document scope."""
        self._session: ReduceSession | None = None
        self._state = state
        if scope != "document":
            if model is None:
                raise ValueError(f"scope {scope!r} needs the document's model")
            self._session = model.session(scope, state)

    @classmethod
    def initial(cls, model: DocumentModel | None, scope: str) -> LaneReducer:
        if scope == "document":
            return cls(None, scope, initial_document_state())
        if model is None:
            raise ValueError(f"scope {scope!r} needs the document's model")
        return cls(model, scope, model.initial_state(scope))

    def apply(self, action: Action) -> str:
        """Reduces `action` and returns the hash of the resulting state."""
        if self._session is None:
            self._state = reduce_document_scope(self._state, action)
        else:
            self._session.apply(action)
        return self.digest()

    def state(self) -> dict[str, Any]:
        return self._state if self._session is None else self._session.state()

    def digest(self) -> str:
        return state_hash(self.state())
