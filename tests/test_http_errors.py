"""Bad input over HTTP: each answers 4xx with one JSON error shape naming
the offending field, and writes nothing (every reactor table keeps its row
count, and no batch workflow starts)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import APIRouter

from reactor.api.http import create_app
from reactor.api.http.server import ApiServer
from reactor.api.module import ReactorModule
from reactor.domain.limits import Limits
from tests.support.http_api import add, create, served, todo_job
from tests.support.rows import row_counts
from tests.test_bad_inputs import assert_not_started

Factory = Callable[..., Awaitable[ReactorModule]]
# Small enough to exceed with a test body, large enough for the set-up batch.
MAX_REQUEST_BYTES = 4096
BATCH_ID = "rejected-over-http"


@dataclass
class Case:
    method: str
    path: str
    status: int
    field: str
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    job: str | None = None


def batch(*jobs: dict[str, Any]) -> dict[str, Any]:
    return {"batch_id": BATCH_ID, "jobs": list(jobs)}


def cursor_of(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


JSON = {"content-type": "application/json"}
CASES: dict[str, Case] = {
    "malformed JSON": Case("POST", "/v1/batches", 400, "body", content=b'{"jobs": [', headers=JSON),
    "a body that is a list": Case("POST", "/v1/batches", 422, "body", json=[batch()]),
    "a wrong content type": Case(
        "POST",
        "/v1/batches",
        415,
        "content-type",
        content=json.dumps(batch(create("x"))).encode(),
        headers={"content-type": "text/plain"},
    ),
    "no content type": Case(
        "POST", "/v1/batches", 415, "content-type", content=json.dumps(batch()).encode()
    ),
    "a body over the limit": Case(
        "POST", "/v1/batches", 413, "body", json=batch(todo_job("l", add("1", "x" * 5000), key="j"))
    ),
    "a body over the limit without a length": Case(
        "POST", "/v1/batches", 413, "body", content=b"", headers=JSON
    ),  # streamed: see the test
    "an unknown route": Case("GET", "/v1/nothing-here", 404, "path"),
    "an unknown method": Case("DELETE", "/v1/batches", 405, "method"),
    "an unknown action type": Case(
        "POST",
        "/v1/batches",
        422,
        "actions[0].type",
        json=batch(todo_job("list", {"type": "NO_SUCH_ACTION"}, key="bad")),
        job="bad",
    ),
    "a job on no document": Case(
        "POST",
        "/v1/batches",
        422,
        "document_id",
        json=batch(todo_job("ghost", add("1"), key="g")),
        job="g",
    ),
    "an unknown field in the batch": Case(
        "POST", "/v1/batches", 422, "surprise", json={**batch(create("x")), "surprise": 1}
    ),
    "an execute without actions": Case(
        "POST", "/v1/documents/list/actions", 422, "actions", json={"branch": "main"}
    ),
    "an execute with a bad input": Case(
        "POST",
        "/v1/documents/list/actions",
        422,
        "actions[0].input.text",
        json={"actions": [{"type": "ADD_TODO_ITEM", "input": {"id": "1", "text": 5}}]},
        job="job",
    ),
    "a garbage cursor": Case(
        "GET", "/v1/documents", 400, "cursor", params={"cursor": "%%%not-base64"}
    ),
    "a cursor of another listing": Case(
        "GET",
        "/v1/documents/list/operations",
        400,
        "cursor",
        params={"cursor": cursor_of({"k": "documents", "s": "x", "a": "list"})},
    ),
    "an edited cursor": Case(
        "GET", "/v1/documents", 400, "cursor", params={"cursor": cursor_of({"k": "documents"})}
    ),
    "a limit of 0": Case("GET", "/v1/documents", 422, "limit", params={"limit": 0}),
    "an unknown job": Case("GET", "/v1/jobs/no-such-batch:0", 404, "job_id"),
    "a malformed job id": Case("GET", "/v1/jobs/no-index", 422, "job_id"),
    "an unknown document": Case("GET", "/v1/documents/ghost", 404, "id"),
    "the children of an unknown document": Case("GET", "/v1/documents/ghost/children", 404, "id"),
    "the operations of an unknown document": Case(
        "GET", "/v1/documents/ghost/operations", 404, "id"
    ),
    "a token that is not JSON": Case(
        "GET", "/v1/documents/list", 422, "consistency_token", params={"consistency_token": "{"}
    ),
    "a NUL in a parameter": Case("GET", "/v1/documents", 422, "type", params={"type": "a\x00b"}),
    "a timeout of 0": Case("GET", "/v1/documents/list", 422, "timeout", params={"timeout": 0}),
}


@pytest.fixture
async def api(module_factory: Factory) -> AsyncIterator[httpx.AsyncClient]:
    module = await module_factory(
        lambda b: b.with_limits(Limits(max_request_bytes=MAX_REQUEST_BYTES))
    )
    async with served(module.reactor) as client:
        answer = await client.post(
            "/v1/batches", params={"wait": "true"}, json={"jobs": [create("list")]}
        )
        assert answer.status_code == 200, answer.text
        yield client


async def _chunks() -> AsyncIterator[bytes]:
    yield b'{"jobs": ['
    for _ in range(MAX_REQUEST_BYTES // 100 + 1):
        yield b" " * 100
    yield b"]}"


@pytest.mark.parametrize("name", list(CASES))
async def test_bad_input_answers_4xx_json_naming_the_field_and_writes_nothing(
    name: str, api: httpx.AsyncClient, database_url: str, module_factory: Factory
) -> None:
    case = CASES[name]
    before = await row_counts(database_url)
    content: Any = case.content
    if name == "a body over the limit without a length":
        content = _chunks()
    answer = await api.request(
        case.method,
        case.path,
        json=case.json,
        content=content,
        headers=case.headers,
        params=case.params,
    )
    assert answer.status_code == case.status, answer.text
    assert answer.headers["content-type"] == "application/json"
    error = answer.json()["error"]
    assert error["field"] == case.field, error
    assert error.get("job") == case.job, error
    assert error["message"] and error["type"], error
    assert await row_counts(database_url) == before
    reactor = (await module_factory(worker=False)).reactor
    await assert_not_started(reactor, BATCH_ID)


def test_every_class_of_bad_input_the_api_names_is_covered() -> None:
    statuses = {c.status for c in CASES.values()}
    assert statuses == {400, 404, 405, 413, 415, 422}


async def test_builder_limits_are_the_api_limits(module_factory: Factory) -> None:
    module = await module_factory(
        lambda b: b.with_limits(Limits(max_request_bytes=100)), worker=False
    )
    async with served(module.reactor) as api:
        answer = await api.post("/v1/batches", json=batch(create("a"), create("b")))
        assert answer.status_code == 413, answer.text
        assert "over the limit of 100 bytes" in answer.json()["error"]["message"]


async def test_an_unexpected_failure_is_json_500_and_an_outage_503_in_added_routers(
    module_factory: Factory,
) -> None:
    extra = APIRouter()

    @extra.get("/broken")
    async def broken() -> None:
        raise RuntimeError("a bug")

    @extra.get("/outage")
    async def outage() -> None:
        raise ConnectionRefusedError("database down")

    module = await module_factory(worker=False)
    app = create_app(module.reactor, routers=[extra])
    async with ApiServer(app) as server, httpx.AsyncClient(base_url=server.url) as api:
        failed = await api.get("/broken")
        assert failed.status_code == 500
        assert failed.json()["error"]["type"] == "internal"
        assert "a bug" not in failed.text  # details stay in the server's log
        down = await api.get("/outage")
        assert down.status_code == 503
        assert down.json()["error"]["type"] == "unavailable"
