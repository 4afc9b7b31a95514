"""`reactor doctor`: healthy against the test stack with a worker polling;
unhealthy, naming the fix, when something is wrong. Exit 0 / 1."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg

from reactor.observability.health import check_database, redact
from reactor.runtime.embedded import free_port
from tests.conftest import Stack, with_database, worker_env
from tests.support.cli import run_reactor


async def doctor(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    return await run_reactor(env, "doctor", *args)


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"]}


async def test_healthy_stack_with_a_worker_exits_0(
    stack: Stack, database_url: str, task_queue: str, worker: None
) -> None:
    env = worker_env(stack, database_url, task_queue)
    deadline = asyncio.get_running_loop().time() + 30
    while True:  # the in-process worker's first polls reach the server shortly
        rc, out, err = await doctor(env, "--json")
        report = json.loads(out)
        if rc == 0 or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.5)
    assert rc == 0, out + err
    assert report["healthy"] is True
    checks = by_name(report)
    assert set(checks) == {
        "database",
        "migrations",
        "read models",
        "temporal",
        "namespace",
        "search attributes",
        "workers",
    }
    assert all(c["ok"] and c["fix"] is None for c in checks.values())
    assert task_queue in checks["workers"]["detail"]

    rc, out, err = await doctor(env, "--quiet")
    assert (rc, out, err) == (0, "", "")
    env["COLUMNS"] = "200"
    rc, out, _ = await doctor(env)
    assert rc == 0 and "healthy" in out and "✓" in out and "✗" not in out


async def test_bad_database_url_is_unhealthy_and_names_the_fix(
    stack: Stack, database_url: str, task_queue: str, worker: None
) -> None:
    env = worker_env(stack, database_url, task_queue)
    env["REACTOR_DATABASE_URL"] = f"postgresql://reactor:s3cret@127.0.0.1:{free_port()}/nowhere"
    rc, out, err = await doctor(env, "--json")
    assert rc == 1, err
    report = json.loads(out)
    assert report["healthy"] is False
    db = by_name(report)["database"]
    assert db["ok"] is False
    assert "REACTOR_DATABASE_URL" in db["fix"]
    assert "s3cret" not in out and "reactor:***@127.0.0.1" in db["detail"]
    assert by_name(report)["temporal"]["ok"] is True  # the rest is still checked

    rc, out, err = await doctor(env, "--quiet")
    assert rc == 1 and out == ""
    assert "database" in err and "REACTOR_DATABASE_URL" in err
    env["COLUMNS"] = "200"
    rc, out, _ = await doctor(env)
    assert rc == 1 and "unhealthy" in out and "fix:" in out and "REACTOR_DATABASE_URL" in out


async def test_pending_migrations_no_worker_and_no_temporal_each_name_their_fix(
    stack: Stack, task_queue: str
) -> None:
    name = "empty_" + uuid.uuid4().hex[:8]
    conn = await asyncpg.connect(stack.database_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    env = worker_env(stack, with_database(stack.database_url, name), "idle-" + task_queue)
    rc, out, err = await doctor(env, "--json")
    assert rc == 1, err
    checks = by_name(json.loads(out))
    assert checks["database"]["ok"] is True
    assert checks["migrations"]["ok"] is False
    assert "reactor migrate" in checks["migrations"]["fix"]
    assert checks["search attributes"]["ok"] is True
    assert checks["workers"]["ok"] is False
    assert (
        "reactor worker" in checks["workers"]["fix"]
        and "idle-" + task_queue in checks["workers"]["fix"]
    )

    env["REACTOR_TEMPORAL_ADDRESS"] = f"127.0.0.1:{free_port()}"
    rc, out, err = await doctor(env, "--json", "--timeout", "3")
    assert rc == 1, err
    checks = by_name(json.loads(out))
    assert (
        checks["temporal"]["ok"] is False
        and "REACTOR_TEMPORAL_ADDRESS" in checks["temporal"]["fix"]
    )
    assert "namespace" not in checks


async def test_unknown_namespace_and_no_configuration(
    stack: Stack, database_url: str, task_queue: str
) -> None:
    env = worker_env(stack, database_url, task_queue)
    env["REACTOR_TEMPORAL_NAMESPACE"] = "no-such-namespace"
    rc, out, _ = await doctor(env, "--json")
    assert rc == 1
    ns = by_name(json.loads(out))["namespace"]
    assert ns["ok"] is False and "temporal operator namespace create" in ns["fix"]

    bare = {k: v for k, v in env.items() if not k.startswith("REACTOR_") or k == "REACTOR_HOME"}
    bare["REACTOR_HOME"] = bare["REACTOR_HOME"] + "-none"
    rc, out, _ = await doctor(bare, "--json")
    assert rc == 1
    conf = by_name(json.loads(out))["configuration"]
    assert "reactor dev" in conf["fix"]


async def test_check_database_and_redact_directly(database_url: str) -> None:
    checks = await check_database(database_url)
    assert [(c.name, c.ok) for c in checks] == [
        ("database", True),
        ("migrations", True),
        ("read models", True),
    ]
    assert redact("postgresql://u:p@h:5/d") == "postgresql://u:***@h:5/d"
    assert redact("postgresql://u@h/d") == "postgresql://u@h/d"
