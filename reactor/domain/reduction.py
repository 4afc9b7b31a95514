"""Reducing a job, without I/O: from the head of its lane, its actions and the
models, the operations it appends (ids, indexes, timestamps, hashes), the
new head, the keyframes to write, and what its document-scope actions change
besides their own state (the header, and on creation the other scopes'
initial states), as values. Writing them is the application's
(reactor/application/apply.py).

A job is reduced an action at a time (`Reduction.steps`), so whoever writes
a header change does it before the next action is reduced, and a long job can
hand the event loop back between actions.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reactor.domain.actions import Action
from reactor.domain.batch import PlannedJob
from reactor.domain.document_scope import document_version, initial_document_state
from reactor.domain.hashing import state_hash
from reactor.domain.history import HISTORY_ACTIONS, HistoryError, Logged, LoggedLane
from reactor.domain.ids import uuid5_text
from reactor.domain.jobs import OperationSpan
from reactor.domain.lane_reducer import LaneReducer
from reactor.domain.model import DocumentModel, ModelRegistry
from reactor.domain.rejection import JobRejected
from reactor.domain.signing import SignatureError, SignatureVerifier
from reactor.domain.upgrades import (
    UNVERSIONED,
    UPGRADE_ACTION,
    UpgradeError,
    action_version,
    check_upgrade,
)

OPERATION_NAMESPACE = uuid.UUID("6f1d3c1e-7d0a-4a8e-9a55-0c3f0d7e2b10")
_NAMESPACE_BYTES = OPERATION_NAMESPACE.bytes


def operation_id(job_id: str, action: Action, position: int) -> str:
    """Deterministic, so a retried job yields identical operations: the UUID
    version 5 of `job/position/action id` in OPERATION_NAMESPACE."""
    return uuid5_text(_NAMESPACE_BYTES, f"{job_id}/{position}/{action.id}")


@dataclass
class Head:
    """A lane's newest state: the revision (number of operations) and hash."""

    revision: int
    hash: str
    state: dict[str, Any] | None  # None when only the validated model is known
    validated: Any = None  # the state as a validated model, when known


@dataclass(slots=True)
class NewOperation:
    id: str
    index: int
    timestamp: datetime
    hash: str
    action: Action  # as stored: an UNDO is stored as its NOOP, and so on
    skip: int = 0


def needs_history(job: PlannedJob) -> bool:
    """Whether reducing the job reads the lane's past operations (UNDO, REDO,
    PRUNE), not only its head."""
    return any(a.type in HISTORY_ACTIONS for a in job.actions)


@dataclass(frozen=True, slots=True)
class HeaderCreated:
    """CREATE_DOCUMENT: the document's header row."""

    document_type: str
    slug: str | None
    name: str
    at: datetime
    model_version: int = UNVERSIONED


@dataclass(frozen=True, slots=True)
class ScopeCreated:
    """CREATE_DOCUMENT: another scope's initial state, at revision 0."""

    scope: str
    state: dict[str, Any]
    hash: str


@dataclass(frozen=True, slots=True)
class HeaderUpdated:
    """The header's modification time, and its name or deletion: any other
    document-scope action, or a job on a model's scope (SET_NAME is one of
    its global actions)."""

    at: datetime
    name: str | None = None  # SET_NAME
    deleted: bool = False  # DELETE_DOCUMENT
    model_version: int | None = None  # UPGRADE_DOCUMENT
    # The document scope's own children when deleted, counted with the
    # edges other scopes' models added (none may remain).
    children: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ScopeUpgraded:
    """UPGRADE_DOCUMENT: the operation it appends to a model scope, whose
    state the writer reads under the lane lock and steps with the model's
    manifest (reactor/domain/upgrades.py)."""

    scope: str
    action: Action  # UPGRADE_DOCUMENT {from_version, to_version} in `scope`
    operation_id: str
    job_id: str
    model: DocumentModel = field(compare=False)


HeaderChange = HeaderCreated | ScopeCreated | HeaderUpdated | ScopeUpgraded


@dataclass
class Reduced:
    """A job reduced in memory, ready to write."""

    ops: list[NewOperation]
    head: Head
    state_json: bytes
    keyframes: list[tuple[int, str, bytes]]  # (index, hash, state JSON)
    model: DocumentModel | None  # None: a document-scope job on no document
    children: list[str] | None  # the model's child edges, when it declares them
    span: OperationSpan  # the job's operations: the outcome's and the ledger's
    # A model scope's job touches the header once, in the statement that
    # writes the job (None for the document scope)...
    header: HeaderUpdated | None = None
    # ...a document-scope job action by action, in this order.
    header_changes: list[HeaderChange] = field(default_factory=list)


def model_for(registry: ModelRegistry, document_type: str) -> DocumentModel:
    model = registry.find(document_type)
    if model is None:
        raise JobRejected("UnknownDocumentType", registry.unknown(document_type))
    return model


def initial_head(model: DocumentModel | None, scope: str) -> Head:
    """The head of a lane with no operations yet."""
    if scope == "document":
        initial = initial_document_state()
        return Head(0, state_hash(initial), initial)
    assert model is not None
    state, digest = initial_scope_state(model, scope)
    return Head(0, digest, state)


class Reduction:
    """One job's reduction. `steps()` reduces the actions in turn, yielding
    after each one: its header changes for a document-scope action (the
    caller writes each before the next is reduced), else None. `result()` is
    the reduced job once the steps are exhausted. Raises JobRejected for
    anything the job itself caused."""

    def __init__(
        self,
        job: PlannedJob,
        job_id: str,
        head: Head,
        model: DocumentModel | None,
        *,
        registry: ModelRegistry,
        keyframe_interval: int,
        verifier: SignatureVerifier | None = None,
        history: Sequence[Logged] | None = None,
        document_version: int | None = None,
    ):
        """`document_version`: the header's model version, which actions
        naming the version they were written for are checked against (the
        write path passes it for every job that has one)."""
        self._job = job
        self._version = document_version
        self._job_id = job_id
        self._head = head
        self._model = model
        self._registry = registry
        self._keyframe_interval = keyframe_interval
        self._verifier = verifier
        self._ops: list[NewOperation] = []
        self._keyframes: list[tuple[int, str, bytes]] = []
        self._changes: list[HeaderChange] = []
        self._hash = head.hash
        self._lane = LaneReducer(model, job.scope, head.state, head.validated)
        self._logged: LoggedLane | None = None
        if history is not None:
            if len(history) != head.revision:
                raise ValueError(f"history of {len(history)} operations, head at {head.revision}")
            if model is not None:
                self._logged = LoggedLane(self._lane, model, job.scope, history)
        elif needs_history(job):
            raise ValueError("a job with UNDO, REDO or PRUNE needs the lane's history")
        self._upgraded_from = 0
        self._done = False

    def steps(self) -> Iterator[HeaderChange | None]:
        for position, action in enumerate(self._job.actions):
            self._reduce(position, action)
            if self._job.scope != "document":
                yield None
            else:
                for change in self._document_changes(action):
                    self._changes.append(change)
                    yield change
        self._done = True

    def result(self) -> Reduced:
        if not self._done:
            raise RuntimeError("the job's reduction has steps left")
        job, lane, model = self._job, self._lane, self._model
        try:
            state_json = lane.state_json()
        except Exception as exc:
            raise JobRejected.of_serialization(exc, "the job's resulting state") from exc
        revision = self._head.revision + len(self._ops)
        children: list[str] | None = None
        header: HeaderUpdated | None = None
        validated = lane.validated
        if validated is not None:
            assert model is not None
            head = Head(revision, self._hash, None, validated)
            names = [a.input["name"] for a in job.actions if a.type == "SET_NAME"]
            header = HeaderUpdated(job.actions[-1].timestamp, name=names[-1] if names else None)
            if job.scope == "global" and model.children_of is not None:
                try:
                    children = sorted(model.children_of_model(validated))
                except Exception as exc:
                    raise JobRejected.of_model(exc, f"{model.document_type} children") from exc
        else:
            head = Head(revision, self._hash, lane.state())
        span = OperationSpan(
            document_id=job.document_id,
            scope=job.scope,
            branch=job.branch,
            operation_index=self._head.revision,
            count=len(self._ops),
        )
        return Reduced(
            self._ops,
            head,
            state_json,
            self._keyframes,
            model,
            children,
            span,
            header,
            self._changes,
        )

    def _reduce(self, position: int, action: Action) -> None:
        index = self._head.revision + position
        where = f"actions[{position}] {action.type}"
        lane = self._lane
        if action.type == UPGRADE_ACTION and self._job.scope == "document":
            self._upgraded_from = document_version(lane.state())
        if self._verifier is not None:
            try:
                self._verifier.verify(action, self._job.document_id, self._hash)
            except SignatureError as exc:
                raise JobRejected("SignatureError", f"actions[{position}] {exc}") from exc
        self._check_version(where, action)
        skip = 0
        try:
            # Inputs were validated and normalized when the batch was
            # planned; reducers parse what they use.
            if self._logged is not None:
                skip, action = self._logged.apply(action)
                lane = self._lane = self._logged.lane
            else:
                lane.reduce(action)
        except HistoryError as exc:
            raise JobRejected(exc.error_type, f"{where}: {exc}") from exc
        except Exception as exc:  # a user reducer's bug fails the job, not the worker
            raise JobRejected.of_model(exc, where) from exc
        try:
            digest = self._hash = lane.digest()
            snapshot = None
            if (index + 1) % self._keyframe_interval == 0:
                snapshot = lane.state_json()
        except Exception as exc:
            raise JobRejected.of_serialization(exc, where) from exc
        self._ops.append(
            NewOperation(
                operation_id(self._job_id, action, position),
                index,
                action.timestamp,
                digest,
                action,
                skip,
            )
        )
        if snapshot is not None:
            self._keyframes.append((index, digest, snapshot))

    def _check_version(self, where: str, action: Action) -> None:
        written_for = action_version(action.context)
        if written_for is not None:
            version = self._version
            if self._job.scope == "document" and self._model is not None:
                version = document_version(self._lane.state())
            if version is not None and written_for > version:
                raise JobRejected(
                    "ActionVersionTooNew",
                    f"{where}: written for model version {written_for}, the document is at "
                    f"{version} (UPGRADE_DOCUMENT it first)",
                )
        if action.type == UPGRADE_ACTION and self._job.scope == "document":
            if self._model is None:
                raise JobRejected(
                    "DocumentNotFound", f"document {self._job.document_id!r} does not exist"
                )
            current = document_version(self._lane.state())
            try:
                check_upgrade(
                    self._model.upgrades,
                    self._model.document_type,
                    current,
                    int(action.input["to_version"]),
                )
            except UpgradeError as exc:
                raise JobRejected(exc.error_type, f"{where}: {exc}") from exc

    def _document_changes(self, action: Action) -> Iterator[HeaderChange]:
        """What a document-scope action changes besides its own state. Lazy:
        each is computed after the previous one was written."""
        state = self._lane.state()
        if action.type == "CREATE_DOCUMENT":
            model = self._model = model_for(self._registry, state["document_type"])
            yield HeaderCreated(
                state["document_type"],
                state["slug"],
                state["name"],
                action.timestamp,
                document_version(state),
            )
            for scope in ("global", "local"):
                initial, digest = initial_scope_state(model, scope)
                yield ScopeCreated(scope, initial, digest)
        elif action.type == UPGRADE_ACTION:
            assert self._model is not None  # checked before reducing
            upgrade = {
                "from_version": self._upgraded_from,
                "to_version": document_version(state),
            }
            position = len(self._ops) - 1
            for scope in ("global", "local"):
                op_id = uuid5_text(
                    _NAMESPACE_BYTES, f"{self._job_id}/{position}/{action.id}/{scope}"
                )
                scoped = Action(
                    id=op_id,
                    type=UPGRADE_ACTION,
                    input=upgrade,
                    scope=scope,
                    timestamp=action.timestamp,
                )
                yield ScopeUpgraded(scope, scoped, op_id, self._job_id, self._model)
            yield HeaderUpdated(action.timestamp, model_version=upgrade["to_version"])
        else:
            deleted = action.type == "DELETE_DOCUMENT"
            yield HeaderUpdated(
                action.timestamp,
                name=state["name"] if action.type == "SET_NAME" else None,
                deleted=deleted,
                children=tuple(state.get("children", [])) if deleted else (),
            )


def reduce_job(
    job: PlannedJob,
    job_id: str,
    head: Head,
    model: DocumentModel | None,
    *,
    registry: ModelRegistry,
    keyframe_interval: int,
    verifier: SignatureVerifier | None = None,
    history: Sequence[Logged] | None = None,
    document_version: int | None = None,
) -> Reduced:
    """The whole reduction in one call."""
    reduction = Reduction(
        job,
        job_id,
        head,
        model,
        registry=registry,
        keyframe_interval=keyframe_interval,
        verifier=verifier,
        history=history,
        document_version=document_version,
    )
    for _ in reduction.steps():
        pass
    return reduction.result()


def initial_scope_state(model: DocumentModel, scope: str) -> tuple[dict[str, Any], str]:
    """A scope's initial state and its hash: model code, so a failure fails the job."""
    try:
        initial = model.initial_state(scope)
    except Exception as exc:
        raise JobRejected.of_model(exc, f"{model.document_type} initial {scope} state") from exc
    try:
        return initial, state_hash(initial)
    except Exception as exc:
        where = f"{model.document_type} initial {scope} state"
        raise JobRejected.of_serialization(exc, where) from exc
