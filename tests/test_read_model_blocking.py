"""A read model that keeps failing is blocked after a bounded number of
attempts: its jobs end WRITE_READY naming it, the other read models and the
batch go on, `reactor doctor` names it, and unblocking it (once fixed) lets
the next catch-up index what it missed."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import pytest

from reactor.application.read_models import (
    MAX_ATTEMPTS,
    ReadModelCoordinator,
    read_model_states,
)
from reactor.domain.jobs import JobInfo, JobStatus
from reactor.observability.health import check_database
from reactor.storage.operation_store import Position
from tests.conftest import Stack, worker_env
from tests.support.batches import add_item, create_list
from tests.support.read_models import CountingReadModel, FailingReadModel

REACTOR = [sys.executable, "-m", "reactor.cli.main"]


async def cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *REACTOR, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def positions(module: Any) -> dict[str, tuple[int, int]]:
    async with module.database.pool.acquire() as conn:
        return {
            s.name: (s.position.tx_id, s.position.ordinal) for s in await read_model_states(conn)
        }


def held(info: JobInfo) -> bool:
    return (
        info.status is JobStatus.WRITE_READY
        and info.error is not None
        and info.error.type == "ReadModelBlocked"
        and "read model 'failing' is blocked: RuntimeError: projection broken" in info.error.message
        and "reactor read-models unblock failing" in info.error.message
    )


async def test_a_failing_read_model_is_blocked_and_unblocked(
    stack: Stack, database_url: str, task_queue: str, module_factory: Any
) -> None:
    failing = FailingReadModel()
    module = await module_factory(
        lambda b: b.with_read_model(failing).with_read_model(CountingReadModel())
    )
    reactor = module.reactor
    first = await reactor.execute_batch(
        {"jobs": [create_list("create", "b-list"), add_item("add", "b-list", "1", ["create"])]}
    )
    jobs = await asyncio.wait_for(reactor.wait_for_batch(first.batch_id), 60)
    # Written, not indexed by 'failing', which holds them; the dependent ran.
    assert [held(j) for j in jobs] == [True, True]
    assert failing.calls == MAX_ATTEMPTS
    status = await reactor.get_job_status(jobs[1].id)
    assert held(status)
    # The other read model went on.
    reached = await positions(module)
    head = await module.operation_index.head()
    assert reached["counting"] == (head.tx_id, head.ordinal)
    assert reached["failing"] == (0, 0)

    # Blocked: later batches are not held up retrying it.
    second = await reactor.execute_batch({"jobs": [add_item("more", "b-list", "2")]})
    [more] = await asyncio.wait_for(reactor.wait_for_batch(second.batch_id), 60)
    assert held(more) and failing.calls == MAX_ATTEMPTS

    [database_check, migrations, read_models] = await check_database(database_url)
    assert (database_check.ok, migrations.ok, read_models.ok) == (True, True, False)
    assert "'failing' blocked since" in read_models.detail
    assert f"after {MAX_ATTEMPTS} failed attempts: RuntimeError: projection broken" in (
        read_models.detail
    )
    assert read_models.fix is not None
    assert "`reactor read-models unblock failing`" in read_models.fix

    env = worker_env(stack, database_url, task_queue)
    rc, out = await cli(env, "read-models", "--json")
    listed = {r["name"]: r for r in json.loads(out)}
    assert rc == 0 and listed["failing"]["blocked"] is True
    assert listed["counting"]["blocked"] is False

    failing.fixed = True
    rc, out = await cli(env, "read-models", "unblock", "failing")
    assert rc == 0, out
    assert "unblocked read model failing" in out
    rc, out = await cli(env, "read-models", "unblock", "failing")
    assert rc == 2 and "read model 'failing' is not blocked: nothing to unblock" in out, out

    third = await reactor.execute_batch({"jobs": [add_item("last", "b-list", "3")]})
    [last] = await asyncio.wait_for(reactor.wait_for_batch(third.batch_id), 60)
    assert last.status is JobStatus.READ_READY and last.error is None
    # It caught up with everything it missed, each operation once.
    async with module.database.pool.acquire() as conn:
        ops = [r["id"] for r in await conn.fetch("SELECT id FROM reactor_operations")]
    assert sorted(failing.indexed) == sorted(ops) and len(ops) == 4
    [_, _, read_models] = await check_database(database_url)
    assert read_models.ok and read_models.detail == "2 tracked, none blocked"


@pytest.mark.parametrize("raises", [ConnectionResetError, TimeoutError])
async def test_a_lost_connection_is_retried_not_counted(
    module_factory: Any, raises: type[Exception]
) -> None:
    module = await module_factory()
    result = await module.reactor.execute_batch({"jobs": [create_list("c", "n-list")]})
    await module.reactor.wait_for_batch(result.batch_id)
    rm = FailingReadModel(raises)
    coordinator = ReadModelCoordinator(module.database, [rm], max_attempts=2)
    await coordinator.setup()
    head = await module.operation_index.head()
    for _ in range(3):
        with pytest.raises(raises):
            await coordinator.catch_up(head)
    async with module.database.pool.acquire() as conn:
        [state] = await read_model_states(conn)
    assert (state.attempts, state.blocked, rm.calls) == (0, False, 3)


async def test_blocked_after_max_attempts_skipped_until_unblocked_success_resets(
    module_factory: Any,
) -> None:
    module = await module_factory()
    result = await module.reactor.execute_batch({"jobs": [create_list("c", "r-list")]})
    await module.reactor.wait_for_batch(result.batch_id)
    rm = FailingReadModel()
    head = await module.operation_index.head()

    async def state() -> tuple[int, str | None, bool]:
        async with module.database.pool.acquire() as conn:
            [s] = await read_model_states(conn)
        return s.attempts, s.last_error, s.blocked

    coordinator = ReadModelCoordinator(module.database, [rm], max_attempts=3, retry_delay=0.01)
    await coordinator.setup()
    assert [b.name for b in await coordinator.catch_up(head)] == ["failing"]
    assert await state() == (3, "RuntimeError: projection broken", True)
    # Blocked: catch-up skips it without calling it.
    assert [b.name for b in await coordinator.catch_up(head)] == ["failing"]
    assert rm.calls == 3
    assert await coordinator.unblock("failing") is True
    assert await coordinator.unblock("failing") is False
    assert await state() == (0, "RuntimeError: projection broken", False)
    rm.fixed = True
    # The count lives in the database: another worker's coordinator sees it.
    other = ReadModelCoordinator(module.database, [rm], max_attempts=3)
    assert await other.catch_up(head) == []
    assert await state() == (0, None, False)


async def test_read_models_prints_errors_as_text_and_unblock_of_an_unknown_name_exits_2(
    stack: Stack, database_url: str, task_queue: str, module_factory: Any
) -> None:
    """An error's text is data: "[/x]" in it is not rich markup (which would
    raise MarkupError). Unblocking a name no read model has is a usage error
    (exit 2), not a failed job (exit 1)."""
    module = await module_factory()
    result = await module.reactor.execute_batch({"jobs": [create_list("c", "m-list")]})
    await module.reactor.wait_for_batch(result.batch_id)
    broken = FailingReadModel(message="bad [/x] row [bold]")
    coordinator = ReadModelCoordinator(module.database, [broken], max_attempts=1)
    await coordinator.setup()
    assert [b.name for b in await coordinator.catch_up(await module.operation_index.head())] == [
        "failing"
    ]
    env = {**worker_env(stack, database_url, task_queue), "COLUMNS": "250"}
    rc, out = await cli(env, "read-models")
    assert rc == 0, out
    assert "RuntimeError: bad [/x] row [bold]" in out
    assert "1 blocked read model(s)" in out
    rc, out = await cli(env, "read-models", "unblock", "nope")
    assert rc == 2, out
    assert "no read model named 'nope' (tracked: failing)" in out
    assert "Traceback" not in out


class HangingReadModel:
    """index_operations never returns."""

    name = "hanging"

    def __init__(self) -> None:
        self.calls = 0
        self.cancelled = 0

    async def index_operations(self, operations: list[Any]) -> None:
        self.calls += 1
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


async def test_a_read_model_that_hangs_is_blocked_after_max_attempts(
    module_factory: Any,
) -> None:
    module = await module_factory()
    result = await module.reactor.execute_batch({"jobs": [create_list("c", "h-list")]})
    await module.reactor.wait_for_batch(result.batch_id)
    rm = HangingReadModel()
    coordinator = ReadModelCoordinator(
        module.database, [rm], max_attempts=2, retry_delay=0.01, index_timeout=0.2
    )
    await coordinator.setup()
    head = await module.operation_index.head()
    [blocked] = await coordinator.catch_up(head)
    assert blocked.name == "hanging"
    assert "index_operations did not return within 0.2 s" in blocked.error
    assert (rm.calls, rm.cancelled) == (2, 2)
    async with module.database.pool.acquire() as conn:
        [state] = await read_model_states(conn)
    assert (state.attempts, state.blocked) == (2, True)
    assert state.position == Position()  # nothing of the hung calls was kept
