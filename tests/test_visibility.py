"""Batches are findable in Temporal's visibility API (and so in the UI) by
their typed search attributes; `reactor batches` lists them."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from typing import Any

from google.protobuf.duration_pb2 import Duration
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError

from reactor.api.builder import ReactorBuilder
from reactor.api.reactor import Reactor
from reactor.models import BUILTIN_MODELS
from reactor.observability import search_attributes as sa
from reactor.observability.batch_listing import batches_query, list_batches
from reactor.runtime.settings import SEARCH_ATTRIBUTES
from reactor.runtime.temporal import connect
from tests.conftest import ROOT, Stack, worker_env
from tests.support.workers import worker_module

REACTOR = [sys.executable, "-m", "reactor.cli.main"]


def create(doc: str) -> dict[str, Any]:
    return {
        "key": f"create-{doc}",
        "document_id": doc,
        "scope": "document",
        "actions": [
            {"type": "CREATE_DOCUMENT", "input": {"document_type": "powerhouse/todo-list"}}
        ],
    }


async def find(
    client: Client, *, document: str, failed: bool = False, expect: int = 1, settled: bool = True
) -> list[dict[str, Any]]:
    """Visibility is eventually consistent: poll (bounded) until `expect` rows
    show up, closed when `settled`."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        rows = await list_batches(client, document=document, failed=failed)
        if len(rows) == expect and (not settled or all(r["close_time"] for r in rows)):
            return rows
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"visibility shows {rows}, expected {expect} row(s)")
        await asyncio.sleep(0.2)


async def cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *REACTOR, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_a_batch_is_found_by_document_id_and_failed_filters(
    stack: Stack, reactor: Reactor, worker: None, database_url: str, task_queue: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    good, bad = f"vis-{tag}-good", f"vis-{tag}-bad"
    ok = await reactor.execute_batch(
        {
            "jobs": [
                create(good),
                {
                    "key": "item",
                    "document_id": good,
                    "depends_on": [f"create-{good}"],
                    "actions": [{"type": "ADD_TODO_ITEM", "input": {"id": "1", "text": "milk"}}],
                },
            ]
        }
    )
    failing = await reactor.execute_batch(
        {
            "jobs": [
                create(bad),
                {
                    "key": "broken",
                    "document_id": bad,
                    "depends_on": [f"create-{bad}"],
                    "actions": [{"type": "DELETE_TODO_ITEM", "input": {"id": "missing"}}],
                },
                {
                    "key": "dependent",
                    "document_id": bad,
                    "depends_on": ["broken"],
                    "actions": [{"type": "ADD_TODO_ITEM", "input": {"id": "2", "text": "x"}}],
                },
            ]
        }
    )
    await reactor.wait_for_batch(ok.batch_id)
    await reactor.wait_for_batch(failing.batch_id)

    [row] = await find(reactor.client, document=good)
    assert row["batch_id"] == ok.batch_id
    assert row["status"] == sa.COMPLETED
    assert (row["jobs"], row["failed"]) == (2, 0)
    assert row["document_ids"] == [good]
    assert row["document_types"] == ["powerhouse/todo-list"]
    assert row["task_queue"] == task_queue and row["start_time"]

    [row] = await find(reactor.client, document=bad, failed=True)
    assert row["batch_id"] == failing.batch_id
    assert row["status"] == sa.COMPLETED_WITH_FAILURES
    assert (row["jobs"], row["failed"]) == (3, 2)
    assert await list_batches(reactor.client, document=good, failed=True) == []

    # The command line: JSON, and the table.
    env = worker_env(stack, database_url, task_queue)
    env["COLUMNS"] = "200"
    rc, out, err = await cli(env, "batches", "--document", bad, "--failed", "--json")
    assert rc == 0, err
    [listed] = json.loads(out)
    assert listed["batch_id"] == failing.batch_id and listed["failed"] == 2
    rc, out, err = await cli(env, "batches", "--document", good)
    assert rc == 0, err
    assert ok.batch_id in out and "COMPLETED" in out and good in out
    rc, out, err = await cli(env, "batches", "--document", good, "--failed")
    assert rc == 0 and "no batches match" in err


async def test_huge_document_lists_are_capped_to_fit_temporal_limits(
    reactor: Reactor, worker: None
) -> None:
    docs = [f"cap-{uuid.uuid4()}" for _ in range(150)]
    result = await reactor.execute_batch({"jobs": [create(d) for d in docs]})
    await reactor.wait_for_batch(result.batch_id)
    listed = sa.capped_keywords(docs)
    assert 0 < len(listed) <= sa.MAX_KEYWORDS
    assert len(json.dumps(listed, separators=(",", ":"))) <= sa.MAX_KEYWORD_LIST_BYTES
    assert listed == docs[: len(listed)]  # the first ones, in submission order
    [row] = await find(reactor.client, document=docs[0])
    assert row["jobs"] == 150 and row["document_ids"] == listed
    assert await list_batches(reactor.client, document=docs[-1]) == []


def test_keyword_caps_and_query() -> None:
    assert sa.capped_keywords(["a", "b", "a", "c"]) == ["a", "b", "c"]
    assert len(sa.capped_keywords(str(n) for n in range(1000))) == sa.MAX_KEYWORDS
    assert batches_query("it's", failed=True) == (
        "WorkflowType = 'BatchWorkflow' AND ReactorDocumentIds = 'it\\'s' AND "
        "(ReactorFailedJobCount > 0 OR ExecutionStatus IN "
        "('Failed', 'Terminated', 'TimedOut', 'Canceled'))"
    )
    keys = [
        sa.BATCH_ID,
        sa.DOCUMENT_IDS,
        sa.DOCUMENT_TYPES,
        sa.JOB_COUNT,
        sa.FAILED_JOB_COUNT,
        sa.STATUS,
    ]
    assert {k.name: k.indexed_value_type.name for k in keys} == {
        name: {"Keyword": "KEYWORD", "KeywordList": "KEYWORD_LIST", "Int": "INT"}[kind]
        for name, kind in SEARCH_ATTRIBUTES.items()
    }


async def test_a_namespace_without_our_attributes_still_runs_batches_then_setup_registers_them(
    stack: Stack, database_url: str, task_queue: str
) -> None:
    namespace = "ns-" + uuid.uuid4().hex[:8]
    client = await connect(stack.temporal_address)
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=namespace, workflow_execution_retention_period=Duration(seconds=86400)
        )
    )
    ns_client = await connect(stack.temporal_address, namespace)

    # Before setup: the start falls back to no search attributes, and the
    # workflow (started without them) does not upsert any.
    reactor = await (
        ReactorBuilder()
        .with_document_models(BUILTIN_MODELS)
        .with_database(database_url)
        .with_temporal(stack.temporal_address, namespace, task_queue)
        .build()
    )
    module = await worker_module(
        database_url, stack.temporal_address, task_queue, namespace=namespace
    )
    try:
        async with module.create_worker():
            deadline = asyncio.get_running_loop().time() + 30
            while True:  # a new namespace takes a moment to reach every service
                try:
                    result = await reactor.execute_batch({"jobs": [create("unindexed")]})
                    break
                except RPCError:
                    if asyncio.get_running_loop().time() > deadline:
                        raise
                    await asyncio.sleep(0.5)
            jobs = await asyncio.wait_for(reactor.wait_for_batch(result.batch_id), 60)
            assert [j.status.value for j in jobs] == ["READ_READY"]
    finally:
        await reactor.close()
        await module.close()

    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
    env["REACTOR_TEMPORAL_ADDRESS"] = stack.temporal_address
    args = ["setup-search-attributes", "--namespace", namespace]
    rc, out, err = await cli(env, *args)
    assert rc == 0, err
    assert "already registered" not in out
    assert all(name in out for name in SEARCH_ATTRIBUTES)
    rc, out, err = await cli(env, *args)
    assert rc == 0, err
    assert out.count("already registered") == len(SEARCH_ATTRIBUTES)
    found = await sa.registered(ns_client, namespace)
    assert {n: found[n] for n in SEARCH_ATTRIBUTES} == SEARCH_ATTRIBUTES
