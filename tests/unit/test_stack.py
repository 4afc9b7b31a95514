"""The shared stack helpers (reactor/runtime/stack.py) that need no running
service: naming databases, a worker's environment, stacks made of services
already running, waiting for a worker to poll, and a bounded stop."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from reactor.runtime import stack as services
from reactor.runtime.stack import EmbeddedStack, with_database

SERVER = "postgresql://u:p@127.0.0.1:5432/postgres?sslmode=disable"


def test_with_database_replaces_only_the_database() -> None:
    assert with_database(SERVER, "t_1") == "postgresql://u:p@127.0.0.1:5432/t_1?sslmode=disable"


def test_worker_env_names_the_stack_and_runs_this_code(tmp_path: Path) -> None:
    env = services.worker_env(
        "postgresql://db", "127.0.0.1:7233", "tq-1", home=tmp_path, extra={"REACTOR_NOTIFY": "0"}
    )
    assert env["REACTOR_DATABASE_URL"] == "postgresql://db"
    assert env["REACTOR_TEMPORAL_ADDRESS"] == "127.0.0.1:7233"
    assert env["REACTOR_TASK_QUEUE"] == "tq-1"
    assert env["REACTOR_HOME"] == str(tmp_path)
    assert env["REACTOR_NOTIFY"] == "0"
    assert Path(env["PYTHONPATH"]) / "worker.py" == services.WORKER_SCRIPT
    assert services.WORKER_SCRIPT.is_file()
    assert (Path(env["PYTHONPATH"]) / "reactor" / "runtime" / "stack.py").is_file()


def test_services_already_running_are_neither_started_nor_stopped(tmp_path: Path) -> None:
    stack = EmbeddedStack(tmp_path, database_url=SERVER, temporal_address="127.0.0.1:7999")
    with stack as started:
        assert started.server_url == SERVER
        assert started.temporal_address == "127.0.0.1:7999"
        assert started.postgres is None and started.temporal is None
        assert started.postgres_pid is None and started.temporal_pid is None
        assert started.ui_url is None
    stack.kill()
    assert not (tmp_path / "pg").exists() and not (tmp_path / "temporal").exists()


def test_from_env_embeds_what_the_environment_does_not_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REACTOR_DATABASE_URL", SERVER)
    monkeypatch.delenv("REACTOR_TEMPORAL_ADDRESS", raising=False)
    stack = EmbeddedStack.from_env(tmp_path, ui=False)
    assert stack.postgres is None and stack.server_url == SERVER
    assert stack.temporal is not None and stack.temporal.folder == tmp_path / "temporal"


async def test_wait_polling_returns_once_the_worker_says_so(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"

    async def write_later() -> None:
        await asyncio.sleep(0.05)
        log.write_text(f"starting\n{services.WORKER_POLLING} tq on 127.0.0.1:7233\n")

    writer = asyncio.create_task(write_later())
    await services.wait_polling(log, timeout=30)
    await writer
    assert services.WORKER_POLLING in log.read_text()


def _exited(status: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", f"raise SystemExit({status})"])
    proc.wait()
    return proc


async def test_wait_polling_reports_a_worker_that_exited_first(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    log.write_text("Traceback: a bad setting\n")
    proc = _exited(3)
    with pytest.raises(RuntimeError, match="exited with 3") as raised:
        await services.wait_polling(log, timeout=30, proc=proc)
    assert "a bad setting" in str(raised.value)


async def test_wait_polling_gives_up_after_its_timeout(tmp_path: Path) -> None:
    with pytest.raises(TimeoutError, match="not polling"):
        await services.wait_polling(tmp_path / "never.log", timeout=0.1)


def test_stop_process_kills_a_process_that_ignores_the_signal() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('ready', flush=True)\n"
            "time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    services.stop_process(proc, signal.SIGTERM, timeout=0.2)
    assert proc.returncode == -signal.SIGKILL
