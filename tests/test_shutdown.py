"""Stopping is bounded. With an activity stuck in a reducer that never
returns (tests/support/stuck_model.py: it holds the worker's event loop, so
neither draining nor cancellation can end it), `reactor dev` and `reactor
worker` still leave after their grace period; a second SIGINT leaves at
once; and no PostgreSQL or Temporal server of `reactor dev` outlives it,
also when it is killed with SIGKILL.

Grace periods here are short (REACTOR_SHUTDOWN_GRACE_S) or long on purpose:
a process that exits while a 600 s grace period runs was stopped by the
second signal, not by the grace period. The waits on the processes are
liveness bounds, not measurements."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reactor.api.builder import ReactorBuilder
from reactor.models import BUILTIN_MODELS
from tests.conftest import ROOT, Stack, spawn_worker, wait_polling, wait_until
from tests.support import stuck_model

SHORT_GRACE_S = 3.0
# Start-up (PostgreSQL, the Temporal dev server), the stop, and a busy machine.
LIVENESS_S = 120.0


def stuck_batch() -> dict[str, Any]:
    return {
        "jobs": [
            {
                "key": "create",
                "document_id": "stuck-doc",
                "scope": "document",
                "actions": [
                    {
                        "type": "CREATE_DOCUMENT",
                        "input": {"document_type": stuck_model.document_type},
                    }
                ],
            },
            {
                "key": "hang",
                "document_id": "stuck-doc",
                "depends_on": ["create"],
                "actions": [{"type": "HANG", "input": {}}],
            },
        ]
    }


def processes_in(folder: Path) -> list[str]:
    """Processes whose command line names a path inside `folder` (the dev
    stack's PostgreSQL and Temporal servers, the guard process)."""
    needle = str(folder).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline:
            words = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry.name}: {words}")
    return found


async def assert_nothing_left_in(folder: Path) -> None:
    """The servers may take a moment to go after the process they served."""

    async def none_left() -> bool:
        return not processes_in(folder)

    try:
        await wait_until(none_left, 30, f"every process in {folder} to end")
    except AssertionError:
        raise AssertionError(f"left behind: {processes_in(folder)}") from None


def assert_left_after_the_grace_period(rc: int, sig: int, output: str) -> None:
    """The HANG reducer runs on the event loop and never returns, so the
    drain cannot end: only the watchdog thread, at the end of the grace
    period, stops the process, with 128 + the signal. An exit 0 would mean
    the stuck work was not stuck and the bound went unproven."""
    assert rc == 128 + sig, f"exit {rc}: {output[-3000:]}"
    assert f"still running {SHORT_GRACE_S:g} s after the stop was asked" in output, output[-3000:]


class DevProcess:
    """`reactor dev` in its own folder, with the stuck model loaded."""

    def __init__(self, folder: Path, grace_s: float):
        self.folder = folder
        self.out = folder / "dev.out"
        self.err = folder / "dev.err"
        self.marker = folder / "stuck"
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("REACTOR_DATABASE_URL", "REACTOR_TEMPORAL_ADDRESS")
        }
        env.update(
            REACTOR_HOME=str(folder / ".reactor"),
            REACTOR_MODELS="tests.support.stuck_model",
            REACTOR_SHUTDOWN_GRACE_S=str(grace_s),
            STUCK_MODEL_MARKER=str(self.marker),
            PYTHONPATH=str(ROOT),
        )
        self.env = env
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "reactor.cli.main", "dev", "--no-ui"],
                cwd=folder,
                env=env,
                stdout=out,
                stderr=err,
            )

    async def ready(self) -> None:
        async def says_ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"reactor dev exited: {self.err.read_text()[-3000:]}")
            return b"reactor ready" in self.out.read_bytes()

        await wait_until(says_ready, LIVENESS_S, "reactor dev to be ready")

    async def submit_stuck_batch(self) -> None:
        batch = self.folder / "batch.json"
        batch.write_text(json.dumps(stuck_batch()))
        submitted = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "reactor.cli.main", "submit", batch.name, "--json"],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            timeout=LIVENESS_S,
        )
        assert submitted.returncode == 0, submitted.stderr.decode()[-3000:]

        async def stuck() -> bool:
            return self.marker.exists()

        await wait_until(stuck, LIVENESS_S, "the HANG job's reducer to be stuck")

    async def wait(self) -> int:
        try:
            return await asyncio.to_thread(self.proc.wait, LIVENESS_S)
        finally:
            if self.proc.poll() is None:
                self.kill_all()

    def kill_all(self) -> None:
        """Clean-up after a failed test: this test's processes only."""
        self.proc.kill()
        self.proc.wait()
        kill_processes_in(self.folder)


@pytest.fixture
def dev_folder() -> Iterator[Path]:
    # Not under pytest's basetemp, which concurrent sessions rotate away.
    folder = Path(tempfile.mkdtemp(prefix="rxsd"))
    yield folder
    kill_processes_in(folder)  # what a failed test left behind
    shutil.rmtree(folder, ignore_errors=True)


def kill_processes_in(folder: Path) -> None:
    for line in processes_in(folder):
        try:
            os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)
        except ProcessLookupError:
            pass


async def test_dev_leaves_after_its_grace_period_on_sigterm_with_an_activity_stuck(
    dev_folder: Path,
) -> None:
    dev = DevProcess(dev_folder, grace_s=SHORT_GRACE_S)
    try:
        await dev.ready()
        await dev.submit_stuck_batch()
        dev.proc.send_signal(signal.SIGTERM)
        rc = await dev.wait()
    finally:
        if dev.proc.poll() is None:
            dev.kill_all()
    err = dev.err.read_text()
    assert_left_after_the_grace_period(rc, signal.SIGTERM, err)
    assert not (dev_folder / ".reactor" / "stack.json").exists()
    await assert_nothing_left_in(dev_folder)


async def test_dev_leaves_at_once_on_a_second_sigint(dev_folder: Path) -> None:
    dev = DevProcess(dev_folder, grace_s=600)
    try:
        await dev.ready()
        await dev.submit_stuck_batch()
        dev.proc.send_signal(signal.SIGINT)
        await asyncio.sleep(0.5)
        dev.proc.send_signal(signal.SIGINT)
        rc = await dev.wait()  # well before the 600 s grace period ends
    finally:
        if dev.proc.poll() is None:
            dev.kill_all()
    err = dev.err.read_text()
    assert rc == 128 + signal.SIGINT, err[-3000:]
    assert "a second signal: stopping now" in err
    assert not (dev_folder / ".reactor" / "stack.json").exists()
    await assert_nothing_left_in(dev_folder)


async def test_dev_killed_with_sigkill_leaves_no_server_behind(dev_folder: Path) -> None:
    dev = DevProcess(dev_folder, grace_s=SHORT_GRACE_S)
    try:
        await dev.ready()
        servers = [p for p in processes_in(dev_folder) if "postgres" in p or "temporal" in p]
        assert len(servers) >= 2, servers  # the test kills something real
        dev.proc.kill()
        await asyncio.to_thread(dev.proc.wait, LIVENESS_S)
    finally:
        if dev.proc.poll() is None:
            dev.kill_all()
    await assert_nothing_left_in(dev_folder)


@pytest.mark.parametrize("how", ["sigterm", "second-sigint"])
async def test_worker_leaves_with_an_activity_stuck(
    how: str, stack: Stack, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    """SIGTERM: it leaves once its grace period is over. Two SIGINTs: at
    once, a 600 s grace period notwithstanding."""
    grace = SHORT_GRACE_S if how == "sigterm" else 600
    marker = tmp_path / "stuck"
    log = tmp_path / "worker.log"
    worker = spawn_worker(
        stack,
        database_url,
        task_queue,
        log,
        extra_env={
            "REACTOR_MODELS": "tests.support.stuck_model",
            "REACTOR_SHUTDOWN_GRACE_S": str(grace),
            "STUCK_MODEL_MARKER": str(marker),
        },
    )
    reactor = await (
        ReactorBuilder()
        .with_document_models([*BUILTIN_MODELS, stuck_model])
        .with_database(database_url)
        .with_temporal(stack.temporal_address, task_queue=task_queue)
        .build()
    )
    try:
        await wait_polling(log)
        result = await reactor.execute_batch(stuck_batch())

        async def stuck() -> bool:
            return marker.exists()

        await wait_until(stuck, LIVENESS_S, "the HANG job's reducer to be stuck")
        if how == "sigterm":
            worker.send_signal(signal.SIGTERM)
        else:
            worker.send_signal(signal.SIGINT)
            await asyncio.sleep(0.5)
            worker.send_signal(signal.SIGINT)
        rc = await asyncio.to_thread(worker.wait, LIVENESS_S)
        text = log.read_text()
        if how == "sigterm":
            assert_left_after_the_grace_period(rc, signal.SIGTERM, text)
        else:
            assert rc == 128 + signal.SIGINT, text[-3000:]
            assert "a second signal: stopping now" in text
        # The batch is left to another worker; this one is gone.
        handle = reactor.client.get_workflow_handle(f"batch-{result.batch_id}")
        await handle.terminate("test over")
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        await reactor.close()
