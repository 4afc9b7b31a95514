"""A connection the server drops mid-job (a restart's FATAL
"terminating connection due to administrator command") fails the attempt
with an infrastructure error, which is retried; the retry applies the job
once, on a fresh connection.

The FATAL can arrive while asyncpg believes the connection idle: the next
statement then fails with "InternalClientError: cannot switch to state N;
another operation (2) is in progress". State 2 is asyncpg's "discard until
the server is ready" state, entered on that unsolicited error: no other
operation is using the connection, and asyncpg aborts it on the spot."""

from __future__ import annotations

import asyncio
import threading

import asyncpg
import pytest

from reactor.storage.database import Database
from reactor.storage.errors import is_transient
from tests.support.direct import DirectWriter, plan_job


def terminate_while_blocked(url: str, pid: int) -> None:
    """Terminates backend `pid` from another thread while this event loop is
    blocked, so its FATAL and the end of the stream are both waiting, unread,
    on the connection's socket."""

    async def terminate() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("SELECT pg_terminate_backend($1)", pid)
            for _ in range(1000):  # until the backend is gone
                if not await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid
                ):
                    return
                await asyncio.sleep(0.01)
            raise AssertionError(f"backend {pid} still there after pg_terminate_backend")
        finally:
            await conn.close()

    thread = threading.Thread(target=lambda: asyncio.run(terminate()))
    thread.start()
    thread.join()


# Event-loop turns between the termination and the job: 0, the FATAL is read
# during the job's first statement (ConnectionDoesNotExistError); 2, it was
# read just before (InternalClientError, the message seen in a restart).
@pytest.mark.parametrize("turns", [0, 2])
@pytest.mark.parametrize("fast_path", [True, False])
async def test_a_dropped_connection_is_retried_and_the_job_applied_once(
    database_url: str, turns: int, fast_path: bool
) -> None:
    db = await Database.connect(database_url, min_size=1, max_size=1)
    try:
        writer = DirectWriter(db)
        writer.applier.fast_path = fast_path
        await writer.create_list("list")
        batch_id, job = await plan_job(
            db, "list", [{"type": "ADD_TODO_ITEM", "input": {"id": "1", "text": "milk"}}]
        )
        async with db.pool.acquire() as conn:
            pid = conn.get_server_pid()
        terminate_while_blocked(database_url, pid)
        for _ in range(turns):
            await asyncio.sleep(0)
        with pytest.raises(Exception) as failed:
            await writer.applier.apply(batch_id, job)
        expected = {0: "ConnectionDoesNotExistError", 2: "InternalClientError"}[turns]
        assert type(failed.value).__name__ == expected, repr(failed.value)
        assert is_transient(failed.value)

        outcome = await writer.applier.apply(batch_id, job)  # Temporal's retry
        assert outcome.ok
        again = await writer.applier.apply(batch_id, job)  # and one more
        assert again.coordinates == outcome.coordinates
        async with db.pool.acquire() as conn:
            assert conn.get_server_pid() != pid
            ops = await conn.fetchval(
                "SELECT count(*) FROM reactor_operations WHERE job_id = $1", f"{batch_id}:0"
            )
            revision = await conn.fetchval(
                "SELECT revision FROM reactor_document_states"
                " WHERE document_id = 'list' AND scope = 'global'"
            )
        assert ops == 1
        assert revision == 1
    finally:
        await db.close()
