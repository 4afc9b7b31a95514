"""The JSON shapes a batch's jobs and a batch listing take for readers: the
CLI's `--json` prints them and the HTTP API answers with them, from these
models, so the two cannot drift apart."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel

from reactor.domain.jobs import ConsistencyToken, JobError, JobInfo, JobStatus


class JobSummary(BaseModel):
    id: str
    status: JobStatus
    error: JobError | None = None
    consistency_token: ConsistencyToken | None = None


class BatchJobs(BaseModel):
    """A batch's jobs by key (`reactor submit --json`, `POST /v1/batches`)."""

    batch_id: str
    jobs: dict[str, JobSummary]

    @classmethod
    def of(cls, batch_id: str, jobs: Iterable[JobInfo]) -> BatchJobs:
        return cls(
            batch_id=batch_id,
            jobs={
                j.key: JobSummary(
                    id=j.id,
                    status=j.status,
                    error=j.error,
                    consistency_token=j.consistency_token,
                )
                for j in jobs
            },
        )


class BatchRow(BaseModel):
    """One batch in Temporal's visibility listing (`reactor batches --json`,
    `GET /v1/batches`), as reactor.observability.batch_listing builds it."""

    batch_id: str
    workflow_id: str
    run_id: str | None = None
    status: str
    jobs: int | None = None
    failed: int | None = None
    document_ids: list[str]
    document_types: list[str]
    task_queue: str | None = None
    start_time: str | None = None
    close_time: str | None = None
