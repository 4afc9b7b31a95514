"""Schemathesis against the live API's /openapi.json: generated requests
for every operation (boundary values, random ones and sequences, valid and
invalid) find no 5xx. Bounded by examples per operation and a time budget
per run."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx
import pytest

from reactor.api.reactor import Reactor
from tests.support.http_api import create, served

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
MAX_EXAMPLES = 12
MAX_TIME_S = 25
# Schemathesis's boundary-value phase on the batch body trips a CPython 3.11
# parser bug inside Hypothesis ("AST constructor recursion depth mismatch",
# a SystemError in the tool, not an answer of ours): that operation is
# fuzzed by the other phases only.
COVERAGE_SKIPS = ("--exclude-operation-id-regex", "submit_batch")


async def schemathesis(
    api: httpx.AsyncClient, folder: Path, phases: str, *extra: str
) -> tuple[int, str]:
    """Runs in `folder`: schemathesis keeps its state in the working directory."""
    proc = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS),
        "run",
        str(api.base_url.join("/openapi.json")),
        "--phases",
        phases,
        "--checks",
        "not_a_server_error",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--max-time",
        str(MAX_TIME_S),
        "--workers",
        "2",
        "--seed",
        "26",
        "--generation-database",
        "none",
        "--request-timeout",
        "30",
        "--no-color",
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=folder,
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


@pytest.mark.usefixtures("worker")
async def test_generated_requests_for_every_operation_find_no_server_error(
    reactor: Reactor, tmp_path: Path
) -> None:
    async with served(reactor) as api:
        seeded = await api.post(
            "/v1/batches", params={"wait": "true"}, json={"jobs": [create("doc")]}
        )
        assert seeded.status_code == 200, seeded.text
        code, report = await schemathesis(api, tmp_path, "fuzzing,stateful")
        assert code == 0, report
        assert "Tested: 14" in report and "passed" in report, report
        code, report = await schemathesis(api, tmp_path, "coverage", *COVERAGE_SKIPS)
        assert code == 0, report
