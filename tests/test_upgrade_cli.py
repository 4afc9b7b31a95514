"""`reactor upgrade --type T [--to N]` as a user runs it: documents created
before their type had a manifest are upgraded by batches of UPGRADE_DOCUMENT
jobs, step by step to the version asked; a second run submits nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from subprocess import Popen

from reactor.api.builder import ReactorBuilder
from reactor.api.module import ReactorModule
from reactor.api.reactor import Reactor
from reactor.domain.jobs import JobStatus
from reactor.domain.model import DocumentModel
from reactor.storage.database import Database
from tests.conftest import Stack, spawn_worker, wait_polling, wait_until, worker_env
from tests.support import versioned_counter
from tests.support.cli import REACTOR, run_reactor
from tests.support.rows import row_counts

Factory = Callable[..., Awaitable[ReactorModule]]
DOCS = ("k1", "k2", "k3")
KIND = versioned_counter.document_type


def before_the_manifest(
    stack: Stack, task_queue: str
) -> Callable[[ReactorBuilder], ReactorBuilder]:
    """A module whose model has no manifest yet, on a task queue of its own
    (its worker alone creates the documents, at version 1)."""
    unversioned = dataclasses.replace(DocumentModel.from_module(versioned_counter), upgrades=None)

    def configure(builder: ReactorBuilder) -> ReactorBuilder:
        return builder.with_document_models([unversioned]).with_temporal(
            stack.temporal_address, task_queue=f"{task_queue}-v1"
        )

    return configure


def cli_env(stack: Stack, database_url: str, task_queue: str) -> dict[str, str]:
    return worker_env(stack, database_url, task_queue) | {
        "REACTOR_MODELS": versioned_counter.__name__
    }


async def test_upgrade_command_upgrades_every_document_once(
    module_factory: Factory, stack: Stack, database_url: str, task_queue: str
) -> None:
    unversioned = dataclasses.replace(DocumentModel.from_module(versioned_counter), upgrades=None)

    def before_the_manifest(builder: ReactorBuilder) -> ReactorBuilder:
        return builder.with_document_models([unversioned]).with_temporal(
            stack.temporal_address, task_queue=f"{task_queue}-v1"
        )

    old = (await module_factory(before_the_manifest)).reactor
    for n, doc in enumerate(DOCS, start=1):
        result = await old.execute_batch(
            {
                "jobs": [
                    {
                        "key": "create",
                        "document_id": doc,
                        "scope": "document",
                        "actions": [
                            {
                                "type": "CREATE_DOCUMENT",
                                "input": {"document_type": versioned_counter.document_type},
                            }
                        ],
                    },
                    {
                        "key": "add",
                        "document_id": doc,
                        "depends_on": ["create"],
                        "actions": [{"type": "ADD", "input": {"n": n}}],
                    },
                ]
            }
        )
        infos = await old.wait_for_batch(result.batch_id)
        assert all(i.status is JobStatus.READ_READY for i in infos), infos

    # The worker the command's batches reach knows the manifest.
    reactor = (await module_factory(lambda b: b.with_document_models([versioned_counter]))).reactor
    env = cli_env(stack, database_url, task_queue)
    kind = KIND

    code, out, err = await run_reactor(env, "upgrade", "--type", kind, "--to", "2", "--json")
    assert code == 0, err
    jobs = json.loads(out)["jobs"]
    assert len(jobs) == len(DOCS)
    assert {(await reactor.get(d)).header.model_version for d in DOCS} == {2}

    code, out, err = await run_reactor(env, "upgrade", "--type", kind)
    assert code == 0, err
    for n, doc in enumerate(DOCS, start=1):
        document = await reactor.get(doc)
        assert document.header.model_version == 3
        assert document.state["global"] == {"count": n * 10, "label": f"count={n}"}
        ops = (await reactor.get_operations(doc, scope="global", limit=10)).results
        assert [op.action.input for op in ops[1:]] == [
            {"from_version": 1, "to_version": 2},
            {"from_version": 2, "to_version": 3},
        ]
        assert (await reactor.verify(doc)).ok

    before = await row_counts(database_url)
    code, out, err = await run_reactor(env, "upgrade", "--type", kind)
    assert code == 0, err
    assert "nothing to upgrade" in out
    assert await row_counts(database_url) == before

    code, out, err = await run_reactor(env, "upgrade", "--type", kind, "--to", "7")
    assert code == 2
    assert "no version 7" in err and "Traceback" not in err


async def _at_version(db: Database, version: int) -> int:
    async with db.pool.acquire() as conn:
        n: int = await conn.fetchval(
            "SELECT count(*) FROM reactor_documents WHERE document_type = $1 "
            "AND model_version = $2",
            KIND,
            version,
        )
        return n


async def test_upgrade_command_survives_a_worker_sigkill_and_completes_once(
    module_factory: Factory,
    stack: Stack,
    db: Database,
    database_url: str,
    task_queue: str,
    tmp_path: Path,
) -> None:
    count = 400
    old = (await module_factory(before_the_manifest(stack, task_queue))).reactor
    create = {"type": "CREATE_DOCUMENT", "input": {"document_type": KIND}}
    jobs = [
        {"key": f"c{n}", "document_id": f"s{n:03}", "scope": "document", "actions": [create]}
        for n in range(count)
    ]
    infos = await old.wait_for_batch((await old.execute_batch({"jobs": jobs})).batch_id)
    assert all(i.status is JobStatus.READ_READY for i in infos)

    env = cli_env(stack, database_url, task_queue)
    first = spawn_worker(stack, database_url, task_queue, tmp_path / "w1.log", env)
    command = None
    try:
        await wait_polling(tmp_path / "w1.log")
        command = await asyncio.create_subprocess_exec(
            *REACTOR,
            "upgrade",
            "--type",
            KIND,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

        async def some_upgraded() -> bool:
            return await _at_version(db, 3) >= 20

        await wait_until(some_upgraded, 120, "the first worker to upgrade some documents")
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        upgraded_at_kill = await _at_version(db, 3)
        assert upgraded_at_kill < count, "the upgrade finished before the kill: it proves nothing"
    finally:
        if first.poll() is None:
            first.kill()
    second = spawn_worker(stack, database_url, task_queue, tmp_path / "w2.log", env)
    try:
        await wait_polling(tmp_path / "w2.log", proc=second)
        try:
            out, err = await asyncio.wait_for(command.communicate(), 180)
        except TimeoutError:
            command.kill()
            out, err = await command.communicate()
            raise AssertionError(
                await _stuck(old, task_queue, tmp_path, out + err, second)
            ) from None
    finally:
        second.terminate()
        second.wait(30)
    assert command.returncode == 0, err.decode()
    assert await _at_version(db, 3) == count
    async with db.pool.acquire() as conn:
        per_scope = await conn.fetch(
            "SELECT scope, count(*) AS n, count(DISTINCT document_id) AS docs "
            "FROM reactor_operations WHERE action->>'type' = 'UPGRADE_DOCUMENT' GROUP BY scope"
        )
    # each document upgraded exactly once, in each of its scopes
    assert {r["scope"]: (r["n"], r["docs"]) for r in per_scope} == {
        scope: (count, count) for scope in ("document", "global", "local")
    }
    reader = (
        await module_factory(lambda b: b.with_document_models([versioned_counter]), worker=False)
    ).reactor
    for doc in ("s000", f"s{count // 2:03}", f"s{count - 1:03}"):
        assert (await reader.verify(doc)).ok
    code, out_again, _ = await run_reactor(env, "upgrade", "--type", KIND)
    assert code == 0 and "nothing to upgrade" in out_again


async def _stuck(
    reactor: Reactor, task_queue: str, folder: Path, output: bytes, worker: Popen[bytes]
) -> str:
    """What a command that never ended leaves to read: its output, the
    workers' logs and what each batch workflow of the queue still waits for."""
    parts = [f"the upgrade command did not end; its output:\n{output.decode()[-3000:]}"]
    parts.append(f"second worker: {'running' if worker.poll() is None else worker.returncode}")
    for name in ("w1.log", "w2.log"):
        text = (folder / name).read_text(errors="replace") if (folder / name).exists() else ""
        parts.append(f"--- {name}, its end:\n{text[-4000:]}")
    async for wf in reactor.client.list_workflows(f"TaskQueue = '{task_queue}'"):
        described = await reactor.client.get_workflow_handle(wf.id, run_id=wf.run_id).describe()
        raw = described.raw_description
        pending = [
            f"{a.activity_type.name} state {a.state} attempt {a.attempt} "
            f"failure {a.last_failure.message!r}"
            for a in raw.pending_activities
        ]
        task = raw.pending_workflow_task
        parts.append(
            f"--- workflow {wf.id}: {wf.status}, pending activities {pending}, "
            f"workflow task state {task.state} attempt {task.attempt}"
        )
    return "\n".join(parts)
