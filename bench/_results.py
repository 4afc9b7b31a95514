"""Where a benchmark's results go: tables to stdout, progress to stderr (so
`--json | tail -1` is clean), and a last line of JSON that names the
machine, the servers and the commit it measured."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from _tables import Table, to_rich
from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent

out = Console(width=140)
log = Console(stderr=True, highlight=False)

# How busy the machine was before the stack started (bench/_metering.py).
_background: dict[str, float] = {}


def show(tables: Iterable[Table]) -> None:
    for table in tables:
        out.print(to_rich(table))


def note_background(load: dict[str, float]) -> None:
    _background.update(load)
    busy = load["busy_pct_before_start"]
    if busy > 15:
        log.print(
            f"[yellow]warning: the machine is {busy:.0f}% busy before the benchmark started; "
            "numbers will be skewed[/]"
        )


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        **_background,
    }


def code_info() -> dict[str, str]:
    """The commit the tree was at ({} outside a git checkout); the worker runs
    the tree itself, so edits not yet committed are measured too."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return {"commit": done.stdout.strip()} if done.returncode == 0 else {}


async def server_info(database_url: str, temporal: str) -> dict[str, Any]:
    """PostgreSQL version and the settings that matter for write latency."""
    conn = await asyncpg.connect(database_url)
    try:
        info: dict[str, Any] = {"postgres": await conn.fetchval("SHOW server_version")}
        for setting in ("fsync", "synchronous_commit", "shared_buffers"):
            info[setting] = await conn.fetchval(f"SHOW {setting}")
    finally:
        await conn.close()
    import temporalio

    info["temporalio"] = getattr(temporalio, "__version__", "?")
    info["temporal"] = temporal
    return info


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
