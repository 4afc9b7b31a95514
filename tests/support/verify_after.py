"""After every test that had a database (through `reactor`, `module_factory`,
`worker` or `db`), its documents are checked against their logs
(reactor/application/verify.py): a write path that stores a hash its replay
does not reproduce fails the test that wrote it.

It runs at teardown, after the test's reactors and workers have stopped (it
is set up first, so it is torn down last), in a thread of its own with its
own event loop and connections. A test marked `unverified` (one that writes
operations by hand) is not checked. Documents of a type the built-in models do
not define (test models registered by a test) are left out. To bound the
cost of a test that writes thousands of documents, up to MAX_DOCUMENTS are
verified: all of them when there are no more, else every k-th in id order,
a sample that is the same on every run."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Iterator

import pytest

from reactor.application.verify import Verification, verify_document
from reactor.domain.model import DocumentModel, ModelRegistry
from reactor.models import BUILTIN_MODELS
from reactor.storage.database import Database

MAX_DOCUMENTS = 200
DOCUMENTS = "SELECT id, document_type FROM reactor_documents ORDER BY id"


@pytest.fixture(autouse=True)
def verify_after(request: pytest.FixtureRequest) -> Iterator[None]:
    if "database_url" not in request.fixturenames or request.node.get_closest_marker("unverified"):
        yield
        return
    database_url: str = request.getfixturevalue("database_url")
    yield
    differing = _in_thread(database_url)
    if differing:
        pytest.fail(
            "documents whose log does not reproduce their stored hashes:\n"
            + "\n".join(
                f"  {v.document_id}: {v.difference.describe()}" for v in differing if v.difference
            ),
            pytrace=False,
        )


def _in_thread(database_url: str) -> list[Verification]:
    result: list[list[Verification]] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(asyncio.run(verify_database(database_url)))
        except BaseException as exc:  # re-raised in the test's thread
            failure.append(exc)

    thread = threading.Thread(target=run, name="verify-after")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


async def verify_database(database_url: str) -> list[Verification]:
    """The verifications that found a difference, among the sampled documents."""
    registry = ModelRegistry([DocumentModel.from_module(m) for m in BUILTIN_MODELS])
    db = await Database.connect(database_url, max_size=1)
    try:
        async with db.pool.acquire() as conn:
            rows = await conn.fetch(DOCUMENTS)
        ids = [r["id"] for r in rows if r["document_type"] in registry]
        step = math.ceil(len(ids) / MAX_DOCUMENTS) if ids else 1
        results = [await verify_document(db, registry, i) for i in ids[::step]]
    finally:
        await db.close()
    return [r for r in results if not r.ok]
