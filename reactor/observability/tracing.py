"""OpenTelemetry tracing: one trace per submitted batch.

The client span around `Reactor.execute_batch` is the root; temporalio's
TracingInterceptor (wired in `reactor.runtime.temporal.connect`, so every
client and every worker built from one carries it) propagates it through
StartWorkflow -> RunWorkflow -> StartActivity -> RunActivity; inside the
apply activity each job gets a `reactor.apply_job` span, and every SQL
statement a span of its own (opentelemetry-instrumentation-asyncpg).

Nothing is exported unless `configure_tracing` installs a provider: the
console exporter for `reactor dev --trace`, OTLP over HTTP/protobuf when
OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set.
The global tracer provider can be set once per process; later calls add
their exporters to the provider already installed.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)
from opentelemetry.trace import Span, Tracer

from reactor.domain.jobs import operation_indices

if TYPE_CHECKING:
    from reactor.domain.batch import BatchPlan, PlannedJob
    from reactor.domain.jobs import JobOutcome

TRACER_NAME = "reactor"
SERVICE_NAME = "temporal-reactor"
MAX_LISTED = 100  # list-valued span attributes hold at most this many values

P = ParamSpec("P")
R = TypeVar("R")


def tracer() -> Tracer:
    """The reactor's tracer (from the global provider, resolved lazily)."""
    return trace.get_tracer(TRACER_NAME)


def otlp_endpoint() -> str | None:
    return os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )


def configure_tracing(console: bool) -> TracerProvider | None:
    """Installs the global tracer provider with an OTLP exporter when
    OTEL_EXPORTER_OTLP_ENDPOINT is set and a console exporter (one line per
    span, on stderr) when `console`; instruments asyncpg. Returns None (and
    changes nothing) when neither applies."""
    processors: list[SpanProcessor] = []
    if otlp_endpoint():
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processors.append(BatchSpanProcessor(OTLPSpanExporter()))
    if console:
        processors.append(
            SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stderr, formatter=format_span))
        )
    if not processors:
        return None
    return install(processors)


def install(processors: Sequence[SpanProcessor] = ()) -> TracerProvider:
    """Makes an SDK tracer provider global (or reuses the one already global),
    adds `processors` to it and instruments asyncpg. Idempotent."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        provider = current
    else:
        attrs: dict[str, str] = {}
        if not os.environ.get("OTEL_SERVICE_NAME"):
            attrs["service.name"] = SERVICE_NAME
        provider = TracerProvider(resource=Resource.create(attrs))
        trace.set_tracer_provider(provider)
    for p in processors:
        provider.add_span_processor(p)
    instrument_sql()
    return provider


def instrument_sql() -> None:
    """A span per SQL statement, from the global tracer provider."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    instrumentor = AsyncPGInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()


def uninstrument_sql() -> None:
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    instrumentor = AsyncPGInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


def format_span(span: ReadableSpan) -> str:
    """One line per span: trace, span <- parent, duration, name, attributes."""
    ctx = span.context
    assert ctx is not None
    parent = f"{span.parent.span_id:016x}" if span.parent else "root".ljust(16)
    dur = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
    attrs = " ".join(
        f"{k}={_short(v)}" for k, v in (span.attributes or {}).items() if not k.startswith("net.")
    )
    return (
        f"trace {ctx.trace_id:032x}  {ctx.span_id:016x} <- {parent} "
        f"{dur:8.2f} ms  {span.name}  {attrs}\n"
    )


def _short(value: Any) -> str:
    text = ",".join(map(str, value)) if isinstance(value, tuple | list) else str(value)
    text = " ".join(text.split())
    return text if len(text) <= 80 else text[:77] + "..."


# -- spans of our own -----------------------------------------------------------


def traced_batch(
    fn: Callable[P, Awaitable[R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Decorates `Reactor.execute_batch`: the root span of a batch's trace
    (attributes are added by `annotate_batch` once the plan is known)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with tracer().start_as_current_span("reactor.execute_batch", kind=trace.SpanKind.CLIENT):
            return await fn(*args, **kwargs)

    return wrapper


def annotate_batch(plan: BatchPlan) -> None:
    """Batch attributes on the current span (the execute_batch span)."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    span.set_attributes(
        {
            "reactor.batch_id": plan.batch_id,
            "reactor.job_count": len(plan.jobs),
            "reactor.document_ids": _listed(j.document_id for j in plan.jobs),
            "reactor.document_types": _listed(
                j.document_type for j in plan.jobs if j.document_type
            ),
        }
    )


def job_span_attributes(batch_id: str, job: PlannedJob) -> dict[str, Any]:
    return {
        "reactor.batch_id": batch_id,
        "reactor.job_index": job.index,
        "reactor.job_key": job.key,
        "reactor.document_id": job.document_id,
        "reactor.document_type": job.document_type,
        "reactor.scope": job.scope,
        "reactor.branch": job.branch,
        "reactor.action_types": [a.type for a in job.actions[:MAX_LISTED]],
        "reactor.action_count": len(job.actions),
    }


def annotate_outcome(span: Span, outcome: JobOutcome) -> None:
    if not span.is_recording():
        return
    span.set_attribute("reactor.job_ok", outcome.ok)
    if outcome.coordinates:
        span.set_attribute(
            "reactor.operation_indices",
            list(islice(operation_indices(outcome.coordinates), MAX_LISTED)),
        )
    if outcome.error is not None:
        span.set_attribute("reactor.error_type", outcome.error.type)
        span.set_status(trace.Status(trace.StatusCode.ERROR, outcome.error.message[:200]))


def _listed(values: Any) -> list[str]:
    out: dict[str, None] = {}
    for v in values:
        out.setdefault(v)
        if len(out) >= MAX_LISTED:
            break
    return list(out)
