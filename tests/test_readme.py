"""The README's examples run as written (against the test's services)."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from reactor.models import BUILTIN_MODELS
from tests.conftest import ROOT, Stack, worker_env
from tests.support.workers import worker_module

BLOCK = re.compile(
    r"<!-- (file: (?P<file>\S+)|run(: (?P<standalone>standalone|history|upgrade))?) -->\n"
    r"```python\n(?P<code>.*?)```",
    re.S,
)


def readme_blocks() -> tuple[dict[str, str], list[str], list[str]]:
    """(files, examples needing a worker, standalone examples)"""
    files: dict[str, str] = {}
    runs: list[str] = []
    standalone: list[str] = []
    for m in BLOCK.finditer((ROOT / "README.md").read_text()):
        if m.group("file"):
            files[m.group("file")] = m.group("code")
        elif m.group("standalone") == "standalone":
            standalone.append(m.group("code"))
        elif m.group("standalone") is None:
            runs.append(m.group("code"))
    return files, runs, standalone


def blocks_of(kind: str) -> list[str]:
    """The examples marked `<!-- run: KIND -->`: standalone, each with its own
    in-process worker."""
    return [
        m.group("code")
        for m in BLOCK.finditer((ROOT / "README.md").read_text())
        if m.group("standalone") == kind
    ]


def test_readme_has_the_two_commands_and_ci_runs_the_test_one() -> None:
    text = (ROOT / "README.md").read_text()
    bash_blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    assert bash_blocks[0].split("#")[0].strip() == "./bin/reactor dev --demo"
    assert bash_blocks[1].split("#")[0].strip() == "./bin/test"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "exec ./bin/test" in ci


async def test_readme_model_and_api_example_run_as_written(
    stack: Stack,
    database_url: str,
    task_queue: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    files, runs, _ = readme_blocks()
    assert set(files) == {"counter.py"} and len(runs) == 1
    for name, code in files.items():
        (tmp_path / name).write_text(code)
    (tmp_path / "example.py").write_text(runs[0])
    monkeypatch.syspath_prepend(str(tmp_path))
    import counter  # the README's model, for the in-process worker

    module = await worker_module(
        database_url, stack.temporal_address, task_queue, models=[*BUILTIN_MODELS, counter]
    )
    async with module.create_worker():
        env = worker_env(stack, database_url, task_queue)
        env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(tmp_path / "example.py"),
            env=env,
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    await module.close()
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert lines[0].startswith("READ_READY")
    assert "'value': 5" in lines[1]
    assert lines[2].startswith("a READ_READY None")
    assert lines[3].startswith("b FAILED") and "must be positive" in lines[3]
    assert "(0, 'INCREMENT'" in lines[4] and "(1, 'INCREMENT'" in lines[4]


async def test_readme_client_example_runs_as_written(
    stack: Stack, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    _, _, standalone = readme_blocks()
    assert len(standalone) == 1
    (tmp_path / "client_example.py").write_text(standalone[0])
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(tmp_path / "client_example.py"),
        env=worker_env(stack, database_url, task_queue),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert lines[0] == "{'total': 1, 'checked': 0, 'unchecked': 1}"
    assert "'lists': 1" in lines[1] and "'total': 1" in lines[1]
    assert lines[2] == "['created', 'updated']"


async def test_readme_history_example_runs_as_written(
    stack: Stack, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    lines = await run_example("history", stack, database_url, task_queue, tmp_path)
    assert lines[0] == "['dishes']"
    assert lines[1] == "['dishes', 'laundry']"
    assert lines[2] == (
        "[(0, 'ADD_TODO_ITEM', 0), (1, 'ADD_TODO_ITEM', 0), (2, 'NOOP', 1), (3, 'ADD_TODO_ITEM', 0)]"
    )
    assert lines[3] == "True"


async def test_readme_upgrade_example_runs_as_written(
    stack: Stack, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    files, _, _ = readme_blocks()
    (tmp_path / "counter.py").write_text(files["counter.py"])
    lines = await run_example("upgrade", stack, database_url, task_queue, tmp_path)
    assert lines == ["READ_READY", "2 {'value': 50}", "True"], lines


async def run_example(
    kind: str, stack: Stack, database_url: str, task_queue: str, folder: Path
) -> list[str]:
    """Runs the README's one `<!-- run: KIND -->` example; its output lines."""
    blocks = blocks_of(kind)
    assert len(blocks) == 1
    (folder / f"{kind}_example.py").write_text(blocks[0])
    env = worker_env(stack, database_url, task_queue)
    env["PYTHONPATH"] = os.pathsep.join([str(folder), env["PYTHONPATH"]])
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(folder / f"{kind}_example.py"),
        env=env,
        cwd=folder,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    return out.decode().splitlines()
