"""Worker-side spans, added without touching the activities: a JobApplier
that wraps each job in a `reactor.apply_job` span (parent of the job's SQL
spans), and an activity interceptor that puts the batch id and job indices
on temporalio's RunActivity span."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from reactor.application.apply import Committed, JobApplier
from reactor.domain.batch import PlannedJob
from reactor.observability.tracing import (
    MAX_LISTED,
    annotate_outcome,
    job_span_attributes,
    tracer,
)


def tracing_enabled() -> bool:
    return isinstance(trace.get_tracer_provider(), TracerProvider)


class TracedJobApplier(JobApplier):
    """A JobApplier whose every job is a span (a plain call when no tracer
    provider is installed)."""

    async def commit(self, batch_id: str, job: PlannedJob) -> Committed:
        if not tracing_enabled():
            return await super().commit(batch_id, job)
        with tracer().start_as_current_span(
            "reactor.apply_job", attributes=job_span_attributes(batch_id, job)
        ) as span:
            committed = await super().commit(batch_id, job)
            annotate_outcome(span, committed.outcome)
            return committed


class ActivityAttributesInterceptor(Interceptor):
    """Batch id and job indices on the RunActivity span of our activities."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityAttributes(next)


class _ActivityAttributes(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        span = trace.get_current_span()
        if span.is_recording() and input.args:
            arg = input.args[0]
            batch_id = getattr(arg, "batch_id", None)
            if isinstance(batch_id, str):
                span.set_attribute("reactor.batch_id", batch_id)
            indices = getattr(arg, "indices", None)
            if isinstance(indices, list):
                span.set_attribute("reactor.job_count", len(indices))
                span.set_attribute("reactor.job_indices", [int(i) for i in indices[:MAX_LISTED]])
        return await self.next.execute_activity(input)
