"""Planning loads (operations from another reactor) into a batch, checked
before anything starts like any batch: a bad load raises ValidationError
naming `loads[i]` and the field, and nothing is written.

What can be checked without the lane is checked here: the scope, the
document type, every action's type and input size, and that each load's
operations are contiguous and follow its `after`. What needs the lane
(whether `after` is held, the hashes, a merge's size) is the apply path's,
under the lane lock (reactor/domain/merge.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from reactor.domain.actions import SCOPES
from reactor.domain.batch import MAX_NAME_LENGTH, BatchPlan, ExistingDocument, PlannedJob
from reactor.domain.document_scope import DOCUMENT_ACTIONS
from reactor.domain.errors import ValidationError
from reactor.domain.graph import JobGraph
from reactor.domain.hashing import canonical_json
from reactor.domain.limits import DEFAULT_LIMITS, Limits, check_storable, check_text, too_big
from reactor.domain.model import BASE_ACTIONS, DocumentModel, ModelRegistry, NoInput, validate_with
from reactor.domain.sync import ORIGIN_RE, LoadedOp, LoadRequest, LoadSpec, load_batch_id
from reactor.domain.upgrades import UPGRADE_ACTION

# Stored forms of base actions: an UNDO is stored as a NOOP that records
# what it undid, a PRUNE as a LOAD_STATE, an upgrade in a model scope as
# UPGRADE_DOCUMENT. Their inputs are the reactor's own, checked by replay.
_STORED_BASE = frozenset(BASE_ACTIONS) | {UPGRADE_ACTION}
# A sender's retries of one load (its batch id stays within 128 characters).
MAX_ATTEMPT = 10**9
# Operation indexes and skips are PostgreSQL integers.
MAX_INDEX = 2**31 - 2


def check_load_ids(loads: Sequence[LoadRequest]) -> None:
    """Document ids PostgreSQL can store and compare: checked before the
    planner's lookup of the documents sends them to a query."""
    for i, load in enumerate(loads):
        check_text(load.document_id, job=None, field=f"loads[{i}].document_id")


def plan_loads(
    loads: Sequence[LoadRequest],
    registry: ModelRegistry,
    existing: Mapping[str, ExistingDocument],
    *,
    origin: str | None = None,
    attempt: int = 0,
    limits: Limits = DEFAULT_LIMITS,
) -> BatchPlan:
    if origin is not None and not ORIGIN_RE.match(origin):
        raise ValidationError(
            f"invalid origin {origin[:80]!r}: use 1-64 letters, digits, '_' or '-'", field="origin"
        )
    if not loads:
        raise ValidationError("no operations to load", field="loads")
    if not 0 <= attempt <= MAX_ATTEMPT:
        raise ValidationError(f"attempt must be 0 to {MAX_ATTEMPT}", field="attempt")
    if len(loads) > limits.max_jobs_per_batch:
        raise ValidationError(
            too_big("the number of loads", len(loads), limits.max_jobs_per_batch), field="loads"
        )
    types = dict(existing)
    last_in_lane: dict[tuple[str, str], int] = {}
    # Operation ids are unique in a reactor's log: one id twice in a load,
    # or in two lanes, is not a sender's log (a row would refuse it later).
    lane_of_op: dict[str, tuple[str, str, str]] = {}
    jobs: list[PlannedJob] = []
    total = 0
    for i, load in enumerate(loads):
        where = f"loads[{i}]"
        document_type, size = _check_load(load, where, registry, types, limits)
        _check_ids(load, where, lane_of_op)
        total += size
        if total > limits.max_request_bytes:
            raise ValidationError(
                too_big("the loads' action inputs", total, limits.max_request_bytes)
                + " bytes (REACTOR_MAX_REQUEST_BYTES)",
                field=where,
            )
        lane = (load.document_id, load.branch)
        jobs.append(
            PlannedJob(
                index=i,
                key=f"load-{i}",
                document_id=load.document_id,
                document_type=document_type,
                scope=load.scope,
                branch=load.branch,
                deps=[],
                after=last_in_lane.get(lane),
                actions=[op.action for op in load.operations],
                load=LoadSpec(
                    after=load.after,
                    ops=[
                        LoadedOp(id=op.id, index=op.index, skip=op.skip, hash=op.hash, dead=op.dead)
                        for op in load.operations
                    ],
                ),
            )
        )
        last_in_lane[lane] = i
    JobGraph.of(jobs)  # lane order only: no cycle is possible
    body = [load.model_dump(mode="json") for load in loads]
    digest = hashlib.sha256(canonical_json([origin, body]).encode()).hexdigest()[:32]
    return BatchPlan(batch_id=load_batch_id(origin, digest, attempt), jobs=jobs)


def _check_load(
    load: LoadRequest,
    where: str,
    registry: ModelRegistry,
    types: dict[str, ExistingDocument],
    limits: Limits,
) -> tuple[str, int]:
    """The load's document type and the stored size of its inputs."""
    for name, value in (
        ("document_id", load.document_id),
        ("scope", load.scope),
        ("branch", load.branch),
    ):
        check_text(value, job=None, field=f"{where}.{name}")
        if len(value) > MAX_NAME_LENGTH:
            raise ValidationError(
                f"{name} is {len(value)} characters long (at most {MAX_NAME_LENGTH})",
                field=f"{where}.{name}",
            )
    if load.scope not in SCOPES:
        raise ValidationError(
            f"unknown scope {load.scope!r} (one of {', '.join(SCOPES)})", field=f"{where}.scope"
        )
    ops = load.operations
    if len(ops) > limits.max_actions_per_job:
        raise ValidationError(
            too_big("the number of operations", len(ops), limits.max_actions_per_job),
            field=f"{where}.operations",
        )
    first = ops[0].index
    if first > 0 and load.after is None:
        raise ValidationError(
            f"the operations start at index {first}: name the sender's operation before them",
            field=f"{where}.after",
        )
    if load.after is not None and load.after.index != first - 1:
        raise ValidationError(
            f"after is the operation at index {load.after.index}, but the operations start at "
            f"{first}",
            field=f"{where}.after.index",
        )
    document_type = load.document_type
    known = types.get(load.document_id)
    if known is not None and known.document_type:
        if document_type is not None and document_type != known.document_type:
            raise ValidationError(
                f"document {load.document_id!r} is a {known.document_type}, not a {document_type}",
                field=f"{where}.document_type",
            )
        document_type = known.document_type
    size = 0
    for k, op in enumerate(ops):
        field = f"{where}.operations[{k}]"
        if op.index != first + k:
            raise ValidationError(
                f"index {op.index} does not follow {first + k - 1}: the operations must be "
                "contiguous",
                field=f"{field}.index",
            )
        if op.index > MAX_INDEX:
            raise ValidationError(
                f"index {op.index} is past the largest a lane holds ({MAX_INDEX})",
                field=f"{field}.index",
            )
        if op.skip > op.index:
            raise ValidationError(
                f"skip {op.skip} reaches before the lane's first operation", field=f"{field}.skip"
            )
        _check_dead(op.dead, op.skip, field)
        action = op.action
        check_text(action.type, job=None, field=f"{field}.action.type")
        check_text(action.id, job=None, field=f"{field}.action.id")
        if action.scope != load.scope:
            raise ValidationError(
                f"the action's scope {action.scope!r} is not the load's {load.scope!r}",
                field=f"{field}.action.scope",
            )
        if op.timestamp != action.timestamp:
            raise ValidationError(
                "the operation's timestamp differs from its action's", field=f"{field}.timestamp"
            )
        stored = len(check_storable(action.input, job=None, field=f"{field}.action.input"))
        if stored > limits.max_input_bytes:
            raise ValidationError(
                too_big("the input", stored, limits.max_input_bytes, " bytes")
                + " (REACTOR_MAX_INPUT_BYTES)",
                field=f"{field}.action.input",
            )
        if action.context is not None:
            check_storable(action.context, job=None, field=f"{field}.action.context")
        size += stored
        if load.scope == "document":
            if action.type not in DOCUMENT_ACTIONS and action.type != "NOOP":
                raise ValidationError(
                    f"unknown document-scope action type {action.type!r}",
                    field=f"{field}.action.type",
                )
            try:
                validate_with(DOCUMENT_ACTIONS.get(action.type, NoInput), action.input)
            except ValidationError as exc:
                raise ValidationError(
                    f"{action.type}: {exc.reason}", field=f"{field}.action.{exc.field}"
                ) from None
            if action.type == "CREATE_DOCUMENT":
                created = str(action.input.get("document_type", ""))
                if registry.find(created) is None:
                    raise ValidationError(
                        registry.unknown(created), field=f"{field}.action.input.document_type"
                    )
                document_type = created
                types[load.document_id] = ExistingDocument(created)
            continue
        if document_type is None:
            raise ValidationError(
                f"document {load.document_id!r} does not exist here and the load names no "
                "document_type",
                field=f"{where}.document_type",
            )
        model = registry.find(document_type)
        if model is None:
            raise ValidationError(registry.unknown(document_type), field=f"{where}.document_type")
        _check_action(model, load.scope, action.type, action.input, f"{field}.action")
    if document_type is None:
        raise ValidationError(
            f"document {load.document_id!r} does not exist here and the load names no "
            "document_type",
            field=f"{where}.document_type",
        )
    if registry.find(document_type) is None:
        raise ValidationError(registry.unknown(document_type), field=f"{where}.document_type")
    return document_type, size


def _check_dead(dead: Sequence[str], skip: int, field: str) -> None:
    """`dead` names actions among the `skip` operations the operation leaves
    out, so there are at most `skip` of them: more would let one operation
    drop actions it never covered (dead wins in a merge)."""
    if len(dead) > skip:
        raise ValidationError(
            f"{len(dead)} dead actions, but the operation leaves out {skip} operations",
            field=f"{field}.dead",
        )
    for j, action_id in enumerate(dead):
        check_text(action_id, job=None, field=f"{field}.dead[{j}]")
        if not 0 < len(action_id) <= MAX_NAME_LENGTH:
            raise ValidationError(
                f"an action id of {len(action_id)} characters (1 to {MAX_NAME_LENGTH})",
                field=f"{field}.dead[{j}]",
            )


def _check_ids(load: LoadRequest, where: str, lane_of_op: dict[str, tuple[str, str, str]]) -> None:
    lane = (load.document_id, load.scope, load.branch)
    here: set[str] = set()
    for k, op in enumerate(load.operations):
        if op.id in here:
            raise ValidationError(
                f"operation id {op.id[:80]!r} appears twice in this load",
                field=f"{where}.operations[{k}].id",
            )
        here.add(op.id)
        if lane_of_op.setdefault(op.id, lane) != lane:
            raise ValidationError(
                f"operation id {op.id[:80]!r} is in another load's lane too",
                field=f"{where}.operations[{k}].id",
            )


def _check_action(
    model: DocumentModel, scope: str, action_type: str, data: dict[str, object], field: str
) -> None:
    if action_type in _STORED_BASE:
        return
    try:
        model.validate_input(scope, action_type, dict(data))
    except ValidationError as exc:
        path = f"{field}.{exc.field}" if exc.field else f"{field}.type"
        raise ValidationError(f"{action_type}: {exc.reason}", field=path) from None
