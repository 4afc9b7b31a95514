"""`reactor sync` and the channel lines of `reactor doctor`, run as a user
runs them (a separate process, a fresh database, the real Temporal server):
exit codes, messages naming what was wrong, and what each command shows."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from reactor.runtime.embedded import free_port
from reactor.runtime.temporal import connect
from reactor.storage.database import Database
from reactor.storage.operation_store import Position
from reactor.storage.sync_channels import Channel, PostgresChannelStore
from tests.conftest import Stack, wait_until, worker_env
from tests.support.cli import run_reactor
from tests.support.sync_stubs import ScriptedSync, failed, sync_worker

TOKEN = "header.payload.signature"


@pytest.fixture
def env(stack: Stack, database_url: str, task_queue: str) -> dict[str, str]:
    return {**worker_env(stack, database_url, task_queue), "COLUMNS": "250"}


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[Client]:
    yield await connect(stack.temporal_address)


def problem(rc: int, out: str, err: str) -> str:
    """The one line a refused command prints on stderr (exit 2, no trace)."""
    assert rc == 2, out + err
    assert "Traceback" not in out + err
    return err.strip().splitlines()[-1]


async def sync_json(env: dict[str, str], *args: str) -> list[dict[str, object]]:
    rc, out, err = await run_reactor(env, "sync", *args, "--json")
    assert rc == 0, out + err
    found = json.loads(out)
    assert isinstance(found, list)
    return found


async def test_add_list_status_and_remove_a_channel(
    env: dict[str, str], client: Client, task_queue: str
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    name = url.removeprefix("http://").replace(":", "-")
    rc, out, err = await run_reactor(
        env, "sync", "add", url, "--type", "powerhouse/todo", "--token", TOKEN
    )
    assert rc == 0, out + err
    assert f"added channel {name}" in out and f"sync-{name}" in out and task_queue in out
    handle = client.get_workflow_handle(f"sync-{name}")
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING

    [row] = await sync_json(env, "list")
    assert (row["name"], row["url"], row["document_type"], row["document_id"]) == (
        name,
        url,
        "powerhouse/todo",
        None,
    )
    assert (row["status"], row["pulled"], row["pushed"], row["token"]) == ("PENDING", 0, 0, True)
    rc, out, _ = await run_reactor(env, "sync", "list")
    assert rc == 0 and name in out and url in out and "type powerhouse/todo" in out
    assert TOKEN not in out

    # The channel's workflow on a worker whose rounds keep failing: the
    # status shows the row and what the workflow says of itself.
    stubs = ScriptedSync([failed("RemoteUnavailableError: connection refused")] * 20)
    async with sync_worker(client, task_queue, stubs):

        async def failing() -> bool:
            [found] = await sync_json(env, "status", name)
            query = found["workflow"]["query"]  # type: ignore[index]
            return isinstance(query, dict) and query["state"] == "FAILED"

        await wait_until(failing, 60, "the workflow's status query to show the failed round")
        [found] = await sync_json(env, "status", name)
        workflow = found["workflow"]
        assert isinstance(workflow, dict)
        assert (workflow["id"], workflow["status"]) == (f"sync-{name}", "RUNNING")
        assert "connection refused" in workflow["query"]["last_error"]
        assert found["name"] == name and found["status"] == "PENDING"
        rc, out, _ = await run_reactor(env, "sync", "status")
        assert rc == 0 and f"sync-{name}: RUNNING" in out and "connection refused" in out
        assert TOKEN not in out

        rc, out, err = await run_reactor(env, "sync", "remove", name)
        assert rc == 0, out + err
        assert f"removed channel {name}" in out and f"stopped workflow sync-{name}" in out
    assert (await handle.describe()).status == WorkflowExecutionStatus.TERMINATED
    assert await sync_json(env, "list") == []

    line = problem(*await run_reactor(env, "sync", "remove", name))
    assert f"name: no channel named '{name}'" in line
    line = problem(*await run_reactor(env, "sync", "status", name))
    assert f"name: no channel named '{name}'" in line


async def test_bad_channels_are_refused_naming_the_field_and_nothing_is_stored(
    env: dict[str, str], client: Client
) -> None:
    line = problem(*await run_reactor(env, "sync", "add", "ftp://peer.example/x"))
    assert "rejected: url:" in line and "http(s)" in line
    line = problem(*await run_reactor(env, "sync", "add", "peer.example:8080"))
    assert "rejected: url:" in line
    line = problem(
        *await run_reactor(env, "sync", "add", "http://peer:1", "--type", "t", "--document", "d")
    )
    assert "--document" in line and "--type" in line
    line = problem(*await run_reactor(env, "sync", "add", "http://peer:1", "--name", "no good"))
    assert "rejected: name:" in line
    assert await sync_json(env, "list") == []

    rc, out, err = await run_reactor(env, "sync", "add", "http://peer:1", "--name", "peer")
    assert rc == 0, out + err
    try:
        line = problem(*await run_reactor(env, "sync", "add", "http://other:2", "--name", "peer"))
        assert "rejected: name:" in line and "'peer' exists" in line
        [row] = await sync_json(env, "list")
        assert row["url"] == "http://peer:1" and row["token"] is False
    finally:
        await client.get_workflow_handle("sync-peer").terminate("test over")


async def test_doctor_shows_each_channel_and_a_failed_one_with_its_fix(
    env: dict[str, str], db: Database
) -> None:
    store = PostgresChannelStore(db)
    await store.add(Channel.declare("http://fine.example:1", name="fine"))
    await store.advance_pull("fine", Position(3, 4), 12, "remote-a")
    await store.succeeded("fine")
    await store.add(Channel.declare("https://down.example", name="down", document_id="doc-1"))
    await store.failed("down", "RemoteUnavailableError: connection refused")
    await store.failed("down", "RemoteUnavailableError: connection refused")

    rc, out, err = await run_reactor(env, "doctor", "--json")
    assert rc == 1, out + err
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    fine, down = checks["sync fine"], checks["sync down"]
    assert fine["ok"] is True and fine["fix"] is None
    assert "SUCCEEDED" in fine["detail"] and "12 pulled" in fine["detail"]
    assert down["ok"] is False
    assert "FAILED 2× in a row" in down["detail"] and "connection refused" in down["detail"]
    assert "document doc-1" in down["detail"] and "never succeeded" in down["detail"]
    assert "check the remote" in down["fix"] and "`reactor sync status down`" in down["fix"]

    rc, out, err = await run_reactor(env, "doctor", "--quiet")
    assert rc == 1 and "sync down" in err and "reactor sync status down" in err
    assert "sync fine" not in err
