"""Batch requests and their validation into an executable plan.

Validation is complete before anything starts: a bad request raises one
ValidationError naming the job key and the field, and nothing is written.
Jobs on the same (document, branch) form a lane and keep submission order;
`depends_on` edges additionally propagate failure.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from reactor.domain.actions import SCOPES, Action, ActionSpec, utcnow
from reactor.domain.document_scope import DOCUMENT_ACTIONS
from reactor.domain.errors import ReducerError, ValidationError
from reactor.domain.graph import CycleError, JobGraph
from reactor.domain.hashing import canonical_json
from reactor.domain.ids import uuid4_texts
from reactor.domain.limits import (
    DEFAULT_LIMITS,
    Limits,
    check_storable,
    check_text,
    find_unstorable,
    text_problem,
    too_big,
)
from reactor.domain.model import ModelRegistry, validate_with
from reactor.domain.sync import LoadSpec
from reactor.domain.upgrades import latest_version

BATCH_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# Keys, document ids and branch names travel in every plan entry, job view
# and outcome through Temporal; bounded, a batch's payloads stay far from
# Temporal's 2 MB limit.
MAX_NAME_LENGTH = 256


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str
    document_id: str
    scope: str = "global"
    branch: str = "main"
    actions: list[ActionSpec] = Field(default_factory=list)
    depends_on: list[str] = Field(default_factory=list)


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_id: str | None = None
    jobs: list[JobRequest]


@dataclass(frozen=True)
class ExistingDocument:
    document_type: str
    deleted: bool = False
    # Child edges (explicit or from the model's state); counted only for the
    # documents a batch deletes, as deleting a parent is refused.
    children: int = 0


class PlannedJob(BaseModel):
    """A validated job with its actions materialized (ids and timestamps fixed)."""

    index: int
    key: str
    document_id: str
    document_type: str
    scope: str
    branch: str
    deps: list[int]
    after: int | None
    actions: list[Action]
    # Set for a load (operations another reactor produced): reactor/domain/merge.py.
    load: LoadSpec | None = None


class PlanEntry(BaseModel):
    """What the workflow needs of a job: the DAG, not the payload."""

    key: str
    document_id: str
    document_type: str
    deps: list[int] = Field(default_factory=list)
    after: int | None = None
    actions: int = 1


class BatchPlan(BaseModel):
    batch_id: str
    jobs: list[PlannedJob]

    def entries(self) -> list[PlanEntry]:
        return [entry_of(j) for j in self.jobs]

    def request_hash(self) -> str:
        """Identity of the request, ignoring the ids and timestamps planning
        generated: the same request under the same batch_id is the same
        batch (checked against the job ledger and the workflow's memo)."""
        body = [
            [
                j.key,
                j.document_id,
                j.scope,
                j.branch,
                j.deps,
                [[a.type, a.input, a.scope] for a in j.actions],
            ]
            for j in self.jobs
        ]
        return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def entry_of(job: PlannedJob) -> PlanEntry:
    return PlanEntry(
        key=job.key,
        document_id=job.document_id,
        document_type=job.document_type,
        deps=job.deps,
        after=job.after,
        actions=len(job.actions),
    )


def new_batch_id() -> str:
    return uuid.uuid4().hex


def check_arrival(raw: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> None:
    """The limits a request given as a mapping must meet before it is parsed:
    its counts, and the size of its JSON. A value JSON cannot hold (a lone
    surrogate, an integer over 64 bits, nesting past what the encoder takes)
    is reported by its path."""
    jobs = raw.get("jobs")
    if isinstance(jobs, list | tuple):
        _check_job_count(len(jobs), limits)
        for i, job in enumerate(jobs):
            if isinstance(job, Mapping):
                actions = job.get("actions")
                if isinstance(actions, list | tuple):
                    _check_action_count(len(actions), _raw_key(job, i), limits)
    try:
        size = len(orjson.dumps(raw, default=_jsonable))
    except TypeError as exc:
        # An input sits 5 levels down (request, jobs, job, actions, action):
        # its depth is counted from itself, as planning does.
        found = find_unstorable(raw, above=5)
        if found is None:
            raise ValidationError(f"the request is not JSON: {exc}") from None
        path, reason = found
        job, field = _job_and_field(raw, path.lstrip("."))
        raise ValidationError(reason, job=job, field=field) from None
    if size > limits.max_request_bytes:
        raise ValidationError(
            too_big("the request", size, limits.max_request_bytes, " bytes")
            + " (REACTOR_MAX_REQUEST_BYTES)"
        )


def check_counts(request: BatchRequest, limits: Limits = DEFAULT_LIMITS) -> None:
    _check_job_count(len(request.jobs), limits)
    for i, job in enumerate(request.jobs):
        _check_action_count(len(job.actions), job.key or f"#{i}", limits)


def _check_job_count(count: int, limits: Limits) -> None:
    if count > limits.max_jobs_per_batch:
        raise ValidationError(
            too_big("the number of jobs", count, limits.max_jobs_per_batch)
            + " (REACTOR_MAX_JOBS_PER_BATCH): split the batch",
            field="jobs",
        )


def _check_action_count(count: int, key: str, limits: Limits) -> None:
    if count > limits.max_actions_per_job:
        raise ValidationError(
            too_big("the number of actions", count, limits.max_actions_per_job)
            + " (REACTOR_MAX_ACTIONS_PER_JOB): split the job",
            job=key,
            field="actions",
        )


def _raw_key(job: Mapping[str, Any], index: int) -> str:
    key = job.get("key")
    if isinstance(key, str) and key and text_problem(key) is None:
        return key
    return f"#{index}"


def _job_and_field(raw: Mapping[str, Any], path: str) -> tuple[str | None, str | None]:
    """`jobs[3].actions[0].input.x` -> (job 3's key, `actions[0].input.x`)."""
    found = re.match(r"jobs\[(\d+)\]\.?", path)
    jobs = raw.get("jobs")
    if found is None or not isinstance(jobs, list | tuple):
        return None, path or None
    index = int(found.group(1))
    job = jobs[index]
    key = _raw_key(job, index) if isinstance(job, Mapping) else f"#{index}"
    return key, path[found.end() :] or None


def _jsonable(value: Any) -> Any:
    """For measuring a request's size only: values orjson does not write
    natively (a model may accept them) count as their text."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return str(value)


def lookup_ids(request: BatchRequest) -> tuple[list[str], list[str]]:
    """What planning needs to know of the database: the documents the jobs
    touch or add as children (do they exist, of which type, deleted?), and
    those the batch deletes (how many children have they?). Values that
    cannot be stored are left out: planning rejects them, and a query
    carrying them would fail first."""
    ids: set[str] = set()
    parents: set[str] = set()
    for job in request.jobs:
        ids.add(job.document_id)
        if job.scope != "document":
            continue  # an action's scope differing from its job's is refused
        for spec in job.actions:
            if spec.type == "ADD_RELATIONSHIP":
                target = spec.input.get("target_id")
                if isinstance(target, str):
                    ids.add(target)
            elif spec.type == "DELETE_DOCUMENT":
                parents.add(job.document_id)
    return (
        sorted(i for i in ids if i and text_problem(i) is None),
        sorted(i for i in parents if i and text_problem(i) is None),
    )


def plan_batch(
    request: BatchRequest,
    registry: ModelRegistry,
    existing: Mapping[str, ExistingDocument],
    limits: Limits = DEFAULT_LIMITS,
) -> BatchPlan:
    """Validates `request` against the registered models, the documents that
    already exist (and, for relationships, their targets: see `lookup_ids`)
    and `limits`, and returns the plan. Raises ValidationError on the first
    problem, naming the job and field."""
    batch_id = request.batch_id or new_batch_id()
    if not BATCH_ID_RE.match(batch_id):
        raise ValidationError(
            f"invalid batch_id {batch_id!r}: use 1-128 letters, digits, '.', '_' or '-'",
            field="batch_id",
        )
    if not request.jobs:
        raise ValidationError("the batch has no jobs", field="jobs")
    check_counts(request, limits)

    index_of: dict[str, int] = {}
    for i, job in enumerate(request.jobs):
        if not job.key:
            raise ValidationError("job key must not be empty", job=f"#{i}", field="key")
        check_text(job.key, job=f"#{i}", field="key")
        if len(job.key) > MAX_NAME_LENGTH:
            raise ValidationError(
                f"job key is {len(job.key)} characters long (at most {MAX_NAME_LENGTH})",
                job=f"#{i}",
                field="key",
            )
        if job.key in index_of:
            raise ValidationError(
                f"duplicate job key (also job #{index_of[job.key]})", job=job.key, field="key"
            )
        index_of[job.key] = i

    types: dict[str, ExistingDocument] = dict(existing)
    children = {k: d.children for k, d in existing.items() if d.children}
    slugs: dict[str, str] = {}
    last_in_lane: dict[tuple[str, str], int] = {}
    planned: list[PlannedJob] = []
    input_bytes = 0
    for i, job in enumerate(request.jobs):
        key = job.key
        for name, value in (
            ("document_id", job.document_id),
            ("scope", job.scope),
            ("branch", job.branch),
        ):
            check_text(value, job=key, field=name)
        if not job.document_id:
            raise ValidationError("document_id must not be empty", job=key, field="document_id")
        if job.scope not in SCOPES:
            raise ValidationError(
                f"unknown scope {job.scope!r} (one of {', '.join(SCOPES)})", job=key, field="scope"
            )
        if not job.branch:
            raise ValidationError("branch must not be empty", job=key, field="branch")
        for name, value in (("document_id", job.document_id), ("branch", job.branch)):
            if len(value) > MAX_NAME_LENGTH:
                raise ValidationError(
                    f"{name} is {len(value)} characters long (at most {MAX_NAME_LENGTH})",
                    job=key,
                    field=name,
                )
        if not job.actions:
            raise ValidationError("the job has no actions", job=key, field="actions")
        deps: list[int] = []
        for n, dep in enumerate(job.depends_on):
            check_text(dep, job=key, field=f"depends_on[{n}]")
            if dep not in index_of:
                raise ValidationError(f"unknown dependency {dep!r}", job=key, field="depends_on")
            if dep == key:
                raise ValidationError("a job cannot depend on itself", job=key, field="depends_on")
            if index_of[dep] not in deps:
                deps.append(index_of[dep])

        actions: list[Action] = []
        # One read of the random source and one clock reading per job: its
        # actions are submitted together.
        new_ids = uuid4_texts(len(job.actions))
        submitted_at = utcnow()
        for a, spec in enumerate(job.actions):
            field = f"actions[{a}]"
            _check_spec(spec, key, field)
            if spec.scope is not None and spec.scope != job.scope:
                raise ValidationError(
                    f"scope mismatch: action scope {spec.scope!r} differs from job scope "
                    f"{job.scope!r}",
                    job=key,
                    field=f"{field}.scope",
                )
            doc = types.get(job.document_id)
            try:
                if job.scope == "document":
                    normalized = _validate_document_action(
                        spec, registry, types, children, slugs, job
                    )
                    if spec.type == "CREATE_DOCUMENT":
                        doc = ExistingDocument(str(normalized["document_type"]))
                        types[job.document_id] = doc
                    elif spec.type == "DELETE_DOCUMENT":
                        types[job.document_id] = ExistingDocument(
                            doc.document_type if doc else "", deleted=True
                        )
                else:
                    if doc is None or not doc.document_type:
                        raise ValidationError(
                            f"document {job.document_id!r} does not exist and no earlier job in "
                            "this batch creates it",
                            field="document_id",
                        )
                    if doc.deleted:
                        raise ValidationError(
                            f"document {job.document_id!r} is deleted", field="document_id"
                        )
                    model = registry.get(doc.document_type)
                    normalized = model.validate_input(job.scope, spec.type, spec.input)
            except ValidationError as exc:
                sub = exc.field or ""
                path = sub if sub == "document_id" else f"{field}.{sub}" if sub else field
                reason = exc.reason if path == "document_id" else f"{spec.type}: {exc.reason}"
                raise ValidationError(reason, job=key, field=path) from None
            input_bytes += _stored_size(normalized, key, f"{field}.input", limits)
            actions.append(
                spec.to_action(job.scope, normalized, new_id=new_ids[a], submitted_at=submitted_at)
            )
        if input_bytes > limits.max_request_bytes:
            raise ValidationError(
                too_big("the request's action inputs", input_bytes, limits.max_request_bytes)
                + " bytes (REACTOR_MAX_REQUEST_BYTES)"
            )

        doc = types.get(job.document_id)
        lane = (job.document_id, job.branch)
        planned.append(
            PlannedJob(
                index=i,
                key=key,
                document_id=job.document_id,
                document_type=doc.document_type if doc else "",
                scope=job.scope,
                branch=job.branch,
                deps=deps,
                after=last_in_lane.get(lane),
                actions=actions,
            )
        )
        last_in_lane[lane] = i

    _check_acyclic(planned)
    return BatchPlan(batch_id=batch_id, jobs=planned)


def _check_spec(spec: ActionSpec, key: str, field: str) -> None:
    """What an action carries besides its input, and a guard on the input as
    written: no model may meet a value nested too deep for its serializer
    (the input as stored is checked in full once the model normalized it)."""
    if not spec.type.isascii() or "\x00" in spec.type:
        check_text(spec.type, job=key, field=f"{field}.type")
    if spec.scope is not None:
        check_text(spec.scope, job=key, field=f"{field}.scope")
    if spec.id is not None:
        check_text(spec.id, job=key, field=f"{field}.id")
    if spec.context is not None:
        check_storable(spec.context, job=key, field=f"{field}.context")
    try:
        orjson.dumps(spec.input)
    except TypeError:
        # Too deep, or a value orjson does not write (which the model may
        # well accept, such as a Decimal): only the first is refused here.
        found = find_unstorable(spec.input)
        if found is not None:
            raise ValidationError(found[1], job=key, field=f"{field}.input{found[0]}") from None


def _stored_size(normalized: dict[str, Any], key: str, field: str, limits: Limits) -> int:
    """The input as stored (a model may turn "NaN" into a float, or a long
    numeric string into an integer): storable, within the input limit, and
    its size in bytes."""
    size = len(check_storable(normalized, job=key, field=field))
    if size > limits.max_input_bytes:
        raise ValidationError(
            too_big("the input", size, limits.max_input_bytes, " bytes")
            + " (REACTOR_MAX_INPUT_BYTES)",
            job=key,
            field=field,
        )
    return size


def _validate_document_action(
    spec: ActionSpec,
    registry: ModelRegistry,
    types: Mapping[str, ExistingDocument],
    children: dict[str, int],
    slugs: dict[str, str],
    job: JobRequest,
) -> dict[str, object]:
    schema = DOCUMENT_ACTIONS.get(spec.type)
    if schema is None:
        raise ValidationError(
            f"unknown document-scope action type {spec.type!r} "
            f"(known: {', '.join(sorted(DOCUMENT_ACTIONS))})",
            field="type",
        )
    normalized = validate_with(schema, spec.input)
    doc = types.get(job.document_id)
    if spec.type == "CREATE_DOCUMENT":
        if doc is not None and doc.document_type:
            raise ValidationError(
                f"document {job.document_id!r} already exists", field="document_id"
            )
        try:
            model = registry.get(str(normalized["document_type"]))
        except ValidationError as exc:
            raise ValidationError(exc.reason, field="input.document_type") from None
        # A document starts at its type's latest model version, recorded in
        # the operation so replay needs no registry to know it.
        latest = latest_version(model.upgrades)
        given = normalized.pop("model_version", None)
        if given is not None and given != latest:
            raise ValidationError(
                f"CREATE_DOCUMENT creates at the latest version {latest}, not {given}",
                field="input.model_version",
            )
        if model.upgrades is not None:
            normalized["model_version"] = latest
        slug = normalized.get("slug")
        if isinstance(slug, str):
            if slug in slugs and slugs[slug] != job.document_id:
                raise ValidationError(
                    f"slug {slug!r} is also used by document {slugs[slug]!r} in this batch",
                    field="input.slug",
                )
            slugs[slug] = job.document_id
        return normalized
    if doc is None or not doc.document_type:
        raise ValidationError(
            f"document {job.document_id!r} does not exist and no earlier job in this batch "
            "creates it",
            field="document_id",
        )
    if doc.deleted:
        raise ValidationError(f"document {job.document_id!r} is deleted", field="document_id")
    if spec.type == "ADD_RELATIONSHIP":
        target = str(normalized["target_id"])
        _check_child(target, job.document_id, types)
        children[job.document_id] = children.get(job.document_id, 0) + 1
    elif spec.type == "REMOVE_RELATIONSHIP":
        # Removing an edge to a document that is gone must stay possible.
        children[job.document_id] = max(0, children.get(job.document_id, 0) - 1)
    elif spec.type == "DELETE_DOCUMENT":
        count = children.get(job.document_id, 0)
        if count:
            raise ValidationError(
                f"document {job.document_id!r} has {count} "
                f"child{'ren' if count != 1 else ''}: remove them first "
                "(REMOVE_RELATIONSHIP, or the model's own actions for the children its "
                "state holds); a parent is never deleted under its children"
            )
    return normalized


def _check_child(target: str, parent: str, types: Mapping[str, ExistingDocument]) -> None:
    if target == parent:
        raise ValidationError("a document cannot be its own child", field="input.target_id")
    child = types.get(target)
    if child is None or not child.document_type:
        raise ValidationError(
            f"document {target!r} does not exist and no earlier job in this batch creates it",
            field="input.target_id",
        )
    if child.deleted:
        raise ValidationError(f"document {target!r} is deleted", field="input.target_id")


def _check_acyclic(jobs: list[PlannedJob]) -> None:
    """Rejects cycles in depends_on, including ones closed by lane order
    (a job depending on a later job of its own document)."""
    try:
        JobGraph.of(jobs)
    except CycleError as exc:
        raise ValidationError(exc.reason, job=exc.job, field="depends_on") from None


__all__ = [
    "BatchPlan",
    "check_arrival",
    "check_counts",
    "lookup_ids",
    "BatchRequest",
    "ExistingDocument",
    "JobRequest",
    "PlanEntry",
    "PlannedJob",
    "ReducerError",
    "plan_batch",
]
