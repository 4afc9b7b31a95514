"""A live HTTP API over a test's reactor: uvicorn on a free loopback port in
the test's process, and an httpx client talking to it over TCP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from reactor.api.http import JwtHandler, create_app
from reactor.api.http.server import ApiServer
from reactor.api.reactor import Reactor
from reactor.runtime.settings import Settings

TODO = "powerhouse/todo-list"
DRIVE = "powerhouse/document-drive"


@asynccontextmanager
async def served(
    reactor: Reactor, auth: JwtHandler | None = None, settings: Settings | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(reactor, auth, settings=settings)
    async with (
        ApiServer(app) as server,
        httpx.AsyncClient(base_url=server.url, timeout=60) as client,
    ):
        yield client


def create(doc: str, document_type: str = TODO, key: str | None = None) -> dict[str, Any]:
    return {
        "key": key or f"create-{doc}",
        "document_id": doc,
        "scope": "document",
        "actions": [{"type": "CREATE_DOCUMENT", "input": {"document_type": document_type}}],
    }


def add(item: str, text: str = "milk") -> dict[str, Any]:
    return {"type": "ADD_TODO_ITEM", "input": {"id": item, "text": text}}


def todo_job(doc: str, *actions: dict[str, Any], key: str, after: str | None = None) -> dict:
    job: dict[str, Any] = {"key": key, "document_id": doc, "actions": list(actions)}
    if after is not None:
        job["depends_on"] = [after]
    return job


def relate(parent: str, *children: str, key: str) -> dict[str, Any]:
    return {
        "key": key,
        "document_id": parent,
        "scope": "document",
        "actions": [{"type": "ADD_RELATIONSHIP", "input": {"target_id": c}} for c in children],
    }
