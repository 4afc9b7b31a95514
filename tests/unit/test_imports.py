"""Every top-level module imports on its own, in a fresh interpreter.

The workflows import the activities' inputs, the activities import the
reactor's modules, and the reactor's API imports the workflows: whichever a
process (a worker, a test, the sandbox) imports first must not meet a
partially initialized module on the way."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def top_level_modules() -> list[str]:
    """The project's layout: the `reactor` package, `worker.py`, and each
    module of the `workflows` and `activities` packages."""
    names = ["reactor", "worker"]
    for package in ("workflows", "activities"):
        names.append(package)
        names += [
            f"{package}.{path.stem}"
            for path in sorted((ROOT / package).glob("*.py"))
            if path.stem != "__init__"
        ]
    return names


def test_the_layout_is_found() -> None:
    modules = top_level_modules()
    assert {"workflows.batch", "activities.batch", "workflows.reaction"} <= set(modules)


@pytest.mark.parametrize("module", top_level_modules())
def test_a_module_imports_first(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_the_public_names_load_on_use() -> None:
    """`reactor` exports its API without importing it up front."""
    code = (
        "import sys, reactor\n"
        "assert 'reactor.api.reactor' not in sys.modules\n"
        "from reactor import Reactor, ReactorBuilder, JobStatus\n"
        "assert Reactor.__module__ == 'reactor.api.reactor'\n"
        "assert set(reactor.__all__) <= set(dir(reactor))\n"
        "assert all(getattr(reactor, name) is not None for name in reactor.__all__)\n"
        "assert not hasattr(reactor, 'NoSuchName')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
