"""Opaque cursors: a position in one listing, as base64url of a small JSON
object. A cursor names the listing it came from (its kind and a digest of
its parameters), so a cursor from another listing, or one that was edited,
is refused with 400 naming `cursor` rather than read as another position.
Cursors carry only a position, nothing a client could not see anyway, so
they are checked, not signed."""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
from typing import Generic, TypeVar

import orjson
from fastapi import Query
from pydantic import BaseModel

from reactor.api.http.errors import ApiError

T = TypeVar("T")

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# A cursor is a few dozen bytes; anything much longer is not one of ours.
MAX_CURSOR_CHARS = 2048


# The query parameters of every paged listing.
Limit = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="results per page")
Cursor = Query(None, description="next_cursor of the previous page")


class Page(BaseModel, Generic[T]):
    results: list[T]
    next_cursor: str | None = None


def _scope(kind: str, params: tuple[str | None, ...]) -> str:
    return hashlib.sha256(orjson.dumps([kind, *params])).hexdigest()[:16]


def encode(kind: str, params: tuple[str | None, ...], after: int | str) -> str:
    raw = orjson.dumps({"k": kind, "s": _scope(kind, params), "a": after})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str | None, kind: str, params: tuple[str | None, ...], type_: type) -> object:
    """The position in `cursor` (None for the first page), of `type_`."""
    if cursor is None:
        return None
    if len(cursor) > MAX_CURSOR_CHARS:
        raise _bad("it is too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise _bad("it is not a cursor this API gave out") from None
    if not isinstance(value, dict) or value.get("k") != kind:
        raise _bad(f"it is not a cursor of this listing ({kind})")
    if value.get("s") != _scope(kind, params):
        raise _bad("it was given for other parameters of this listing")
    after = value.get("a")
    if type(after) is not type_ or (isinstance(after, int) and after < 0):
        raise _bad("its position is malformed")
    return after


def _bad(why: str) -> ApiError:
    return ApiError(400, "bad_cursor", f"invalid cursor: {why}", field="cursor")


def after_id(ids: list[str], after: str | None, limit: int) -> tuple[list[str], str | None]:
    """The page of sorted `ids` that follows `after`, and the last id shown
    when more follow."""
    start = 0 if after is None else bisect.bisect_right(ids, after)
    page = ids[start : start + limit]
    more = start + limit < len(ids)
    return page, (page[-1] if more and page else None)
