"""Jobs, their statuses and the consistency tokens writes hand back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, field_validator

from reactor.domain.errors import ValidationError


class JobStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    WRITE_READY = "WRITE_READY"
    READ_READY = "READ_READY"
    FAILED = "FAILED"

    @property
    def done(self) -> bool:
        return self in (JobStatus.READ_READY, JobStatus.FAILED)


class Coordinate(BaseModel):
    document_id: str
    scope: str
    branch: str
    operation_index: int


class OperationSpan(BaseModel):
    """`count` operations with contiguous indices from `operation_index` on one
    lane: how a job's coordinates travel through Temporal and sit in the job
    ledger. A job writes contiguous indices on one lane, so its outcome is one
    span whatever its size, and a batch's history stays small (a Temporal
    payload may not exceed 2 MB; 300 jobs of 100 actions as single
    coordinates already did)."""

    document_id: str
    scope: str
    branch: str
    operation_index: int
    count: int = Field(default=1, ge=1)

    @property
    def last_index(self) -> int:
        return self.operation_index + self.count - 1

    def coordinates(self) -> list[Coordinate]:
        return [
            Coordinate(
                document_id=self.document_id,
                scope=self.scope,
                branch=self.branch,
                operation_index=i,
            )
            for i in range(self.operation_index, self.last_index + 1)
        ]


def recorded_spans(recorded: list[dict[str, Any]]) -> list[OperationSpan]:
    """A job ledger row's `coordinates` (JSON): the job's spans."""
    return [OperationSpan.model_validate(c) for c in recorded]


def expand_spans(spans: list[OperationSpan]) -> list[Coordinate]:
    return [c for span in spans for c in span.coordinates()]


def operation_indices(spans: list[OperationSpan]) -> Iterator[int]:
    """The spans' indices, lazily (a span may cover thousands)."""
    for span in spans:
        yield from range(span.operation_index, span.last_index + 1)


class ConsistencyToken(BaseModel):
    version: int = 1
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    coordinates: list[Coordinate] = Field(default_factory=list)


MAX_ERROR_MESSAGE = 1000


class JobError(BaseModel):
    """Why a job failed. Messages longer than MAX_ERROR_MESSAGE characters (a
    reducer that puts a whole state in its exception) are cut: they travel in
    activity results and batch results, whose payloads Temporal caps at 2 MB."""

    type: str
    message: str
    dependency: str | None = None  # key of the failed dependency, for dependents

    @field_validator("message")
    @classmethod
    def _bounded(cls, message: str) -> str:
        if len(message) <= MAX_ERROR_MESSAGE:
            return message
        cut = MAX_ERROR_MESSAGE - 40
        return f"{message[:cut]}… ({len(message) - cut} more characters)"


class JobInfo(BaseModel):
    id: str
    key: str
    batch_id: str
    document_id: str
    status: JobStatus = JobStatus.PENDING
    error: JobError | None = None
    consistency_token: ConsistencyToken | None = None


def job_id_for(batch_id: str, index: int) -> str:
    """A job id names its batch (hence its workflow) so any process can find it."""
    return f"{batch_id}:{index}"


class MalformedJobIdError(ValidationError, ValueError):
    """A job id that names no job. Also a ValueError: code that reads ids
    from untrusted payloads treats it as any other malformed value."""


# A job's index is its position in a batch, far below this; the bound keeps
# it in PostgreSQL's bigint and below Python's int() digit limit (4300), past
# which the conversion raises ValueError instead of answering.
MAX_JOB_INDEX_DIGITS = 18


def parse_job_id(job_id: str) -> tuple[str, int]:
    batch_id, sep, index = job_id.rpartition(":")
    if not sep or not batch_id or not (index.isascii() and index.isdigit()):
        raise MalformedJobIdError(
            f"malformed job id {job_id!r} (expected '<batch_id>:<index>', as submit prints)",
            field="job_id",
        )
    if len(index) > MAX_JOB_INDEX_DIGITS:
        raise MalformedJobIdError(
            f"malformed job id: its index has {len(index)} digits, over the limit of "
            f"{MAX_JOB_INDEX_DIGITS} (expected '<batch_id>:<index>', as submit prints)",
            field="job_id",
        )
    return batch_id, int(index)


def workflow_id_for(batch_id: str) -> str:
    return f"batch-{batch_id}"


class JobOutcome(BaseModel):
    """What applying one job decided; returned by the apply activity."""

    index: int
    ok: bool
    error: JobError | None = None
    coordinates: list[OperationSpan] = Field(default_factory=list)
    # (tx_id, ordinal) of the job's last operation: read models must reach it
    # before the job is READ_READY.
    last_position: tuple[int, int] | None = None
    # A written job a blocked read model has not indexed: it ends WRITE_READY
    # with this notice (type "ReadModelBlocked") instead of READ_READY.
    held: JobError | None = None
