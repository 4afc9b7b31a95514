"""Reducing a load job: the operations `merge.plan_load` decided to append,
re-reduced from the lane's state, with their hashes checked where they
must equal the sender's, signatures checked when a verifier is set, and
what the document scope's header becomes. Pure, like `reduction.py`, whose
`Reduced` it returns so the same statement writes it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reactor.domain.actions import Action
from reactor.domain.batch import PlannedJob
from reactor.domain.document_scope import document_version
from reactor.domain.history import REDO_MARK, LoggedOp, state_at
from reactor.domain.jobs import OperationSpan
from reactor.domain.lane_reducer import LaneReducer
from reactor.domain.merge import (
    DEFAULT_MAX_REWIND,
    LoadError,
    LoadPlan,
    LogOp,
    Planned,
    buried,
    carrier,
    plan_load,
)
from reactor.domain.model import DocumentModel, ModelRegistry
from reactor.domain.reduction import (
    Head,
    HeaderChange,
    HeaderCreated,
    HeaderUpdated,
    NewOperation,
    Reduced,
    ScopeCreated,
    initial_head,
    initial_scope_state,
    model_for,
)
from reactor.domain.rejection import JobRejected
from reactor.domain.signing import SignatureError, SignatureVerifier
from reactor.domain.sync import OperationRef, SyncOperation, is_merged_copy


def reduce_load(
    job: PlannedJob,
    job_id: str,
    log: Sequence[LogOp],
    head: Head,
    model: DocumentModel | None,
    *,
    registry: ModelRegistry,
    keyframe_interval: int,
    verifier: SignatureVerifier | None = None,
    max_rewind: int = DEFAULT_MAX_REWIND,
) -> Reduced | None:
    """The load's reduced operations, or None when it adds nothing (every
    operation is held already, in the same order). Raises JobRejected."""
    spec = job.load
    assert spec is not None
    scope = job.scope
    incoming = spec.operations(job.actions)
    if verifier is not None:
        _verify(verifier, job.document_id, incoming, spec.after, model, scope, log)
    try:
        plan = plan_load(
            log, incoming, spec.after, scope=scope, job_id=job_id, max_rewind=max_rewind
        )
    except LoadError as exc:
        raise JobRejected(exc.error_type, str(exc)) from exc
    if not plan.ops and not plan.dead:
        return None
    # The state the merged run starts from: the head when nothing is
    # rewound, else replayed once, for both passes over the run.
    base_state: dict[str, Any] | None = None
    if plan.merged and plan.base != head.revision:
        base_state = _state_at(model, scope, log, plan.base).state()

    def base_lane() -> LaneReducer:
        if base_state is None:
            return LaneReducer(model, scope, head.state, head.validated)
        return LaneReducer(model, scope, base_state)

    if plan.merged:
        _leave_out_refused(plan, base_lane(), scope, job_id)
    revision = len(log)
    combined: list[LogOp | LoggedOp] = list(log)
    ops: list[NewOperation] = []
    keyframes: list[tuple[int, str, bytes]] = []
    if plan.dead:
        # Held, then skipped by the run: NOOPs (merge.buried), so each one's
        # state, and hash, is the head's.
        for planned in plan.dead:
            index = len(combined)
            ops.append(
                NewOperation(planned.id, index, planned.action.timestamp, head.hash, planned.action)
            )
            combined.append(LoggedOp(index, 0, planned.action))
    if plan.merged:
        lane = base_lane()
        first = plan.ops[0]
        plan.ops[0] = Planned(first.id, len(combined) - plan.base, first.action, None)
    else:
        lane = LaneReducer(model, scope, head.state, head.validated)
    for k, planned in enumerate(plan.ops):
        index = len(combined)
        where = f"operations[{k}] {planned.action.type} (action {planned.action.id})"
        if planned.skip > 0 and not (k == 0 and plan.merged):
            lane = _state_at(model, scope, combined, index - planned.skip)
        try:
            lane.reduce(planned.action)
        except Exception as exc:
            raise JobRejected.of_model(exc, where) from exc
        try:
            digest = lane.digest()
            snapshot = lane.state_json() if (index + 1) % keyframe_interval == 0 else None
        except Exception as exc:
            raise JobRejected.of_serialization(exc, where) from exc
        if planned.expected_hash is not None and digest != planned.expected_hash:
            raise JobRejected(
                "HashMismatchError",
                f"{where} at index {index}: the state's hash {digest[:16]}… differs from the "
                f"sender's {planned.expected_hash[:16]}…",
            )
        ops.append(
            NewOperation(
                planned.id, index, planned.action.timestamp, digest, planned.action, planned.skip
            )
        )
        if snapshot is not None:
            keyframes.append((index, digest, snapshot))
        combined.append(LoggedOp(index, planned.skip, planned.action))
    try:
        state_json = lane.state_json()
    except Exception as exc:
        raise JobRejected.of_serialization(exc, "the load's resulting state") from exc
    last = ops[-1]
    span = OperationSpan(
        document_id=job.document_id,
        scope=scope,
        branch=job.branch,
        operation_index=revision,
        count=len(ops),
    )
    if scope == "document":
        before = head.state or {}
        after = lane.state()
        changes, model = _document_changes(before, after, ops, model, registry)
        return Reduced(
            ops,
            Head(revision + len(ops), last.hash, after),
            state_json,
            keyframes,
            model,
            None,
            span,
            None,
            changes,
        )
    assert model is not None
    validated = lane.validated
    run = {p.id for p in plan.ops}
    names = [o.action.input.get("name") for o in ops if o.id in run and o.action.type == "SET_NAME"]
    header = HeaderUpdated(last.timestamp, name=str(names[-1]) if names else None)
    children: list[str] | None = None
    if scope == "global" and model.children_of is not None and validated is not None:
        try:
            children = sorted(model.children_of_model(validated))
        except Exception as exc:
            raise JobRejected.of_model(exc, f"{model.document_type} children") from exc
    new_head = Head(revision + len(ops), last.hash, None if validated else lane.state(), validated)
    return Reduced(ops, new_head, state_json, keyframes, model, children, span, header)


def _leave_out_refused(plan: LoadPlan, lane: LaneReducer, scope: str, job_id: str) -> None:
    """Moves the run's actions that the merged order makes invalid to the
    held dead ones: reduced on `lane`, a scratch lane at the run's start,
    each one its reducer refuses is left out (the state stays as before it)."""
    refused: list[Planned] = []
    for planned in plan.ops:
        try:
            lane.reduce(planned.action)
        except Exception:
            refused.append(planned)
    if not refused:
        return
    gone = {p.id for p in refused}
    plan.dead.extend(Planned(p.id, 0, buried(p.action), None) for p in refused)
    plan.ops[:] = [p for p in plan.ops if p.id not in gone]
    if not plan.ops:
        plan.ops.append(carrier(job_id, scope, max(p.action.timestamp for p in refused)))


def _verify(
    verifier: SignatureVerifier,
    document_id: str,
    incoming: Sequence[SyncOperation],
    after: OperationRef | None,
    model: DocumentModel | None,
    scope: str,
    log: Sequence[LogOp],
) -> None:
    """Each operation not held here must carry its author's signature: over
    the sender's previous state (its chain), or, for a merged copy, which
    sits after another state than the one its author signed for, over the
    state its signature names."""
    held = {op.id for op in log}
    previous = after.hash if after is not None else initial_head(model, scope).hash
    for k, op in enumerate(incoming):
        if op.id not in held:
            signed_for = previous
            if is_merged_copy(op.action):
                signature = (op.action.context or {}).get("signature")
                if isinstance(signature, dict):
                    signed_for = str(signature.get("previous_state_hash"))
            try:
                verifier.verify(_as_signed(op.action), document_id, signed_for)
            except SignatureError as exc:
                raise JobRejected("SignatureError", f"operations[{k}] {exc}") from exc
        previous = op.hash


def _state_at(
    model: DocumentModel | None, scope: str, log: Sequence[Any], revision: int
) -> LaneReducer:
    try:
        return state_at(model, scope, log, revision)
    except Exception as exc:
        raise JobRejected.of_model(
            exc, f"replaying scope {scope!r} to revision {revision}"
        ) from exc


def _as_signed(action: Action) -> Action:
    """The action as its author signed it: an UNDO is stored as the NOOP it
    became, a REDO as the action it repeated."""
    context = action.context or {}
    if action.type == "NOOP" and "undone" in action.input:
        return action.model_copy(update={"type": "UNDO", "input": {}})
    if REDO_MARK in context:
        return action.model_copy(update={"type": "REDO", "input": {}})
    return action


def _document_changes(
    before: dict[str, Any],
    after: dict[str, Any],
    ops: list[NewOperation],
    model: DocumentModel | None,
    registry: ModelRegistry,
) -> tuple[list[HeaderChange], DocumentModel | None]:
    """The header changes the document scope's new state implies."""
    changes: list[HeaderChange] = []
    at = ops[-1].timestamp
    if not before.get("document_type") and after.get("document_type"):
        model = model_for(registry, after["document_type"])
        created = next(o for o in ops if o.action.type == "CREATE_DOCUMENT")
        changes.append(
            HeaderCreated(
                after["document_type"],
                after.get("slug"),
                after.get("name", ""),
                created.timestamp,
                document_version(after),
            )
        )
        for scope in ("global", "local"):
            state, digest = initial_scope_state(model, scope)
            changes.append(ScopeCreated(scope, state, digest))
        before = {**after, "deleted": False, "children": []}
    deleted = bool(after.get("deleted")) and not before.get("deleted")
    version = document_version(after)
    changes.append(
        HeaderUpdated(
            at,
            name=after.get("name") if after.get("name") != before.get("name") else None,
            deleted=deleted,
            model_version=version if version != document_version(before) else None,
            children=tuple(after.get("children", [])) if deleted else (),
        )
    )
    return changes, model
