"""The `reactor` command as a user runs it: a separate process, its exit
code and both of its streams."""

from __future__ import annotations

import asyncio
import sys

REACTOR = [sys.executable, "-m", "reactor.cli.main"]


async def run_reactor(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """`reactor ARGS` with `env`; (exit code, stdout, stderr). Bounded: a
    command that hangs fails the test instead of holding the suite."""
    proc = await asyncio.create_subprocess_exec(
        *REACTOR,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
