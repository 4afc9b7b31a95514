"""The `reactor` command line is a contract: exit codes, JSON shapes, and
`reactor dev` bringing the whole stack up and down."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, Stack, worker_env
from tests.support.rows import row_counts

pytestmark = pytest.mark.usefixtures("worker")

REACTOR = [sys.executable, "-m", "reactor.cli.main"]


async def cli(
    env: dict[str, str], *args: str | bytes, stdin: str | None = None
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *REACTOR,
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode(errors="backslashreplace")


def one_line_error(out: str, err: str) -> str:
    """The single line a refused command prints, after checking it is one."""
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def env(stack: Stack, database_url: str, task_queue: str) -> dict[str, str]:
    return worker_env(stack, database_url, task_queue)


def batch(tmp_path: Path, jobs: list[dict[str, Any]]) -> str:
    path = tmp_path / "batch.json"
    path.write_text(json.dumps({"jobs": jobs}))
    return str(path)


CREATE = {
    "key": "create",
    "document_id": "cli-list",
    "scope": "document",
    "actions": [
        {
            "type": "CREATE_DOCUMENT",
            "input": {"document_type": "powerhouse/todo-list", "slug": "groceries"},
        }
    ],
}


async def test_submit_wait_json_then_status_get_ops_find(
    env: dict[str, str], tmp_path: Path
) -> None:
    jobs = [
        CREATE,
        {
            "key": "add",
            "document_id": "cli-list",
            "depends_on": ["create"],
            "actions": [{"type": "ADD_TODO_ITEM", "input": {"id": "1", "text": "milk"}}],
        },
    ]
    rc, out, err = await cli(env, "submit", batch(tmp_path, jobs), "--wait", "--json")
    assert rc == 0, err
    result = json.loads(out)
    assert set(result["jobs"]) == {"create", "add"}
    add = result["jobs"]["add"]
    assert add["status"] == "READ_READY" and add["error"] is None
    assert add["consistency_token"]["coordinates"] == [
        {"document_id": "cli-list", "scope": "global", "branch": "main", "operation_index": 0}
    ]

    rc, out, _ = await cli(env, "status", add["id"], "--json")
    assert rc == 0 and json.loads(out)["status"] == "READ_READY"

    rc, out, _ = await cli(env, "get", "groceries", "--json")
    doc = json.loads(out)
    assert doc["header"]["id"] == "cli-list"
    assert doc["state"]["global"]["items"] == [{"id": "1", "text": "milk", "checked": False}]

    rc, out, _ = await cli(env, "ops", "cli-list", "--scope", "global", "--json")
    ops = json.loads(out)
    assert [(o["index"], o["action"]["type"]) for o in ops] == [(0, "ADD_TODO_ITEM")]

    rc, out, _ = await cli(env, "find", "--type", "powerhouse/todo-list", "--json")
    assert [d["header"]["id"] for d in json.loads(out)] == ["cli-list"]


async def test_submit_without_wait_prints_job_ids_at_once(
    env: dict[str, str], tmp_path: Path
) -> None:
    rc, out, err = await cli(env, "submit", batch(tmp_path, [CREATE]), "--json")
    assert rc == 0, err
    job = json.loads(out)["jobs"]["create"]
    assert job["status"] == "PENDING"
    assert job["id"].startswith(json.loads(out)["batch_id"] + ":")


async def test_submit_exit_status_is_1_when_a_job_fails(
    env: dict[str, str], tmp_path: Path
) -> None:
    jobs = [
        CREATE,
        {
            "key": "bad",
            "document_id": "cli-list",
            "depends_on": ["create"],
            "actions": [{"type": "DELETE_TODO_ITEM", "input": {"id": "missing"}}],
        },
        {
            "key": "dependent",
            "document_id": "cli-list",
            "depends_on": ["bad"],
            "actions": [{"type": "ADD_TODO_ITEM", "input": {"id": "2", "text": "x"}}],
        },
    ]
    rc, out, _ = await cli(env, "submit", batch(tmp_path, jobs), "--wait", "--json")
    assert rc == 1
    result = json.loads(out)["jobs"]
    assert result["create"]["status"] == "READ_READY"
    assert result["bad"]["status"] == "FAILED" and "missing" in result["bad"]["error"]["message"]
    assert result["dependent"]["error"]["dependency"] == "bad"


@pytest.mark.parametrize(
    ("jobs", "expected"),
    [
        ([CREATE, {**CREATE, "document_id": "other"}], "job 'create': key: duplicate job key"),
        (
            [{**CREATE, "depends_on": ["ghost"]}],
            "job 'create': depends_on: unknown dependency 'ghost'",
        ),
        (
            [
                {
                    "key": "x",
                    "document_id": "nope",
                    "actions": [{"type": "ADD_TODO_ITEM", "input": {"id": "1", "text": "a"}}],
                }
            ],
            "job 'x': document_id: document 'nope' does not exist",
        ),
        (
            [
                CREATE,
                {
                    "key": "y",
                    "document_id": "cli-list",
                    "actions": [{"type": "ADD_TODO_ITEM", "input": {"id": "1"}}],
                },
            ],
            "job 'y': actions[0].input.text: ADD_TODO_ITEM: Field required",
        ),
    ],
)
async def test_rejected_request_exits_2_naming_job_and_field_and_starts_nothing(
    env: dict[str, str],
    tmp_path: Path,
    database_url: str,
    jobs: list[dict[str, Any]],
    expected: str,
) -> None:
    before = await row_counts(database_url)
    rc, _, err = await cli(env, "submit", batch(tmp_path, jobs), "--wait")
    assert rc == 2
    assert expected in " ".join(err.split())
    assert await row_counts(database_url) == before


def deep_json(depth: int) -> bytes:
    return b'{"jobs": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"jobs": [{"key": "caf\xe9"}]}', "is not UTF-8: byte 0xe9 at offset 22"),
        (b"\xff\xfe{}", "is not UTF-8: byte 0xff at offset 0"),
        (b"jobs: [1, 2]", "is not valid JSON: Expecting value at line 1 column 1"),
        (b"", "is not valid JSON"),
        (deep_json(100_000), "JSON nested too deeply"),
        (b"[1, 2]", "expected a JSON object with a 'jobs' list"),
        (
            json.dumps({"jobs": [{**CREATE, "document_id": "bad\u0000id"}]}).encode(),
            "job 'create': document_id: the text contains a NUL character",
        ),
        (
            json.dumps(
                {"jobs": [CREATE, {**CREATE, "key": "k2", "document_id": "\ud800"}]}
            ).encode(),
            "job 'k2': document_id: the text contains a lone surrogate",
        ),
        (
            json.dumps(
                {
                    "jobs": [
                        {
                            **CREATE,
                            "actions": [
                                {
                                    "type": "CREATE_DOCUMENT",
                                    "input": {"document_type": "x", "name": [[[[1]]]] * 1},
                                    "context": {"n": 2**64},
                                }
                            ],
                        }
                    ]
                }
            ).encode(),
            "job 'create': actions[0].context.n: the integer 18446744073709551616 is out of range",
        ),
        (
            b'{"jobs": [{"key": "n", "document_id": "d", "actions": '
            b'[{"type": "T", "context": {"x": NaN}}]}]}',
            "job 'n': actions[0].context.x: nan is not a finite number",
        ),
    ],
    ids=[
        "latin-1",
        "utf-16 bom",
        "not json",
        "empty",
        "100000 deep",
        "not an object",
        "nul",
        "lone surrogate",
        "integer past 64 bits",
        "NaN",
    ],
)
async def test_a_bad_batch_file_is_one_line_and_exit_2(
    env: dict[str, str], tmp_path: Path, database_url: str, content: bytes, expected: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    before = await row_counts(database_url)
    rc, out, err = await cli(env, "submit", str(path))
    assert rc == 2, err
    assert "Traceback" not in err + out
    assert len(err.strip().splitlines()) == 1, err
    assert expected in err
    assert await row_counts(database_url) == before


async def test_limits_come_from_the_environment(
    env: dict[str, str], tmp_path: Path, database_url: str
) -> None:
    before = await row_counts(database_url)
    jobs = [CREATE, {**CREATE, "key": "other", "document_id": "other"}]
    rc, _, err = await cli(
        {**env, "REACTOR_MAX_JOBS_PER_BATCH": "1"}, "submit", batch(tmp_path, jobs)
    )
    assert rc == 2
    assert "the number of jobs is 2, over the limit of 1 (REACTOR_MAX_JOBS_PER_BATCH)" in err
    rc, _, err = await cli(
        {**env, "REACTOR_MAX_REQUEST_BYTES": "100"}, "submit", batch(tmp_path, jobs)
    )
    assert rc == 2
    size = (tmp_path / "batch.json").stat().st_size
    assert f"is {size:,} bytes, over the limit of 100 bytes (REACTOR_MAX_REQUEST_BYTES)" in err
    assert await row_counts(database_url) == before


async def test_an_argument_that_is_not_utf8_exits_2(env: dict[str, str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        *REACTOR,
        "get",
        b"doc-\xff",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 2
    assert "Traceback" not in (err + out).decode()
    assert "id_or_slug: the text contains a lone surrogate" in err.decode()


@pytest.mark.parametrize("job_id", ["x", "batch:", ":3", "batch:-1", "batch:x"])
async def test_status_of_something_that_is_not_a_job_id_exits_2(
    env: dict[str, str], job_id: str
) -> None:
    rc, out, err = await cli(env, "status", job_id)
    assert rc == 2
    assert "Traceback" not in err + out
    assert f"job_id: malformed job id {job_id!r} (expected '<batch_id>:<index>'" in err


async def test_status_of_a_job_id_with_thousands_of_digits_exits_2(env: dict[str, str]) -> None:
    """Past Python's int() digit limit (4300) the conversion itself raises."""
    rc, out, err = await cli(env, "status", "b:" + "7" * 5000)
    assert rc == 2
    assert "Traceback" not in err + out
    assert "job_id: malformed job id: its index has 5000 digits, over the limit of 18" in err


async def test_malformed_json_file_is_rejected_with_its_position(
    env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"jobs": [\n  {"key": }\n]}')
    rc, _, err = await cli(env, "submit", str(path))
    assert rc == 2
    assert "not valid JSON" in err and "line 2" in err


async def test_cli_without_a_running_stack_says_how_to_start_one(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REACTOR_")}
    env["REACTOR_HOME"] = str(tmp_path / "nowhere")
    env["PYTHONPATH"] = str(ROOT)
    rc, _, err = await cli(env, "get", "x")
    assert rc == 3
    assert "reactor dev" in err and "REACTOR_DATABASE_URL" in err


def dev_env(folder: Path, **extra: str) -> dict[str, str]:
    """The environment of a `reactor dev` of its own in `folder`: none of the
    test stack's REACTOR_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REACTOR_")}
    env.update(REACTOR_HOME=str(folder / ".reactor"), PYTHONPATH=str(ROOT), **extra)
    return env


def start_dev(folder: Path, env: dict[str, str], *args: str, stderr: int) -> subprocess.Popen[str]:
    """`reactor dev` without the UI in `folder`; its ready line is on stdout."""
    return subprocess.Popen(
        [*REACTOR, "dev", *args, "--no-ui"],
        env=env,
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )


def test_reactor_dev_demo_starts_everything_and_sigint_stops_it(tmp_path: Path) -> None:
    """README command 1's core: embedded PostgreSQL + Temporal + worker, the
    ready line, the demo batch, and a clean stop on SIGINT."""
    env = dev_env(tmp_path, COLUMNS="200")
    proc = start_dev(tmp_path, env, "--demo", stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        assert ready.startswith("reactor ready temporal=127.0.0.1:"), ready
        assert "database=postgresql://" in ready
        stack = json.loads((tmp_path / ".reactor" / "stack.json").read_text())
        lines: list[str] = []
        while not any("Launch checklist" in line for line in lines[-40:]) or len(lines) < 12:
            line = proc.stdout.readline()
            assert line, "reactor dev exited early: " + "".join(lines)
            lines.append(line)
        output = "".join(lines)
        assert output.count("READ_READY") == 6
        assert "FAILED" not in output
        # The HTTP API serves the same documents: the demo's drive is listed.
        api = re.search(r"api=(http://127\.0\.0\.1:\d+) \(unauthenticated\)", ready)
        assert api, ready
        with urllib.request.urlopen(
            f"{api.group(1)}/v1/documents?type=powerhouse/document-drive"
        ) as r:
            listed = json.loads(r.read())
        assert len(listed["results"]) == 1, listed
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (tmp_path / ".reactor" / "stack.json").exists()
    import psutil

    assert (
        not psutil.pid_exists(stack["temporal_pid"])
        or psutil.Process(stack["temporal_pid"]).status() == psutil.STATUS_ZOMBIE
    )
    pg_pid = (
        int((tmp_path / ".reactor" / "pg" / "postmaster.pid").read_text().split()[0])
        if (tmp_path / ".reactor" / "pg" / "postmaster.pid").exists()
        else None
    )
    assert pg_pid is None, "PostgreSQL still running after SIGINT"


async def test_reactions_lists_blocked_streams_and_unblocks_them(
    env: dict[str, str], database_url: str
) -> None:
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("INSERT INTO reactor_reactions (name) VALUES ('mailer')")
        await conn.execute(
            "INSERT INTO reactor_reaction_streams (name, document_id, head_tx, head_ordinal, attempts, "
            "blocked, last_error) VALUES ('mailer', 'doc-9', '5', 7, 5, true, 'SMTPError: refused')"
        )
    finally:
        await conn.close()
    rc, out, _ = await cli(env, "reactions", "--blocked", "--json")
    assert rc == 0
    [stream] = json.loads(out)
    assert (stream["name"], stream["document_id"], stream["blocked"]) == ("mailer", "doc-9", True)
    assert stream["last_error"] == "SMTPError: refused"
    rc, out, _ = await cli(env, "reactions")
    assert "BLOCKED" in out and "reactions unblock" in " ".join(out.split())
    rc, out, _ = await cli(env, "reactions", "unblock", "mailer", "doc-9")
    assert rc == 0 and "unblocked" in out
    rc, out, err = await cli(env, "reactions", "unblock", "mailer", "doc-9")
    assert rc == 2  # a usage error; 1 is for a job that failed
    assert "mailer / doc-9 is not a blocked stream" in one_line_error(out, err)
    rc, out, _ = await cli(env, "reactions", "--blocked", "--json")
    assert json.loads(out) == []


async def test_status_of_a_job_past_the_end_of_its_batch_exits_2_saying_how_many_it_has(
    env: dict[str, str], tmp_path: Path
) -> None:
    rc, out, err = await cli(
        env, "submit", batch(tmp_path, [{**CREATE, "document_id": "past-end"}]), "--wait", "--json"
    )
    assert rc == 0, err
    batch_id = json.loads(out)["batch_id"]
    for index in ("1", "99999999999"):
        rc, out, err = await cli(env, "status", f"{batch_id}:{index}")
        assert rc == 2
        assert f"job_id: batch {batch_id!r} has no job {index} (it has 1 job)" in one_line_error(
            out, err
        )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("status", "no-such-batch:0"), "job_id: job 'no-such-batch:0' not found"),
        (("get", "no-such-doc"), "no document with id or slug 'no-such-doc'"),
    ],
    ids=["job", "document"],
)
async def test_an_argument_naming_nothing_that_exists_exits_2(
    env: dict[str, str], args: tuple[str, ...], expected: str
) -> None:
    rc, out, err = await cli(env, *args)
    assert rc == 2
    assert expected in one_line_error(out, err)


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (("batches", "--document", b"ab\xff"), "--document"),
        (("read-models", "unblock", b"ab\xff"), "name"),
        (("reactions", "unblock", b"ab\xff", "x"), "name"),
        (("reactions", "unblock", "x", b"ab\xff"), "document_id"),
        (("reactions", "list", b"ab\xff"), "name"),
        (("ops", "doc", "--scope", b"\xed\xa0\x80"), "--scope"),
        (("find", "--type", b"ab\xff"), "--type"),
        (("status", b"b\xff:0"), "job_id"),
    ],
    ids=[
        "batches",
        "read-models",
        "reactions unblock",
        "reactions doc",
        "reactions list",
        "ops surrogate",
        "find",
        "status",
    ],
)
async def test_any_argument_that_is_not_utf8_exits_2_naming_it(
    env: dict[str, str], args: tuple[str | bytes, ...], name: str
) -> None:
    rc, out, err = await cli(env, *args)
    assert rc == 2
    assert f"{name}: the text contains a lone surrogate" in one_line_error(out, err)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("doctor", "--timeout", "nan"), "argument --timeout: nan is not a positive, finite"),
        (("doctor", "--timeout", "inf"), "argument --timeout: inf is not a positive, finite"),
        (("doctor", "--timeout", "0"), "argument --timeout: 0 is not a positive, finite"),
        (("doctor", "--timeout", "-1"), "argument --timeout: -1 is not a positive, finite"),
        (("doctor", "--timeout", "1e300"), "argument --timeout: 1e+300 s is over the limit"),
        (("doctor", "--timeout", "soon"), "argument --timeout: soon is not a number of seconds"),
        (("batches", "--limit", "0"), "argument --limit: 0 is not a positive number"),
        (("batches", "--limit", "-5"), "argument --limit: -5 is not a positive number"),
        (("batches", "--limit", "many"), "argument --limit: many is not a whole number"),
    ],
)
async def test_a_number_option_out_of_range_is_a_usage_error(
    env: dict[str, str], args: tuple[str, ...], expected: str
) -> None:
    rc, out, err = await cli(env, *args)
    assert rc == 2
    assert "Traceback" not in out + err
    assert expected in err
    assert out == ""


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\xff{}", "is not UTF-8: byte 0xff at offset 0"),
        (b"{", "is not valid JSON"),
        (b"[]", "expected a JSON object"),
        (b'{"jobs": []}' + b" " * 200, "bytes, over the limit of 100 bytes"),
    ],
    ids=["not utf-8", "not json", "not an object", "too big"],
)
async def test_submit_json_prints_a_refused_file_as_the_same_json_object(
    env: dict[str, str], tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "refused.json"
    path.write_bytes(content)
    rc, out, err = await cli(
        {**env, "REACTOR_MAX_REQUEST_BYTES": "100"}, "submit", str(path), "--json"
    )
    assert rc == 2, err
    answer = json.loads(out)
    assert set(answer) == {"error", "job", "field"}
    assert expected in answer["error"] and answer["job"] is None


@pytest.mark.parametrize(
    ("args", "length"),
    [
        (("status", "b" * 100_000 + ":0"), "100,000 characters"),
        (("status", "x" * 100_000), "100,000 characters"),
        (("get", "d" * 100_000), "100,000 characters"),
    ],
    ids=["status of no batch", "status malformed", "get"],
)
async def test_a_huge_argument_is_not_echoed_back_whole(
    env: dict[str, str], args: tuple[str, ...], length: str
) -> None:
    rc, out, err = await cli(env, *args)
    assert rc == 2
    line = one_line_error(out, err)
    assert length in line and len(line) < 500, line[:600]


def test_submit_wait_whose_stack_goes_away_says_so_in_one_line_and_exits_3(
    tmp_path: Path,
) -> None:
    """The batch outlives the waiting command: its line says where to look."""
    env = dev_env(tmp_path)
    jobs = [
        {
            **CREATE,
            "key": f"k{i}",
            "document_id": f"lost-{i}",
            "actions": [
                {"type": "CREATE_DOCUMENT", "input": {"document_type": "powerhouse/todo-list"}}
            ],
        }
        for i in range(6000)
    ]
    path = tmp_path / "lost.json"
    path.write_text(json.dumps({"batch_id": "lost-while-waiting", "jobs": jobs}))
    dev = start_dev(tmp_path, env, stderr=subprocess.DEVNULL)
    try:
        assert dev.stdout is not None
        ready = dev.stdout.readline()
        assert ready.startswith("reactor ready"), ready
        waiting = subprocess.Popen(
            [*REACTOR, "submit", str(path), "--wait"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # Once the batch started, the stack goes away under the waiter.
            while not _batch_started(env, tmp_path):
                assert waiting.poll() is None, waiting.communicate()
            dev.send_signal(signal.SIGINT)
            out, err = waiting.communicate(timeout=120)
        finally:
            if waiting.poll() is None:
                waiting.kill()
        assert waiting.returncode == 3, err
        line = one_line_error(out, err)
        assert line.startswith("reactor: lost the connection to the stack while waiting"), line
        assert "goes on where it runs" in line and "`reactor batches`" in line
        assert "`reactor status lost-while-waiting:0`" in line
        dev.wait(60)
    finally:
        if dev.poll() is None:
            dev.kill()
            dev.wait()


def _batch_started(env: dict[str, str], cwd: Path) -> bool:
    status = subprocess.run(
        [*REACTOR, "status", "lost-while-waiting:0"], env=env, cwd=cwd, capture_output=True
    )
    return status.returncode == 0
