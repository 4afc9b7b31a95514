"""A request's JSON body, read under the request-size limit: the type is
checked first, the size before anything is parsed (from Content-Length when
given, else counted as it arrives), so an oversized body costs no parsing and
no more memory than the limit."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request

from reactor.api.http.errors import ApiError
from reactor.domain.limits import Limits, too_big

JSON_TYPES = ("application/json",)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media in JSON_TYPES or (media.startswith("application/") and media.endswith("+json"))


async def read_json_object(request: Request, limits: Limits) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "")
    if not _is_json(content_type):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"the body must be application/json, not {content_type or 'untyped'!r}",
            field="content-type",
        )
    limit = limits.max_request_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit, at_least=True)
        chunks.append(chunk)
    data = b"".join(chunks)
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ApiError(
            400, "malformed_json", f"the body is not JSON: {exc}", field="body"
        ) from None
    if not isinstance(value, dict):
        raise ApiError(
            422,
            "validation",
            f"the body must be a JSON object, not {type(value).__name__}",
            field="body",
        )
    return value


def _too_large(size: int, limit: int, *, at_least: bool = False) -> ApiError:
    """`at_least`: the body was cut off once past the limit, so its full
    size is unknown."""
    what = "the body (at least)" if at_least else "the body"
    return ApiError(
        413,
        "payload_too_large",
        too_big(what, size, limit, " bytes") + " (REACTOR_MAX_REQUEST_BYTES)",
        field="body",
    )
