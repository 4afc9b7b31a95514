"""Temporal's remote codec protocol over HTTP: POST /encode and /decode take
and return `{"payloads": [...]}` (payloads in protobuf JSON), so the Temporal
UI and CLI show decrypted inputs and results to whoever may call it. CORS
admits the UI's origin; a bearer token, when configured, guards both routes.
The keys never leave this process."""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from reactor.runtime.codec import EncryptedPayloadError, EncryptionCodec, PayloadKeys

# The dev server's UI; a deployed UI's origin goes in REACTOR_CODEC_SERVER_ORIGINS.
DEFAULT_ORIGINS = ("http://localhost:8233", "http://127.0.0.1:8233")


def codec_app(
    keys: PayloadKeys, *, origins: Sequence[str] = DEFAULT_ORIGINS, token: str | None = None
) -> FastAPI:
    codec = keys.codec()
    app = FastAPI(title="reactor codec server", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_methods=["POST", "OPTIONS"],
        # The UI sends the namespace, and its access token when configured to.
        allow_headers=["Content-Type", "Authorization", "X-Namespace"],
        allow_credentials=True,
    )

    def authorize(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise HTTPException(401, "a bearer token is required", {"WWW-Authenticate": "Bearer"})

    @app.post("/encode")
    async def encode(request: Request) -> JSONResponse:
        authorize(request)
        return _respond(await codec.encode(await _payloads(request)))

    @app.post("/decode")
    async def decode(request: Request) -> JSONResponse:
        authorize(request)
        try:
            decoded = await codec.decode(await _payloads(request))
        except EncryptedPayloadError as exc:
            raise HTTPException(400, str(exc)) from None
        return _respond(decoded)

    return app


async def _payloads(request: Request) -> Sequence[Any]:
    try:
        body = await request.json()
        message = json_format.ParseDict(body, Payloads(), ignore_unknown_fields=True)
    except (ValueError, json_format.ParseError) as exc:
        raise HTTPException(400, f'expected {{"payloads": [...]}}: {exc}') from None
    return list(message.payloads)


def _respond(payloads: Sequence[Any]) -> JSONResponse:
    return JSONResponse({"payloads": [json_format.MessageToDict(p) for p in payloads]})


def describe(codec: EncryptionCodec) -> str:
    return f"active key {codec.active!r}, {len(codec.keys.keys)} key(s) in the ring"
