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

from pydantic import BaseModel, ConfigDict, Field

from reactor.domain.actions import SCOPES, Action, ActionSpec, utcnow
from reactor.domain.document_scope import DOCUMENT_ACTIONS
from reactor.domain.errors import ReducerError, ValidationError
from reactor.domain.hashing import canonical_json
from reactor.domain.ids import uuid4_texts
from reactor.domain.model import ModelRegistry, validate_with

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


def plan_batch(
    request: BatchRequest,
    registry: ModelRegistry,
    existing: Mapping[str, ExistingDocument],
) -> BatchPlan:
    """Validates `request` against the registered models and the documents that
    already exist, and returns the plan. Raises ValidationError on the first
    problem, naming the job and field."""
    batch_id = request.batch_id or new_batch_id()
    if not BATCH_ID_RE.match(batch_id):
        raise ValidationError(
            f"invalid batch_id {batch_id!r}: use 1-128 letters, digits, '.', '_' or '-'",
            field="batch_id",
        )
    if not request.jobs:
        raise ValidationError("the batch has no jobs", field="jobs")

    index_of: dict[str, int] = {}
    for i, job in enumerate(request.jobs):
        if not job.key:
            raise ValidationError("job key must not be empty", job=f"#{i}", field="key")
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
    slugs: dict[str, str] = {}
    last_in_lane: dict[tuple[str, str], int] = {}
    planned: list[PlannedJob] = []
    for i, job in enumerate(request.jobs):
        key = job.key
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
        for dep in job.depends_on:
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
                    normalized = _validate_document_action(spec, registry, doc, slugs, job)
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
            actions.append(
                spec.to_action(job.scope, normalized, new_id=new_ids[a], submitted_at=submitted_at)
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


def _validate_document_action(
    spec: ActionSpec,
    registry: ModelRegistry,
    doc: ExistingDocument | None,
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
    if spec.type == "CREATE_DOCUMENT":
        if doc is not None and doc.document_type:
            raise ValidationError(
                f"document {job.document_id!r} already exists", field="document_id"
            )
        try:
            registry.get(str(normalized["document_type"]))
        except ValidationError as exc:
            raise ValidationError(exc.reason, field="input.document_type") from None
        slug = normalized.get("slug")
        if isinstance(slug, str):
            if slug in slugs and slugs[slug] != job.document_id:
                raise ValidationError(
                    f"slug {slug!r} is also used by document {slugs[slug]!r} in this batch",
                    field="input.slug",
                )
            slugs[slug] = job.document_id
    elif doc is None or not doc.document_type:
        raise ValidationError(
            f"document {job.document_id!r} does not exist and no earlier job in this batch "
            "creates it",
            field="document_id",
        )
    elif doc.deleted:
        raise ValidationError(f"document {job.document_id!r} is deleted", field="document_id")
    return normalized


def _check_acyclic(jobs: list[PlannedJob]) -> None:
    """Rejects cycles in depends_on, including ones closed by lane order
    (a job depending on a later job of its own document)."""
    succ: list[list[int]] = [[] for _ in jobs]
    for j in jobs:
        for d in j.deps:
            succ[d].append(j.index)
        if j.after is not None:
            succ[j.after].append(j.index)
    color = [0] * len(jobs)  # 0 new, 1 on stack, 2 done
    for start in range(len(jobs)):
        if color[start]:
            continue
        stack: list[tuple[int, int]] = [(start, 0)]
        path: list[int] = [start]
        color[start] = 1
        while stack:
            node, pos = stack[-1]
            if pos < len(succ[node]):
                stack[-1] = (node, pos + 1)
                nxt = succ[node][pos]
                if color[nxt] == 1:
                    cycle = path[path.index(nxt) :] + [nxt]
                    names = " -> ".join(repr(jobs[c].key) for c in reversed(cycle))
                    raise ValidationError(
                        f"dependency cycle: {names} (jobs on the same document also run in "
                        "submission order)",
                        job=jobs[nxt].key,
                        field="depends_on",
                    )
                if color[nxt] == 0:
                    color[nxt] = 1
                    stack.append((nxt, 0))
                    path.append(nxt)
            else:
                color[node] = 2
                stack.pop()
                path.pop()


__all__ = [
    "BatchPlan",
    "BatchRequest",
    "ExistingDocument",
    "JobRequest",
    "PlanEntry",
    "PlannedJob",
    "ReducerError",
    "plan_batch",
]
