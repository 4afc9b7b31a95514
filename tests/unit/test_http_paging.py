"""Opaque cursors: a cursor reads back as the position it was given for, in
its own listing and parameters only; anything else is a 400 naming
`cursor`. And the JWT claims' document-type rule."""

from __future__ import annotations

import pytest

from reactor.api.http import paging
from reactor.api.http.auth import principal_of
from reactor.api.http.errors import ApiError


def test_a_cursor_reads_back_as_its_position() -> None:
    for after, kind in (("doc-07", str), (42, int), (0, int)):
        cursor = paging.encode("documents", ("t", None, "main"), after)
        assert paging.decode(cursor, "documents", ("t", None, "main"), kind) == after
    assert paging.decode(None, "documents", (), str) is None


@pytest.mark.parametrize(
    "cursor, kind, params, expected_type",
    [
        ("%%%", "documents", (), str),
        ("x" * 5000, "documents", (), str),
        (paging.encode("children", ("a",), "b"), "parents", ("a",), str),
        (paging.encode("children", ("a",), "b"), "children", ("other",), str),
        (
            paging.encode("operations", ("a", None, "main"), "7"),
            "operations",
            ("a", None, "main"),
            int,
        ),
        (
            paging.encode("operations", ("a", None, "main"), -1),
            "operations",
            ("a", None, "main"),
            int,
        ),
        ("bnVsbA", "documents", (), str),  # base64url of "null"
    ],
)
def test_a_cursor_of_another_listing_or_tampered_is_refused_naming_cursor(
    cursor: str, kind: str, params: tuple[str | None, ...], expected_type: type
) -> None:
    with pytest.raises(ApiError) as info:
        paging.decode(cursor, kind, params, expected_type)
    assert (info.value.status, info.value.detail.field) == (400, "cursor")


def test_a_page_of_sorted_ids_follows_the_cursor_to_the_end() -> None:
    ids = [f"id-{n}" for n in range(5)]
    seen: list[str] = []
    after = None
    while True:
        page, after = paging.after_id(ids, after, 2)
        seen.extend(page)
        if after is None:
            break
    assert seen == ids
    assert paging.after_id(ids, "id-4", 2) == ([], None)


def test_the_document_types_claim_limits_a_principal() -> None:
    assert principal_of({"sub": "a"}).allows("any/type")
    limited = principal_of({"sub": "a", "document_types": ["x/drive"]})
    assert limited.allows("x/drive") and not limited.allows("x/todo")
    assert principal_of({"document_types": "x/drive"}).allows("x/drive")
    assert not principal_of({"document_types": 5}).allows("x/drive")
    assert principal_of({}).subject is None
