"""`reactor worker` verifies signatures with the keys it is given
(REACTOR_TRUSTED_KEYS, REACTOR_TRUSTED_KEYS_FILE), and `reactor doctor`
notices when the workers of one task queue do not verify alike. Real worker
processes (`python worker.py`) on the test's task queue."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from reactor.api.client import ReactorClientBuilder
from reactor.domain.actions import Action
from reactor.domain.jobs import JobStatus
from reactor.domain.signing import Ed25519Signer, keys_fingerprint, sign_action
from tests.conftest import Stack, spawn_worker, wait_polling, worker_env
from tests.support.rows import row_counts
from tests.test_doctor import by_name, doctor

TODO = "powerhouse/todo-list"


@asynccontextmanager
async def worker_process(
    stack: Stack, database_url: str, task_queue: str, log: Path, env: dict[str, str]
) -> AsyncIterator[subprocess.Popen[bytes]]:
    proc = spawn_worker(stack, database_url, task_queue, log, env)
    try:
        await wait_polling(log)
        yield proc
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 60)


async def test_a_worker_with_trusted_keys_fails_unsigned_and_untrusted_actions(
    stack: Stack, database_url: str, task_queue: str, module_factory: Any, tmp_path: Path
) -> None:
    signer = Ed25519Signer()
    keys = tmp_path / "trusted-keys"
    keys.write_text(f"# the writers' keys\n{signer.public_key()}\n")
    log = tmp_path / "worker.log"
    env = {"REACTOR_TRUSTED_KEYS_FILE": str(keys)}
    async with worker_process(stack, database_url, task_queue, log, env):
        assert b"verifying signatures against 1 trusted keys" in log.read_bytes()
        module = await module_factory(worker=False)
        reactor = module.reactor
        client = ReactorClientBuilder().with_reactor_module(module).with_signer(signer).build()
        await client.create_empty(TODO, document_id="checked")  # signed and trusted
        [head] = (await reactor.get_operations("checked", scope="document")).results[-1:]
        before = await row_counts(database_url)
        unsigned = Action(type="ADD_TODO_ITEM", input={"id": "1", "text": "anonymous"})
        stranger = sign_action(
            Ed25519Signer(),
            Action(type="ADD_TODO_ITEM", input={"id": "2", "text": "x"}),
            "checked",
            head.hash,
        )
        for action, reason in ((unsigned, "not signed"), (stranger, "untrusted")):
            job = await reactor.execute("checked", "main", [action])
            info = await reactor.wait_for_job(job.id, timeout=60)
            assert info.status is JobStatus.FAILED, info
            assert info.error is not None and info.error.type == "SignatureError"
            assert reason in info.error.message
        after = await row_counts(database_url)
    # Nothing written but the two jobs' decisions in the ledger.
    assert after.pop("reactor_applied_jobs") == before.pop("reactor_applied_jobs") + 2
    assert after == before


async def test_a_malformed_trusted_key_stops_the_worker_before_it_polls(
    stack: Stack, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    good = Ed25519Signer().public_key()
    proc = spawn_worker(
        stack, database_url, task_queue, log, {"REACTOR_TRUSTED_KEYS": f"{good}, not-a-key"}
    )
    assert await asyncio.to_thread(proc.wait, 60) != 0
    text = log.read_text()
    assert "REACTOR_TRUSTED_KEYS: key 2" in text and "worker polling" not in text


async def doctor_until(
    env: dict[str, str], done: Callable[[dict[str, Any]], bool], timeout: float = 60
) -> dict[str, Any]:
    """Runs `reactor doctor --json` until its workers check satisfies `done`
    (a worker's pollers reach the server shortly after it says it polls)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        _, out, err = await doctor(env, "--json")
        workers = by_name(json.loads(out))["workers"]
        if done(workers):
            return workers
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"doctor never got there: {workers} {err}")
        await asyncio.sleep(0.5)


async def test_doctor_warns_when_the_workers_of_a_queue_disagree_on_verification(
    stack: Stack, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    key = Ed25519Signer().public_key()
    verifying = f"verify={keys_fingerprint([key])}"
    env = worker_env(stack, database_url, task_queue)
    first_log, second_log = tmp_path / "verifying.log", tmp_path / "plain.log"
    async with worker_process(
        stack, database_url, task_queue, first_log, {"REACTOR_TRUSTED_KEYS": key}
    ):
        alone = await doctor_until(env, lambda w: verifying in w["detail"] and w["ok"])
        assert "verify=off" not in alone["detail"]
        async with worker_process(stack, database_url, task_queue, second_log, {}):
            mixed = await doctor_until(env, lambda w: "verify=off" in w["detail"])
    assert mixed["ok"] is False
    assert "disagree on signature verification" in mixed["detail"]
    assert verifying in mixed["detail"]
    assert "REACTOR_TRUSTED_KEYS" in (mixed["fix"] or "")
