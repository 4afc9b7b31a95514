"""One lane's state (a document's scope on a branch) reduced action by
action, with the hash after each.

The write path, replay, verification and client-side signing all reduce
through it (`ReduceSession` for a model's scopes, `reduce_document_scope`
for the document scope, `state_hash` for both), so a hash computed anywhere
agrees with the one stored."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel

from reactor.domain.actions import Action
from reactor.domain.document_scope import initial_document_state, reduce_document_scope
from reactor.domain.hashing import state_hash
from reactor.domain.model import DocumentModel, ReduceSession


class LaneReducer:
    def __init__(
        self,
        model: DocumentModel | None,
        scope: str,
        state: dict[str, Any] | None,
        validated: BaseModel | None = None,
    ):
        """`model` may be None only for the document scope; `validated`, the
        same state as the model's instance, spares validating `state`."""
        self._session: ReduceSession | None = None
        self._state = state
        if scope != "document":
            if model is None:
                raise ValueError(f"scope {scope!r} needs the document's model")
            self._session = model.session(scope, state, validated)

    @classmethod
    def initial(cls, model: DocumentModel | None, scope: str) -> LaneReducer:
        if scope == "document":
            return cls(None, scope, initial_document_state())
        if model is None:
            raise ValueError(f"scope {scope!r} needs the document's model")
        return cls(model, scope, model.initial_state(scope))

    def apply(self, action: Action) -> str:
        """Reduces `action` and returns the hash of the resulting state."""
        self.reduce(action)
        return self.digest()

    def reduce(self, action: Action) -> None:
        """Only the reducer's step: the write path tells a reducer's error
        from a state that cannot be serialized, so it hashes separately."""
        if self._session is None:
            assert self._state is not None
            self._state = reduce_document_scope(self._state, action)
        else:
            self._session.apply(action)

    @property
    def validated(self) -> BaseModel | None:
        """A model scope's state as the model's instance (None for the
        document scope)."""
        return None if self._session is None else self._session.validated

    def state(self) -> dict[str, Any]:
        if self._session is None:
            assert self._state is not None
            return self._state
        return self._session.state()

    def state_json(self) -> bytes:
        """The state as stored (the model's field order)."""
        if self._session is None:
            return orjson.dumps(self.state())
        return self._session.state_json()

    def digest(self) -> str:
        return state_hash(self.state())
