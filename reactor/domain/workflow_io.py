"""Inputs and outputs of the workflows: imported by workflows through
`imports_passed_through`, so the sandbox does not rebuild these pydantic
classes for every workflow instance."""

from __future__ import annotations

from pydantic import BaseModel, Field, TypeAdapter

from reactor.domain.batch import PlanEntry, PlannedJob
from reactor.domain.jobs import JobError, JobStatus, OperationSpan

PLAN_PAGE = 2000

# Python errors that repeat on every attempt (a bug in model or project
# code, a payload that does not validate): non-retryable for the reaction
# workflow's activities and for loading a batch's plan. The apply activity
# is not given this list: it bounds such errors itself, job by job, so that
# a chunk with some jobs written never fails as a whole. Everything else (a
# lost connection, a restarting server, a timeout) is infrastructure and
# retries with backoff, without limit.
DETERMINISTIC_ERRORS = [
    "ValidationError",
    "TypeError",
    "ValueError",
    "KeyError",
    "IndexError",
    "AttributeError",
    "AssertionError",
    "NotImplementedError",
    "RecursionError",
    "UnicodeError",
    "UnicodeEncodeError",
    "UnicodeDecodeError",
]


class BatchConfig(BaseModel):
    chunk_size: int = 500
    max_parallel_chunks: int = 4
    activity_timeout_s: float = 600.0
    heartbeat_timeout_s: float = 10.0
    # Chunks this small run as local activities: no extra server round trip.
    # A crashed worker's local activity is re-run with the workflow task.
    local_activity_max_jobs: int = 100
    # ... and only with this many actions at most: a local activity has a
    # 60 s timeout and no heartbeat, which a job of thousands of actions on a
    # large document can exceed; a full chunk of 10-action jobs stays local.
    local_activity_max_actions: int = 2_000


class BatchInput(BaseModel):
    batch_id: str
    job_count: int
    plan: list[PlanEntry] | None = None  # inline for small batches, else loaded by pages
    # Small batches carry their jobs (actions included) inline and are not
    # stored in PostgreSQL first: one transaction less on the submit path.
    jobs: list[PlannedJob] | None = None
    config: BatchConfig = Field(default_factory=BatchConfig)


class JobView(BaseModel):
    index: int
    key: str
    document_id: str
    status: JobStatus
    error: JobError | None = None
    coordinates: list[OperationSpan] = Field(default_factory=list)


class BatchSummary(BaseModel):
    batch_id: str
    total: int
    counts: dict[str, int]
    failed: int
    finished: bool
    # In the result of batches up to RESULT_JOBS_LIMIT jobs, so that waiting
    # for a batch needs no query afterwards.
    jobs: list[JobView] | None = None


RESULT_JOBS_LIMIT = 1000
# ... and only while their views' JSON stays this small: past it (long keys,
# long error messages) waiters page through the `jobs` query instead.
RESULT_VIEWS_BYTES = 512 * 1024

_VIEWS = TypeAdapter(list[JobView])


def views_json_size(views: list[JobView]) -> int:
    """The size of the views as the data converter writes them (pydantic's
    JSON, UTF-8): well under a millisecond for a thousand views."""
    return len(_VIEWS.dump_json(views))


class ReactionInput(BaseModel):
    name: str
    poll_interval_s: float = 1.0  # database poll while waiting (the safety net)
    idle_s: float = 3.0  # how long one drain waits for work before checkpointing
    fanout: int = 2
    drain_budget_s: float = 5.0
    max_iterations: int = 500


class ReactionStatus(BaseModel):
    name: str
    iterations: int
    wakes: int  # wake signals (from routers that found no drain waiting)
    handled: int
    blocked: list[str]
    woken: int = 0  # drains woken by a notification or a local commit, not the poll
