"""Document models: a plain module (state schema, action input schemas, pure
reducer) wrapped into one object the reactor can validate and reduce with.

A model module defines:

    document_type = "acme/invoice"
    GlobalState = InvoiceState               # pydantic model; GlobalState() is the initial state
    actions = {"ADD_LINE": AddLineInput}      # global-scope action inputs (pydantic models)
    def reducer(state: InvoiceState, action: Action) -> InvoiceState: ...

and optionally `LocalState`, `local_actions`, `local_reducer`, `initial_state()`
and `children(state) -> set[str]` (child document ids implied by the state,
which the reactor keeps in the relationship index).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any

import orjson
import pydantic
from pydantic import BaseModel, ConfigDict

from reactor.domain.actions import Action
from reactor.domain.errors import ValidationError
from reactor.domain.hashing import state_hash
from reactor.domain.upgrades import UPGRADE_ACTION, UpgradeManifest, upgrade_state


class EmptyState(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SetNameInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str


class NoInput(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PruneInput(BaseModel):
    """The index range [start, end) to collapse (checked against the lane
    when the job is applied: reactor/domain/history.py)."""

    model_config = ConfigDict(extra="forbid")
    start: int
    end: int


class LoadStateInput(BaseModel):
    """The scope's whole state; checked against the scope's own schema too."""

    model_config = ConfigDict(extra="forbid")
    state: dict[str, Any]


# Actions every model accepts in its global and local scopes; the reactor
# reduces them itself. SET_NAME (global only) changes the header; the
# history actions' semantics are in reactor/domain/history.py.
HISTORY_BASE_ACTIONS: dict[str, type[BaseModel]] = {
    "UNDO": NoInput,
    "REDO": NoInput,
    "PRUNE": PruneInput,
    "LOAD_STATE": LoadStateInput,
    "NOOP": NoInput,
}
BASE_ACTIONS: dict[str, type[BaseModel]] = {"SET_NAME": SetNameInput, **HISTORY_BASE_ACTIONS}
SCOPE_BASE_ACTIONS: dict[str, dict[str, type[BaseModel]]] = {
    "global": BASE_ACTIONS,
    "local": HISTORY_BASE_ACTIONS,
}

Reducer = Callable[[Any, Action], Any]


def _identity(state: Any, action: Action) -> Any:
    return state


@dataclass(frozen=True)
class DocumentModel:
    document_type: str
    state_schemas: Mapping[str, type[BaseModel]]
    action_schemas: Mapping[str, Mapping[str, type[BaseModel]]]
    reducers: Mapping[str, Reducer]
    initial: Mapping[str, Callable[[], BaseModel]] = field(default_factory=dict)
    children_of: Callable[[Any], set[str]] | None = None
    module: ModuleType | None = None
    # Versions and upgrade steps (reactor/domain/upgrades.py); None: version 1.
    upgrades: UpgradeManifest | None = None

    @classmethod
    def from_module(cls, module: ModuleType | DocumentModel) -> DocumentModel:
        if isinstance(module, DocumentModel):
            return module
        name = getattr(module, "__name__", repr(module))
        for attr in ("document_type", "GlobalState", "actions", "reducer"):
            if not hasattr(module, attr):
                raise TypeError(f"document model module {name} lacks required attribute {attr!r}")
        global_state: type[BaseModel] = module.GlobalState
        local_state: type[BaseModel] = getattr(module, "LocalState", EmptyState)
        initial_global = getattr(module, "initial_state", global_state)
        return cls(
            document_type=module.document_type,
            state_schemas={"global": global_state, "local": local_state},
            action_schemas={
                "global": dict(module.actions),
                "local": dict(getattr(module, "local_actions", {})),
            },
            reducers={
                "global": module.reducer,
                "local": getattr(module, "local_reducer", _identity),
            },
            initial={"global": initial_global, "local": local_state},
            children_of=getattr(module, "children", None),
            module=module if isinstance(module, ModuleType) else None,
            upgrades=getattr(module, "upgrade_manifest", None),
        )

    def initial_state(self, scope: str) -> dict[str, Any]:
        factory = self.initial.get(scope) or self.state_schemas[scope]
        return factory().model_dump(mode="json")

    def schema_for(self, scope: str, action_type: str) -> type[BaseModel] | None:
        base = SCOPE_BASE_ACTIONS.get(scope, {})
        if action_type in base:
            return base[action_type]
        return self.action_schemas.get(scope, {}).get(action_type)

    def known_actions(self, scope: str) -> list[str]:
        names = list(self.action_schemas.get(scope, {}))
        names += list(SCOPE_BASE_ACTIONS.get(scope, {}))
        return sorted(names)

    def validate_input(self, scope: str, action_type: str, data: dict[str, Any]) -> dict[str, Any]:
        """Returns the normalized input or raises ValidationError naming the field."""
        schema = self.schema_for(scope, action_type)
        if schema is None:
            raise ValidationError(
                f"unknown action type {action_type!r} for {self.document_type} in scope "
                f"{scope!r} (known: {', '.join(self.known_actions(scope)) or 'none'})",
                field="type",
            )
        normalized = validate_with(schema, data)
        if action_type == "LOAD_STATE" and scope in self.state_schemas:
            state = validate_with(self.state_schemas[scope], normalized["state"], "input.state")
            normalized = {"state": state}
        return normalized

    def reduce(self, scope: str, state: dict[str, Any], action: Action) -> dict[str, Any]:
        """Applies one action to a JSON state. Base actions leave state unchanged."""
        session = self.session(scope, state)
        session.apply(action)
        return session.state()

    def session(
        self, scope: str, state: dict[str, Any] | None, validated: BaseModel | None = None
    ) -> ReduceSession:
        """Reduces several actions in a row, validating the state only once
        (not at all when `validated`, the same state as a model, is given)."""
        return ReduceSession(self, scope, state, validated)

    def children(self, global_state: dict[str, Any]) -> set[str] | None:
        if self.children_of is None:
            return None
        return self.children_of_model(self.state_schemas["global"].model_validate(global_state))

    def children_of_model(self, global_state: BaseModel) -> set[str]:
        """Child document ids implied by a validated global state."""
        if self.children_of is None:
            return set()
        return set(self.children_of(global_state))


class ReduceSession:
    """Reduces a run of actions on one scope's state: the write path, replay,
    verification and signing all reduce through it. The state lives as the
    validated model between actions (validated at most once), and is dumped
    to its JSON value once per action: that value is what is hashed
    (`state_hash`, as every operation stores the hash of the state it
    produced) and what is stored, so the hash is always that of the state
    `get()` returns.

    A reducer sees either the model the previous action returned or, after
    the state was read back from storage, the model validated from its JSON.
    Reducers must give the same result for both (build states through their
    constructors, not `model_construct`); `Reactor.verify` finds an operation
    whose replay differs."""

    def __init__(
        self,
        model: DocumentModel,
        scope: str,
        state: dict[str, Any] | None,
        validated: BaseModel | None = None,
    ):
        if state is None and validated is None:
            raise ValueError("a session needs the state, as JSON or validated")
        self._scope = scope
        self._model = model
        self._schema = model.state_schemas[scope]
        self._reducer = model.reducers[scope]
        self._current: BaseModel | None = validated
        self._state = state
        self._json: bytes | None = None

    @property
    def validated(self) -> BaseModel:
        if self._current is None:
            self._current = self._schema.model_validate(self._state)
        return self._current

    def state(self) -> dict[str, Any]:
        """The state's JSON value: what is stored and hashed."""
        if self._state is None:
            assert self._current is not None
            self._state = self._current.model_dump(mode="json")
        return self._state

    def state_json(self) -> bytes:
        """The state as stored: JSON in the model's field order."""
        if self._json is None:
            self._json = orjson.dumps(self.state())
        return self._json

    def digest(self) -> str:
        return state_hash(self.state())

    def apply(self, action: Action) -> None:
        if action.type == UPGRADE_ACTION:
            # Written by the document scope's UPGRADE_DOCUMENT: the steps'
            # result, as the model's latest schema reads it. Raises UpgradeError.
            upgraded = upgrade_state(
                self._model.upgrades,
                self._model.document_type,
                self._scope,
                self.state(),
                int(action.input["from_version"]),
                int(action.input["to_version"]),
            )
            self._current = self._schema.model_validate(upgraded)
            self._state = None
            self._json = None
            return
        if action.type in SCOPE_BASE_ACTIONS.get(self._scope, {}):
            if action.type == "LOAD_STATE":
                self._current = self._schema.model_validate(action.input["state"])
                self._state = None
                self._json = None
            # UNDO, REDO and PRUNE are stored as the NOOP, copied action or
            # LOAD_STATE they stand for (reactor/domain/history.py).
            return
        result = self._reducer(self.validated, action)
        if not isinstance(result, self._schema):
            result = self._schema.model_validate(result)
        self._current = result
        self._state = None
        self._json = None


def validate_with(
    schema: type[BaseModel], data: dict[str, Any], where: str = "input"
) -> dict[str, Any]:
    try:
        return schema.model_validate(data).model_dump(mode="json")
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        field_path = f"{where}.{loc}" if loc else where
        raise ValidationError(first["msg"], field=field_path) from None


# A loader returns the model of the document type it is asked about, or None.
ModelLoader = Callable[[str], ModuleType | DocumentModel | None]

# Where models come from, as the error for a type none of them knows says.
MODEL_SOURCES = (
    "with_document_models and with_document_model_loader, and for workers and the CLI "
    "the built-in models, REACTOR_MODELS and installed entry points in group 'reactor.models'"
)


class ModelRegistry:
    """Looks models up by document type: the registered ones, else each
    loader in turn, caching the model a loader returns.

    Loaders are synchronous because the registry is read inside synchronous
    code: a batch is planned and validated, and a job reduced, without
    awaiting. A loader that has to fetch or build a model pays for it once,
    at the first lookup of that type. A None is not cached, so a model that
    becomes available later is still found."""

    def __init__(
        self,
        models: list[DocumentModel],
        loaders: Sequence[ModelLoader] = (),
        manifests: Sequence[UpgradeManifest] = (),
    ):
        self._models: dict[str, DocumentModel] = {}
        self._loaders = tuple(loaders)
        # Manifests given apart from their models: each joins its type's
        # model, registered or loaded later.
        self._manifests: dict[str, UpgradeManifest] = {}
        for manifest in manifests:
            if manifest.document_type in self._manifests:
                raise ValueError(f"two upgrade manifests for {manifest.document_type!r}")
            self._manifests[manifest.document_type] = manifest
        for m in models:
            if m.document_type in self._models:
                raise ValueError(f"document model {m.document_type!r} registered twice")
            self._models[m.document_type] = self._with_manifest(m)

    def _with_manifest(self, model: DocumentModel) -> DocumentModel:
        manifest = self._manifests.get(model.document_type)
        return model if manifest is None else replace(model, upgrades=manifest)

    def find(self, document_type: str) -> DocumentModel | None:
        found = self._models.get(document_type)
        if found is not None:
            return found
        for loader in self._loaders:
            loaded = loader(document_type)
            if loaded is None:
                continue
            model = DocumentModel.from_module(loaded)
            if model.document_type != document_type:
                raise ValueError(
                    f"document model loader {loader!r} returned a model of "
                    f"{model.document_type!r} when asked for {document_type!r}"
                )
            # Two lookups racing keep one model.
            return self._models.setdefault(document_type, self._with_manifest(model))
        return None

    def get(self, document_type: str) -> DocumentModel:
        model = self.find(document_type)
        if model is None:
            raise ValidationError(self.unknown(document_type), field="input.document_type")
        return model

    def unknown(self, document_type: str) -> str:
        """Why `document_type` has no model: the one message for it."""
        return (
            f"unknown document type {document_type!r} "
            f"(registered: {', '.join(self.types()) or 'none'}; models come from "
            f"{MODEL_SOURCES})"
        )

    def __contains__(self, document_type: str) -> bool:
        return self.find(document_type) is not None

    def types(self) -> list[str]:
        return sorted(self._models)
