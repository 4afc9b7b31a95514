"""`reactor codec-server`, as a process over real HTTP: it decodes a payload
taken from an encrypted batch's history, encodes, answers the UI's CORS
preflight for its origin only, and checks the bearer token when one is set."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf import json_format

from reactor.api.module import ReactorModule
from reactor.domain.jobs import workflow_id_for
from reactor.runtime.connection import TemporalConnection
from reactor.runtime.temporal import connect
from tests.conftest import ROOT, Stack, free_port, wait_until

KEY = "ui-2026:" + base64.b64encode(os.urandom(32)).decode()
TOKEN = "s3cret-" + uuid.uuid4().hex
UI_ORIGIN = "http://127.0.0.1:8233"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any


def request(
    url: str, body: Any = None, *, method: str = "POST", headers: dict[str, str] | None = None
) -> Reply:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            status, got = resp.status, dict(resp.headers)
    except urllib.error.HTTPError as err:
        raw, status, got = err.read(), err.code, dict(err.headers)
    is_json = got.get("content-type", "").startswith("application/json")
    return Reply(
        status, {k.lower(): v for k, v in got.items()}, json.loads(raw) if is_json else raw
    )


async def call(url: str, body: Any = None, **kw: Any) -> Reply:
    return await asyncio.to_thread(request, url, body, **kw)


def spawn_codec_server(port: int, token: str | None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "REACTOR_PAYLOAD_KEY": KEY, "PYTHONPATH": str(ROOT)}
    env.pop("REACTOR_CODEC_SERVER_TOKEN", None)
    if token is not None:
        env["REACTOR_CODEC_SERVER_TOKEN"] = token
    return subprocess.Popen(
        [sys.executable, "-m", "reactor.cli.main", "codec-server", "--port", str(port)]
        + ["--origin", UI_ORIGIN],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def start_codec_server(token: str | None = None) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = spawn_codec_server(port, token)
    url = f"http://127.0.0.1:{port}"

    async def up() -> bool:
        assert proc.poll() is None, "the codec server exited"
        try:
            return (await call(url + "/decode", {"payloads": []})).status in (200, 401)
        except OSError:
            return False

    await wait_until(up, 60, "the codec server to listen")
    return proc, url


@pytest.fixture
async def codec_server() -> AsyncIterator[str]:
    proc, url = await start_codec_server()
    yield url
    proc.terminate()
    proc.wait(10)


async def test_decodes_a_payload_from_an_encrypted_history(
    stack: Stack,
    module_factory: Callable[..., Awaitable[ReactorModule]],
    task_queue: str,
    codec_server: str,
) -> None:
    module = await module_factory(
        lambda b: b.with_temporal(stack.temporal_address, task_queue=task_queue, payload_key=KEY)
    )
    marker = "MARKER-" + uuid.uuid4().hex
    started = await module.reactor.execute_batch(
        {
            "jobs": [
                {
                    "key": "create",
                    "document_id": "codec-" + uuid.uuid4().hex[:6],
                    "scope": "document",
                    "actions": [
                        {
                            "type": "CREATE_DOCUMENT",
                            "input": {"document_type": "powerhouse/todo-list", "name": marker},
                        }
                    ],
                }
            ]
        }
    )
    await module.reactor.wait_for_batch(started.batch_id)
    plain = await connect(TemporalConnection(address=stack.temporal_address))
    history = await plain.get_workflow_handle(workflow_id_for(started.batch_id)).fetch_history()
    sealed = history.events[0].workflow_execution_started_event_attributes.input.payloads[0]
    assert marker.encode() not in sealed.SerializeToString()

    reply = await call(
        codec_server + "/decode",
        {"payloads": [json_format.MessageToDict(sealed)]},
        headers={"Origin": UI_ORIGIN, "X-Namespace": "default"},
    )
    assert reply.status == 200
    assert reply.headers["access-control-allow-origin"] == UI_ORIGIN
    (decoded,) = reply.body["payloads"]
    assert base64.b64decode(decoded["metadata"]["encoding"]) == b"json/plain"
    assert marker in base64.b64decode(decoded["data"]).decode()


async def test_encode_round_trip_and_errors(codec_server: str) -> None:
    plain = {
        "metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
        "data": base64.b64encode(b'"hello"').decode(),
    }
    encoded = await call(codec_server + "/encode", {"payloads": [plain]})
    assert encoded.status == 200
    (sealed,) = encoded.body["payloads"]
    assert base64.b64decode(sealed["metadata"]["encoding"]) == b"binary/encrypted"
    assert base64.b64decode(sealed["metadata"]["encryption-key-id"]) == b"ui-2026"
    decoded = await call(codec_server + "/decode", encoded.body)
    assert decoded.body == {"payloads": [plain]}

    sealed["metadata"]["encryption-key-id"] = base64.b64encode(b"retired").decode()
    unknown = await call(codec_server + "/decode", {"payloads": [sealed]})
    assert unknown.status == 400 and "key 'retired'" in unknown.body["detail"]
    assert (await call(codec_server + "/decode", ["not", "payloads"])).status == 400


async def test_a_malformed_payload_is_a_400_that_says_what_is_wrong(codec_server: str) -> None:
    encrypted = base64.b64encode(b"binary/encrypted").decode()
    key_id = base64.b64encode(b"ui-2026").decode()

    def sealed(data: bytes) -> dict[str, Any]:
        return {
            "metadata": {"encoding": encrypted, "encryption-key-id": key_id},
            "data": base64.b64encode(data).decode(),
        }

    truncated = await call(codec_server + "/decode", {"payloads": [sealed(b"short")]})
    assert truncated.status == 400
    assert "key 'ui-2026', but it is malformed: 5 bytes" in truncated.body["detail"]
    # Sealed with the server's key, but holding no serialized payload.
    key = base64.b64decode(KEY.partition(":")[2])
    nonce = os.urandom(12)
    foreign = nonce + AESGCM(key).encrypt(nonce, b"\xff\xff\xff", b"ui-2026")
    unparsable = await call(codec_server + "/decode", {"payloads": [sealed(foreign)]})
    assert unparsable.status == 400
    assert "not a serialized Temporal payload" in unparsable.body["detail"]


async def test_cors_admits_the_ui_origin_only(codec_server: str) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-namespace,authorization",
    }
    ok = await call(
        codec_server + "/decode", method="OPTIONS", headers={"Origin": UI_ORIGIN, **preflight}
    )
    assert ok.status == 200
    assert ok.headers["access-control-allow-origin"] == UI_ORIGIN
    assert "x-namespace" in ok.headers["access-control-allow-headers"].lower()
    other = await call(
        codec_server + "/decode",
        method="OPTIONS",
        headers={"Origin": "http://evil.example", **preflight},
    )
    assert "access-control-allow-origin" not in other.headers


async def test_bearer_token_when_configured() -> None:
    proc, url = await start_codec_server(TOKEN)
    try:
        body = {"payloads": []}
        assert (await call(url + "/decode", body)).status == 401
        wrong = await call(url + "/decode", body, headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401
        right = await call(url + "/decode", body, headers={"Authorization": f"Bearer {TOKEN}"})
        assert right.status == 200 and right.body == {"payloads": []}
    finally:
        proc.terminate()
        proc.wait(10)
