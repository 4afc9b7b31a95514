"""Encrypted payloads end to end: with REACTOR_PAYLOAD_KEY, what the reactor
puts into Temporal (workflow and activity inputs and results, query results,
the memo, failures' messages and stack traces) is AES-GCM ciphertext. Read
without the key, the history holds no action input, nor an error quoting one;
with it, everything works as before."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message
from temporalio import activity
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import Failure
from temporalio.client import Client, WorkflowHistory
from temporalio.exceptions import ApplicationError

from activities.batch import ApplyJobsInput
from reactor.api.builder import ReactorBuilder
from reactor.api.module import ReactorModule
from reactor.domain.jobs import JobOutcome, JobStatus, workflow_id_for
from reactor.runtime.codec import ENCODING, EncryptedPayloadError
from reactor.runtime.connection import TemporalConnection
from reactor.runtime.temporal import connect
from tests.conftest import Stack, wait_until, worker_env
from tests.support.batches import create_list, stored
from tests.support.stub_worker import apply_jobs_worker
from tests.support.workers import worker_module
from workflows.batch import BatchWorkflow

KEY = "test-2026:" + base64.b64encode(os.urandom(32)).decode()
Factory = Callable[..., Awaitable[ReactorModule]]


def batch(marker: str) -> dict[str, Any]:
    doc = "enc-" + uuid.uuid4().hex[:8]
    return {
        "jobs": [
            {
                "key": "create",
                "document_id": doc,
                "scope": "document",
                "actions": [
                    {"type": "CREATE_DOCUMENT", "input": {"document_type": "powerhouse/todo-list"}}
                ],
            },
            {
                "key": "add",
                "document_id": doc,
                "depends_on": ["create"],
                "actions": [{"type": "ADD_TODO_ITEM", "input": {"id": "1", "text": marker}}],
            },
        ]
    }


def history_bytes(history: WorkflowHistory) -> bytes:
    """The events as stored (protobuf): payload data appears verbatim."""
    return b"".join(event.SerializeToString() for event in history.events)


def payloads_in(history: WorkflowHistory) -> Iterator[tuple[str, Payload]]:
    """Every Payload in the history, with the field path that holds it."""

    def walk(message: Message, path: str) -> Iterator[tuple[str, Payload]]:
        if isinstance(message, Payload):
            yield path, message
            return
        for field, value in message.ListFields():
            if field.type != field.TYPE_MESSAGE:
                continue
            here = f"{path}.{field.name}" if path else field.name
            if field.message_type.GetOptions().map_entry:
                for key, item in value.items():
                    if isinstance(item, Message):
                        yield from walk(item, f"{here}[{key}]")
            elif field.is_repeated:
                for item in value:
                    yield from walk(item, here)
            else:
                yield from walk(value, here)

    for event in history.events:
        attributes = event.WhichOneof("attributes")
        if attributes is not None:
            yield from walk(getattr(event, attributes), attributes)
        if event.HasField("user_metadata"):  # the UI's summary and details
            yield from walk(event.user_metadata, "user_metadata")


def plaintext_by_design(path: str) -> bool:
    """Search attributes (Temporal indexes them), headers (trace context) and
    the SDK's own record of a local activity (its type, attempt and times)."""
    return (
        ".search_attributes" in path
        or ".header" in path
        or path.startswith("marker_recorded_event_attributes.details[data]")
    )


async def plaintext_client(stack: Stack) -> Client:
    return await connect(TemporalConnection(address=stack.temporal_address))


def with_key(stack: Stack, task_queue: str) -> Callable[[ReactorBuilder], ReactorBuilder]:
    def configure(builder: ReactorBuilder) -> ReactorBuilder:
        return builder.with_temporal(stack.temporal_address, task_queue=task_queue, payload_key=KEY)

    return configure


async def cli_status(stack: Stack, database_url: str, task_queue: str, job_id: str) -> Any:
    """`reactor status JOB --json`, run as a separate process with the key."""
    env = {**worker_env(stack, database_url, task_queue), "REACTOR_PAYLOAD_KEY": KEY}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "reactor.cli.main",
        "status",
        job_id,
        "--json",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


def failures_in(history: WorkflowHistory) -> list[Failure]:
    """The activity failures the history records (a local activity's in its
    marker)."""
    found = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
            found.append(event.activity_task_failed_event_attributes.failure)
        elif event.marker_recorded_event_attributes.HasField("failure"):
            found.append(event.marker_recorded_event_attributes.failure)
    return found


async def test_history_without_the_key_holds_no_action_input(
    stack: Stack, module_factory: Factory, task_queue: str, database_url: str
) -> None:
    module = await module_factory(with_key(stack, task_queue))
    reactor = module.reactor
    marker = "MARKER-" + uuid.uuid4().hex
    started = await reactor.execute_batch(batch(marker))
    jobs = await reactor.wait_for_batch(started.batch_id)
    assert [j.status for j in jobs] == [JobStatus.READ_READY, JobStatus.READ_READY]
    doc = await reactor.get(jobs[1].document_id, consistency_token=jobs[1].consistency_token)
    assert doc.state["global"]["items"][0]["text"] == marker  # applied, in PostgreSQL

    plain = await plaintext_client(stack)
    handle = plain.get_workflow_handle(workflow_id_for(started.batch_id))
    history = await handle.fetch_history()
    raw = history_bytes(history)
    assert marker.encode() not in raw
    started_event = history.events[0].workflow_execution_started_event_attributes
    assert started_event.input.payloads[0].metadata["encoding"] == ENCODING
    assert all(p.metadata["encoding"] == ENCODING for p in started_event.memo.fields.values())
    found = list(payloads_in(history))
    kinds = {path.split(".")[0] for path, _ in found}
    # Workflow input and memo, (local) activity inputs/results, the result.
    assert {
        "workflow_execution_started_event_attributes",
        "marker_recorded_event_attributes",
    } <= kinds
    assert {"workflow_execution_completed_event_attributes", "user_metadata"} <= kinds
    clear = [
        path
        for path, p in found
        if p.metadata.get("encoding") != ENCODING and not plaintext_by_design(path)
    ]
    assert clear == [], [(path, p) for path, p in found if path in clear]
    # Search attributes stay plaintext: Temporal indexes them.
    assert started.batch_id.encode() in bytes(
        started_event.search_attributes.indexed_fields["ReactorBatchId"].data
    )

    # Without the key: a named error, not garbage.
    try:
        await handle.result()
    except EncryptedPayloadError as exc:
        assert exc.key_id == "test-2026"
    else:
        raise AssertionError("the result decoded without the key")
    description = await handle.describe()
    try:
        await description.memo()
    except EncryptedPayloadError:
        pass
    else:
        raise AssertionError("the memo decoded without the key")
    try:  # a query's result is encrypted by the worker that answers it
        await handle.query(BatchWorkflow.summary)
    except EncryptedPayloadError:
        pass
    else:
        raise AssertionError("the query result decoded without the key")

    # With the key: queries, the memo, `reactor status`.
    assert (await reactor.batch_summary(started.batch_id)).batch_id == started.batch_id
    keyed = module.client.get_workflow_handle(workflow_id_for(started.batch_id))
    assert await (await keyed.describe()).memo()
    status = await cli_status(stack, database_url, task_queue, jobs[1].id)
    assert status["status"] == "READ_READY"


async def test_the_same_batch_without_a_key_leaves_its_input_readable(
    stack: Stack, module_factory: Factory
) -> None:
    """The control for the test above: the marker search does find plaintext."""
    module = await module_factory()
    marker = "MARKER-" + uuid.uuid4().hex
    started = await module.reactor.execute_batch(batch(marker))
    await module.reactor.wait_for_batch(started.batch_id)
    plain = await plaintext_client(stack)
    history = await plain.get_workflow_handle(workflow_id_for(started.batch_id)).fetch_history()
    assert marker.encode() in history_bytes(history)


async def test_a_worker_without_the_key_fails_its_task_with_the_named_error(
    stack: Stack, module_factory: Factory, task_queue: str, database_url: str
) -> None:
    module = await module_factory(with_key(stack, task_queue), worker=False)
    keyless_module = await worker_module(database_url, stack.temporal_address, task_queue)
    keyless = keyless_module.create_worker()
    run = asyncio.create_task(keyless.run())
    plain = await plaintext_client(stack)
    try:
        started = await module.reactor.execute_batch(batch("MARKER-" + uuid.uuid4().hex))
        handle = plain.get_workflow_handle(workflow_id_for(started.batch_id))
        failures: list[Any] = []

        async def task_failed() -> bool:
            history = await handle.fetch_history()
            failures[:] = [
                e.workflow_task_failed_event_attributes.failure
                for e in history.events
                if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
            ]
            return bool(failures)

        await wait_until(task_failed, 60, "the keyless worker to fail the workflow task")
        cause = failures[0].cause  # the SDK wraps it in "Failed decoding arguments"
        assert cause.application_failure_info.type == "EncryptedPayloadError"
        assert "payload is encrypted with key 'test-2026'" in cause.message
        assert "REACTOR_PAYLOAD_KEY" in cause.message
        await handle.terminate("test over")
    finally:
        await keyless.shutdown()
        await asyncio.gather(run, return_exceptions=True)
        await keyless_module.close()


async def test_a_job_rejected_with_the_input_in_its_error_leaves_no_plaintext(
    stack: Stack, module_factory: Factory, task_queue: str, database_url: str
) -> None:
    """The reducer's error quotes the item id: the history holds it only
    encrypted, and `reactor status` with the key shows it."""
    module = await module_factory(with_key(stack, task_queue))
    marker = "MARKER-" + uuid.uuid4().hex
    doc = "enc-" + uuid.uuid4().hex[:8]
    started = await module.reactor.execute_batch(
        {
            "jobs": [
                create_list("create", doc),
                {
                    "key": "bad",
                    "document_id": doc,
                    "depends_on": ["create"],
                    "actions": [
                        {"type": "UPDATE_TODO_ITEM", "input": {"id": marker, "checked": True}}
                    ],
                },
            ]
        }
    )
    jobs = await module.reactor.wait_for_batch(started.batch_id)
    assert [j.status for j in jobs] == [JobStatus.READ_READY, JobStatus.FAILED]
    expected = f"actions[0] UPDATE_TODO_ITEM: todo item {marker!r} does not exist"
    assert jobs[1].error is not None and jobs[1].error.message == expected

    plain = await plaintext_client(stack)
    history = await plain.get_workflow_handle(workflow_id_for(started.batch_id)).fetch_history()
    assert marker.encode() not in history_bytes(history)
    status = await cli_status(stack, database_url, task_queue, jobs[1].id)
    assert status["status"] == "FAILED" and status["error"]["message"] == expected


@pytest.mark.parametrize(
    ("request_of", "local"),
    [
        (lambda p: {"jobs": [create_list("a", f"{p}-a"), create_list("b", f"{p}-b")]}, True),
        (lambda p: stored(p, 150), False),
    ],
    ids=["local-activity", "regular-activity"],
)
async def test_a_failed_chunks_message_and_stack_trace_are_encrypted(
    stack: Stack,
    module_factory: Factory,
    task_queue: str,
    database_url: str,
    request_of: Callable[[str], dict[str, Any]],
    local: bool,
) -> None:
    """An activity's failure is recorded in the history as Temporal's
    Failure, not as a payload: with the key, its message and stack trace go
    through the codec too; its type stays readable."""
    module = await module_factory(with_key(stack, task_queue), worker=False)
    reactor = module.reactor
    marker = "MARKER-" + uuid.uuid4().hex
    message = f"model code rejected item {marker!r}"
    calls: list[bool] = []

    async def broken(inp: ApplyJobsInput) -> list[JobOutcome]:
        calls.append(activity.info().is_local)
        # As apply_jobs gives up on an error that keeps repeating.
        raise ApplicationError(message, type="ValueError", non_retryable=True)

    async with apply_jobs_worker(reactor, broken):
        started = await reactor.execute_batch(request_of("enc-" + uuid.uuid4().hex[:6]))
        jobs = await reactor.wait_for_batch(started.batch_id)
        assert calls == [local]  # non-retryable: one attempt
        assert {(j.status, j.error.type if j.error else None) for j in jobs} == {
            (JobStatus.FAILED, "ValueError")
        }
        # With the key, the message is the one raised, decoded.
        assert all(j.error is not None and j.error.message == message for j in jobs)
        info = await reactor.get_job_status(jobs[0].id)
        assert info.error is not None and info.error.message == message
        status = await cli_status(stack, database_url, task_queue, jobs[0].id)  # queries the worker
        assert status["status"] == "FAILED" and status["error"]["message"] == message

    plain = await plaintext_client(stack)
    history = await plain.get_workflow_handle(workflow_id_for(started.batch_id)).fetch_history()
    raw = history_bytes(history)
    assert marker.encode() not in raw
    assert Path(__file__).name.encode() not in raw  # the stack trace
    (failure,) = failures_in(history)
    assert failure.application_failure_info.type == "ValueError"
    assert failure.message == "Encoded failure" and failure.stack_trace == ""
    assert failure.encoded_attributes.metadata["encoding"] == ENCODING
