"""A planned batch reduced to what its submission still needs: the workflow's
start input, the rows to store, the job keys and the workflow's labels.

Why not keep the plan: a plan of 100 jobs of 10 actions is ~10,000 Python
objects (action models, their inputs), and a submission awaits PostgreSQL
and Temporal after planning. Objects alive across those awaits survive the
garbage collector's young collections and are promoted to the oldest
generation; enough of them trigger a full collection, which walks the whole
heap of the submitting process (~85 ms in the throughput benchmark's client,
every few batches). Built while the collector is paused, a Submission lets
the plan go before the first await, so the collector never sees it.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.common import TypedSearchAttributes

from reactor.domain.batch import BatchPlan
from reactor.domain.hashing import canonical_bytes
from reactor.domain.workflow_io import BatchConfig, BatchInput
from reactor.observability.search_attributes import batch_start_attributes
from reactor.storage.job_ledger import BatchRows

INLINE_PLAN_LIMIT = 1000
INLINE_JOBS_LIMIT = 20  # jobs (larger inline batches cost the worker more in payload
# (de)serialization than the one query that loads them by reference), and
INLINE_BYTES_LIMIT = 128 * 1024  # serialized actions: well below the 2 MB payload limit


@dataclass(frozen=True)
class Submission:
    batch_id: str
    digest: str  # `BatchPlan.request_hash()`
    start: BatchInput
    rows: BatchRows | None  # None: the jobs travel inline, in `start`
    jobs: list[tuple[str, str]]  # (key, document_id), in job index order
    summary: str
    details: str
    attributes: TypedSearchAttributes | None

    @classmethod
    def of(cls, plan: BatchPlan, config: BatchConfig) -> Submission:
        digest = plan.request_hash()
        inline = is_inline(plan)
        entries = None if inline or len(plan.jobs) > INLINE_PLAN_LIMIT else plan.entries()
        doc_types = sorted({j.document_type for j in plan.jobs if j.document_type})
        docs = sorted({j.document_id for j in plan.jobs})
        n = len(plan.jobs)
        return cls(
            batch_id=plan.batch_id,
            digest=digest,
            start=BatchInput(
                batch_id=plan.batch_id,
                job_count=n,
                plan=entries,
                jobs=plan.jobs if inline else None,
                config=config,
            ),
            rows=None if inline else BatchRows.of(plan, digest),
            jobs=[(j.key, j.document_id) for j in plan.jobs],
            summary=(
                f"{n} job{'s' if n != 1 else ''} on "
                f"{len(docs)} document{'s' if len(docs) != 1 else ''}"
                + (f" ({', '.join(doc_types)})" if doc_types else "")
            ),
            details=f"documents: {', '.join(docs[:20])}" + (" …" if len(docs) > 20 else ""),
            attributes=batch_start_attributes(
                plan.batch_id,
                (j.document_id for j in plan.jobs),  # capped: the first 100, in submission order
                (j.document_type for j in plan.jobs if j.document_type),
                n,
            ),
        )


def is_inline(plan: BatchPlan) -> bool:
    """Small batches travel inside the workflow input; the rest by reference."""
    if len(plan.jobs) > INLINE_JOBS_LIMIT:
        return False
    size = sum(len(canonical_bytes(a.input)) + 200 for j in plan.jobs for a in j.actions)
    return size <= INLINE_BYTES_LIMIT
