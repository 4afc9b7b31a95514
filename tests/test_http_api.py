"""Every endpoint of the HTTP API on a live server over loopback, against a
real reactor, PostgreSQL and Temporal: shapes as the CLI prints them,
paging to the end without duplicates, `wait=true`, and a consistency token
not reached in time (504 naming the coordinate)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from reactor.api.reactor import Reactor
from reactor.observability.batch_listing import list_batches
from reactor.runtime.settings import Settings
from tests.conftest import Stack, wait_until
from tests.support.http_api import DRIVE, TODO, add, create, relate, served, todo_job

pytestmark = pytest.mark.usefixtures("worker")


async def submit_and_wait(api: httpx.AsyncClient, jobs: list[dict[str, Any]]) -> dict[str, Any]:
    answer = await api.post("/v1/batches", params={"wait": "true"}, json={"jobs": jobs})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert {j["status"] for j in body["jobs"].values()} == {"READ_READY"}, body
    return body


async def pages(api: httpx.AsyncClient, path: str, limit: int, **params: Any) -> list[list[Any]]:
    """Every page of a listing, following next_cursor to the end."""
    out: list[list[Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        answer = await api.get(path, params=query)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        out.append(body["results"])
        cursor = body["next_cursor"]
        if cursor is None:
            return out


async def test_a_batch_is_accepted_with_202_and_its_jobs_reach_read_ready(
    reactor: Reactor,
) -> None:
    async with served(reactor) as api:
        answer = await api.post(
            "/v1/batches",
            json={
                "batch_id": "http-b1",
                "jobs": [create("l1"), todo_job("l1", add("1"), key="add", after="create-l1")],
            },
        )
        assert answer.status_code == 202, answer.text
        body = answer.json()
        assert body["batch_id"] == "http-b1"
        assert set(body["jobs"]) == {"create-l1", "add"}
        assert body["jobs"]["add"]["id"] == "http-b1:1"
        assert set(body["jobs"]["add"]) == {"id", "status", "error", "consistency_token"}

        async def added() -> bool:
            status = await api.get("/v1/jobs/http-b1:1")
            assert status.status_code == 200, status.text
            return bool(status.json()["status"] == "READ_READY")

        await wait_until(added, 60, "the job to be READ_READY")
        status = (await api.get("/v1/jobs/http-b1:1")).json()
        assert (status["key"], status["document_id"]) == ("add", "l1")
        doc = await api.get("/v1/documents/l1")
        assert doc.status_code == 200, doc.text
        assert doc.json()["state"]["global"]["items"] == [
            {"id": "1", "text": "milk", "checked": False}
        ]


async def test_wait_true_answers_once_every_job_is_final_and_the_token_reads_the_write(
    reactor: Reactor,
) -> None:
    async with served(reactor) as api:
        body = await submit_and_wait(
            api, [create("l2"), todo_job("l2", add("a"), add("b"), key="add", after="create-l2")]
        )
        token = body["jobs"]["add"]["consistency_token"]
        assert [c["operation_index"] for c in token["coordinates"]] == [0, 1]
        doc = await api.get(
            "/v1/documents/l2", params={"consistency_token": json.dumps(token), "timeout": 5}
        )
        assert doc.status_code == 200, doc.text
        assert [i["id"] for i in doc.json()["state"]["global"]["items"]] == ["a", "b"]
        assert doc.json()["header"]["revision"]["global"] == 2


async def test_a_failed_job_is_final_for_wait_true_and_names_its_error(reactor: Reactor) -> None:
    async with served(reactor) as api:
        await submit_and_wait(api, [create("l3")])
        update = {"type": "UPDATE_TODO_ITEM", "input": {"id": "missing", "checked": True}}
        answer = await api.post(
            "/v1/batches",
            params={"wait": "true"},
            json={"jobs": [todo_job("l3", update, key="bad")]},
        )
        assert answer.status_code == 200, answer.text
        job = answer.json()["jobs"]["bad"]
        assert job["status"] == "FAILED"
        assert job["error"]["message"]


async def test_actions_on_one_document_run_as_one_job(reactor: Reactor) -> None:
    async with served(reactor) as api:
        await submit_and_wait(api, [create("l4")])
        answer = await api.post(
            "/v1/documents/l4/actions",
            params={"wait": "true"},
            json={"actions": [add("x", "eggs"), add("y", "tea")]},
        )
        assert answer.status_code == 200, answer.text
        info = answer.json()
        assert (info["status"], info["document_id"]) == ("READ_READY", "l4")
        queued = await api.post("/v1/documents/l4/actions", json={"actions": [add("z")]})
        assert queued.status_code == 202, queued.text
        assert queued.json()["status"] in ("PENDING", "RUNNING", "WRITE_READY", "READ_READY")
        doc = (await api.get("/v1/documents/l4")).json()
        assert [i["id"] for i in doc["state"]["global"]["items"]][:2] == ["x", "y"]


async def test_search_pages_through_a_type_to_the_end_without_duplicates(
    reactor: Reactor,
) -> None:
    ids = [f"doc-{n:02d}" for n in range(7)]
    async with served(reactor) as api:
        await submit_and_wait(api, [create(i) for i in ids] + [create("drive", DRIVE)])
        got = await pages(api, "/v1/documents", 3, type=TODO)
        assert [len(p) for p in got] == [3, 3, 1]
        flat = [d["header"]["id"] for p in got for d in p]
        assert flat == ids  # by id, each once
        assert {d["header"]["document_type"] for p in got for d in p} == {TODO}
        everything = [d["header"]["id"] for p in await pages(api, "/v1/documents", 100) for d in p]
        assert sorted(everything) == sorted([*ids, "drive"])


async def test_children_and_parents_page_to_the_end(reactor: Reactor) -> None:
    kids = [f"kid-{n}" for n in range(5)]
    async with served(reactor) as api:
        await submit_and_wait(api, [create("p1", DRIVE), create("p2", DRIVE), *map(create, kids)])
        await submit_and_wait(api, [relate("p1", *kids, key="r1"), relate("p2", "kid-0", key="r2")])
        got = await pages(api, "/v1/documents/p1/children", 2)
        assert [len(p) for p in got] == [2, 2, 1]
        assert [c for p in got for c in p] == kids
        parents = await pages(api, "/v1/documents/kid-0/parents", 1)
        assert parents == [["p1"], ["p2"]]
        under = await pages(api, "/v1/documents", 2, parent="p1")
        assert [d["header"]["id"] for p in under for d in p] == kids


async def test_operations_page_by_scope_in_log_order(reactor: Reactor) -> None:
    async with served(reactor) as api:
        await submit_and_wait(
            api,
            [
                create("l5"),
                todo_job("l5", *[add(str(n)) for n in range(8)], key="add", after="create-l5"),
            ],
        )
        got = await pages(api, "/v1/documents/l5/operations", 3, scope="global")
        assert [len(p) for p in got] == [3, 3, 2]
        ops = [o for p in got for o in p]
        assert [o["index"] for o in ops] == list(range(8))
        assert [o["action"]["input"]["id"] for o in ops] == [str(n) for n in range(8)]
        assert {o["scope"] for o in ops} == {"global"}
        every = [o for p in await pages(api, "/v1/documents/l5/operations", 4) for o in p]
        assert {(o["scope"], o["index"]) for o in every} == {("document", 0)} | {
            ("global", n) for n in range(8)
        }
        assert len(every) == 9


async def test_a_token_not_reached_in_time_answers_504_naming_the_coordinate(
    reactor: Reactor,
) -> None:
    async with served(reactor) as api:
        await submit_and_wait(api, [create("l6")])
        behind = {"document_id": "l6", "scope": "global", "branch": "main", "operation_index": 99}
        token = {"coordinates": [behind]}
        answer = await api.get(
            "/v1/documents/l6", params={"consistency_token": json.dumps(token), "timeout": 0.3}
        )
        assert answer.status_code == 504, answer.text
        error = answer.json()["error"]
        assert (error["type"], error["field"]) == ("consistency_timeout", "consistency_token")
        assert error["coordinate"] == behind
        assert "operation 99" in error["message"]


async def test_the_batches_listing_shows_a_submitted_batch(reactor: Reactor) -> None:
    # Visibility is the namespace's: a document id of its own keeps other
    # tests' batches out of the listing.
    doc = f"l7-{uuid.uuid4().hex[:8]}"
    async with served(reactor) as api:
        await submit_and_wait(api, [create(doc)])
        listed: list[dict[str, Any]] = []

        async def shown() -> bool:
            answer = await api.get("/v1/batches", params={"document": doc})
            assert answer.status_code == 200, answer.text
            listed[:] = answer.json()
            return bool(listed) and listed[0]["close_time"] is not None

        await wait_until(shown, 30, "the closed batch in the visibility listing")
        row = listed[0]
        assert doc in row["document_ids"]
        # The rows `reactor batches --json` prints, field for field.
        assert [row] == await list_batches(reactor.client, document=doc)


async def test_healthz_reports_the_doctors_checks(
    reactor: Reactor, stack: Stack, database_url: str, task_queue: str
) -> None:
    settings = Settings(
        database_url=database_url, temporal_address=stack.temporal_address, task_queue=task_queue
    )
    async with served(reactor, settings=settings) as api:
        answer = await api.get("/healthz")
        body = answer.json()
        assert answer.status_code == (200 if body["healthy"] else 503), body
        names = {c["name"] for c in body["checks"]}
        assert {"database", "migrations"} <= names, names
        assert all(set(c) == {"name", "ok", "detail", "fix"} for c in body["checks"])
    async with served(reactor) as api:
        own = await api.get("/healthz")
        assert own.status_code == 200, own.text
        assert [c["name"] for c in own.json()["checks"]] == ["database", "temporal"]


async def test_the_openapi_document_and_the_docs_are_served(reactor: Reactor) -> None:
    async with served(reactor) as api:
        document = (await api.get("/openapi.json")).json()
        assert set(document["paths"]) == {
            "/v1/batches",
            "/v1/jobs/{job_id}",
            "/v1/documents",
            "/v1/documents/{id_or_slug}",
            "/v1/documents/{document_id}/actions",
            "/v1/documents/{document_id}/children",
            "/v1/documents/{document_id}/parents",
            "/v1/documents/{document_id}/operations",
            "/v1/types",
            "/v1/sync/identity",
            "/v1/sync/operations",
            "/v1/sync/load",
            "/healthz",
        }
        body = document["paths"]["/v1/batches"]["post"]["requestBody"]
        ref = body["content"]["application/json"]["schema"]["$ref"]
        assert ref.rsplit("/", 1)[-1] in document["components"]["schemas"]
        docs = await api.get("/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
