"""Shared harness for the benchmarks in this folder.

`run_bench(name, main)` starts an isolated stack for one run:

- PostgreSQL (pgserver) and the Temporal dev server (headless) in a fresh
  temporary folder, or the services named by REACTOR_DATABASE_URL /
  REACTOR_TEMPORAL_ADDRESS when those are set;
- a fresh database with the migrations applied, and a fresh task queue;
- one reactor worker as a separate process (`python worker.py`), whose
  resident memory (children included) a background thread samples every 50 ms.
  It runs from a copy of reactor/, workflows/, activities/ and worker.py taken
  when the run starts (see `snapshot_code`), so edits to the tree during a run
  cannot reach it; the copy's fingerprint is in every JSON result;
- a Reactor built with ReactorBuilder on that database and task queue.

Everything is stopped at the end, also on Ctrl-C. Set BENCH_KEEP_STATE=1 to
keep the temporary folder (worker log, PostgreSQL and Temporal state), and
BENCH_PROFILE_WORKER=/path/stacks.txt to record the worker with py-spy
(collapsed stacks) for the whole run, at BENCH_PROFILE_RATE samples/s (100),
with BENCH_PROFILE_ARGS added to py-spy's command line. `--gil` there keeps
only samples that hold the GIL: py-spy counts a thread that is runnable but
not running (preempted after a send that woke PostgreSQL, or waiting to take
the GIL back) as busy, and such samples then pile up on
`_SelectorSocketTransport.write` (22% of the worker in phase b without
`--gil`, none with it).
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import hashlib
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import psutil  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from reactor.api.builder import ReactorBuilder  # noqa: E402
from reactor.api.reactor import Reactor  # noqa: E402
from reactor.models import BUILTIN_MODELS  # noqa: E402
from reactor.runtime.embedded import EmbeddedPostgres, EmbeddedTemporal  # noqa: E402
from reactor.storage.migrate import migrate  # noqa: E402

T = TypeVar("T")

# Tables go to stdout; progress goes to stderr so `--json | tail -1` is clean.
out = Console(width=140)
log = Console(stderr=True, highlight=False)

WORKER_READY = "worker polling"


# -- statistics ----------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """sorted[floor(n * p / 100)], clamped to the last element."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(math.floor(len(ordered) * p / 100), len(ordered) - 1)]


@dataclass(frozen=True)
class Summary:
    n: int
    p50: float
    p95: float
    p99: float
    mean: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        return cls(
            n=len(values),
            p50=percentile(values, 50),
            p95=percentile(values, 95),
            p99=percentile(values, 99),
            mean=sum(values) / len(values) if values else math.nan,
            max=max(values) if values else math.nan,
        )

    def scaled(self, factor: float) -> dict[str, float | int]:
        """As a dict, every time multiplied by `factor` (1000: seconds -> ms)."""
        return {
            "n": self.n,
            "p50": self.p50 * factor,
            "p95": self.p95 * factor,
            "p99": self.p99 * factor,
            "mean": self.mean * factor,
            "max": self.max * factor,
        }


def mb(n_bytes: float) -> float:
    return n_bytes / (1024 * 1024)


# -- process sampling ----------------------------------------------------------


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def tree_rss(pid: int) -> int:
    total = 0
    for proc in _tree(pid):
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


def tree_cpu(pid: int, *, children: bool = True) -> float:
    """CPU seconds (user + system) of a process and its live children, plus
    its reaped children (PostgreSQL backends that already exited). With
    `children=False`, the process alone."""
    total = 0.0
    procs = _tree(pid) if children else _tree(pid)[:1]
    for i, proc in enumerate(procs):
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
        if i == 0 and children:
            total += t.children_user + t.children_system
    return total


class RssSampler:
    """Samples the resident set of a process tree every `interval` seconds in
    a background thread. `peak` is over the whole run; `mark()` starts a new
    window whose peak is `window_peak`."""

    def __init__(self, pid: int, interval: float = 0.05):
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.window_peak = 0
        self.last = 0
        self.samples = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    def mark(self) -> None:
        with self._lock:
            self.window_peak = self.last

    def _run(self) -> None:
        # Listing children scans /proc; do it once a second, not every sample.
        procs: list[psutil.Process] = []
        tick = 0
        while not self._stop.is_set():
            if tick % 20 == 0:
                procs = _tree(self.pid)
            tick += 1
            rss = 0
            for proc in procs:
                try:
                    rss += proc.memory_info().rss
                except psutil.Error:
                    pass
            if rss:
                with self._lock:
                    self.last = rss
                    self.samples += 1
                    self.peak = max(self.peak, rss)
                    self.window_peak = max(self.window_peak, rss)
            self._stop.wait(self.interval)


@dataclass
class CpuMeter:
    """CPU seconds spent by each part of the stack between `start()` and
    `stop()`: the worker, the Temporal dev server, PostgreSQL (process trees)
    and this process alone (the dev server and PostgreSQL may be its children)."""

    pids: dict[str, int]
    alone: frozenset[str] = frozenset({"bench"})
    _start: dict[str, float] = field(default_factory=dict)

    def snapshot(self) -> dict[str, float]:
        return {
            name: tree_cpu(pid, children=name not in self.alone) for name, pid in self.pids.items()
        }

    _system: Any = None
    system: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self._start = self.snapshot()
        self._system = psutil.cpu_times()

    def stop(self) -> dict[str, float]:
        """Per process tree; machine-wide busy and iowait percentages (of all
        cores) land in `system`."""
        now = self.snapshot()
        end = psutil.cpu_times()
        if self._system is not None:
            delta = {k: getattr(end, k) - getattr(self._system, k) for k in end._fields}
            total = sum(delta.values()) or 1.0
            idle = delta.get("idle", 0.0) + delta.get("iowait", 0.0)
            tracked = sum(now[name] - self._start.get(name, 0.0) for name in now)
            self.system = {
                "busy_pct": 100 * (total - idle) / total,
                "iowait_pct": 100 * delta.get("iowait", 0.0) / total,
                # CPU seconds nobody in the stack accounts for: other
                # processes on the machine (a shared box), kernel threads.
                "other_cpu_s": max(0.0, total - idle - tracked),
            }
        return {name: now[name] - self._start.get(name, 0.0) for name in now}


# -- the stack -----------------------------------------------------------------


@dataclass
class BenchStack:
    name: str
    folder: Path
    server_url: str  # the PostgreSQL server's maintenance database
    database_url: str  # the fresh database of this run
    temporal_address: str
    task_queue: str
    reactor: Reactor
    worker: subprocess.Popen[bytes] | None
    worker_log: Path
    rss: RssSampler | None
    cpu: CpuMeter
    embedded_postgres: bool
    embedded_temporal: bool
    worker_idle_rss: int = 0

    async def new_reactor(self) -> Reactor:
        """Another Reactor (new pool, new Temporal client) on the same stack."""
        return await build_reactor(self.database_url, self.temporal_address, self.task_queue)


async def build_reactor(database_url: str, temporal_address: str, task_queue: str) -> Reactor:
    return await (
        ReactorBuilder()
        .with_document_models(BUILTIN_MODELS)
        .with_database(database_url)
        .with_temporal(temporal_address, task_queue=task_queue)
        .with_migration_strategy("none")
        .build()
    )


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def _postmaster_pid(pg_folder: Path) -> int | None:
    try:
        return int((pg_folder / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


# The worker runs from a copy of these, taken when the run starts.
CODE = ("reactor", "workflows", "activities", "worker.py")
_CODE: dict[str, Any] = {}


def code_fingerprint(root: Path) -> str:
    """sha256 over the library's source files (paths and contents)."""
    digest = hashlib.sha256()
    for name in CODE:
        base = root / name
        files = [base] if base.is_file() else sorted(base.rglob("*"))
        for f in files:
            if f.is_file() and "__pycache__" not in f.parts and f.suffix in (".py", ".sql"):
                digest.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def snapshot_code(folder: Path) -> Path:
    """Copies the library for the worker process. The workflow sandbox
    re-imports workflow modules from disk for every new workflow instance
    (and for every query on a closed workflow), so edits made while a run is
    in flight would otherwise reach the worker mid-run (a nondeterminism
    error at best). Other people edit this tree concurrently."""
    code = folder / "code"
    code.mkdir(parents=True)
    for name in CODE:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, code / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, code / name)
    # Byte-compile it: with PYTHONDONTWRITEBYTECODE=1 (set here, and in the
    # Dockerfile) and no .pyc, the sandbox compiles workflows/batch.py from
    # source for every new workflow instance.
    compileall.compile_dir(code, quiet=1)
    _CODE["fingerprint"] = code_fingerprint(code)
    _CODE["snapshot_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return code


def code_info() -> dict[str, Any]:
    """Which library code the run measured; `changed_during_run` when the
    tree was edited meanwhile (the worker still ran the snapshot)."""
    if "fingerprint" in _CODE:
        now = code_fingerprint(ROOT)
        _CODE["changed_during_run"] = now != _CODE["fingerprint"]
        if _CODE["changed_during_run"]:
            log.print(
                "[yellow]note: the library was edited during the run; the worker ran the "
                f"snapshot {_CODE['fingerprint']} taken at {_CODE['snapshot_at']}[/]"
            )
    return dict(_CODE)


def _spawn_worker(
    stack_folder: Path,
    code: Path,
    database_url: str,
    address: str,
    task_queue: str,
    log_path: Path,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        REACTOR_DATABASE_URL=database_url,
        REACTOR_TEMPORAL_ADDRESS=address,
        REACTOR_TASK_QUEUE=task_queue,
        REACTOR_HOME=str(stack_folder / "home"),
        PYTHONPATH=str(code),
        **(extra_env or {}),
    )
    logf = open(log_path, "ab")  # noqa: SIM115 - the child owns it
    try:
        # Own session: Ctrl-C in the terminal reaches only us; we stop it.
        return subprocess.Popen(
            [sys.executable, str(code / "worker.py")],
            env=env,
            stdout=logf,
            stderr=subprocess.STDOUT,
            cwd=str(stack_folder),
            start_new_session=True,
        )
    finally:
        logf.close()


async def _wait_worker_ready(
    proc: subprocess.Popen[bytes], log_path: Path, timeout: float = 60.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = await asyncio.to_thread(_read_text, log_path)
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}:\n{text[-3000:]}")
        if WORKER_READY in text:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"worker not polling after {timeout}s; see {log_path}")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _stop_process(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30.0
) -> None:
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(sig)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _start_profiler(pid: int, output: str) -> subprocess.Popen[bytes] | None:
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        found = shutil.which("py-spy")
        if found is None:
            log.print("[yellow]BENCH_PROFILE_WORKER set but py-spy is not installed[/]")
            return None
        py_spy = Path(found)
    log.print(f"profiling worker {pid} with py-spy -> {output}")
    return subprocess.Popen(
        [
            str(py_spy),
            "record",
            "--pid",
            str(pid),
            "--rate",
            os.environ.get("BENCH_PROFILE_RATE", "100"),
            "--format",
            "raw",
            "--output",
            output,
            "--nonblocking",
            *os.environ.get("BENCH_PROFILE_ARGS", "").split(),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


async def _session(
    name: str,
    folder: Path,
    code: Path,
    server_url: str,
    address: str,
    pids: dict[str, int],
    embedded_pg: bool,
    embedded_temporal: bool,
    main: Callable[[BenchStack], Awaitable[T]],
) -> T:
    dbname = f"bench_{name}_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{dbname}"')
    finally:
        await conn.close()
    database_url = with_database(server_url, dbname)
    try:
        conn = await asyncpg.connect(database_url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        task_queue = f"bench-{name}-{uuid.uuid4().hex[:8]}"
        worker_log = folder / "worker.log"
        worker = _spawn_worker(folder, code, database_url, address, task_queue, worker_log)
        rss = RssSampler(worker.pid).start()
        profiler: subprocess.Popen[bytes] | None = None
        reactor: Reactor | None = None
        try:
            reactor = await build_reactor(database_url, address, task_queue)
            await _wait_worker_ready(worker, worker_log)
            stack = BenchStack(
                name=name,
                folder=folder,
                server_url=server_url,
                database_url=database_url,
                temporal_address=address,
                task_queue=task_queue,
                reactor=reactor,
                worker=worker,
                worker_log=worker_log,
                rss=rss,
                cpu=CpuMeter({"worker": worker.pid, **pids, "bench": os.getpid()}),
                embedded_postgres=embedded_pg,
                embedded_temporal=embedded_temporal,
                worker_idle_rss=tree_rss(worker.pid),
            )
            if os.environ.get("BENCH_PROFILE_WORKER"):
                profiler = _start_profiler(worker.pid, os.environ["BENCH_PROFILE_WORKER"])
            return await main(stack)
        finally:
            if profiler is not None:
                await asyncio.to_thread(_stop_process, profiler, signal.SIGINT, 60.0)
            if reactor is not None:
                await reactor.close()
            await asyncio.to_thread(_stop_process, worker)
            rss.stop()
    finally:
        if not embedded_pg and not os.environ.get("BENCH_KEEP_STATE"):
            conn = await asyncpg.connect(server_url)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            finally:
                await conn.close()


def run_bench(name: str, main: Callable[[BenchStack], Awaitable[T]]) -> T:
    """Starts the stack, runs `main(stack)`, stops everything (also on Ctrl-C)."""
    folder = Path(tempfile.mkdtemp(prefix=f"rxbench-{name}-"))
    pg: EmbeddedPostgres | None = None
    temporal: EmbeddedTemporal | None = None
    pids: dict[str, int] = {}
    try:
        code = snapshot_code(folder)
        background_load()
        server_url = os.environ.get("REACTOR_DATABASE_URL", "")
        if not server_url:
            log.print("starting PostgreSQL (pgserver)…")
            pg = EmbeddedPostgres(folder / "pg")
            server_url = pg.start()
            pm = _postmaster_pid(folder / "pg")
            if pm is not None:
                pids["postgres"] = pm
        address = os.environ.get("REACTOR_TEMPORAL_ADDRESS", "")
        if not address:
            log.print("starting the Temporal dev server (headless)…")
            temporal = EmbeddedTemporal(folder / "temporal", ui=False)
            address = temporal.start()
            if temporal.pid is not None:
                pids["temporal"] = temporal.pid
        return asyncio.run(
            _session(
                name,
                folder,
                code,
                server_url,
                address,
                pids,
                pg is not None,
                temporal is not None,
                main,
            )
        )
    finally:
        if temporal is not None:
            temporal.stop()
        if pg is not None:
            pg.stop()
        if os.environ.get("BENCH_KEEP_STATE"):
            log.print(f"state kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


# -- command line and output ---------------------------------------------------


def parse_args(
    description: str, extra: Callable[[argparse.ArgumentParser], None] | None = None
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--json", action="store_true", help="end with one JSON line of results")
    if extra is not None:
        extra(parser)
    return parser.parse_args()


_BACKGROUND: dict[str, float] = {}


def background_load(seconds: float = 2.0) -> float:
    """Machine-wide busy % over `seconds`, measured before the stack starts:
    other processes competing for the cores skew every number."""
    before = psutil.cpu_times()
    time.sleep(seconds)
    after = psutil.cpu_times()
    delta = {k: getattr(after, k) - getattr(before, k) for k in after._fields}
    total = sum(delta.values()) or 1.0
    busy = 100 * (total - delta.get("idle", 0.0) - delta.get("iowait", 0.0)) / total
    _BACKGROUND["busy_pct_before_start"] = busy
    _BACKGROUND["load_avg_1m_before_start"] = os.getloadavg()[0]
    if busy > 15:
        log.print(
            f"[yellow]warning: the machine is {busy:.0f}% busy before the benchmark started; "
            "numbers will be skewed[/]"
        )
    return busy


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        **_BACKGROUND,
    }


async def server_info(stack: BenchStack) -> dict[str, Any]:
    """PostgreSQL version and the settings that matter for write latency."""
    conn = await asyncpg.connect(stack.database_url)
    try:
        info: dict[str, Any] = {"postgres": await conn.fetchval("SHOW server_version")}
        for setting in ("fsync", "synchronous_commit", "shared_buffers"):
            info[setting] = await conn.fetchval(f"SHOW {setting}")
    finally:
        await conn.close()
    import temporalio

    info["temporalio"] = getattr(temporalio, "__version__", "?")
    info["temporal"] = "embedded dev server" if stack.embedded_temporal else stack.temporal_address
    return info


def table(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], caption: str | None = None
) -> Table:
    t = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    for i, col in enumerate(columns):
        t.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        t.add_row(*(fmt(v) for v in row))
    return t


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def emit_json(payload: dict[str, Any]) -> None:
    """The final line of output: one JSON object."""
    sys.stdout.flush()
    print(json.dumps(_clean(payload), separators=(",", ":"), allow_nan=False), flush=True)


def _clean(value: Any) -> Any:
    """NaN -> null, paths -> strings, tuples -> lists, recursively."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else round(value, 6)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def main_guard(fn: Callable[[], None]) -> None:
    """Runs a benchmark's main; Ctrl-C exits 130 after the stack stopped."""
    try:
        fn()
    except KeyboardInterrupt:
        log.print("[red]interrupted; the stack was stopped[/]")
        sys.exit(130)
