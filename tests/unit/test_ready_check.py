"""LedgerCheck shares one ledger query among the checks asked for in the
same event-loop turn, and gives each its own row (or the query's error)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from reactor.application.consistency import ConsistencyWaiter
from reactor.application.ready_check import LedgerCheck
from reactor.application.wakeup import Wakeup

SPAN = {"document_id": "d", "scope": "global", "branch": "main", "operation_index": 0, "count": 2}


class FakeLedger:
    def __init__(self, rows: dict[str, dict[str, Any]], fail: bool = False):
        self.rows = rows
        self.fail = fail
        self.queries: list[list[str]] = []

    async def outcomes(self, job_ids: list[str]) -> dict[str, dict[str, Any]]:
        self.queries.append(job_ids)
        await asyncio.sleep(0)
        if self.fail:
            raise ConnectionResetError("the database went away")
        return {j: self.rows[j] for j in job_ids if j in self.rows}


def check_of(ledger: FakeLedger) -> LedgerCheck:
    return LedgerCheck(ledger, ConsistencyWaiter(None, [], Wakeup()))  # type: ignore[arg-type]


async def test_checks_in_one_turn_share_one_query_and_each_gets_its_answer() -> None:
    ledger = FakeLedger(
        {
            "b:0": {"status": "applied", "coordinates": [SPAN]},
            "b:1": {"status": "failed", "coordinates": []},
        }
    )
    check = check_of(ledger)
    applied, failed, missing, again = await asyncio.gather(
        check.applied("b:0"), check.applied("b:1"), check.applied("b:2"), check.applied("b:0")
    )
    assert ledger.queries == [["b:0", "b:1", "b:2"]]
    assert applied == again
    assert applied is not None and [(s.operation_index, s.count) for s in applied] == [(0, 2)]
    assert failed is None and missing is None
    await check.applied("b:1")
    assert len(ledger.queries) == 2  # a later turn asks again: the ledger may have changed


async def test_a_failed_query_fails_every_check_that_shared_it() -> None:
    check = check_of(FakeLedger({}, fail=True))
    results = await asyncio.gather(
        check.applied("b:0"), check.applied("b:1"), return_exceptions=True
    )
    assert [type(r) for r in results] == [ConnectionResetError, ConnectionResetError]


async def test_a_cancelled_check_leaves_the_others_sharing_its_query_answered() -> None:
    ledger = FakeLedger({"b:0": {"status": "applied", "coordinates": [SPAN]}})
    check = check_of(ledger)
    first = asyncio.ensure_future(check.applied("b:0"))
    second = asyncio.ensure_future(check.applied("b:0"))
    await asyncio.sleep(0)
    first.cancel()
    assert await second is not None
    with pytest.raises(asyncio.CancelledError):
        await first
