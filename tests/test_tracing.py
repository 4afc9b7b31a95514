"""One trace per batch: client span -> StartWorkflow -> (RunWorkflow,
StartActivity -> RunActivity -> reactor.apply_job -> SQL), with the reactor's
attributes on the way.

The global tracer provider can be set once per process: the module fixture
installs it (or reuses one already installed) with an in-memory exporter, and
shuts that exporter down afterwards so later tests record nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from reactor.api.reactor import Reactor
from reactor.observability import tracing
from tests.conftest import ROOT

# From a SQL statement up to the root. temporalio's TracingInterceptor makes
# workflow spans zero-duration "completed" spans in the context the client
# propagated: RunWorkflow and StartActivity are both children of
# StartWorkflow (siblings), not RunWorkflow -> StartActivity.
CHAIN = [
    "reactor.apply_job",
    "RunActivity:apply_jobs",
    "StartActivity:apply_jobs",
    "StartWorkflow:BatchWorkflow",
    "reactor.execute_batch",
]


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.install([SimpleSpanProcessor(exporter)])
    yield exporter
    exporter.shutdown()  # the provider stays global; this exporter stops storing
    exporter.clear()
    tracing.uninstrument_sql()


def trace_of(exporter: InMemorySpanExporter, batch_id: str) -> list[ReadableSpan]:
    finished = exporter.get_finished_spans()
    roots = [
        s
        for s in finished
        if s.name == "reactor.execute_batch"
        and (s.attributes or {}).get("reactor.batch_id") == batch_id
    ]
    assert len(roots) == 1, [s.name for s in finished]
    root = roots[0]
    assert root.parent is None
    assert root.context is not None
    return [
        s for s in finished if s.context is not None and s.context.trace_id == root.context.trace_id
    ]


def assert_attributes(span: ReadableSpan, expected: dict[str, object]) -> None:
    attrs = dict(span.attributes or {})
    assert {k: attrs.get(k) for k in expected} == expected


def ancestry(span: ReadableSpan, spans: list[ReadableSpan]) -> list[str]:
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    names = []
    while span.parent is not None:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


async def test_a_batch_is_one_trace_from_the_client_call_to_each_sql_statement(
    spans: InMemorySpanExporter, reactor: Reactor, worker: None
) -> None:
    result = await reactor.execute_batch(
        {
            "jobs": [
                {
                    "key": "create",
                    "document_id": "traced-list",
                    "scope": "document",
                    "actions": [
                        {
                            "type": "CREATE_DOCUMENT",
                            "input": {"document_type": "powerhouse/todo-list"},
                        }
                    ],
                },
                {
                    "key": "items",
                    "document_id": "traced-list",
                    "depends_on": ["create"],
                    "actions": [
                        {"type": "ADD_TODO_ITEM", "input": {"id": "1", "text": "milk"}},
                        {"type": "ADD_TODO_ITEM", "input": {"id": "2", "text": "eggs"}},
                    ],
                },
            ]
        }
    )
    await reactor.wait_for_batch(result.batch_id)
    in_trace = trace_of(spans, result.batch_id)

    root = next(s for s in in_trace if s.name == "reactor.execute_batch")
    assert_attributes(
        root,
        {
            "reactor.batch_id": result.batch_id,
            "reactor.job_count": 2,
            "reactor.document_ids": ("traced-list",),
            "reactor.document_types": ("powerhouse/todo-list",),
        },
    )

    applies = {
        (s.attributes or {})["reactor.job_key"]: s
        for s in in_trace
        if s.name == "reactor.apply_job"
    }
    assert set(applies) == {"create", "items"}
    items = applies["items"]
    assert_attributes(
        items,
        {
            "reactor.batch_id": result.batch_id,
            "reactor.job_key": "items",
            "reactor.document_id": "traced-list",
            "reactor.document_type": "powerhouse/todo-list",
            "reactor.action_types": ("ADD_TODO_ITEM", "ADD_TODO_ITEM"),
            "reactor.operation_indices": (0, 1),
            "reactor.job_ok": True,
        },
    )
    assert (applies["create"].attributes or {})["reactor.action_types"] == ("CREATE_DOCUMENT",)
    assert ancestry(items, in_trace) == CHAIN[1:]

    run_workflow = next(s for s in in_trace if s.name == "RunWorkflow:BatchWorkflow")
    assert ancestry(run_workflow, in_trace) == CHAIN[-2:]
    assert {s.name for s in in_trace} >= {"CompleteWorkflow:BatchWorkflow"}

    run_activity = next(s for s in in_trace if s.name == "RunActivity:apply_jobs")
    assert (run_activity.attributes or {})["reactor.batch_id"] == result.batch_id

    # Every SQL statement of the job is a child of its apply span, e.g. the
    # insert of its operations.
    assert items.context is not None
    sql = [
        s for s in in_trace if s.parent is not None and s.parent.span_id == items.context.span_id
    ]
    statements = [str((s.attributes or {}).get("db.statement", "")) for s in sql]
    # (the operations are inserted by the job's single write statement, a CTE)
    assert any("INSERT INTO reactor_operations" in st for st in statements), statements
    insert = next(
        s
        for s in sql
        if "INSERT INTO reactor_operations" in str((s.attributes or {}).get("db.statement", ""))
    )
    assert (insert.attributes or {}).get("db.system") == "postgresql"
    assert ancestry(insert, in_trace) == CHAIN


async def test_a_failed_job_marks_its_apply_span_as_an_error(
    spans: InMemorySpanExporter, reactor: Reactor, worker: None
) -> None:
    result = await reactor.execute_batch(
        {
            "jobs": [
                {
                    "key": "create",
                    "document_id": "traced-failure",
                    "scope": "document",
                    "actions": [
                        {
                            "type": "CREATE_DOCUMENT",
                            "input": {"document_type": "powerhouse/todo-list"},
                        }
                    ],
                },
                {
                    "key": "bad",
                    "document_id": "traced-failure",
                    "depends_on": ["create"],
                    "actions": [{"type": "DELETE_TODO_ITEM", "input": {"id": "nope"}}],
                },
            ]
        }
    )
    jobs = await reactor.wait_for_batch(result.batch_id)
    assert [j.status.value for j in jobs] == ["READ_READY", "FAILED"]
    bad = next(
        s
        for s in trace_of(spans, result.batch_id)
        if s.name == "reactor.apply_job" and (s.attributes or {})["reactor.job_key"] == "bad"
    )
    assert bad.status.status_code is StatusCode.ERROR
    assert (bad.attributes or {})["reactor.job_ok"] is False
    assert "reactor.operation_indices" not in (bad.attributes or {})


def test_exporters_follow_the_environment_and_the_console_flag() -> None:
    """In a subprocess: the global provider is once per process."""
    code = """
import json
from reactor.observability.tracing import configure_tracing
assert configure_tracing(console=False) is None
import os
os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:4318"
provider = configure_tracing(console=True)
procs = provider._active_span_processor._span_processors
print(json.dumps([type(getattr(p, "span_exporter", None) or p._batch_processor._exporter).__name__ for p in procs]))
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
print(AsyncPGInstrumentor().is_instrumented_by_opentelemetry)
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert json.loads(lines[0]) == ["OTLPSpanExporter", "ConsoleSpanExporter"]
    assert lines[1] == "True"
